// What this binary is and runs on: recap and libtorch versions, compiler, BLAS backend,
// thread count, device. Printed by `recap version` and recorded in every run manifest.
#pragma once
#include <nlohmann/json.hpp>

namespace recap {

nlohmann::json build_info();

}  // namespace recap
