// Subword tokenizer for captions: a sentencepiece model (BPE or unigram) trained on caption
// text. Sentencepiece runs inside librecap_spm.so, loaded at run time (spm_shim.h says why), so
// this header and recap_lib stay free of both sentencepiece and torch.
//
// Every model recap trains has the same fixed special ids (the constants below), so model code
// can use them without a tokenizer at hand; load() refuses a model laid out otherwise.
//
// Text contract:
// - encode() and train() require valid UTF-8 and throw recap::Error otherwise (captions are
//   validated on ingest, data/text_checks.h, so invalid bytes here are a bug upstream and are
//   not silently replaced).
// - Text is normalised as sentencepiece's "nmt_nfkc" rule does (NFKC, runs of whitespace
//   collapsed, leading/trailing whitespace dropped): decode(encode(t)) == t for normalised t.
// - "<short>" and "<long>" in the text (caption style controls) always encode to their own
//   single ids, never split, and act as word boundaries: encode("<short> a star") starts with
//   kShort, and decode drops them, so decode(encode("a<long>star")) == "a star".
// - decode() drops PAD/BOS/EOS and the style controls; UNK shows as " ⁇ " (sentencepiece's
//   marker), so lost text stays visible rather than vanishing.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct recap_spm;

namespace recap::text {

struct TokenizerOptions {
  int vocab_size = 1000;               // including the special pieces
  std::string model_type = "unigram";  // "unigram" or "bpe"
  double character_coverage = 1.0;     // share of characters kept; the rest become UNK
  uint32_t seed = 0;                   // sentencepiece's generator seed
  // Unseen characters encode as UTF-8 byte pieces instead of UNK (costs 256 vocabulary slots).
  bool byte_fallback = false;
};

class Tokenizer {
 public:
  static constexpr int kPad = 0;
  static constexpr int kUnk = 1;
  static constexpr int kBos = 2;
  static constexpr int kEos = 3;
  static constexpr int kShort = 4;  // "<short>": ask the captioner for a short caption
  static constexpr int kLong = 5;   // "<long>": ask for a long, detailed caption
  static constexpr std::string_view kShortPiece = "<short>";
  static constexpr std::string_view kLongPiece = "<long>";

  // Deterministic: the same texts and options give byte-identical models (one trainer thread,
  // no input shuffling, seeded generator). Throws recap::Error for bad options, invalid UTF-8
  // or a failed training (e.g. a vocabulary larger than the texts support).
  static Tokenizer train(const std::vector<std::string>& texts,
                         const TokenizerOptions& options = {});
  // Throws recap::Error naming the file when it is missing, unreadable, not a sentencepiece
  // model or not laid out with recap's special ids.
  static Tokenizer load(const std::filesystem::path& path);
  // As load(), from model bytes; `origin` names them in errors.
  static Tokenizer from_bytes(std::string model, const std::string& origin);

  // Writes the model atomically (core/atomic_file.h).
  void save(const std::filesystem::path& path) const;
  const std::string& model_bytes() const { return model_; }

  std::vector<int> encode(std::string_view text, bool add_bos = false,
                          bool add_eos = false) const;
  // Throws recap::Error for an id outside [0, vocab_size()).
  std::string decode(std::span<const int> ids) const;

  int vocab_size() const;
  // The id of a vocabulary piece (e.g. "<short>", "▁red"); nullopt when there is none.
  std::optional<int> id_of(std::string_view piece) const;
  // The piece for an id; throws recap::Error when out of range.
  std::string piece_of(int id) const;

 private:
  Tokenizer(std::string model, std::shared_ptr<recap_spm> spm);

  std::string model_;               // serialized sentencepiece ModelProto
  std::shared_ptr<recap_spm> spm_;  // immutable once loaded, so copies share it
};

}  // namespace recap::text
