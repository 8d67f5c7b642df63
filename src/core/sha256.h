// SHA-256 (FIPS 180-4), for output hashes in run manifests and model ids in recaption
// provenance. Streaming: update() any number of times, then hex().
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace recap {

class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view bytes);
  std::string hex();  // finalises; the object must not be updated afterwards

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  uint64_t total_ = 0;
  size_t fill_ = 0;
};

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);
// Hash of a directory tree: relative paths (sorted) and file contents, so two trees with the
// same files hash the same wherever they live. Hidden temporaries (*.tmp.*) are ignored.
std::string sha256_tree(const std::filesystem::path& dir);

}  // namespace recap
