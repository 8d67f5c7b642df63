// Helpers shared by the tests: a self-deleting temp dir and running the real recap binary.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace recap::test {

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "t") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("recap-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int status;          // exit status
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, stdout and stderr together.
inline CommandResult run_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  CommandResult r{-1, ""};
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int raw = ::pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return r;
}

// Runs `recap ARGS` (the binary this build produced) through the shell.
inline CommandResult run_recap(const std::string& args) {
  return run_shell(std::string(RECAP_BINARY) + " " + args);
}

// `recap ARGS` as a child process with output to `log`, for tests that kill it mid-run.
class Child {
 public:
  Child(const std::string& args, const std::filesystem::path& log) {
    const std::string cmd = "exec " + std::string(RECAP_BINARY) + " " + args + " > '" +
                            log.string() + "' 2>&1";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Child() {
    if (running()) kill();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool running() {
    if (pid_ <= 0 || exited_) return false;
    int raw = 0;
    if (::waitpid(pid_, &raw, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
      return false;
    }
    return true;
  }
  pid_t pid() const { return pid_; }
  // Waits for the child to exit; its exit status as run_recap reports it.
  int wait() {
    if (!exited_ && pid_ > 0) {
      int raw = 0;
      ::waitpid(pid_, &raw, 0);
      exited_ = true;
      status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    }
    return status_;
  }
  void kill() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    exited_ = true;
  }
  // Polls `ready` every 20 ms until it holds (true) or the child exits or `timeout` passes.
  template <class Predicate>
  bool wait_for(Predicate ready, std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (ready()) return true;
      if (!running()) return false;
      ::usleep(20000);
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
};

// `tar` cut 10 bytes into the data of the first entry of sample `key`, as a copy interrupted
// mid-file leaves it: the samples before `key` are whole, `key` and everything after are lost.
// Empty when no tar header (512-aligned) names `key`.
inline std::string cut_tar_at(const std::string& tar, const std::string& key) {
  for (size_t at = tar.find(key + "."); at != std::string::npos; at = tar.find(key + ".", at + 1))
    if (at % 512 == 0) return tar.substr(0, at + 512 + 10);
  return {};
}

// A bit flipped in place, as a failing disk or a bad copy leaves it: bit 0 of byte `at`.
inline void flip_bit(const std::filesystem::path& file, std::uintmax_t at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  const char byte = static_cast<char>(f.get() ^ 0x01);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(byte);
}

}  // namespace recap::test
