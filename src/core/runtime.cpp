#include "core/torch_pch.h"
#include "core/runtime.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

namespace recap {

Runtime init_runtime(const RuntimeOptions& options, bool check_blas) {
  init_logging(options.log_level);
  Runtime rt;
  rt.threads = configure_threads(options.threads);
  try {
    rt.device = torch::Device(options.device);
  } catch (const c10::Error&) {
    throw Error(fmt::format("--device '{}': expected cpu, cuda or cuda:N", options.device));
  }
  if (rt.device.is_cuda() && !torch::cuda::is_available())
    throw Error(fmt::format("--device {}: this libtorch has no usable CUDA device; build "
                            "against a CUDA libtorch (-DCMAKE_PREFIX_PATH) or use --device cpu",
                            options.device));
  if (check_blas) {
    rt.blas = detect_blas();
    if (rt.device.is_cpu()) warn_if_slow_blas(*rt.blas);
  }
  return rt;
}

}  // namespace recap
