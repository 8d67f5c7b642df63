// `recap tokenizer train` on a corpus the test makes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/shard_reader.h"
#include "stages/corpus.h"
#include "stages/tokenizer_train.h"
#include "test_util.h"

namespace recap::corpus {
namespace {

using ::testing::HasSubstr;

TEST(TokenizerTrain, CoversTheCorpusAndTheEvalLanguage) {
  test::TempDir dir("tokenizer");
  make_corpus(Config::load("smoke"), dir / "c", 2);
  auto options = tokenizer_options(corpus_config(dir / "c"));
  auto result = train_corpus_tokenizer(dir / "c", dir / "tok.model", options);
  EXPECT_EQ(result.vocab_size, 300);
  EXPECT_GE(result.texts, 400 + 2 * 100 - 40);  // web alt (minus empty ones) + human long/short
  EXPECT_GT(result.skipped, 0);                  // empty alt-text exists at a 4% rate

  auto tok = text::Tokenizer::load(dir / "tok.model");
  // Eval captions (never trained on) encode without <unk> and decode back.
  data::ShardReader reader(list_shards(dir / "c", Split::Eval).at(0));
  int checked = 0;
  while (auto item = reader.next()) {
    const auto& s = std::get<data::Sample>(*item);
    auto ids = tok.encode(s.caption, true, true);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), text::Tokenizer::kUnk), 0) << s.caption;
    EXPECT_EQ(tok.decode(ids), s.caption);
    ++checked;
  }
  EXPECT_EQ(checked, 100);
}

TEST(TokenizerTrain, CommandLine) {
  test::TempDir dir("tokenizer");
  ASSERT_EQ(test::run_recap("corpus make --preset smoke --out " + (dir / "c").string()).status, 0);
  auto r = test::run_recap("tokenizer train --corpus " + (dir / "c").string() + " --out " +
                           (dir / "t.model").string() + " --set tokenizer.model_type=bpe");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tokenizer with 300 pieces"));
  EXPECT_TRUE(std::filesystem::exists(dir / "t.model"));
  auto bad = test::run_recap("tokenizer train --corpus " + (dir / "nope").string() + " --out " +
                             (dir / "u.model").string());
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("nope"));
}

}  // namespace
}  // namespace recap::corpus
