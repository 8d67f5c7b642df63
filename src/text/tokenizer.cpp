// Tokenizer on top of librecap_spm.so. This file owns finding and loading the shim: it must be
// loaded so that sentencepiece's embedded protobuf never meets libtorch's libprotobuf (see
// spm_shim.h), which is why it is dlmopen()ed here instead of linked.
#include "text/tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/text_checks.h"
#include "text/spm_shim.h"

namespace recap::text {

namespace {

namespace fs = std::filesystem;

constexpr const char* kShimName = "librecap_spm.so";
constexpr const char* kShimEnv = "RECAP_SPM_SHIM";

struct Shim {
  decltype(&recap_spm_free) free;
  decltype(&recap_spm_train) train;
  decltype(&recap_spm_load) load;
  decltype(&recap_spm_close) close;
  decltype(&recap_spm_encode) encode;
  decltype(&recap_spm_decode) decode;
  decltype(&recap_spm_vocab_size) vocab_size;
  decltype(&recap_spm_piece_to_id) piece_to_id;
  decltype(&recap_spm_id_to_piece) id_to_piece;
  decltype(&recap_spm_meta_ids) meta_ids;
};

// Next to the executable (build tree: recap), in ../lib (an installed layout), then the build
// directory this file was compiled for, so the test binary in build/tests finds it too.
std::vector<fs::path> shim_candidates() {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path() / kShimName);
    out.push_back((exe.parent_path() / ".." / "lib" / kShimName).lexically_normal());
  }
#ifdef RECAP_SPM_BUILD_DIR
  out.push_back(fs::path(RECAP_SPM_BUILD_DIR) / kShimName);
#endif
  return out;
}

fs::path find_shim() {
  if (const char* env = std::getenv(kShimEnv); env != nullptr && *env != '\0') {
    if (!fs::exists(env)) {
      throw Error(fmt::format("{}={}: no such file (the sentencepiece shim {})", kShimEnv, env,
                              kShimName));
    }
    return env;
  }
  std::string looked;
  for (const auto& path : shim_candidates()) {
    if (fs::exists(path)) return path;
    looked += (looked.empty() ? "" : ", ") + path.string();
  }
  throw Error(fmt::format(
      "the tokenizer needs the sentencepiece shim {}, which is not there (looked in: {}); build "
      "it with `ninja recap_spm` in the build directory (needs libsentencepiece-dev) or set {} "
      "to its path",
      kShimName, looked, kShimEnv));
}

Shim load_shim() {
  fs::path path = find_shim();
  // A link-map namespace of its own: sentencepiece, its embedded protobuf and its own libc and
  // libstdc++ are invisible to (and cannot see) libtorch's libprotobuf. dlopen(RTLD_LOCAL |
  // RTLD_DEEPBIND) is not enough: it also binds sentencepiece to libstdc++'s own std::cerr,
  // locale ids and libc's __libc_single_threaded, whose live copies sit in any executable that
  // copy-relocates them (recap_tests does), so it crashed on sentencepiece's first log line.
  // DEEPBIND would also abort ASan builds; dlmopen works there too (google/sanitizers#611).
  void* handle = ::dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    throw Error(fmt::format("{}: cannot load the sentencepiece shim: {}", path.string(),
                            ::dlerror()));
  }
  // The handle is never closed: tokenizers may live until exit, and a namespace holds a libc
  // copy whose teardown mid-process buys nothing.
  auto symbol = [&](const char* name) {
    void* p = ::dlsym(handle, name);
    if (p == nullptr) {
      throw Error(fmt::format("{}: missing symbol {}; rebuild it (`ninja recap_spm`)",
                              path.string(), name));
    }
    return p;
  };
  auto version =
      reinterpret_cast<decltype(&recap_spm_abi_version)>(symbol("recap_spm_abi_version"));
  if (version() != RECAP_SPM_ABI_VERSION) {
    throw Error(fmt::format("{}: shim ABI version {}, this recap needs {}; rebuild it "
                            "(`ninja recap_spm`)",
                            path.string(), version(), RECAP_SPM_ABI_VERSION));
  }
  Shim s;
  s.free = reinterpret_cast<decltype(s.free)>(symbol("recap_spm_free"));
  s.train = reinterpret_cast<decltype(s.train)>(symbol("recap_spm_train"));
  s.load = reinterpret_cast<decltype(s.load)>(symbol("recap_spm_load"));
  s.close = reinterpret_cast<decltype(s.close)>(symbol("recap_spm_close"));
  s.encode = reinterpret_cast<decltype(s.encode)>(symbol("recap_spm_encode"));
  s.decode = reinterpret_cast<decltype(s.decode)>(symbol("recap_spm_decode"));
  s.vocab_size = reinterpret_cast<decltype(s.vocab_size)>(symbol("recap_spm_vocab_size"));
  s.piece_to_id = reinterpret_cast<decltype(s.piece_to_id)>(symbol("recap_spm_piece_to_id"));
  s.id_to_piece = reinterpret_cast<decltype(s.id_to_piece)>(symbol("recap_spm_id_to_piece"));
  s.meta_ids = reinterpret_cast<decltype(s.meta_ids)>(symbol("recap_spm_meta_ids"));
  return s;
}

// Loaded on first use, so a recap run that never tokenizes does not need the shim. A failed
// load throws out of the static's initialiser and is retried on the next call.
const Shim& shim() {
  static const Shim s = load_shim();
  return s;
}

// Buffers the shim allocated go back to the shim's malloc: its namespace has its own libc.
struct ShimFree {
  void operator()(void* p) const { shim().free(p); }
};
template <class T>
using ShimPtr = std::unique_ptr<T, ShimFree>;

std::string take_error(char* error) {
  ShimPtr<char> owned(error);
  return owned ? std::string(owned.get()) : std::string("unknown error");
}

// Appends sentencepiece's ids for `text` (without controls) to `out`.
void encode_words(const recap_spm* spm, std::string_view text, std::vector<int>& out) {
  int* ids = nullptr;
  size_t count = 0;
  char* error = nullptr;
  if (shim().encode(spm, text.data(), text.size(), &ids, &count, &error) != 0) {
    throw Error("tokenizer: encode failed: " + take_error(error));
  }
  ShimPtr<int> owned(ids);
  out.insert(out.end(), ids, ids + count);
}

void check_options(const TokenizerOptions& o) {
  if (o.model_type != "unigram" && o.model_type != "bpe") {
    throw Error("tokenizer model_type: '" + o.model_type + "', expected 'unigram' or 'bpe'");
  }
  if (o.vocab_size <= Tokenizer::kLong) {
    throw Error(fmt::format("tokenizer vocab_size: {} leaves no room beside the {} special pieces",
                            o.vocab_size, Tokenizer::kLong + 1));
  }
  if (!(o.character_coverage > 0.0 && o.character_coverage <= 1.0)) {
    throw Error(fmt::format("tokenizer character_coverage: {}, expected (0, 1]",
                            o.character_coverage));
  }
}

// Sentencepiece's trainer flags. Determinism: one thread, no shuffling and no sampling of the
// input (input_sentence_size=0 keeps every sentence), plus the seed passed beside these.
std::string trainer_args(const TokenizerOptions& o) {
  return fmt::format(
      "--model_type={} --vocab_size={} --character_coverage={} --byte_fallback={} "
      "--num_threads=1 --shuffle_input_sentence=false --input_sentence_size=0 "
      "--pad_id={} --unk_id={} --bos_id={} --eos_id={} --user_defined_symbols={},{} "
      "--minloglevel=1",
      o.model_type, o.vocab_size, o.character_coverage, o.byte_fallback, Tokenizer::kPad,
      Tokenizer::kUnk, Tokenizer::kBos, Tokenizer::kEos, Tokenizer::kShortPiece,
      Tokenizer::kLongPiece);
}

}  // namespace

Tokenizer::Tokenizer(std::string model, std::shared_ptr<recap_spm> spm)
    : model_(std::move(model)), spm_(std::move(spm)) {}

Tokenizer Tokenizer::train(const std::vector<std::string>& texts,
                           const TokenizerOptions& options) {
  check_options(options);
  if (texts.empty()) throw Error("tokenizer training: no texts");
  std::vector<const char*> pointers;
  std::vector<size_t> lengths;
  pointers.reserve(texts.size());
  lengths.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!data::is_valid_utf8(texts[i])) {
      throw Error(fmt::format("tokenizer training text #{} is not valid UTF-8", i));
    }
    pointers.push_back(texts[i].data());
    lengths.push_back(texts[i].size());
  }
  char* model = nullptr;
  size_t model_len = 0;
  char* error = nullptr;
  if (shim().train(pointers.data(), lengths.data(), texts.size(), trainer_args(options).c_str(),
                   options.seed, &model, &model_len, &error) != 0) {
    throw Error("tokenizer training failed: " + take_error(error));
  }
  ShimPtr<char> owned(model);
  return from_bytes(std::string(owned.get(), model_len), "trained tokenizer model");
}

Tokenizer Tokenizer::load(const fs::path& path) {
  return from_bytes(read_file(path), path.string());
}

Tokenizer Tokenizer::from_bytes(std::string model, const std::string& origin) {
  const Shim& s = shim();
  char* error = nullptr;
  recap_spm* raw = s.load(model.data(), model.size(), &error);
  if (raw == nullptr) {
    throw Error(origin + ": not a sentencepiece tokenizer model: " + take_error(error));
  }
  std::shared_ptr<recap_spm> spm(raw, s.close);
  Tokenizer t(std::move(model), std::move(spm));
  // Model code hard-codes the special ids, so a model laid out otherwise must not load.
  int meta[4];
  s.meta_ids(t.spm_.get(), meta);
  bool layout_ok = meta[0] == kPad && meta[1] == kUnk && meta[2] == kBos && meta[3] == kEos &&
                   t.id_of(kShortPiece) == kShort && t.id_of(kLongPiece) == kLong;
  if (!layout_ok) {
    throw Error(origin + ": not a recap tokenizer model (its special ids differ from " +
                "pad=0 unk=1 bos=2 eos=3 <short>=4 <long>=5)");
  }
  return t;
}

void Tokenizer::save(const fs::path& path) const { write_file_atomic(path, model_); }

std::vector<int> Tokenizer::encode(std::string_view text, bool add_bos, bool add_eos) const {
  if (!data::is_valid_utf8(text)) throw Error("tokenizer: text to encode is not valid UTF-8");
  std::vector<int> out;
  if (add_bos) out.push_back(kBos);
  // Style controls are cut out before sentencepiece sees the text: it keeps them whole too, but
  // puts a lone "▁" piece before one at the start or after a space, so "<short> a star"
  // would not begin with kShort. A control thus also acts as a word boundary.
  constexpr std::pair<std::string_view, int> kControls[] = {{kShortPiece, kShort},
                                                            {kLongPiece, kLong}};
  size_t pos = 0;
  while (true) {
    size_t next = text.size();
    const std::pair<std::string_view, int>* found = nullptr;
    for (const auto& control : kControls) {
      size_t at = text.find(control.first, pos);
      if (at < next) {
        next = at;
        found = &control;
      }
    }
    encode_words(spm_.get(), text.substr(pos, next - pos), out);
    if (found == nullptr) break;
    out.push_back(found->second);
    pos = next + found->first.size();
  }
  if (add_eos) out.push_back(kEos);
  return out;
}

std::string Tokenizer::decode(std::span<const int> ids) const {
  int size = vocab_size();
  std::vector<int> kept;
  kept.reserve(ids.size());
  for (int id : ids) {
    if (id < 0 || id >= size) {
      throw Error(fmt::format("tokenizer: cannot decode id {}, vocabulary size is {}", id, size));
    }
    if (id != kUnk && id <= kLong) continue;  // specials other than UNK carry no text
    kept.push_back(id);
  }
  char* text = nullptr;
  size_t text_len = 0;
  char* error = nullptr;
  if (shim().decode(spm_.get(), kept.data(), kept.size(), &text, &text_len, &error) != 0) {
    throw Error("tokenizer: decode failed: " + take_error(error));
  }
  ShimPtr<char> owned(text);
  return std::string(owned.get(), text_len);
}

int Tokenizer::vocab_size() const { return shim().vocab_size(spm_.get()); }

std::optional<int> Tokenizer::id_of(std::string_view piece) const {
  int id = shim().piece_to_id(spm_.get(), piece.data(), piece.size());
  if (id < 0) return std::nullopt;
  return id;
}

std::string Tokenizer::piece_of(int id) const {
  size_t len = 0;
  const char* piece = shim().id_to_piece(spm_.get(), id, &len);
  if (piece == nullptr) {
    throw Error(fmt::format("tokenizer: no piece for id {}, vocabulary size is {}", id,
                            vocab_size()));
  }
  return std::string(piece, len);
}

}  // namespace recap::text
