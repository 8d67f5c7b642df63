// corpus make|stats|show and tokenizer train: the embedded world's data, and the vocabulary of
// it or of the user's own captions.
#include <optional>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/image_sources.h"
#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "stages/corpus.h"
#include "stages/corpus_show.h"
#include "stages/corpus_stats.h"
#include "stages/human_set.h"
#include "stages/settings.h"
#include "stages/tokenizer_train.h"

namespace recap::cli {

void add_corpus_commands(Cli& cli) {
  auto* corpus = cli.group("corpus", "The embedded world's corpus: make, stats, show");

  auto out = std::make_shared<std::string>();
  auto* make = corpus->add_subcommand(
      "make", "Render the web corpus (alt-text), the human-captioned set, eval scenes and "
              "prompt suites into WebDataset shards; resumable, byte-identical per seed");
  cli.add_config_options(make);
  make->add_option("--out", *out, "output folder")->required();
  cli.on_run(make, [&cli, out] {
    const auto lock = DirLock::folder(*out);
    auto rt = init_runtime(cli.runtime, false);
    corpus::make_corpus(cli.load_config(), *out, rt.threads);
    fmt::print("corpus written to {}\n", *out);
  });

  struct StatsArgs {
    std::string dir, json;
    std::vector<std::string> sources;
  };
  auto stats_args = std::make_shared<StatsArgs>();
  auto* stats = corpus->add_subcommand(
      "stats", "Caption quality of each source (alt-text, human long/short, recaption JSONL "
               "files) against ground truth, and its overlap with the evaluation prompts");
  stats->add_option("dir", stats_args->dir, "corpus folder (from corpus make)")->required();
  stats->add_option("--recap", stats_args->sources,
                    "extra caption sources: JSONL files of {\"key\", \"caption\"} lines "
                    "(e.g. NAME.recap.jsonl sidecars)");
  stats->add_option("--json", stats_args->json, "also write the numbers as JSON here");
  cli.on_run(stats, [&cli, stats_args] {
    init_runtime(cli.runtime, false);
    std::vector<fs::path> sources(stats_args->sources.begin(), stats_args->sources.end());
    auto result = corpus::corpus_stats(stats_args->dir, sources);
    fmt::print("{}", corpus::format_stats_table(result));
    if (!stats_args->json.empty())
      write_file_atomic(stats_args->json, corpus::to_json(result).dump(2) + "\n");
  });

  struct ShowArgs {
    std::string dir, out;
    std::vector<std::string> keys;
  };
  auto show_args = std::make_shared<ShowArgs>();
  auto* show = corpus->add_subcommand(
      "show", "Contact sheet PNG of samples with their alt-text and human captions");
  show->add_option("dir", show_args->dir, "corpus folder")->required();
  show->add_option("keys", show_args->keys, "sample keys, e.g. web-000000000")->required();
  show->add_option("--out", show_args->out, "PNG to write")->required();
  cli.on_run(show, [&cli, show_args] {
    init_runtime(cli.runtime, false);
    corpus::write_contact_sheet(show_args->dir, show_args->keys, show_args->out);
    fmt::print("contact sheet written to {}\n", show_args->out);
  });

  auto* tokenizer = cli.group("tokenizer", "The sentencepiece tokenizer");
  struct TokenizerArgs {
    std::string corpus, out, captions;
    ImageSourceArgs sources;
  };
  auto tok_args = std::make_shared<TokenizerArgs>();
  auto* train = tokenizer->add_subcommand(
      "train", "Train on the alt-text and human captions of a corpus (--corpus, its config's "
               "[tokenizer] keys) or of your own data (--images [--captions], the preset's), "
               "overridable with --set");
  auto* corpus_option =
      train->add_option("--corpus", tok_args->corpus, "corpus folder (from corpus make)");
  auto* images = add_image_source_options(train, tok_args->sources);
  train
      ->add_option("--captions", tok_args->captions,
                   "with --images: the human caption set (human.jsonl), trained on too")
      ->type_name("FILE")
      ->needs(images);
  corpus_option->excludes(images);
  train->add_option("--out", tok_args->out, "model file to write")->required();
  cli.add_config_options(train);
  cli.on_run(train, [&cli, tok_args] {
    const auto lock = DirLock::file(tok_args->out);
    init_runtime(cli.runtime, false);
    if (tok_args->corpus.empty() == tok_args->sources.images.empty())
      throw Error("tokenizer train: give --corpus or --images");
    if (!tok_args->corpus.empty() && cli.preset_given())
      throw Error("tokenizer train: --corpus uses the corpus's config; --preset is for --images");
    corpus::TokenizerTrainResult r;
    if (!tok_args->corpus.empty()) {
      auto config = cli.load_corpus_config(tok_args->corpus);
      r = corpus::train_corpus_tokenizer(tok_args->corpus, tok_args->out,
                                         corpus::tokenizer_options(config));
    } else {
      auto config = cli.load_config();
      const auto sources = image_sources(tok_args->sources, config);
      const auto read = read_limits(config);
      std::optional<stages::HumanSet> human;
      if (!tok_args->captions.empty())
        human = stages::read_human_set(tok_args->captions, read.caption);
      r = corpus::train_source_tokenizer(sources, human ? &*human : nullptr, tok_args->out,
                                         corpus::tokenizer_options(config), read);
    }
    fmt::print("tokenizer with {} pieces trained on {} captions ({} skipped) written to {}\n",
               r.vocab_size, r.texts, r.skipped, tok_args->out);
  });
}

}  // namespace recap::cli
