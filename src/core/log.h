// Console logging (spdlog, to stderr so stdout stays clean for tables and JSON).
#pragma once
#include <string>

namespace recap {

// level: trace, debug, info, warn, error, off. Throws recap::Error on an unknown level.
void init_logging(const std::string& level);

}  // namespace recap
