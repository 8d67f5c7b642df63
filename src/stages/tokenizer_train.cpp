#include "stages/tokenizer_train.h"

#include <spdlog/spdlog.h>

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

TokenizerTrainResult train_corpus_tokenizer(const std::filesystem::path& dir,
                                            const std::filesystem::path& out,
                                            const text::TokenizerOptions& options) {
  const data::ReadLimits limits = read_limits(corpus_config(dir));
  TokenizerTrainResult result;
  std::vector<std::string> texts;
  for (Split split : {Split::Web, Split::Human}) {
    for (const auto& shard : list_shards(dir, split)) {
      data::ShardReader reader(shard, limits);
      while (auto item = reader.next()) {
        const auto* sample = std::get_if<data::Sample>(&*item);
        if (!sample || sample->caption.empty()) {
          ++result.skipped;
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
  spdlog::info("tokenizer: training a {}-piece {} model on {} captions ({} skipped)",
               options.vocab_size, options.model_type, texts.size(), result.skipped);
  text::Tokenizer tokenizer = text::Tokenizer::train(texts, options);
  tokenizer.save(out);
  result.texts = static_cast<int64_t>(texts.size());
  result.vocab_size = tokenizer.vocab_size();
  return result;
}

}  // namespace recap::corpus
