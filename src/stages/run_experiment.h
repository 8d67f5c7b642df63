// `recap run`: the whole RECAP experiment in one command. Every stage runs in order into
// runs/NAME/ (stages/run_layout.h) through RunDir, so a finished stage with unchanged inputs
// is skipped and a killed run resumes where it stopped:
//
//   corpus -> tokenizer -> evaluator -> captioner (pre-train on alt-text, fine-tune on the
//   human set) -> recaption-long, recaption-short -> caption_quality -> per arm: t2i-ARM ->
//   samples-ARM (every prompt suite, and GenEval's prompts) -> eval/ARM; eval/ceiling -> report
//
// Every arm trains the same architecture for the same steps from the same seed; only the
// caption source (t2i.captions) differs.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "stages/run_layout.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct RunOptions {
  std::vector<std::string> arms;  // empty: run.arms from the config
  int threads = 1;                // loader and render threads (libtorch's are set already)
};

struct RunResult {
  fs::path report_index, report_md;
  std::string main_table;        // the report's main table, for the terminal
  std::string competence_table;  // and its competence table
};

// Runs (or resumes) the experiment described by `config` in `run_dir`. A run folder that
// already holds a manifest keeps its own config: `config` must then be that config (the CLI
// loads runs/NAME/config.toml on resume). Throws recap::Error naming the failed stage, the
// reason and the log file (run_dir/run.log) when a stage fails; the manifest records it.
RunResult run_experiment(const Config& config, const fs::path& run_dir, const RunOptions& options);

// The arms of the config (run.arms), checked; recap::Error for an unknown or repeated name.
std::vector<std::string> run_arms(const Config& config);

// `recap status`: one line per stage of the manifest (status, wall time, finish time), in
// run order, with the error of a failed stage. recap::Error when run_dir has no manifest.
std::string format_status(const fs::path& run_dir);

}  // namespace recap::stages
