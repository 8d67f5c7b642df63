// A run directory, runs/NAME/, and its manifest.json: the effective config, seeds, versions,
// and for each stage its status, timings, input fingerprint and output hashes.
//
// A stage is declared with a StageSpec (name, parameters, the stages it depends on, external
// input files). run_stage() skips it when the manifest says it finished with the same
// fingerprint and its outputs are still there, with the sizes and sha256 it recorded; otherwise
// it runs the body, which is expected to resume its own partial work (checkpoints, finished
// shards) and to write every file atomically. Partial work made under another fingerprint, or
// beside a damaged output, is not resumed: the stage's folder is emptied.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/dir_lock.h"

namespace recap {

namespace fs = std::filesystem;

struct StageSpec {
  std::string name;                  // also the stage's folder under the run
  nlohmann::json params;             // the settings that decide its output
  std::vector<std::string> depends;  // earlier stages whose outputs it reads
  std::vector<fs::path> inputs;      // files or folders from outside the run
};

class StageContext {
 public:
  StageContext(fs::path run_dir, fs::path stage_dir)
      : run_dir_(std::move(run_dir)), dir_(std::move(stage_dir)) {}
  const fs::path& dir() const { return dir_; }  // runs/NAME/STAGE, created
  const fs::path& run_dir() const { return run_dir_; }
  // Declares a file or folder (absolute, or relative to the stage folder) as an output: it is
  // hashed into the manifest when the stage finishes, and must exist for a later skip.
  void output(const fs::path& path);
  const std::vector<fs::path>& outputs() const { return outputs_; }

 private:
  fs::path run_dir_;
  fs::path dir_;
  std::vector<fs::path> outputs_;
};

enum class StageOutcome { Ran, Skipped };

class RunDir {
 public:
  // Opens or creates `dir`, takes an exclusive lock on it (a DirLock: a second process on the
  // same run is refused, naming the holder), writes config.toml and records config and versions.
  RunDir(fs::path dir, const Config& config);
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const fs::path& dir() const { return dir_; }
  StageOutcome run_stage(const StageSpec& spec, const std::function<void(StageContext&)>& body);
  // "pending" when the stage has never started.
  std::string stage_status(const std::string& stage) const;
  const nlohmann::json& manifest() const { return manifest_; }

  // Reads a manifest without locking the run (for `recap status`).
  static nlohmann::json read_manifest(const fs::path& dir);

 private:
  std::string fingerprint(const StageSpec& spec) const;
  // Why a finished stage's outputs are damaged (one differing in size or sha256 from what the
  // manifest recorded, naming the file and both values), or "" when none is.
  std::string output_damage(const nlohmann::json& record) const;
  bool outputs_present(const nlohmann::json& record) const;
  void save();

  fs::path dir_;
  DirLock lock_;  // held for the RunDir's lifetime
  nlohmann::json manifest_;
};

}  // namespace recap
