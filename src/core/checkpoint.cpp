#include "core/torch_pch.h"
#include "core/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <regex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sha256.h"

namespace recap {

namespace fs = std::filesystem;

namespace {

const std::regex kCheckpointName(R"(step-(\d{9}))");

std::vector<fs::path> list_checkpoints(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && std::regex_match(e.path().filename().string(), kCheckpointName))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());  // zero-padded: lexical order is step order
  return out;
}

NamedTensors rng_state() {
  NamedTensors out;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    out.emplace_back("torch_cpu", gen.get_state());
  }
  if (torch::cuda::is_available()) {
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, 0));
    std::lock_guard<std::mutex> lock(gen.mutex());
    out.emplace_back("torch_cuda", gen.get_state());
  }
  return out;
}

void set_rng_state(const std::map<std::string, torch::Tensor>& states) {
  if (auto it = states.find("torch_cpu"); it != states.end()) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(it->second);
  }
  if (auto it = states.find("torch_cuda"); it != states.end() && torch::cuda::is_available()) {
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, 0));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(it->second);
  }
}

// state.json's checksum of itself: the sha256 of its compact dump without this key. A flipped
// digit in the step or the data cursor still parses, and would resume at the wrong place.
constexpr const char* kSelfChecksum = "state_sha256";

std::string self_checksum(nlohmann::json meta) {
  meta.erase(kSelfChecksum);
  return sha256_hex(meta.dump());
}

struct SavedState {
  TrainingState state;
  std::map<std::string, int64_t> optimizer_steps;  // AdamW step count by parameter path
};

// state.json, checked against its own checksum and against every file it lists, so that no
// byte of a damaged checkpoint reaches the model. Checkpoints written before the checksums
// list nothing; the safetensors reader's own validation is all they get.
SavedState read_state(const fs::path& checkpoint) {
  const fs::path file = checkpoint / "state.json";
  const std::string text = read_file(file);
  try {
    const auto meta = nlohmann::json::parse(text);
    if (meta.contains(kSelfChecksum)) {
      const std::string found = self_checksum(meta), recorded = meta.at(kSelfChecksum);
      if (found != recorded)
        throw Error(fmt::format("{}: contents hash to sha256 {}, its {} records {}", file.string(),
                                found, kSelfChecksum, recorded));
    }
    const auto files = meta.value("files", nlohmann::json::object());
    for (const auto& [name, recorded] : files.items()) {
      const fs::path path = checkpoint / name;
      if (!fs::is_regular_file(path))
        throw Error(fmt::format("{}: missing (state.json lists it)", path.string()));
      const uintmax_t bytes = fs::file_size(path), recorded_bytes = recorded.at("bytes");
      if (bytes != recorded_bytes)
        throw Error(fmt::format("{}: {} bytes, state.json records {}", path.string(), bytes,
                                recorded_bytes));
      const std::string sha256 = sha256_file(path), recorded_sha256 = recorded.at("sha256");
      if (sha256 != recorded_sha256)
        throw Error(fmt::format("{}: sha256 {}, state.json records {}", path.string(), sha256,
                                recorded_sha256));
    }
    return {{meta.at("step").get<int64_t>(), meta.value("cursor", nlohmann::json()),
             meta.value("extra", nlohmann::json())},
            meta.at("optimizer_steps").get<std::map<std::string, int64_t>>()};
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: invalid checkpoint state: {}", file.string(), e.what()));
  }
}

// Moves a checkpoint that failed to restore under a name list_checkpoints() skips, keeping
// its bytes for whoever wants to know what happened to them.
fs::path set_aside(const fs::path& checkpoint) {
  fs::path to = checkpoint.string() + ".damaged";
  for (int n = 2; fs::exists(to); ++n) to = fmt::format("{}.damaged-{}", checkpoint.string(), n);
  fs::rename(checkpoint, to);
  return to;
}

}  // namespace

Checkpointer::Checkpointer(fs::path dir, int keep_last)
    : dir_(std::move(dir)), keep_last_(std::max(1, keep_last)) {}

fs::path Checkpointer::save(const TrainingState& state, const torch::nn::Module& model,
                            const OptimizerState& optimizer, const NamedTensors* ema) {
  fs::path final_path = dir_ / fmt::format("step-{:09d}", state.step);
  AtomicDir out(final_path);

  // optimizer_steps keeps its per-parameter form (torch's AdamW counted steps per parameter),
  // so checkpoints of either kind read the same way.
  nlohmann::json steps = nlohmann::json::object();
  const std::string suffix = ".exp_avg";
  for (const auto& [name, moment] : optimizer.moments)
    if (name.ends_with(suffix)) steps[name.substr(0, name.size() - suffix.size())] = optimizer.step;
  save_module(out.temp_path() / "model.safetensors", model);
  save_tensors(out.temp_path() / "optimizer.safetensors", optimizer.moments);
  if (ema) save_tensors(out.temp_path() / "ema.safetensors", *ema);
  save_tensors(out.temp_path() / "rng.safetensors", rng_state());
  nlohmann::json files = nlohmann::json::object();
  for (const auto& e : fs::directory_iterator(out.temp_path()))
    files[e.path().filename().string()] = {{"sha256", sha256_file(e.path())},
                                           {"bytes", e.file_size()}};
  nlohmann::json meta = {{"step", state.step},
                         {"cursor", state.cursor},
                         {"extra", state.extra},
                         {"optimizer_steps", steps},
                         {"files", files}};
  meta[kSelfChecksum] = self_checksum(meta);
  write_file_atomic(out.temp_path() / "state.json", meta.dump(2) + "\n");
  out.commit();

  auto all = list_checkpoints(dir_);
  for (size_t i = 0; i + keep_last_ < all.size(); ++i) fs::remove_all(all[i]);
  return final_path;
}

std::optional<fs::path> Checkpointer::latest() const {
  auto all = list_checkpoints(dir_);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::vector<fs::path> Checkpointer::all() const { return list_checkpoints(dir_); }

int64_t Checkpointer::step_of(const fs::path& checkpoint) {
  std::smatch match;
  const std::string name = checkpoint.filename().string();
  if (!std::regex_match(name, match, kCheckpointName))
    throw Error(
        fmt::format("{}: not a checkpoint folder (expected step-NNNNNNNNN)", checkpoint.string()));
  return std::stoll(match[1].str());
}

void Checkpointer::verify(const fs::path& checkpoint) { read_state(checkpoint); }

TrainingState Checkpointer::restore(const fs::path& checkpoint, torch::nn::Module& model,
                                    OptimizerState& optimizer, NamedTensors* ema) const {
  const auto [state, steps] = read_state(checkpoint);
  load_module(checkpoint / "model.safetensors", model);

  const fs::path optimizer_file = checkpoint / "optimizer.safetensors";
  const auto moments = load_tensors(optimizer_file);
  torch::NoGradGuard no_grad;
  optimizer.step = 0;
  for (const auto& [param, step] : steps) optimizer.step = std::max(optimizer.step, step);
  for (auto& [name, target] : optimizer.moments) {
    const auto it = moments.find(name);
    if (it != moments.end()) {
      if (it->second.sizes() != target.sizes())
        throw Error(fmt::format("{}: '{}' is {}, the optimizer's {}", optimizer_file.string(), name,
                                shape_text(it->second.sizes()), shape_text(target.sizes())));
      target.copy_(it->second);
      continue;
    }
    const std::string param = name.substr(0, name.rfind('.'));
    if (steps.count(param))
      throw Error(fmt::format("{}: optimizer state lacks '{}'", optimizer_file.string(), name));
    target.zero_();  // never stepped when saved
  }

  if (ema) {
    auto shadows = load_tensors(checkpoint / "ema.safetensors");
    for (auto& [name, t] : *ema) {
      auto it = shadows.find(name);
      if (it == shadows.end())
        throw Error(
            fmt::format("{}: EMA lacks '{}'", (checkpoint / "ema.safetensors").string(), name));
      t.copy_(it->second);
    }
  }
  set_rng_state(load_tensors(checkpoint / "rng.safetensors"));
  return state;
}

std::optional<Checkpointer::Resumed> Checkpointer::resume(torch::nn::Module& model,
                                                          OptimizerState& optimizer,
                                                          NamedTensors* ema) {
  const auto checkpoints = list_checkpoints(dir_);
  std::vector<std::string> problems;  // one per checkpoint that failed, newest first
  for (auto it = checkpoints.rbegin(); it != checkpoints.rend(); ++it) {
    TrainingState state;
    try {
      state = restore(*it, model, optimizer, ema);
    } catch (const Error& e) {
      problems.push_back(e.what());
      continue;
    }
    // Only now, with an older checkpoint restored, are the failures damage rather than a
    // model that no checkpoint fits; renamed, they stay out of the next save's way.
    for (size_t i = 0; i < problems.size(); ++i)
      spdlog::warn("checkpoint {} is damaged, renamed to {} and skipped for {}: {}",
                   checkpoints.rbegin()[i].string(),
                   set_aside(checkpoints.rbegin()[i]).filename().string(), it->filename().string(),
                   problems[i]);
    return Resumed{*it, std::move(state)};
  }
  if (problems.empty()) return std::nullopt;
  throw Error(fmt::format(
      "{}: none of the {} checkpoint(s) restores ({}); training does not start over on its "
      "own: move the folder aside to train from scratch",
      dir_.string(), problems.size(), fmt::join(problems, "; ")));
}

}  // namespace recap
