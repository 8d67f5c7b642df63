#include "core/torch_pch.h"
#include "stages/run_experiment.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/run_dir.h"
#include "eval/image_results.h"
#include "stages/autoencoder_train.h"
#include "stages/caption_eval.h"
#include "stages/captioner_train.h"
#include "stages/clip_train.h"
#include "stages/corpus.h"
#include "stages/evaluate.h"
#include "stages/model_settings.h"
#include "stages/recaption.h"
#include "stages/report.h"
#include "stages/run_own_data.h"
#include "stages/sample.h"
#include "stages/settings.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"
#include "text/tokenizer.h"
#include "world/prompts.h"

namespace recap::stages {

namespace {

constexpr uint64_t kSampleStream = 0x53414d504c45ull;  // "SAMPLE": evaluation sample seeds
constexpr uint64_t kGenevalSampleStream = 0x47454e4556ull;  // "GENEV": below the sample stream

// A stage of the plan: what decides its output (spec) and how to produce it (body).
struct PlannedStage {
  StageSpec spec;
  std::function<void(StageContext&)> body;
};

nlohmann::json sections(const Config& config, std::initializer_list<const char*> names) {
  auto all = config.to_json();
  nlohmann::json out = nlohmann::json::object();
  for (const char* name : names) out[name] = all.value(name, nlohmann::json::object());
  out["seed"] = config.get_int("run.seed");
  return out;
}

bool has_arm(const std::vector<std::string>& arms, std::string_view arm) {
  return std::find(arms.begin(), arms.end(), arm) != arms.end();
}

std::vector<fs::path> sidecars(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().ends_with(".recap.jsonl")) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Samples every evaluation suite's prompts from `model` into out_dir/SUITE/, then lists them
// all in out_dir/images.jsonl ("file": "SUITE/NNNNNN.png") so the evaluation scores the suites
// together (and per suite). Every caller passes the same seed, so grids line up across arms.
void sample_suites(const fs::path& model, const fs::path& tokenizer, const fs::path& corpus,
                   const fs::path& out_dir, const SampleRunOptions& options) {
  std::string merged;
  for (world::Suite suite : world::all_suites()) {
    const std::string name(world::suite_name(suite));
    sample_to_folder(model, tokenizer, read_prompts(corpus::prompts_path(corpus, name)),
                     out_dir / name, options);
    std::istringstream lines(read_file(out_dir / name / "images.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      auto record = nlohmann::json::parse(line);
      record["file"] = name + "/" + record.at("file").get<std::string>();
      merged += record.dump() + "\n";
    }
  }
  write_file_atomic(out_dir / "images.jsonl", merged);
}

SampleRunOptions sample_run_options(const Config& config) {
  SampleRunOptions options;
  options.images_per_prompt = static_cast<int>(config.get_int("run.images_per_prompt"));
  options.seed = derive_seed(static_cast<uint64_t>(config.get_int("run.seed")), kSampleStream);
  return options;
}

// The run's GenEval prompts (corpus_geneval_prompts: eval.geneval_per_task of each task) in
// GenEval's layout in out_dir (samples-ARM/geneval/), where GenEval's own scripts read them
// too, with seeds of their own. Kept apart from the suites' images.jsonl: they count only
// towards the GenEval-style scores (evaluate_arm), never the suite metrics. Nothing when the
// run evaluates no GenEval prompts.
void sample_geneval(const fs::path& model, const fs::path& tokenizer, const fs::path& corpus,
                    const fs::path& out_dir, const Config& config) {
  const auto prompts = corpus_geneval_prompts(
      corpus, static_cast<int>(config.get_int("eval.geneval_per_task")));
  if (prompts.empty()) return;
  auto options = sample_run_options(config);
  options.layout = SampleLayout::Geneval;
  options.seed = derive_seed(options.seed, kGenevalSampleStream);
  sample_to_folder(model, tokenizer, prompts, out_dir, options);
}

// An arm's evaluation: its suites (samples-ARM/images.jsonl) with every metric, and its GenEval
// folder, when sample_geneval wrote one, by GenEval's rules alone (no FID or CLIP score on it).
EvalReport evaluate_arm(const fs::path& samples, const RunLayout& layout,
                        EvaluateOptions options) {
  auto report = evaluate_images(samples, layout.evaluator(), layout.corpus(), options);
  const fs::path geneval = samples / kGenevalSuite;
  if (fs::exists(geneval / "images.jsonl")) {
    options.fid = false;
    options.clip.reset();
    auto judged = evaluate_images(geneval, layout.evaluator(), layout.corpus(), options);
    report.geneval = std::move(judged.geneval);
    report.geneval_lines = std::move(judged.geneval_lines);
  }
  return report;
}

// NAME.json, NAME.images.jsonl and, with GenEval images, NAME.geneval.jsonl in eval/, each
// declared as the stage's output.
void write_eval_outputs(const EvalReport& report, const fs::path& summary, StageContext& ctx) {
  write_file_atomic(summary, to_json(report).dump(2) + "\n");
  ctx.output(summary);
  // Image by image, for the report's paired comparison of arms.
  ctx.output(eval::write_image_results_beside(summary, report.per_image));
  if (const auto geneval = write_geneval_results_beside(summary, report)) ctx.output(*geneval);
}

// The kept intermediate checkpoints of an arm's training (the final step excluded), at most
// the `limit` latest. A damaged one is left out with a warning naming its problem: its step
// is missing from the curve rather than drawn from corrupt weights.
std::vector<fs::path> intermediate_checkpoints(const RunLayout& layout, const std::string& arm,
                                               int64_t final_step, int64_t limit) {
  std::vector<fs::path> out;
  for (const auto& c : Checkpointer(layout.t2i(arm) / "train" / "checkpoints", 1).all()) {
    if (Checkpointer::step_of(c) >= final_step) continue;
    try {
      Checkpointer::verify(c);
      out.push_back(c);
    } catch (const Error& e) {
      spdlog::warn("checkpoints-{}: skipping {}: {}", arm, c.string(), e.what());
    }
  }
  if (static_cast<int64_t>(out.size()) > limit) out.erase(out.begin(), out.end() - limit);
  return out;
}

std::vector<PlannedStage> plan(const Config& config, const RunLayout& layout,
                               const std::vector<std::string>& arms, int threads) {
  std::vector<PlannedStage> stages;
  const fs::path corpus = layout.corpus(), tokenizer = layout.tokenizer();

  stages.push_back({{"corpus", sections(config, {"world", "alt", "corpus"}), {}, {}},
                    [&config, corpus, threads](StageContext& ctx) {
                      corpus::make_corpus(config, corpus, threads);
                      ctx.output(corpus);
                    }});
  stages.push_back({{"tokenizer", sections(config, {"tokenizer"}), {"corpus"}, {}},
                    [&config, corpus, tokenizer](StageContext& ctx) {
                      corpus::train_corpus_tokenizer(corpus, tokenizer,
                                                     corpus::tokenizer_options(config));
                      ctx.output(tokenizer);
                    }});
  stages.push_back({{"evaluator", sections(config, {"world", "evaluator"}), {}, {}},
                    [&config, layout](StageContext& ctx) {
                      auto accuracy = train_evaluator(world_settings(config),
                                                      evaluator_settings(config),
                                                      layout.evaluator());
                      check_evaluator_gate(config, accuracy);
                      ctx.output(layout.evaluator() / "evaluator.safetensors");
                      ctx.output(layout.evaluator() / "evaluator_accuracy.json");
                    }});
  // The captioner's vision encoder starts from a detector pre-trained on renders, as PaLI's
  // starts from a pre-trained ViT; it is its own model (another seed), not the judge.
  std::vector<std::string> captioner_inputs = {"corpus", "tokenizer"};
  const bool own_vision = config.get_string("captioner.vision").empty();
  if (own_vision) {
    stages.push_back({{"vision", sections(config, {"world", "evaluator"}), {}, {}},
                      [&config, layout](StageContext& ctx) {
                        auto o = evaluator_settings(config);
                        o.seed = derive_seed(o.seed, 0x715'1000);
                        train_evaluator(world_settings(config), o, layout.vision());
                        ctx.output(layout.vision() / "evaluator.safetensors");
                      }});
    captioner_inputs.push_back("vision");
  }
  stages.push_back({{"captioner", sections(config, {"captioner"}), captioner_inputs, {}},
                    [&config, layout, corpus, tokenizer, threads, own_vision](StageContext& ctx) {
                      Config with_vision = config;
                      if (own_vision)
                        with_vision.set("captioner.vision",
                                        nlohmann::json(layout.vision().string()).dump(), "run");
                      train_captioner(corpus, tokenizer, layout.captioner(), with_vision,
                                      threads);
                      ctx.output(layout.captioner_stage1());
                      ctx.output(layout.captioner_final());
                    }});

  // Short recaptions only feed the recap-mix arm; caption quality decodes its own sample.
  std::vector<std::string> kinds = {"long"};
  if (has_arm(arms, "recap-mix")) kinds.push_back("short");
  for (const auto& kind : kinds) {
    stages.push_back(
        {{"recaption-" + kind, sections(config, {"recaption"}), {"captioner"}, {}},
         [&config, layout, corpus, tokenizer, kind](StageContext& ctx) {
           auto options = recaption_settings(config);
           options.style = kind == "long" ? models::CaptionStyle::kLong
                                          : models::CaptionStyle::kShort;
           throw_if_broken(recaption_shards(layout.captioner_final(), tokenizer,
                                            corpus::list_shards(corpus, corpus::Split::Web),
                                            layout.recaption(kind), options));
           ctx.output(layout.recaption(kind));
         }});
  }

  stages.push_back(
      {{"caption_quality", sections(config, {"recaption"}), {"captioner"}, {}},
       [&config, layout, corpus, tokenizer](StageContext& ctx) {
         const std::vector<CaptionModel> models = {
             {"stage1", layout.captioner_stage1(), models::CaptionStyle::kShort},
             {"recap-short", layout.captioner_final(), models::CaptionStyle::kShort},
             {"recap-long", layout.captioner_final(), models::CaptionStyle::kLong}};
         evaluate_captioners(corpus, tokenizer, models, layout.caption_quality(),
                             config.get_int("recaption.eval_samples"),
                             recaption_settings(config));
         ctx.output(layout.caption_quality_json());
       }});

  // The judge CLIP: trained on renders of a seed stream of its own, never on the experiment's
  // images or captions; every arm's evaluation scores its images with it.
  const bool judge_clip = config.get_bool("run.judge_clip");
  if (judge_clip)
    stages.push_back({{"judge-clip", sections(config, {"clip", "text_encoder"}),
                       {"corpus", "tokenizer"}, {}},
                      [&config, layout, corpus, tokenizer, threads](StageContext& ctx) {
                        Config judge = config;
                        judge.set("clip.data", "renders", "the judge CLIP");
                        train_clip(corpus, tokenizer, {}, layout.judge_clip(), judge, threads);
                        ctx.output(clip_weights_path(layout.judge_clip()));
                        ctx.output(layout.judge_clip() / "clip.json");
                        ctx.output(layout.judge_clip() / "tokenizer.model");
                      }});
  // What an arm's evaluation reads: the evaluator, the corpus and, when trained, the judge.
  const auto eval_options = [&config, layout, judge_clip] {
    auto options = evaluate_settings(config);
    if (judge_clip) options.clip = layout.judge_clip();
    return options;
  };
  const auto eval_inputs = [judge_clip](std::vector<std::string> inputs) {
    if (judge_clip) inputs.push_back("judge-clip");
    return inputs;
  };
  const auto eval_params = sections(config, {"eval"});
  stages.push_back({{"eval/ceiling", eval_params, eval_inputs({"evaluator", "corpus"}), {}},
                    [layout, eval_options](StageContext& ctx) {
                      auto report = evaluate_reference(layout.evaluator(), layout.corpus(),
                                                       eval_options());
                      report.name = "ceiling";
                      write_eval_outputs(report, layout.eval_json("ceiling"), ctx);
                    }});

  // Latent space: one autoencoder for every arm, trained on the web images (never their
  // captions), checked by the evaluator on held-out renders.
  const bool latent = config.get_string("t2i.space") == "latent";
  const bool own_autoencoder = latent && config.get_string("t2i.autoencoder").empty();
  // Its perceptual term looks through the captioner's vision encoder, never the judge.
  const bool perceptual_vision = config.get_float("autoencoder.perceptual_weight") > 0 &&
                                 config.get_string("autoencoder.perceptual_encoder").empty();
  const auto vision_encoder = [&config, layout, own_vision] {
    return own_vision ? nlohmann::json(layout.vision().string()).dump()
                      : nlohmann::json(config.get_string("captioner.vision")).dump();
  };
  if (own_autoencoder) {
    std::vector<std::string> inputs = {"corpus", "evaluator"};
    if (perceptual_vision && own_vision) inputs.push_back("vision");
    stages.push_back({{"autoencoder", sections(config, {"autoencoder"}), inputs, {}},
                      [&config, layout, corpus, threads, perceptual_vision,
                       vision_encoder](StageContext& ctx) {
                        Config with_judge = config;
                        if (config.get_string("autoencoder.evaluator").empty())
                          with_judge.set("autoencoder.evaluator",
                                         nlohmann::json(layout.evaluator().string()).dump(),
                                         "the run");
                        if (perceptual_vision)
                          with_judge.set("autoencoder.perceptual_encoder", vision_encoder(),
                                         "the run");
                        train_autoencoder(corpus, layout.autoencoder(), with_judge, threads);
                        ctx.output(autoencoder_weights_path(layout.autoencoder()));
                        ctx.output(layout.autoencoder_json());
                      }});
  }

  // What every text-to-image training of the run (the base and each arm) depends on, and
  // the run's own models it is pointed at. The evaluator judges the competence probe during
  // training (stages/t2i_train.h).
  std::vector<std::string> t2i_depends = {"corpus", "tokenizer", "evaluator"};
  if (own_autoencoder) t2i_depends.push_back("autoencoder");
  // REPA aligns the UNet with the captioner's pre-trained vision encoder (not the judge).
  const bool repa_vision = config.get_float("t2i.repa_weight") > 0 &&
                           config.get_string("t2i.repa_encoder").empty();
  if (repa_vision && own_vision) t2i_depends.push_back("vision");
  const int64_t base_steps = config.get_int("run.base_steps");
  // `arm` empty: the base model.
  auto t2i_config = [&config, layout, own_autoencoder, repa_vision, vision_encoder,
                     base_steps](const std::string& arm) {
    Config c = config;
    if (config.get_string("t2i.probe_evaluator").empty())
      c.set("t2i.probe_evaluator", nlohmann::json(layout.evaluator().string()).dump(), "the run");
    if (own_autoencoder)
      c.set("t2i.autoencoder", nlohmann::json(layout.autoencoder().string()).dump(), "the run");
    if (repa_vision) c.set("t2i.repa_encoder", vision_encoder(), "the run");
    if (arm.empty()) {
      c.set("t2i.captions", "alt", "the base model");
      c.set("t2i.steps", std::to_string(base_steps), "run.base_steps");
    } else {
      c.set("t2i.captions", arm, "run.arms");
      if (base_steps > 0) {
        // The base started its text encoder from t2i.text_encoder; the arm inherits it.
        c.set("t2i.init", nlohmann::json(layout.t2i_weights("base").string()).dump(),
              "run.base_steps");
        c.set("t2i.text_encoder", "\"\"", "run.base_steps");
      }
    }
    return c;
  };
  // The paper's design: one model pre-trained on the web's own alt-text (the LAION-trained
  // Stable Diffusion), fine-tuned by every arm for the same steps.
  if (base_steps > 0) {
    auto params = sections(config, {"t2i", "text_encoder", "unet"});
    params["base_steps"] = base_steps;
    stages.push_back({{"t2i-base", params, t2i_depends, {}},
                      [layout, corpus, tokenizer, threads, t2i_config](StageContext& ctx) {
                        train_t2i(corpus, tokenizer, {}, layout.t2i("base"),
                                  t2i_config(""), threads);
                        ctx.output(layout.t2i_weights("base"));
                      }});
  }

  for (const auto& arm : arms) {
    std::vector<std::string> depends = t2i_depends;
    if (base_steps > 0) depends.push_back("t2i-base");
    if (arm == "recap" || arm == "recap-mix") depends.push_back("recaption-long");
    if (arm == "recap-mix") depends.push_back("recaption-short");
    auto t2i_params = sections(config, {"t2i", "text_encoder", "unet"});
    t2i_params["arm"] = arm;
    t2i_params["base_steps"] = base_steps;
    stages.push_back(
        {{"t2i-" + arm, t2i_params, depends, {}},
         [layout, corpus, tokenizer, arm, threads, t2i_config](StageContext& ctx) {
           std::vector<fs::path> recaps;
           if (arm == "recap" || arm == "recap-mix") recaps = sidecars(layout.recaption("long"));
           if (arm == "recap-mix") {
             auto shorts = sidecars(layout.recaption("short"));
             recaps.insert(recaps.end(), shorts.begin(), shorts.end());
           }
           train_t2i(corpus, tokenizer, recaps, layout.t2i(arm), t2i_config(arm), threads);
           ctx.output(layout.t2i_weights(arm));
         }});

    nlohmann::json sample_params = {{"images_per_prompt", config.get_int("run.images_per_prompt")},
                                    {"geneval_per_task", config.get_int("eval.geneval_per_task")},
                                    {"seed", config.get_int("run.seed")}};
    stages.push_back({{"samples-" + arm, sample_params, {"t2i-" + arm}, {}},
                      [&config, layout, corpus, tokenizer, arm](StageContext& ctx) {
                        sample_suites(layout.t2i_weights(arm), tokenizer, corpus,
                                      layout.samples(arm), sample_run_options(config));
                        sample_geneval(layout.t2i_weights(arm), tokenizer, corpus,
                                       layout.samples(arm, kGenevalSuite), config);
                        ctx.output(layout.samples(arm));
                      }});

    stages.push_back({{"eval/" + arm, eval_params,
                       eval_inputs({"samples-" + arm, "evaluator", "corpus"}), {}},
                      [layout, arm, eval_options](StageContext& ctx) {
                        auto report = evaluate_arm(layout.samples(arm), layout, eval_options());
                        report.name = arm;
                        write_eval_outputs(report, layout.eval_json(arm), ctx);
                      }});
  }

  // Sample efficiency: the same suites, seeds and evaluation at the intermediate checkpoints
  // the trainer kept, after every arm's final results so those come first.
  const int64_t checkpoint_evals = config.get_int("run.checkpoint_evals");
  if (checkpoint_evals > 0) {
    for (const auto& arm : arms) {
      auto params = sections(config, {"eval", "checkpoint"});
      params["images_per_prompt"] = config.get_int("run.images_per_prompt");
      params["checkpoint_evals"] = checkpoint_evals;
      stages.push_back(
          {{"checkpoints-" + arm, params,
            eval_inputs({"t2i-" + arm, "evaluator", "corpus", "tokenizer"}), {}},
           [&config, layout, corpus, tokenizer, arm, checkpoint_evals,
            eval_options](StageContext& ctx) {
             const auto checkpoints = intermediate_checkpoints(
                 layout, arm, config.get_int("t2i.steps"), checkpoint_evals);
             if (checkpoints.empty())
               throw Error(fmt::format(
                   "run.checkpoint_evals = {}, but t2i-{} kept no undamaged checkpoint before "
                   "its last step: set checkpoint.every below t2i.steps ({}) and "
                   "checkpoint.keep_last above 1, or run.checkpoint_evals = 0",
                   checkpoint_evals, arm, config.get_int("t2i.steps")));
             // Step files of an earlier selection would join the plot: only this one's stay.
             fs::create_directories(layout.eval());
             for (const auto& entry : fs::directory_iterator(layout.eval()))
               if (entry.path().filename().string().starts_with(arm + "-step-"))
                 fs::remove(entry.path());
             const auto tok = text::Tokenizer::load(tokenizer);
             std::vector<int64_t> steps;
             for (const auto& checkpoint : checkpoints) {
               const int64_t step = Checkpointer::step_of(checkpoint);
               const fs::path dir = layout.checkpoint_samples(arm, step);
               fs::create_directories(dir);
               spdlog::info("checkpoints-{}: step {}", arm, step);
               export_t2i_checkpoint(layout.t2i_weights(arm), checkpoint, tok,
                                     dir / "t2i.safetensors");
               sample_suites(dir / "t2i.safetensors", tokenizer, corpus, dir,
                             sample_run_options(config));
               auto report =
                   evaluate_images(dir, layout.evaluator(), layout.corpus(), eval_options());
               report.name = fmt::format("{}-step-{}", arm, step);
               write_file_atomic(layout.eval_json(arm, step), to_json(report).dump(2) + "\n");
               ctx.output(layout.eval_json(arm, step));
               steps.push_back(step);
             }
             write_file_atomic(ctx.dir() / "steps.json", nlohmann::json(steps).dump() + "\n");
             ctx.output("steps.json");
           }});
    }
  }
  return stages;
}

std::string format_seconds(double s) {
  if (s < 60) return fmt::format("{:.1f} s", s);
  const long total = std::lround(s);  // whole seconds, so 239.6 s reads 4 min 00 s
  if (total < 3600) return fmt::format("{} min {:02} s", total / 60, total % 60);
  return fmt::format("{} h {:02} min", total / 3600, total % 3600 / 60);
}

}  // namespace

std::vector<std::string> run_arms(const Config& config) {
  static const std::set<std::string> known = {"alt",   "human",    "human-short", "human-mix",
                                              "recap", "recap-mix"};
  const auto& arms = config.get_strings("run.arms");
  if (arms.empty()) throw Error("run.arms is empty: name at least one arm (e.g. alt,recap)");
  std::set<std::string> seen;
  for (const auto& arm : arms) {
    if (!known.contains(arm))
      throw Error(fmt::format("run.arms: unknown arm '{}' (alt, recap, recap-mix, human, "
                              "human-short, human-mix)", arm));
    if (!seen.insert(arm).second)
      throw Error(fmt::format("run.arms: arm '{}' given twice", arm));
  }
  return arms;
}

RunResult run_experiment(const Config& config, const fs::path& run_dir,
                         const RunOptions& options) {
  Config effective = config;
  if (!options.arms.empty())
    effective.set("run.arms", nlohmann::json(options.arms).dump(), "--arms");
  const auto arms = run_arms(effective);

  // Absolute, because stage outputs are declared relative to their stage folder otherwise.
  const RunLayout layout{fs::absolute(run_dir)};
  RunDir run(layout.root, effective);
  const fs::path log = layout.root / "run.log";
  add_log_file(log.string());
  auto stages = plan(effective, layout, arms, options.threads);

  for (size_t i = 0; i < stages.size(); ++i) {
    auto& stage = stages[i];
    spdlog::info("[{}/{}] stage {}", i + 1, stages.size(), stage.spec.name);
    try {
      run.run_stage(stage.spec, stage.body);
    } catch (const std::exception& e) {
      throw Error(fmt::format("stage '{}' failed: {}\n  log: {}\n  fix the cause and rerun the "
                              "same command: finished stages are kept",
                              stage.spec.name, e.what(), log.string()));
    }
  }

  ReportOptions report_options;
  report_options.arms = arms;
  report_options.treatment = treatment_arm(arms);
  report_options.paired = evaluate_settings(effective).paired;
  auto report = write_report(layout, report_options);
  return {report.index_html, report.report_md, report.main_table, report.competence_table};
}

std::string format_status(const fs::path& run_dir) {
  const auto manifest = RunDir::read_manifest(run_dir);
  const Config config = Config::load((run_dir / "config.toml").string());
  const RunLayout layout{run_dir};
  const auto& records = manifest["stages"];
  std::string out = fmt::format("run {} (seed {}, config {})\n", run_dir.string(),
                                manifest.value("seed", 0), manifest.value("config_origin", "?"));
  out += fmt::format("{:<24} {:<8} {:>14}  {}\n", "stage", "status", "time", "finished");
  double total = 0;
  std::vector<std::string> names;
  if (is_own_data_run(config))
    names = own_stage_names(config);
  else
    for (const auto& stage : plan(config, layout, run_arms(config), 1))
      names.push_back(stage.spec.name);
  for (const auto& name : names) {
    if (!records.contains(name)) {
      out += fmt::format("{:<24} {:<8}\n", name, "pending");
      continue;
    }
    const auto& rec = records[name];
    const double seconds = rec.value("seconds", 0.0);
    total += seconds;
    out += fmt::format("{:<24} {:<8} {:>14}  {}\n", name, rec.value("status", "?"),
                       rec.contains("seconds") ? format_seconds(seconds) : "-",
                       rec.value("finished", ""));
    if (rec.contains("error"))
      out += fmt::format("  error: {}\n", rec["error"].get<std::string>());
  }
  out += fmt::format("total stage time {}\n", format_seconds(total));
  return out;
}

}  // namespace recap::stages
