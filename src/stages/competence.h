// Competence: whether a text-to-image model draws well enough that its prompt following says
// something about its captions. Measured during training by the probe of stages/t2i_train.h
// (the evaluator on samples of the dev multi-object prompts) and recorded in OUT/probe.json,
// which the report reads. Torch-free.
#pragma once
#include <filesystem>

#include <nlohmann/json.hpp>

#include "eval/metrics.h"

namespace recap::stages {

namespace fs = std::filesystem;

// The thresholds of issue #15 (docs/RESULTS.md): both must hold.
constexpr double kCompetentSoaC = 0.80;
constexpr double kCompetentColourBinding = 0.60;
bool competent(const eval::PromptMetrics& probe);

// OUT/probe.json of a t2i training folder, rewritten at every validation: {"step",
// "train_seconds" (optimizer steps only, this process), "images", "competent", "metrics":
// eval::to_json(PromptMetrics)}.
fs::path probe_path(const fs::path& t2i_dir);
// Its contents; null when absent (trained without a probe). recap::Error naming the file
// for bad JSON or a record without step, competent and metrics.
nlohmann::json read_probe(const fs::path& t2i_dir);

}  // namespace recap::stages
