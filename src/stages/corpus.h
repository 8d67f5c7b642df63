// The embedded world's corpus on disk, written by `recap corpus make` and read by every
// later stage:
//
//   DIR/config.toml                 the effective config the corpus was made with
//   DIR/corpus.json                 seed, counts, shard lists; written last (the "done" marker)
//   DIR/web/web-00000.tar ...       the web corpus: KEY.png, KEY.txt (alt-text), KEY.json
//   DIR/human/human-00000.tar ...   the small human-captioned set: KEY.txt = human long caption
//   DIR/eval/eval-00000.tar ...     held-out scenes: reference renders + human long captions
//   DIR/prompts/SUITE.jsonl         compositional prompt suites with exact targets
//                                   (counting, position, colour_binding, multi_object)
//   DIR/prompts/geneval/evaluation_metadata.jsonl  GenEval's six tasks in the world
//
// Every KEY.json is {"split", "index", "scene": <scene graph>, "captions": {"human_long",
// "human_short", and for web samples "alt" and "alt_mode"}}: the ground truth a synthetic
// world allows, used to score any caption source and for the `human` upper-bound arm.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "data/loader.h"

namespace recap::corpus {

namespace fs = std::filesystem;

enum class Split { Web, Human, Eval };
inline constexpr Split kSplits[] = {Split::Web, Split::Human, Split::Eval};
std::string_view split_name(Split split);  // "web", "human", "eval"

fs::path shard_path(const fs::path& dir, Split split, int64_t shard);
// The split's shards present on disk, sorted.
std::vector<fs::path> list_shards(const fs::path& dir, Split split);
std::string sample_key(Split split, int64_t index);  // "web-000000042"
// Loader options for one split of the corpus at `dir`: its shards, the corpus world's canvas,
// the [data] read and decode limits and data.strict of `config`, `workers` decode threads (at
// least 1) and batches of `batch_size`; shuffling, seed and epochs are the caller's. Throws
// recap::Error naming the folder when the split has no shards.
data::LoaderOptions split_loader(const fs::path& dir, Split split, const Config& config,
                                 int workers, int64_t batch_size);
// The test prompts of a suite, DIR/prompts/SUITE.jsonl: the final tables only. The dev prompts,
// DIR/prompts/dev/SUITE.jsonl: same generator, their own seed stream, no text of the test
// suite among them; for validation grids, competence checks and every tuning decision.
fs::path prompts_path(const fs::path& dir, std::string_view suite);
fs::path dev_prompts_path(const fs::path& dir, std::string_view suite);
// The world's GenEval prompts (world/geneval_prompts.h) in GenEval's own file form:
// DIR/prompts/geneval/evaluation_metadata.jsonl (test) and
// DIR/prompts/dev/geneval/evaluation_metadata.jsonl (dev: its own seed stream, no request of
// the test file among them).
fs::path geneval_prompts_path(const fs::path& dir);
fs::path dev_geneval_prompts_path(const fs::path& dir);

// Writes the corpus for `config` into `out` with `threads` render threads. Resumable: shards
// already on disk are kept (each is written atomically); a folder holding a corpus made with
// other settings is refused. Same config and seed give byte-identical files.
void make_corpus(const Config& config, const fs::path& out, int threads);

// The config a finished corpus was made with (DIR/config.toml). Throws recap::Error when DIR
// is not a finished corpus.
Config corpus_config(const fs::path& dir);

}  // namespace recap::corpus
