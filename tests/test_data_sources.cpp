// The readers of a user's own data (issue #20): CSV records, JSONL and CSV manifests with a
// chosen caption field, image folders with sidecar captions, a tar shard's caption from its
// KEY.json, the factory that picks a reader for a path, and the human caption set of step 1.
// Every test builds its own fixture; each bad input must come out as a counted reject (or, for
// the human set, a refusal naming it), never a crash or a silent loss.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/csv.h"
#include "data/image.h"
#include "data/manifest.h"
#include "data/rejects.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "data/sidecar_folder.h"
#include "data/source.h"
#include "stages/human_set.h"
#include "test_util.h"

namespace recap::data {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using test::TempDir;

std::string shade_png(uint8_t shade) {
  return encode_png(Image{4, 3, 3, std::vector<uint8_t>(4 * 3 * 3, shade)});
}

void put_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  write_file_atomic(path, bytes);
}

std::vector<Sample> read_source(SampleSource& source, RejectLog& log) {
  std::vector<Sample> samples;
  while (auto item = source.next()) {
    if (auto* sample = std::get_if<Sample>(&*item)) {
      log.add_used();
      samples.push_back(std::move(*sample));
    } else {
      log.add(std::get<Reject>(*item));
    }
  }
  return samples;
}

std::vector<CsvRecord> parse_csv(const std::string& text, uint64_t limit = 1000) {
  std::istringstream in(text);
  std::vector<CsvRecord> out;
  for (auto r = read_csv_record(in, limit); r.status != CsvRecord::Status::kEnd;
       r = read_csv_record(in, limit))
    out.push_back(r);
  return out;
}

TEST(Csv, QuotingNewlinesAndLineEnds) {
  auto records = parse_csv("file,caption\r\n"
                             "a.png,\"two, red \"\"squares\"\"\"\n"
                             "b.png,\"line one\nline two\"\n"
                             "c.png,\n"
                             "\n"
                             "d.png,last");  // no final newline
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[0].fields, (std::vector<std::string>{"file", "caption"}));
  EXPECT_EQ(records[1].fields[1], "two, red \"squares\"");
  EXPECT_EQ(records[2].fields[1], "line one\nline two");
  EXPECT_EQ(records[2].lines, 2u);
  EXPECT_EQ(records[3].fields, (std::vector<std::string>{"c.png", ""}));
  EXPECT_EQ(records[4].fields, (std::vector<std::string>{""}));
  EXPECT_EQ(records[5].fields[1], "last");
}

TEST(Csv, MalformedRecordsAreSkippedToTheirLineEnd) {
  auto records = parse_csv("a,b\"c\n"         // a quote inside an unquoted field
                             "\"a\"x,b\n"       // text after a closing quote
                             "ok,1\n"
                             "long," + std::string(50, 'y') + "\n"
                             "ok,2\n"
                             "\"open,3\nmore", 20);
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[0].status, CsvRecord::Status::kMalformed);
  EXPECT_NE(records[0].problem.find("quote inside"), std::string::npos);
  EXPECT_EQ(records[1].status, CsvRecord::Status::kMalformed);
  EXPECT_EQ(records[2].fields, (std::vector<std::string>{"ok", "1"}));
  EXPECT_EQ(records[3].status, CsvRecord::Status::kMalformed);
  EXPECT_NE(records[3].problem.find("longer than 20"), std::string::npos);
  EXPECT_EQ(records[4].fields, (std::vector<std::string>{"ok", "2"}));
  EXPECT_EQ(records[5].status, CsvRecord::Status::kMalformed);
  EXPECT_NE(records[5].problem.find("ends inside a quoted field"), std::string::npos);
}

// A Recap-DataComp-style CSV: org_caption beside re_caption, one column chosen.
TEST(Manifest, CsvWithChosenCaptionColumnAndCountedRejects) {
  TempDir dir;
  put_file(dir / "img" / "a.png", shade_png(10));
  put_file(dir / "img" / "b.png", shade_png(20));
  put_file(dir / "img" / "c.png", shade_png(30));
  put_file(dir / "k7.jpg", encode_jpeg(Image{4, 4, 3, std::vector<uint8_t>(48, 9)}));
  put_file(dir / "m.csv", "\xEF\xBB\xBFkey,file,org_caption,re_caption\n"
                       ",img/a.png,a photo,\"A red square, centred.\"\n"
                       "k7,,alt k7,long k7\n"
                       ",img/missing.png,x,y\n"
                       ",../outside.png,x,y\n"
                       ",img/a.png,again,again\n"
                       ",img/b.png,too,many,fields\n"
                       ",img/b.png,bad \"quote\",y\n"
                       ",img/c.png,\xff\xfe,\xff\xfe\n"
                       ",img/b.png,,\n");
  ReadLimits limits;
  limits.caption_field = "re_caption";
  ManifestSource source(dir / "m.csv", limits);
  RejectLog log;
  auto samples = read_source(source, log);
  ASSERT_EQ(samples.size(), 3u) << log.summary();
  EXPECT_EQ(samples[0].key, "img/a.png");
  EXPECT_EQ(samples[0].caption, "A red square, centred.");
  EXPECT_EQ(samples[0].meta["org_caption"], "a photo");  // the other column stays readable
  EXPECT_EQ(samples[0].image_bytes, shade_png(10));
  EXPECT_EQ(samples[1].key, "k7");  // no file: KEY.jpg beside the manifest
  EXPECT_EQ(samples[1].image_ext, "jpg");
  EXPECT_EQ(samples[1].caption, "long k7");
  EXPECT_EQ(samples[2].key, "img/b.png");
  EXPECT_EQ(samples[2].caption, "");  // empty alt-text passes, as in shards
  EXPECT_EQ(log.count(reason::kMissingImage), 1u);
  EXPECT_EQ(log.count(reason::kUnsafePath), 1u);
  EXPECT_EQ(log.count(reason::kDuplicateKey), 1u);
  EXPECT_EQ(log.count(reason::kBadCsvRow), 2u);
  EXPECT_EQ(log.count(reason::kCaptionInvalidUtf8), 1u);
  EXPECT_EQ(log.used() + log.rejected(), 9u);

  // Without the chosen column the header is refused, naming the columns it has.
  try {
    ManifestSource(dir / "m.csv", ReadLimits{});
    FAIL() << "a header without the caption column was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("org_caption, re_caption"), std::string::npos) << e.what();
  }
  put_file(dir / "dup.csv", "file,caption,caption\n");
  EXPECT_THROW(ManifestSource(dir / "dup.csv"), Error);
}

TEST(Manifest, JsonlWithChosenFieldAndLineNumbers) {
  TempDir dir;
  put_file(dir / "a.png", shade_png(1));
  put_file(dir / "b.png", shade_png(2));
  put_file(dir / "list.jsonl", R"({"file": "a.png", "caption": "alt", "re_caption": "long a"})"
                            "\n\n"
                            R"({"file": "b.png", "caption": "alt b"})" "\n"
                            "[1, 2]\n");
  ReadLimits limits;
  limits.caption_field = "re_caption";
  ManifestSource source(dir / "list.jsonl", limits);
  std::vector<SourceItem> items;
  while (auto item = source.next()) items.push_back(std::move(*item));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(std::get<Sample>(items[0]).caption, "long a");
  const auto& missing = std::get<Reject>(items[1]);  // no re_caption in that line
  EXPECT_EQ(missing.reason, reason::kBadJsonLine);
  EXPECT_EQ(missing.key, "list.jsonl:3");
  EXPECT_EQ(std::get<Reject>(items[2]).key, "list.jsonl:4");
}

TEST(SidecarFolder, NestedSortedWithCaptionLinesAndCountedRejects) {
  TempDir dir;
  const fs::path f = dir / "photos";
  put_file(f / "b.png", shade_png(1));
  put_file(f / "b.txt", "  a dog on a sofa \r\n\nthe dog, close up\n");
  put_file(f / "a.jpg", encode_jpeg(Image{4, 4, 3, std::vector<uint8_t>(48, 3)}));
  put_file(f / "a.caption", "a cat");
  put_file(f / "sub" / "z" / "c.png", shade_png(2));
  put_file(f / "sub" / "z" / "c.txt", "c from txt");
  put_file(f / "sub" / "z" / "c.caption", "c from caption");  // .txt wins
  put_file(f / "sub" / "d.png", shade_png(3));                      // no sidecar
  put_file(f / "sub" / "orphan.txt", "no image");             // no image
  put_file(f / "e.png", shade_png(4));
  put_file(f / "e.txt", "\xc3\x28 invalid");
  put_file(f / "g.png", shade_png(5));
  put_file(f / "g.txt", std::string(300, 'x'));
  put_file(f / "h.png", shade_png(6));
  put_file(f / "h.txt", "");                                  // an empty caption, kept
  put_file(f / ".hidden" / "x.png", shade_png(7));
  put_file(f / "notes.json", "{}");
  put_file(dir / "outside.png", shade_png(8));
  put_file(f / "link.txt", "escapes");
  fs::create_symlink(dir / "outside.png", f / "link.png");
  ReadLimits limits;
  limits.caption.max_bytes = 100;
  SidecarFolderSource source(f, limits);
  std::vector<SourceItem> items;
  while (auto item = source.next()) items.push_back(std::move(*item));
  std::vector<std::string> keys;
  for (const auto& item : items)
    keys.push_back(std::visit([](const auto& x) { return x.key; }, item));
  EXPECT_EQ(keys, (std::vector<std::string>{"a.jpg", "b.png", "e.png", "g.png", "h.png",
                                            "link.png", "sub/d.png", "sub/orphan.txt",
                                            "sub/z/c.png"}));
  const auto& b = std::get<Sample>(items[1]);
  EXPECT_EQ(b.caption, "a dog on a sofa");
  EXPECT_EQ(b.meta["caption_lines"], (nlohmann::json{"a dog on a sofa", "the dog, close up"}));
  EXPECT_EQ(b.meta["caption_file"], "b.txt");
  EXPECT_EQ(b.index_in_shard, 1u);
  EXPECT_EQ(std::get<Sample>(items[0]).caption, "a cat");
  EXPECT_EQ(std::get<Sample>(items[0]).image_ext, "jpg");
  EXPECT_EQ(std::get<Reject>(items[2]).reason, reason::kCaptionInvalidUtf8);
  EXPECT_EQ(std::get<Reject>(items[3]).reason, reason::kCaptionTooLong);
  EXPECT_EQ(std::get<Sample>(items[4]).caption, "");
  EXPECT_EQ(std::get<Reject>(items[5]).reason, reason::kUnsafePath);
  EXPECT_EQ(std::get<Reject>(items[6]).reason, reason::kMissingCaption);
  EXPECT_EQ(std::get<Reject>(items[7]).reason, reason::kMissingImage);
  EXPECT_EQ(std::get<Sample>(items[8]).caption, "c from txt");
}

TEST(OpenSource, PicksTheReaderByLayout) {
  TempDir dir;
  put_file(dir / "side" / "a.png", shade_png(1));
  put_file(dir / "side" / "a.txt", "sidecar");
  put_file(dir / "listed" / "a.png", shade_png(1));
  put_file(dir / "listed" / "captions.jsonl", R"({"file": "a.png", "caption": "listed"})" "\n");
  put_file(dir / "m.csv", "file,caption\nside/a.png,from csv\n");
  put_file(dir / "m.jsonl", R"({"file": "side/a.png", "caption": "from jsonl"})" "\n");
  {
    ShardWriter writer(dir / "shards" / "s-1.tar");
    writer.add_sample("k", "png", shade_png(1), "from txt", {{"re_caption", "from json"}});
    writer.commit();
  }
  fs::copy_file(dir / "shards" / "s-1.tar", dir / "shards" / "s-0.tar");
  auto first_caption = [](const fs::path& path, ReadLimits limits = {}) {
    auto source = open_source(path, limits);
    auto item = source->next();
    return item ? std::get<Sample>(*item).caption : "(none)";
  };
  EXPECT_EQ(first_caption(dir / "side"), "sidecar");
  EXPECT_EQ(first_caption(dir / "listed"), "listed");
  EXPECT_EQ(first_caption(dir / "m.csv"), "from csv");
  EXPECT_EQ(first_caption(dir / "m.jsonl"), "from jsonl");
  EXPECT_EQ(first_caption(dir / "shards" / "s-1.tar"), "from txt");
  ReadLimits from_json;
  from_json.caption_field = "re_caption";
  EXPECT_EQ(first_caption(dir / "shards" / "s-1.tar", from_json), "from json");
  from_json.caption_field = "nothing";
  auto source = open_source(dir / "shards" / "s-1.tar", from_json);
  EXPECT_EQ(std::get<Reject>(*source->next()).reason, reason::kMissingCaption);

  EXPECT_EQ(expand_sources({dir / "shards", dir / "side", dir / "m.csv"}),
            (std::vector<fs::path>{dir / "shards" / "s-0.tar", dir / "shards" / "s-1.tar",
                                   dir / "side", dir / "m.csv"}));
  EXPECT_THROW(expand_sources({dir / "nowhere"}), Error);
  EXPECT_THROW(expand_sources({}), Error);
}

}  // namespace
}  // namespace recap::data

namespace recap::stages {
namespace {

namespace fs = std::filesystem;

TEST(HumanSet, ReadsStylesAndRefusesBadSetsByName) {
  test::TempDir dir;
  write_file_atomic(dir / "ok.jsonl", R"({"file": "a.png", "caption": "a long one"})" "\n"
                                      R"({"key": "a.png", "caption": "short", "style": "short"})" "\n\n"
                                      R"({"key": "k", "caption": "only short", "style": "short"})" "\n");
  const HumanSet set = read_human_set(dir / "ok.jsonl", {});
  EXPECT_EQ(set.lines, 3u);
  EXPECT_EQ(set.by_key.at("a.png").long_caption, "a long one");
  EXPECT_EQ(set.by_key.at("a.png").short_caption, "short");
  EXPECT_EQ(set.texts(), (std::vector<std::string>{"a long one", "short", "only short"}));

  write_file_atomic(dir / "bad.jsonl", R"({"file": "a.png", "caption": ""})" "\n"
                                       R"({"file": "b.png", "caption": "  "})" "\n"
                                       R"({"file": "c.png", "caption": "x", "style": "medium"})" "\n"
                                       R"({"caption": "no key"})" "\n"
                                       "not json\n"
                                       R"({"file": "d.png", "caption": "one"})" "\n"
                                       R"({"file": "d.png", "caption": "two"})" "\n");
  try {
    read_human_set(dir / "bad.jsonl", {});
    FAIL() << "a bad human set was taken";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const char* expected : {"empty_caption 2", "bad_style 1", "missing_key 1",
                                 "bad_json_line 1", "duplicate 1", "line 3 (c.png)"})
      EXPECT_NE(what.find(expected), std::string::npos) << expected << " in: " << what;
  }
}

TEST(HumanSet, CopiesItsSamplesOutOfTheSourcesAndRefusesUnknownKeys) {
  test::TempDir dir;
  fs::create_directories(dir / "img");
  for (const char* name : {"a", "b", "c"})
    write_file_atomic(dir / "img" / (std::string(name) + ".png"),
                      data::encode_png(data::Image{2, 2, 3, std::vector<uint8_t>(12, 5)}));
  write_file_atomic(dir / "img" / "a.txt", "alt a");
  write_file_atomic(dir / "img" / "b.txt", "alt b");
  write_file_atomic(dir / "h.jsonl", R"({"file": "b.png", "caption": "long b"})" "\n"
                                     R"({"file": "a.png", "caption": "short a", "style": "short"})" "\n");
  const HumanSet set = read_human_set(dir / "h.jsonl", {});
  EXPECT_EQ(write_human_shard(set, {dir / "img"}, {}, dir / "out" / "human.tar"), 2u);
  data::ShardReader reader(dir / "out" / "human.tar");
  std::vector<data::Sample> samples;
  while (auto item = reader.next()) samples.push_back(std::get<data::Sample>(*item));
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].key, "human-000000000");  // source order: a.png first
  EXPECT_EQ(samples[0].meta["key"], "a.png");
  EXPECT_EQ(samples[0].caption, "");
  EXPECT_EQ(samples[0].meta["captions"]["human_short"], "short a");
  EXPECT_EQ(samples[1].caption, "long b");

  // c.png has no sidecar (rejected by its source), zzz.png is nowhere: refused, nothing written.
  write_file_atomic(dir / "h2.jsonl", R"({"file": "c.png", "caption": "c"})" "\n"
                                      R"({"file": "zzz.png", "caption": "z"})" "\n");
  try {
    write_human_shard(read_human_set(dir / "h2.jsonl", {}), {dir / "img"}, {},
                      dir / "out2" / "human.tar");
    FAIL() << "unknown keys were taken";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("unknown_key 1"), std::string::npos) << what;
    EXPECT_NE(what.find("rejected_sample 1"), std::string::npos) << what;
    EXPECT_NE(what.find("zzz.png"), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(dir / "out2" / "human.tar"));
}

}  // namespace
}  // namespace recap::stages
