#include "core/progress.h"

#include <unistd.h>

#include <fmt/format.h>

namespace recap {

std::string format_duration(double s) {
  if (s < 0 || s != s) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto total = static_cast<int64_t>(s + 0.5);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

std::string Progress::format(const std::string& label, int64_t done, int64_t total,
                             double seconds, const std::string& unit, const std::string& status) {
  double rate = seconds > 0 ? done / seconds : 0;
  std::string rate_text = rate >= 1 || rate == 0 ? fmt::format("{:.1f} {}/s", rate, unit)
                                                 : fmt::format("{:.2f} s/{}", 1 / rate, unit);
  std::string line;
  if (total > 0) {
    double frac = std::min(1.0, static_cast<double>(done) / total);
    constexpr int kWidth = 24;
    int filled = static_cast<int>(frac * kWidth);
    std::string eta = rate > 0 ? format_duration((total - done) / rate) : "?";
    line = fmt::format("{} [{}{}] {}/{} {:3.0f}% {} elapsed {} eta {}", label,
                       std::string(filled, '#'), std::string(kWidth - filled, '.'), done, total,
                       100 * frac, rate_text, format_duration(seconds), eta);
  } else {
    line = fmt::format("{} {} {} elapsed {}", label, done, rate_text, format_duration(seconds));
  }
  if (!status.empty()) line += " | " + status;
  return line;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_draw_(start_), out_(stderr),
      tty_(::isatty(::fileno(stderr)) != 0), interval_(10.0) {}

Progress::~Progress() { finish(); }

void Progress::redirect(std::FILE* out, bool tty, double interval_seconds) {
  out_ = out;
  tty_ = tty;
  interval_ = interval_seconds;
}

void Progress::add(int64_t n) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.1 : interval_)) draw(false);
}

void Progress::draw(bool final) {
  last_draw_ = std::chrono::steady_clock::now();
  double seconds = std::chrono::duration<double>(last_draw_ - start_).count();
  std::string line = format(label_, done_, total_, seconds, unit_, status_);
  // Best effort: a progress line that cannot be written (stderr on a full disk) must not stop
  // the work it reports on, and fmt::print would throw, here and from the destructor.
  const std::string text =
      tty_ ? fmt::format("\r\033[K{}{}", line, final ? "\n" : "") : line + "\n";
  (void)std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

}  // namespace recap
