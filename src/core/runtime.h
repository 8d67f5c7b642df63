// The process-wide settings every command gets from the global flags: device, threads, seed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "core/threads.h"
#include "core/torch_pch.h"

namespace recap {

struct RuntimeOptions {
  int threads = 0;            // 0: usable cores
  std::string device = "cpu"; // cpu | cuda | cuda:N
  std::optional<int64_t> seed;  // overrides run.seed when set
  std::string log_level = "info";
};

struct Runtime {
  torch::Device device = torch::kCPU;
  int threads = 1;
  std::optional<BlasInfo> blas;  // measured when init_runtime was asked to check it
};

// Sets up logging and threads, resolves the device (a recap::Error when CUDA is asked for and
// absent), and when `check_blas` times a matmul and warns loudly about a slow BLAS.
Runtime init_runtime(const RuntimeOptions& options, bool check_blas);

}  // namespace recap
