// `recap corpus stats`: caption sources side by side over the web split, the corpus that gets
// recaptioned. Quality is scored against each sample's scene graph (the ground truth a
// synthetic world allows); the train-inference discrepancy is measured as how much of the
// language users prompt with (suite prompts, eval captions) the source's captions cover.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace recap::corpus {

namespace fs = std::filesystem;

// One caption source: "alt" (KEY.txt of web shards), "human-long", "human-short" (KEY.json
// captions), or a JSONL file of {"key","caption"} lines (e.g. a NAME.recap.jsonl sidecar).
struct SourceStats {
  std::string name;
  int64_t captions = 0;      // scored
  int64_t missing = 0;       // web samples this source has no caption for
  int64_t unknown_keys = 0;  // JSONL lines whose key is no usable web sample
  double mean_words = 0, median_words = 0;
  int64_t vocabulary = 0;  // distinct lower-cased words
  // Shares of scored captions that state at least one correct fact of a kind, or anything false.
  double shape = 0, binding = 0, count = 0, relation_or_position = 0, wrong_fact = 0;
  double precision = 0, recall = 0;  // group precision/recall, mean over captions
  // Share of the evaluation prompts' distinct words, bigrams and trigrams the captions contain.
  std::array<double, 3> coverage{};
  // Distinct test-suite prompt texts (DIR/prompts/*.jsonl) that some caption of this source
  // equals word for word (case, spacing and punctuation aside): what a model trained on these
  // captions could have memorised rather than composed.
  int64_t prompts_verbatim = 0;
  std::map<std::string, int64_t> prompts_verbatim_by_suite;  // the same, per suite file stem
};

// Samples read from one split: used, or rejected with a reason (data::RejectLog's counts).
struct SplitCounts {
  uint64_t used = 0, rejected = 0;
  std::map<std::string, uint64_t, std::less<>> reasons;
  std::string summary;  // RejectLog::summary()
};

struct CorpusStats {
  fs::path dir;
  SplitCounts web, eval;
  int64_t eval_prompts = 0;         // DIR/prompts/*.jsonl texts plus eval human long captions
  int64_t suite_prompts = 0;        // distinct DIR/prompts/*.jsonl texts (the test suites)
  std::map<std::string, int64_t> suite_prompts_by_suite;  // distinct texts per suite file
  std::array<int64_t, 3> eval_ngrams{};  // their distinct words, bigrams, trigrams
  std::vector<SourceStats> sources;      // alt, human-long, human-short, then the JSONL files
};

// A web sample whose KEY.json holds no valid scene cannot be scored; it is rejected with this
// reason (next to the reader's own reasons from data/rejects.h).
inline constexpr std::string_view kBadSceneReason = "bad_scene";

// The caption KEY.json holds under "captions" (human_long, human_short, alt, alt_mode); null
// when the metadata has none of that name.
const std::string* meta_caption(const nlohmann::json& meta, std::string_view field);

// Reads DIR (a finished corpus) shard by shard. Each JSONL file becomes a source named after
// its file stem. With `keys`, only web samples with those keys are read and scored (others,
// their rejects and JSONL lines for them are ignored), so every source is compared on the same
// samples. Throws recap::Error for a corpus that is not finished, a JSONL line that is not
// JSON or lacks a string "key" or "caption" (naming file:line), a key given twice in one file,
// and source names that collide.
CorpusStats corpus_stats(const fs::path& dir, const std::vector<fs::path>& jsonl_sources = {},
                         const std::set<std::string>* keys = nullptr);

// Sources as columns, metrics as rows, then the reject and evaluation-prompt counts.
std::string format_stats_table(const CorpusStats& stats);
nlohmann::json to_json(const CorpusStats& stats);

}  // namespace recap::corpus
