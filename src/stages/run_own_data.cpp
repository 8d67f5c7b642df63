#include "core/torch_pch.h"
#include "stages/run_own_data.h"

#include <algorithm>
#include <functional>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/run_dir.h"
#include "stages/caption_viewer.h"
#include "stages/captioner_train.h"
#include "stages/human_set.h"
#include "stages/recaption.h"
#include "stages/sample.h"
#include "stages/settings.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"

namespace recap::stages {

namespace {

constexpr uint64_t kOwnSampleStream = 0x4f574e53414dull;  // "OWNSAM": samples' seeds

// What a stage of the own-data plan decides its output by, and how it runs.
struct OwnStage {
  StageSpec spec;
  std::function<void(StageContext&)> body;
};

// A stage of the world's experiment that does not run here, and why.
struct OwnSkip {
  std::string stage, reason;
};

nlohmann::json own_sections(const Config& config, std::initializer_list<const char*> names) {
  const auto all = config.to_json();
  nlohmann::json out = nlohmann::json::object();
  for (const char* name : names) out[name] = all.value(name, nlohmann::json::object());
  out["seed"] = config.get_int("run.seed");
  return out;
}

// The caption mix each arm trains with, over the run's recaption folders.
CaptionMix own_arm_mix(const std::string& arm, const RunLayout& layout) {
  if (arm == "alt") return parse_caption_mix({}, "original=1", false);
  const std::string long_source = "long=" + layout.recaption("long").string();
  if (arm == "recap") return parse_caption_mix({long_source}, "long=1", false);
  return parse_caption_mix({long_source, "short=" + layout.recaption("short").string()},
                           "long=0.5,short=0.5", false);
}

std::vector<OwnSkip> own_skips(const Config& config, const std::vector<std::string>& arms) {
  std::vector<OwnSkip> out = {
      {"corpus", "your images are the corpus (own.images)"},
      {"evaluator",
       "trained on the world's renders and their true scenes; it judges world "
       "prompts only"},
      {"vision",
       "the captioner's pre-trained vision encoder is a detector trained on world "
       "renders; it starts from scratch here (captioner.vision sets one)"},
      {"caption_quality",
       "scores captions against each image's true scene, which only the "
       "world has"},
      {"eval/ceiling, eval/ARM",
       "prompt following is the world evaluator's detections against "
       "each prompt's target, FID/KID against the world's eval "
       "renders; look at samples-ARM instead"},
  };
  if (config.get_bool("run.judge_clip"))
    out.push_back({"judge-clip", "trained on fresh world renders"});
  if (config.get_int("run.checkpoint_evals") > 0)
    out.push_back({"checkpoints-ARM", "scored by the world's evaluator"});
  if (config.get_int("run.base_steps") > 0)
    out.push_back({"t2i-base",
                   "run.base_steps pre-trains on the world's web split; every arm "
                   "starts from random weights here"});
  if (config.get_string("own.prompts").empty())
    for (const auto& arm : arms) out.push_back({"samples-" + arm, "own.prompts is empty"});
  return out;
}

// Everything wrong with the own.* settings at once, before the first stage.
void check_own_config(const Config& config, const std::vector<std::string>& arms) {
  std::vector<std::string> problems;
  std::vector<fs::path> paths(config.get_strings("own.images").begin(),
                              config.get_strings("own.images").end());
  for (const char* key : {"own.captions", "own.prompts"})
    if (!config.get_string(key).empty()) paths.emplace_back(config.get_string(key));
  for (const auto& path : paths)
    if (!fs::exists(path))
      problems.push_back(fmt::format("{}: no such file or folder", path.string()));
  if (config.get_string("own.captions").empty())
    problems.push_back("own.captions is empty: the captioner fine-tunes on your human set");
  for (const auto& arm : arms)
    if (arm != "alt" && arm != "recap" && arm != "recap-mix")
      problems.push_back(
          fmt::format("run.arms: '{}' trains on an exact human caption of every "
                      "image, which only the world has (alt, recap, recap-mix "
                      "run on your own data)",
                      arm));
  if (config.get_string("t2i.space") == "latent" && config.get_string("t2i.autoencoder").empty())
    problems.push_back(
        "t2i.space = latent needs t2i.autoencoder (`recap run` trains one on the "
        "world's corpus only): set t2i.space = \"pixel\" or name an autoencoder");
  if (problems.empty()) return;
  std::string text = "recap run on your own data (own.images):";
  for (const auto& p : problems) text += "\n  " + p;
  throw Error(text);
}

// What the plan's stages read; each body holds it (the plan outlives the function that made
// it when `recap status` lists the stage names).
struct OwnInputs {
  Config config;
  RunLayout layout;
  std::vector<fs::path> sources, inputs;  // inputs: the sources and the human set
  fs::path human, prompts;
  int threads = 1;
};

// The stages in run order: tokenizer, captioner, recaption-long (and -short for recap-mix),
// then per arm t2i-ARM and, with own.prompts, samples-ARM.
std::vector<OwnStage> own_plan(const std::shared_ptr<const OwnInputs>& in,
                               const std::vector<std::string>& arms) {
  const Config& c = in->config;
  std::vector<OwnStage> stages;
  stages.push_back({{"tokenizer", own_sections(c, {"tokenizer", "data"}), {}, in->inputs},
                    [in](StageContext& ctx) {
                      const auto read = read_limits(in->config);
                      const auto set = read_human_set(in->human, read.caption);
                      const fs::path out = in->layout.tokenizer();
                      fs::create_directories(out.parent_path());
                      corpus::train_source_tokenizer(in->sources, &set, out,
                                                     corpus::tokenizer_options(in->config), read);
                      ctx.output(out);
                    }});
  stages.push_back(
      {{"captioner", own_sections(c, {"captioner", "data"}), {"tokenizer"}, in->inputs},
       [in](StageContext& ctx) {
         train_captioner_on_sources(in->sources, in->human, in->layout.tokenizer(),
                                    in->layout.captioner(), in->config, in->threads);
         ctx.output(in->layout.captioner_stage1());
         ctx.output(in->layout.captioner_final());
       }});
  const bool mix = std::find(arms.begin(), arms.end(), "recap-mix") != arms.end();
  for (const std::string kind : {"long", "short"}) {
    if (kind == "short" && !mix) continue;
    stages.push_back(
        {{"recaption-" + kind, own_sections(c, {"recaption", "data"}), {"captioner"}, in->inputs},
         [in, kind](StageContext& ctx) {
           auto o = recaption_settings(in->config);
           o.style = parse_caption_kind(kind);
           throw_if_broken(recaption_shards(in->layout.captioner_final(), in->layout.tokenizer(),
                                            in->sources, in->layout.recaption(kind), o));
           ctx.output(in->layout.recaption(kind));
         }});
  }
  for (const auto& arm : arms) {
    std::vector<std::string> depends = {"tokenizer"};
    if (arm != "alt") depends.push_back("recaption-long");
    if (arm == "recap-mix") depends.push_back("recaption-short");
    auto params = own_sections(c, {"t2i", "text_encoder", "unet", "data"});
    params["arm"] = arm;
    stages.push_back({{"t2i-" + arm, params, depends, in->inputs}, [in, arm](StageContext& ctx) {
                        const T2iData data{{}, in->sources, {}, own_arm_mix(arm, in->layout)};
                        train_t2i(data, in->layout.tokenizer(), in->layout.t2i(arm), in->config,
                                  in->threads);
                        ctx.output(in->layout.t2i_weights(arm));
                      }});
    if (in->prompts.empty()) continue;
    const nlohmann::json sample_params = {{"images_per_prompt", c.get_int("run.images_per_prompt")},
                                          {"seed", c.get_int("run.seed")}};
    stages.push_back({{"samples-" + arm, sample_params, {"t2i-" + arm}, {in->prompts}},
                      [in, arm](StageContext& ctx) {
                        SampleRunOptions o;
                        o.images_per_prompt =
                            static_cast<int>(in->config.get_int("run.images_per_prompt"));
                        o.seed = derive_seed(static_cast<uint64_t>(in->config.get_int("run.seed")),
                                             kOwnSampleStream);
                        sample_to_folder(in->layout.t2i_weights(arm), in->layout.tokenizer(),
                                         read_prompts(in->prompts), in->layout.samples(arm), o);
                        ctx.output(in->layout.samples(arm));
                      }});
  }
  return stages;
}

}  // namespace

bool is_own_data_run(const Config& config) { return !config.get_strings("own.images").empty(); }

std::vector<std::string> own_stage_names(const Config& config) {
  auto in = std::make_shared<OwnInputs>();
  in->config = config;
  in->prompts = config.get_string("own.prompts");
  std::vector<std::string> names;
  for (const auto& stage : own_plan(in, run_arms(config))) names.push_back(stage.spec.name);
  return names;
}

RunResult run_own_data(const Config& config, const fs::path& run_dir, const RunOptions& options) {
  Config effective = config;
  if (!options.arms.empty())
    effective.set("run.arms", nlohmann::json(options.arms).dump(), "--arms");
  const auto arms = run_arms(effective);
  check_own_config(effective, arms);

  const RunLayout layout{fs::absolute(run_dir)};
  RunDir run(layout.root, effective);
  const fs::path log = layout.root / "run.log";
  add_log_file(log.string());

  const auto& images = effective.get_strings("own.images");
  auto in = std::make_shared<OwnInputs>();
  in->config = effective;
  in->layout = layout;
  in->sources = data::expand_sources({images.begin(), images.end()});
  in->human = effective.get_string("own.captions");
  in->prompts = effective.get_string("own.prompts");
  in->inputs = in->sources;
  in->inputs.push_back(in->human);
  in->threads = options.threads;
  const auto& sources = in->sources;
  const fs::path& human = in->human;
  const fs::path& prompts = in->prompts;
  const bool mix = std::find(arms.begin(), arms.end(), "recap-mix") != arms.end();
  auto stages = own_plan(in, arms);

  const auto skips = own_skips(effective, arms);
  for (const auto& skip : skips) spdlog::info("skipped {}: {}", skip.stage, skip.reason);
  for (size_t i = 0; i < stages.size(); ++i) {
    auto& stage = stages[i];
    spdlog::info("[{}/{}] stage {}", i + 1, stages.size(), stage.spec.name);
    try {
      run.run_stage(stage.spec, stage.body);
    } catch (const std::exception& e) {
      throw Error(
          fmt::format("stage '{}' failed: {}\n  log: {}\n  fix the cause and rerun the "
                      "same command: finished stages are kept",
                      stage.spec.name, e.what(), log.string()));
    }
  }

  // The report: what ran, what did not and why, and a page of the recaptions.
  fs::create_directories(layout.report());
  std::vector<NamedCaptions> captions;
  for (const auto& entry : own_arm_mix(mix ? "recap-mix" : "recap", layout).entries)
    captions.push_back(entry.source);
  ViewerOptions view;
  view.title = "recap run " + layout.root.filename().string() + ": your images, recaptioned";
  write_caption_viewer(sources, read_limits(effective), captions, view,
                       layout.report() / "view.html");
  std::string table = fmt::format("{:<24} {}\n", "stage", "status");
  for (const auto& stage : stages)
    table += fmt::format("{:<24} {}\n", stage.spec.name, run.stage_status(stage.spec.name));
  for (const auto& skip : skips)
    table += fmt::format("{:<24} skipped: {}\n", skip.stage, skip.reason);
  std::string md = fmt::format(
      "# recap run on your own data\n\nSources: {}. Human set: {}. Arms: {}.\n\n"
      "The recaptioned images: [view.html](view.html).\n\n```\n{}```\n",
      fmt::join(images, ", "), human.string(), fmt::join(arms, ", "), table);
  if (!prompts.empty())
    for (const auto& arm : arms)
      md += fmt::format("\n{}: samples of {} in `{}` (images.jsonl lists each with its prompt).\n",
                        arm, prompts.string(), layout.samples(arm).string());
  write_file_atomic(layout.report() / "report.md", md);
  return {layout.report() / "view.html", layout.report() / "report.md", table, {}};
}

}  // namespace recap::stages
