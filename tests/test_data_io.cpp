// Shards, image folders, reject accounting and the loader, on fixtures each test builds in
// its own temporary directory (malicious tars are written with libarchive directly).
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "data/rejects.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "test_util.h"

namespace recap::data {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

using test::TempDir;

std::string png_of(uint8_t r, uint8_t g, uint8_t b, int width = 12, int height = 10) {
  Image image{width, height, 3, {}};
  for (int i = 0; i < width * height; ++i) image.pixels.insert(image.pixels.end(), {r, g, b});
  return encode_png(image);
}

struct RawEntry {
  std::string path;
  std::string data = {};
  mode_t type = AE_IFREG;
  std::string symlink = {};   // target, for AE_IFLNK
  std::string hardlink = {};  // target, for a hard link entry
};

// libarchive writes whatever it is told, which is what a hostile shard looks like.
void write_raw_tar(const fs::path& path, const std::vector<RawEntry>& entries, bool gzip = false) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, 0644);
    if (!e.symlink.empty()) archive_entry_set_symlink(entry, e.symlink.c_str());
    if (!e.hardlink.empty()) archive_entry_set_hardlink(entry, e.hardlink.c_str());
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
    ASSERT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << e.path;
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
}

// Every item of a source, counting samples as used; fine for the small test fixtures.
std::vector<Sample> read_all(SampleSource& source, RejectLog& log) {
  std::vector<Sample> samples;
  while (auto item = source.next()) {
    if (auto* reject = std::get_if<Reject>(&*item)) {
      log.add(*reject);
    } else {
      log.add_used();
      samples.push_back(std::move(std::get<Sample>(*item)));
    }
  }
  return samples;
}

std::string read_error(const fs::path& shard) {
  try {
    ShardReader reader(shard);
    RejectLog log;
    read_all(reader, log);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// ---- shard writer and reader -------------------------------------------------------------

TEST(DataShard, WriteReadRoundTrip) {
  TempDir dir;
  fs::path shard = dir / "shard-000000.tar";
  ShardWriter writer(shard);
  for (int i = 0; i < 5; ++i) {
    std::string key = "k" + std::to_string(i);
    writer.add_sample(key, i % 2 ? "jpg" : "png", png_of(10 * i, 0, 0), "caption " + key,
                      i == 3 ? nlohmann::json(nullptr) : nlohmann::json{{"i", i}});
  }
  EXPECT_FALSE(fs::exists(shard));  // nothing under the final name before commit
  writer.commit();
  ASSERT_TRUE(fs::exists(shard));

  ShardReader reader(shard);
  RejectLog log;
  auto samples = read_all(reader, log);
  ASSERT_EQ(samples.size(), 5u) << log.summary();
  EXPECT_EQ(log.rejected(), 0u);
  for (int i = 0; i < 5; ++i) {
    const Sample& s = samples[i];
    EXPECT_EQ(s.key, "k" + std::to_string(i));
    EXPECT_EQ(s.shard, shard.string());
    EXPECT_EQ(s.index_in_shard, static_cast<uint64_t>(i));
    EXPECT_EQ(s.image_ext, i % 2 ? "jpg" : "png");
    EXPECT_EQ(s.image_bytes, png_of(10 * i, 0, 0));
    EXPECT_EQ(s.caption, "caption k" + std::to_string(i));
    EXPECT_EQ(s.meta, (i == 3 ? nlohmann::json(nullptr) : nlohmann::json{{"i", i}}));
  }
}

TEST(DataShard, SameInputGivesByteIdenticalShard) {
  TempDir dir;
  for (const char* name : {"a.tar", "b.tar"}) {
    ShardWriter writer(dir / name);
    writer.add_sample("x", "png", png_of(1, 2, 3), "one", {{"w", 12}});
    writer.add_sample("y", "png", png_of(4, 5, 6), "two");
    writer.commit();
  }
  std::string a = read_file(dir / "a.tar");
  EXPECT_EQ(a, read_file(dir / "b.tar"));
  EXPECT_EQ(a.size() % 512, 0u);
  EXPECT_EQ(a.substr(0, 5), "x.png");
  EXPECT_EQ(a.substr(257, 5), "ustar");  // POSIX ustar magic
}

TEST(DataShard, WriterRefusesBadKeysAndOrder) {
  TempDir dir;
  ShardWriter writer(dir / "s.tar");
  for (const std::string& key :
       std::vector<std::string>{"", "a/b", "..", ".hidden", "a.b", "sp ace", std::string(81, 'k')})
    EXPECT_THROW(writer.add(key, "txt", "x"), Error) << "key '" << key << "'";
  EXPECT_THROW(writer.add("ok", "../png", "x"), Error);
  EXPECT_THROW(writer.add("ok", "", "x"), Error);
  writer.add(std::string(80, 'k'), "txt", "longest key");
  writer.add("a", "txt", "x");
  EXPECT_THROW(writer.add("a", "txt", "again"), Error);
  writer.add("b", "txt", "x");
  EXPECT_THROW(writer.add("a", "json", "{}"), Error);  // a's entries must be consecutive
  EXPECT_EQ(writer.keys(), 3u);
}

TEST(DataShard, UncommittedWriterLeavesNoFile) {
  TempDir dir;
  {
    ShardWriter writer(dir / "s.tar");
    writer.add_sample("a", "png", png_of(0, 0, 0), "x");
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(DataShard, ReadsGzipAndSystemTar) {
  TempDir dir;
  write_raw_tar(dir / "g.tar.gz", {{"k1.png", png_of(9, 9, 9)}, {"k1.txt", "gz"}}, true);
  {
    ShardReader reader(dir / "g.tar.gz");
    RejectLog log;
    auto samples = read_all(reader, log);
    ASSERT_EQ(samples.size(), 1u) << log.summary();
    EXPECT_EQ(samples[0].caption, "gz");
  }
  // tar is part of every Debian system (Essential: yes).
  ASSERT_EQ(std::system("tar --version > /dev/null 2>&1"), 0) << "no tar command";
  fs::create_directory(dir / "in");
  write_text(dir / "in" / "0001.png", png_of(1, 1, 1));
  write_text(dir / "in" / "0001.txt", "from tar");
  write_text(dir / "in" / "0001.json", R"({"url": "http://x"})");
  std::string command =
      "tar -cf '" + (dir / "sys.tar").string() + "' -C '" + (dir / "in").string() + "' .";
  ASSERT_EQ(std::system(command.c_str()), 0);
  ShardReader reader(dir / "sys.tar");
  RejectLog log;
  auto samples = read_all(reader, log);
  ASSERT_EQ(samples.size(), 1u) << log.summary();
  EXPECT_EQ(samples[0].key, "0001");
  EXPECT_EQ(samples[0].caption, "from tar");
  EXPECT_EQ(samples[0].meta["url"], "http://x");
  // The "./" root directory entry is a non-file entry, accounted like any other.
  EXPECT_EQ(log.rejected(), log.count(reason::kNotRegularFile));
  EXPECT_LE(log.rejected(), 1u);
}

TEST(DataShard, BadEntriesAreCountedByReason) {
  TempDir dir;
  std::string png = png_of(0, 0, 255);
  std::vector<RawEntry> entries = {
      {"good.png", png},
      {"good.txt", "fine"},
      {"../evil.png", png},
      {"../evil.txt", "escape"},
      {"/abs/x.png", png},
      {"/abs/x.txt", "absolute"},
      {"link.png", "", AE_IFLNK, "/etc/passwd"},
      {"link.txt", "symlink"},
      {"hard.png", "", AE_IFREG, "", "good.png"},
      {"hard.txt", "hardlink"},
      {"somedir", "", AE_IFDIR},
      {"dup.png", png},
      {"dup.txt", "first"},
      {"other.png", png},
      {"other.txt", "between"},
      {"dup.json", "{}"},  // dup returns after other: a second, duplicate sample
      {"twice.png", png},
      {"twice.txt", "a"},
      {"twice.txt", "b"},
      {"nocap.png", png},
      {"noimg.txt", "no image"},
      {"badutf.png", png},
      {"badutf.txt", "caf\xe9"},
      {"long.png", png},
      {"long.txt", std::string(101, 'x')},
      {"big.png", std::string(5000, 'b')},
      {"big.txt", "too big"},
      {"badmeta.png", png},
      {"badmeta.txt", "x"},
      {"badmeta.json", "{not json"},
      {"._hidden.png", png},
      {"last.png", png},
      {"last.txt", "also fine"},
      {"last.cls", "7"},
  };
  write_raw_tar(dir / "bad.tar", entries);
  ReadLimits limits;
  limits.max_entry_bytes = 4096;
  limits.caption.max_chars = 100;
  ShardReader reader(dir / "bad.tar", limits);
  RejectLog log;
  auto samples = read_all(reader, log);

  std::vector<std::string> keys;
  for (const auto& s : samples) keys.push_back(s.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"good", "dup", "other", "last"}));
  EXPECT_EQ(log.count(reason::kUnsafePath), 3u);      // ../evil, /abs/x, ._hidden
  EXPECT_EQ(log.count(reason::kNotRegularFile), 3u);  // symlink, hard link, directory
  EXPECT_EQ(log.count(reason::kDuplicateKey), 2u);    // dup again, twice.txt twice
  EXPECT_EQ(log.count(reason::kMissingCaption), 1u);
  EXPECT_EQ(log.count(reason::kMissingImage), 1u);
  EXPECT_EQ(log.count(reason::kCaptionInvalidUtf8), 1u);
  EXPECT_EQ(log.count(reason::kCaptionTooLong), 1u);
  EXPECT_EQ(log.count(reason::kEntryTooLarge), 1u);
  EXPECT_EQ(log.count(reason::kMetaInvalidJson), 1u);
  EXPECT_EQ(log.rejected(), 14u) << log.summary();
  // Every sample is accounted for once: 18 keys groups in the shard.
  EXPECT_EQ(log.used() + log.rejected(), 18u);
  EXPECT_EQ(samples.back().index_in_shard, 17u);
}

TEST(DataShard, BrokenArchiveThrowsNamingShardAndOffset) {
  TempDir dir;
  ShardWriter writer(dir / "good.tar");
  std::string first = png_of(1, 2, 3);
  writer.add_sample("k0", "png", first, "zero");
  writer.add_sample("k1", "png", png_of(4, 5, 6), "one");
  writer.commit();
  std::string tar = read_file(dir / "good.tar");
  std::size_t second_header = 512 + (first.size() + 511) / 512 * 512;

  write_text(dir / "cut_header.tar", tar.substr(0, second_header + 100));
  std::string error = read_error(dir / "cut_header.tar");
  EXPECT_NE(error.find("cut_header.tar"), std::string::npos) << error;
  EXPECT_NE(error.find("entry 1"), std::string::npos) << error;
  EXPECT_NE(error.find("byte offset"), std::string::npos) << error;

  write_text(dir / "cut_data.tar", tar.substr(0, 512 + first.size() / 2));
  error = read_error(dir / "cut_data.tar");
  EXPECT_NE(error.find("cut_data.tar"), std::string::npos) << error;
  EXPECT_NE(error.find("entry 0"), std::string::npos) << error;

  std::string damaged = tar;
  damaged[second_header + 3] ^= 0x55;  // breaks the header checksum
  write_text(dir / "damaged.tar", damaged);
  error = read_error(dir / "damaged.tar");
  EXPECT_NE(error.find("damaged.tar: broken tar at entry 1"), std::string::npos) << error;

  std::string garbage;
  for (int i = 0; i < 3000; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  write_text(dir / "garbage.tar", garbage);
  error = read_error(dir / "garbage.tar");
  EXPECT_NE(error.find("garbage.tar: not a readable tar (byte offset 0)"), std::string::npos)
      << error;

  write_text(dir / "empty.tar", "");
  error = read_error(dir / "empty.tar");
  EXPECT_NE(error.find("empty.tar"), std::string::npos) << error;

  EXPECT_NE(error.find("byte offset 0"), std::string::npos) << error;

  error = read_error(dir / "absent.tar");
  EXPECT_NE(error.find("absent.tar: cannot open shard: no such file"), std::string::npos) << error;
}

// ---- image folder ------------------------------------------------------------------------

TEST(DataSource, BrokenShardEndsInOneRejectAfterItsSamples) {
  TempDir dir;
  ShardWriter writer(dir / "whole.tar");
  for (int i = 0; i < 5; ++i)
    writer.add_sample("k" + std::to_string(i), "png", png_of(i, 0, 0),
                      "caption " + std::to_string(i));
  writer.commit();
  const std::string cut = test::cut_tar_at(read_file(dir / "whole.tar"), "k3");
  ASSERT_FALSE(cut.empty());
  write_text(dir / "cut.tar", cut);

  auto source = open_source(dir / "cut.tar", {}, OnBroken::kReject);
  std::vector<std::string> keys;
  std::vector<Reject> rejects;
  while (auto item = source->next()) {
    if (auto* reject = std::get_if<Reject>(&*item))
      rejects.push_back(*reject);
    else
      keys.push_back(std::get<Sample>(*item).key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"k0", "k1", "k2"}));  // every whole sample
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].reason, reason::kBrokenShard);
  EXPECT_EQ(rejects[0].shard, (dir / "cut.tar").string());
  EXPECT_EQ(rejects[0].key, "");
  // The detail is the strict reader's error: shard, entry (k3.png is entry 6) and byte offset.
  EXPECT_EQ(rejects[0].detail, read_error(dir / "cut.tar"));
  EXPECT_NE(rejects[0].detail.find("cut.tar: broken tar at entry 6 (stopped at byte offset"),
            std::string::npos)
      << rejects[0].detail;
  EXPECT_FALSE(source->next());  // ended, and stays ended

  // Unreadable from the first byte: the one reject is all there is.
  write_text(dir / "garbage.tar", std::string(3000, 'g'));
  source = open_source(dir / "garbage.tar", {}, OnBroken::kReject);
  auto item = source->next();
  ASSERT_TRUE(item && std::holds_alternative<Reject>(*item));
  EXPECT_NE(std::get<Reject>(*item).detail.find("garbage.tar: not a readable tar (byte offset 0)"),
            std::string::npos);
  EXPECT_FALSE(source->next());

  // Strict, the break throws as it always did, after the whole samples.
  source = open_source(dir / "cut.tar", {}, OnBroken::kThrow);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::holds_alternative<Sample>(*source->next()));
  EXPECT_THROW(source->next(), Error);
  // A path that is not there is a wrong list, not a damaged file: an error either way.
  EXPECT_THROW(open_source(dir / "nowhere.tar", {}, OnBroken::kReject), Error);
}

TEST(DataImageFolder, ReadsListAndCountsBadLines) {
  TempDir dir;
  fs::path folder = dir / "images";
  fs::create_directories(folder / "sub");
  write_text(folder / "a.png", png_of(255, 0, 0));
  write_text(folder / "b.JPG", encode_jpeg(Image{4, 4, 3, std::vector<uint8_t>(48, 200)}));
  write_text(folder / "long.png", png_of(0, 0, 0));
  write_text(dir / "outside.png", png_of(0, 0, 0));
  fs::create_symlink(dir / "outside.png", folder / "esc.png");
  write_text(folder / "captions.jsonl", R"({"file": "a.png", "caption": "a red square"})"
                                        "\n"
                                        R"({"file": "b.JPG", "caption": "grey", "source": "web"})"
                                        "\n\n"
                                        R"({"file": "missing.png", "caption": "x"})"
                                        "\n"
                                        R"({"file": "../outside.png", "caption": "x"})"
                                        "\n"
                                        R"({"file": "/etc/hostname", "caption": "x"})"
                                        "\n"
                                        R"({"file": "esc.png", "caption": "x"})"
                                        "\n"
                                        "this is not json\n"
                                        R"({"file": "a.png", "caption": "again"})"
                                        "\n"
                                        R"({"file": "c.png"})"
                                        "\n"
                                        R"({"file": "long.png", "caption": ")" +
                                            std::string(300, 'y') + "\"}\n" +
                                            R"({"file": "sub", "caption": "a directory"})");
  ReadLimits limits;
  limits.caption.max_chars = 100;
  ImageFolderSource source(folder, limits);
  RejectLog log;
  auto samples = read_all(source, log);
  ASSERT_EQ(samples.size(), 2u) << log.summary();
  EXPECT_EQ(samples[0].key, "a.png");
  EXPECT_EQ(samples[0].caption, "a red square");
  EXPECT_EQ(samples[1].image_ext, "jpg");
  EXPECT_EQ(samples[1].meta["source"], "web");
  EXPECT_EQ(log.count(reason::kMissingImage), 1u);
  EXPECT_EQ(log.count(reason::kUnsafePath), 3u);
  EXPECT_EQ(log.count(reason::kBadJsonLine), 2u);
  EXPECT_EQ(log.count(reason::kDuplicateKey), 1u);
  EXPECT_EQ(log.count(reason::kCaptionTooLong), 1u);
  EXPECT_EQ(log.count(reason::kNotRegularFile), 1u);
  EXPECT_EQ(log.used() + log.rejected(), 11u) << log.summary();

  // The loader takes a folder like a shard.
  LoaderOptions options;
  options.sources = {folder};
  options.image_size = 8;
  options.read = limits;
  Loader loader(options);
  std::vector<DecodedSample> batch;
  ASSERT_TRUE(loader.next_batch(batch));
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_FALSE(loader.next_batch(batch));

  EXPECT_THROW(ImageFolderSource(dir / "nowhere"), Error);
}

// ---- reject log --------------------------------------------------------------------------

TEST(DataRejectLog, CountsSummarisesAndPublishesAtFinish) {
  TempDir dir;
  fs::path path = dir / "rejects.jsonl";
  RejectLog log(path);
  log.add({"s.tar", "k1", "image_corrupt", "decoder failed"});
  log.add({"s.tar", "k\xff", "caption_too_long", "9 > 8"});
  log.add({"t.tar", "k3", "image_corrupt", ""});
  log.add_used(5);
  EXPECT_FALSE(fs::exists(path));
  log.finish();
  EXPECT_EQ(log.summary(), "used 5, rejected 3 (caption_too_long 1, image_corrupt 2)");
  EXPECT_EQ(log.to_json()["reasons"]["image_corrupt"], 2);
  std::ifstream in(path);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["key"], "k1");
  EXPECT_EQ(lines[2]["shard"], "t.tar");
}

TEST(DataRejectLog, NamesBrokenShardsOnceAndTheFirstFewInTheSummary) {
  RejectLog log;
  log.add({"b.tar", "", std::string(reason::kBrokenShard), "b.tar: broken tar at entry 3"});
  log.add({"b.tar", "", std::string(reason::kBrokenShard), "b.tar: broken tar at entry 3"});
  log.add({"a.tar", "k", "image_corrupt", ""});
  EXPECT_EQ(log.summary(),
            "used 0, rejected 3 (broken_shard 2, image_corrupt 1); broken shards: b.tar");
  EXPECT_EQ(log.broken_shards().at("b.tar"), "b.tar: broken tar at entry 3");
  for (int i = 0; i < 6; ++i)
    log.add({"c" + std::to_string(i) + ".tar", "", std::string(reason::kBrokenShard), "cut"});
  EXPECT_EQ(log.summary(),
            "used 0, rejected 9 (broken_shard 8, image_corrupt 1); broken shards: b.tar, c0.tar, "
            "c1.tar, c2.tar, c3.tar and 2 more");
  EXPECT_EQ(log.to_json()["broken_shards"].size(), 7u);
}

// ---- loader ------------------------------------------------------------------------------

// 4 shards x 25 good samples, plus in shard 2 one undecodable image and one sample without
// a caption, so streams carry rejects too.
std::vector<fs::path> make_corpus(const TempDir& dir) {
  std::vector<fs::path> shards;
  for (int s = 0; s < 4; ++s) {
    fs::path path = dir / ("shard-" + std::to_string(s) + ".tar");
    ShardWriter writer(path);
    for (int i = 0; i < 25; ++i) {
      std::string key = fmt::format("s{}_{}", s, i);
      writer.add_sample(key, "png", png_of(60 * s, 10 * i, 77, 12 + s, 10), "caption " + key);
      if (s == 2 && i == 10) {
        writer.add_sample("broken", "png", "not a png at all", "bad image");
        writer.add("nocaption", "png", png_of(0, 0, 0));
      }
    }
    writer.commit();
    shards.push_back(path);
  }
  return shards;
}

struct Stream {
  std::vector<std::string> keys;
  std::vector<Cursor> cursors;       // after each batch
  std::vector<std::size_t> emitted;  // keys emitted after each batch
};

Stream run(const LoaderOptions& options, Cursor start = {}, RejectLog* log = nullptr) {
  Stream stream;
  Loader loader(options, log, start);
  std::vector<DecodedSample> batch;
  while (loader.next_batch(batch)) {
    for (const auto& s : batch) {
      EXPECT_EQ(s.image.width, options.image_size);
      EXPECT_EQ(s.image.pixels.size(), 3u * options.image_size * options.image_size);
      EXPECT_EQ(s.caption, "caption " + s.key);
      stream.keys.push_back(s.key);
    }
    stream.cursors.push_back(loader.cursor());
    stream.emitted.push_back(stream.keys.size());
  }
  return stream;
}

LoaderOptions corpus_options(const std::vector<fs::path>& shards) {
  LoaderOptions options;
  options.sources = shards;
  options.image_size = 8;
  options.batch_size = 7;
  options.shuffle_buffer = 20;
  options.seed = 42;
  options.epochs = 2;
  options.workers = 2;
  return options;
}

TEST(DataLoader, EverySampleOncePerEpochAndRejectsCounted) {
  TempDir dir;
  LoaderOptions options = corpus_options(make_corpus(dir));
  RejectLog log;
  Stream stream = run(options, {}, &log);
  ASSERT_EQ(stream.keys.size(), 200u);
  std::vector<std::string> epoch0(stream.keys.begin(), stream.keys.begin() + 100);
  std::vector<std::string> epoch1(stream.keys.begin() + 100, stream.keys.end());
  EXPECT_EQ(std::set<std::string>(epoch0.begin(), epoch0.end()).size(), 100u);
  EXPECT_EQ(std::set<std::string>(epoch0.begin(), epoch0.end()),
            std::set<std::string>(epoch1.begin(), epoch1.end()));
  EXPECT_NE(epoch0, epoch1);                                     // each epoch reshuffles
  EXPECT_NE(epoch0[0] + epoch0[1] + epoch0[2], "s0_0s0_1s0_2");  // shuffled at all
  EXPECT_EQ(log.used(), 200u);
  EXPECT_EQ(log.count(reason::kImageUnknownFormat), 2u);
  EXPECT_EQ(log.count(reason::kMissingCaption), 2u);
  EXPECT_EQ(log.rejected(), 4u);
  // 100 samples in batches of 7 that never span epochs: 14 full + 1 of 2, per epoch.
  ASSERT_EQ(stream.emitted.size(), 30u);
  EXPECT_EQ(stream.emitted[14], 100u);
  EXPECT_EQ(stream.cursors[14].epoch, 1u);
  EXPECT_EQ(stream.cursors[14].position, 0u);
}

TEST(DataLoader, OrderDependsOnSeedOnlyNotWorkers) {
  TempDir dir;
  LoaderOptions options = corpus_options(make_corpus(dir));
  options.epochs = 1;
  std::vector<std::string> reference = run(options).keys;
  EXPECT_EQ(run(options).keys, reference);
  for (int workers : {1, 5}) {
    LoaderOptions other = options;
    other.workers = workers;
    other.prefetch = workers == 1 ? 3 : 0;  // a tight window must not change the order either
    EXPECT_EQ(run(other).keys, reference) << workers << " workers";
  }
  LoaderOptions reseeded = options;
  reseeded.seed = 43;
  EXPECT_NE(run(reseeded).keys, reference);
  LoaderOptions unshuffled = options;
  unshuffled.shuffle_buffer = 0;
  unshuffled.shuffle_sources = false;
  std::vector<std::string> in_order = run(unshuffled).keys;
  EXPECT_EQ(in_order.front(), "s0_0");
  EXPECT_EQ(in_order.back(), "s3_24");
}

TEST(DataLoader, ResumeFromSavedCursorContinuesExactly) {
  TempDir dir;
  LoaderOptions options = corpus_options(make_corpus(dir));
  Stream full = run(options);
  ASSERT_EQ(full.keys.size(), 200u);
  for (std::size_t cut : {0u, 3u, 13u, 14u, 20u}) {
    // Round-trip through JSON, as a checkpoint would, and resume with other workers.
    Cursor saved = Cursor::from_json(nlohmann::json::parse(full.cursors[cut].to_json().dump()));
    LoaderOptions resumed = options;
    resumed.workers = 3;
    Stream rest = run(resumed, saved);
    std::vector<std::string> expected(full.keys.begin() + full.emitted[cut], full.keys.end());
    EXPECT_EQ(rest.keys, expected) << "resumed after batch " << cut;
  }
  // Batches of 10 fill exactly at the end of an epoch, before the end marker is consumed.
  LoaderOptions tens = options;
  tens.batch_size = 10;
  Stream even = run(tens);
  ASSERT_EQ(even.emitted[9], 100u);
  EXPECT_EQ(even.cursors[9].epoch, 0u);
  std::vector<std::string> second_epoch(even.keys.begin() + 100, even.keys.end());
  EXPECT_EQ(run(tens, even.cursors[9]).keys, second_epoch);
  // The last cursor points past the final epoch: nothing is left.
  EXPECT_TRUE(run(options, full.cursors.back()).keys.empty());

  LoaderOptions changed = options;
  changed.seed = 7;
  EXPECT_THROW(Loader(changed, nullptr, full.cursors[3]), Error);
  EXPECT_THROW(Cursor::from_json({{"epoch", 1}}), Error);
}

TEST(DataLoader, DecodeRejectsAreLoggedInOrder) {
  TempDir dir;
  std::string png = png_of(10, 20, 30, 40, 30);
  std::string bomb =
      "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0"
      "\x08\x02\x00\x00\x00\x00\x00\x00\x00"s;
  ShardWriter writer(dir / "mixed.tar");
  writer.add_sample("good", "png", png, "caption good");
  writer.add_sample("truncated", "png", png.substr(0, png.size() / 2), "t");
  writer.add_sample("empty", "jpg", "", "e");
  writer.add_sample("text", "png", "hello, I am text\n", "x");
  writer.add_sample("bomb", "png", bomb, "b");
  writer.commit();
  LoaderOptions options;
  options.sources = {dir / "mixed.tar"};
  options.image_size = 8;
  options.shuffle_buffer = 0;
  fs::path log_path = dir / "rejects.jsonl";
  RejectLog log(log_path);
  Stream stream = run(options, {}, &log);
  log.finish();
  EXPECT_EQ(stream.keys, std::vector<std::string>{"good"});
  EXPECT_EQ(log.count(reason::kImageCorrupt), 1u);
  EXPECT_EQ(log.count(reason::kImageEmpty), 1u);
  EXPECT_EQ(log.count(reason::kImageUnknownFormat), 1u);
  EXPECT_EQ(log.count(reason::kImageTooLarge), 1u);
  EXPECT_EQ(log.used() + log.rejected(), 5u);
  std::ifstream in(log_path);
  std::string line;
  std::vector<std::string> keys;
  while (std::getline(in, line)) keys.push_back(nlohmann::json::parse(line)["key"]);
  EXPECT_EQ(keys, (std::vector<std::string>{"truncated", "empty", "text", "bomb"}));
}

TEST(DataLoader, StrictStopsAtBrokenShardWithErrorAfterEarlierSamples) {
  TempDir dir;
  std::vector<fs::path> shards = make_corpus(dir);
  write_text(dir / "zz-broken.tar", std::string(2000, 'z'));
  LoaderOptions options = corpus_options(shards);
  options.sources.push_back(dir / "zz-broken.tar");
  options.shuffle_sources = false;
  options.epochs = 1;
  options.strict = true;
  Loader loader(options);
  std::vector<DecodedSample> batch;
  std::size_t seen = 0;
  try {
    while (loader.next_batch(batch)) seen += batch.size();
    FAIL() << "no error for the broken shard";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zz-broken.tar"), std::string::npos) << e.what();
  }
  EXPECT_GT(seen, 0u);
}

// One truncated shard among several: its samples before the break are used, the others are
// read whole, and the break is one counted, named reject per epoch at the same place in the
// log whatever the worker count.
TEST(DataLoader, BrokenShardAmongOthersIsOneRejectAndTheRestIsRead) {
  TempDir dir;
  std::vector<fs::path> shards = make_corpus(dir);
  {
    ShardWriter writer(dir / "whole-4.tar");
    for (int i = 0; i < 25; ++i) {
      std::string key = fmt::format("s4_{}", i);
      writer.add_sample(key, "png", png_of(200, 10 * i, 7, 12, 10), "caption " + key);
    }
    writer.commit();
  }
  const std::string cut = test::cut_tar_at(read_file(dir / "whole-4.tar"), "s4_10");
  ASSERT_FALSE(cut.empty());
  write_text(dir / "shard-4.tar", cut);
  shards.insert(shards.begin() + 2, dir / "shard-4.tar");
  LoaderOptions options = corpus_options(shards);

  auto run_logged = [&](const LoaderOptions& o, const fs::path& log_path) -> Stream {
    RejectLog log(log_path);
    Stream stream = run(o, {}, &log);
    log.finish();
    EXPECT_EQ(log.count(reason::kBrokenShard), 2u) << log.summary();  // once per epoch
    EXPECT_EQ(log.broken_shards().size(), 1u);
    EXPECT_TRUE(log.broken_shards().count((dir / "shard-4.tar").string()));
    EXPECT_NE(log.summary().find("; broken shards: " + (dir / "shard-4.tar").string()),
              std::string::npos)
        << log.summary();
    EXPECT_EQ(log.rejected(), 6u) << log.summary();  // and the 4 sample rejects of shard 2
    EXPECT_EQ(log.to_json()["broken_shards"],
              nlohmann::json::array({(dir / "shard-4.tar").string()}));
    return stream;
  };
  Stream stream = run_logged(options, dir / "rejects-2.jsonl");
  ASSERT_EQ(stream.keys.size(), 2u * 110);
  std::set<std::string> epoch0(stream.keys.begin(), stream.keys.begin() + 110);
  EXPECT_EQ(epoch0.size(), 110u);
  for (int s = 0; s < 5; ++s)
    for (int i = 0; i < 25; ++i)
      EXPECT_EQ(epoch0.count(fmt::format("s{}_{}", s, i)), s < 4 || i < 10 ? 1u : 0u) << s << i;

  std::vector<nlohmann::json> broken;
  std::ifstream in(dir / "rejects-2.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record["reason"] == reason::kBrokenShard) broken.push_back(record);
  }
  ASSERT_EQ(broken.size(), 2u);
  EXPECT_EQ(broken[0]["shard"], (dir / "shard-4.tar").string());
  const std::string detail = broken[0]["detail"];
  EXPECT_NE(detail.find("shard-4.tar: broken tar at entry 20 (stopped at byte offset"),
            std::string::npos)
      << detail;

  // Deterministic: the same stream and byte-identical reject log with one worker and another
  // window, so the reject sits at the same place among the others.
  LoaderOptions one = options;
  one.workers = 1;
  one.prefetch = 3;
  EXPECT_EQ(run_logged(one, dir / "rejects-1.jsonl").keys, stream.keys);
  EXPECT_EQ(read_file(dir / "rejects-1.jsonl"), read_file(dir / "rejects-2.jsonl"));
}

TEST(DataLoader, UnlimitedEpochsOverNothingUsableIsAnError) {
  TempDir dir;
  ShardWriter writer(dir / "bad.tar");
  writer.add("only", "txt", "no image");
  writer.commit();
  LoaderOptions options;
  options.sources = {dir / "bad.tar"};
  options.epochs = 0;
  Loader loader(options);
  std::vector<DecodedSample> batch;
  EXPECT_THROW(loader.next_batch(batch), Error);
}

}  // namespace
}  // namespace recap::data
