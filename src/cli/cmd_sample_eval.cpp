// sample, eval: images from a trained text-to-image model, and how well they follow their
// prompts as the evaluator judges them.
#include <fmt/format.h>

#include "cli/cli.h"
#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "stages/evaluate.h"
#include "stages/sample.h"

namespace recap::cli {

namespace {

struct SampleArgs {
  std::string model, tokenizer, prompts_file, out, sampler, layout = "flat";
  std::vector<std::string> prompts;
  int steps = 0;  // 0: the model's stored settings (as are a negative cfg and no sampler)
  double cfg = -1;
  stages::SampleRunOptions run;
};

struct EvalArgs {
  std::string images, evaluator, corpus, prompts, json;
  std::string inception, clip, versus;
  bool no_fid = false, ceiling = false;
};

// One line per stat family from the evaluator's held-out accuracy, so a table is never read
// without knowing how far its judge can be trusted.
std::string accuracy_line(const nlohmann::json& report) {
  if (report.is_null() || !report.contains("accuracy"))
    return "evaluator accuracy: unknown (no evaluator_accuracy.json)";
  const auto& a = report["accuracy"];
  return fmt::format(
      "evaluator accuracy on {} held-out renders: count exact {:.2f}%, shape "
      "{:.2f}%, colour {:.2f}%, relation {:.2f}%, precision {:.2f}%, recall "
      "{:.2f}%",
      a.value("images", 0), 100 * a.value("count_exact", 0.0), 100 * a.value("shape", 0.0),
      100 * a.value("colour", 0.0), 100 * a.value("relation", 0.0), 100 * a.value("precision", 0.0),
      100 * a.value("recall", 0.0));
}

// The judge CLIP's own retrieval check, printed beside its scores for the same reason.
std::string clip_judge_line(const nlohmann::json& check) {
  if (check.is_null()) return "";
  const auto top1 = [&](const char* kind) {
    return 100 * check.at(kind).value("image_to_text", 0.0);
  };
  return fmt::format("\njudge CLIP: image -> caption top-1 among {} held-out scenes: short "
                     "captions {:.1f}%, long {:.1f}% (it reads up to its text_encoder.max_length "
                     "tokens; longer prompts are cut)",
                     check.at("short_captions").value("pairs", 0), top1("short_captions"),
                     top1("long_captions"));
}

}  // namespace

void add_sample_eval_commands(Cli& cli) {
  auto args = std::make_shared<SampleArgs>();
  auto* sample = cli.app.add_subcommand(
      "sample",
      "Sample images from a text-to-image model into numbered PNGs and images.jsonl "
      "(the global --seed seeds them; 0 by default)");
  sample->add_option("--model", args->model, "t2i.safetensors (from t2i train)")->required();
  sample->add_option("--tokenizer", args->tokenizer, "the tokenizer it was trained with")
      ->required();
  auto* file = sample->add_option("--prompts", args->prompts_file,
                                  "prompts file: suite JSONL (CORPUS/prompts/SUITE.jsonl), "
                                  "GenEval metadata (CORPUS/prompts/geneval/"
                                  "evaluation_metadata.jsonl) or one prompt per line");
  auto* text = sample->add_option("--prompt", args->prompts,
                                  "a prompt (repeatable; \"\" is the unconditional one)");
  file->excludes(text);
  sample->add_option("--out", args->out, "output folder (a finished one is skipped)")->required();
  sample
      ->add_option("--layout", args->layout,
                   "flat (NNNNNN.png) or geneval (GenEval's NNNNN/metadata.jsonl + "
                   "NNNNN/samples/NNNN.png; needs GenEval prompts)")
      ->capture_default_str();
  sample->add_option("--steps", args->steps, "sampler steps (0: the model's)")
      ->capture_default_str();
  sample
      ->add_option("--cfg", args->cfg,
                   "classifier-free guidance scale: 0 unconditional, 1 off (< 0: the model's)")
      ->capture_default_str();
  sample
      ->add_option("--sampler", args->sampler, "ddpm, ddim, euler or dpm++2m (empty: the model's)")
      ->capture_default_str();
  sample->add_option("--images-per-prompt", args->run.images_per_prompt, "images per prompt")
      ->capture_default_str();
  sample->add_option("--batch-size", args->run.batch_size, "images per model call")
      ->capture_default_str();
  sample
      ->add_option("--grid", args->run.grid_columns,
                   "also write grid.png with this many columns (0: none)")
      ->capture_default_str();
  cli.on_run(sample, [&cli, args] {
    const auto lock = DirLock::folder(args->out);
    init_runtime(cli.runtime, false);
    if (args->prompts_file.empty() && args->prompts.empty())
      throw Error("sample: give --prompts FILE or at least one --prompt");
    std::vector<stages::SampleRequest> prompts;
    if (!args->prompts_file.empty()) {
      prompts = stages::read_prompts(args->prompts_file);
      if (prompts.empty()) throw Error(args->prompts_file + ": no prompts in the file");
    }
    for (const auto& p : args->prompts) prompts.push_back({p, std::nullopt, std::nullopt, {}});
    auto run = args->run;
    run.layout = stages::parse_sample_layout(args->layout);
    if (!args->sampler.empty()) run.sampler = diffusion::parse_sampler(args->sampler);
    if (args->steps > 0) run.steps = args->steps;
    if (args->cfg >= 0) run.guidance_scale = args->cfg;
    run.seed = static_cast<uint64_t>(cli.runtime.seed.value_or(0));
    auto r = stages::sample_to_folder(args->model, args->tokenizer, prompts, args->out, run);
    if (r.skipped > 0)
      fmt::print("sample: {} already holds these {} images; nothing to do\n", args->out, r.skipped);
    else
      fmt::print("sample: {} images in {:.1f} s -> {}\n", r.images, r.seconds, args->out);
  });

  auto eval = std::make_shared<EvalArgs>();
  auto* evaluate = cli.app.add_subcommand(
      "eval",
      "Score a `recap sample` folder: prompt following (as the evaluator detects it) "
      "with bootstrap intervals, FID/KID against the eval-split renders ([eval] keys)");
  evaluate->add_option("--images", eval->images,
                       "folder from recap sample, or a folder in GenEval's layout "
                       "(NNNNN/metadata.jsonl, NNNNN/samples/NNNN.png); without it, --ceiling "
                       "scores the reference renders alone");
  evaluate->add_option("--evaluator", eval->evaluator, "folder from evaluator train")->required();
  evaluate->add_option("--corpus", eval->corpus, "corpus folder (reference renders, world)")
      ->required();
  evaluate->add_option("--prompts", eval->prompts,
                       "prompts file the images must come from (targets for plain prompts)");
  evaluate->add_option("--json", eval->json,
                       "also write the full report here, and one line per image beside it "
                       "(NAME.images.jsonl; for GenEval prompts also GenEval's results.jsonl "
                       "as NAME.geneval.jsonl)");
  evaluate->add_flag("--no-fid", eval->no_fid, "skip FID/KID and the noise floor");
  evaluate->add_option("--inception", eval->inception,
                       "FID/KID on the pool3 features of this InceptionV3 .safetensors "
                       "(README: exporting pytorch-fid's weights) instead of the evaluator's");
  evaluate->add_option("--clip", eval->clip,
                       "also score every image's CLIP score against its prompt under this "
                       "judge CLIP (a `recap clip train --out` folder; train it with --set "
                       "clip.data=renders so it shares nothing with the experiment)");
  evaluate->add_option("--versus", eval->versus,
                       "compare with another evaluation of the same prompts and seeds, given "
                       "its per-image file (NAME.images.jsonl): paired differences and the "
                       "pairwise faithfulness win rate of these images against those");
  evaluate->add_flag("--ceiling", eval->ceiling,
                     "add the ceiling row: the metrics on the reference renders themselves, "
                     "and GenEval's on a perfect render of every GenEval prompt");
  cli.add_set_option(evaluate);
  cli.on_run(evaluate, [&cli, eval] {
    DirLock lock;  // the report file, when there is one
    if (!eval->json.empty()) lock = DirLock::file(eval->json);
    init_runtime(cli.runtime, false);
    auto options = stages::evaluate_settings(cli.load_corpus_config(eval->corpus));
    if (eval->no_fid) options.fid = false;
    if (!eval->prompts.empty()) options.prompts = eval->prompts;
    if (!eval->inception.empty()) options.inception = eval->inception;
    if (!eval->clip.empty()) options.clip = eval->clip;
    if (eval->images.empty() && !eval->ceiling)
      throw Error("eval: give --images DIR, or --ceiling to score the reference renders alone");
    if (eval->images.empty() && !eval->versus.empty())
      throw Error("eval: --versus compares the --images folder with another evaluation; give "
                  "--images");
    std::vector<stages::EvalReport> reports;
    if (!eval->images.empty())
      reports.push_back(
          stages::evaluate_images(eval->images, eval->evaluator, eval->corpus, options));
    if (eval->ceiling)
      reports.push_back(stages::evaluate_reference(eval->evaluator, eval->corpus, options));
    fmt::print("{}\n{}{}\n", stages::format_eval_table(reports),
               accuracy_line(reports.front().evaluator_accuracy),
               clip_judge_line(reports.front().clip_judge));
    if (!eval->versus.empty()) {
      std::vector<recap::eval::ImageScore> baseline, treatment;
      for (auto& r : recap::eval::read_image_results(eval->versus))
        baseline.push_back(std::move(r.score));
      for (const auto& r : reports.front().per_image) treatment.push_back(r.score);
      try {
        fmt::print("\n{}", recap::eval::format_paired(
                               recap::eval::compare_paired(baseline, treatment, options.paired),
                               recap::eval::win_rate(baseline, treatment, options.paired),
                               reports.front().name,
                               std::filesystem::path(eval->versus).filename().string()));
      } catch (const Error& e) {
        throw Error(fmt::format("{} vs {}: {}", eval->images, eval->versus, e.what()));
      }
    }
    if (!eval->json.empty()) {
      nlohmann::json out = stages::to_json(reports.front());
      if (reports.size() > 1) out["ceiling"] = stages::to_json(reports.back());
      write_file_atomic(eval->json, out.dump(2) + "\n");
      const auto per_image =
          recap::eval::write_image_results_beside(eval->json, reports.front().per_image);
      fmt::print("report written to {}, per-image results to {}\n", eval->json,
                 per_image.string());
      if (const auto path = stages::write_geneval_results_beside(eval->json, reports.front()))
        fmt::print("GenEval per-image results (for GenEval's summary_scores.py) to {}\n",
                   path->string());
    }
  });
}

}  // namespace recap::cli
