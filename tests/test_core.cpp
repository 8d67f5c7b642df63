// sha256, atomic files, JSONL logs, progress lines.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "test_util.h"

namespace recap {
namespace {

using ::testing::HasSubstr;

TEST(Sha256, KnownVectors) {
  // FIPS 180-4 examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, StreamingEqualsOneShotAtEveryChunkSize) {
  std::string data;
  for (int i = 0; i < 300; ++i) data += static_cast<char>(i * 7 + 3);
  std::string expected = sha256_hex(data);
  for (size_t chunk : {1, 3, 63, 64, 65, 127, 200}) {
    Sha256 h;
    for (size_t i = 0; i < data.size(); i += chunk)
      h.update(std::string_view(data).substr(i, chunk));
    EXPECT_EQ(h.hex(), expected) << "chunk " << chunk;
  }
}

TEST(Sha256, TreeHashDependsOnNamesAndContentNotLocation) {
  test::TempDir a("tree"), b("tree");
  for (const auto* d : {&a, &b}) {
    std::filesystem::create_directories(d->path() / "sub");
    write_file_atomic(d->path() / "sub" / "x.txt", "hello");
    write_file_atomic(d->path() / "y.txt", "world");
  }
  EXPECT_EQ(sha256_tree(a.path()), sha256_tree(b.path()));
  write_file_atomic(b.path() / "y.txt", "World");
  EXPECT_NE(sha256_tree(a.path()), sha256_tree(b.path()));
}

TEST(AtomicFile, InvisibleUntilCommitAndCleanedOnAbort) {
  test::TempDir dir("atomic");
  auto path = dir / "out.bin";
  {
    AtomicFile f(path);
    f.write("partial");
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_TRUE(std::filesystem::exists(f.temp_path()));
  }  // destroyed without commit: as if the process died mid-write
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  write_file_atomic(path, "complete");
  EXPECT_EQ(read_file(path), "complete");
  write_file_atomic(path, "replaced");
  EXPECT_EQ(read_file(path), "replaced");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(AtomicDir, ReplacesWholeDirectory) {
  test::TempDir dir("atomicdir");
  auto path = dir / "ckpt";
  {
    AtomicDir d(path);
    write_file_atomic(d.temp_path() / "a", "1");
    d.commit();
  }
  {
    AtomicDir d(path);
    write_file_atomic(d.temp_path() / "b", "2");
    EXPECT_TRUE(std::filesystem::exists(path / "a"));  // old one still whole
    d.commit();
  }
  EXPECT_FALSE(std::filesystem::exists(path / "a"));
  EXPECT_EQ(read_file(path / "b"), "2");
  { AtomicDir abandoned(dir / "never"); }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(ReadFile, MissingFileNamed) {
  try {
    read_file("/nonexistent/recap/file.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/recap/file.txt: cannot open"));
  }
}

TEST(Jsonl, AppendsAndTruncatesAfterResumePoint) {
  test::TempDir dir("jsonl");
  auto path = dir / "m.jsonl";
  {
    JsonlWriter w(path);
    for (int s = 1; s <= 5; ++s) w.write({{"step", s}, {"loss", 1.0 / s}});
  }
  {
    // A run killed after step 5 resumes from its step-3 checkpoint.
    JsonlWriter w(path);
    w.truncate_after("step", 3);
    w.write({{"step", 4}, {"loss", 0.5}});
  }
  auto lines = read_jsonl(path);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[3]["step"], 4);
  EXPECT_EQ(lines[3]["loss"], 0.5);
}

TEST(Jsonl, CutOffLastLineDroppedOnTruncateAndBadLineNamed) {
  test::TempDir dir("jsonl");
  auto path = dir / "m.jsonl";
  write_file_atomic(path, "{\"step\":1}\n{\"step\":2");  // killed mid-line
  {
    JsonlWriter w(path);
    w.truncate_after("step", 100);
  }
  EXPECT_EQ(read_jsonl(path).size(), 1u);
  write_file_atomic(path, "{\"step\":1}\nnot json\n");
  try {
    read_jsonl(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("m.jsonl:2: invalid JSON line"));
  }
}

TEST(Progress, FormatShowsCountRateAndEta) {
  auto line = Progress::format("train", 50, 200, 10.0, "step", "loss 0.5");
  EXPECT_THAT(line, HasSubstr("50/200"));
  EXPECT_THAT(line, HasSubstr(" 25%"));
  EXPECT_THAT(line, HasSubstr("5.0 step/s"));
  EXPECT_THAT(line, HasSubstr("eta 30.0s"));
  EXPECT_THAT(line, HasSubstr("| loss 0.5"));
  EXPECT_THAT(Progress::format("x", 1, 10, 4.0, "img", ""), HasSubstr("4.00 s/img"));
  EXPECT_THAT(Progress::format("x", 7, 0, 1.0, "img", ""), HasSubstr("x 7 7.0 img/s"));
  EXPECT_EQ(format_duration(3725), "1h02m");
  EXPECT_EQ(format_duration(185), "3m05s");
}

TEST(Progress, PlainLinesWhenNotATerminal) {
  test::TempDir dir("progress");
  auto path = dir / "log.txt";
  std::FILE* f = std::fopen(path.c_str(), "w");
  {
    Progress p("work", 3);
    p.redirect(f, /*tty=*/false, /*interval_seconds=*/0.0);
    p.add();
    p.add(2);
  }  // destructor prints the final line
  std::fclose(f);
  std::string text = read_file(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_THAT(text, HasSubstr("work [########################] 3/3 100%"));
}

}  // namespace
}  // namespace recap
