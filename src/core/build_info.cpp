#include "core/torch_pch.h"
#include "core/build_info.h"

#include <torch/version.h>

#include <fmt/format.h>

#include "recap/version.h"

namespace recap {

nlohmann::json build_info() {
  return {{"recap", RECAP_VERSION},
          {"libtorch", TORCH_VERSION},
          {"compiler", fmt::format("gcc {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__)},
          {"cuda_available", torch::cuda::is_available()},
          {"threads", torch::get_num_threads()}};
}

}  // namespace recap
