// The CLIP of models/clip.h and stages/clip_train.h: the contrastive loss and retrieval on
// constructed embeddings with known answers, the towers' output (unit vectors, padding
// ignored), training on the smoke corpus (retrieval above the untrained model's, bit-exact
// resume, bad files refused by name) and its text tower as a t2i text encoder.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cmath>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/weights.h"
#include "data/loader.h"
#include "data/source.h"
#include "data/tensor_batch.h"
#include "models/clip.h"
#include "stages/clip_train.h"
#include "stages/corpus.h"
#include "stages/model_settings.h"
#include "stages/t2i_model.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"
#include "smoke_corpus.h"
#include "test_util.h"

namespace recap::stages {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using text::Tokenizer;

TEST(Clip, LossIsLogBatchWhenUninformativeAndVanishesForSeparatedPairs) {
  const int64_t b = 6;
  // Every image and text the same vector: each row's softmax is uniform over b texts.
  const auto same = torch::ones({b, 4}) / 2.0;
  EXPECT_NEAR(models::clip_loss(same, same, torch::tensor(10.0)).item<double>(), std::log(b),
              1e-6);
  // Orthonormal pairs at scale 100: the other logits are 100 below the right one.
  const auto eye = torch::eye(b);
  const double expected = std::log1p((b - 1) * std::exp(-100.0));
  EXPECT_NEAR(models::clip_loss(eye, eye, torch::tensor(100.0)).item<double>(), expected, 1e-9);
  // Texts in the reverse order: every pair is wrong, the loss is about 100.
  EXPECT_GT(models::clip_loss(eye, eye.flip(0), torch::tensor(100.0)).item<double>(), 99.0);
}

TEST(Clip, RetrievalCountsStrictWinsBothWays) {
  const auto eye = torch::eye(5);
  auto r = models::retrieval_accuracy(eye, eye);
  EXPECT_EQ(r.pairs, 5);
  EXPECT_DOUBLE_EQ(r.image_to_text, 1.0);
  EXPECT_DOUBLE_EQ(r.text_to_image, 1.0);
  // Texts 0 and 1 swapped: images 0 and 1 find the other's text.
  const auto swapped = eye.index_select(0, torch::tensor({1, 0, 2, 3, 4}));
  r = models::retrieval_accuracy(eye, swapped);
  EXPECT_DOUBLE_EQ(r.image_to_text, 3.0 / 5);
  EXPECT_DOUBLE_EQ(r.text_to_image, 3.0 / 5);
  // A "hub" text near every image: image i = e_i + 2u for i < 4, image 4 = 2u, text 4 = u
  // (the unit mean direction). Image i < 4 scores 1 + 2 / sqrt5 = 1.89 on its own text and
  // 1 / sqrt5 + 2 = 2.45 on the hub: only image 4 finds its text. Texts j < 4 find image j
  // (1.89 against at most 0.89); the hub prefers images 0-3 (2.45) to its own (2).
  const auto u = torch::ones({5}) / std::sqrt(5.0);
  auto texts = eye.clone();
  texts[4] = u;
  auto images = eye + 2 * u.unsqueeze(0);
  images[4] = 2 * u;
  r = models::retrieval_accuracy(images, texts);
  EXPECT_DOUBLE_EQ(r.image_to_text, 1.0 / 5);
  EXPECT_DOUBLE_EQ(r.text_to_image, 4.0 / 5);
  // All equal: every pair ties, and a tie is a miss.
  r = models::retrieval_accuracy(torch::ones({3, 2}), torch::ones({3, 2}));
  EXPECT_DOUBLE_EQ(r.image_to_text, 0.0);
  EXPECT_DOUBLE_EQ(r.text_to_image, 0.0);
}

TEST(Clip, LastTokenIndexSkipsRightPadding) {
  const auto pad = Tokenizer::kPad, bos = Tokenizer::kBos, eos = Tokenizer::kEos;
  const auto ids = torch::tensor({bos, 7, 8, eos, bos, eos, pad, pad}, torch::kLong).view({2, 4});
  const auto last = models::last_token_index(ids);
  EXPECT_EQ(last[0].item<int64_t>(), 3);
  EXPECT_EQ(last[1].item<int64_t>(), 1);
  EXPECT_THROW(models::last_token_index(torch::full({1, 3}, pad, torch::kLong)),
               std::invalid_argument);
}

TEST(Clip, TowersGiveUnitVectorsAndIgnorePadding) {
  models::ClipOptions o;
  o.image = {16, 1, 4};
  o.text_encoder = {40, 12, 16, 1, 2};
  o.embed_dim = 8;
  torch::manual_seed(3);
  models::Clip model(o);
  const auto image = model->encode_image(torch::rand({3, 3, 32, 32}) * 2 - 1);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 8}));
  EXPECT_TRUE(torch::allclose(image.norm(2, 1), torch::ones({3}), 1e-5, 1e-5));
  const auto bos = Tokenizer::kBos, eos = Tokenizer::kEos, pad = Tokenizer::kPad;
  const auto tight = torch::tensor({bos, 9, 10, eos}, torch::kLong).view({1, 4});
  const auto padded = torch::tensor({bos, 9, 10, eos, pad, pad}, torch::kLong).view({1, 6});
  const auto a = model->encode_text(tight), b = model->encode_text(padded);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{1, 8}));
  EXPECT_NEAR(a.norm().item<double>(), 1.0, 1e-5);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6));  // causal: padding after EOS changes nothing
  EXPECT_NEAR(model->scale().item<double>(), 1 / 0.07, 1e-3);
}

// The eval split's images [N, 3, S, S], in shard order.
torch::Tensor eval_images(const fs::path& corpus_dir) {
  std::vector<data::DecodedSample> all;
  data::LoaderOptions lo;
  lo.sources = corpus::list_shards(corpus_dir, corpus::Split::Eval);
  lo.image_size = 32;
  lo.shuffle_buffer = 0;
  lo.shuffle_sources = false;
  data::Loader loader(lo);
  std::vector<data::DecodedSample> batch;
  while (loader.next_batch(batch)) all.insert(all.end(), batch.begin(), batch.end());
  return data::to_tensor_batch(all).images;
}
// Their exact short captions, in the same order.
std::vector<std::string> eval_short_captions(const fs::path& corpus_dir) {
  std::vector<std::string> out;
  for (const auto& shard : corpus::list_shards(corpus_dir, corpus::Split::Eval)) {
    auto source = data::open_source(shard);
    while (auto item = source->next())
      if (const auto* s = std::get_if<data::Sample>(&*item))
        out.push_back(s->meta.at("captions").at("human_short").get<std::string>());
  }
  return out;
}

// One smoke corpus and tokenizer for the suite: making them costs seconds. 3,000 web images,
// not the smoke 400, so that what the CLIP learns carries over to held-out scenes.
class ClipTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("clip");
    test::make_smoke_corpus(corpus(), tokenizer_path(),
                            {"corpus.web_samples=3000", "corpus.shard_size=1000"});
    tokenizer_ = new Tokenizer(Tokenizer::load(tokenizer_path()));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete dir_;
  }
  static fs::path corpus() { return *dir_ / "corpus"; }
  static fs::path tokenizer_path() { return *dir_ / "tok.model"; }
  static const Tokenizer& tokenizer() { return *tokenizer_; }

  static test::TempDir* dir_;
  static Tokenizer* tokenizer_;
};

test::TempDir* ClipTrain::dir_ = nullptr;
Tokenizer* ClipTrain::tokenizer_ = nullptr;

TEST_F(ClipTrain, LearnsToRetrieveHeldOutScenes) {
  torch::set_num_threads(2);  // the numbers below are for this binary at 2 threads
  test::TempDir out("clip-learns");
  const auto config =
      Config::load("smoke", {"clip.captions=human-short", "clip.steps=100", "clip.lr=2e-3",
                             "clip.batch_size=64", "clip.heldout=100", "checkpoint.every=1000"});
  const auto options = clip_train_options(config, tokenizer().vocab_size());
  torch::manual_seed(11);
  models::Clip untrained(options.model);
  const auto before = check_clip(untrained, tokenizer(), corpus(), config, 100, 1);
  const auto r = train_clip(corpus(), tokenizer_path(), {}, out.path(), config, 1);
  EXPECT_EQ(r.steps, 100);
  // Full batches but the last one of each epoch (3,000 images = 46 batches of 64 + 56).
  EXPECT_EQ(r.captions.used, 100 * 64 - 2 * 8);
  EXPECT_EQ(r.captions.fell_back + r.captions.skipped, 0);
  EXPECT_EQ(r.check.short_captions.pairs, 100);
  // Chance is 1% among 100 scenes; the untrained model is there, the trained one well above.
  EXPECT_GE(r.check.short_captions.image_to_text, 0.04);
  EXPECT_GE(r.check.short_captions.image_to_text,
            before.short_captions.image_to_text + 0.03);
  const auto report = nlohmann::json::parse(read_file(out / "clip.json"));
  EXPECT_EQ(report.at("captions"), "human-short");
  EXPECT_DOUBLE_EQ(report.at("check").at("short_captions").at("image_to_text").get<double>(),
                   r.check.short_captions.image_to_text);
  // The CLIP score of an image with its own caption beats that with another scene's.
  auto judge = load_clip_judge(out.path());
  std::vector<std::string> own, other;
  own = eval_short_captions(corpus());
  other.assign(own.begin() + 1, own.end());
  other.push_back(own.front());
  const auto images = eval_images(corpus());
  const auto with_own = clip_scores(judge, images, own, 32);
  const auto with_other = clip_scores(judge, images, other, 32);
  double own_sum = 0, other_sum = 0;
  for (size_t i = 0; i < own.size(); ++i) own_sum += with_own[i], other_sum += with_other[i];
  EXPECT_GT(own_sum / own.size(), other_sum / own.size() + 1.0);
  // The saved model gives the same check.
  auto loaded = load_clip(out.path(), tokenizer());
  const auto again = check_clip(loaded, tokenizer(), corpus(), config, 100, 1);
  EXPECT_DOUBLE_EQ(again.short_captions.image_to_text, r.check.short_captions.image_to_text);
}

TEST_F(ClipTrain, ResumesBitExactlyFromEitherSource) {
  torch::set_num_threads(1);
  for (const char* data : {"corpus", "renders"}) {
    SCOPED_TRACE(data);
    test::TempDir out("clip-resume");
    const auto config = Config::load(
        "smoke", {"clip.steps=4", "checkpoint.every=2", std::string("clip.data=") + data});
    const auto first = train_clip(corpus(), tokenizer_path(), {}, out.path(), config, 2);
    EXPECT_EQ(first.captions.used, 4 * 16);
    const auto weights = read_file(out / "clip.safetensors");
    fs::remove_all(out / "train" / "checkpoints" / "step-000000004");
    fs::remove(out / "clip.safetensors");
    const auto resumed = train_clip(corpus(), tokenizer_path(), {}, out.path(), config, 2);
    EXPECT_EQ(resumed.start_step, 2);
    EXPECT_EQ(resumed.captions.used, 4 * 16);
    EXPECT_EQ(read_file(out / "clip.safetensors"), weights);
    const auto metadata = Safetensors::load(out / "clip.safetensors").metadata();
    EXPECT_EQ(metadata.at("captions"), std::string(data) == "renders" ? "renders" : "alt");
  }
}

TEST_F(ClipTrain, TextTowerStartsAT2iTextEncoderOfTheSameSizes) {
  test::TempDir dir("clip-encoder");
  const auto config = Config::load("smoke");
  torch::manual_seed(5);
  models::Clip clip(clip_train_options(config, tokenizer().vocab_size()).model);
  const auto file = dir / "clip.safetensors";
  save_module(file, *clip,
              {{"clip_options", nlohmann::json(clip->options()).dump()},
               {"tokenizer_sha256", sha256_hex(tokenizer().model_bytes())}});
  const auto options = text_encoder_settings(config, tokenizer().vocab_size());
  models::TextEncoder encoder(options);
  const auto report = load_text_encoder(file, encoder, tokenizer(), false);
  EXPECT_TRUE(report.complete()) << report.summary();  // the image tower is not reported
  const auto got = module_state(*encoder), want = module_state(*clip->text_encoder);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(torch::equal(got[i].second, want[i].second)) << got[i].first;
  // Its metadata tells the head count, which shapes cannot.
  auto heads = options;
  heads.heads = 1;
  models::TextEncoder other(heads);
  EXPECT_THAT([&] { load_text_encoder(file, other, tokenizer(), false); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("clip.safetensors"),
                                                    HasSubstr("attention heads"))));
}

TEST_F(ClipTrain, BadFilesAndSettingsAreRefusedByName) {
  test::TempDir dir("clip-bad");
  EXPECT_THAT([&] { load_clip(dir.path(), tokenizer()); },
              ::testing::ThrowsMessage<Error>(HasSubstr("no CLIP here")));
  torch::manual_seed(5);
  models::Clip clip(clip_train_options(Config::load("smoke"), tokenizer().vocab_size()).model);
  save_module(dir / "bare.safetensors", *clip);
  EXPECT_THAT([&] { load_clip(dir / "bare.safetensors", tokenizer()); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("bare.safetensors"),
                                                    HasSubstr("no clip_options"))));
  save_module(dir / "other.safetensors", *clip,
              {{"clip_options", nlohmann::json(clip->options()).dump()},
               {"tokenizer_sha256", "00"}});
  EXPECT_THAT([&] { load_clip(dir / "other.safetensors", tokenizer()); },
              ::testing::ThrowsMessage<Error>(HasSubstr("another tokenizer")));
  save_module(dir / "broken.safetensors", *clip,
              {{"clip_options", "{\"image\": 3}"},
               {"tokenizer_sha256", sha256_hex(tokenizer().model_bytes())}});
  EXPECT_THAT([&] { load_clip(dir / "broken.safetensors", tokenizer()); },
              ::testing::ThrowsMessage<Error>(HasSubstr("bad clip_options")));
  // The recap sources need recaption files.
  const auto recap = Config::load("smoke", {"clip.captions=recap"});
  EXPECT_THAT([&] { train_clip(corpus(), tokenizer_path(), {}, dir / "run", recap, 1); },
              ::testing::ThrowsMessage<Error>(HasSubstr("needs recaption files")));
}

TEST_F(ClipTrain, CommandTrainsAndReportsTheCheck) {
  test::TempDir out("clip-cli");
  const auto help = test::run_recap("clip train --help");
  EXPECT_EQ(help.status, 0) << help.output;
  EXPECT_THAT(help.output, HasSubstr("--recap"));
  const auto r = test::run_recap(fmt::format(
      "clip train --corpus {} --tokenizer {} --out {} --set clip.steps=3 "
      "--set clip.captions=human-mix",
      corpus().string(), tokenizer_path().string(), out.path().string()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, AllOf(HasSubstr("clip: 3 steps"), HasSubstr("among 50 held-out"),
                              HasSubstr("clip.safetensors")));
  const auto metadata = Safetensors::load(out / "clip.safetensors").metadata();
  EXPECT_EQ(metadata.at("captions"), "human-mix");
  EXPECT_EQ(metadata.at("steps"), "3");
}

}  // namespace
}  // namespace recap::stages
