#include "stages/competence.h"

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace recap::stages {

bool competent(const eval::PromptMetrics& probe) {
  return probe.soa_c.value.value_or(0) >= kCompetentSoaC &&
         probe.colour_binding.value.value_or(0) >= kCompetentColourBinding;
}

fs::path probe_path(const fs::path& t2i_dir) { return t2i_dir / "probe.json"; }

nlohmann::json read_probe(const fs::path& t2i_dir) {
  const auto path = probe_path(t2i_dir);
  if (!fs::exists(path)) return nullptr;
  nlohmann::json probe;
  try {
    probe = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: bad JSON: {}", path.string(), e.what()));
  }
  if (!probe.is_object() || !probe.contains("step") || !probe["step"].is_number_integer() ||
      !probe.contains("competent") || !probe["competent"].is_boolean() ||
      !probe.contains("metrics") || !probe["metrics"].is_object())
    throw Error(fmt::format("{}: not a competence probe record (needs step, competent and "
                            "metrics)", path.string()));
  return probe;
}

}  // namespace recap::stages
