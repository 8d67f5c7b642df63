// RECAP's first steps on a user's own data through the real binary (issue #20): a folder of
// photographs with sidecar captions and a small human caption set, as README "Your own data"
// walks through: tokenizer train --images, then captioner train --images --captions.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/atomic_file.h"
#include "data/image.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using test::run_recap;

constexpr const char* kOwnColours[] = {"red", "green", "blue", "yellow"};
constexpr const char* kOwnThings[] = {"boat", "house", "tree"};

// 12 small photographs (40x30, not the model's square size) in a sidecar folder with a
// sub-folder, their alt-text beside them, and a human set of 6 (4 long, 2 short).
void make_own_data(const fs::path& dir) {
  for (int i = 0; i < 12; ++i) {
    const fs::path folder = dir / "photos" / (i < 8 ? "" : "more");
    fs::create_directories(folder);
    data::Image image{40, 30, 3, {}};
    for (int p = 0; p < 40 * 30; ++p)
      image.pixels.insert(image.pixels.end(), {static_cast<uint8_t>(20 * i),
                                               static_cast<uint8_t>(p % 40 * 6),
                                               static_cast<uint8_t>(255 - 20 * i)});
    const std::string stem = "img" + std::to_string(i);
    write_file_atomic(folder / (stem + ".png"), data::encode_png(image));
    write_file_atomic(folder / (stem + ".txt"),
                      std::string("IMG_") + std::to_string(1000 + i) + " " + kOwnThings[i % 3] +
                          "\n");
  }
  std::string human;
  for (int i = 0; i < 6; ++i) {
    const std::string file = (i < 4 ? "img" : "more/img") + std::to_string(i < 4 ? i : i + 4);
    const bool short_style = i % 3 == 2;
    human += "{\"file\": \"" + file + ".png\", \"caption\": \"" +
             (short_style ? std::string("a ") + kOwnThings[i % 3]
                          : std::string("a ") + kOwnColours[i % 4] + " " + kOwnThings[i % 3] +
                                " under a pale sky, seen from the left") +
             "\"" + (short_style ? ", \"style\": \"short\"" : "") + "}\n";
  }
  write_file_atomic(dir / "human.jsonl", human);
}

TEST(OwnDataCli, TokenizerAndCaptionerTrainOnASidecarFolder) {
  test::TempDir dir("own-data");
  make_own_data(dir.path());
  const std::string d = dir.path().string();
  auto tok = run_recap("--threads 2 tokenizer train --images " + d + "/photos --captions " + d +
                       "/human.jsonl --preset smoke --set tokenizer.vocab_size=48 --out " + d +
                       "/tokenizer.model");
  ASSERT_EQ(tok.status, 0) << tok.output;
  EXPECT_NE(tok.output.find("trained on 18 captions (0 skipped)"), std::string::npos)
      << tok.output;

  auto cap = run_recap("--threads 2 captioner train --images " + d + "/photos --captions " + d +
                       "/human.jsonl --tokenizer " + d + "/tokenizer.model --preset smoke --out " +
                       d + "/captioner");
  ASSERT_EQ(cap.status, 0) << cap.output;
  EXPECT_NE(cap.output.find("pre-trained 6 steps"), std::string::npos) << cap.output;
  EXPECT_NE(cap.output.find("fine-tuned 4 steps"), std::string::npos) << cap.output;
  EXPECT_NE(cap.output.find("6 captions of 6 samples"), std::string::npos) << cap.output;
  for (const char* file : {"captioner_pretrain.safetensors", "captioner.safetensors",
                           "human/human-00000.tar", "finetune/metrics.jsonl"})
    EXPECT_TRUE(fs::exists(dir.path() / "captioner" / file)) << file;
}

TEST(OwnDataCli, BadHumanSetsAreRefusedByName) {
  test::TempDir dir("own-data-bad");
  make_own_data(dir.path());
  const std::string d = dir.path().string();
  write_file_atomic(dir.path() / "tokenizer.model", "unused: refused before it is read");
  write_file_atomic(dir.path() / "bad.jsonl",
                    "{\"file\": \"img0.png\", \"caption\": \"\"}\n"
                    "{\"file\": \"img1.png\", \"caption\": \"x\", \"style\": \"tiny\"}\n");
  auto bad = run_recap("captioner train --images " + d + "/photos --captions " + d +
                       "/bad.jsonl --tokenizer " + d + "/tokenizer.model --preset smoke --out " +
                       d + "/c1");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("empty_caption 1"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("bad_style 1"), std::string::npos) << bad.output;

  write_file_atomic(dir.path() / "unknown.jsonl",
                    "{\"file\": \"img0.png\", \"caption\": \"fine\"}\n"
                    "{\"key\": \"nope.png\", \"caption\": \"no such image\"}\n");
  auto unknown = run_recap("captioner train --images " + d + "/photos --captions " + d +
                           "/unknown.jsonl --tokenizer " + d +
                           "/tokenizer.model --preset smoke --out " + d + "/c2");
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.output.find("unknown_key 1"), std::string::npos) << unknown.output;
  EXPECT_NE(unknown.output.find("nope.png"), std::string::npos) << unknown.output;

  // --images without --captions, and both data options at once, are usage errors.
  EXPECT_NE(run_recap("captioner train --images " + d + "/photos --tokenizer t --out o").status, 0);
  EXPECT_NE(run_recap("captioner train --corpus c --images " + d + "/photos --captions " + d +
                      "/human.jsonl --tokenizer t --out o")
                .status,
            0);
}

TEST(OwnDataCli, HelpShowsTheOwnDataOptions) {
  for (const char* command : {"tokenizer train --help", "captioner train --help"}) {
    auto help = run_recap(command);
    EXPECT_EQ(help.status, 0) << help.output;
    for (const char* option : {"--images", "--captions", "--caption-field", "--preset"})
      EXPECT_NE(help.output.find(option), std::string::npos) << command << ": " << option;
    EXPECT_NE(help.output.find("=quick"), std::string::npos) << help.output;  // defaults shown
  }
}

}  // namespace
}  // namespace recap
