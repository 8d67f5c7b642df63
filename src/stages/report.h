// The experiment report of `recap run`: runs/NAME/report/index.html and report.md, written from
// whatever the run folder holds (stages/run_layout.h). Sections: the main table in the paper's
// form (metrics x arms with 95% intervals, the paper's own numbers beside, RECAP minus the
// baseline with its paired interval, eval::compare_paired on eval/ARM.images.jsonl, and the
// verdict it gives) and per-suite tables; the evaluator's own accuracy and the
// ceiling (real renders scored like generated images); caption quality per source and the
// train-inference discrepancy; one side-by-side image grid per prompt suite; caption examples;
// training curves (gnuplot); stage wall times, seeds and preset. Anything a run has not
// produced (a stage not run, a skipped arm) is shown as "not run". Everything the pages show
// lies inside report/, linked relatively, so the folder opens from disk.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "eval/metrics.h"
#include "stages/run_layout.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct ReportOptions {
  std::vector<std::string> arms;    // in table order, e.g. {"alt", "recap", "recap-mix", "human"}
  std::string baseline = "alt";     // the paper's "alt-text baseline" column
  std::string treatment = "recap";  // the arm compared against it ("RECAP")
  int grid_prompts = 8;             // prompts per suite shown in the side-by-side grids
  int caption_examples = 8;         // web samples shown with every caption source
  eval::PairedOptions paired;       // treatment vs baseline: resamples, level, seed
};

// The arm a run puts beside the paper's RECAP column: its first recap or recap-mix arm in
// run.arms order ("recap" when it has neither, which leaves the comparison out).
std::string treatment_arm(const std::vector<std::string>& arms);

struct ReportResult {
  fs::path index_html, report_md;
  std::string main_table;  // plain-text table 1, for the terminal
  std::string competence_table;  // the arms' competence probes, plain text; empty without any
  int plots_skipped = 0;   // training-curve plots left out (no gnuplot, or it failed)
};

// Geometry of the per-suite image grids (report/grid-SUITE.png): a header row of arm names,
// then one row per prompt: its text in a label column, then one cell per arm.
// width = 2 * margin + label + arms * (margin + cell);
// height = 2 * margin + header + prompts * (margin + cell).
inline constexpr int kGridCellPx = 96;
inline constexpr int kGridLabelPx = 260;
inline constexpr int kGridMarginPx = 8;
inline constexpr int kGridHeaderPx = 20;

// Reads layout.root (manifest.json, eval/, samples-ARM/, caption_quality/, ...) and writes
// layout.report()/{index.html, report.md, *.png}. Throws recap::Error naming the file for an
// input that exists but is malformed (bad JSON, a missing or mistyped field), and naming both
// per-image files when they hold other images than their summaries count or are not paired
// (other prompts or seeds).
ReportResult write_report(const RunLayout& layout, const ReportOptions& options);

}  // namespace recap::stages
