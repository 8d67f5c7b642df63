// `recap corpus make`: renders the embedded world into WebDataset shards.
#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/image.h"
#include "data/shard_writer.h"
#include "recap/version.h"
#include "stages/corpus.h"
#include "stages/settings.h"
#include "world/alt_text.h"
#include "world/captions.h"
#include "world/geneval_prompts.h"
#include "world/prompts.h"
#include "world/render.h"
#include "world/sampler.h"

namespace recap::corpus {

namespace {

// Independent random streams per split, so web, human and eval scenes never coincide.
uint64_t split_stream(Split s) { return 0x5A17 + static_cast<uint64_t>(s); }
constexpr uint64_t kPromptStream = 0x9807;
constexpr uint64_t kDevPromptStream = 0x9808;
constexpr uint64_t kGenevalStream = 0x9809;
constexpr uint64_t kDevGenevalStream = 0x980A;
// Dev candidates drawn per prompt wanted: enough to replace those that repeat a test text.
constexpr int kDevCandidates = 4;
constexpr uint64_t kCaptionStream = 1;
constexpr uint64_t kAltStream = 2;

// The settings that decide a corpus's bytes; other sections (training, ...) may change freely.
nlohmann::json identity(const Config& config) {
  auto all = config.to_json();
  return {{"seed", all["run"]["seed"]}, {"world", all["world"]}, {"alt", all["alt"]},
          {"corpus", all["corpus"]}};
}

struct ShardTask {
  Split split;
  int64_t shard, first, count;
};

void write_shard(const ShardTask& task, const fs::path& out, const world::WorldConfig& world,
                 uint64_t seed, const std::function<void()>& on_sample) {
  data::ShardWriter writer(shard_path(out, task.split, task.shard));
  uint64_t stream = derive_seed(seed, split_stream(task.split));
  for (int64_t index = task.first; index < task.first + task.count; ++index) {
    uint64_t sample_seed = derive_seed(stream, static_cast<uint64_t>(index));
    world::Scene scene = world::sample_scene(world, sample_seed);
    Rng caption_rng(derive_seed(sample_seed, kCaptionStream));
    nlohmann::json captions = {{"human_long", world::human_long_caption(scene, caption_rng)},
                               {"human_short", world::human_short_caption(scene, caption_rng)}};
    std::string text = captions["human_long"];
    if (task.split == Split::Web) {
      Rng alt_rng(derive_seed(sample_seed, kAltStream));
      auto alt = world::alt_text(scene, world, alt_rng);
      captions["alt"] = alt.text;
      captions["alt_mode"] = world::alt_mode_name(alt.mode);
      text = alt.text;
    }
    nlohmann::json meta = {{"split", split_name(task.split)},
                           {"index", index},
                           {"scene", world::to_json(scene)},
                           {"captions", captions}};
    writer.add_sample(sample_key(task.split, index), "png",
                      data::encode_png(world::render(scene, world)), text, meta);
    on_sample();
  }
  writer.commit();
}

// GenEval's tasks in the world, test and dev, as the suites below: the dev file leaves out
// every request (metadata without its text) of the test file and keeps at most n per task.
void write_geneval_prompts(const fs::path& out, const world::WorldConfig& world, int64_t n,
                           uint64_t seed) {
  std::string test_lines, dev_lines;
  std::set<std::string> taken;
  for (const auto& p : world::make_geneval_prompts(world, static_cast<int>(n),
                                                   derive_seed(seed, kGenevalStream))) {
    test_lines += world::to_json(p).dump() + "\n";
    taken.insert(world::geneval_request_key(p));
  }
  std::map<std::string, int64_t> per_tag;
  for (const auto& p : world::make_geneval_prompts(world, static_cast<int>(kDevCandidates * n),
                                                   derive_seed(seed, kDevGenevalStream)))
    if (per_tag[p.tag] < n && taken.insert(world::geneval_request_key(p)).second) {
      dev_lines += world::to_json(p).dump() + "\n";
      ++per_tag[p.tag];
    }
  write_file_atomic(geneval_prompts_path(out), test_lines);
  write_file_atomic(dev_geneval_prompts_path(out), dev_lines);
}

// Test and dev prompts of every suite. A dev prompt is dropped when its text is a test text or
// an earlier dev text; a world too small for n such texts gets fewer, with a warning.
void write_prompts(const fs::path& out, const world::WorldConfig& world, int64_t n,
                   uint64_t seed) {
  for (world::Suite suite : world::all_suites()) {
    const auto name = world::suite_name(suite);
    std::string test_lines, dev_lines;
    std::set<std::string> taken;
    for (const auto& prompt : world::make_suite(suite, world, static_cast<int>(n),
                                                derive_seed(seed, kPromptStream))) {
      test_lines += world::to_json(prompt).dump() + "\n";
      taken.insert(prompt.text);
    }
    int64_t dev = 0;
    for (const auto& prompt :
         world::make_suite(suite, world, static_cast<int>(kDevCandidates * n),
                           derive_seed(seed, kDevPromptStream))) {
      if (dev == n) break;
      if (!taken.insert(prompt.text).second) continue;
      dev_lines += world::to_json(prompt).dump() + "\n";
      ++dev;
    }
    if (dev < n)
      spdlog::warn("corpus: {} has {} dev prompts, not {}: the world has too few texts of this "
                   "suite that are not test prompts",
                   name, dev, n);
    write_file_atomic(prompts_path(out, name), test_lines);
    write_file_atomic(dev_prompts_path(out, name), dev_lines);
  }
  write_geneval_prompts(out, world, n, seed);
}

}  // namespace

std::string_view split_name(Split split) {
  switch (split) {
    case Split::Web: return "web";
    case Split::Human: return "human";
    case Split::Eval: return "eval";
  }
  return "?";
}

fs::path shard_path(const fs::path& dir, Split split, int64_t shard) {
  return dir / split_name(split) / fmt::format("{}-{:05d}.tar", split_name(split), shard);
}

std::vector<fs::path> list_shards(const fs::path& dir, Split split) {
  std::vector<fs::path> out;
  fs::path folder = dir / split_name(split);
  if (!fs::is_directory(folder)) return out;
  const std::regex name(fmt::format("{}-\\d{{5}}\\.tar", split_name(split)));
  for (const auto& e : fs::directory_iterator(folder))
    if (e.is_regular_file() && std::regex_match(e.path().filename().string(), name))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

data::LoaderOptions split_loader(const fs::path& dir, Split split, const Config& config,
                                 int workers, int64_t batch_size) {
  data::LoaderOptions lo;
  lo.sources = list_shards(dir, split);
  if (lo.sources.empty())
    throw Error(fmt::format("{}: no {} shards", dir.string(), split_name(split)));
  lo.image_size = static_cast<int>(corpus_config(dir).get_int("world.canvas"));
  lo.workers = std::max(1, workers);
  lo.batch_size = static_cast<size_t>(batch_size);
  lo.read = read_limits(config);
  lo.decode = decode_limits(config);
  lo.strict = config.get_bool("data.strict");
  return lo;
}

std::string sample_key(Split split, int64_t index) {
  return fmt::format("{}-{:09d}", split_name(split), index);
}

fs::path prompts_path(const fs::path& dir, std::string_view suite) {
  return dir / "prompts" / fmt::format("{}.jsonl", suite);
}

fs::path dev_prompts_path(const fs::path& dir, std::string_view suite) {
  return dir / "prompts" / "dev" / fmt::format("{}.jsonl", suite);
}

fs::path geneval_prompts_path(const fs::path& dir) {
  return dir / "prompts" / "geneval" / "evaluation_metadata.jsonl";
}

fs::path dev_geneval_prompts_path(const fs::path& dir) {
  return dir / "prompts" / "dev" / "geneval" / "evaluation_metadata.jsonl";
}

Config corpus_config(const fs::path& dir) {
  if (!fs::exists(dir / "corpus.json"))
    throw Error(fmt::format("{}: not a finished corpus (no corpus.json); run `recap corpus make "
                            "--out {}`", dir.string(), dir.string()));
  return Config::load((dir / "config.toml").string());
}

void make_corpus(const Config& config, const fs::path& out, int threads) {
  const world::WorldConfig world = world_settings(config);
  const CorpusSettings cs = corpus_settings(config);
  fs::create_directories(out);

  // A folder may only be resumed with the settings it was started with.
  fs::path config_path = out / "config.toml";
  if (fs::exists(config_path)) {
    Config existing = Config::load(config_path.string());
    if (identity(existing) != identity(config))
      throw Error(fmt::format("{}: holds a corpus made with other settings (see {}); use "
                              "another --out or remove it", out.string(), config_path.string()));
  } else {
    write_file_atomic(config_path, config.to_toml());
  }
  fs::remove(out / "corpus.json");  // unfinished until every shard is there

  std::vector<ShardTask> tasks;
  int64_t pending = 0;
  nlohmann::json shards = nlohmann::json::object();
  for (auto [split, n] : {std::pair{Split::Web, cs.web_samples},
                          std::pair{Split::Human, cs.human_samples},
                          std::pair{Split::Eval, cs.eval_samples}}) {
    for (int64_t shard = 0, first = 0; first < n; ++shard, first += cs.shard_size) {
      ShardTask task{split, shard, first, std::min(cs.shard_size, n - first)};
      shards[std::string(split_name(split))].push_back(
          fs::relative(shard_path(out, split, shard), out).generic_string());
      if (fs::exists(shard_path(out, split, shard))) continue;  // finished by an earlier run
      tasks.push_back(task);
      pending += task.count;
    }
  }
  if (tasks.empty())
    spdlog::info("corpus: all shards already written");
  else
    spdlog::info("corpus: writing {} shards ({} samples) with {} threads", tasks.size(), pending,
                 threads);

  // Shards are independent (every sample has its own seed), so threads take whole shards.
  Progress progress("corpus", pending, "img");
  std::mutex progress_mutex;
  auto on_sample = [&] {
    std::lock_guard<std::mutex> lock(progress_mutex);
    progress.add();
  };
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto worker = [&] {
    for (size_t i; (i = next++) < tasks.size();) {
      try {
        write_shard(tasks[i], out, world, cs.seed, on_sample);
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next = tasks.size();  // stop handing out work
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  progress.finish();

  write_prompts(out, world, cs.prompts_per_suite, cs.seed);
  nlohmann::json info = {{"recap", RECAP_VERSION},
                         {"seed", cs.seed},
                         {"counts",
                          {{"web", cs.web_samples},
                           {"human", cs.human_samples},
                           {"eval", cs.eval_samples},
                           {"prompts_per_suite", cs.prompts_per_suite}}},
                         {"canvas", world.canvas},
                         {"shards", shards}};
  write_file_atomic(out / "corpus.json", info.dump(2) + "\n");
}

}  // namespace recap::corpus
