// RECAP step 2 through the real binary: `recap recaption` over a smoke corpus cut into eight
// web shards (splitting across processes, kill -9 and resume, provenance checks), and
// `recap captioner eval` scoring every caption source on the same samples.
#include "core/torch_pch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/sha256.h"
#include "models/decoding.h"
#include "stages/captioner_train.h"
#include "stages/corpus.h"
#include "stages/corpus_stats.h"
#include "stages/recaption.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"
#include "test_util.h"

namespace recap::stages {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kWebSamples = 400;  // smoke preset
constexpr int kWebShards = 8;     // with shard_size 50

// A smoke corpus in 50-sample shards, its tokenizer and a smoke captioner, made once per test
// process (ctest runs each TEST in its own).
struct World {
  test::TempDir dir{"recaption"};
  fs::path corpus = dir / "corpus", tokenizer = dir / "tok.model", cap = dir / "cap";
  fs::path model = cap / "captioner.safetensors";

  World() {
    const Config config = Config::load("smoke", {"corpus.shard_size=50"});
    corpus::make_corpus(config, corpus, 2);
    corpus::train_corpus_tokenizer(corpus, tokenizer, corpus::tokenizer_options(config));
    train_captioner(corpus, tokenizer, cap, config, 2);
  }
  std::string base_args() const {
    return "recaption --threads 1 --model " + model.string() + " --tokenizer " +
           tokenizer.string() + " --in " + (corpus / "web").string();
  }
};

const World& world() {
  static const auto* w = new World;  // outlives the tests; the OS reclaims it
  return *w;
}

std::vector<fs::path> sidecars_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().string().ends_with(".recap.jsonl")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<nlohmann::json> lines_of(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Starts `recap args...` with its output discarded; returns the child's pid.
pid_t spawn_recap(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RECAP_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  return pid;
}

TEST(Recaption, ShardSplitCoversEveryKeyOnceAndLoads) {
  const World& w = world();
  test::TempDir out("recaption-split");
  for (int i = 0; i < 3; ++i) {
    auto r =
        test::run_recap(w.base_args() + " --batch-size 32 --max-length 12 --num-shards 3 " +
                        "--shard-index " + std::to_string(i) + " --out " + out.path().string());
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("images/s"));
    // Index i takes the sorted shards i, i+3, i+6.
    EXPECT_THAT(r.output, HasSubstr(fmt::format("sidecars written {}", i < 2 ? 3 : 2)));
  }
  const auto files = sidecars_in(out.path());
  ASSERT_EQ(files.size(), static_cast<size_t>(kWebShards));
  EXPECT_EQ(files.front().filename().string(), "web-00000.recap.jsonl");

  // load_recaptions refuses a (key, kind) given twice, so this also proves there is no overlap.
  const auto recaps = load_recaptions(files);
  EXPECT_TRUE(recaps.short_captions.empty());
  ASSERT_EQ(recaps.long_captions.size(), static_cast<size_t>(kWebSamples));
  for (int i = 0; i < kWebSamples; ++i)
    EXPECT_TRUE(recaps.long_captions.count(corpus::sample_key(corpus::Split::Web, i))) << i;

  // Lines follow shard order and carry their provenance.
  const auto first = lines_of(files.front());
  ASSERT_EQ(first.size(), 50u);
  EXPECT_EQ(first[0]["key"], "web-000000000");
  EXPECT_EQ(first[49]["key"], "web-000000049");
  EXPECT_EQ(first[0]["kind"], "long");
  EXPECT_EQ(first[0]["model"], sha256_file(w.model));
  models::DecodeOptions decode;
  decode.max_length = 12;
  decode.seed = 1234;  // run.seed
  EXPECT_EQ(first[0]["decode"], decode.to_json());

  // corpus_stats reads the sidecars too: all of them as one source covers every web sample.
  std::string all;
  for (const auto& f : files) all += read_file(f);
  write_file_atomic(out / "all.jsonl", all);
  const auto stats = corpus::corpus_stats(w.corpus, {out / "all.jsonl"});
  ASSERT_EQ(stats.sources.size(), 4u);
  EXPECT_EQ(stats.sources[3].name, "all");
  EXPECT_EQ(stats.sources[3].captions, kWebSamples);
  EXPECT_EQ(stats.sources[3].missing, 0);
  EXPECT_EQ(stats.sources[3].unknown_keys, 0);
}

TEST(Recaption, KilledRunResumesToIdenticalSidecarsAndChecksProvenance) {
  const World& w = world();
  test::TempDir dir("recaption-kill");
  const fs::path whole = dir / "whole", killed = dir / "killed";
  // Nucleus sampling with small batches: slow enough to kill mid-run, and the seeds must be
  // derived per shard and batch for a resumed run to match.
  const std::string decode = " --method nucleus --top-p 0.95 --max-length 16 --batch-size 2";
  auto uninterrupted = test::run_recap(w.base_args() + decode + " --out " + whole.string());
  ASSERT_EQ(uninterrupted.status, 0) << uninterrupted.output;
  EXPECT_THAT(uninterrupted.output, HasSubstr("sidecars written 8, skipped 0"));

  fs::create_directories(killed);
  const pid_t pid = spawn_recap(
      {"recaption", "--threads", "1", "--model", w.model.string(), "--tokenizer",
       w.tokenizer.string(), "--in", (w.corpus / "web").string(), "--method", "nucleus", "--top-p",
       "0.95", "--max-length", "16", "--batch-size", "2", "--out", killed.string()});
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (sidecars_in(killed).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const size_t finished = sidecars_in(killed).size();
  EXPECT_GE(finished, 1u);
  EXPECT_LT(finished, static_cast<size_t>(kWebShards)) << "the run ended before the kill";

  auto resumed = test::run_recap(w.base_args() + decode + " --out " + killed.string());
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr(fmt::format("skipped {}", finished)));
  const auto a = sidecars_in(whole), b = sidecars_in(killed);
  ASSERT_EQ(a.size(), static_cast<size_t>(kWebShards));
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].filename(), b[i].filename());
    EXPECT_EQ(read_file(a[i]), read_file(b[i])) << b[i];
  }
  // Only the sidecars are left: the killed run's partial temporary was cleared.
  EXPECT_EQ(std::distance(fs::directory_iterator(killed), fs::directory_iterator()), kWebShards);

  // Everything finished: a rerun decodes nothing.
  auto again = test::run_recap(w.base_args() + decode + " --out " + whole.string());
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("0 images"));
  EXPECT_THAT(again.output, HasSubstr("sidecars written 0, skipped 8"));

  // Other decoding settings or another kind on finished sidecars: refused, naming the file.
  auto greedy = test::run_recap(w.base_args() + " --batch-size 2 --out " + whole.string());
  EXPECT_EQ(greedy.status, 2);
  EXPECT_THAT(greedy.output, HasSubstr("web-00000.recap.jsonl: made with other settings"));
  auto kind = test::run_recap(w.base_args() + decode + " --kind short --out " + whole.string());
  EXPECT_EQ(kind.status, 2);
  EXPECT_THAT(kind.output, HasSubstr("web-00000.recap.jsonl"));

  // Inputs that cannot be recaptioned.
  auto no_model = test::run_recap("recaption --model " + (dir / "none.safetensors").string() +
                                  " --tokenizer " + w.tokenizer.string() + " --in " +
                                  (w.corpus / "web").string() + " --out " + (dir / "x").string());
  EXPECT_EQ(no_model.status, 2);
  EXPECT_THAT(no_model.output, HasSubstr("none.safetensors: no such model"));
  auto not_shard = test::run_recap(
      "recaption --model " + w.model.string() + " --tokenizer " + w.tokenizer.string() + " --in " +
      (w.corpus / "corpus.json").string() + " --out " + (dir / "x").string());
  EXPECT_EQ(not_shard.status, 2);
  EXPECT_THAT(not_shard.output, HasSubstr("corpus.json: not a .tar shard"));
  auto bad_index = test::run_recap(w.base_args() + " --num-shards 2 --shard-index 2 --out " +
                                   (dir / "x").string());
  EXPECT_EQ(bad_index.status, 2);
  EXPECT_THAT(bad_index.output, HasSubstr("shard index 2 is outside [0, 2)"));
}

// One truncated shard among the eight: the other seven are captioned, the broken one's captions
// before the break are kept under a name no reader takes for a sidecar, the job fails at the
// end naming it, a rerun does not take the partial file for finished work, and --strict
// stops at the break as before.
TEST(Recaption, BrokenShardIsNamedWhileTheOthersFinish) {
  const World& w = world();
  test::TempDir dir("recaption-broken");
  const fs::path in = dir / "in", out = dir / "out", strict = dir / "strict";
  fs::create_directories(in);
  for (const auto& shard : corpus::list_shards(w.corpus, corpus::Split::Web))
    fs::copy_file(shard, in / shard.filename());
  // Shard 3 holds web samples 150-199; cut it 10 bytes into the first entry of sample 170.
  const fs::path broken = in / "web-00003.tar";
  const std::string whole = read_file(broken);
  const std::string cut = test::cut_tar_at(whole, corpus::sample_key(corpus::Split::Web, 170));
  ASSERT_FALSE(cut.empty());
  write_file_atomic(broken, cut);
  const std::string args = "recaption --threads 1 --model " + w.model.string() + " --tokenizer " +
                           w.tokenizer.string() + " --in " + in.string() +
                           " --batch-size 32 --max-length 12 --out ";

  auto r = test::run_recap(args + out.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 7, skipped 0, broken 1"));
  EXPECT_THAT(r.output, HasSubstr("broken shards: " + broken.string()));  // the reject summary
  EXPECT_THAT(r.output, HasSubstr("recaption: 1 broken shard(s)"));
  EXPECT_THAT(r.output, HasSubstr(broken.string() + ": broken tar at entry 60 (stopped at byte "
                                                    "offset"));
  auto files = sidecars_in(out);
  ASSERT_EQ(files.size(), 7u);
  for (const auto& file : files) EXPECT_EQ(lines_of(file).size(), 50u) << file;
  const fs::path sidecar = sidecar_path(out, broken);
  EXPECT_FALSE(fs::exists(sidecar));
  ASSERT_TRUE(fs::exists(partial_sidecar_path(sidecar)));
  auto partial = lines_of(partial_sidecar_path(sidecar));
  ASSERT_EQ(partial.size(), 20u);  // every sample before the break, in shard order
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(partial[i]["key"], corpus::sample_key(corpus::Split::Web, 150 + i));

  // A rerun keeps the seven, tries the broken shard again and fails again.
  r = test::run_recap(args + out.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 0, skipped 7, broken 1"));
  EXPECT_EQ(lines_of(partial_sidecar_path(sidecar)).size(), 20u);

  // --strict: today's stop at the break with the reader's error; the shards before it are done,
  // nothing is written for the broken one or after it.
  r = test::run_recap(args + strict.string() + " --strict");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr(broken.string() + ": broken tar at entry 60"));
  EXPECT_THAT(r.output, Not(HasSubstr("broken shard(s)")));
  EXPECT_EQ(sidecars_in(strict).size(), 3u);
  EXPECT_FALSE(fs::exists(partial_sidecar_path(sidecar_path(strict, broken))));

  // The shard repaired: a rerun writes its whole sidecar and clears the partial one.
  write_file_atomic(broken, whole);
  r = test::run_recap(args + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 1, skipped 7, broken 0"));
  EXPECT_EQ(lines_of(sidecar).size(), 50u);
  EXPECT_FALSE(fs::exists(partial_sidecar_path(sidecar)));
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), kWebShards);
}

TEST(CaptionEval, ScoresEverySourceOnTheSameSamples) {
  const World& w = world();
  test::TempDir out("caption-eval");
  constexpr int kSamples = 30;
  auto r =
      test::run_recap("captioner eval --threads 1 --corpus " + w.corpus.string() + " --tokenizer " +
                      w.tokenizer.string() + " --model ft=" + w.model.string() +
                      " --model pre=" + (w.cap / "captioner_pretrain.safetensors").string() +
                      ":short --max-length 16 --samples " + std::to_string(kSamples) + " --out " +
                      out.path().string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("group precision"));

  const auto json = nlohmann::json::parse(read_file(out / "caption_quality.json"));
  EXPECT_EQ(json["samples"], kSamples);
  EXPECT_EQ(json["web"]["used"], kSamples);
  std::vector<std::string> names;
  for (const auto& s : json["sources"]) {
    names.push_back(s["name"]);
    EXPECT_EQ(s["captions"], kSamples) << s["name"];
    EXPECT_EQ(s["missing"], 0) << s["name"];
    EXPECT_EQ(s["unknown_keys"], 0) << s["name"];
  }
  EXPECT_EQ(names, (std::vector<std::string>{"alt", "human-long", "human-short", "ft", "pre"}));
  EXPECT_EQ(json["models"][1]["kind"], "short");
  EXPECT_TRUE(fs::exists(out / "caption_quality.txt"));

  // The captions are the first web samples, in order, with their kind.
  const auto pre = lines_of(out / "pre.jsonl");
  ASSERT_EQ(pre.size(), static_cast<size_t>(kSamples));
  for (int i = 0; i < kSamples; ++i) {
    EXPECT_EQ(pre[i]["key"], corpus::sample_key(corpus::Split::Web, i));
    EXPECT_EQ(pre[i]["kind"], "short");
  }

  auto clash = test::run_recap("captioner eval --corpus " + w.corpus.string() + " --tokenizer " +
                               w.tokenizer.string() + " --model alt=" + w.model.string() +
                               " --out " + (out / "x").string());
  EXPECT_EQ(clash.status, 2);
  EXPECT_THAT(clash.output, HasSubstr("model name 'alt' is taken"));
}

}  // namespace
}  // namespace recap::stages
