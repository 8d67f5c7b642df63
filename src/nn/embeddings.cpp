#include "core/torch_pch.h"
#include "nn/embeddings.h"

#include <cmath>

#include "core/error.h"

namespace recap::nn {

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  if (dim <= 0 || dim % 2 != 0) throw Error("timestep_embedding: dim must be even and positive");
  const int64_t half = dim / 2;
  auto freqs = torch::exp(-std::log(max_period) *
                          torch::arange(half, t.options().dtype(torch::kFloat32)) / half);
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  return torch::cat({torch::cos(args), torch::sin(args)}, 1);
}

}  // namespace recap::nn
