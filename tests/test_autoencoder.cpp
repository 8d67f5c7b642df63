// The latent autoencoder: shapes and the standardisation round trip, determinism, that it
// learns, its weight file refused by name when malformed, the reconstruction check, and the
// latent path of step 3 through training, resume, sampling and `recap eval` on the smoke corpus.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/safetensors.h"
#include "core/weights.h"
#include "data/image.h"
#include "models/autoencoder.h"
#include "models/evaluator.h"
#include "stages/autoencoder_train.h"
#include "stages/corpus.h"
#include "stages/evaluator_train.h"
#include "stages/model_settings.h"
#include "stages/sample.h"
#include "stages/settings.h"
#include "stages/t2i_model.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"
#include "smoke_corpus.h"
#include "test_util.h"
#include "world/sampler.h"

namespace recap::stages {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

models::AutoencoderOptions small_options() {
  models::AutoencoderOptions o;
  o.channels = 8;
  o.channel_mult = {1, 2, 2};
  o.latent_channels = 4;
  o.groups = 4;
  return o;
}

TEST(Autoencoder, ShapesAndStandardisationRoundTrip) {
  torch::manual_seed(3);
  models::Autoencoder ae(small_options());
  EXPECT_EQ(ae->options().downsample(), 4);
  const auto x = torch::rand({2, 3, 32, 32}) * 2 - 1;
  const auto raw = ae->encode(x);
  EXPECT_EQ(raw.sizes(), (std::vector<int64_t>{2, 4, 8, 8}));
  const auto y = ae->decode(raw);
  EXPECT_EQ(y.sizes(), x.sizes());
  // Standardising changes the latents, not the round trip: decode undoes what encode applies.
  ae->set_latent_stats({0.5, -1, 2, 0}, {2, 0.5, 1, 4}, 3);
  const auto z = ae->encode(x);
  const auto shift = torch::tensor({0.5, -1.0, 2.0, 0.0}).reshape({1, 4, 1, 1});
  const auto scale = torch::tensor({2.0, 0.5, 1.0, 4.0}).reshape({1, 4, 1, 1});
  EXPECT_TRUE(torch::allclose(z, (raw - shift) / scale, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(ae->decode(z), y, 1e-4, 1e-4));
  EXPECT_EQ(ae->options().latent_bound, 3);

  EXPECT_THAT([&] { ae->encode(torch::zeros({1, 3, 30, 30})); },
              ThrowsMessage<Error>(HasSubstr("multiples of 4")));
  EXPECT_THAT([&] { ae->decode(torch::zeros({1, 3, 8, 8})); },
              ThrowsMessage<Error>(HasSubstr("[B, 4, h, w]")));
  EXPECT_THAT([&] { ae->set_latent_stats({0, 0, 0, 0}, {1, 1, 0, 1}, 1); },
              ThrowsMessage<Error>(HasSubstr("not a positive number")));
  EXPECT_THAT([&] { ae->set_latent_stats({0, 0}, {}, 1); },
              ThrowsMessage<Error>(HasSubstr("4 values")));
  auto odd = small_options();
  odd.channels = 6;  // not divisible by 4 groups
  EXPECT_THAT([&] { models::Autoencoder{odd}; }, ThrowsMessage<Error>(HasSubstr("groups")));
}

TEST(Autoencoder, SameSeedSameModelAndOutputs) {
  torch::set_num_threads(1);
  torch::manual_seed(11);
  models::Autoencoder a(small_options());
  torch::manual_seed(11);
  models::Autoencoder b(small_options());
  const auto x = torch::rand({3, 3, 32, 32}) * 2 - 1;
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
  EXPECT_TRUE(torch::equal(a->encode(x), a->encode(x)));
}

// A broken path (a detached block, a wrong upsampling) shows as an L1 that does not fall.
TEST(Autoencoder, LearnsToReconstructRenders) {
  torch::set_num_threads(2);
  torch::manual_seed(5);
  auto options = small_options();
  options.channel_mult = {1, 2};
  models::Autoencoder ae(options);
  const auto world = world_settings(Config::load("smoke"));
  std::vector<world::Scene> scenes;
  for (int i = 0; i < 8; ++i) scenes.push_back(world::sample_scene(world, 100 + i));
  const auto images = models::render_batch(scenes, world);
  torch::optim::Adam opt(ae->parameters(), torch::optim::AdamOptions(3e-3));
  auto l1 = [&] { return (ae->forward(images) - images).abs().mean(); };
  const double initial = l1().item<double>();
  for (int step = 0; step < 80; ++step) {
    opt.zero_grad();
    auto loss = l1();
    loss.backward();
    opt.step();
  }
  const double final_l1 = l1().item<double>();
  EXPECT_LT(final_l1, 0.5 * initial) << initial << " -> " << final_l1;
}

// One smoke corpus, tokenizer and evaluator for the stage and the latent t2i path.
class LatentSpace : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("latent");
    test::make_smoke_corpus(corpus(), tokenizer_path());
    const auto config = Config::load("smoke");
    train_evaluator(world_settings(config), evaluator_settings(config), evaluator());
    train_autoencoder(corpus(), autoencoder(),
                      Config::load("smoke", {"autoencoder.evaluator=" + evaluator().string()}),
                      2);
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path corpus() { return *dir_ / "corpus"; }
  static fs::path tokenizer_path() { return *dir_ / "tok.model"; }
  static fs::path evaluator() { return *dir_ / "evaluator"; }
  static fs::path autoencoder() { return *dir_ / "ae"; }
  static Config latent(std::vector<std::string> overrides) {
    overrides.push_back("t2i.space=latent");
    overrides.push_back("t2i.autoencoder=" + autoencoder().string());
    overrides.push_back("t2i.captions=human");
    return Config::load("smoke", overrides);
  }
  static test::TempDir* dir_;
};
test::TempDir* LatentSpace::dir_ = nullptr;

TEST_F(LatentSpace, StageWritesStandardisedWeightsAndTheCheck) {
  const auto report = nlohmann::json::parse(read_file(autoencoder() / "autoencoder.json"));
  EXPECT_EQ(report.at("steps").get<int64_t>(), 4);
  const auto& check = report.at("check");
  ASSERT_FALSE(check.is_null());
  EXPECT_EQ(check.at("reconstructions").at("images").get<int>(), 20);
  EXPECT_GE(check.at("fid").get<double>(), 0);
  EXPECT_GE(check.at("fid_floor").get<double>(), 0);
  EXPECT_GT(check.at("l1").get<double>(), 0);
  // Eight held-out renders over their reconstructions.
  const auto sheet = data::decode_image(read_file(autoencoder() / "reconstructions.png"));
  ASSERT_TRUE(sheet.image);
  EXPECT_EQ(sheet.image->width, 8 * 32 * kGridUpscale);
  EXPECT_EQ(sheet.image->height, 2 * 32 * kGridUpscale);

  auto ae = load_autoencoder(autoencoder());
  const auto& o = ae->options();
  ASSERT_EQ(o.latent_shift.size(), 4u);
  ASSERT_EQ(o.latent_scale.size(), 4u);
  EXPECT_GT(o.latent_bound, 0);
  // Standardised on the first stats_images web images: mean ~0, std ~1 per channel there.
  const auto latents = encode_corpus(ae, corpus(), Config::load("smoke"), 1, 64);
  ASSERT_EQ(latents.size(), 64u);
  std::vector<torch::Tensor> all;
  for (const auto& [key, z] : latents) {
    EXPECT_EQ(z.sizes(), (std::vector<int64_t>{4, 16, 16}));
    all.push_back(z);
  }
  const auto z = torch::stack(all).transpose(0, 1).flatten(1);  // [C, N*h*w]
  EXPECT_TRUE(torch::allclose(z.mean(1), torch::zeros({4}), 0, 1e-3)) << z.mean(1);
  EXPECT_TRUE(torch::allclose(z.std(1), torch::ones({4}), 0, 1e-3)) << z.std(1);
  EXPECT_LE(z.abs().max().item<double>(), o.latent_bound + 1e-4);
}

// The check's render column is the evaluator's own accuracy on the same scenes, and its
// reconstruction column is scored on the same ground truth.
TEST_F(LatentSpace, CheckScoresRendersAsTheEvaluatorDoes) {
  torch::set_num_threads(1);
  const auto world = world_settings(Config::load("smoke"));
  auto ae = load_autoencoder(autoencoder());
  const auto check = check_reconstructions(ae, evaluator(), world, 20, 99);
  models::DetectionDecodeOptions decode;
  auto detector = load_detector(evaluator(), &world, &decode);
  const auto own = measure_evaluator_accuracy(detector, world, 20, 99, 64, decode);
  EXPECT_EQ(check.renders.images, 20);
  EXPECT_EQ(check.renders.objects, own.objects);
  EXPECT_EQ(check.renders.detections, own.detections);
  EXPECT_EQ(check.renders.groups_exact, own.groups_exact);
  EXPECT_EQ(check.reconstructions.objects, own.objects);
  EXPECT_EQ(check.reconstructions.groups, own.groups);
  EXPECT_EQ(check.sheet.sizes(), (std::vector<int64_t>{16, 3, 32, 32}));
  EXPECT_GE(check.fid, 0);
}

TEST_F(LatentSpace, PerceptualTermIsLoggedAndRecorded) {
  test::TempDir out("ae-perceptual");
  train_autoencoder(corpus(), out.path(),
                    Config::load("smoke", {"autoencoder.perceptual_weight=0.5",
                                           "autoencoder.perceptual_encoder=" +
                                               evaluator().string()}),
                    2);
  int logged = 0;
  for (const auto& line : read_jsonl(out / "train" / "metrics.jsonl")) {
    if (!line.contains("perceptual")) continue;
    ++logged;
    EXPECT_GT(line["perceptual"].get<double>(), 0);
    // loss = l1 + 0.5 * perceptual
    EXPECT_NEAR(line["loss"].get<double>(),
                line["l1"].get<double>() + 0.5 * line["perceptual"].get<double>(), 1e-4);
  }
  EXPECT_GT(logged, 0);
  const auto report = nlohmann::json::parse(read_file(out / "autoencoder.json"));
  EXPECT_EQ(report.at("perceptual_weight").get<double>(), 0.5);
  EXPECT_EQ(report.at("perceptual_encoder").get<std::string>(), evaluator().string());
}

TEST_F(LatentSpace, MalformedAutoencoderFilesAreRefusedByName) {
  test::TempDir dir("ae-bad");
  EXPECT_THAT([&] { load_autoencoder(dir / "none"); },
              ThrowsMessage<Error>(HasSubstr("no autoencoder here")));
  // Another model's weights: no options metadata.
  save_tensors(dir / "other.safetensors", {{"w", torch::zeros({2})}});
  EXPECT_THAT([&] { load_autoencoder(dir / "other.safetensors"); },
              ThrowsMessage<Error>(HasSubstr("other.safetensors: not a recap autoencoder")));
  // Options that do not parse.
  save_tensors(dir / "json.safetensors", {{"w", torch::zeros({2})}},
               {{"autoencoder_options", "{not json"}});
  EXPECT_THAT([&] { load_autoencoder(dir / "json.safetensors"); },
              ThrowsMessage<Error>(HasSubstr("bad autoencoder_options")));
  // Options that describe an impossible model.
  save_tensors(dir / "zero.safetensors", {{"w", torch::zeros({2})}},
               {{"autoencoder_options", R"({"latent_channels": 0})"}});
  EXPECT_THAT([&] { load_autoencoder(dir / "zero.safetensors"); },
              ThrowsMessage<Error>(HasSubstr("zero.safetensors: autoencoder")));
  // The right metadata, tensors of a narrower model.
  const auto metadata = Safetensors::load(autoencoder_weights_path(autoencoder())).metadata();
  auto narrow = load_autoencoder(autoencoder())->options();
  narrow.channels = 4;
  save_module(dir / "narrow.safetensors", *models::Autoencoder(narrow), metadata);
  EXPECT_THAT([&] { load_autoencoder(dir / "narrow.safetensors"); },
              ThrowsMessage<Error>(HasSubstr("enc_in.weight")));
  // A truncated file.
  const auto bytes = read_file(autoencoder_weights_path(autoencoder()));
  write_file_atomic(dir / "cut.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_THAT([&] { load_autoencoder(dir / "cut.safetensors"); },
              ThrowsMessage<Error>(HasSubstr("cut.safetensors")));
}

TEST_F(LatentSpace, T2iTrainsResumesAndSamplesInTheLatent) {
  torch::set_num_threads(1);
  test::TempDir out("latent-t2i");
  const auto config = latent({"t2i.steps=4", "checkpoint.every=2"});
  train_t2i(corpus(), tokenizer_path(), {}, out.path(), config, 2);
  const auto weights = read_file(out / "t2i.safetensors");
  // Resume after step 2: the same latents (encoded again) give the same model, bit for bit.
  fs::remove_all(out / "train" / "checkpoints" / "step-000000004");
  fs::remove(out / "t2i.safetensors");
  const auto resumed = train_t2i(corpus(), tokenizer_path(), {}, out.path(), config, 2);
  EXPECT_EQ(resumed.start_step, 2);
  EXPECT_EQ(read_file(out / "t2i.safetensors"), weights);

  // The file carries the autoencoder, unchanged by training (frozen, copied by the EMA).
  const auto tokenizer = text::Tokenizer::load(tokenizer_path());
  auto loaded = load_t2i(out / "t2i.safetensors", tokenizer);
  ASSERT_TRUE(loaded.model->options().autoencoder);
  EXPECT_EQ(loaded.model->unet->options().in_channels, 4);
  const auto ae = load_autoencoder(autoencoder());
  const auto inside = module_state(*loaded.model->autoencoder);
  const auto trained = module_state(*ae);
  ASSERT_EQ(inside.size(), trained.size());
  for (size_t i = 0; i < inside.size(); ++i)
    EXPECT_TRUE(torch::equal(inside[i].second, trained[i].second)) << inside[i].first;
  EXPECT_EQ(loaded.model->diffused_shape(32), (std::array<int64_t, 3>{4, 16, 16}));

  // Samples are decoded images, seeded.
  const auto a = sample_images(loaded.model, tokenizer, {"a red star", "two blue circles"},
                               {1, 2}, loaded.sample);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_LE(a.abs().max().item<double>(), 1.0);
  EXPECT_TRUE(torch::equal(a, sample_images(loaded.model, tokenizer,
                                            {"a red star", "two blue circles"}, {1, 2},
                                            loaded.sample)));
  EXPECT_THAT([&] { loaded.model->diffused_shape(31); },
              ThrowsMessage<Error>(HasSubstr("2x2 latent cells")));
}

TEST_F(LatentSpace, LatentWithoutAnAutoencoderIsAnError) {
  test::TempDir out("latent-none");
  EXPECT_THAT([&] {
    train_t2i(corpus(), tokenizer_path(), {}, out.path(),
              Config::load("smoke", {"t2i.space=latent", "t2i.captions=human"}), 1);
  }, ThrowsMessage<Error>(HasSubstr("t2i.autoencoder")));
  EXPECT_THAT([&] {
    train_t2i(corpus(), tokenizer_path(), {}, out.path(),
              Config::load("smoke", {"t2i.space=latent", "t2i.captions=human",
                                     "t2i.autoencoder=" + (out / "missing").string()}),
              1);
  }, ThrowsMessage<Error>(HasSubstr("no autoencoder here")));
}

// The commands end to end: autoencoder train, t2i train in the latent, sample, eval.
TEST_F(LatentSpace, CommandsRunEndToEnd) {
  test::TempDir dir("latent-cli");
  const std::string ae = (dir / "ae").string(), t2i = (dir / "t2i").string();
  auto trained = test::run_recap("autoencoder train --threads 2 --corpus " + corpus().string() +
                                 " --out " + ae + " --evaluator " + evaluator().string());
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_THAT(trained.output, HasSubstr("reconstructions: count exact"));
  auto t = test::run_recap("t2i train --threads 2 --corpus " + corpus().string() +
                           " --tokenizer " + tokenizer_path().string() + " --out " + t2i +
                           " --set t2i.captions=human --set t2i.space=latent --set "
                           "t2i.autoencoder=" + ae);
  ASSERT_EQ(t.status, 0) << t.output;
  EXPECT_THAT(t.output, HasSubstr("latent space: 400 web images encoded"));
  const std::string samples = (dir / "samples").string();
  auto s = test::run_recap("sample --threads 2 --model " + t2i + "/t2i.safetensors --tokenizer " +
                           tokenizer_path().string() + " --prompts " +
                           corpus::prompts_path(corpus(), "counting").string() +
                           " --images-per-prompt 1 --steps 3 --out " + samples);
  ASSERT_EQ(s.status, 0) << s.output;
  auto e = test::run_recap("eval --threads 2 --images " + samples + " --evaluator " +
                           evaluator().string() + " --corpus " + corpus().string() + " --no-fid");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_THAT(e.output, HasSubstr("SOA-C"));
  auto help = test::run_recap("autoencoder train --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_THAT(help.output, HasSubstr("--evaluator"));
}

}  // namespace
}  // namespace recap::stages
