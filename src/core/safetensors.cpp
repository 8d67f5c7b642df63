// Safetensors parsing and writing. Every size read from a file is untrusted: arithmetic on it
// is overflow-checked, and the tensors' byte ranges must tile the data buffer exactly (no holes,
// no overlaps), matching what the reference implementation enforces.
#include "core/safetensors.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/atomic_file.h"
#include "core/error.h"

namespace recap {

namespace {

using json = nlohmann::json;

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};

// Indexed by the enum's value.
constexpr std::array<DTypeEntry, 10> kDTypes = {{
    {DType::F64, "F64", 8},
    {DType::F32, "F32", 4},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8},
    {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
}};

constexpr bool table_matches_enum() {
  for (size_t i = 0; i < kDTypes.size(); ++i)
    if (static_cast<size_t>(kDTypes[i].dtype) != i) return false;
  return true;
}
static_assert(table_matches_enum());

const DTypeEntry& entry_of(DType dtype) {
  auto index = static_cast<size_t>(dtype);
  assert(index < kDTypes.size());
  return kDTypes[index];
}

std::string supported_dtypes() {
  std::string out;
  for (const auto& e : kDTypes) out += (out.empty() ? "" : ", ") + std::string(e.name);
  return out;
}

// Names and keys come from untrusted files; a 100 MB key must not end up in a message whole.
std::string quote(std::string_view s) {
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return "'" + std::string(s) + "'";
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // keep UTF-8 whole
  return "'" + std::string(s.substr(0, cut)) + "...' (" + std::to_string(s.size()) + " bytes)";
}

// Containers are summarized rather than dumped: dump() recurses, and a hostile header can nest
// arrays millions deep.
std::string describe(const json& value) {
  if (value.is_array()) return "an array of size " + std::to_string(value.size());
  if (value.is_object()) return "an object";
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() <= 64 ? text : text.substr(0, 64) + "...";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string range_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + "," + std::to_string(end) + "]";
}

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw Error(source + ": " + problem);
}

[[noreturn]] void fail_tensor(const std::string& source, std::string_view name,
                              const std::string& problem) {
  fail(source, "tensor " + quote(name) + ": " + problem);
}

// Offset of the first byte that does not start a valid UTF-8 sequence, or npos. Overlong forms,
// surrogates and code points past U+10FFFF are rejected, as RFC 3629 requires.
size_t invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t code;
    uint32_t min;
    if ((c & 0xE0) == 0xC0) {
      len = 2, code = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, code = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, code = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      auto cont = static_cast<unsigned char>(s[i + k]);
      if ((cont & 0xC0) != 0x80) return i;
      code = (code << 6) | (cont & 0x3F);
    }
    if (code < min || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Byte size of a tensor, or nullopt when it does not fit in int64 (so callers may use signed
// arithmetic on it). A zero dimension makes the tensor empty whatever the other dimensions are.
std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, DType dtype) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  uint64_t bytes = dtype_size(dtype);
  for (int64_t dim : shape) {
    assert(dim > 0);
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
  }
  if (bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return bytes;
}

uint64_t read_u64_le(std::string_view bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string u64_le(uint64_t value) {
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

json parse_header_json(std::string_view header, const std::string& source) {
  // nlohmann silently keeps the last of duplicate keys; a file whose meaning depends on which
  // duplicate a reader picks is rejected instead. One key set per currently open object.
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second)
        fail(source, "header has duplicate key " + quote(key));
    }
    return true;
  };
  try {
    return json::parse(header.begin(), header.end(), callback);
  } catch (const json::exception& e) {
    std::string_view what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; the rest says where and why.
    if (auto tag_end = what.find("] "); what.starts_with('[') && tag_end != what.npos)
      what.remove_prefix(tag_end + 2);
    fail(source, "header is not valid JSON: " + std::string(what));
  }
}

const json& require_field(const json& entry, const char* field, const std::string& source,
                          std::string_view name) {
  auto it = entry.find(field);
  if (it == entry.end()) fail_tensor(source, name, std::string("missing field '") + field + "'");
  return *it;
}

// Integers only: nlohmann turns 1.0, 1e3 and integers beyond 2^64-1 into floats, all rejected.
uint64_t non_negative_integer(const json& value, const std::string& what,
                              const std::string& source, std::string_view name) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    int64_t signed_value = value.get<int64_t>();
    if (signed_value < 0) fail_tensor(source, name, what + " is negative: " + describe(value));
    return static_cast<uint64_t>(signed_value);  // "-0"
  }
  fail_tensor(source, name, what + " is not a non-negative integer: " + describe(value));
}

TensorInfo parse_tensor(const std::string& name, const json& entry, uint64_t data_size,
                        const std::string& source) {
  if (name.empty()) fail(source, "header has a tensor with an empty name");
  if (!entry.is_object())
    fail_tensor(source, name, std::string("entry is a JSON ") + entry.type_name() +
                                  ", not an object");
  for (const auto& item : entry.items()) {
    const std::string& field = item.key();
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      fail_tensor(source, name, "unexpected field " + quote(field));
  }

  TensorInfo info;
  info.name = name;

  const json& dtype = require_field(entry, "dtype", source, name);
  if (!dtype.is_string())
    fail_tensor(source, name, std::string("dtype is a JSON ") + dtype.type_name() +
                                  ", not a string");
  auto parsed_dtype = parse_dtype(dtype.get_ref<const std::string&>());
  if (!parsed_dtype)
    fail_tensor(source, name, "unsupported dtype " + quote(dtype.get_ref<const std::string&>()) +
                                  " (supported: " + supported_dtypes() + ")");
  info.dtype = *parsed_dtype;

  const json& shape = require_field(entry, "shape", source, name);
  if (!shape.is_array())
    fail_tensor(source, name, std::string("shape is a JSON ") + shape.type_name() +
                                  ", not an array");
  for (size_t i = 0; i < shape.size(); ++i) {
    std::string what = "shape[" + std::to_string(i) + "]";
    uint64_t dim = non_negative_integer(shape[i], what, source, name);
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail_tensor(source, name, what + " = " + std::to_string(dim) + " exceeds 2^63-1");
    info.shape.push_back(static_cast<int64_t>(dim));
  }

  const json& offsets = require_field(entry, "data_offsets", source, name);
  if (!offsets.is_array() || offsets.size() != 2)
    fail_tensor(source, name, "data_offsets must be an array of two integers, got " +
                                  describe(offsets));
  info.begin = non_negative_integer(offsets[0], "data_offsets[0]", source, name);
  info.end = non_negative_integer(offsets[1], "data_offsets[1]", source, name);
  if (info.begin > info.end)
    fail_tensor(source, name, "data_offsets " + range_string(info.begin, info.end) +
                                  " have begin > end");

  std::string typed_shape = "shape " + shape_string(info.shape) + " x " +
                            std::string(dtype_name(info.dtype));
  auto nbytes = checked_nbytes(info.shape, info.dtype);
  if (!nbytes) fail_tensor(source, name, typed_shape + " overflows: more than 2^63-1 bytes");
  if (*nbytes != info.end - info.begin)
    fail_tensor(source, name, typed_shape + " = " + std::to_string(*nbytes) +
                                  " bytes but data_offsets span " +
                                  std::to_string(info.end - info.begin));
  if (info.end > data_size)
    fail_tensor(source, name, "data_offsets " + range_string(info.begin, info.end) +
                                  " extend past the end of the data buffer (" +
                                  std::to_string(data_size) + " bytes)");
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& source) {
  if (!value.is_object())
    fail(source, std::string("__metadata__ is a JSON ") + value.type_name() +
                     ", not an object of strings");
  std::map<std::string, std::string> metadata;
  for (const auto& item : value.items()) {
    if (!item.value().is_string())
      fail(source, "__metadata__ value for " + quote(item.key()) + " is a JSON " +
                       item.value().type_name() + ", not a string");
    metadata.emplace(item.key(), item.value().get<std::string>());
  }
  return metadata;
}

// Walking the ranges in offset order, each must start exactly where the previous one ended and
// the last must end at the buffer's end; anything else is an overlap, a hole or trailing bytes.
void check_coverage(const std::vector<TensorInfo>& tensors, uint64_t data_size,
                    const std::string& source) {
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors.size());
  for (const auto& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (t->begin < covered)
      fail_tensor(source, t->name, "data_offsets " + range_string(t->begin, t->end) +
                                       " overlap tensor " + quote(previous->name) + " " +
                                       range_string(previous->begin, previous->end));
    if (t->begin > covered)
      fail(source, "hole in the data buffer: bytes [" + std::to_string(covered) + "," +
                       std::to_string(t->begin) + ") are not covered by any tensor" +
                       " (next tensor is " + quote(t->name) + ")");
    covered = t->end;
    previous = t;
  }
  if (covered != data_size)
    fail(source, "trailing bytes in the data buffer: bytes [" + std::to_string(covered) + "," +
                     std::to_string(data_size) + ") are not covered by any tensor");
}

struct PreparedFile {
  std::string head;                 // length prefix and padded JSON header
  std::vector<TensorView> tensors;  // in data-buffer order
};

PreparedFile prepare(std::vector<TensorView> tensors,
                     const std::map<std::string, std::string>& metadata,
                     const std::string& target) {
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  json header = json::object();
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [key, value] : metadata) {
      if (invalid_utf8_at(key) != std::string_view::npos ||
          invalid_utf8_at(value) != std::string_view::npos)
        fail(target, "__metadata__ entry " + quote(key) + " is not valid UTF-8");
      meta[key] = value;
    }
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& t = tensors[i];
    if (t.name.empty()) fail(target, "tensor with an empty name");
    if (t.name == "__metadata__") fail(target, "tensor name '__metadata__' is reserved");
    if (i > 0 && t.name == tensors[i - 1].name)
      fail(target, "duplicate tensor name " + quote(t.name));
    if (invalid_utf8_at(t.name) != std::string_view::npos)
      fail(target, "tensor name " + quote(t.name) + " is not valid UTF-8");
    for (int64_t dim : t.shape)
      if (dim < 0) fail_tensor(target, t.name, "negative dimension in " + shape_string(t.shape));
    std::string typed_shape =
        "shape " + shape_string(t.shape) + " x " + std::string(dtype_name(t.dtype));
    auto nbytes = checked_nbytes(t.shape, t.dtype);
    if (!nbytes) fail_tensor(target, t.name, typed_shape + " overflows: more than 2^63-1 bytes");
    if (*nbytes != t.bytes.size())
      fail_tensor(target, t.name, typed_shape + " = " + std::to_string(*nbytes) +
                                      " bytes but " + std::to_string(t.bytes.size()) +
                                      " bytes were given");
    uint64_t end = offset + *nbytes;
    if (end < offset) fail(target, "total tensor data exceeds 2^64-1 bytes");
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", json::array({offset, end})}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > Safetensors::kMaxHeaderBytes)
    fail(target, "header would be " + std::to_string(text.size()) + " bytes, over the " +
                     std::to_string(Safetensors::kMaxHeaderBytes) + "-byte limit readers enforce");
  return {u64_le(text.size()) + text, std::move(tensors)};
}

}  // namespace

std::string_view dtype_name(DType dtype) { return entry_of(dtype).name; }

size_t dtype_size(DType dtype) { return entry_of(dtype).size; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& e : kDTypes)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  // Checked for zero first: the product of the other dimensions may overflow on its own.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

Safetensors Safetensors::parse(std::string bytes, const std::string& source) {
  if (bytes.size() < 8)
    fail(source, "file is " + std::to_string(bytes.size()) +
                     " bytes, too short for the 8-byte header length");
  const uint64_t header_len = read_u64_le(bytes);
  const uint64_t available = bytes.size() - 8;
  if (header_len == 0) fail(source, "header length is 0");
  if (header_len > available)
    fail(source, "header length " + std::to_string(header_len) + " exceeds the " +
                     std::to_string(available) + " bytes after the length prefix");
  if (header_len > kMaxHeaderBytes)
    fail(source, "header length " + std::to_string(header_len) + " exceeds the " +
                     std::to_string(kMaxHeaderBytes) + "-byte limit");
  std::string_view header(bytes.data() + 8, header_len);
  if (size_t at = invalid_utf8_at(header); at != std::string_view::npos)
    fail(source, "header is not valid UTF-8 (file byte " + std::to_string(8 + at) + ")");
  json root = parse_header_json(header, source);
  if (!root.is_object())
    fail(source, std::string("header is a JSON ") + root.type_name() + ", not an object");
  // nlohmann skips leading whitespace and a byte-order mark; the reference rejects both.
  if (header.front() != '{') fail(source, "header does not start with '{'");

  Safetensors st;
  st.source_ = source;
  st.data_start_ = 8 + header_len;
  const uint64_t data_size = bytes.size() - st.data_start_;
  // Object iteration is in key order, so tensors_ comes out sorted by name.
  for (const auto& item : root.items()) {
    if (item.key() == "__metadata__")
      st.metadata_ = parse_metadata(item.value(), source);
    else
      st.tensors_.push_back(parse_tensor(item.key(), item.value(), data_size, source));
  }
  check_coverage(st.tensors_, data_size, source);
  st.bytes_ = std::move(bytes);
  return st;
}

Safetensors Safetensors::load(const std::filesystem::path& path) {
  return parse(read_file(path), path.string());
}

const TensorInfo* Safetensors::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

std::string_view Safetensors::data(const TensorInfo& info) const {
  assert(info.begin <= info.end && info.end <= bytes_.size() - data_start_);
  return std::string_view(bytes_).substr(data_start_ + info.begin, info.nbytes());
}

std::string serialize_safetensors(std::vector<TensorView> tensors,
                                  const std::map<std::string, std::string>& metadata) {
  PreparedFile file = prepare(std::move(tensors), metadata, "safetensors output");
  std::string out = std::move(file.head);
  size_t total = out.size();
  for (const auto& t : file.tensors) total += t.bytes.size();
  out.reserve(total);
  for (const auto& t : file.tensors) out += t.bytes;
  return out;
}

void save_safetensors(const std::filesystem::path& path, std::vector<TensorView> tensors,
                      const std::map<std::string, std::string>& metadata) {
  PreparedFile file = prepare(std::move(tensors), metadata, path.string());
  AtomicFile out(path);
  out.write(file.head);
  for (const auto& t : file.tensors) {
    // An empty view may have a null data(), which fwrite must not be given even for 0 bytes.
    if (!t.bytes.empty()) out.write(t.bytes);
  }
  out.commit();
}

}  // namespace recap
