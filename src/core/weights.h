// Torch tensors and modules <-> safetensors files. Names are the module path
// (named_parameters / named_buffers: "blocks.0.attn.qkv.weight"), as PyTorch names them, so
// the files are readable by other tools.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/torch_pch.h"

namespace recap {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

DType to_dtype(torch::ScalarType t);  // throws recap::Error for types safetensors lacks
torch::ScalarType to_scalar_type(DType d);

// Writes tensors (moved to CPU, made contiguous) atomically.
void save_tensors(const std::filesystem::path& path, const NamedTensors& tensors,
                  const std::map<std::string, std::string>& metadata = {});
// Every tensor of a validated file, copied into CPU tensors.
std::map<std::string, torch::Tensor> load_tensors(const std::filesystem::path& path);
torch::Tensor to_tensor(const Safetensors& file, const TensorInfo& info);

// "[3,4]": a shape as error messages print it.
std::string shape_text(c10::IntArrayRef shape);

// Parameters then buffers, by module path.
NamedTensors module_state(const torch::nn::Module& module);

struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the module
  std::vector<std::string> mismatched;  // "name: file [3,4] vs module [4,3]"
  size_t loaded = 0;
  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;
};

// Copies the file's tensors into the module's parameters and buffers (converting dtype when
// the file's differs). Unless allow_partial, any missing, unexpected or mis-shaped name is a
// recap::Error listing them all, and the module is left untouched.
LoadReport load_module(const std::filesystem::path& path, torch::nn::Module& module,
                       bool allow_partial = false);
void save_module(const std::filesystem::path& path, const torch::nn::Module& module,
                 const std::map<std::string, std::string>& metadata = {});

// The options a model file keeps as JSON in its metadata under `key`, parsed into `Options`
// (nlohmann's from_json). Throws recap::Error naming `file` when the key is missing ("not a
// recap WHAT") or its JSON does not parse into `Options`.
template <typename Options>
Options options_from_metadata(const std::map<std::string, std::string>& metadata,
                              const std::filesystem::path& file, const std::string& key,
                              const std::string& what) {
  const auto it = metadata.find(key);
  if (it == metadata.end())
    throw Error(fmt::format("{}: not a recap {} (no {} metadata)", file.string(), what, key));
  try {
    return nlohmann::json::parse(it->second).get<Options>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: bad {} metadata: {}", file.string(), key, e.what()));
  }
}

// A model (a TORCH_MODULE holder) built from `options` and loaded from `file`, in eval mode.
// Throws recap::Error naming `file` when the options are refused or the tensors do not fit.
template <typename Model, typename Options>
Model load_model(const std::filesystem::path& file, const Options& options) {
  Model model(nullptr);
  try {
    model = Model(options);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", file.string(), e.what()));
  }
  load_module(file, *model);
  model->eval();
  return model;
}

}  // namespace recap
