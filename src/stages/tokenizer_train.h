// `recap tokenizer train`: a sentencepiece model trained on the text a real RECAP user has:
// the web corpus's alt-text and the small human-captioned set (not the ground-truth captions
// of every web image, which only a synthetic world could supply), from the embedded world's
// corpus or from the user's own image sources and human.jsonl.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/config.h"
#include "data/source.h"
#include "stages/human_set.h"
#include "text/tokenizer.h"

namespace recap::corpus {

text::TokenizerOptions tokenizer_options(const Config& config);

struct TokenizerTrainResult {
  int64_t texts = 0;    // captions the model was trained on
  int64_t skipped = 0;  // empty captions and rejected samples
  int vocab_size = 0;
};

// Trains on corpus `dir` and saves the model to `out` (atomically).
TokenizerTrainResult train_corpus_tokenizer(const std::filesystem::path& dir,
                                            const std::filesystem::path& out,
                                            const text::TokenizerOptions& options);

// Trains on the captions of the image `sources` (data::open_source; a sidecar's every caption
// line) and of the human set, when given, and saves the model to `out` (atomically).
// Rejected samples, empty captions and broken sources (with a warning) count as skipped.
TokenizerTrainResult train_source_tokenizer(const std::vector<std::filesystem::path>& sources,
                                            const stages::HumanSet* human,
                                            const std::filesystem::path& out,
                                            const text::TokenizerOptions& options,
                                            const data::ReadLimits& read);

}  // namespace recap::corpus
