// `recap corpus make`: layout, byte-identical output, resume, refusal of mismatched settings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/sha256.h"
#include "data/shard_reader.h"
#include "stages/corpus.h"
#include "stages/settings.h"
#include "test_util.h"
#include "world/parser.h"
#include "world/scene.h"

namespace recap::corpus {
namespace {

using ::testing::HasSubstr;

Config tiny(std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"corpus.web_samples=120", "corpus.human_samples=30",
                                   "corpus.eval_samples=20", "corpus.prompts_per_suite=10",
                                   "corpus.shard_size=50"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return Config::load("smoke", sets);
}

TEST(CorpusMake, WritesEverySplitWithGroundTruth) {
  test::TempDir dir("corpus");
  make_corpus(tiny(), dir.path(), 2);
  EXPECT_EQ(list_shards(dir.path(), Split::Web).size(), 3u);  // 50 + 50 + 20
  EXPECT_EQ(list_shards(dir.path(), Split::Human).size(), 1u);
  EXPECT_EQ(list_shards(dir.path(), Split::Eval).size(), 1u);
  for (const char* suite : {"counting", "position", "colour_binding", "multi_object"})
    EXPECT_TRUE(std::filesystem::exists(prompts_path(dir.path(), suite))) << suite;

  auto cfg = corpus_config(dir.path());
  auto world = world_settings(cfg);
  int64_t index = 0;
  for (const auto& shard : list_shards(dir.path(), Split::Web)) {
    data::ShardReader reader(shard);
    while (auto item = reader.next()) {
      auto& s = std::get<data::Sample>(*item);
      EXPECT_EQ(s.key, sample_key(Split::Web, index));
      EXPECT_EQ(s.meta["index"], index);
      EXPECT_EQ(s.caption, s.meta["captions"]["alt"]);
      // The stored human caption describes the stored scene exactly.
      auto scene = world::scene_from_json(s.meta["scene"], world);
      auto facts = world::parse_caption(s.meta["captions"]["human_long"].get<std::string>(), world);
      EXPECT_EQ(facts.groups.size(), scene.groups.size());
      ++index;
    }
  }
  EXPECT_EQ(index, 120);
}

// Dev prompts: as many as test prompts, from the same generator and another seed, none with a
// test prompt's text or another dev prompt's.
TEST(CorpusMake, DevPromptsAreDisjointFromTestPrompts) {
  test::TempDir dir("corpus");
  make_corpus(tiny({"corpus.prompts_per_suite=30"}), dir.path(), 1);
  for (const char* suite : {"counting", "position", "colour_binding", "multi_object"}) {
    const auto test = read_jsonl(prompts_path(dir.path(), suite));
    const auto dev = read_jsonl(dev_prompts_path(dir.path(), suite));
    EXPECT_EQ(test.size(), 30u) << suite;
    EXPECT_EQ(dev.size(), 30u) << suite;
    std::set<std::string> test_texts, dev_texts;
    for (const auto& p : test) test_texts.insert(p.at("text").get<std::string>());
    for (const auto& p : dev) {
      const std::string text = p.at("text");
      EXPECT_EQ(p.at("suite"), suite);
      EXPECT_EQ(test_texts.count(text), 0u) << suite << ": " << text;
      EXPECT_TRUE(dev_texts.insert(text).second) << suite << ": " << text << " twice";
    }
  }
}

TEST(CorpusMake, SameSeedSameBytesWhateverTheThreadCount) {
  test::TempDir a("corpus"), b("corpus"), c("corpus");
  make_corpus(tiny(), a.path(), 1);
  make_corpus(tiny(), b.path(), 3);
  EXPECT_EQ(sha256_tree(a.path()), sha256_tree(b.path()));
  make_corpus(tiny({"run.seed=99"}), c.path(), 2);
  EXPECT_NE(sha256_file(shard_path(a.path(), Split::Web, 0)),
            sha256_file(shard_path(c.path(), Split::Web, 0)));
}

TEST(CorpusMake, ResumesAfterAnInterruptionToTheSameBytes) {
  test::TempDir full("corpus"), cut("corpus");
  make_corpus(tiny(), full.path(), 2);
  make_corpus(tiny(), cut.path(), 2);
  // What a kill leaves: some shards missing, no corpus.json, a stray temporary.
  std::filesystem::remove(shard_path(cut.path(), Split::Web, 1));
  std::filesystem::remove(shard_path(cut.path(), Split::Eval, 0));
  std::filesystem::remove(cut / "corpus.json");
  EXPECT_THROW(corpus_config(cut.path()), Error);
  make_corpus(tiny(), cut.path(), 2);
  EXPECT_EQ(sha256_tree(full.path()), sha256_tree(cut.path()));
}

TEST(CorpusMake, RefusesAFolderMadeWithOtherSettings) {
  test::TempDir dir("corpus");
  make_corpus(tiny(), dir.path(), 1);
  make_corpus(tiny({"checkpoint.keep_last=7"}), dir.path(), 1);  // unrelated keys are fine
  try {
    make_corpus(tiny({"world.max_count=3"}), dir.path(), 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("holds a corpus made with other settings"));
  }
}

TEST(Settings, UnknownColourAndBadWorldAreNamed) {
  try {
    world_settings(Config::load("smoke", {"world.colours=[\"red\",\"teal-ish\"]"}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("config key 'world.colours': unknown colour 'teal-ish'"));
  }
  try {
    world_settings(Config::load("smoke", {"world.min_groups=4", "world.max_groups=2"}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("invalid world settings"));
  }
}

TEST(CorpusMakeCli, WritesCorpusAndRejectsBadFlags) {
  test::TempDir dir("corpus");
  auto r = test::run_recap("corpus make --preset smoke --set corpus.web_samples=40 --set "
                           "corpus.human_samples=10 --set corpus.eval_samples=10 --out " +
                           (dir / "c").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("corpus written to"));
  EXPECT_TRUE(std::filesystem::exists(dir / "c" / "corpus.json"));
  auto bad = test::run_recap("corpus make --preset smoke --set world.canvas=4 --out " +
                             (dir / "d").string());
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.output, HasSubstr("world.canvas"));
}

}  // namespace
}  // namespace recap::corpus
