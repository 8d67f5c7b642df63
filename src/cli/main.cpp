// recap's command line: CLI11 wiring only. Each subcommand parses its flags and calls one
// function from src/stages/ or src/core/; no logic lives here.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/build_info.h"
#include "core/config.h"
#include "core/error.h"
#include "core/runtime.h"
#include "core/threads.h"
#include "stages/corpus.h"
#include "stages/corpus_show.h"
#include "stages/corpus_stats.h"
#include "stages/inspect.h"
#include "stages/captioner_train.h"
#include "stages/model_settings.h"
#include "stages/settings.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"

namespace {

using recap::Config;

void print_version(const recap::Runtime& rt) {
  auto info = recap::build_info();
  const auto& blas = *rt.blas;
  fmt::print("recap {}\nlibtorch {}\ncompiler {}\nBLAS {} ({}), {:.1f} GFLOP/s on a 512x512 "
             "matmul\nthreads {} (usable cores {})\ndevice {}{}\n",
             info["recap"].get<std::string>(), info["libtorch"].get<std::string>(),
             info["compiler"].get<std::string>(), blas.library,
             blas.path.empty() ? "no shared library found" : blas.path, blas.gflops, rt.threads,
             recap::usable_cores(), rt.device.str(),
             info["cuda_available"].get<bool>() ? " (CUDA available)" : " (no CUDA)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"recap: relabel a text-to-image corpus with a fine-tuned captioner, train on the "
               "recaptions, and measure prompt following (RECAP)."};
  app.require_subcommand(1);
  app.fallthrough();
  app.get_formatter()->column_width(34);

  recap::RuntimeOptions opts;
  app.add_option("--threads", opts.threads, "libtorch threads (0: usable cores)")
      ->capture_default_str();
  app.add_option("--device", opts.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--seed", opts.seed, "override the preset's run.seed");
  app.add_option("--log-level", opts.log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();

  auto* version = app.add_subcommand("version", "Versions, BLAS backend, threads and device");

  auto* weights = app.add_subcommand("weights", "Safetensors weight files");
  weights->require_subcommand(1);
  std::string weights_file;
  auto* inspect = weights->add_subcommand(
      "inspect", "List tensors (name, dtype, shape, bytes) and metadata; exit 2 if malformed");
  inspect->add_option("file", weights_file, "a .safetensors file")->required();

  auto* config = app.add_subcommand("config", "Presets and configuration keys");
  config->require_subcommand(1);
  // Every command that reads a config takes the same --preset and --set.
  std::string preset = "quick";
  std::vector<std::string> overrides;
  const std::string preset_help =
      fmt::format("preset name ({}) or a .toml file", fmt::join(Config::preset_names(), ", "));
  auto add_set_option = [&](CLI::App* cmd) {
    cmd->add_option("--set", overrides, "override one key: section.key=value (repeatable)");
  };
  auto add_config_options = [&](CLI::App* cmd) {
    cmd->add_option("--preset", preset, preset_help)->capture_default_str();
    add_set_option(cmd);
  };
  // --seed is shorthand for --set run.seed=N and wins over the preset.
  auto load_config = [&](const std::string& preset_or_path) {
    if (opts.seed) overrides.push_back(fmt::format("run.seed={}", *opts.seed));
    return Config::load(preset_or_path, overrides);
  };
  std::string corpus_dir;
  // Stages that read a corpus use the config it was made with (its config.toml) plus --set.
  auto load_corpus_config = [&] {
    return load_config((std::filesystem::path(corpus_dir) / "config.toml").string());
  };
  auto* show = config->add_subcommand("show", "Print the effective configuration as TOML");
  add_config_options(show);
  auto* keys = config->add_subcommand("keys", "List every configuration key with its default");

  auto* corpus = app.add_subcommand("corpus", "The embedded world's corpus: make, stats, show");
  corpus->require_subcommand(1);
  std::string corpus_out;
  auto* corpus_make = corpus->add_subcommand(
      "make", "Render the web corpus (alt-text), the human-captioned set, eval scenes and "
              "prompt suites into WebDataset shards; resumable, byte-identical per seed");
  add_config_options(corpus_make);
  corpus_make->add_option("--out", corpus_out, "output folder")->required();

  std::string json_out, sheet_out;
  std::vector<std::string> recap_files, show_keys;
  auto* corpus_stats = corpus->add_subcommand(
      "stats", "Caption quality of each source (alt-text, human long/short, recaption JSONL "
               "files) against ground truth, and its overlap with the evaluation prompts");
  corpus_stats->add_option("dir", corpus_dir, "corpus folder (from corpus make)")->required();
  corpus_stats->add_option("--recap", recap_files,
                           "extra caption sources: JSONL files of {\"key\", \"caption\"} lines "
                           "(e.g. NAME.recap.jsonl sidecars)");
  corpus_stats->add_option("--json", json_out, "also write the numbers as JSON here");

  auto* corpus_show = corpus->add_subcommand(
      "show", "Contact sheet PNG of samples with their alt-text and human captions");
  corpus_show->add_option("dir", corpus_dir, "corpus folder")->required();
  corpus_show->add_option("keys", show_keys, "sample keys, e.g. web-000000000")->required();
  corpus_show->add_option("--out", sheet_out, "PNG to write")->required();

  auto* tokenizer = app.add_subcommand("tokenizer", "The sentencepiece tokenizer");
  tokenizer->require_subcommand(1);
  std::string tokenizer_out;
  auto* tokenizer_train = tokenizer->add_subcommand(
      "train", "Train on a corpus's alt-text and human-captioned set ([tokenizer] keys of the "
               "corpus's config, overridable with --set)");
  tokenizer_train->add_option("--corpus", corpus_dir, "corpus folder (from corpus make)")
      ->required();
  tokenizer_train->add_option("--out", tokenizer_out, "model file to write")->required();
  add_set_option(tokenizer_train);

  auto* evaluator = app.add_subcommand("evaluator", "The detector that judges generated images");
  evaluator->require_subcommand(1);
  std::string evaluator_out;
  auto* evaluator_train = evaluator->add_subcommand(
      "train", "Train on fresh world renders, measure accuracy on held-out renders, and fail "
               "unless it reaches 98% exact count, shape and colour (the gate)");
  add_config_options(evaluator_train);
  evaluator_train->add_option("--out", evaluator_out, "output folder (resumes from it)")
      ->required();

  std::string tokenizer_model, train_out;
  auto add_training_options = [&](CLI::App* cmd) {
    cmd->add_option("--corpus", corpus_dir, "corpus folder (from corpus make)")->required();
    cmd->add_option("--tokenizer", tokenizer_model, "tokenizer model (from tokenizer train)")
        ->required();
    cmd->add_option("--out", train_out, "output folder (a killed run resumes from it)")
        ->required();
    add_set_option(cmd);
  };
  auto* captioner = app.add_subcommand("captioner", "RECAP step 1: the image captioner");
  captioner->require_subcommand(1);
  auto* captioner_train = captioner->add_subcommand(
      "train", "Pre-train on the web corpus's alt-text, then fine-tune on the human-captioned "
               "set with <short>/<long> style tokens ([captioner] keys)");
  add_training_options(captioner_train);

  auto* t2i = app.add_subcommand("t2i", "RECAP step 3: the text-to-image diffusion model");
  t2i->require_subcommand(1);
  auto* t2i_train = t2i->add_subcommand(
      "train", "Train text encoder + UNet on the web corpus with one caption source "
               "(t2i.captions: alt, human, human-short, recap, recap-mix) ([t2i] keys)");
  add_training_options(t2i_train);
  t2i_train->add_option("--recap", recap_files,
                        "recaption JSONL files ({\"key\", \"caption\", \"kind\"} lines) for "
                        "the recap arms");

  CLI11_PARSE(app, argc, argv);

  try {
    if (version->parsed()) {
      print_version(recap::init_runtime(opts, /*check_blas=*/true));
    } else if (inspect->parsed()) {
      recap::init_runtime(opts, false);
      fmt::print("{}", recap::describe_weights(weights_file));
    } else if (show->parsed()) {
      recap::init_runtime(opts, false);
      fmt::print("{}", load_config(preset).to_toml());
    } else if (corpus_make->parsed()) {
      auto rt = recap::init_runtime(opts, false);
      recap::corpus::make_corpus(load_config(preset), corpus_out, rt.threads);
      fmt::print("corpus written to {}\n", corpus_out);
    } else if (corpus_stats->parsed()) {
      recap::init_runtime(opts, false);
      std::vector<std::filesystem::path> sources(recap_files.begin(), recap_files.end());
      auto stats = recap::corpus::corpus_stats(corpus_dir, sources);
      fmt::print("{}", recap::corpus::format_stats_table(stats));
      if (!json_out.empty())
        recap::write_file_atomic(json_out, recap::corpus::to_json(stats).dump(2) + "\n");
    } else if (corpus_show->parsed()) {
      recap::init_runtime(opts, false);
      recap::corpus::write_contact_sheet(corpus_dir, show_keys, sheet_out);
      fmt::print("contact sheet written to {}\n", sheet_out);
    } else if (tokenizer_train->parsed()) {
      recap::init_runtime(opts, false);
      auto config = load_corpus_config();
      auto r = recap::corpus::train_corpus_tokenizer(
          corpus_dir, tokenizer_out, recap::corpus::tokenizer_options(config));
      fmt::print("tokenizer with {} pieces trained on {} captions ({} skipped) written to {}\n",
                 r.vocab_size, r.texts, r.skipped, tokenizer_out);
    } else if (evaluator_train->parsed()) {
      recap::init_runtime(opts, true);
      Config config = load_config(preset);
      auto accuracy = recap::stages::train_evaluator(recap::world_settings(config),
                                                     recap::evaluator_settings(config),
                                                     evaluator_out);
      fmt::print("{}\n", recap::stages::to_json(accuracy).dump(2));
      recap::check_evaluator_gate(config, accuracy);
      fmt::print("evaluator written to {}\n", evaluator_out);
    } else if (captioner_train->parsed()) {
      auto rt = recap::init_runtime(opts, true);
      auto config = load_corpus_config();
      auto r = recap::stages::train_captioner(corpus_dir, tokenizer_model, train_out, config,
                                              rt.threads);
      fmt::print("captioner: pre-trained {} steps (loss {:.4f}), fine-tuned {} steps (loss "
                 "{:.4f}); written to {}\n",
                 r.pretrain.steps, r.pretrain.last_loss, r.finetune.steps, r.finetune.last_loss,
                 train_out);
    } else if (t2i_train->parsed()) {
      auto rt = recap::init_runtime(opts, true);
      auto config = load_corpus_config();
      std::vector<std::filesystem::path> recaps(recap_files.begin(), recap_files.end());
      auto r = recap::stages::train_t2i(corpus_dir, tokenizer_model, recaps, train_out, config,
                                        rt.threads);
      fmt::print("t2i: {} steps (loss {:.4f}); captions used {}, fell back {}, skipped {}; "
                 "weights {}\n",
                 r.steps, r.last_loss, r.captions.used, r.captions.fell_back, r.captions.skipped,
                 r.weights.string());
    } else if (keys->parsed()) {
      fmt::print("{}", recap::describe_config_schema());
    }
  } catch (const recap::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 0;
}
