// Safetensors reader/writer: round trips for every dtype, a file assembled byte by byte from the
// format's description, one malformed file per validation rule, and deterministic byte-level
// mutation of a valid file (which must parse or raise recap::Error, never anything else).
#include "core/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <random>
#include <typeinfo>

#include "core/atomic_file.h"
#include "core/error.h"

#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using recap::DType;
using recap::Safetensors;
using recap::TensorView;
using ::testing::HasSubstr;

// Test data is built with memcpy from host values, which the format stores little-endian.
static_assert(std::endian::native == std::endian::little);

constexpr DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                                DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};

std::string le64(uint64_t value) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &value, 8);
  return out;
}

// A file as the format specifies: length prefix, JSON header, data buffer.
std::string make_file(std::string_view header, std::string_view data) {
  return le64(header.size()) + std::string(header) + std::string(data);
}

template <typename T>
std::string bytes_of(std::initializer_list<T> values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

// Distinct, position-dependent bytes so a misplaced range shows up as a mismatch.
std::string pattern(size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>((seed * 31 + i * 7 + 1) & 0xFF);
  return out;
}

uint64_t header_length(const std::string& file) {
  uint64_t value;
  std::memcpy(&value, file.data(), 8);
  return value;
}

TEST(SafetensorsDType, NamesSizesAndParsingAgree) {
  const size_t sizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};
  for (size_t i = 0; i < std::size(kAllDTypes); ++i) {
    DType dtype = kAllDTypes[i];
    EXPECT_EQ(recap::dtype_size(dtype), sizes[i]) << recap::dtype_name(dtype);
    EXPECT_EQ(recap::parse_dtype(recap::dtype_name(dtype)), dtype);
  }
  EXPECT_EQ(recap::dtype_name(DType::BF16), "BF16");
  EXPECT_EQ(recap::parse_dtype("F8_E4M3"), std::nullopt);
  EXPECT_EQ(recap::parse_dtype("f32"), std::nullopt);
  EXPECT_EQ(recap::parse_dtype(""), std::nullopt);
}

// One [2,3] tensor per dtype, plus a scalar and two zero-element tensors (one whose other
// dimensions would overflow if multiplied without looking for the zero).
struct Fixture {
  std::vector<std::string> buffers;
  std::vector<TensorView> views;
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "caf\xc3\xa9 \"q\""}};

  Fixture() {
    buffers.reserve(std::size(kAllDTypes) + 1);
    for (DType dtype : kAllDTypes) {
      buffers.push_back(pattern(6 * recap::dtype_size(dtype), buffers.size()));
      std::string name = "t_" + std::string(recap::dtype_name(dtype));
      views.push_back({name, dtype, {2, 3}, buffers.back()});
    }
    buffers.push_back(bytes_of({3.5f}));
    views.push_back({"scalar", DType::F32, {}, buffers.back()});
    views.push_back({"empty", DType::I64, {4, 0}, {}});
    views.push_back({"empty_wide", DType::F32, {int64_t{1} << 40, int64_t{1} << 40, 0}, {}});
  }
};

TEST(SafetensorsRoundTrip, EveryDTypeScalarAndEmptyTensors) {
  Fixture f;
  std::string file = recap::serialize_safetensors(f.views, f.metadata);
  EXPECT_EQ(header_length(file) % 8, 0u);

  Safetensors st = Safetensors::parse(file, "round.safetensors");
  EXPECT_EQ(st.source(), "round.safetensors");
  EXPECT_EQ(st.metadata(), f.metadata);
  ASSERT_EQ(st.tensors().size(), f.views.size());
  EXPECT_TRUE(std::is_sorted(st.tensors().begin(), st.tensors().end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  for (const TensorView& view : f.views) {
    SCOPED_TRACE(view.name);
    const recap::TensorInfo* info = st.find(view.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->name, view.name);
    EXPECT_EQ(info->dtype, view.dtype);
    EXPECT_EQ(info->shape, view.shape);
    EXPECT_EQ(st.data(*info), view.bytes);
    EXPECT_EQ(info->nbytes(), view.bytes.size());
    EXPECT_EQ(static_cast<uint64_t>(info->numel()) * recap::dtype_size(info->dtype),
              info->nbytes());
  }
  EXPECT_EQ(st.find("scalar")->numel(), 1);
  EXPECT_EQ(st.find("empty_wide")->numel(), 0);
  EXPECT_EQ(st.find("missing"), nullptr);
  EXPECT_EQ(st.find(""), nullptr);
}

TEST(SafetensorsRoundTrip, OutputIsDeterministic) {
  Fixture f;
  std::string file = recap::serialize_safetensors(f.views, f.metadata);
  std::vector<TensorView> reversed(f.views.rbegin(), f.views.rend());
  EXPECT_EQ(recap::serialize_safetensors(reversed, f.metadata), file);

  // Re-serializing what was read reproduces the file byte for byte.
  Safetensors st = Safetensors::parse(file, "round.safetensors");
  std::vector<TensorView> again;
  for (const auto& t : st.tensors()) again.push_back({t.name, t.dtype, t.shape, st.data(t)});
  EXPECT_EQ(recap::serialize_safetensors(again, st.metadata()), file);
}

TEST(SafetensorsRoundTrip, NoTensorsNoMetadata) {
  std::string file = recap::serialize_safetensors({}, {});
  EXPECT_EQ(file, le64(8) + "{}      ");
  Safetensors st = Safetensors::parse(file, "empty.safetensors");
  EXPECT_TRUE(st.tensors().empty());
  EXPECT_TRUE(st.metadata().empty());
}

// Written from the format description, the way the reference writer lays a file out: metadata
// first, data ordered by dtype alignment rather than name, header padded with spaces.
TEST(SafetensorsInterop, HandAssembledFileParses) {
  const std::string header =
      R"({"__metadata__":{"format":"torch"},)"
      R"("weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("bias":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]}})"
      "     ";
  const unsigned char prefix[8] = {0xA0, 0, 0, 0, 0, 0, 0, 0};  // 160 = 155 + 5 spaces
  const unsigned char data[20] = {
      0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40,  // 1.0f, 2.0f
      0x00, 0x00, 0x80, 0xBF, 0x00, 0x00, 0x00, 0x3F,  // -1.0f, 0.5f
      0x80, 0x3F, 0x00, 0xC0,                          // bf16 1.0, -2.0
  };
  ASSERT_EQ(header.size(), 160u);
  std::string file(reinterpret_cast<const char*>(prefix), 8);
  file += header;
  file.append(reinterpret_cast<const char*>(data), sizeof data);

  Safetensors st = Safetensors::parse(file, "ref.safetensors");
  EXPECT_EQ(st.metadata(), (std::map<std::string, std::string>{{"format", "torch"}}));
  ASSERT_EQ(st.tensors().size(), 2u);
  EXPECT_EQ(st.tensors()[0].name, "bias");
  EXPECT_EQ(st.tensors()[1].name, "weight");

  const recap::TensorInfo* weight = st.find("weight");
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(weight->dtype, DType::F32);
  EXPECT_EQ(weight->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(st.data(*weight), bytes_of({1.0f, 2.0f, -1.0f, 0.5f}));

  const recap::TensorInfo* bias = st.find("bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->dtype, DType::BF16);
  EXPECT_EQ(bias->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(bias->begin, 16u);
  EXPECT_EQ(st.data(*bias), std::string("\x80\x3F\x00\xC0", 4));
}

TEST(SafetensorsWriter, RejectsInvalidTensors) {
  const std::string four = bytes_of({1.0f});
  auto expect_rejected = [](std::vector<TensorView> views, const std::string& expected) {
    SCOPED_TRACE(expected);
    try {
      recap::serialize_safetensors(std::move(views), {});
      ADD_FAILURE() << "accepted";
    } catch (const recap::Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(expected));
    }
  };
  expect_rejected({{"a", DType::F32, {1}, four}, {"a", DType::F32, {1}, four}},
                  "duplicate tensor name 'a'");
  expect_rejected({{"a", DType::F32, {2}, four}},
                  "tensor 'a': shape [2] x F32 = 8 bytes but 4 bytes were given");
  expect_rejected({{"a", DType::F32, {-1}, four}}, "tensor 'a': negative dimension in [-1]");
  expect_rejected({{"", DType::F32, {1}, four}}, "tensor with an empty name");
  expect_rejected({{"__metadata__", DType::F32, {1}, four}}, "'__metadata__' is reserved");
  expect_rejected({{"bad\xff", DType::F32, {1}, four}}, "is not valid UTF-8");
  expect_rejected({{"a", DType::F64, {int64_t{1} << 40, int64_t{1} << 40}, four}}, "overflows");
  try {
    recap::serialize_safetensors({}, {{"k", "\xc0\x80"}});
    ADD_FAILURE() << "overlong UTF-8 in metadata accepted";
  } catch (const recap::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("__metadata__ entry 'k' is not valid UTF-8"));
  }
}

class SafetensorsFiles : public ::testing::Test {
 protected:
  recap::test::TempDir tmp_{"safetensors"};
  const fs::path& dir_ = tmp_.path();
};

TEST_F(SafetensorsFiles, SaveThenLoad) {
  Fixture f;
  fs::path path = dir_ / "nested" / "model.safetensors";
  recap::save_safetensors(path, f.views, f.metadata);
  // Streaming and in-memory serialization produce the same bytes.
  EXPECT_EQ(recap::read_file(path), recap::serialize_safetensors(f.views, f.metadata));
  EXPECT_EQ(std::distance(fs::directory_iterator(path.parent_path()), fs::directory_iterator()),
            1);

  Safetensors st = Safetensors::load(path);
  EXPECT_EQ(st.source(), path.string());
  EXPECT_EQ(st.metadata(), f.metadata);
  ASSERT_EQ(st.tensors().size(), f.views.size());
  for (const TensorView& view : f.views) EXPECT_EQ(st.data(*st.find(view.name)), view.bytes);
}

TEST_F(SafetensorsFiles, ErrorsNameTheFile) {
  fs::path missing = dir_ / "missing.safetensors";
  try {
    Safetensors::load(missing);
    ADD_FAILURE() << "loaded a missing file";
  } catch (const recap::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(missing.string()));
  }

  fs::path bad = dir_ / "bad.safetensors";
  recap::write_file_atomic(bad, "short");
  try {
    Safetensors::load(bad);
    ADD_FAILURE() << "loaded a truncated file";
  } catch (const recap::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(bad.string() + ": file is 5 bytes"));
  }

  // A rejected save names the target and leaves nothing behind.
  fs::path out = dir_ / "out.safetensors";
  std::string four = bytes_of({1.0f});
  try {
    recap::save_safetensors(out, {{"a", DType::F32, {3}, four}}, {});
    ADD_FAILURE() << "saved a tensor with the wrong byte count";
  } catch (const recap::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(out.string() + ": tensor 'a'"));
  }
  EXPECT_FALSE(fs::exists(out));
}

struct Malformed {
  std::string label;  // test name suffix
  std::string bytes;
  std::string expected;  // substring of the error message
};
// Keeps ctest's listing readable (gtest would otherwise print the struct's raw bytes).
void PrintTo(const Malformed& m, std::ostream* os) { *os << m.label; }

// A header of one F32 tensor "a", with `entry` as its value.
std::string one_tensor(std::string_view entry) { return R"({"a":)" + std::string(entry) + "}"; }

std::vector<Malformed> malformed_files() {
  const std::string eight = pattern(8, 1);
  const std::string good_a = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string long_name(1000, 'x');
  return {
      {"Truncated", "abc", "file is 3 bytes, too short for the 8-byte header length"},
      {"HeaderLongerThanFile", le64(100) + "{}", "header length 100 exceeds the 2 bytes"},
      {"HeaderLengthHuge", le64(~uint64_t{0}) + "{}", "header length 18446744073709551615"},
      {"HeaderLengthZero", le64(0) + "{}", "header length is 0"},
      {"BadJson", make_file(R"({"a":)", ""), "header is not valid JSON"},
      {"TrailingJsonGarbage", make_file("{} x", ""), "header is not valid JSON"},
      {"InvalidUtf8", make_file("{\"\xff\":1}", ""), "header is not valid UTF-8 (file byte 10)"},
      {"NotAnObject", make_file("[1,2]", ""), "header is a JSON array, not an object"},
      {"LeadingWhitespace", make_file(" {}", ""), "header does not start with '{'"},
      {"EntryNotObject", make_file(one_tensor("5"), ""), "tensor 'a': entry is a JSON number"},
      {"MissingField", make_file(one_tensor(R"({"dtype":"F32","shape":[0]})"), ""),
       "tensor 'a': missing field 'data_offsets'"},
      {"ExtraField",
       make_file(one_tensor(R"({"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1})"), ""),
       "tensor 'a': unexpected field 'x'"},
      {"DtypeNotString", make_file(one_tensor(R"({"dtype":4,"shape":[],"data_offsets":[0,4]})"),
                                   ""),
       "tensor 'a': dtype is a JSON number, not a string"},
      {"UnknownDtype",
       make_file(one_tensor(R"({"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]})"), "x"),
       "tensor 'a': unsupported dtype 'F8_E4M3' (supported: F64, F32"},
      {"ShapeNotArray", make_file(one_tensor(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"),
                                  eight),
       "tensor 'a': shape is a JSON number, not an array"},
      {"NegativeShape",
       make_file(one_tensor(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), eight),
       "tensor 'a': shape[0] is negative: -2"},
      {"FloatShape",
       make_file(one_tensor(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), eight),
       "tensor 'a': shape[0] is not a non-negative integer: 2.0"},
      {"ShapeBeyondU64",
       make_file(one_tensor(
                     R"({"dtype":"F32","shape":[1,18446744073709551616],"data_offsets":[0,8]})"),
                 eight),
       "tensor 'a': shape[1] is not a non-negative integer"},
      {"ShapeBeyondI64",
       make_file(one_tensor(R"({"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,8]})"),
                 eight),
       "tensor 'a': shape[0] = 9223372036854775808 exceeds 2^63-1"},
      {"ShapeOverflow",
       make_file(one_tensor(R"({"dtype":"F32","shape":[1099511627776,1099511627776],)"
                            R"("data_offsets":[0,8]})"),
                 eight),
       "tensor 'a': shape [1099511627776,1099511627776] x F32 overflows"},
      {"OffsetsNotPair", make_file(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"),
                                   eight),
       "tensor 'a': data_offsets must be an array of two integers, got an array of size 1"},
      {"NegativeOffset",
       make_file(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[-1,7]})"), eight),
       "tensor 'a': data_offsets[0] is negative: -1"},
      {"BeginAfterEnd",
       make_file(one_tensor(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), eight),
       "tensor 'a': data_offsets [8,0] have begin > end"},
      {"WrongByteCount",
       make_file(one_tensor(R"({"dtype":"F32","shape":[3,4],"data_offsets":[0,40]})"),
                 pattern(40, 2)),
       "tensor 'a': shape [3,4] x F32 = 48 bytes but data_offsets span 40"},
      {"OffsetsPastEnd",
       make_file(one_tensor(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"), eight),
       "tensor 'a': data_offsets [0,16] extend past the end of the data buffer (8 bytes)"},
      {"OffsetsPastEndHuge",
       make_file(one_tensor(R"({"dtype":"U8","shape":[8],)"
                            R"("data_offsets":[18446744073709551607,18446744073709551615]})"),
                 eight),
       "extend past the end of the data buffer"},
      {"Overlap",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 pattern(12, 3)),
       "tensor 'b': data_offsets [4,12] overlap tensor 'a' [0,8]"},
      {"EmptyTensorInsideAnother",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                 eight),
       "tensor 'b': data_offsets [4,4] overlap tensor 'a' [0,8]"},
      {"Hole",
       make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 pattern(12, 4)),
       "hole in the data buffer: bytes [4,8) are not covered by any tensor (next tensor is 'b')"},
      {"TrailingBytes", make_file(one_tensor(good_a), eight + "junk"),
       "trailing bytes in the data buffer: bytes [8,12) are not covered by any tensor"},
      {"DataWithoutTensors", make_file("{}", "x"),
       "trailing bytes in the data buffer: bytes [0,1)"},
      {"DuplicateTensor", make_file(R"({"a":)" + good_a + R"(,"a":)" + good_a + "}", eight),
       "header has duplicate key 'a'"},
      {"DuplicateField",
       make_file(one_tensor(R"({"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]})"),
                 eight),
       "header has duplicate key 'dtype'"},
      {"MetadataNotObject", make_file(R"({"__metadata__":"pt"})", ""),
       "__metadata__ is a JSON string, not an object of strings"},
      {"MetadataValueNotString", make_file(R"({"__metadata__":{"format":1}})", ""),
       "__metadata__ value for 'format' is a JSON number, not a string"},
      {"EmptyName", make_file(R"({"":)" + good_a + "}", eight),
       "header has a tensor with an empty name"},
      {"LongNameTruncated",
       make_file("{\"" + long_name + R"(":{"dtype":"X","shape":[],"data_offsets":[0,0]}})", ""),
       "tensor '" + std::string(64, 'x') + "...' (1000 bytes): unsupported dtype 'X'"},
  };
}

class SafetensorsMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(SafetensorsMalformed, IsRejectedWithSpecificMessage) {
  const Malformed& m = GetParam();
  try {
    Safetensors::parse(m.bytes, "bad.safetensors");
    ADD_FAILURE() << "accepted";
  } catch (const recap::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad.safetensors: "));
    EXPECT_THAT(e.what(), HasSubstr(m.expected));
  }
}

INSTANTIATE_TEST_SUITE_P(All, SafetensorsMalformed, ::testing::ValuesIn(malformed_files()),
                         [](const auto& info) { return info.param.label; });

// Outcome of parsing a mutated file: true if accepted. Accepted files must be self-consistent.
bool parses_or_rejects(const std::string& bytes, const std::string& what) {
  try {
    Safetensors st = Safetensors::parse(bytes, "fuzz.safetensors");
    uint64_t total = 0;
    for (const auto& t : st.tensors()) {
      EXPECT_EQ(st.data(t).size(), t.nbytes()) << what;
      EXPECT_EQ(static_cast<uint64_t>(t.numel()) * recap::dtype_size(t.dtype), t.nbytes()) << what;
      total += t.nbytes();
    }
    EXPECT_EQ(total, bytes.size() - 8 - header_length(bytes)) << what;
    return true;
  } catch (const recap::Error&) {
    return false;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": " << typeid(e).name() << ": " << e.what();
    return false;
  }
}

TEST(SafetensorsFuzz, MutationsParseOrRaiseError) {
  std::string four = bytes_of({1.0f, -2.0f, 0.25f, 8.0f});
  std::string two = bytes_of<int16_t>({-7, 300});
  std::vector<TensorView> views = {{"w", DType::F32, {2, 2}, four},
                                   {"b", DType::I16, {2}, two},
                                   {"s", DType::U8, {}, "\x05"},
                                   {"z", DType::BF16, {0, 3}, {}}};
  const std::string valid = recap::serialize_safetensors(views, {{"k", "v"}});
  ASSERT_TRUE(parses_or_rejects(valid, "unmodified"));

  size_t accepted = 0;
  size_t rejected = 0;
  auto attempt = [&](const std::string& bytes, const std::string& what) {
    ++(parses_or_rejects(bytes, what) ? accepted : rejected);
  };
  const unsigned char masks[] = {0x01, 0x02, 0x10, 0x20, 0x80, 0xFF};
  const char replacements[] = {'"', '{', '}', '[', ']', ',', ':', '-', '0',
                               '9', ' ', '\0', '\\', 'e', '.', '\x80', '\xC3'};
  for (size_t i = 0; i < valid.size(); ++i) {
    std::string at = " at " + std::to_string(i);
    attempt(valid.substr(0, i), "truncated" + at);
    for (unsigned char mask : masks) {
      std::string mutated = valid;
      mutated[i] = static_cast<char>(mutated[i] ^ mask);
      attempt(mutated, "xor " + std::to_string(mask) + at);
    }
    for (char c : replacements) {
      std::string mutated = valid;
      mutated[i] = c;
      attempt(mutated, "set " + std::to_string(static_cast<unsigned char>(c)) + at);
    }
    std::string inserted = valid;
    inserted.insert(i, 1, ' ');
    attempt(inserted, "inserted space" + at);
  }
  // Multi-byte mutations; mt19937's output sequence is fixed by the standard.
  std::mt19937 rng(20240601);
  for (int round = 0; round < 3000; ++round) {
    std::string mutated = valid;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k)
      mutated[rng() % mutated.size()] = static_cast<char>(rng() & 0xFF);
    attempt(mutated, "random round " + std::to_string(round));
  }
  // Both outcomes must occur, or the loop is not exercising the parser.
  EXPECT_GT(accepted, 0u);
  EXPECT_GT(rejected, 0u);
}

}  // namespace
