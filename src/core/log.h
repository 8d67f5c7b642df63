// Console logging (spdlog, to stderr so stdout stays clean for tables and JSON), and a log
// file for long runs.
#pragma once
#include <string>

namespace recap {

// level: trace, debug, info, warn, error, off. Throws recap::Error on an unknown level.
void init_logging(const std::string& level);

// Also appends every message of the default logger to `path` (created with its folder), at
// the console's level or more verbose; `recap run` keeps its log beside the manifest.
void add_log_file(const std::string& path);

// The UTC time now as "YYYY-MM-DDTHH:MM:SSZ": the timestamp of manifests and lock files.
std::string utc_timestamp();

}  // namespace recap
