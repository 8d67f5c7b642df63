#include "stages/inspect.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/safetensors.h"

namespace recap {

std::string describe_weights(const std::filesystem::path& path) {
  Safetensors file = Safetensors::load(path);
  size_t name_width = 4;
  for (const auto& t : file.tensors()) name_width = std::max(name_width, t.name.size());
  std::string out = fmt::format("{:<{}}  {:<5}  {:<20}  {:>12}\n", "name", name_width, "dtype",
                                "shape", "bytes");
  uint64_t total_bytes = 0;
  int64_t total_elements = 0;
  for (const auto& t : file.tensors()) {
    out += fmt::format("{:<{}}  {:<5}  {:<20}  {:>12}\n", t.name, name_width, dtype_name(t.dtype),
                       fmt::format("[{}]", fmt::join(t.shape, ", ")), t.nbytes());
    total_bytes += t.nbytes();
    total_elements += t.numel();
  }
  out += fmt::format("{} tensors, {} elements, {} bytes\n", file.tensors().size(), total_elements,
                     total_bytes);
  if (!file.metadata().empty()) {
    out += "metadata:\n";
    for (const auto& [k, v] : file.metadata()) out += fmt::format("  {} = {}\n", k, v);
  }
  return out;
}

}  // namespace recap
