// `recap weights inspect`: a human-readable listing of a safetensors file.
#pragma once
#include <filesystem>
#include <string>

namespace recap {

// Tensors (name, dtype, shape, bytes), totals and metadata. Throws recap::Error with the
// precise problem when the file is malformed.
std::string describe_weights(const std::filesystem::path& path);

}  // namespace recap
