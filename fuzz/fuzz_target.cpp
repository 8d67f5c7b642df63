// The libFuzzer entry point of one target: CMake compiles this file once per harness in
// fuzz/harnesses.h, naming it in RECAP_FUZZ_TARGET (fuzz_safetensors runs fuzz::safetensors).
#include <cstddef>
#include <cstdint>

#include "harnesses.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  recap::fuzz::RECAP_FUZZ_TARGET({reinterpret_cast<const char*>(data), size});
  return 0;
}
