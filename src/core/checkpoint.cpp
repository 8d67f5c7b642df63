#include "core/torch_pch.h"
#include "core/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <regex>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/compat.h"
#include "core/error.h"

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

}  // namespace

Checkpointer::Checkpointer(fs::path dir, int keep_last)
    : dir_(std::move(dir)), keep_last_(std::max(1, keep_last)) {}

fs::path Checkpointer::save(const TrainingState& state, const torch::nn::Module& model,
                            torch::optim::AdamW& optimizer, const NamedTensors* ema) {
  fs::path final_path = dir_ / fmt::format("step-{:09d}", state.step);
  AtomicDir out(final_path);

  NamedTensors moments;
  nlohmann::json steps = nlohmann::json::object();
  for (const auto& p : model.named_parameters()) {
    auto& states = optimizer.state();
    auto it = states.find(compat::optimizer_state_key(optimizer, p.value()));
    if (it == states.end()) continue;  // not stepped yet (e.g. frozen)
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    moments.emplace_back(p.key() + ".exp_avg", s.exp_avg());
    moments.emplace_back(p.key() + ".exp_avg_sq", s.exp_avg_sq());
    if (s.max_exp_avg_sq().defined())
      moments.emplace_back(p.key() + ".max_exp_avg_sq", s.max_exp_avg_sq());
    steps[p.key()] = s.step();
  }
  save_module(out.temp_path() / "model.safetensors", model);
  save_tensors(out.temp_path() / "optimizer.safetensors", moments);
  if (ema) save_tensors(out.temp_path() / "ema.safetensors", *ema);
  save_tensors(out.temp_path() / "rng.safetensors", rng_state());
  nlohmann::json meta = {{"step", state.step},
                         {"cursor", state.cursor},
                         {"extra", state.extra},
                         {"optimizer_steps", steps}};
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
    throw Error(fmt::format("{}: not a checkpoint folder (expected step-NNNNNNNNN)",
                            checkpoint.string()));
  return std::stoll(match[1].str());
}

TrainingState Checkpointer::restore(const fs::path& checkpoint, torch::nn::Module& model,
                                    torch::optim::AdamW& optimizer, NamedTensors* ema) const {
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(read_file(checkpoint / "state.json"));
  } catch (const nlohmann::json::exception& e) {
    throw Error((checkpoint / "state.json").string() + ": invalid JSON: " + e.what());
  }
  load_module(checkpoint / "model.safetensors", model);

  auto moments = load_tensors(checkpoint / "optimizer.safetensors");
  const auto& steps = meta.at("optimizer_steps");
  auto take = [&](const std::string& name) {
    auto it = moments.find(name);
    if (it == moments.end())
      throw Error(fmt::format("{}: optimizer state lacks '{}'",
                              (checkpoint / "optimizer.safetensors").string(), name));
    return it->second;
  };
  auto& states = optimizer.state();
  for (const auto& p : model.named_parameters()) {
    if (!steps.contains(p.key())) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(steps[p.key()].get<int64_t>());
    s->exp_avg(take(p.key() + ".exp_avg").to(p.value().device()));
    s->exp_avg_sq(take(p.key() + ".exp_avg_sq").to(p.value().device()));
    if (moments.count(p.key() + ".max_exp_avg_sq"))
      s->max_exp_avg_sq(take(p.key() + ".max_exp_avg_sq").to(p.value().device()));
    states[compat::optimizer_state_key(optimizer, p.value())] = std::move(s);
  }

  if (ema) {
    auto shadows = load_tensors(checkpoint / "ema.safetensors");
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : *ema) {
      auto it = shadows.find(name);
      if (it == shadows.end())
        throw Error(fmt::format("{}: EMA lacks '{}'", (checkpoint / "ema.safetensors").string(),
                                name));
      t.copy_(it->second);
    }
  }
  set_rng_state(load_tensors(checkpoint / "rng.safetensors"));
  return {meta.at("step").get<int64_t>(), meta.value("cursor", nlohmann::json()),
          meta.value("extra", nlohmann::json())};
}

}  // namespace recap
