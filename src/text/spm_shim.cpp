// librecap_spm.so: sentencepiece behind the plain C ABI of spm_shim.h. Built as its own shared
// library linked against libsentencepiece only (never torch), and loaded by tokenizer.cpp with
// dlmopen(LM_ID_NEWLM), so the protobuf symbols sentencepiece embeds resolve to its own copies
// and never meet libtorch's libprotobuf. Not part of recap_lib (CMakeLists.txt excludes this
// file from its glob).
#include "text/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

struct recap_spm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

// A malloc'd copy for the caller to release with recap_spm_free: this namespace's malloc.
char* copy_out(std::string_view s) {
  auto* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

int fail(char** error, std::string_view message) {
  if (error != nullptr) *error = copy_out(message);
  return 1;
}

// Feeds the caller's sentences to the trainer without a temporary file, so sentences may hold
// any bytes (newlines included) and nothing is left on disk.
class ArrayIterator : public sentencepiece::SentenceIterator {
 public:
  ArrayIterator(const char* const* texts, const size_t* lengths, size_t count)
      : texts_(texts), lengths_(lengths), count_(count) {
    load();
  }
  bool done() const override { return index_ >= count_; }
  void Next() override {
    ++index_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (index_ < count_) value_.assign(texts_[index_], lengths_[index_]);
  }

  const char* const* texts_;
  const size_t* lengths_;
  size_t count_;
  size_t index_ = 0;
  std::string value_;
};

}  // namespace

extern "C" {

int recap_spm_abi_version(void) { return RECAP_SPM_ABI_VERSION; }

void recap_spm_free(void* p) { std::free(p); }

int recap_spm_train(const char* const* texts, const size_t* lengths, size_t count,
                    const char* args, unsigned seed, char** model, size_t* model_len,
                    char** error) {
  try {
    // The seed is process-wide state in sentencepiece, so concurrent trainings would share it;
    // recap trains one tokenizer at a time, and the caller pins num_threads=1 as well.
    sentencepiece::SetRandomGeneratorSeed(seed);
    ArrayIterator it(texts, lengths, count);
    std::string bytes;
    auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &bytes);
    if (!status.ok()) return fail(error, status.ToString());
    *model = copy_out(bytes);
    if (*model == nullptr) return fail(error, "out of memory");
    *model_len = bytes.size();
    return 0;
  } catch (const std::exception& e) {
    return fail(error, e.what());
  }
}

recap_spm* recap_spm_load(const char* model, size_t model_len, char** error) {
  try {
    auto* spm = new recap_spm;
    auto status = spm->processor.LoadFromSerializedProto(std::string_view(model, model_len));
    if (!status.ok()) {
      delete spm;
      fail(error, status.ToString());
      return nullptr;
    }
    return spm;
  } catch (const std::exception& e) {
    fail(error, e.what());
    return nullptr;
  }
}

void recap_spm_close(recap_spm* spm) { delete spm; }

int recap_spm_encode(const recap_spm* spm, const char* text, size_t text_len, int** ids,
                     size_t* count, char** error) {
  try {
    std::vector<int> out;
    auto status = spm->processor.Encode(std::string_view(text, text_len), &out);
    if (!status.ok()) return fail(error, status.ToString());
    // malloc(0) may return null, so ask for at least one element.
    *ids = static_cast<int*>(std::malloc(std::max<size_t>(out.size(), 1) * sizeof(int)));
    if (*ids == nullptr) return fail(error, "out of memory");
    std::memcpy(*ids, out.data(), out.size() * sizeof(int));
    *count = out.size();
    return 0;
  } catch (const std::exception& e) {
    return fail(error, e.what());
  }
}

int recap_spm_decode(const recap_spm* spm, const int* ids, size_t count, char** text,
                     size_t* text_len, char** error) {
  try {
    std::string out;
    auto status = spm->processor.Decode(std::vector<int>(ids, ids + count), &out);
    if (!status.ok()) return fail(error, status.ToString());
    *text = copy_out(out);
    if (*text == nullptr) return fail(error, "out of memory");
    *text_len = out.size();
    return 0;
  } catch (const std::exception& e) {
    return fail(error, e.what());
  }
}

int recap_spm_vocab_size(const recap_spm* spm) { return spm->processor.GetPieceSize(); }

int recap_spm_piece_to_id(const recap_spm* spm, const char* piece, size_t piece_len) {
  // Sentencepiece answers unk_id for an unknown piece; tell that apart from "<unk>" itself.
  std::string_view p(piece, piece_len);
  int id = spm->processor.PieceToId(p);
  if (id == spm->processor.unk_id() && spm->processor.IdToPiece(id) != p) return -1;
  return id;
}

const char* recap_spm_id_to_piece(const recap_spm* spm, int id, size_t* piece_len) {
  if (id < 0 || id >= spm->processor.GetPieceSize()) return nullptr;
  const std::string& piece = spm->processor.IdToPiece(id);
  *piece_len = piece.size();
  return piece.c_str();
}

void recap_spm_meta_ids(const recap_spm* spm, int ids[4]) {
  ids[0] = spm->processor.pad_id();
  ids[1] = spm->processor.unk_id();
  ids[2] = spm->processor.bos_id();
  ids[3] = spm->processor.eos_id();
}

}  // extern "C"
