#include "core/torch_pch.h"
#include "core/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace recap {

std::string shape_text(c10::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

DType to_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64:
      return DType::F64;
    case torch::kFloat32:
      return DType::F32;
    case torch::kFloat16:
      return DType::F16;
    case torch::kBFloat16:
      return DType::BF16;
    case torch::kInt64:
      return DType::I64;
    case torch::kInt32:
      return DType::I32;
    case torch::kInt16:
      return DType::I16;
    case torch::kInt8:
      return DType::I8;
    case torch::kUInt8:
      return DType::U8;
    case torch::kBool:
      return DType::BOOL;
    default:
      throw Error(fmt::format("tensor type {} cannot be stored in safetensors", c10::toString(t)));
  }
}

torch::ScalarType to_scalar_type(DType d) {
  switch (d) {
    case DType::F64:
      return torch::kFloat64;
    case DType::F32:
      return torch::kFloat32;
    case DType::F16:
      return torch::kFloat16;
    case DType::BF16:
      return torch::kBFloat16;
    case DType::I64:
      return torch::kInt64;
    case DType::I32:
      return torch::kInt32;
    case DType::I16:
      return torch::kInt16;
    case DType::I8:
      return torch::kInt8;
    case DType::U8:
      return torch::kUInt8;
    case DType::BOOL:
      return torch::kBool;
  }
  throw Error("unknown dtype");
}

void save_tensors(const std::filesystem::path& path, const NamedTensors& tensors,
                  const std::map<std::string, std::string>& metadata) {
  // Keep the CPU copies alive while the views into them are serialised.
  std::vector<torch::Tensor> cpu;
  std::vector<TensorView> views;
  cpu.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    cpu.push_back(t.detach().to(torch::kCPU).contiguous());
    const auto& c = cpu.back();
    views.push_back({name, to_dtype(c.scalar_type()),
                     std::vector<int64_t>(c.sizes().begin(), c.sizes().end()),
                     std::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes())});
  }
  save_safetensors(path, std::move(views), metadata);
}

torch::Tensor to_tensor(const Safetensors& file, const TensorInfo& info) {
  auto out = torch::empty(info.shape, torch::TensorOptions().dtype(to_scalar_type(info.dtype)));
  std::string_view bytes = file.data(info);
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

std::map<std::string, torch::Tensor> load_tensors(const std::filesystem::path& path) {
  Safetensors file = Safetensors::load(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& info : file.tensors()) out.emplace(info.name, to_tensor(file, info));
  return out;
}

NamedTensors module_state(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

std::string LoadReport::summary() const {
  std::string s = fmt::format("{} tensors loaded", loaded);
  if (!missing.empty()) s += fmt::format("; missing from file: {}", fmt::join(missing, ", "));
  if (!unexpected.empty())
    s += fmt::format("; unexpected in file: {}", fmt::join(unexpected, ", "));
  if (!mismatched.empty()) s += fmt::format("; wrong shape: {}", fmt::join(mismatched, "; "));
  return s;
}

LoadReport load_module(const std::filesystem::path& path, torch::nn::Module& module,
                       bool allow_partial) {
  Safetensors file = Safetensors::load(path);
  LoadReport report;
  NamedTensors targets = module_state(module);
  std::vector<std::pair<torch::Tensor, const TensorInfo*>> plan;
  std::set<std::string> known;
  for (auto& [name, target] : targets) {
    known.insert(name);
    const TensorInfo* info = file.find(name);
    if (!info) {
      report.missing.push_back(name);
    } else if (c10::IntArrayRef(info->shape) != target.sizes()) {
      report.mismatched.push_back(fmt::format("{}: file {} vs model {}", name,
                                              shape_text(info->shape), shape_text(target.sizes())));
    } else {
      plan.emplace_back(target, info);
    }
  }
  for (const auto& info : file.tensors())
    if (!known.count(info.name)) report.unexpected.push_back(info.name);

  if (!report.complete() && !allow_partial)
    throw Error(
        fmt::format("{}: does not match the model ({}); use --allow-partial to load "
                    "what matches",
                    path.string(), report.summary()));
  torch::NoGradGuard no_grad;
  for (auto& [target, info] : plan) target.copy_(to_tensor(file, *info));
  report.loaded = plan.size();
  return report;
}

void save_module(const std::filesystem::path& path, const torch::nn::Module& module,
                 const std::map<std::string, std::string>& metadata) {
  save_tensors(path, module_state(module), metadata);
}

}  // namespace recap
