// `recap eval`: prompt following and image quality of a folder of generated images (from
// stages/sample.h), judged by the evaluator's detector (models/evaluator.h) against each
// prompt's exact target (eval/metrics.h), with FID/KID on the detector's features against the
// corpus's eval-split reference renders and the noise floor of fresh renders beside them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/torch_pch.h"
#include "eval/fid.h"
#include "eval/geneval.h"
#include "eval/image_results.h"
#include "eval/metrics.h"
#include "world/prompts.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct EvaluateOptions {
  eval::MetricOptions metrics;  // relation margin: world::relation_margin_px of the corpus world
  // Comparing two evaluations image by image (the report's verdict, `recap eval --versus`):
  // the same resamples and level as `metrics`, a seed stream of its own.
  eval::PairedOptions paired;
  eval::KidOptions kid;
  int64_t batch_size = 100;
  bool fid = true;
  // Optional prompts file (read_prompts): every image's prompt must be one of its prompts, and
  // an image without a suite or target in images.jsonl takes them from it.
  std::optional<fs::path> prompts;
  // FID/KID on the pool3 features of this InceptionV3 (models/inception.h, weights a user
  // exports from pytorch-fid) instead of the evaluator's: the standard FID for natural images.
  std::optional<fs::path> inception;
  // A judge CLIP folder (`recap clip train --out`, stages/clip_train.h): every image also gets
  // its CLIP score against its prompt (eval::ImageScore::clip_score).
  std::optional<fs::path> clip;
  // GenEval prompts per task the ceiling renders (corpus_geneval_prompts; eval.geneval_per_task,
  // which also sets how many `recap run` samples for each arm); 0: no GenEval ceiling.
  int geneval_per_task = 100;
};

struct FidResult {
  std::string features = "evaluator";  // or "inception-v3"
  double fid = 0;
  eval::KidResult kid;
  int64_t n_generated = 0, n_reference = 0;
};

struct EvalReport {
  std::string name;  // e.g. the arm, or "ceiling"
  int64_t images = 0;
  eval::PromptMetrics overall;                         // all images pooled
  std::map<std::string, eval::PromptMetrics> suites;  // per suite name
  std::optional<FidResult> fid;                        // generated vs reference renders
  std::optional<FidResult> fid_floor;  // fresh real renders vs reference (noise floor)
  nlohmann::json evaluator_accuracy;   // evaluator_accuracy.json of the evaluator used
  nlohmann::json clip_judge;           // the judge CLIP's retrieval check; null without one
  // One per image, what `overall` and `suites` are computed from, for
  // eval::write_image_results_beside the summary: in images.jsonl order (evaluate_images), or
  // the eval split's order, named by sample key (evaluate_reference).
  std::vector<eval::ImageResult> per_image;
  // Images sampled from GenEval prompts (SampleRequest::geneval), judged by GenEval's rules
  // (eval/geneval.h): the task scores, and one GenEval results.jsonl line per such image in
  // per_image order. Unset and empty when no image had GenEval metadata.
  std::optional<eval::GenevalScores> geneval;
  std::vector<nlohmann::json> geneval_lines;
};

// DIR/NAME.json -> DIR/NAME.geneval.jsonl: where `recap eval --json` writes GenEval's
// per-image results (GenEval's summary_scores.py reads that file as it is).
fs::path geneval_results_path(const fs::path& summary);
// Writes report.geneval_lines there (atomically) and returns the path; nothing, and no path,
// when the report judged no GenEval image.
std::optional<fs::path> write_geneval_results_beside(const fs::path& summary,
                                                     const EvalReport& report);

// images_dir holds images.jsonl (from sample_to_folder; targets come from it, or from parsing
// the prompt text with the world parser when "target" is null; each image's prompt and "seed"
// are its eval::ImageId). Detects with the evaluator (evaluator_dir/evaluator.safetensors),
// scores every image (eval::score_image, kept in per_image; images with GenEval metadata also
// by GenEval's rules, EvalReport::geneval) and summarises them
// (eval::summarize; per suite the same over the images of the suite); with options.clip also
// each image's CLIP score against its prompt under that judge; FID/KID on
// evaluator features vs the corpus's eval-split reference renders; the noise floor compares
// as many freshly rendered scenes (world sampler, a seed stream of its own) with the same
// reference set. The report is named after images_dir. Throws recap::Error naming the file for
// a missing or malformed images.jsonl, an image that is unreadable or not canvas-sized, a
// "seed" that is not an unsigned integer, a prompt the prompts file lacks, GenEval metadata
// naming a class or colour the world lacks, or an evaluator made for another world. images_dir
// may also be a folder in GenEval's layout (read_sample_folder).
EvalReport evaluate_images(const fs::path& images_dir, const fs::path& evaluator_dir,
                           const fs::path& corpus_dir, const EvaluateOptions& options);

// The ceiling row ("ceiling"): the same metrics on the reference renders themselves (eval
// split images, targets parsed from their human long captions, which are also their prompts
// for the CLIP score): ~100% accuracy and ~0 counting error when the evaluator works. Its fid
// is unset (the set against itself); its fid_floor is the noise floor for as many images as
// the reference set holds. Its GenEval-style scores (geneval, geneval_lines) judge one render
// per test GenEval prompt of the corpus (CORPUS/prompts/geneval/evaluation_metadata.jsonl) of
// the prompt's perfect scene, world::scene_for_target of its target, drawn from a seed stream
// of their own: GenEval's ceiling, which only the evaluator's errors keep below 1. These
// images join no other metric of the row. A corpus without the GenEval file gets none (a
// warning says so); a prompt of it naming a class or colour the world lacks is an error.
EvalReport evaluate_reference(const fs::path& evaluator_dir, const fs::path& corpus_dir,
                              const EvaluateOptions& options);

// {"name", "images", "overall": eval::to_json(PromptMetrics), "suites": {"counting": ...},
// "fid": {"fid", "kid": {"mean", "std", "std_error", "subsets", "subset_size"},
// "n_generated", "n_reference"} | null, "fid_floor": same | null, "evaluator_accuracy",
// "clip_judge": the judge CLIP's check | null, "geneval": eval::to_json(GenevalScores) | null}.
nlohmann::json to_json(const EvalReport& report);
// Rows of reports in one table: metrics with intervals (eval::format_table; one row per report
// and one per report and suite), then FID/KID and the floor per report, then the GenEval-style
// scores of each report that has them.
std::string format_eval_table(const std::vector<EvalReport>& reports);

// The evaluator's judgement of images still in memory, for probes during training (the
// competence probe of stages/t2i_train.h): no files, no FID. Loads the detector once.
class PromptScorer {
 public:
  // Throws what evaluate_images throws for a bad evaluator or corpus folder.
  PromptScorer(const fs::path& evaluator_dir, const fs::path& corpus_dir);
  ~PromptScorer();
  PromptScorer(PromptScorer&&) noexcept;
  // images [N, 3, S, S] in [-1, 1], S the world's canvas, quantised to 8 bits first as a PNG
  // written by `recap sample` would be; one target per image.
  eval::PromptMetrics score(const torch::Tensor& images, const std::vector<world::Facts>& targets,
                            const eval::MetricOptions& options);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// [eval] keys, run.seed and the corpus world's relation margin.
EvaluateOptions evaluate_settings(const Config& config);

}  // namespace recap::stages
