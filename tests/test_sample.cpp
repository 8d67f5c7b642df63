// `recap sample` on a smoke corpus and a smoke-sized model (random weights: every property
// checked here holds whatever the weights): seeded PNGs, the images.jsonl index, the grid,
// skipping a finished folder, guidance 0 as the empty prompt, and odd or bad prompts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "data/image.h"
#include "stages/corpus.h"
#include "stages/sample.h"
#include "stages/t2i_model.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"
#include "smoke_corpus.h"
#include "test_util.h"

namespace recap::stages {
namespace {

using ::testing::HasSubstr;

class Sample : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("sample");
    test::make_smoke_corpus(corpus(), tokenizer());
    const auto tok = text::Tokenizer::load(tokenizer());
    auto options = t2i_train_options(Config::load("smoke"), tok.vocab_size(), 32);
    options.sample.steps = 3;
    torch::manual_seed(11);
    save_t2i(model(), T2iModel(options.model), options.sample, tok, {});
    // The first three counting prompts, as a suite JSONL file.
    const auto lines = read_jsonl(corpus::prompts_path(corpus(), "counting"));
    std::string three;
    for (int i = 0; i < 3; ++i) three += lines[static_cast<size_t>(i)].dump() + "\n";
    write_file_atomic(prompts(), three);
  }
  static void TearDownTestSuite() { delete dir_; }

  static fs::path corpus() { return *dir_ / "corpus"; }
  static fs::path tokenizer() { return *dir_ / "tok.model"; }
  static fs::path model() { return *dir_ / "t2i.safetensors"; }
  static fs::path prompts() { return *dir_ / "counting3.jsonl"; }
  // `recap sample` with the model and tokenizer, one thread (bit-exact), and `args`.
  static test::CommandResult sample(const std::string& args) {
    return test::run_recap("sample --threads 1 --model " + model().string() + " --tokenizer " +
                           tokenizer().string() + " " + args);
  }

  static test::TempDir* dir_;
};

test::TempDir* Sample::dir_ = nullptr;

TEST_F(Sample, SeededImagesIndexAndGrid) {
  test::TempDir out("sample-out");
  const std::string args =
      "--prompts " + prompts().string() + " --images-per-prompt 2 --batch-size 4 --grid 4";
  auto a = sample(args + " --seed 5 --out " + (out / "a").string());
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_THAT(a.output, HasSubstr("sample: 6 images"));

  // Six images: two per prompt, each with its own seed, and the settings that made them.
  const auto records = read_jsonl(out / "a" / "images.jsonl");
  ASSERT_EQ(records.size(), 6u);
  const auto suite = read_jsonl(prompts());
  const std::string sha = sha256_file(model());
  for (size_t k = 0; k < records.size(); ++k) {
    const auto& r = records[k];
    EXPECT_EQ(r.at("file"), fmt::format("{:06d}.png", k));
    EXPECT_EQ(r.at("prompt"), suite[k / 2].at("text"));
    EXPECT_EQ(r.at("suite"), "counting");
    EXPECT_EQ(r.at("target"), suite[k / 2].at("target"));
    EXPECT_EQ(r.at("seed").get<uint64_t>(), derive_seed(5, k));
    EXPECT_EQ(r.at("sampler"), "ddim");
    EXPECT_EQ(r.at("steps"), 3);
    EXPECT_EQ(r.at("guidance"), 3.0);
    EXPECT_EQ(r.at("model"), sha);
    auto png = data::decode_image(read_file(out / "a" / r.at("file").get<std::string>()));
    ASSERT_TRUE(png.image);
    EXPECT_EQ(png.image->width, 32);
  }
  // Six 32 px cells, four to a row, upscaled x4: two rows.
  auto grid = data::decode_image(read_file(out / "a" / "grid.png"));
  ASSERT_TRUE(grid.image);
  EXPECT_EQ(grid.image->width, 4 * 32 * 4);
  EXPECT_EQ(grid.image->height, 2 * 32 * 4);
  // Two images of one prompt differ: they have their own seeds.
  EXPECT_NE(read_file(out / "a" / "000000.png"), read_file(out / "a" / "000001.png"));

  // The same seed and batch size again (no grid this time): the same bytes. The batch size
  // stays: another one changes the GEMM shapes, which may round a pixel the other way.
  // Another seed: other images.
  auto b = sample("--prompts " + prompts().string() +
                  " --images-per-prompt 2 --batch-size 4 "
                  "--seed 5 --out " +
                  (out / "b").string());
  ASSERT_EQ(b.status, 0) << b.output;
  for (int k = 0; k < 6; ++k) {
    const auto name = fmt::format("{:06d}.png", k);
    EXPECT_EQ(read_file(out / "a" / name), read_file(out / "b" / name)) << name;
  }
  auto c = sample(args + " --seed 6 --out " + (out / "c").string());
  ASSERT_EQ(c.status, 0) << c.output;
  EXPECT_NE(read_file(out / "a" / "000000.png"), read_file(out / "c" / "000000.png"));

  // A finished folder with the same settings is skipped; other settings redo it.
  const auto index = read_file(out / "a" / "images.jsonl");
  auto again = sample(args + " --seed 5 --out " + (out / "a").string());
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("already holds these 6 images"));
  auto fewer = sample("--prompts " + prompts().string() + " --steps 2 --seed 5 --out " +
                      (out / "a").string());
  ASSERT_EQ(fewer.status, 0) << fewer.output;
  EXPECT_EQ(read_jsonl(out / "a" / "images.jsonl").size(), 3u);
  EXPECT_FALSE(fs::exists(out / "a" / "000003.png"));  // stale images are removed
  EXPECT_FALSE(fs::exists(out / "a" / "grid.png"));
}

TEST_F(Sample, GuidanceZeroIsTheEmptyPrompt) {
  test::TempDir out("sample-cfg");
  auto uncond = sample("--cfg 0 --prompt 'a red star' --seed 3 --out " + (out / "u").string());
  ASSERT_EQ(uncond.status, 0) << uncond.output;
  auto empty = sample("--cfg 1 --prompt '' --seed 3 --out " + (out / "e").string());
  ASSERT_EQ(empty.status, 0) << empty.output;
  EXPECT_EQ(read_file(out / "u" / "000000.png"), read_file(out / "e" / "000000.png"));
  auto guided = sample("--cfg 1 --prompt 'a red star' --seed 3 --out " + (out / "g").string());
  ASSERT_EQ(guided.status, 0) << guided.output;
  EXPECT_NE(read_file(out / "u" / "000000.png"), read_file(out / "g" / "000000.png"));
  // The prompt is still recorded as given.
  EXPECT_EQ(read_jsonl(out / "u" / "images.jsonl")[0].at("prompt"), "a red star");
  EXPECT_EQ(read_jsonl(out / "u" / "images.jsonl")[0].at("suite"), nullptr);
}

TEST_F(Sample, OddAndBadPrompts) {
  test::TempDir out("sample-odd");
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "a red circle ";
  auto truncated = sample("--steps 1 --prompt '" + long_prompt + "' --out " + (out / "t").string());
  EXPECT_EQ(truncated.status, 0) << truncated.output;
  EXPECT_THAT(truncated.output, HasSubstr("truncated"));
  EXPECT_TRUE(fs::exists(out / "t" / "000000.png"));

  write_file_atomic(out / "bad.txt", "a red star\n\xff\xfe two circles\n");
  auto bad = sample("--prompts " + (out / "bad.txt").string() + " --out " + (out / "b").string());
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.output, HasSubstr("bad.txt:2: not valid UTF-8"));

  auto sampler = sample("--sampler heun --prompt 'a star' --out " + (out / "s").string());
  EXPECT_EQ(sampler.status, 2);
  EXPECT_THAT(sampler.output, HasSubstr("heun"));
  auto none = sample("--out " + (out / "n").string());
  EXPECT_EQ(none.status, 2);
  EXPECT_THAT(none.output, HasSubstr("--prompt"));
  EXPECT_FALSE(fs::exists(out / "b" / "images.jsonl"));
}

TEST_F(Sample, ReadPromptsPlainAndJsonl) {
  test::TempDir dir("sample-prompts");
  write_file_atomic(dir / "plain.txt", "  two red circles \n\n\r\na blue star\r\n");
  auto plain = read_prompts(dir / "plain.txt");
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_EQ(plain[0].text, "two red circles");
  EXPECT_EQ(plain[1].text, "a blue star");
  EXPECT_FALSE(plain[0].suite || plain[0].target);

  auto suite = read_prompts(prompts());
  ASSERT_EQ(suite.size(), 3u);
  const auto first = world::prompt_from_json(read_jsonl(prompts())[0]);
  EXPECT_EQ(suite[0].text, first.text);
  EXPECT_EQ(suite[0].suite, "counting");
  EXPECT_EQ(suite[0].target, first.target);

  write_file_atomic(dir / "bad.jsonl", read_file(prompts()) + "\n{\"suite\": \"counting\"}\n");
  EXPECT_THAT([&] { read_prompts(dir / "bad.jsonl"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("bad.jsonl:5: prompt json: 'text'")));
  write_file_atomic(dir / "broken.jsonl", "{\"suite\": \n");
  EXPECT_THAT([&] { read_prompts(dir / "broken.jsonl"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("broken.jsonl:1: bad JSON")));
}

// GenEval's layout (README "Image generation" of github.com/djghosh13/geneval): written by
// --layout geneval, read back through images.jsonl and, without it, as a foreign GenEval folder:
// the same prompts, metadata and image bytes either way.
TEST_F(Sample, GenevalLayoutRoundTrip) {
  test::TempDir dir("sample-geneval");
  const auto lines = read_jsonl(corpus::geneval_prompts_path(corpus()));
  ASSERT_GT(lines.size(), 20u);
  // One prompt of each of a few tasks: single object, then the last (colour attribution).
  const std::vector<nlohmann::json> chosen = {lines.front(), lines[lines.size() / 2], lines.back()};
  std::string file;
  for (const auto& l : chosen) file += l.dump() + "\n";
  write_file_atomic(dir / "evaluation_metadata.jsonl", file);
  const fs::path out = dir / "gen";
  auto run = sample("--steps 1 --images-per-prompt 2 --layout geneval --prompts " +
                    (dir / "evaluation_metadata.jsonl").string() + " --out " + out.string());
  ASSERT_EQ(run.status, 0) << run.output;
  for (size_t i = 0; i < chosen.size(); ++i) {
    const fs::path folder = out / fmt::format("{:05d}", i);
    EXPECT_EQ(nlohmann::json::parse(read_file(folder / "metadata.jsonl")), chosen[i]);
    EXPECT_TRUE(fs::exists(folder / "samples" / "0000.png"));
    EXPECT_TRUE(fs::exists(folder / "samples" / "0001.png"));
    EXPECT_FALSE(fs::exists(folder / "samples" / "0002.png"));
  }
  const auto ours = read_sample_folder(out);
  fs::rename(out / "images.jsonl", dir / "index.jsonl");
  const auto theirs = read_sample_folder(out);  // GenEval's layout alone
  ASSERT_EQ(ours.size(), 6u);
  ASSERT_EQ(theirs.size(), 6u);
  for (size_t k = 0; k < ours.size(); ++k) {
    const auto& metadata = world::geneval_from_json(chosen[k / 2]);
    for (const auto* image : {&ours[k], &theirs[k]}) {
      EXPECT_EQ(image->file, out / fmt::format("{:05d}/samples/{:04d}.png", k / 2, k % 2));
      EXPECT_EQ(image->request.text, metadata.prompt);
      EXPECT_EQ(image->request.suite, kGenevalSuite);
      EXPECT_EQ(image->request.geneval, metadata);
      EXPECT_EQ(image->request.target, world::geneval_target(metadata));
    }
    EXPECT_TRUE(ours[k].record.at("seed").is_number_unsigned());
    EXPECT_TRUE(theirs[k].record.at("seed").is_null());
  }
  // A flat run into the same folder leaves none of the GenEval folders behind, and back.
  fs::rename(dir / "index.jsonl", out / "images.jsonl");
  ASSERT_EQ(sample("--steps 1 --prompts " + (dir / "evaluation_metadata.jsonl").string() +
                   " --out " + out.string()).status, 0);
  EXPECT_TRUE(fs::exists(out / "000002.png"));
  EXPECT_FALSE(fs::exists(out / "00000"));

  // World suite prompts carry no GenEval metadata: the layout refuses them.
  auto suite = sample("--steps 1 --layout geneval --prompts " + prompts().string() + " --out " +
                      (dir / "suite").string());
  EXPECT_EQ(suite.status, 2);
  EXPECT_THAT(suite.output, HasSubstr("has no GenEval metadata"));
}

TEST_F(Sample, BadGenevalFoldersAreRefusedNamingTheFile) {
  test::TempDir dir("sample-geneval-bad");
  const auto line = read_jsonl(corpus::geneval_prompts_path(corpus())).front().dump();
  write_file_atomic(dir / "a" / "00000" / "metadata.jsonl", line);
  EXPECT_THAT([&] { read_sample_folder(dir / "a"); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr((dir / "a" / "00000" / "samples").string() + ": missing")));
  write_file_atomic(dir / "b" / "00000" / "metadata.jsonl", "{\"tag\": ");
  fs::create_directories(dir / "b" / "00000" / "samples");
  EXPECT_THAT([&] { read_sample_folder(dir / "b"); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr((dir / "b" / "00000" / "metadata.jsonl").string() + ": bad JSON")));
  write_file_atomic(dir / "c" / "00000" / "metadata.jsonl", R"({"tag": "colors", "prompt": "x"})");
  fs::create_directories(dir / "c" / "00000" / "samples");
  EXPECT_THAT([&] { read_sample_folder(dir / "c"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("metadata.jsonl: GenEval metadata: "
                                                        "\"include\" is missing")));
  fs::create_directories(dir / "d" / "00000");
  EXPECT_THAT([&] { read_sample_folder(dir / "d"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("00000/metadata.jsonl: missing")));
  fs::create_directories(dir / "e");
  EXPECT_THAT([&] { read_sample_folder(dir / "e"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("images.jsonl: missing (not a finished `recap sample` folder), and")));
}

}  // namespace
}  // namespace recap::stages
