// Embeddings of scalars into vectors.
#pragma once
#include "core/torch_pch.h"

namespace recap::nn {

// Sinusoidal embedding of diffusion timesteps as in DDPM / Stable Diffusion:
// t [B] -> [B, dim] = [cos(t * f_0..f_{h-1}), sin(t * f_0..f_{h-1})], h = dim / 2,
// f_i = max_period^(-i / h). `dim` must be even.
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period = 10000);

}  // namespace recap::nn
