#include "core/log.h"

#include <ctime>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace recap {

void init_logging(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  // from_str maps anything unknown to "off"; only accept what was really asked for.
  if (lvl == spdlog::level::off && level != "off")
    throw Error("--log-level '" + level + "': expected trace, debug, info, warn, error or off");
  auto logger = spdlog::stderr_color_mt("recap");
  logger->set_pattern("%H:%M:%S %^%l%$ %v");
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
}

void add_log_file(const std::string& path) {
  auto logger = spdlog::default_logger();
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
    sink->set_pattern("%Y-%m-%d %H:%M:%S %l %v");
    logger->sinks().push_back(sink);
  } catch (const spdlog::spdlog_ex& e) {
    throw Error(path + ": cannot open the log file: " + e.what());
  }
  logger->flush_on(spdlog::level::info);
}

std::string utc_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace recap
