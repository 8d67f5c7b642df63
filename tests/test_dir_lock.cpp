// DirLock: one recap process per output folder (or output file, or recaption sidecar). Unit
// tests against another real process, then every command of the CLI refused on a held output.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "stages/recaption.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string host_name() { return DirLock::self().host; }

std::string read_or_empty(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec) ? read_file(p) : std::string();
}

// Everything in `dir` but `except`, by name.
std::vector<std::string> other_entries(const fs::path& dir, const std::string& except) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != except) out.push_back(e.path().filename().string());
  return out;
}

// Waits (polling every 2 ms, up to 60 s) until `lock_file` names `pid` as its holder.
bool wait_for_holder(const fs::path& lock_file, pid_t pid) {
  const std::string want = "pid=" + std::to_string(pid) + " ";
  for (int i = 0; i < 30000; ++i) {
    if (read_or_empty(lock_file).find(want) != std::string::npos) return true;
    ::usleep(2000);
  }
  return false;
}

// Another process holding DirLock::folder(dir) until it is killed. A fork without exec is safe
// here: the child needs only DirLock's system calls and glibc's malloc, which is fork-safe.
pid_t spawn_holder(const fs::path& dir) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    try {
      const auto lock = DirLock::folder(dir);
      for (;;) ::pause();
    } catch (...) {
      ::_exit(1);
    }
  }
  return pid;
}

TEST(DirLock, RecordsItsHolderAndLetsGoOnDestruction) {
  test::TempDir tmp("lock");
  const fs::path dir = tmp / "out";
  {
    const auto lock = DirLock::folder(dir);
    EXPECT_TRUE(lock.held());
    EXPECT_EQ(lock.lock_file(), dir / ".lock");
    const auto holder = LockHolder::parse(read_file(dir / ".lock"));
    EXPECT_EQ(holder.pid, std::to_string(::getpid()));
    EXPECT_EQ(holder.host, host_name());
    EXPECT_EQ(holder.started.size(), 20u);  // 2026-12-02T00:14:38Z
    write_file_atomic(dir / "out.txt", "x");
  }
  EXPECT_FALSE(fs::exists(dir / ".lock"));
  EXPECT_TRUE(fs::exists(dir / "out.txt"));
  EXPECT_TRUE(DirLock::folder(dir).held());  // free again
}

TEST(DirLock, SecondLockOnTheFolderIsRefusedNamingTheHolder) {
  test::TempDir tmp("lock");
  const auto first = DirLock::folder(tmp.path());
  // flock belongs to the open file, so a second DirLock in this very process conflicts too.
  try {
    DirLock::folder(tmp.path());
    FAIL() << "second lock taken";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(tmp.path().string() + ": in use by another recap process (pid " +
                                    std::to_string(::getpid()) + " on host " + host_name() +
                                    " since "));
    EXPECT_THAT(e.what(), HasSubstr("wait for it or stop it"));
  }
  EXPECT_TRUE(first.held());
  EXPECT_TRUE(fs::exists(first.lock_file()));  // the refused one did not remove it
}

TEST(DirLock, AnotherProcessIsRefusedAndAKilledHolderDoesNotBlock) {
  test::TempDir tmp("lock");
  const pid_t holder = spawn_holder(tmp.path());
  ASSERT_GT(holder, 0);
  ASSERT_TRUE(wait_for_holder(tmp / ".lock", holder));
  try {
    DirLock::folder(tmp.path());
    FAIL() << "lock taken while another process holds it";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("in use by another recap process (pid " +
                                    std::to_string(holder) + " on host " + host_name()));
  }
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  // kill -9 leaves the lock file, naming a dead holder; the kernel has dropped its flock.
  ASSERT_THAT(read_file(tmp / ".lock"), HasSubstr("pid=" + std::to_string(holder) + " "));
  const auto lock = DirLock::folder(tmp.path());
  EXPECT_EQ(LockHolder::parse(read_file(tmp / ".lock")).pid, std::to_string(::getpid()));
}

// What killed holders left goes when the folder is locked again: temporaries of dead PIDs,
// and a folder a commit set aside (back under its name when the commit died before the
// rename, removed when the new one is in place); a live process's temporary stays.
TEST(DirLock, LockingAFolderRemovesWhatKilledProcessesLeft) {
  test::TempDir dir("lock");
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);
  const std::string d = std::to_string(dead), alive = std::to_string(::getpid());
  write_file_atomic(dir / ("shard.tar.tmp." + d), "half a shard");
  write_file_atomic(dir / "ckpt" / ("step-000000010.tmp." + d) / "model.safetensors", "x");
  write_file_atomic(dir / "ckpt" / ("step-000000020.old." + d) / "state.json", "lost");
  write_file_atomic(dir / "ckpt" / ("step-000000030.old." + d) / "state.json", "older");
  write_file_atomic(dir / "ckpt" / "step-000000030" / "state.json", "newer");
  write_file_atomic(dir / ("mine.tmp." + alive), "being written");
  write_file_atomic(dir / "notes.tmp.txt", "not a temporary of ours");
  { const auto lock = DirLock::folder(dir.path()); }
  EXPECT_FALSE(std::filesystem::exists(dir / ("shard.tar.tmp." + d)));
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt" / ("step-000000010.tmp." + d)));
  EXPECT_EQ(read_file(dir / "ckpt" / "step-000000020" / "state.json"), "lost");
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt" / ("step-000000020.old." + d)));
  EXPECT_EQ(read_file(dir / "ckpt" / "step-000000030" / "state.json"), "newer");
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt" / ("step-000000030.old." + d)));
  EXPECT_TRUE(std::filesystem::exists(dir / ("mine.tmp." + alive)));
  EXPECT_TRUE(std::filesystem::exists(dir / "notes.tmp.txt"));
}

TEST(DirLock, FileLockIsPerFile) {
  test::TempDir tmp("lock");
  const auto a = DirLock::file(tmp / "a.json");
  EXPECT_EQ(a.lock_file(), tmp / ".a.json.lock");
  EXPECT_THROW(DirLock::file(tmp / "a.json"), Error);
  EXPECT_TRUE(DirLock::file(tmp / "b.json").held());  // another file of the same folder
  EXPECT_TRUE(DirLock::folder(tmp.path()).held());    // and the folder's own lock
}

TEST(DirLock, FolderItCreatedGoesWhenLeftEmpty) {
  test::TempDir tmp("lock");
  { const auto lock = DirLock::folder(tmp / "new"); }  // a command that failed at once
  EXPECT_FALSE(fs::exists(tmp / "new"));
  fs::create_directories(tmp / "old");
  { const auto lock = DirLock::folder(tmp / "old"); }
  EXPECT_TRUE(fs::exists(tmp / "old"));  // not ours to remove
}

TEST(DirLock, ReadsTheBarePidOfOlderLockFiles) {
  EXPECT_EQ(LockHolder::parse("4242").pid, "4242");
  EXPECT_EQ(LockHolder::parse("4242").describe(), "pid 4242 on host ? since ?");
  const auto h = LockHolder::parse("pid=7 host=node-3 started=2026-01-02T03:04:05Z\n");
  EXPECT_EQ(h.describe(), "pid 7 on host node-3 since 2026-01-02T03:04:05Z");
}

// --- every command that writes an output refuses one this test holds ---

struct Held {
  std::string args;    // the command, writing into D (the test's folder)
  std::string output;  // what it writes: "" for D itself, else a file in D
};

TEST(DirLockCli, EveryCommandRefusesAHeldOutputAtOnceWritingNothing) {
  test::TempDir tmp("lockcli");
  const std::string none = (tmp / "missing").string();  // never read: the lock comes first
  const std::vector<Held> commands = {
      {"corpus make --preset smoke --out D", ""},
      {"tokenizer train --corpus " + none + " --out D/tok.model", "tok.model"},
      {"evaluator train --preset smoke --out D", ""},
      {"captioner train --corpus " + none + " --tokenizer " + none + " --out D", ""},
      {"autoencoder train --corpus " + none + " --out D", ""},
      {"t2i train --corpus " + none + " --tokenizer " + none + " --out D", ""},
      {"sample --model " + none + " --tokenizer " + none + " --prompt x --out D", ""},
      {"eval --images " + none + " --evaluator " + none + " --corpus " + none +
           " --json D/report.json",
       "report.json"},
      {"captioner eval --corpus " + none + " --tokenizer " + none + " --model a=" + none +
           " --out D",
       ""},
  };
  // All at once: each is refused within its start-up time, which is most of what they cost.
  std::vector<DirLock> locks;
  std::vector<std::unique_ptr<test::Child>> children;
  for (size_t i = 0; i < commands.size(); ++i) {
    const fs::path dir = tmp / ("d" + std::to_string(i));
    fs::create_directories(dir);
    const auto& c = commands[i];
    locks.push_back(c.output.empty() ? DirLock::folder(dir) : DirLock::file(dir / c.output));
    std::string args = c.args;
    args.replace(args.find(" D"), 2, " " + dir.string());
    children.push_back(std::make_unique<test::Child>(args, tmp / ("d" + std::to_string(i) + ".log")));
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    const auto& c = commands[i];
    SCOPED_TRACE(c.args);
    const fs::path dir = tmp / ("d" + std::to_string(i));
    const fs::path subject = c.output.empty() ? dir : dir / c.output;
    EXPECT_EQ(children[i]->wait(), 2);
    const std::string output = read_file(tmp / ("d" + std::to_string(i) + ".log"));
    EXPECT_THAT(output, HasSubstr(subject.string() + ": in use by another recap process (pid " +
                                  std::to_string(::getpid()) + " on host " + host_name()));
    // Nothing written; and the holder still holds its lock.
    EXPECT_TRUE(other_entries(dir, locks[i].lock_file().filename().string()).empty());
    EXPECT_TRUE(fs::exists(locks[i].lock_file()));
  }
}

TEST(DirLockCli, RecaptionLocksEachSidecarOfItsShare) {
  test::TempDir tmp("lockcli");
  const fs::path out = tmp / "out";
  // Listed (a folder would stand for its shards) but never opened: the sidecars are locked
  // before any input is read, so empty files do.
  for (const char* shard : {"web-00000.tar", "web-00001.tar"}) write_file_atomic(tmp / shard, "");
  const std::string base = "recaption --model " + (tmp / "m").string() + " --tokenizer " +
                           (tmp / "t").string() + " --in " + (tmp / "web-00000.tar").string() +
                           " --in " + (tmp / "web-00001.tar").string() + " --out " +
                           out.string();
  const auto held = DirLock::file(stages::sidecar_path(out, tmp / "web-00001.tar"));
  const std::string refusal = (out / "web-00001.recap.jsonl").string() +
                              ": in use by another recap process (pid " +
                              std::to_string(::getpid());
  // The same shard (share 1 of 2): refused. The other shard is not held: that one gets past
  // the locks (and fails on the missing model, which is loaded after them).
  test::Child same(base + " --num-shards 2 --shard-index 1", tmp / "same.log");
  test::Child other(base + " --num-shards 2 --shard-index 0", tmp / "other.log");
  EXPECT_EQ(same.wait(), 2);
  EXPECT_THAT(read_file(tmp / "same.log"), HasSubstr(refusal));
  EXPECT_NE(other.wait(), 0);
  const std::string other_log = read_file(tmp / "other.log");
  EXPECT_THAT(other_log, Not(HasSubstr("in use"))) << other_log;
  EXPECT_THAT(other_log, HasSubstr((tmp / "m").string() + ": no such model")) << other_log;
  // A share that includes the held shard (all of them, after the other process let go of
  // web-00000's lock): refused too.
  const auto overlapping = test::run_recap(base);
  EXPECT_EQ(overlapping.status, 2);
  EXPECT_THAT(overlapping.output, HasSubstr(refusal));
  EXPECT_FALSE(fs::exists(out / ".web-00000.recap.jsonl.lock"));  // let go at its exit
}

// Two real `corpus make` on one folder: the first is caught holding it (and stopped there, so
// the overlap is certain), the second is refused, the first then finishes untouched.
TEST(DirLockCli, TwoRealCommandsOnOneFolder) {
  test::TempDir tmp("lockcli");
  const fs::path out = tmp / "corpus";
  const std::string args = "corpus make --preset smoke --threads 1 --out " + out.string();
  test::Child first(args, tmp / "first.log");
  ASSERT_TRUE(wait_for_holder(out / ".lock", first.pid())) << read_or_empty(tmp / "first.log");
  ::kill(first.pid(), SIGSTOP);
  const auto second = test::run_recap(args);
  EXPECT_EQ(second.status, 2);
  EXPECT_THAT(second.output, HasSubstr(out.string() + ": in use by another recap process (pid " +
                                       std::to_string(first.pid()) + " on host " +
                                       host_name()));
  ::kill(first.pid(), SIGCONT);
  EXPECT_EQ(first.wait(), 0) << read_or_empty(tmp / "first.log");
  EXPECT_THAT(read_file(tmp / "first.log"), HasSubstr("corpus written to"));
  EXPECT_FALSE(fs::exists(out / ".lock"));
  EXPECT_EQ(test::run_recap(args).status, 0);  // free again once it is done
}

// kill -9 of the holder, then the same command again: it runs (and resumes) as before.
TEST(DirLockCli, KilledCommandDoesNotBlockItsRerun) {
  test::TempDir tmp("lockcli");
  const fs::path out = tmp / "corpus";
  const std::string args = "corpus make --preset smoke --threads 1 --out " + out.string();
  test::Child first(args, tmp / "first.log");
  ASSERT_TRUE(wait_for_holder(out / ".lock", first.pid())) << read_or_empty(tmp / "first.log");
  first.kill();
  const auto rerun = test::run_recap(args);
  EXPECT_EQ(rerun.status, 0) << rerun.output;
  EXPECT_THAT(rerun.output, HasSubstr("corpus written to"));
}

}  // namespace
}  // namespace recap
