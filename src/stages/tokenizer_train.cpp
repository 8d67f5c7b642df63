#include "stages/tokenizer_train.h"

#include <spdlog/spdlog.h>

#include "data/rejects.h"
#include "data/shard_reader.h"
#include "stages/corpus.h"
#include "stages/settings.h"

namespace recap::corpus {

text::TokenizerOptions tokenizer_options(const Config& config) {
  text::TokenizerOptions o;
  o.vocab_size = static_cast<int>(config.get_int("tokenizer.vocab_size"));
  o.model_type = config.get_string("tokenizer.model_type");
  o.character_coverage = config.get_float("tokenizer.character_coverage");
  o.byte_fallback = config.get_bool("tokenizer.byte_fallback");
  o.seed = static_cast<uint32_t>(config.get_int("run.seed"));
  return o;
}

namespace {

TokenizerTrainResult train_and_save(const std::vector<std::string>& texts, int64_t skipped,
                                    const std::filesystem::path& out,
                                    const text::TokenizerOptions& options) {
  spdlog::info("tokenizer: training a {}-piece {} model on {} captions ({} skipped)",
               options.vocab_size, options.model_type, texts.size(), skipped);
  text::Tokenizer tokenizer = text::Tokenizer::train(texts, options);
  tokenizer.save(out);
  return {static_cast<int64_t>(texts.size()), skipped, tokenizer.vocab_size()};
}

}  // namespace

TokenizerTrainResult train_corpus_tokenizer(const std::filesystem::path& dir,
                                            const std::filesystem::path& out,
                                            const text::TokenizerOptions& options) {
  const data::ReadLimits limits = read_limits(corpus_config(dir));
  int64_t skipped = 0;
  std::vector<std::string> texts;
  for (Split split : {Split::Web, Split::Human}) {
    for (const auto& shard : list_shards(dir, split)) {
      data::ShardReader reader(shard, limits);
      while (auto item = reader.next()) {
        const auto* sample = std::get_if<data::Sample>(&*item);
        if (!sample || sample->caption.empty()) {
          ++skipped;
          continue;
        }
        texts.push_back(sample->caption);
        // The human set's short captions too: the captioner writes both styles.
        if (split == Split::Human) {
          if (auto it = sample->meta.find("captions");
              it != sample->meta.end() && it->contains("human_short"))
            texts.push_back((*it)["human_short"].get<std::string>());
        }
      }
    }
  }
  return train_and_save(texts, skipped, out, options);
}

TokenizerTrainResult train_source_tokenizer(const std::vector<std::filesystem::path>& sources,
                                            const stages::HumanSet* human,
                                            const std::filesystem::path& out,
                                            const text::TokenizerOptions& options,
                                            const data::ReadLimits& read) {
  int64_t skipped = 0;
  std::vector<std::string> texts;
  for (const auto& path : sources) {
    auto source = data::open_source(path, read, data::OnBroken::kReject);
    while (auto item = source->next()) {
      if (const auto* reject = std::get_if<data::Reject>(&*item)) {
        if (reject->reason == data::reason::kBrokenShard)
          spdlog::warn("tokenizer: {}; the rest of it is skipped", reject->detail);
        ++skipped;
        continue;
      }
      const auto& sample = std::get<data::Sample>(*item);
      // A sidecar's several lines are several captions, every one text the models will see.
      const auto lines = sample.meta.is_object() ? sample.meta.find("caption_lines")
                                                 : sample.meta.end();
      if (lines != sample.meta.end() && lines->is_array() && !lines->empty()) {
        for (const auto& line : *lines) texts.push_back(line.get<std::string>());
      } else if (!sample.caption.empty()) {
        texts.push_back(sample.caption);
      } else {
        ++skipped;
      }
    }
  }
  if (human)
    for (auto& text : human->texts()) texts.push_back(std::move(text));
  return train_and_save(texts, skipped, out, options);
}

}  // namespace recap::corpus
