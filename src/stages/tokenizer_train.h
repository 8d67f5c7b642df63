// `recap tokenizer train`: a sentencepiece model for a corpus, trained on the text a real
// RECAP user has: the web corpus's alt-text and the small human-captioned set (not the
// ground-truth captions of every web image, which only a synthetic world could supply).
#pragma once
#include <cstdint>
#include <filesystem>

#include "core/config.h"
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

}  // namespace recap::corpus
