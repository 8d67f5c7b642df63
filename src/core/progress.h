// Progress for long work: count, rate and ETA. On a terminal it redraws one line in place
// (at most 10 times a second); otherwise (CI, logs, pipes) it prints a plain line every
// `interval` seconds and one at the end, so logs stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace recap {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(int64_t n = 1);
  // Extra text after the numbers, e.g. "loss 0.1234".
  void set_status(std::string status) { status_ = std::move(status); }
  void finish();

  int64_t done() const { return done_; }

  // The line drawn for a given state; pure, for tests. total <= 0 means unknown.
  static std::string format(const std::string& label, int64_t done, int64_t total,
                            double seconds, const std::string& unit, const std::string& status);

  // Where output goes and how; tests use a file and tty=false.
  void redirect(std::FILE* out, bool tty, double interval_seconds);

 private:
  void draw(bool final);

  std::string label_, unit_, status_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::FILE* out_;
  bool tty_;
  double interval_;
  bool finished_ = false;
};

// "1h02m", "3m05s", "12.3s"
std::string format_duration(double seconds);

}  // namespace recap
