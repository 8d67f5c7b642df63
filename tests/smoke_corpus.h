// A smoke-preset corpus and the tokenizer trained on it: the fixture most suites start from
// (a few seconds, so made once per suite).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "stages/corpus.h"
#include "stages/tokenizer_train.h"

namespace recap::test {

// `overrides` are --set values on the smoke preset (e.g. "corpus.web_samples=3000").
inline void make_smoke_corpus(const std::filesystem::path& corpus,
                              const std::filesystem::path& tokenizer,
                              const std::vector<std::string>& overrides = {}) {
  corpus::make_corpus(Config::load("smoke", overrides), corpus, 2);
  corpus::train_corpus_tokenizer(corpus, tokenizer,
                                 corpus::tokenizer_options(corpus::corpus_config(corpus)));
}

}  // namespace recap::test
