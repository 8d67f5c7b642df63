// `corpus stats` and `corpus show` on a small real corpus made by make_corpus.
#include <gtest/gtest.h>

#include <cctype>
#include <map>
#include <set>
#include <string>
#include <variant>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "data/image.h"
#include "data/rejects.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "stages/corpus.h"
#include "stages/corpus_show.h"
#include "stages/corpus_stats.h"
#include "test_util.h"

namespace recap::corpus {
namespace {

constexpr int64_t kWeb = 300, kEval = 50, kPromptsPerSuite = 20;

// One corpus for every test here: making it is the slow part.
const fs::path& corpus_dir() {
  static test::TempDir dir("corpus-stats");
  static const bool made = [] {
    make_corpus(Config::load("smoke", {"corpus.web_samples=300", "corpus.shard_size=100",
                                       "corpus.eval_samples=50", "corpus.human_samples=50",
                                       "corpus.prompts_per_suite=20"}),
                dir.path(), 1);
    return true;
  }();
  (void)made;
  return dir.path();
}

const CorpusStats& base_stats() {
  static const CorpusStats stats = corpus_stats(corpus_dir());
  return stats;
}

const SourceStats& source(const CorpusStats& stats, const std::string& name) {
  for (const auto& s : stats.sources)
    if (s.name == name) return s;
  throw std::runtime_error("no source " + name);
}

// key -> human long caption of every web sample, read back from the shards.
std::map<std::string, std::string> web_human_long() {
  std::map<std::string, std::string> out;
  for (const auto& shard : list_shards(corpus_dir(), Split::Web)) {
    data::ShardReader reader(shard);
    while (auto item = reader.next()) {
      const auto& sample = std::get<data::Sample>(*item);
      out[sample.key] = *meta_caption(sample.meta, "human_long");
    }
  }
  return out;
}

TEST(CorpusStats, EverySampleAndPromptIsCounted) {
  const CorpusStats& stats = base_stats();
  EXPECT_EQ(stats.web.used, uint64_t(kWeb));
  EXPECT_EQ(stats.web.rejected, 0u);
  EXPECT_EQ(stats.eval.used, uint64_t(kEval));
  EXPECT_EQ(stats.eval_prompts, 4 * kPromptsPerSuite + kEval);
  ASSERT_EQ(stats.sources.size(), 3u);
  for (const auto& s : stats.sources) {
    EXPECT_EQ(s.captions, kWeb) << s.name;
    EXPECT_EQ(s.missing, 0) << s.name;
  }
  EXPECT_GT(stats.eval_ngrams[0], 10);
  EXPECT_GT(stats.eval_ngrams[2], stats.eval_ngrams[0]);
}

TEST(CorpusStats, HumanLongIsExactAndAltTextIsNot) {
  const SourceStats& human = source(base_stats(), "human-long");
  EXPECT_DOUBLE_EQ(human.shape, 1.0);
  EXPECT_DOUBLE_EQ(human.binding, 1.0);
  EXPECT_DOUBLE_EQ(human.count, 1.0);
  EXPECT_DOUBLE_EQ(human.relation_or_position, 1.0);
  EXPECT_DOUBLE_EQ(human.wrong_fact, 0.0);
  EXPECT_DOUBLE_EQ(human.precision, 1.0);
  EXPECT_DOUBLE_EQ(human.recall, 1.0);

  const SourceStats& alt = source(base_stats(), "alt");
  EXPECT_LT(alt.count, 0.3);
  EXPECT_LT(alt.relation_or_position, 0.3);
  EXPECT_LT(alt.binding, human.binding);
  EXPECT_LT(alt.recall, 0.7);
  EXPECT_GT(alt.wrong_fact, 0.0);  // the wrong-attributes mode
  EXPECT_LT(alt.mean_words, human.mean_words / 2);

  const SourceStats& shorter = source(base_stats(), "human-short");
  EXPECT_LT(shorter.mean_words, human.mean_words);
  EXPECT_DOUBLE_EQ(shorter.wrong_fact, 0.0);
}

TEST(CorpusStats, HumanCaptionsCoverTheEvaluationLanguageBetterThanAltText) {
  const SourceStats& human = source(base_stats(), "human-long");
  const SourceStats& alt = source(base_stats(), "alt");
  for (int n = 0; n < 3; ++n) {
    EXPECT_GE(human.coverage[n], alt.coverage[n]) << n + 1 << "-grams";
    EXPECT_GT(human.coverage[n], 0.0);
    EXPECT_LE(human.coverage[n], 1.0);
  }
  EXPECT_GT(human.coverage[0], 0.8);
  EXPECT_GT(human.median_words, 0.0);
  EXPECT_GT(human.vocabulary, 20);
}

TEST(CorpusStats, JsonlSourceCountsMissingAndUnknownKeys) {
  test::TempDir tmp("stats-jsonl");
  std::string lines;
  int i = 0;
  for (const auto& [key, caption] : web_human_long())
    if (i++ % 2 == 0) lines += nlohmann::json{{"key", key}, {"caption", caption}}.dump() + "\n";
  lines += "\n";  // blank lines are skipped
  lines += nlohmann::json{{"key", "web-999999999"}, {"caption", "a red star"}}.dump() + "\n";
  write_file_atomic(tmp / "half.recap.jsonl", lines);

  CorpusStats stats = corpus_stats(corpus_dir(), {tmp / "half.recap.jsonl"});
  ASSERT_EQ(stats.sources.size(), 4u);
  const SourceStats& half = stats.sources[3];
  EXPECT_EQ(half.name, "half.recap");
  EXPECT_EQ(half.captions, kWeb / 2);
  EXPECT_EQ(half.missing, kWeb / 2);
  EXPECT_EQ(half.unknown_keys, 1);
  EXPECT_DOUBLE_EQ(half.count, 1.0);
  EXPECT_DOUBLE_EQ(half.wrong_fact, 0.0);
  EXPECT_NE(format_stats_table(stats).find("half.recap"), std::string::npos);
}

// A caption equal to a test prompt (case, spacing and a final full stop aside) is counted once
// per distinct prompt; a caption that only contains a prompt is not; dev prompts are no test
// prompts. The corpus's own captions describe random scenes, so none of its sources is
// expected to repeat a whole multi-object prompt by chance.
TEST(CorpusStats, TestPromptsFoundVerbatimInCaptions) {
  test::TempDir tmp("stats-verbatim");
  const auto test_prompts = read_jsonl(prompts_path(corpus_dir(), "multi_object"));
  const auto dev_prompts = read_jsonl(dev_prompts_path(corpus_dir(), "multi_object"));
  ASSERT_GE(test_prompts.size(), 2u);
  ASSERT_FALSE(dev_prompts.empty());
  std::string first = test_prompts[0].at("text"), second = test_prompts[1].at("text");
  std::string shouted = first;
  for (auto& c : shouted) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::vector<std::string> captions = {first, "  " + shouted + ".", second + " and a red star",
                                             dev_prompts[0].at("text")};
  std::string lines;
  int i = 0;
  for (const auto& [key, caption] : web_human_long()) {
    if (i == static_cast<int>(captions.size())) break;
    lines += nlohmann::json{{"key", key}, {"caption", captions[i++]}}.dump() + "\n";
  }
  write_file_atomic(tmp / "copies.jsonl", lines);
  const CorpusStats stats = corpus_stats(corpus_dir(), {tmp / "copies.jsonl"});
  std::set<std::string> distinct;  // a suite may draw the same text twice
  for (const char* suite : {"counting", "position", "colour_binding", "multi_object"}) {
    std::set<std::string> own;
    for (const auto& prompt : read_jsonl(prompts_path(corpus_dir(), suite))) {
      distinct.insert(prompt.at("text").get<std::string>());
      own.insert(prompt.at("text").get<std::string>());
    }
    EXPECT_EQ(stats.suite_prompts_by_suite.at(suite), static_cast<int64_t>(own.size())) << suite;
  }
  EXPECT_EQ(stats.suite_prompts, static_cast<int64_t>(distinct.size()));
  const SourceStats& copies = source(stats, "copies");
  EXPECT_EQ(copies.prompts_verbatim, 1);
  EXPECT_EQ(copies.prompts_verbatim_by_suite.at("multi_object"), 1);
  EXPECT_EQ(copies.prompts_verbatim_by_suite.at("counting"), 0);
  EXPECT_NE(format_stats_table(stats).find("  of them multi_object"), std::string::npos);
  EXPECT_NE(format_stats_table(stats).find("test prompts verbatim"), std::string::npos);
  EXPECT_EQ(to_json(stats)["sources"][3]["test_prompts_verbatim"], 1);
}

TEST(CorpusStats, BadJsonlLinesNameFileAndLine) {
  test::TempDir tmp("stats-bad");
  const auto expect_error = [&](const std::string& text, const std::string& expected) {
    write_file_atomic(tmp / "bad.jsonl", text);
    try {
      corpus_stats(corpus_dir(), {tmp / "bad.jsonl"});
      ADD_FAILURE() << "no error for: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  const std::string good = R"({"key": "web-000000001", "caption": "a star"})";
  const std::string file = (tmp / "bad.jsonl").string();
  expect_error(good + "\n{\"key\": oops\n", file + ":2: invalid JSON");
  expect_error("\n\n" + std::string(R"({"key": "web-000000002"})") + "\n", file + ":3:");
  expect_error(good + "\n" + good + "\n", file + ":2: key web-000000001 given twice");
}

TEST(CorpusStats, RejectedSamplesAreCountedWithReasons) {
  test::TempDir tmp("stats-rejects");
  fs::copy(corpus_dir(), tmp.path(), fs::copy_options::recursive);
  {
    data::ShardWriter writer(shard_path(tmp.path(), Split::Web, 99));
    writer.add("web-broken-1", "txt", "an image without an image");
    writer.add_sample("web-broken-2", "png", data::encode_png({1, 1, 3, {0, 0, 0}}),
                      "no scene graph");
    writer.commit();
  }
  CorpusStats stats = corpus_stats(tmp.path());
  EXPECT_EQ(stats.web.used, uint64_t(kWeb));
  EXPECT_EQ(stats.web.rejected, 2u);
  EXPECT_EQ(stats.web.reasons.at(std::string(data::reason::kMissingImage)), 1u);
  EXPECT_EQ(stats.web.reasons.at(std::string(kBadSceneReason)), 1u);
  EXPECT_EQ(source(stats, "alt").captions, kWeb);
  EXPECT_NE(format_stats_table(stats).find("rejected 2"), std::string::npos);
  EXPECT_EQ(to_json(stats)["web"]["reasons"]["bad_scene"], 1);
}

TEST(CorpusStats, TableHasSourcesAsColumnsAndJsonHasEveryMetric) {
  const std::string table = format_stats_table(base_stats());
  const std::string header = table.substr(0, table.find('\n'));
  EXPECT_LT(header.find("alt"), header.find("human-long"));
  EXPECT_LT(header.find("human-long"), header.find("human-short"));
  for (const char* row : {"captions scored", "missing", "median words", "vocabulary",
                          "correct count", "correct relation/position", "wrong fact",
                          "group precision", "eval trigram coverage", "evaluation prompts: 130"})
    EXPECT_NE(table.find(row), std::string::npos) << row;
  EXPECT_NE(table.find("100.0%"), std::string::npos);

  const nlohmann::json json = to_json(base_stats());
  ASSERT_EQ(json["sources"].size(), 3u);
  EXPECT_EQ(json["sources"][1]["name"], "human-long");
  EXPECT_EQ(json["sources"][1]["shares"]["correct_count"], 1.0);
  EXPECT_EQ(json["web"]["used"], kWeb);
  EXPECT_TRUE(json["sources"][0]["eval_coverage"].contains("trigrams"));
}

TEST(CorpusShow, SheetGrowsWithKeysAndIsDeterministic) {
  test::TempDir tmp("show");
  const auto dims = [](const fs::path& png) {
    auto decoded = data::decode_image(read_file(png));
    EXPECT_TRUE(decoded.image.has_value()) << decoded.reason;
    return std::pair{decoded.image->width, decoded.image->height};
  };
  write_contact_sheet(corpus_dir(), {sample_key(Split::Web, 3)}, tmp / "one.png");
  const std::vector<std::string> three = {sample_key(Split::Web, 7), sample_key(Split::Human, 0),
                                          sample_key(Split::Eval, 49)};
  write_contact_sheet(corpus_dir(), three, tmp / "three.png");
  write_contact_sheet(corpus_dir(), three, tmp / "again.png");

  auto [w1, h1] = dims(tmp / "one.png");
  auto [w3, h3] = dims(tmp / "three.png");
  EXPECT_EQ(w1, w3);
  EXPECT_GE(h1, 128);
  EXPECT_GE(h3, 3 * 128);
  EXPECT_GT(h3, h1);
  EXPECT_EQ(read_file(tmp / "three.png"), read_file(tmp / "again.png"));
}

TEST(CorpusShow, UnknownKeysAreListed) {
  test::TempDir tmp("show-unknown");
  try {
    write_contact_sheet(corpus_dir(), {sample_key(Split::Web, 1), "web-000999999", "nope"},
                        tmp / "sheet.png");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("web-000999999"), std::string::npos) << message;
    EXPECT_NE(message.find("nope"), std::string::npos) << message;
    EXPECT_EQ(message.find(sample_key(Split::Web, 1)), std::string::npos) << message;
  }
  EXPECT_FALSE(fs::exists(tmp / "sheet.png"));
}

}  // namespace
}  // namespace recap::corpus
