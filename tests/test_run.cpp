// `recap run` end to end on the smoke preset through the real binary: every stage's output,
// the report and a complete metrics JSON; `recap status`; and a run killed inside every phase
// of its plan that resumes to exactly the outputs of an uninterrupted one (kill anywhere).
#include <poll.h>
#include <sys/inotify.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <tuple>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "core/safetensors.h"
#include "stages/run_layout.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::vector<std::string> kArms = {"alt", "recap"};
const std::string kRunFlags = "--threads 1 run --preset smoke --arms alt,recap --runs-dir ";

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

// The metrics every eval JSON must carry, each a {"value", "ci", "n"} object: a number inside
// its interval when something was measured (n > 0), null only when nothing was (n == 0). The
// keys in `measured` must have been measured: every prompt set asks for objects, and the
// smoke suites together state counts, relations and colours.
void expect_complete_metrics(const nlohmann::json& metrics, const std::string& where,
                             const std::vector<std::string>& measured = {"soa_c", "soa_i"}) {
  for (const char* key : {"soa_c", "soa_i", "count_error", "count_exact", "position",
                          "position_given_found", "colour_binding", "clip_score"}) {
    const std::string what = where + " " + key;
    ASSERT_TRUE(metrics.contains(key)) << where << " lacks " << key;
    const auto& m = metrics[key];
    ASSERT_TRUE(m.contains("value") && m.contains("ci") && m["n"].is_number_unsigned()) << what;
    if (m["n"].get<int64_t>() == 0) {
      EXPECT_TRUE(m["value"].is_null() && m["ci"].is_null()) << what << ": " << m;
      EXPECT_EQ(std::count(measured.begin(), measured.end(), key), 0) << what << " not measured";
      continue;
    }
    ASSERT_TRUE(m["value"].is_number() && m["ci"].is_array() && m["ci"].size() == 2)
        << what << ": " << m;
    const double value = m["value"], lo = m["ci"][0], hi = m["ci"][1];
    EXPECT_TRUE(std::isfinite(value) && lo <= value && value <= hi) << what << ": " << m;
  }
}

const std::vector<std::string> kAllMeasured = {"soa_c",    "soa_i",   "count_error",
                                               "count_exact", "position", "colour_binding"};
// An arm's images are also scored by the smoke preset's judge CLIP (run.judge_clip).
const std::vector<std::string> kArmMeasured = {"soa_c",       "soa_i",    "count_error",
                                               "count_exact", "position", "colour_binding",
                                               "clip_score"};

// Same keys, strings and integers; floating-point numbers within 1e-9 relative. The detector's
// metrics come out bit-identical, but FID and KID go through LAPACK's eigensolver, whose last
// bits were seen to differ between two calls on an AVX2-only EPYC (issue #14); one image more
// or less in any metric moves it by far more than 1e-9.
void expect_same_results(const nlohmann::json& a, const nlohmann::json& b,
                         const std::string& where) {
  if (a.is_number_float() || b.is_number_float()) {
    ASSERT_TRUE(a.is_number() && b.is_number()) << where << ": " << a << " vs " << b;
    const double x = a, y = b;
    EXPECT_LE(std::abs(x - y), 1e-9 * std::max({1.0, std::abs(x), std::abs(y)}))
        << where << ": " << x << " vs " << y;
  } else if (a.is_object() && b.is_object()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (const auto& [key, value] : a.items()) {
      ASSERT_TRUE(b.contains(key)) << where << " lacks " << key;
      expect_same_results(value, b[key], where + "." + key);
    }
  } else if (a.is_array() && b.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (size_t i = 0; i < a.size(); ++i)
      expect_same_results(a[i], b[i], where + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(a, b) << where;
  }
}

// The main table `recap run` prints last: the paragraph before its "report: " line.
std::string main_table(const std::string& output) {
  const auto report = output.rfind("\nreport: ");
  if (report == std::string::npos) return "";
  const auto last = output.find_last_not_of('\n', report);  // the table's last character
  const auto begin = output.rfind("\n\n", last);
  return begin == std::string::npos ? "" : output.substr(begin + 2, last - begin - 1);
}

TEST(RunSmoke, EveryStageReportAndStatus) {
  test::TempDir dir("run");
  auto r = test::run_recap(kRunFlags + dir.path().string() + " --name s");
  ASSERT_EQ(r.status, 0) << r.output;
  const stages::RunLayout layout{dir / "s"};
  EXPECT_THAT(r.output, HasSubstr("report: " + (layout.report() / "index.html").string()));

  EXPECT_TRUE(fs::exists(layout.corpus() / "corpus.json"));
  EXPECT_TRUE(fs::exists(layout.tokenizer()));
  EXPECT_TRUE(fs::exists(layout.evaluator() / "evaluator.safetensors"));
  EXPECT_TRUE(fs::exists(layout.vision() / "evaluator.safetensors"));  // the captioner's encoder
  EXPECT_TRUE(fs::exists(layout.captioner_stage1()));
  EXPECT_TRUE(fs::exists(layout.captioner_final()));
  EXPECT_TRUE(fs::exists(layout.recaption("long") / "web-00000.recap.jsonl"));
  EXPECT_FALSE(fs::exists(layout.recaption("short")));  // no recap-mix arm asked for
  EXPECT_TRUE(fs::exists(layout.caption_quality_json()));
  EXPECT_TRUE(fs::exists(layout.judge_clip() / "clip.safetensors"));
  EXPECT_EQ(Safetensors::load(layout.judge_clip() / "clip.safetensors").metadata().at("captions"),
            "renders");
  EXPECT_TRUE(fs::exists(layout.report() / "report.md"));
  for (const auto& arm : kArms) {
    EXPECT_TRUE(fs::exists(layout.t2i_weights(arm))) << arm;
    EXPECT_TRUE(fs::exists(layout.samples(arm) / "images.jsonl")) << arm;
    auto eval = read_json(layout.eval_json(arm));
    EXPECT_EQ(eval["name"], arm);
    expect_complete_metrics(eval["overall"], arm, kArmMeasured);
    EXPECT_TRUE(eval["clip_judge"].contains("short_captions")) << arm;
    for (const char* suite : {"counting", "position", "colour_binding", "multi_object"})
      expect_complete_metrics(eval["suites"][suite], arm + "/" + suite);
    EXPECT_TRUE(eval["fid"].is_object()) << arm;
    // Image by image beside the summary, for the report's paired comparison.
    std::ifstream per_image(layout.eval_images(arm));
    const auto lines = std::count(std::istreambuf_iterator<char>(per_image),
                                  std::istreambuf_iterator<char>(), '\n');
    EXPECT_EQ(lines, eval["images"].get<int64_t>()) << arm;
    // GenEval's prompts (smoke: eval.geneval_per_task = 2 of each of the six tasks), sampled in
    // GenEval's layout apart from the suites and judged by GenEval's rules alone.
    EXPECT_TRUE(fs::exists(layout.samples(arm, "geneval") / "00011" / "samples" / "0000.png"));
    EXPECT_EQ(eval["geneval"]["images"], 12) << arm;
    EXPECT_EQ(eval["geneval"]["tasks"].size(), 6u) << arm;
    const auto geneval_lines = read_jsonl(layout.eval() / (arm + ".geneval.jsonl"));
    ASSERT_EQ(geneval_lines.size(), 12u) << arm;
    // Named by their place in the folder, so the lines are the same wherever the run lies.
    EXPECT_EQ(geneval_lines.front().at("filename"), "00000/samples/0000.png") << arm;

    // Sample efficiency (run.checkpoint_evals = 1, checkpoint.every = 3 of 6 steps): the step-3
    // checkpoint is sampled with the same prompts and seeds, from other weights.
    auto at3 = read_json(layout.eval_json(arm, 3));
    EXPECT_EQ(at3["name"], arm + "-step-3");
    expect_complete_metrics(at3["overall"], arm + " at step 3");
    EXPECT_FALSE(fs::exists(layout.eval_json(arm, 6)));  // the final model is eval/ARM.json
    const auto first_line = [](const fs::path& list) {
      const std::string text = read_file(list);
      return nlohmann::json::parse(text.substr(0, text.find('\n')));
    };
    const auto final_image = first_line(layout.samples(arm) / "images.jsonl");
    const auto step3_image = first_line(layout.checkpoint_samples(arm, 3) / "images.jsonl");
    EXPECT_EQ(step3_image["prompt"], final_image["prompt"]);
    EXPECT_EQ(step3_image["seed"], final_image["seed"]);
    const std::string file = final_image["file"];
    EXPECT_NE(read_file(layout.checkpoint_samples(arm, 3) / file),
              read_file(layout.samples(arm) / file));  // other weights, another image
  }
  expect_complete_metrics(read_json(layout.eval_json("ceiling"))["overall"], "ceiling",
                          kArmMeasured);  // the renders against their own captions, for CLIP
  EXPECT_TRUE(fs::exists(layout.eval_images("ceiling")));
  EXPECT_EQ(read_json(layout.eval_json("ceiling"))["geneval"]["images"], 12);
  EXPECT_EQ(read_jsonl(layout.eval() / "ceiling.geneval.jsonl").size(), 12u);
  const auto report = read_file(layout.report() / "report.md");
  // The GenEval table: a row per arm and the ceiling's.
  const auto geneval_at = report.find("### GenEval-style scores");
  ASSERT_NE(geneval_at, std::string::npos) << report;
  const std::string geneval =
      report.substr(geneval_at, report.find("\n#", geneval_at + 1) - geneval_at);
  for (const std::string row : {"| alt |", "| recap |", "| ceiling |"})
    EXPECT_THAT(geneval, HasSubstr(row)) << geneval;
  EXPECT_THAT(report, ::testing::Not(HasSubstr("intermediate checkpoints: not run")));
  EXPECT_THAT(report, HasSubstr("recap - alt: paired difference"));
  // The main table and each of the four suites' tables have the paired column.
  size_t paired_tables = 0;
  for (size_t at = report.find("recap - alt: paired difference"); at != std::string::npos;
       at = report.find("recap - alt: paired difference", at + 1))
    ++paired_tables;
  EXPECT_EQ(paired_tables, 5u);
  EXPECT_THAT(report, HasSubstr("CLIP score (judge CLIP, 0-100)"));
  EXPECT_THAT(report, HasSubstr("Pairwise faithfulness"));
  EXPECT_THAT(report, HasSubstr("The judge CLIP behind the CLIP score (judge-clip/: 6 steps"));
  EXPECT_THAT(report, ::testing::Not(HasSubstr("Paired differences: not available")));

  auto manifest = read_json(layout.manifest());
  for (const auto& [name, record] : manifest["stages"].items())
    EXPECT_EQ(record["status"], "done") << name;

  auto status = test::run_recap("status s --runs-dir " + dir.path().string());
  ASSERT_EQ(status.status, 0) << status.output;
  EXPECT_THAT(status.output, HasSubstr("t2i-recap"));
  EXPECT_THAT(status.output, ::testing::Not(HasSubstr("pending")));

  // A second run skips every stage and gives the same table.
  auto again = test::run_recap(kRunFlags + dir.path().string() + " --name s");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("resuming"));
  EXPECT_THAT(again.output, HasSubstr("stage t2i-alt: up to date, skipped"));
  EXPECT_THAT(again.output, HasSubstr("stage eval/recap: up to date, skipped"));
}

// Kill anywhere (issue #21): `recap run` killed with SIGKILL inside every phase of its plan, at
// seeded random points of each phase's work, restarted after every kill, must finish with the
// outputs of an uninterrupted run (same binary, thread count and run folder) and no temporary
// file left behind. The test runs it at the smoke scale, one kill per phase; the environment
// scales it up for scripts/kill-anywhere.sh (more kills, another preset, other arms):
//   RECAP_KILL_PRESET (smoke), RECAP_KILL_ARMS (alt,recap), RECAP_KILL_THREADS (1),
//   RECAP_KILL_PER_STAGE (1), RECAP_KILL_SEED (21), RECAP_KILL_SET (more flags for `run`),
//   RECAP_KILL_KEEP (a folder to keep the runs and their logs in, instead of a temp folder).
struct KillSettings {
  std::string preset = "smoke", arms = "alt,recap", extra;
  int threads = 1, per_stage = 1;
  uint64_t seed = 21;
  std::string keep;

  static KillSettings from_env() {
    KillSettings s;
    auto text = [](const char* name, std::string& out) {
      if (const char* v = std::getenv(name); v && *v) out = v;
    };
    auto number = [](const char* name, auto& out) {
      if (const char* v = std::getenv(name); v && *v) out = std::stoll(v);
    };
    text("RECAP_KILL_PRESET", s.preset);
    text("RECAP_KILL_ARMS", s.arms);
    text("RECAP_KILL_SET", s.extra);
    text("RECAP_KILL_KEEP", s.keep);
    number("RECAP_KILL_THREADS", s.threads);
    number("RECAP_KILL_PER_STAGE", s.per_stage);
    number("RECAP_KILL_SEED", s.seed);
    return s;
  }
  std::string run_flags(const fs::path& runs) const {
    return fmt::format("--threads {} run --preset {} --arms {} --runs-dir {} --name run {}",
                       threads, preset, arms, runs.string(), extra);
  }
};

// The report is written after the last stage and has no manifest record of its own.
const std::string kReportPhase = "report";

// The stages of a run's plan in order, as `recap status` lists them (the binary's own plan,
// so the phases follow it as stages come and go).
std::vector<std::string> planned_stages(const fs::path& runs, const std::string& name) {
  const auto r = test::run_recap("status " + name + " --runs-dir " + runs.string());
  EXPECT_EQ(r.status, 0) << r.output;
  std::vector<std::string> stages;
  std::istringstream lines(r.output);
  bool table = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("total stage time")) break;
    // "NAME STATUS [TIME FINISHED]"; log lines and error lines are not stages.
    std::istringstream columns(line);
    std::string stage, status;
    if (table && columns >> stage >> status &&
        (status == "pending" || status == "running" || status == "done" || status == "failed"))
      stages.push_back(stage);
    if (line.starts_with("stage ")) table = true;  // the header
  }
  return stages;
}

// CPU seconds `pid` has used, all threads, user and system; -1 once it is gone. Kill points
// are set in CPU time rather than wall time so they fall at the same point of a stage's work
// however loaded the machine is.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto name_end = stat.rfind(')');
  if (name_end == std::string::npos) return -1;
  std::istringstream fields(stat.substr(name_end + 2));  // from field 3 (state) on
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;
  long long utime = 0, stime = 0;  // fields 14 and 15
  if (!(fields >> utime >> stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Follows a `recap run` child through its manifest with inotify on the run folder, so no stage
// is too short to be seen: each rename of manifest.json stops the child (SIGSTOP) until the
// caller has read it and decided, then continue() lets it go on.
class ManifestWatch {
 public:
  explicit ManifestWatch(const fs::path& run) : run_(run), fd_(::inotify_init1(IN_NONBLOCK)) {
    fs::create_directories(run);
    // IN_CREATE too: the temporary's creation between two renames keeps the kernel from
    // merging them into one event.
    if (fd_ < 0 || ::inotify_add_watch(fd_, run.c_str(), IN_CREATE | IN_MOVED_TO) < 0)
      throw std::runtime_error("inotify on " + run.string() + ": " + std::strerror(errno));
  }
  ~ManifestWatch() { ::close(fd_); }
  ManifestWatch(const ManifestWatch&) = delete;
  ManifestWatch& operator=(const ManifestWatch&) = delete;

  // Waits up to 5 ms; the number of manifest renames seen (0: none, the child runs on).
  int wait(pid_t pid) {
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, 5);
    alignas(inotify_event) char buf[8192];
    int renames = 0;
    for (ssize_t n; (n = ::read(fd_, buf, sizeof buf)) > 0;)
      for (char* at = buf; at < buf + n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(at);
        if ((e->mask & IN_MOVED_TO) && e->len > 0 && std::string(e->name) == "manifest.json")
          ++renames;
        at += sizeof(inotify_event) + e->len;
      }
    if (renames > 0) ::kill(pid, SIGSTOP);
    return renames;
  }
  nlohmann::json manifest() const { return read_json(run_ / "manifest.json"); }

 private:
  fs::path run_;
  int fd_;
};

// The phase a manifest shows: the first stage of the plan not done, when this process marked
// it running (`own`: a record left running by a killed process is not a phase yet), "" between
// stages, kReportPhase once every stage is done.
std::string phase_of(const nlohmann::json& manifest, const std::vector<std::string>& plan,
                     bool own) {
  const auto& stages = manifest.at("stages");
  for (const auto& stage : plan) {
    if (stage == kReportPhase) break;  // the plan's last phase, with no record
    const std::string status =
        stages.contains(stage) ? stages[stage].value("status", "pending") : "pending";
    if (status == "done") continue;
    return status == "running" && own ? stage : "";
  }
  return kReportPhase;
}

// One run of `recap run` as a child, followed phase by phase through its manifest: the CPU
// time each phase took and, where `kill_at(phase)` names a CPU time into a phase, a SIGKILL
// there. With an empty plan it only records what the manifest showed, and when.
struct ChildRun {
  int status = -1;        // exit status; 137 when killed
  std::string aimed;      // the phase whose kill point was reached
  std::string killed_in;  // the phase the manifest shows after the kill
  // (CPU seconds, manifest, whether this process wrote it) at every change of the manifest.
  std::vector<std::tuple<double, nlohmann::json, bool>> trace;
  double cpu = 0;  // CPU seconds at the end
};

ChildRun run_child(const std::string& flags, const fs::path& log, ManifestWatch& watch,
                   const std::vector<std::string>& plan,
                   const std::function<std::optional<double>(const std::string&)>& kill_at,
                   std::chrono::seconds timeout) {
  ChildRun out;
  test::Child child(flags, log);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int renames = 0;  // the first is RunDir's own, which changes no stage record
  std::string phase;
  double phase_start = 0;
  std::optional<double> target;
  while (child.running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      child.kill();
      ADD_FAILURE() << "recap run did not finish in " << timeout.count() << " s: "
                    << read_file(log);
      return out;
    }
    const int seen = watch.wait(child.pid());  // stops the child when seen > 0
    if (const double now = cpu_seconds(child.pid()); now >= 0) out.cpu = now;
    if (seen > 0) {
      renames += seen;
      out.trace.emplace_back(out.cpu, watch.manifest(), renames >= 2);
      const std::string now =
          plan.empty() ? "" : phase_of(std::get<1>(out.trace.back()), plan, renames >= 2);
      if (now != phase) {
        phase = now;
        phase_start = out.cpu;
        target = phase.empty() ? std::nullopt : kill_at(phase);
      }
    }
    if (target && out.cpu - phase_start >= *target) {
      child.kill();
      out.status = 137;
      out.aimed = phase;
      // What the manifest shows once the process is dead, not what it showed last.
      out.killed_in = phase_of(watch.manifest(), plan, renames >= 2);
      return out;
    }
    if (seen > 0) ::kill(child.pid(), SIGCONT);
  }
  out.status = child.wait();
  return out;
}

// The CPU time of each phase of an uninterrupted run, from its trace.
std::map<std::string, double> phase_cpu(const ChildRun& run,
                                        const std::vector<std::string>& plan) {
  std::map<std::string, double> out;
  std::string phase;
  double start = 0;
  for (const auto& [cpu, manifest, own] : run.trace) {
    const std::string now = phase_of(manifest, plan, own);
    if (now == phase) continue;
    if (!phase.empty()) out[phase] += cpu - start;
    phase = now;
    start = cpu;
  }
  if (!phase.empty()) out[phase] += run.cpu - start;
  return out;
}

// Temporaries a finished run must not hold (core/atomic_file.h): "NAME.tmp.PID" files and
// folders (checkpoints), "NAME.old.PID" folders an AtomicDir sets aside, a recaption sidecar's
// ".partial", a checkpoint renamed ".damaged" (a kill must never damage one).
std::vector<std::string> leftover_temporaries(const fs::path& run) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(run)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp.") != std::string::npos || name.find(".old.") != std::string::npos ||
        name.ends_with(".partial") || name.find(".damaged") != std::string::npos)
      out.push_back(fs::relative(entry.path(), run).string());
  }
  return out;
}

// Every regular file under `path` (itself when a file), relative to `root`, sorted.
std::vector<std::string> files_under(const fs::path& root, const fs::path& path) {
  std::vector<std::string> out;
  if (fs::is_regular_file(root / path)) return {path.generic_string()};
  for (const auto& entry : fs::recursive_directory_iterator(root / path))
    if (entry.is_regular_file())
      out.push_back(fs::relative(entry.path(), root).generic_string());
  std::sort(out.begin(), out.end());
  return out;
}

// Wall-clock values, which differ between any two runs: the training wall time that
// evaluator_accuracy.json, clip.json and autoencoder.json record, and every eval JSON quotes
// for its evaluator ("train_seconds", at any depth).
void erase_wall_clock(nlohmann::json& json) {
  if (json.is_object()) json.erase("train_seconds");
  if (json.is_structured())
    for (auto& value : json) erase_wall_clock(value);
}

// A file's bytes less what legitimately differs between two uninterrupted runs (the test
// compares these only when the bytes differ):
//  - JSON files: wall-clock values (erase_wall_clock);
//  - report.md and index.html: their last section, "Stages, wall times, seeds", the
//    manifest's timestamps and each stage's wall time.
std::string without_wall_clock(const std::string& rel, const std::string& bytes) {
  const std::string name = fs::path(rel).filename().string();
  if (name == "report.md" || name == "index.html")
    return bytes.substr(0, bytes.find("Stages, wall times, seeds"));
  if (name.ends_with(".json")) {
    auto json = nlohmann::json::parse(bytes);
    erase_wall_clock(json);
    return json.dump(2);
  }
  return bytes;
}

TEST(RunSmoke, KillAnywhereResumesToTheSameResults) {
  const auto settings = KillSettings::from_env();
  std::optional<test::TempDir> temp;
  fs::path runs;
  if (settings.keep.empty()) {
    temp.emplace("run-kill");
    runs = temp->path();
  } else {
    runs = fs::absolute(settings.keep);
    fs::remove_all(runs);
    fs::create_directories(runs);
  }
  const fs::path run = runs / "run", ref = runs / "ref";
  const std::string flags = settings.run_flags(runs);
  const auto t0 = std::chrono::steady_clock::now();
  const auto since = [](auto start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // The uninterrupted run, made in the same folder as the killed one (outputs may name their
  // own paths), then moved aside. It measures each phase's CPU time, where the kills aim.
  ChildRun reference;
  {
    ManifestWatch watch(run);
    reference = run_child(flags, runs / "reference.log", watch, {},
                          [](const std::string&) { return std::nullopt; },
                          std::chrono::seconds(1800));
  }
  const std::string reference_log = read_file(runs / "reference.log");
  ASSERT_EQ(reference.status, 0) << reference_log;
  const double reference_seconds = since(t0);
  fs::rename(run, ref);
  std::vector<std::string> plan = planned_stages(runs, "ref");
  ASSERT_GE(plan.size(), 10u) << "the smoke plan has far more stages";
  plan.push_back(kReportPhase);
  const auto cpu_of = phase_cpu(reference, plan);
  for (const auto& phase : plan)
    ASSERT_TRUE(cpu_of.contains(phase)) << phase << " not seen; plan: " << fmt::format("{}", fmt::join(plan, " "));

  // The kills: per phase, settings.per_stage points drawn uniformly over the first 80% of
  // the phase's reference CPU time (the margin keeps a kill from falling after the phase's
  // end when its CPU time varies a little). A phase resumed after a kill has less left, so
  // its second kill may fall in a later phase: counted where it fell.
  std::mt19937_64 rng(settings.seed);
  std::map<std::string, std::deque<double>> aims;
  for (const auto& phase : plan)
    for (int k = 0; k < settings.per_stage; ++k)
      aims[phase].push_back(0.8 * static_cast<double>(rng() >> 11) * 0x1.0p-53 *
                            cpu_of.at(phase));

  const auto t1 = std::chrono::steady_clock::now();
  std::map<std::string, int> kills;  // by the phase each kill fell in
  std::vector<std::string> missed;   // aims at a phase that the run left before reaching them
  int runs_started = 0;
  std::string last_log;
  {
    ManifestWatch watch(run);
    const auto kill_at = [&](const std::string& phase) -> std::optional<double> {
      for (const auto& earlier : plan) {  // phases the run has left behind
        if (earlier == phase) break;
        for (; !aims[earlier].empty(); aims[earlier].pop_front()) missed.push_back(earlier);
      }
      if (aims[phase].empty()) return std::nullopt;
      return aims[phase].front();
    };
    for (;;) {
      const fs::path log = runs / fmt::format("killed-{:03}.log", runs_started++);
      const auto r = run_child(flags, log, watch, plan, kill_at, std::chrono::seconds(1800));
      last_log = read_file(log);
      if (r.status != 137) {
        ASSERT_EQ(r.status, 0) << last_log;
        break;
      }
      aims[r.aimed].pop_front();
      // Empty when the phase ended just before the kill and the next had not begun.
      ++kills[r.killed_in.empty() ? "between stages" : r.killed_in];
      ASSERT_LT(runs_started, static_cast<int>(plan.size()) * settings.per_stage + 2)
          << "more restarts than kills aimed";
    }
  }
  const double killed_seconds = since(t1);
  int total = 0;
  std::string per_phase;
  for (const auto& phase : plan) {
    total += kills[phase];
    per_phase += fmt::format(" {}={}", phase, kills[phase]);
    EXPECT_GE(kills[phase], 1) << "no kill fell inside " << phase;
  }
  std::cout << fmt::format("kill anywhere: {} kills in {} phases, {} runs of recap run; "
                           "reference {:.0f} s, killed and resumed {:.0f} s; missed aims: {}\n"
                           "kills per phase:{}\n",
                           total, plan.size(), runs_started, reference_seconds,
                           killed_seconds, fmt::join(missed, ","), per_phase);

  // No temporary survives its process's kill once the run has finished.
  const auto leftovers = leftover_temporaries(run);
  EXPECT_TRUE(leftovers.empty()) << "left behind: " << fmt::format("{}", fmt::join(leftovers, ", "));

  // Every stage done, with the same settings and the same declared outputs.
  auto manifest = read_json(run / "manifest.json"), straight = read_json(ref / "manifest.json");
  ASSERT_EQ(manifest["stages"].size(), straight["stages"].size());
  std::vector<std::string> compared;
  for (const auto& [name, record] : straight["stages"].items()) {
    ASSERT_TRUE(manifest["stages"].contains(name)) << name;
    const auto& mine = manifest["stages"][name];
    EXPECT_EQ(mine["status"], "done") << name;
    EXPECT_EQ(mine["params"], record["params"]) << name;
    ASSERT_EQ(mine["outputs"].size(), record["outputs"].size()) << name;
    for (const auto& output : record["outputs"].items()) {
      const std::string& path = output.key();
      ASSERT_TRUE(mine["outputs"].contains(path)) << name << " lacks output " << path;
      // Byte for byte, file by file, so a difference names its file.
      const auto files = files_under(ref, path);
      EXPECT_EQ(files_under(run, path), files) << path;
      for (const auto& file : files) {
        const std::string resumed = read_file(run / file), uninterrupted = read_file(ref / file);
        if (resumed == uninterrupted) {
        } else if (file.starts_with("eval/") && file.ends_with(".json")) {
          // FID and KID go through LAPACK, whose last bits differ between two calls on some
          // machines (issue #14; expect_same_results): within 1e-9 there, exact elsewhere.
          auto a = nlohmann::json::parse(resumed), b = nlohmann::json::parse(uninterrupted);
          erase_wall_clock(a);
          erase_wall_clock(b);
          expect_same_results(a, b, file);
        } else {
          EXPECT_EQ(without_wall_clock(file, resumed), without_wall_clock(file, uninterrupted))
              << file << " differs from the uninterrupted run's";
        }
        compared.push_back(file);
      }
    }
  }
  for (const auto& file : files_under(ref, "report")) {
    EXPECT_EQ(without_wall_clock(file, read_file(run / file)),
              without_wall_clock(file, read_file(ref / file)))
        << file << " differs from the uninterrupted run's";
    compared.push_back(file);
  }
  std::cout << fmt::format("compared {} files\n", compared.size());
  // The table the user reads last: the same numbers, as the same text.
  const std::string table = main_table(last_log);
  EXPECT_THAT(table, AllOf(HasSubstr("alt"), HasSubstr("SOA-C")));
  EXPECT_EQ(table, main_table(reference_log));
}

// t2i.space = latent adds the autoencoder stage: trained with the vision encoder as its
// perceptual network, checked by the evaluator, and handed to every arm. run.base_steps adds
// the base model, trained on alt-text in the same latent space, which every arm starts from.
TEST(RunSmoke, LatentSpaceAndBaseModelStages) {
  test::TempDir dir("run-latent");
  auto r = test::run_recap("--threads 2 run --preset smoke --name l --arms alt --runs-dir " +
                           dir.path().string() +
                           " --set t2i.space=latent --set autoencoder.perceptual_weight=1"
                           " --set run.base_steps=3");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto run = dir / "l";
  const auto manifest = nlohmann::json::parse(read_file(run / "manifest.json"));
  EXPECT_EQ(manifest.at("stages").at("autoencoder").at("status"), "done");
  const auto ae = nlohmann::json::parse(read_file(run / "autoencoder" / "autoencoder.json"));
  EXPECT_EQ(ae.at("perceptual_encoder").get<std::string>(), (run / "vision").string());
  EXPECT_FALSE(ae.at("check").is_null());
  const auto metadata = Safetensors::load(run / "t2i-alt" / "t2i.safetensors").metadata();
  EXPECT_EQ(metadata.at("autoencoder_from"), (run / "autoencoder").string());
  EXPECT_TRUE(std::filesystem::exists(run / "eval" / "alt.json"));
  EXPECT_EQ(manifest.at("stages").at("t2i-base").at("status"), "done");
  const auto base = Safetensors::load(run / "t2i-base" / "t2i.safetensors").metadata();
  EXPECT_EQ(base.at("captions"), "alt");
  EXPECT_EQ(base.at("steps"), "3");
  EXPECT_EQ(base.at("autoencoder_from"), (run / "autoencoder").string());
  EXPECT_EQ(metadata.at("init_from"), (run / "t2i-base" / "t2i.safetensors").string());
}

TEST(RunCli, BadArmsAndMissingRunsAreClearErrors) {
  test::TempDir dir("run-bad");
  auto bad = test::run_recap("run --preset smoke --arms alt,bogus --runs-dir " +
                             dir.path().string());
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.output, HasSubstr("unknown arm 'bogus'"));
  auto twice = test::run_recap("run --preset smoke --arms alt,alt --runs-dir " +
                               dir.path().string());
  EXPECT_EQ(twice.status, 2);
  EXPECT_THAT(twice.output, HasSubstr("given twice"));
  auto none = test::run_recap("status nothing --runs-dir " + dir.path().string());
  EXPECT_EQ(none.status, 2);
  EXPECT_THAT(none.output, HasSubstr("manifest.json"));
}

}  // namespace
}  // namespace recap
