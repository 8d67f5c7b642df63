// Inputs for the fuzz harnesses (fuzz/harnesses.h), replayed through the same functions the
// libFuzzer targets call: what `make fuzz` found, once fixed, and hand-made edge cases of
// every target, so the harnesses themselves stay compiled and working in the normal suite. A
// harness throwing anything (recap::Error is caught inside it) fails the test.
#include <string>

#include <gtest/gtest.h>

#include "../fuzz/harnesses.h"

namespace recap::fuzz {
namespace {

using namespace std::string_literals;

TEST(FuzzHarness, EveryTargetTakesEmptyAndMalformedInput) {
  for (auto* run : {safetensors, shard, image, image_folder, manifest, sidecar_folder, jsonl,
                    prompt, config, caption}) {
    EXPECT_NO_THROW(run(""));
    EXPECT_NO_THROW(run("\0\xff\xfe{[\n"s));
  }
}

TEST(FuzzHarness, HandMadeEdgeCases) {
  // A header length of 2^64 - 1, and one that points past the end.
  EXPECT_NO_THROW(safetensors("\xff\xff\xff\xff\xff\xff\xff\xff{}"s));
  EXPECT_NO_THROW(safetensors("\x02\x00\x00\x00\x00\x00\x00\x00{}"s));
  // A gzip stream that ends inside its first block.
  EXPECT_NO_THROW(shard("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"s));
  // A PNG declaring 2^32 - 1 square pixels; a JPEG whose SOF is cut short.
  EXPECT_NO_THROW(image("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\xff\xff\xff\xff\xff\xff\xff\xff"s));
  EXPECT_NO_THROW(image("\xff\xd8\xff\xc0\x00\x11\x08\x00"s));
  EXPECT_NO_THROW(image_folder(R"({"file": "link.png", "caption": "leaves the folder"})"));
  // A CSV header only, a quote never closed, a JSONL line naming a key with a NUL.
  EXPECT_NO_THROW(manifest("file,caption"));
  EXPECT_NO_THROW(manifest("file,caption\na.png,\"open"));
  EXPECT_NO_THROW(manifest(R"({"key": "a\u0000b", "caption": "x"})"));
  // Names that try to leave the folder or collide with a folder; a sidecar of a symlink.
  EXPECT_NO_THROW(sidecar_folder("../../x.txt\nx"s + '\0' + "sub\nfile"s + '\0' +
                                 "sub/a.png\nx"s + '\0' + "out.txt\nescapes"s));
  EXPECT_NO_THROW(jsonl(R"({"key": "k", "caption": 3, "kind": "long"})"));
  EXPECT_NO_THROW(prompt(R"({"suite": "x", "text": "a", "target": {"groups": [{"shape": 1}]}})"));
  EXPECT_NO_THROW(config("[data]\nmax_shard_bytes = -1\n\0t2i.lr=\"fast\""s));
  EXPECT_NO_THROW(caption("\xed\xa0\x80 a surrogate"s));
}

}  // namespace
}  // namespace recap::fuzz
