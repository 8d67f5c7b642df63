#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/run_dir.h"
#include "test_util.h"

namespace recap {
namespace {

using ::testing::HasSubstr;

StageSpec make_spec(const std::string& name, int param) {
  return {name, {{"p", param}}, {}, {}};
}

void write_stage(StageContext& ctx, const std::string& text) {
  write_file_atomic(ctx.dir() / "out.txt", text);
  ctx.output("out.txt");
}

TEST(RunDir, RecordsConfigSeedAndVersions) {
  test::TempDir dir("run");
  Config cfg = Config::from_toml("[run]\nseed = 99\n", "t.toml");
  RunDir run(dir.path(), cfg);
  auto m = RunDir::read_manifest(dir.path());
  EXPECT_EQ(m["seed"], 99);
  EXPECT_EQ(m["config"]["run"]["seed"], 99);
  EXPECT_EQ(m["config_origin"], "t.toml");
  EXPECT_TRUE(m["versions"].contains("libtorch"));
  EXPECT_EQ(Config::from_toml(read_file(dir / "config.toml"), "c").get_int("run.seed"), 99);
}

TEST(RunDir, FinishedStageIsSkippedUntilItsInputsChange) {
  test::TempDir dir("run");
  RunDir run(dir.path(), Config());
  int calls = 0;
  auto body = [&](StageContext& ctx) { ++calls; write_stage(ctx, "a"); };
  EXPECT_EQ(run.run_stage(make_spec("s", 1), body), StageOutcome::Ran);
  EXPECT_EQ(run.run_stage(make_spec("s", 1), body), StageOutcome::Skipped);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(run.stage_status("s"), "done");
  auto m = RunDir::read_manifest(dir.path());
  EXPECT_EQ(m["stages"]["s"]["outputs"]["s/out.txt"]["bytes"], 1);
  EXPECT_EQ(m["stages"]["s"]["outputs"]["s/out.txt"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_TRUE(m["stages"]["s"]["seconds"].is_number());

  EXPECT_EQ(run.run_stage(make_spec("s", 2), body), StageOutcome::Ran);  // params changed
  std::filesystem::remove(dir / "s" / "out.txt");
  EXPECT_EQ(run.run_stage(make_spec("s", 2), body), StageOutcome::Ran);  // output lost
  EXPECT_EQ(calls, 3);
}

TEST(RunDir, PartialWorkResumesOnlyUnderTheSameSettings) {
  test::TempDir dir("run");
  RunDir run(dir.path(), Config());
  // A first attempt leaves partial work (say, a checkpoint) and fails.
  auto fail = [](StageContext& ctx) {
    write_file_atomic(ctx.dir() / "partial.txt", "step 3");
    throw Error("killed");
  };
  EXPECT_THROW(run.run_stage(make_spec("s", 1), fail), Error);
  bool saw_partial = false;
  auto body = [&](StageContext& ctx) {
    saw_partial = std::filesystem::exists(ctx.dir() / "partial.txt");
    write_stage(ctx, "a");
  };
  run.run_stage(make_spec("s", 1), body);  // same settings: resumes from it
  EXPECT_TRUE(saw_partial);

  EXPECT_THROW(run.run_stage(make_spec("t", 1), fail), Error);
  run.run_stage(make_spec("t", 2), body);  // other settings: starts from an empty folder
  EXPECT_FALSE(saw_partial);
}

// A flipped byte keeps the size; the rehash on skip catches it, and the stage runs again
// without its partial work (which it would otherwise resume from, consuming the damage).
TEST(RunDir, DamagedOutputRerunsTheStageFromAnEmptyFolder) {
  test::TempDir dir("run");
  RunDir run(dir.path(), Config());
  int calls = 0;
  bool saw_partial = false;
  auto body = [&](StageContext& ctx) {
    ++calls;
    saw_partial = std::filesystem::exists(ctx.dir() / "partial.txt");
    write_file_atomic(ctx.dir() / "partial.txt", "shard 1 done");
    write_stage(ctx, "abc");
  };
  run.run_stage(make_spec("s", 1), body);
  EXPECT_EQ(run.run_stage(make_spec("s", 1), body), StageOutcome::Skipped);
  write_file_atomic(dir / "s" / "out.txt", "abd");
  EXPECT_EQ(run.run_stage(make_spec("s", 1), body), StageOutcome::Ran);
  EXPECT_FALSE(saw_partial);
  EXPECT_EQ(read_file(dir / "s" / "out.txt"), "abc");
  EXPECT_EQ(run.run_stage(make_spec("s", 1), body), StageOutcome::Skipped);
  write_file_atomic(dir / "s" / "out.txt", "abcd");  // resized
  EXPECT_EQ(run.run_stage(make_spec("s", 1), body), StageOutcome::Ran);
  EXPECT_FALSE(saw_partial);
  EXPECT_EQ(calls, 3);
  // A lost output is not damage: the stage reruns, resuming its partial work.
  std::filesystem::remove(dir / "s" / "out.txt");
  EXPECT_EQ(run.run_stage(make_spec("s", 1), body), StageOutcome::Ran);
  EXPECT_TRUE(saw_partial);
}

TEST(RunDir, DependentStageRerunsWhenUpstreamOutputChanges) {
  test::TempDir dir("run");
  RunDir run(dir.path(), Config());
  int downstream = 0;
  StageSpec down{"down", {}, {"up"}, {}};
  auto down_body = [&](StageContext& ctx) { ++downstream; write_stage(ctx, "d"); };
  run.run_stage(make_spec("up", 1), [](StageContext& ctx) { write_stage(ctx, "one"); });
  run.run_stage(down, down_body);
  run.run_stage(down, down_body);
  EXPECT_EQ(downstream, 1);
  run.run_stage(make_spec("up", 2), [](StageContext& ctx) { write_stage(ctx, "two"); });
  run.run_stage(down, down_body);
  EXPECT_EQ(downstream, 2);
}

TEST(RunDir, ExternalInputsAreHashed) {
  test::TempDir dir("run");
  write_file_atomic(dir / "input.txt", "v1");
  RunDir run(dir / "run", Config());
  int calls = 0;
  StageSpec spec{"s", {}, {}, {dir / "input.txt"}};
  auto body = [&](StageContext& ctx) { ++calls; write_stage(ctx, "x"); };
  run.run_stage(spec, body);
  run.run_stage(spec, body);
  write_file_atomic(dir / "input.txt", "v2");
  run.run_stage(spec, body);
  EXPECT_EQ(calls, 2);
  StageSpec missing{"m", {}, {}, {dir / "nope.txt"}};
  EXPECT_THROW(run.run_stage(missing, body), Error);
}

TEST(RunDir, FailedStageRecordsErrorAndRunsAgain) {
  test::TempDir dir("run");
  RunDir run(dir.path(), Config());
  EXPECT_THROW(run.run_stage(make_spec("s", 1),
                             [](StageContext&) { throw Error("disk on fire"); }),
               Error);
  auto m = RunDir::read_manifest(dir.path());
  EXPECT_EQ(m["stages"]["s"]["status"], "failed");
  EXPECT_EQ(m["stages"]["s"]["error"], "disk on fire");
  EXPECT_EQ(run.run_stage(make_spec("s", 1), [](StageContext& ctx) { write_stage(ctx, "ok"); }),
            StageOutcome::Ran);
  EXPECT_EQ(run.stage_status("s"), "done");
}

TEST(RunDir, MissingDependencyAndUndeclaredOutputAreErrors) {
  test::TempDir dir("run");
  RunDir run(dir.path(), Config());
  try {
    run.run_stage({"down", {}, {"up"}, {}}, [](StageContext&) {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("needs stage 'up', which has not finished"));
  }
  EXPECT_THROW(run.run_stage(make_spec("s", 1), [](StageContext& ctx) { ctx.output("ghost"); }),
               Error);
}

TEST(RunDir, SecondProcessOnSameRunIsRefused) {
  test::TempDir dir("run");
  RunDir first(dir.path(), Config());
  // flock is per open file description, so a second RunDir in this process conflicts too.
  try {
    RunDir second(dir.path(), Config());
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("in use by another recap process"));
  }
}

TEST(RunDir, ResumedRunKeepsEarlierStages) {
  test::TempDir dir("run");
  {
    RunDir run(dir.path(), Config());
    run.run_stage(make_spec("a", 1), [](StageContext& ctx) { write_stage(ctx, "a"); });
  }
  RunDir again(dir.path(), Config());
  EXPECT_EQ(again.stage_status("a"), "done");
  EXPECT_EQ(again.stage_status("b"), "pending");
  EXPECT_EQ(again.run_stage(make_spec("a", 1), [](StageContext&) { FAIL(); }),
            StageOutcome::Skipped);
}

TEST(RunDir, CorruptManifestIsNamed) {
  test::TempDir dir("run");
  write_file_atomic(dir / "manifest.json", "{ not json");
  try {
    RunDir run(dir.path(), Config());
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("manifest.json: invalid JSON"));
  }
}

}  // namespace
}  // namespace recap
