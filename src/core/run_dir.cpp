#include "core/run_dir.h"

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/build_info.h"
#include "core/error.h"
#include "core/log.h"
#include "core/sha256.h"

namespace recap {

namespace {

std::string hash_path(const fs::path& p) {
  return fs::is_directory(p) ? sha256_tree(p) : sha256_file(p);
}

uint64_t size_of(const fs::path& p) {
  if (!fs::is_directory(p)) return fs::file_size(p);
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(p))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

}  // namespace

void StageContext::output(const fs::path& path) {
  outputs_.push_back(path.is_absolute() ? path : dir_ / path);
}

RunDir::RunDir(fs::path dir, const Config& config) : dir_(std::move(dir)) {
  lock_ = DirLock::folder(dir_);

  fs::path manifest_path = dir_ / "manifest.json";
  if (fs::exists(manifest_path)) {
    manifest_ = read_manifest(dir_);
  } else {
    manifest_ = {{"created", utc_timestamp()}, {"stages", nlohmann::json::object()}};
  }
  manifest_["config"] = config.to_json();
  manifest_["config_origin"] = config.origin();
  manifest_["seed"] = config.get_int("run.seed");
  manifest_["versions"] = build_info();
  write_file_atomic(dir_ / "config.toml", config.to_toml());
  save();
}

nlohmann::json RunDir::read_manifest(const fs::path& dir) {
  fs::path path = dir / "manifest.json";
  try {
    auto m = nlohmann::json::parse(read_file(path));
    if (!m.is_object() || !m.contains("stages") || !m["stages"].is_object())
      throw Error(path.string() + ": not a recap manifest (no \"stages\" object)");
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": invalid JSON: " + e.what());
  }
}

void RunDir::save() { write_file_atomic(dir_ / "manifest.json", manifest_.dump(2) + "\n"); }

std::string RunDir::stage_status(const std::string& stage) const {
  const auto& stages = manifest_["stages"];
  if (!stages.contains(stage)) return "pending";
  return stages[stage].value("status", "pending");
}

std::string RunDir::fingerprint(const StageSpec& spec) const {
  // Dependencies enter through the output hashes their own records carry, so nothing
  // upstream is rehashed here; only external inputs are read.
  nlohmann::json fp = {{"stage", spec.name}, {"params", spec.params}};
  for (const auto& dep : spec.depends) {
    if (stage_status(dep) != "done")
      throw Error(
          fmt::format("stage '{}' needs stage '{}', which has not finished", spec.name, dep));
    fp["depends"][dep] = manifest_["stages"][dep]["outputs"];
  }
  for (const auto& in : spec.inputs) {
    if (!fs::exists(in))
      throw Error(fmt::format("stage '{}': input {} does not exist", spec.name, in.string()));
    fp["inputs"][in.string()] = hash_path(in);
  }
  return sha256_hex(fp.dump());
}

std::string RunDir::output_damage(const nlohmann::json& record) const {
  // A full rehash, like the one that recorded them: a flipped bit keeps the size, and a stage
  // that trusted its finished outputs would pass the bytes on. It reads no more than the
  // stage wrote, and the fingerprints already rehash every external input on each run.
  const nlohmann::json outputs = record.value("outputs", nlohmann::json::object());
  for (const auto& [rel, out] : outputs.items()) {
    const fs::path p = dir_ / rel;
    if (!fs::exists(p)) continue;  // missing is not damage: the stage reruns, resuming its work
    const uint64_t bytes = size_of(p), recorded_bytes = out.value("bytes", uint64_t{0});
    if (bytes != recorded_bytes)
      return fmt::format("{} is {} bytes, the manifest records {}", p.string(), bytes,
                         recorded_bytes);
    const std::string sha256 = hash_path(p), recorded = out.value("sha256", "");
    if (sha256 != recorded)
      return fmt::format("{} hashes to sha256 {}, the manifest records {}", p.string(), sha256,
                         recorded);
  }
  return "";
}

bool RunDir::outputs_present(const nlohmann::json& record) const {
  const nlohmann::json outputs = record.value("outputs", nlohmann::json::object());
  for (const auto& [rel, out] : outputs.items())
    if (!fs::exists(dir_ / rel)) return false;
  return true;
}

StageOutcome RunDir::run_stage(const StageSpec& spec,
                               const std::function<void(StageContext&)>& body) {
  std::string fp = fingerprint(spec);
  auto& stages = manifest_["stages"];
  StageContext ctx(dir_, dir_ / spec.name);
  if (stages.contains(spec.name)) {
    const auto& rec = stages[spec.name];
    const bool same = rec.value("fingerprint", "") == fp;
    if (same && rec.value("status", "") == "done") {
      const std::string damage = output_damage(rec);
      if (damage.empty() && outputs_present(rec)) {
        spdlog::info("stage {}: up to date, skipped", spec.name);
        return StageOutcome::Skipped;
      }
      // Its partial work is not to be trusted either: the stage would resume from the
      // damaged files (finished shards, checkpoints) and consume their bytes.
      if (!damage.empty()) {
        spdlog::warn("stage {}: output damaged ({}): running it again from an empty folder",
                     spec.name, damage);
        fs::remove_all(ctx.dir());
      }
    } else if (!same && fs::exists(ctx.dir())) {
      // A stage resumes its partial work (checkpoints, finished shards) only under the
      // settings and inputs that made it: when those changed, it starts from an empty folder.
      spdlog::info("stage {}: settings or inputs changed since its last run: starting afresh",
                   spec.name);
      fs::remove_all(ctx.dir());
    }
  }
  fs::create_directories(ctx.dir());
  auto& rec = stages[spec.name];
  rec = {{"status", "running"},
         {"fingerprint", fp},
         {"started", utc_timestamp()},
         {"params", spec.params}};
  save();

  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  try {
    body(ctx);
  } catch (const std::exception& e) {
    rec["status"] = "failed";
    rec["error"] = e.what();
    rec["seconds"] = elapsed();
    // On a full disk the manifest cannot record the failure either: the stage's own error is
    // the one to report (a record left "running" reruns the stage like a failed one).
    try {
      save();
    } catch (const std::exception& save_error) {
      spdlog::warn("stage {}: could not record its failure: {}", spec.name, save_error.what());
    }
    throw;
  }
  nlohmann::json outputs = nlohmann::json::object();
  for (const auto& out : ctx.outputs()) {
    if (!fs::exists(out))
      throw Error(fmt::format("stage '{}' declared output {} but did not write it", spec.name,
                              out.string()));
    outputs[fs::relative(out, dir_).generic_string()] = {{"sha256", hash_path(out)},
                                                         {"bytes", size_of(out)}};
  }
  rec["status"] = "done";
  rec["finished"] = utc_timestamp();
  rec["seconds"] = elapsed();
  rec["outputs"] = outputs;
  save();
  return StageOutcome::Ran;
}

}  // namespace recap
