// `recap run` on your own data: a config whose own.images names image sources (a user TOML
// passed as --preset FILE.toml) runs RECAP's three steps on them in a run folder, resumable
// stage by stage as the world's experiment is (RunDir):
//
//   tokenizer (the sources' captions and own.captions) -> captioner (pre-trained on the
//   sources' own captions, fine-tuned on own.captions) -> recaption-long, recaption-short ->
//   per arm: t2i-ARM -> samples-ARM (own.prompts) -> view.html
//
// Arms: alt trains on the images' own captions, recap on the long recaptions, recap-mix on
// long and short half and half. What needs the embedded world's ground truth is skipped, each
// with its reason in run.log and the report: the corpus, the evaluator and the captioner's
// pre-trained vision encoder (trained on renders), caption quality (scored against the true
// scene), the human arms (an exact caption of every image), the autoencoder (trained on the
// corpus) and every evaluation (the evaluator's detections, FID against the eval renders).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "stages/run_experiment.h"

namespace recap::stages {

// Whether `config` describes a run on the user's own data (own.images is not empty).
bool is_own_data_run(const Config& config);

// The stages such a run has, in run order (what `recap status` lists).
std::vector<std::string> own_stage_names(const Config& config);

// Runs (or resumes) it in `run_dir`; writes run_dir/report/report.md (each stage, ran or
// skipped and why; the samples) and run_dir/report/view.html (recap view of the sources with
// both recaptions). Throws recap::Error naming the failed stage, the reason and run.log; and,
// before any stage, for an own.* path that does not exist, an arm the own data cannot train
// (human, human-short, human-mix) or t2i.space = latent without t2i.autoencoder.
RunResult run_own_data(const Config& config, const fs::path& run_dir, const RunOptions& options);

}  // namespace recap::stages
