// Tokenizer tests: training, round trips, special ids, determinism, persistence and error
// paths. This binary links libtorch (and so libprotobuf), so every passing test here also shows
// that sentencepiece runs isolated inside librecap_spm.so (see src/text/spm_shim.h).
#include <gtest/gtest.h>
#include <link.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace {

using recap::text::Tokenizer;
using recap::text::TokenizerOptions;

// A few hundred caption-like sentences in the embedded world's language.
std::vector<std::string> captions() {
  const std::vector<std::string> counts = {"a", "two", "three", "four"};
  const std::vector<std::string> colours = {"red", "green", "blue", "yellow", "purple", "orange"};
  const std::vector<std::string> shapes = {"circle", "square", "star", "heart", "diamond"};
  const std::vector<std::string> relations = {"to the left of", "to the right of", "above",
                                              "below"};
  std::vector<std::string> out;
  for (size_t i = 0; i < 360; ++i) {
    const std::string& count = counts[i % counts.size()];
    std::string first = count + " " + colours[i % colours.size()] + " " +
                        shapes[(i / 2) % shapes.size()] + (count == "a" ? "" : "s");
    std::string second = "a " + colours[(i / 3) % colours.size()] + " " +
                         shapes[(i / 7) % shapes.size()];
    out.push_back(first + " " + relations[(i / 5) % relations.size()] + " " + second);
  }
  return out;
}

TokenizerOptions small_options(const std::string& model_type) {
  TokenizerOptions o;
  o.vocab_size = 48;
  o.model_type = model_type;
  return o;
}

const Tokenizer& trained(const std::string& model_type) {
  static const Tokenizer unigram = Tokenizer::train(captions(), small_options("unigram"));
  static const Tokenizer bpe = Tokenizer::train(captions(), small_options("bpe"));
  return model_type == "bpe" ? bpe : unigram;
}

std::string read_all(const std::filesystem::path& path) { return recap::read_file(path); }

bool process_has_libprotobuf() {
  bool found = false;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        if (std::string(info->dlpi_name).find("libprotobuf.so") != std::string::npos) {
          *static_cast<bool*>(data) = true;
        }
        return 0;
      },
      &found);
  return found;
}

class TokenizerModel : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerModel, RoundTripsEveryTrainingSentence) {
  const Tokenizer& t = trained(GetParam());
  EXPECT_EQ(t.vocab_size(), 48);
  for (const auto& text : captions()) {
    auto ids = t.encode(text);
    ASSERT_FALSE(ids.empty());
    for (int id : ids) EXPECT_NE(id, Tokenizer::kUnk) << text;
    EXPECT_EQ(t.decode(ids), text);
  }
}

TEST_P(TokenizerModel, ControlTokensAreSingleIdsAndDecodeDropsThem) {
  const Tokenizer& t = trained(GetParam());
  EXPECT_EQ(t.id_of("<short>"), Tokenizer::kShort);
  EXPECT_EQ(t.id_of("<long>"), Tokenizer::kLong);
  auto ids = t.encode("<short> two red stars");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids.front(), Tokenizer::kShort);
  EXPECT_EQ(t.decode(ids), "two red stars");
  // Glued to words, a control still stays whole, and separates them.
  ids = t.encode("a blue<long>star<long>");
  EXPECT_EQ(ids.back(), Tokenizer::kLong);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), Tokenizer::kLong), 2);
  EXPECT_EQ(t.decode(ids), "a blue star");
  EXPECT_EQ(t.encode("<long>"), std::vector<int>{Tokenizer::kLong});
}

TEST_P(TokenizerModel, TrainingIsDeterministic) {
  Tokenizer again = Tokenizer::train(captions(), small_options(GetParam()));
  EXPECT_EQ(again.model_bytes(), trained(GetParam()).model_bytes());
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerModel, ::testing::Values("unigram", "bpe"));

TEST(Tokenizer, RunsBesideLibtorchProtobuf) {
  // The crash this design avoids needs libprotobuf in the process; make sure it is here.
  EXPECT_TRUE(process_has_libprotobuf());
  EXPECT_GT(trained("unigram").encode("a red star").size(), 0u);
}

TEST(Tokenizer, SpecialIdsAreDistinctAndAddedOnRequest) {
  const Tokenizer& t = trained("unigram");
  std::vector<int> specials = {Tokenizer::kPad, Tokenizer::kUnk, Tokenizer::kBos,
                               Tokenizer::kEos, Tokenizer::kShort, Tokenizer::kLong};
  std::sort(specials.begin(), specials.end());
  EXPECT_EQ(std::unique(specials.begin(), specials.end()), specials.end());
  EXPECT_EQ(t.piece_of(Tokenizer::kPad), "<pad>");
  EXPECT_EQ(t.piece_of(Tokenizer::kUnk), "<unk>");
  EXPECT_EQ(t.piece_of(Tokenizer::kBos), "<s>");
  EXPECT_EQ(t.piece_of(Tokenizer::kEos), "</s>");

  auto plain = t.encode("a red star");
  auto framed = t.encode("a red star", true, true);
  ASSERT_EQ(framed.size(), plain.size() + 2);
  EXPECT_EQ(framed.front(), Tokenizer::kBos);
  EXPECT_EQ(framed.back(), Tokenizer::kEos);
  framed.push_back(Tokenizer::kPad);
  EXPECT_EQ(t.decode(framed), "a red star");
}

TEST(Tokenizer, UnknownPiecesAndIds) {
  const Tokenizer& t = trained("unigram");
  EXPECT_EQ(t.id_of("<unk>"), Tokenizer::kUnk);
  EXPECT_EQ(t.id_of("no-such-piece"), std::nullopt);
  // Characters never seen in training become UNK, which decodes to a visible marker.
  auto ids = t.encode("a red Ω");
  EXPECT_EQ(ids.back(), Tokenizer::kUnk);
  EXPECT_NE(t.decode(ids).find("\u2047"), std::string::npos);
  EXPECT_THROW(t.decode(std::vector<int>{t.vocab_size()}), recap::Error);
  EXPECT_THROW(t.decode(std::vector<int>{-1}), recap::Error);
  EXPECT_THROW(t.piece_of(t.vocab_size()), recap::Error);
}

TEST(Tokenizer, ByteFallbackRoundTripsUnseenCharacters) {
  TokenizerOptions o = small_options("bpe");
  o.vocab_size = 300;  // room for the 256 byte pieces
  o.byte_fallback = true;
  Tokenizer t = Tokenizer::train(captions(), o);
  auto ids = t.encode("a red Ω");
  for (int id : ids) EXPECT_NE(id, Tokenizer::kUnk);
  EXPECT_EQ(t.decode(ids), "a red Ω");
}

TEST(Tokenizer, InvalidUtf8IsAnError) {
  const Tokenizer& t = trained("unigram");
  EXPECT_THROW(t.encode("a red \xff star"), recap::Error);
  EXPECT_THROW(t.encode("\xc0\xaf"), recap::Error);  // overlong '/'
  auto texts = captions();
  texts[7] = "two blue \xed\xa0\x80 hearts";  // a UTF-16 surrogate
  try {
    Tokenizer::train(texts, small_options("unigram"));
    FAIL() << "expected recap::Error";
  } catch (const recap::Error& e) {
    EXPECT_NE(std::string(e.what()).find("#7"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, BadOptionsAreErrors) {
  TokenizerOptions o = small_options("wordpiece");
  EXPECT_THROW(Tokenizer::train(captions(), o), recap::Error);
  o = small_options("bpe");
  o.vocab_size = 5;
  EXPECT_THROW(Tokenizer::train(captions(), o), recap::Error);
  o = small_options("unigram");
  o.character_coverage = 0.0;
  EXPECT_THROW(Tokenizer::train(captions(), o), recap::Error);
  EXPECT_THROW(Tokenizer::train({}, small_options("bpe")), recap::Error);
  // More pieces than the texts can support: sentencepiece's own refusal, as a recap::Error.
  o = small_options("unigram");
  o.vocab_size = 5000;
  EXPECT_THROW(Tokenizer::train(captions(), o), recap::Error);
}

TEST(Tokenizer, SaveLoadRoundTrip) {
  recap::test::TempDir dir("tok");
  const Tokenizer& t = trained("bpe");
  auto path = dir / "models" / "tokenizer.model";
  t.save(path);
  EXPECT_EQ(read_all(path), t.model_bytes());
  // Atomic write: only the final file is left.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(path.parent_path()),
                          std::filesystem::directory_iterator()),
            1);
  Tokenizer loaded = Tokenizer::load(path);
  EXPECT_EQ(loaded.model_bytes(), t.model_bytes());
  EXPECT_EQ(loaded.vocab_size(), t.vocab_size());
  for (const auto& text : captions()) EXPECT_EQ(loaded.encode(text), t.encode(text));
}

void expect_load_error_naming(const std::filesystem::path& path) {
  try {
    Tokenizer::load(path);
    FAIL() << "expected recap::Error for " << path;
  } catch (const recap::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, MissingOrCorruptModelFileIsAnErrorNamingIt) {
  recap::test::TempDir dir("tok");
  expect_load_error_naming(dir / "absent.model");

  auto garbage = dir / "garbage.model";
  std::ofstream(garbage, std::ios::binary) << "\xff\xfe not a model at all \x01\x02";
  expect_load_error_naming(garbage);

  const std::string& bytes = trained("unigram").model_bytes();
  auto truncated = dir / "truncated.model";
  recap::write_file_atomic(truncated, std::string_view(bytes).substr(0, bytes.size() / 2));
  expect_load_error_naming(truncated);

  auto empty = dir / "empty.model";
  recap::write_file_atomic(empty, "");
  expect_load_error_naming(empty);
}

}  // namespace
