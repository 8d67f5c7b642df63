// A disk that fills up (issue #21): every writer under tests/fail_writes_shim.c, which makes
// writes, fsync and close fail with ENOSPC or EIO after N bytes under a folder. A failing
// write must be a recap::Error naming the file and the reason, leave nothing under the final
// name (or the old file untouched), and leave no temporary behind; `recap run` must stop with
// such an error in whatever stage the disk fills, and resume to an uninterrupted run's results.
//
// The shim only works from a process's start (LD_PRELOAD), so each writer runs in a child: this
// test binary again, told by RECAP_DISK_FULL_CASE which writer to run (ChildCases below), which
// reports the error it caught in a file outside the failing folder.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/safetensors.h"
#include "data/image.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "stages/report_parts.h"
#include "stages/run_layout.h"
#include "test_util.h"

extern char** environ;

namespace recap {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kNoSpace = "No space left on device";

// --- the child side -----------------------------------------------------------------------

// A writer under test: writes into `out` (the failing folder); returns what it has to say
// when it did not throw (most return "").
using Case = std::function<std::string(const fs::path& out)>;

std::string bytes_of(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

// Noise, so the PNG is about as large as the pixels (no budget below fits it).
data::Image noise(int size) {
  data::Image image{size, size, 3, {}};
  image.pixels.resize(static_cast<size_t>(size) * size * 3);
  uint32_t state = 12345;
  for (auto& p : image.pixels) p = static_cast<uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  return image;
}

const std::map<std::string, Case>& cases() {
  static const std::map<std::string, Case> all = {
      {"write_file_atomic",
       [](const fs::path& out) {
         write_file_atomic(out / "final.bin", bytes_of(64 << 10, 'a'));
         return std::string();
       }},
      {"atomic_file_stream",
       [](const fs::path& out) {
         AtomicFile file(out / "final.bin");
         for (int i = 0; i < 64; ++i) file.write(bytes_of(1000, static_cast<char>(i)));
         file.commit();
         return std::string();
       }},
      {"safetensors",
       [](const fs::path& out) {
         const std::string a = bytes_of(40000, 'x'), b = bytes_of(4000, 'y');
         save_safetensors(out / "final.bin",
                          {{"a", DType::F32, {100, 100}, a}, {"b", DType::U8, {4000}, b}},
                          {{"note", "disk full"}});
         return std::string();
       }},
      {"shard",
       [](const fs::path& out) {
         data::ShardWriter shard(out / "final.bin");
         const std::string png = data::encode_png(noise(32));
         for (int i = 0; i < 40; ++i)
           shard.add_sample("k" + std::to_string(i), "png", png, "a caption", {{"i", i}});
         shard.commit();
         return std::string();
       }},
      {"png",
       [](const fs::path& out) {
         write_file_atomic(out / "final.bin", data::encode_png(noise(96)));
         return std::string();
       }},
      {"jsonl",
       [](const fs::path& out) {
         JsonlWriter log(out / "final.bin");
         for (int step = 1; step <= 2000; ++step)
           log.write({{"step", step}, {"loss", 1.0 / step}, {"note", std::string(20, 'a')}});
         return std::string();
       }},
      {"plot",
       [](const fs::path& out) {
         stages::report::Series series{"loss", {}};
         for (int i = 0; i < 100; ++i) series.points.emplace_back(i, 1.0 / (1 + i));
         return stages::report::plot({{"training", "step", "loss", {series}}}, out / "final.bin");
       }},
  };
  return all;
}

// In the child (RECAP_DISK_FULL_CASE set), before any test: runs the case and exits with
// 0 (no error; its words in the report file), 3 (recap::Error) or 4 (any other exception).
class ChildCases : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* name = std::getenv("RECAP_DISK_FULL_CASE");
    if (!name) return;
    const fs::path out = std::getenv("RECAP_DISK_FULL_OUT");
    const std::string report = std::getenv("RECAP_DISK_FULL_REPORT");
    int status = 0;
    std::string said;
    try {
      said = cases().at(name)(out);
    } catch (const Error& e) {
      status = 3;
      said = e.what();
    } catch (const std::exception& e) {
      status = 4;
      said = e.what();
    }
    if (std::FILE* f = std::fopen(report.c_str(), "wb")) {
      std::fwrite(said.data(), 1, said.size(), f);
      std::fclose(f);
    }
    std::_Exit(status);
  }
};
const auto* const kChildCases = ::testing::AddGlobalTestEnvironment(new ChildCases);

// --- the parent side ----------------------------------------------------------------------

struct Shim {
  fs::path under;        // the failing folder
  long long after = 0;   // bytes it takes before failing
  std::string error = "ENOSPC";
  std::string ops = "";  // "": write, fsync and close fail
};

std::vector<std::string> shim_env(const Shim& shim) {
  std::vector<std::string> env = {std::string("LD_PRELOAD=") + RECAP_FAIL_WRITES_SHIM,
                                  "RECAP_FAIL_WRITES_UNDER=" + shim.under.string(),
                                  "RECAP_FAIL_WRITES_AFTER=" + std::to_string(shim.after),
                                  "RECAP_FAIL_WRITES_ERRNO=" + shim.error,
                                  "RECAP_FAIL_WRITES_OPS=" + shim.ops};
  return env;
}

// Runs `argv` with the current environment plus `extra`; its exit status (128 + signal).
int spawn_wait(const std::vector<std::string>& argv, const std::vector<std::string>& extra,
               const fs::path& log) {
  std::vector<std::string> env_strings = extra;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('=') + 1);
    bool replaced = false;
    for (const auto& x : extra) replaced = replaced || x.rfind(key, 0) == 0;
    if (!replaced) env_strings.push_back(entry);
  }
  std::vector<char*> env, args;
  for (auto& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return -1;
  int raw = 0;
  ::waitpid(pid, &raw, 0);
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

struct CaseResult {
  int status;         // 0 no error, 3 recap::Error, 4 another exception, else a crash
  std::string said;   // the error's message (or what the case returned)
  std::string log;    // the child's output
};

// Runs writer `name` in a child with the shim failing writes under `out`.
CaseResult run_case(const std::string& name, const Shim& shim, const fs::path& scratch) {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path report = scratch / (name + ".said"), log = scratch / (name + ".log");
  std::vector<std::string> extra = shim_env(shim);
  extra.push_back("RECAP_DISK_FULL_CASE=" + name);
  extra.push_back("RECAP_DISK_FULL_OUT=" + shim.under.string());
  extra.push_back("RECAP_DISK_FULL_REPORT=" + report.string());
  const int status = spawn_wait({"/proc/self/exe", std::string("--gtest_filter=") +
                                                       test->test_suite_name() + "." +
                                                       test->name()},
                                extra, log);
  CaseResult r{status, "", read_file(log)};
  if (fs::exists(report)) r.said = read_file(report);
  return r;
}

// Every file under `dir`, relative.
std::set<std::string> files_under(const fs::path& dir) {
  std::set<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_directory()) out.insert(fs::relative(e.path(), dir).string());
  return out;
}

// Each atomic writer, with the disk full at its first byte, halfway through and at the fsync:
// a recap::Error naming the final file and the reason, nothing under the final name and no
// temporary; then an old file under that name that must come through untouched.
TEST(DiskFull, EachAtomicWriterFailsNamingTheFileAndLeavesNothing) {
  test::TempDir dir("disk-full");
  struct Budget {
    long long after;
    std::string error, ops, reason;
    bool old_file;  // an older file under the final name, which must come through untouched
  };
  const std::vector<Budget> every_writer = {{0, "ENOSPC", "", kNoSpace, false},
                                            {3000, "ENOSPC", "", kNoSpace, true},
                                            {3000, "EIO", "", "Input/output error", false}};
  // Only the flush fails (the writes went through): the commit every writer ends with.
  const std::vector<Budget> at_commit = {{0, "EIO", "fsync", "Input/output error", false},
                                         {0, "ENOSPC", "close", kNoSpace, true}};
  for (const std::string name :
       {"write_file_atomic", "atomic_file_stream", "safetensors", "shard", "png"}) {
    auto budgets = every_writer;
    if (name == "write_file_atomic" || name == "atomic_file_stream")
      budgets.insert(budgets.end(), at_commit.begin(), at_commit.end());
    for (const auto& b : budgets) {
      const bool old_file = b.old_file;
      const std::string what = name + " after " + std::to_string(b.after) + " " + b.error +
                               " on " + (b.ops.empty() ? "all" : b.ops) +
                               (old_file ? ", over an old file" : "");
      SCOPED_TRACE(what);
      const fs::path out = dir / "out";
      fs::remove_all(out);
      fs::create_directories(out);
      if (old_file) write_file_atomic(out / "final.bin", "the old file");
      const auto r = run_case(name, {out, b.after, b.error, b.ops}, dir.path());
      ASSERT_EQ(r.status, 3) << r.said << "\n" << r.log;
      EXPECT_THAT(r.said, HasSubstr((out / "final.bin").string() + ": "));
      EXPECT_THAT(r.said, HasSubstr(b.reason));
      if (old_file) {
        EXPECT_EQ(files_under(out), std::set<std::string>{"final.bin"});
        EXPECT_EQ(read_file(out / "final.bin"), "the old file");
      } else {
        EXPECT_EQ(files_under(out), std::set<std::string>{});
      }
    }
  }
  // With room enough, the same writers finish (the shim itself is no failure).
  for (const std::string name :
       {"write_file_atomic", "atomic_file_stream", "safetensors", "shard", "png"}) {
    const fs::path out = dir / "out";
    fs::remove_all(out);
    fs::create_directories(out);
    const auto r = run_case(name, {out, 1 << 30, "ENOSPC", ""}, dir.path());
    EXPECT_EQ(r.status, 0) << name << ": " << r.said << "\n" << r.log;
    EXPECT_EQ(files_under(out), std::set<std::string>{"final.bin"}) << name;
    if (name == "shard") {  // what the shard writer wrote whole reads back whole
      data::ShardReader reader(out / "final.bin");
      int samples = 0;
      while (reader.next()) ++samples;
      EXPECT_EQ(samples, 40);
    }
  }
}

// metrics.jsonl is appended to, line by line: a full disk ends it with the last whole line
// (a part-written line is cut off again) and an error naming it.
TEST(DiskFull, JsonlLogEndsWithWholeLines) {
  test::TempDir dir("disk-full-jsonl");
  const fs::path out = dir / "out";
  for (const long long after : {0LL, 1000LL, 20000LL}) {
    SCOPED_TRACE(after);
    fs::remove_all(out);
    fs::create_directories(out);
    const auto r = run_case("jsonl", {out, after, "ENOSPC", ""}, dir.path());
    ASSERT_EQ(r.status, 3) << r.said << "\n" << r.log;
    EXPECT_THAT(r.said, HasSubstr((out / "final.bin").string() + ": write failed: " + kNoSpace));
    const std::string text = read_file(out / "final.bin");
    EXPECT_LE(static_cast<long long>(text.size()), after);
    if (!text.empty()) {
      EXPECT_EQ(text.back(), '\n');
    }
    const auto lines = read_jsonl(out / "final.bin");  // every line parses
    for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["step"], i + 1);
    if (after >= 1000) {
      EXPECT_GT(lines.size(), 5u);
    }
  }
}

// The report's training curves come from gnuplot, which exits 0 even when its picture could
// not be written whole: the picture is checked before it is published, and the report says
// why the plot is missing.
TEST(DiskFull, PlotWithTheDiskFullInGnuplotIsSkippedNotPublishedCut) {
  test::TempDir dir("disk-full-plot");
  const fs::path out = dir / "out";
  fs::create_directories(out);
  // Room for the data and script (the parent's), not for gnuplot's picture (its own budget).
  const auto cut = run_case("plot", {out, 4000, "ENOSPC", ""}, dir.path());
  ASSERT_EQ(cut.status, 0) << cut.said << "\n" << cut.log;
  EXPECT_THAT(cut.said, HasSubstr("not a whole PNG"));
  EXPECT_EQ(files_under(out), std::set<std::string>{});
  // The data itself not written: an error naming the file.
  const auto none = run_case("plot", {out, 0, "ENOSPC", ""}, dir.path());
  ASSERT_EQ(none.status, 3) << none.said << "\n" << none.log;
  EXPECT_THAT(none.said, HasSubstr(kNoSpace));
  EXPECT_THAT(none.said, HasSubstr(out.string()));
  EXPECT_EQ(files_under(out), std::set<std::string>{});
  // With room: the picture, whole.
  const auto whole = run_case("plot", {out, 1 << 30, "ENOSPC", ""}, dir.path());
  ASSERT_EQ(whole.status, 0) << whole.said << "\n" << whole.log;
  EXPECT_EQ(whole.said, "");
  EXPECT_EQ(files_under(out), std::set<std::string>{"final.bin"});
  EXPECT_TRUE(data::decode_image(read_file(out / "final.bin")).image.has_value());
}


// --- recap run on a disk that fills up ------------------------------------------------------

// One arm and no intermediate checkpoint evaluations keep the test near two minutes: the
// stages are the same code for every arm.
const std::string kRunFlags =
    "--threads 1 run --preset smoke --arms alt --set run.checkpoint_evals=0 --runs-dir ";
// Bytes each successive run may write under the run's folder, and the stage that puts it over
// (from RECAP_FAIL_WRITES_TRACE, in the middle of that stage's writes; the runs resume each
// other, so each counts from its own start): the corpus (1.7 MB of shards), the evaluator's
// training (a checkpoint), the t2i model's training and the sampling.
const std::vector<std::pair<long long, std::string>> kRunBudgets = {
    {1'200'000, "corpus"}, {3'000'000, "evaluator"}, {14'000'000, "t2i-alt"},
    {9'800'000, "samples-alt"}};

// Whether every file a failed run left under `dir` is whole: no temporary, and each JSON,
// JSONL, safetensors, PNG and tar reads to its end. Returns the problems, one a line.
std::string half_written(const fs::path& dir) {
  std::string problems;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const fs::path& p = e.path();
    const std::string name = p.filename().string(), ext = p.extension().string();
    if (name.find(".tmp.") != std::string::npos) problems += p.string() + ": left behind\n";
    if (!e.is_regular_file() || name.find(".tmp.") != std::string::npos) continue;
    try {
      if (ext == ".json") {
        if (nlohmann::json::parse(read_file(p), nullptr, false).is_discarded())
          problems += p.string() + ": bad JSON\n";
      } else if (ext == ".jsonl" || name.ends_with(".jsonl.partial")) {
        const std::string text = read_file(p);
        if (!text.empty() && text.back() != '\n') problems += p.string() + ": a cut line\n";
        (void)read_jsonl(p);
      } else if (ext == ".safetensors") {
        (void)Safetensors::load(p);
      } else if (ext == ".png") {
        if (!data::decode_image(read_file(p)).image) problems += p.string() + ": bad PNG\n";
      } else if (ext == ".tar") {
        data::ShardReader reader(p);
        while (reader.next()) {
        }
      }
    } catch (const std::exception& ex) {
      problems += p.string() + ": " + ex.what() + "\n";
    }
  }
  return problems;
}

// Each stage's output hashes from the manifest, by "STAGE: PATH".
std::map<std::string, std::string> output_hashes(const fs::path& run) {
  const auto manifest = nlohmann::json::parse(read_file(run / "manifest.json"));
  std::map<std::string, std::string> out;
  for (const auto& [stage, record] : manifest.at("stages").items()) {
    const auto outputs = record.value("outputs", nlohmann::json::object());
    for (const auto& [path, hash] : outputs.items()) out[stage + ": " + path] = hash.at("sha256");
  }
  return out;
}

// The run on a disk that fills up, again and again in later stages: each time a clear error
// (the stage, the file being written, the reason), status 2 and nothing half-written left in
// place; once there is room again, the rerun finishes with an uninterrupted run's outputs.
TEST(DiskFull, RunStopsWithAClearErrorInEachStageAndResumesToTheSameResults) {
  test::TempDir dir("disk-full-run");
  const fs::path filled = dir / "filled";
  for (const auto& [budget, expected_stage] : kRunBudgets) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    const int status =
        spawn_wait({"/bin/sh", "-c",
                    std::string(RECAP_BINARY) + " " + kRunFlags + dir.path().string() +
                        " --name filled"},
                   shim_env({filled, budget, "ENOSPC", ""}), dir / "filled.log");
    const std::string output = read_file(dir / "filled.log");
    ASSERT_EQ(status, 2) << output;
    // "error: stage 'S' failed: /.../filled/FILE: write failed: No space left on device"
    const auto at = output.find("error: ");
    ASSERT_NE(at, std::string::npos) << output;
    const std::string error = output.substr(at, output.find('\n', at) - at);
    EXPECT_THAT(error, HasSubstr("stage '" + expected_stage + "' failed: ")) << output;
    EXPECT_THAT(error, HasSubstr(": " + filled.string() + "/")) << output;
    EXPECT_THAT(error, HasSubstr(std::string(": write failed: ") + kNoSpace)) << output;
    EXPECT_EQ(half_written(filled), "") << output;
  }

  auto resumed = test::run_recap(kRunFlags + dir.path().string() + " --name filled");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("stage corpus: up to date, skipped"));
  auto straight = test::run_recap(kRunFlags + dir.path().string() + " --name straight");
  ASSERT_EQ(straight.status, 0) << straight.output;
  EXPECT_EQ(half_written(filled), "");
  const auto hashes = output_hashes(filled), expected = output_hashes(dir / "straight");
  ASSERT_EQ(hashes.size(), expected.size());
  for (const auto& [output, hash] : expected) {
    ASSERT_TRUE(hashes.count(output)) << output;
    if (hashes.at(output) == hash) continue;
    // A JSON output may differ by a wall time ("train_seconds": the evaluator's, the judge
    // CLIP's) and by the run's own folder in the paths it quotes; FID and KID may differ in
    // their last bits (LAPACK; issue #14). Anything else must be the same file.
    const std::string rel = output.substr(output.find(": ") + 2);
    ASSERT_TRUE(rel.ends_with(".json")) << output << " differs";
    std::function<void(nlohmann::json&)> normal = [&](nlohmann::json& j) {
      if (j.is_object()) j.erase("train_seconds");
      if (j.is_string()) {
        std::string text = j;
        for (auto at = text.find(filled.string()); at != std::string::npos;
             at = text.find(filled.string(), at + 1))
          text.replace(at, filled.string().size(), (dir / "straight").string());
        j = text;
      }
      if (j.is_structured())
        for (auto& v : j) normal(v);
    };
    const std::function<void(const nlohmann::json&, const nlohmann::json&, const std::string&)>
        same = [&](const nlohmann::json& a, const nlohmann::json& b, const std::string& where) {
          if (a.is_number_float() && b.is_number()) {
            const double u = a, v = b;
            EXPECT_NEAR(u, v, 1e-9 * std::max({1.0, std::abs(u), std::abs(v)})) << where;
          } else if (a.is_structured() && b.is_structured() && a.type() == b.type() &&
                     a.size() == b.size()) {
            if (a.is_object()) {
              for (const auto& [key, value] : a.items())
                same(value, b.contains(key) ? b[key] : nlohmann::json(), where + "." + key);
            } else {
              for (size_t i = 0; i < a.size(); ++i)
                same(a[i], b[i], where + "[" + std::to_string(i) + "]");
            }
          } else {
            EXPECT_EQ(a, b) << where;
          }
        };
    auto x = nlohmann::json::parse(read_file(filled / rel));
    auto y = nlohmann::json::parse(read_file(dir / "straight" / rel));
    normal(x);
    normal(y);
    same(x, y, output);
  }
}

}  // namespace
}  // namespace recap
