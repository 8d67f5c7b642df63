// A torch-free reader and writer for the safetensors format: an 8-byte little-endian header
// length N, N bytes of UTF-8 JSON mapping tensor names to {dtype, shape, data_offsets}, then
// the data buffer. Parsing validates everything a hostile file could get wrong (sizes,
// overflow, overlaps, holes, duplicate keys) and reports it as recap::Error, so callers can
// trust every TensorInfo they get. Tensor bytes are little-endian, as the format requires;
// neither side converts them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recap {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

// The format's spelling ("F32", "BF16", "BOOL", ...).
std::string_view dtype_name(DType dtype);
// Bytes per element.
size_t dtype_size(DType dtype);
// nullopt for names the format has but recap does not support (e.g. "F8_E4M3", "U16").
std::optional<DType> parse_dtype(std::string_view name);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // [] is a scalar
  uint64_t begin = 0;          // byte range [begin, end) within the data buffer
  uint64_t end = 0;

  // Both are guaranteed not to overflow for tensors returned by Safetensors.
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A parsed, validated file held in memory.
class Safetensors {
 public:
  // Headers larger than this are rejected before parsing, as the reference implementation does.
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // `source` names the file in error messages.
  static Safetensors parse(std::string bytes, const std::string& source);
  static Safetensors load(const std::filesystem::path& path);

  const std::string& source() const { return source_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by name
  const TensorInfo* find(std::string_view name) const;                 // nullptr if absent
  // The tensor's raw bytes; `info` must come from this object.
  std::string_view data(const TensorInfo& info) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string source_;
  std::string bytes_;  // the whole file; tensor ranges are relative to data_start_
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `bytes` (little-endian, numel * dtype_size long) must outlive the call.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string_view bytes;
};

// The whole file as bytes. Deterministic: tensors sorted by name, data laid out in that order,
// header padded with spaces to a multiple of 8 so the data buffer starts 8-byte aligned.
// Throws recap::Error on empty, duplicate or reserved ("__metadata__") names, negative
// dimensions, invalid UTF-8 in names or metadata, or bytes.size() != numel * dtype_size.
std::string serialize_safetensors(std::vector<TensorView> tensors,
                                  const std::map<std::string, std::string>& metadata);

// Same bytes as serialize_safetensors, streamed to `path` atomically (no in-memory copy of the
// tensor data); errors name `path`.
void save_safetensors(const std::filesystem::path& path, std::vector<TensorView> tensors,
                      const std::map<std::string, std::string>& metadata);

}  // namespace recap
