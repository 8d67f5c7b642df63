// Limits that protect the machine from hostile or broken input (issue #21): a decompression
// bomb in a .tar.gz, a shard of very many tiny entries, captions and caption-list lines past
// their limits. Every fixture is made here, small on disk; the checks are on memory (peak RSS,
// heap in use) and on what the reader reports, never on timing.
#include <archive.h>
#include <archive_entry.h>
#include <malloc.h>
#include <sys/resource.h>

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/image.h"
#include "data/image_folder.h"
#include "data/rejects.h"
#include "data/shard_reader.h"
#include "data/source.h"
#include "test_util.h"

namespace recap::data {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr uint64_t kMiB = 1 << 20;

// One tar entry: `data`, then `repeat` bytes of `fill` streamed a MiB at a time, so a fixture
// of any size costs little memory to write.
struct LimitEntry {
  std::string path;
  std::string data;
  uint64_t repeat = 0;
  char fill = '\0';
};

void write_tar_gz(const fs::path& path, const std::vector<LimitEntry>& entries) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_gzip(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const LimitEntry& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_perm(entry, 0644);
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size() + e.repeat));
    ASSERT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << e.path;
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    const std::string filled(e.repeat ? kMiB : 0, e.fill);
    for (uint64_t left = e.repeat; left > 0; left -= std::min<uint64_t>(left, kMiB))
      archive_write_data(a, filled.data(), std::min<uint64_t>(left, kMiB));
    archive_entry_free(entry);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

// Peak resident memory of this process so far. ctest runs each test in a process of its own,
// so the peak before a test is the binary's start-up, and growth past it is the test's.
uint64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

std::string tiny_png() { return encode_png({2, 2, 3, std::vector<uint8_t>(12, 90)}); }

std::vector<SourceItem> read_items(SampleSource& source) {
  std::vector<SourceItem> items;
  while (auto item = source.next()) items.push_back(std::move(*item));
  return items;
}

const Reject& reject_at(const std::vector<SourceItem>& items, std::size_t i) {
  return std::get<Reject>(items.at(i));
}

TEST(Limits, DecompressionBombEntryIsRejectedBySizeWithoutBeingHeld) {
  // 64 MiB of zeros is about 65 KB of gzip: the archive is small, the entry is not.
  TempDir dir("limits");
  const fs::path shard = dir / "bomb.tar.gz";
  write_tar_gz(shard, {{"k0.png", tiny_png()},
                       {"k0.txt", "before"},
                       {"k1.png", "", 64 * kMiB},
                       {"k1.txt", "the bomb's caption"},
                       {"k2.png", tiny_png()},
                       {"k2.txt", "after"}});
  ASSERT_LT(fs::file_size(shard), 2 * kMiB);

  ReadLimits limits;
  limits.max_entry_bytes = kMiB;
  const uint64_t peak_before = peak_rss_bytes();
  ShardReader reader(shard, limits);
  const auto items = read_items(reader);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(std::get<Sample>(items[0]).caption, "before");
  EXPECT_EQ(reject_at(items, 1).reason, reason::kEntryTooLarge);
  EXPECT_EQ(reject_at(items, 1).key, "k1");
  EXPECT_EQ(reject_at(items, 1).detail, "k1.png: 67108864 bytes > limit 1048576");
  EXPECT_EQ(std::get<Sample>(items[2]).caption, "after");
  // Holding the entry would take 64 MiB; skipping it streams through a 64 KiB buffer.
  EXPECT_LT(peak_rss_bytes() - peak_before, 24 * kMiB);
}

TEST(Limits, ShardPastItsByteLimitIsOneBrokenShardRejectNamingTheEntry) {
  TempDir dir("limits");
  const fs::path shard = dir / "bomb.tar.gz";
  write_tar_gz(shard, {{"k0.png", tiny_png()},
                       {"k0.txt", "before"},
                       {"k1.png", tiny_png()},
                       {"k1.txt", "also before"},
                       {"k2.bin", "", 32 * kMiB},
                       {"k3.png", tiny_png()},
                       {"k3.txt", "never reached"}});
  ReadLimits limits;
  limits.max_shard_bytes = 16 * kMiB;
  auto source = open_source(shard, limits, OnBroken::kReject);
  const auto items = read_items(*source);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(std::get<Sample>(items[1]).caption, "also before");
  const Reject& broken = reject_at(items, 2);
  EXPECT_EQ(broken.reason, reason::kBrokenShard);
  EXPECT_EQ(broken.shard, shard.string());
  EXPECT_NE(broken.detail.find(shard.string() + ": entry 4 (k2.bin, 33554432 bytes at byte offset"),
            std::string::npos)
      << broken.detail;
  EXPECT_NE(broken.detail.find("past its limit of 16777216 bytes of tar data "
                               "(data.max_shard_bytes)"),
            std::string::npos)
      << broken.detail;

  // Strict reading stops with the same message as its error.
  ShardReader strict(shard, limits);
  EXPECT_NO_THROW(strict.next());
  EXPECT_NO_THROW(strict.next());
  EXPECT_THROW(strict.next(), Error);
}

TEST(Limits, ManyTinyEntriesCostAFewBytesPerKeyWhateverTheKeyLength) {
  // 12,000 samples of one caption each (no image: each is a missing_image reject) under
  // 88-character keys. The reader keeps one sample at a time and 8 bytes of hash per key, so
  // the heap it holds grows by well under 64 bytes a key over the shard; a set of the keys
  // themselves would hold about 190.
  constexpr int kKeys = 12000;
  TempDir dir("limits");
  const fs::path shard = dir / "tiny.tar.gz";
  {
    std::vector<LimitEntry> entries;
    const std::string stem = "d/" + std::string(80, 'k');
    for (int i = 0; i < kKeys; ++i)
      entries.push_back({stem + std::to_string(100000 + i) + ".txt", "c"});
    write_tar_gz(shard, entries);
  }
  ShardReader reader(shard);
  auto next_reject = [&] {
    auto item = reader.next();
    ASSERT_TRUE(item && std::holds_alternative<Reject>(*item));
    ASSERT_EQ(std::get<Reject>(*item).reason, reason::kMissingImage);
  };
  next_reject();  // libarchive's buffers and the decompressor exist from here on
  const std::size_t heap_before = mallinfo2().uordblks;
  for (int i = 1; i < kKeys; ++i) next_reject();
  EXPECT_FALSE(reader.next());
  const std::size_t held = mallinfo2().uordblks - heap_before;  // the reader is still alive
  EXPECT_LT(held, std::size_t{kKeys} * 64) << held << " bytes held for " << kKeys << " keys";
}

TEST(Limits, CaptionAtTheLimitIsReadAndOneByteMoreIsRejectedUnread) {
  TempDir dir("limits");
  const fs::path shard = dir / "captions.tar.gz";
  ReadLimits limits;
  limits.caption.max_bytes = 1000;
  write_tar_gz(shard, {{"k0.png", tiny_png()},
                       {"k0.txt", "", 1000, 'a'},
                       {"k1.png", tiny_png()},
                       {"k1.txt", "", 1001, 'a'},
                       {"k2.png", tiny_png()},
                       {"k2.txt", "", 40 * kMiB, 'a'}});
  const uint64_t peak_before = peak_rss_bytes();
  ShardReader reader(shard, limits);
  const auto items = read_items(reader);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(std::get<Sample>(items[0]).caption, std::string(1000, 'a'));
  EXPECT_EQ(reject_at(items, 1).reason, reason::kCaptionTooLong);
  EXPECT_EQ(reject_at(items, 1).detail, "k1.txt: 1001 bytes > limit 1000");
  EXPECT_EQ(reject_at(items, 2).reason, reason::kCaptionTooLong);
  // A 40 MiB caption under the 64 MiB entry limit is still not read into memory.
  EXPECT_LT(peak_rss_bytes() - peak_before, 20 * kMiB);
}

TEST(Limits, CaptionListLineLongerThanTheEntryLimitIsOneRejectAndNotHeld) {
  TempDir dir("limits");
  const fs::path folder = dir / "folder";
  fs::create_directories(folder);
  {
    std::ofstream(folder / "a.png", std::ios::binary) << tiny_png();
    std::ofstream list(folder / "captions.jsonl", std::ios::binary);
    list << R"({"file": "a.png", "caption": ")";
    const std::string chunk(kMiB, 'x');  // written in pieces: the peak must stay low
    for (int i = 0; i < 32; ++i) list << chunk;
    list << "\"}\n";
    list << R"({"file": "a.png", "caption": "fine"})" << "\n";
  }
  ReadLimits limits;
  limits.max_entry_bytes = kMiB;
  const uint64_t peak_before = peak_rss_bytes();
  ImageFolderSource source(folder, limits);
  const auto items = read_items(source);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(reject_at(items, 0).reason, reason::kBadJsonLine);
  EXPECT_EQ(reject_at(items, 0).key, "captions.jsonl:1");
  EXPECT_EQ(reject_at(items, 0).detail, "line longer than 1048576 bytes (data.max_entry_bytes)");
  EXPECT_EQ(std::get<Sample>(items[1]).caption, "fine");
  EXPECT_LT(peak_rss_bytes() - peak_before, 24 * kMiB);
}

}  // namespace
}  // namespace recap::data
