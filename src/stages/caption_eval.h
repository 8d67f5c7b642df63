// `recap captioner eval`: how good are a captioner's captions? Each model captions the same
// first web samples, and corpus_stats scores them next to the alt-text and the human
// captions on exactly those samples, so the columns compare like with like.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "models/captioner.h"
#include "stages/corpus_stats.h"
#include "stages/recaption.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct CaptionModel {
  std::string name;  // the column name and out_dir/<name>.jsonl
  fs::path weights;
  models::CaptionStyle style;
};

// Captions the first `samples` web samples of the corpus with each model (same decode settings),
// writes out_dir/<name>.jsonl per model, then scores alt, human-long, human-short and every model
// on exactly those keys with corpus::corpus_stats, writes out_dir/caption_quality.json
// (corpus::to_json plus "samples" and "models") and out_dir/caption_quality.txt
// (format_stats_table), and returns the stats. Throws recap::Error for samples < 1, no models,
// names that repeat or collide with alt/human-long/human-short, or an unusable model file.
corpus::CorpusStats evaluate_captioners(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                                        const std::vector<CaptionModel>& models,
                                        const fs::path& out_dir, int64_t samples,
                                        const RecaptionOptions& options);

}  // namespace recap::stages
