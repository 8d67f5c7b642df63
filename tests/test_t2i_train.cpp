// RECAP step 3 on the smoke corpus: training writes weights and grids, resumes bit-exactly,
// counts recaption fallbacks and skips; sampling is seeded, guidance 0 is the unconditional
// model; weight files round trip and bad ones are refused by name; odd prompts are handled. A
// text encoder loads from a bare or a whole-model file, and frozen it stays bit-identical.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <memory>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/weights.h"
#include "data/image.h"
#include "core/rng.h"
#include "diffusion/guidance.h"
#include "diffusion/loss.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"
#include "stages/corpus.h"
#include "stages/evaluator_train.h"
#include "stages/settings.h"
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

// One smoke corpus and tokenizer for the whole suite: making them costs seconds.
class T2iTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("t2i");
    test::make_smoke_corpus(corpus(), tokenizer_path());
    tokenizer_ = new Tokenizer(Tokenizer::load(tokenizer_path()));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete dir_;
  }
  static fs::path corpus() { return *dir_ / "corpus"; }
  static fs::path tokenizer_path() { return *dir_ / "tok.model"; }
  static const Tokenizer& tokenizer() { return *tokenizer_; }

  static Config smoke(std::vector<std::string> overrides) {
    return Config::load("smoke", overrides);
  }
  // A random smoke-sized model and its sampling settings.
  static std::pair<T2iModel, SampleOptions> smoke_model() {
    auto options = t2i_train_options(smoke({}), tokenizer().vocab_size(), 32);
    options.sample.steps = 3;
    torch::manual_seed(7);
    return {T2iModel(options.model), options.sample};
  }

  static test::TempDir* dir_;
  static Tokenizer* tokenizer_;
};

test::TempDir* T2iTrain::dir_ = nullptr;
Tokenizer* T2iTrain::tokenizer_ = nullptr;

TEST_F(T2iTrain, WritesWeightsGridAndMetrics) {
  test::TempDir out("t2i-run");
  auto result = train_t2i(corpus(), tokenizer_path(), {}, out.path(),
                          smoke({"t2i.captions=human"}), 2);
  EXPECT_EQ(result.steps, 6);
  EXPECT_TRUE(std::isfinite(result.last_loss));
  EXPECT_EQ(result.captions.used, 6 * 8);
  EXPECT_EQ(result.captions.fell_back + result.captions.skipped, 0);
  ASSERT_TRUE(fs::exists(out / "t2i.safetensors"));
  EXPECT_EQ(Safetensors::load(out / "t2i.safetensors").metadata().at("captions"), "human");
  // 8 counting + 8 position prompts: two rows of eight 32 px cells, upscaled x4.
  auto grid = data::decode_image(read_file(out / "grids" / "step-000006.png"));
  ASSERT_TRUE(grid.image);
  EXPECT_EQ(grid.image->width, 8 * 32 * 4);
  EXPECT_EQ(grid.image->height, 2 * 32 * 4);
  auto lines = read_jsonl(out / "train" / "metrics.jsonl");
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(lines.front().contains("captions_used"));
}

TEST_F(T2iTrain, CompetenceProbeScoresDevPromptsAtEveryValidation) {
  test::TempDir out("t2i-probe");
  const Config config = smoke({});
  train_evaluator(world_settings(config), evaluator_settings(config), out / "evaluator");
  const auto run = out / "run";
  train_t2i(corpus(), tokenizer_path(), {}, run,
            smoke({"t2i.captions=human", "t2i.validate_every=3", "t2i.probe_images=12",
                   "t2i.probe_evaluator=" + (out / "evaluator").string()}),
            2);
  // Validations at steps 3 and 6, each with probe fields and the optimizer-only clock.
  std::vector<nlohmann::json> validations;
  for (const auto& line : read_jsonl(run / "train" / "metrics.jsonl"))
    if (line.value("split", "") == "validation") validations.push_back(line);
  ASSERT_EQ(validations.size(), 2u);
  for (const auto& v : validations) {
    for (const char* key : {"probe_soa_c", "probe_colour_binding", "probe_count_exact",
                            "probe_competent", "probe_seconds", "train_seconds"})
      EXPECT_TRUE(v.contains(key)) << key;
    EXPECT_GE(v["probe_soa_c"].get<double>(), 0);
    EXPECT_LE(v["probe_soa_c"].get<double>(), 1);
  }
  EXPECT_GT(validations[1]["train_seconds"].get<double>(),
            validations[0]["train_seconds"].get<double>());
  // probe.json holds the last one: 12 images of the dev multi-object prompts.
  const auto probe = read_probe(run);
  EXPECT_EQ(probe["step"], 6);
  EXPECT_EQ(probe["images"], 12);
  EXPECT_EQ(probe["metrics"]["images"], 12);
  EXPECT_EQ(probe["metrics"]["soa_c"]["value"].get<double>(),
            validations[1]["probe_soa_c"].get<double>());
  EXPECT_EQ(probe["competent"].get<bool>(), validations[1]["probe_competent"].get<double>() == 1);
  EXPECT_TRUE(read_probe(out / "evaluator").is_null());  // no probe.json: null

  // A probe needs a real evaluator folder.
  EXPECT_THROW(train_t2i(corpus(), tokenizer_path(), {}, out / "bad",
                         smoke({"t2i.captions=human", "t2i.probe_evaluator=" +
                                                          (out / "nothing").string()}),
                         2),
               Error);
}

TEST(Competence, NeedsBothThresholds) {
  eval::PromptMetrics m;
  EXPECT_FALSE(competent(m));  // nothing measured
  m.soa_c.value = kCompetentSoaC;
  m.colour_binding.value = kCompetentColourBinding;
  EXPECT_TRUE(competent(m));
  m.colour_binding.value = kCompetentColourBinding - 0.01;
  EXPECT_FALSE(competent(m));
  m.colour_binding.value = 1;
  m.soa_c.value = kCompetentSoaC - 0.01;
  EXPECT_FALSE(competent(m));
}

TEST_F(T2iTrain, ResumeIsBitIdentical) {
  torch::set_num_threads(1);
  test::TempDir out("t2i-resume");
  const auto config = smoke({"t2i.captions=alt", "t2i.steps=4", "checkpoint.every=2"});
  auto full = train_t2i(corpus(), tokenizer_path(), {}, out.path(), config, 2);
  const auto weights = read_file(out / "t2i.safetensors");
  // As if killed after step 3: the step-4 checkpoint and the weights never got written.
  fs::remove_all(out / "train" / "checkpoints" / "step-000000004");
  fs::remove(out / "t2i.safetensors");
  auto resumed = train_t2i(corpus(), tokenizer_path(), {}, out.path(), config, 2);
  EXPECT_EQ(resumed.start_step, 2);
  EXPECT_EQ(resumed.captions.used, full.captions.used);
  EXPECT_EQ(read_file(out / "t2i.safetensors"), weights);
}

// The curriculum: its steps see only scenes of at most curriculum_max_groups groups, the
// steps after see any; a run killed inside it resumes bit-exactly; a corpus without scene
// metadata is refused by name.
TEST_F(T2iTrain, CurriculumShowsSmallScenesFirstAndResumes) {
  torch::set_num_threads(1);
  test::TempDir out("t2i-curriculum");
  const auto config = smoke({"t2i.captions=human", "t2i.steps=11", "checkpoint.every=2",
                             "t2i.curriculum_steps=10", "t2i.curriculum_max_groups=1"});
  const auto full = train_t2i(corpus(), tokenizer_path(), {}, out.path(), config, 2);
  std::map<int64_t, double> largest;  // by step
  for (const auto& line : read_jsonl(out / "train" / "metrics.jsonl"))
    if (line.contains("scene_groups_max"))
      largest[line.at("step").get<int64_t>()] = line.at("scene_groups_max").get<double>();
  ASSERT_TRUE(largest.contains(1) && largest.contains(11));  // steps count from 1
  for (const auto& [step, groups] : largest)
    if (step <= 10) EXPECT_EQ(groups, 1.0) << "step " << step;  // inside the curriculum
  EXPECT_GT(largest.at(11), 1.0);  // after it: 8 scenes of 1-3 groups
  // Passed-over samples still count as drawn with their caption.
  EXPECT_GT(full.captions.used, 11 * 8);

  const auto weights = read_file(out / "t2i.safetensors");
  fs::remove_all(out / "train" / "checkpoints" / "step-000000011");
  fs::remove_all(out / "train" / "checkpoints" / "step-000000010");
  fs::remove(out / "t2i.safetensors");
  const auto resumed = train_t2i(corpus(), tokenizer_path(), {}, out.path(), config, 2);
  EXPECT_EQ(resumed.start_step, 8);
  EXPECT_EQ(read_file(out / "t2i.safetensors"), weights);

  data::DecodedSample bare;
  bare.key = "web-000000007";
  bare.shard = "a.tar";
  EXPECT_THAT([&] { scene_groups(bare); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("web-000000007 in a.tar"),
                                                    HasSubstr("t2i.curriculum_steps"))));
}

TEST_F(T2iTrain, FrozenLoadedTextEncoderStaysBitIdenticalAndResumesBitExactly) {
  torch::set_num_threads(1);
  test::TempDir out("t2i-frozen");
  auto [source, sample] = smoke_model();  // not the run's own initialisation
  const auto encoder_file = out / "encoder.safetensors";
  save_module(encoder_file, *source->text_encoder);
  const auto config = smoke({"t2i.captions=alt", "t2i.steps=4", "checkpoint.every=2",
                             "t2i.text_encoder=\"" + encoder_file.string() + "\"",
                             "t2i.freeze_text=true"});
  train_t2i(corpus(), tokenizer_path(), {}, out / "run", config, 2);
  const auto checkpoints = out / "run" / "train" / "checkpoints";
  const auto step2 = load_tensors(checkpoints / "step-000000002" / "model.safetensors");
  const auto step4 = load_tensors(checkpoints / "step-000000004" / "model.safetensors");
  const auto exported = load_tensors(out / "run" / "t2i.safetensors");  // the EMA weights
  const auto loaded = load_tensors(encoder_file);
  for (const auto& [name, t] : loaded) {
    EXPECT_TRUE(torch::equal(step4.at("text_encoder." + name), t)) << name;
    EXPECT_TRUE(torch::equal(exported.at("text_encoder." + name), t)) << name;
  }
  int64_t unet = 0, moved = 0;
  for (const auto& [name, t] : step4) {
    if (!name.starts_with("unet.")) continue;
    ++unet;
    moved += !torch::equal(t, step2.at(name));
  }
  EXPECT_EQ(moved, unet);
  // AdamW never stepped the frozen tensors, so it keeps no moments for them.
  for (const auto& [name, t] :
       load_tensors(checkpoints / "step-000000004" / "optimizer.safetensors"))
    EXPECT_FALSE(name.starts_with("text_encoder.")) << name;
  const auto metadata = Safetensors::load(out / "run" / "t2i.safetensors").metadata();
  EXPECT_EQ(metadata.at("text_encoder_frozen"), "true");
  EXPECT_EQ(metadata.at("text_encoder_from"), encoder_file.string());
  EXPECT_EQ(metadata.at("text_encoder_sha256"), sha256_file(encoder_file));

  const auto weights = read_file(out / "run" / "t2i.safetensors");
  fs::remove_all(checkpoints / "step-000000004");
  fs::remove(out / "run" / "t2i.safetensors");
  auto resumed = train_t2i(corpus(), tokenizer_path(), {}, out / "run", config, 2);
  EXPECT_EQ(resumed.start_step, 2);
  EXPECT_EQ(read_file(out / "run" / "t2i.safetensors"), weights);
}

TEST_F(T2iTrain, TextEncoderLoadsFromEitherFileFormAndNamesWhatDoesNotFit) {
  test::TempDir dir("t2i-encoder");
  auto [source, sample] = smoke_model();
  save_t2i(dir / "whole.safetensors", source, sample, tokenizer(), {});
  save_module(dir / "bare.safetensors", *source->text_encoder);
  const auto options = source->options().text;
  for (const char* file : {"whole.safetensors", "bare.safetensors"}) {
    models::TextEncoder encoder(options);
    const auto report = load_text_encoder(dir / file, encoder, tokenizer(), false);
    EXPECT_TRUE(report.complete()) << file << ": " << report.summary();
    const auto got = module_state(*encoder), want = module_state(*source->text_encoder);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(torch::equal(got[i].second, want[i].second)) << file << " " << got[i].first;
  }
  auto fails = [&](const char* file, models::TextEncoderOptions o, bool partial) {
    return [&, file, o, partial] {
      models::TextEncoder encoder(o);
      load_text_encoder(dir / file, encoder, tokenizer(), partial);
    };
  };
  // A second block the file lacks: an error unless partial, then left at its initialisation.
  auto deeper = options;
  deeper.layers = 2;
  EXPECT_THAT(fails("whole.safetensors", deeper, false),
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("blocks.1."),
                                                    HasSubstr("--allow-partial"))));
  models::TextEncoder encoder(deeper);
  const auto report = load_text_encoder(dir / "whole.safetensors", encoder, tokenizer(), true);
  ASSERT_FALSE(report.missing.empty());
  for (const auto& name : report.missing) EXPECT_TRUE(name.starts_with("blocks.1.")) << name;
  // Another width or vocabulary is refused even partial, naming the tensors.
  auto wider = options;
  wider.dim = 64;
  EXPECT_THAT(fails("bare.safetensors", wider, true),
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("bare.safetensors"),
                                                    HasSubstr("token_embedding.weight"))));
  auto bigger = options;
  bigger.vocab_size += 1;
  EXPECT_THAT(fails("whole.safetensors", bigger, true),
              ::testing::ThrowsMessage<Error>(HasSubstr("token_embedding.weight: file")));
  // What shapes cannot tell, the metadata of a whole model does.
  auto heads = options;
  heads.heads = 1;
  EXPECT_THAT(fails("whole.safetensors", heads, false),
              ::testing::ThrowsMessage<Error>(HasSubstr("attention heads")));
  save_module(dir / "other.safetensors", *source, {{"tokenizer_sha256", "00"}});
  EXPECT_THAT(fails("other.safetensors", options, false),
              ::testing::ThrowsMessage<Error>(HasSubstr("another tokenizer")));
}

TEST_F(T2iTrain, OptimizerAndTextEncoderSettingsComeFromTheConfig) {
  const auto defaults = t2i_train_options(smoke({}), tokenizer().vocab_size(), 32);
  EXPECT_EQ(defaults.beta1, 0.9);
  EXPECT_EQ(defaults.beta2, 0.999);
  EXPECT_EQ(defaults.weight_decay, 0.01);
  EXPECT_TRUE(defaults.model.text.causal);
  const auto set = t2i_train_options(
      smoke({"t2i.beta1=0.8", "t2i.beta2=0.99", "t2i.weight_decay=0", "text_encoder.causal=false"}),
      tokenizer().vocab_size(), 32);
  EXPECT_EQ(set.beta1, 0.8);
  EXPECT_EQ(set.beta2, 0.99);
  EXPECT_EQ(set.weight_decay, 0);
  EXPECT_FALSE(set.model.text.causal);
  EXPECT_THROW(smoke({"t2i.beta2=1.5"}), Error);
}

TEST_F(T2iTrain, CliStartFlagsReachTheRun) {
  test::TempDir dir("t2i-cli");
  auto [source, sample] = smoke_model();
  save_module(dir / "bare.safetensors", *source->text_encoder);
  const std::string base = "t2i train --corpus " + corpus().string() + " --tokenizer " +
                           tokenizer_path().string() + " --set t2i.captions=alt";
  auto absent = test::run_recap(base + " --out " + (dir / "a").string() + " --text-encoder " +
                                (dir / "absent.safetensors").string());
  EXPECT_EQ(absent.status, 2) << absent.output;
  EXPECT_THAT(absent.output, HasSubstr("absent.safetensors: no such file"));
  // Two blocks where the file has one: refused, then trained with --allow-partial.
  const std::string deeper = base + " --set text_encoder.layers=2 --set t2i.steps=1 "
                             "--set t2i.sample_steps=1 --text-encoder " +
                             (dir / "bare.safetensors").string();
  auto refused = test::run_recap(deeper + " --out " + (dir / "b").string());
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("blocks.1."));
  auto trained = test::run_recap(deeper + " --out " + (dir / "c").string() +
                                 " --allow-partial --freeze-text");
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_THAT(trained.output, HasSubstr("left at their initialisation"));
  const auto metadata = Safetensors::load(dir / "c" / "t2i.safetensors").metadata();
  EXPECT_EQ(metadata.at("text_encoder_frozen"), "true");
  EXPECT_EQ(metadata.at("text_encoder_from"), (dir / "bare.safetensors").string());
  // --init fine-tunes that whole model; with --text-encoder as well it is refused.
  const auto model_c = (dir / "c" / "t2i.safetensors").string();
  const std::string tune = base + " --set text_encoder.layers=2 --set t2i.steps=1 "
                           "--set t2i.sample_steps=1 --init " + model_c;
  auto both = test::run_recap(tune + " --out " + (dir / "d").string() + " --text-encoder " +
                              (dir / "bare.safetensors").string());
  EXPECT_EQ(both.status, 2) << both.output;
  EXPECT_THAT(both.output, HasSubstr("not both"));
  auto tuned = test::run_recap(tune + " --out " + (dir / "e").string());
  ASSERT_EQ(tuned.status, 0) << tuned.output;
  EXPECT_EQ(Safetensors::load(dir / "e" / "t2i.safetensors").metadata().at("init_from"), model_c);
}

TEST_F(T2iTrain, CountsRecaptionFallbacksAndSkips) {
  // Long recaptions for the even half of the 400 web keys; one epoch is 4 batches of 100.
  test::TempDir out("t2i-recap");
  std::string lines;
  for (int64_t i = 0; i < 400; i += 2)
    lines += nlohmann::json{{"key", corpus::sample_key(corpus::Split::Web, i)},
                            {"caption", "a red circle"}, {"kind", "long"}}.dump() + "\n";
  write_file_atomic(out / "web-00000.recap.jsonl", lines);
  for (std::string fallback : {"alt", "skip"}) {
    auto config = smoke({"t2i.captions=recap", "t2i.recap_fallback=" + fallback,
                         "t2i.steps=4", "t2i.batch_size=100", "t2i.ema_decay=0",
                         "t2i.sample_steps=1", "unet.channels=4"});  // counts, not images
    auto result = train_t2i(corpus(), tokenizer_path(), {out / "web-00000.recap.jsonl"},
                            out / fallback, config, 2);
    EXPECT_EQ(result.captions.used, 200) << fallback;
    EXPECT_EQ(result.captions.fell_back, fallback == "alt" ? 200 : 0) << fallback;
    EXPECT_EQ(result.captions.skipped, fallback == "skip" ? 200 : 0) << fallback;
    // The training record of the last step (the validation record follows it).
    auto metrics = read_jsonl(out / fallback / "train" / "metrics.jsonl");
    ASSERT_GE(metrics.size(), 2u);
    const auto& last = metrics[metrics.size() - 2];
    EXPECT_EQ(last.at("step"), 4);
    EXPECT_EQ(last.at("captions_skipped").get<double>() +
                  last.at("captions_fell_back").get<double>(), 200) << fallback;
  }
  EXPECT_THROW(train_t2i(corpus(), tokenizer_path(), {}, out / "none",
                         smoke({"t2i.captions=recap"}), 2),
               Error);
}

// human-mix draws each image's human caption: long with probability t2i.mix_long, else short.
// Its draws come from their own stream, so at mix_long 1 and 0 it trains exactly as human and
// human-short do (same noise, timesteps and weights), and in between like neither.
TEST_F(T2iTrain, HumanMixDrawsLongOrShortHumanCaptions) {
  torch::set_num_threads(1);  // weights compared bit for bit
  test::TempDir out("t2i-human-mix");
  auto train = [&](const std::string& name, const std::string& source, double mix_long) {
    auto config = smoke({"t2i.captions=" + source, fmt::format("t2i.mix_long={}", mix_long),
                         "t2i.steps=2", "t2i.batch_size=16", "t2i.sample_steps=1",
                         "t2i.validate_every=0", "unet.channels=4"});
    train_t2i(corpus(), tokenizer_path(), {}, out / name, config, 1);
    return load_t2i(out / name / "t2i.safetensors", tokenizer()).model;
  };
  auto same = [](const T2iModel& a, const T2iModel& b) {
    const auto pa = module_state(*a), pb = module_state(*b);
    for (size_t i = 0; i < pa.size(); ++i)
      if (!torch::equal(pa[i].second, pb[i].second)) return false;
    return true;
  };
  const auto longs = train("long", "human", 0.5), shorts = train("short", "human-short", 0.5);
  EXPECT_TRUE(same(train("mix1", "human-mix", 1), longs));
  EXPECT_TRUE(same(train("mix0", "human-mix", 0), shorts));
  const auto half = train("half", "human-mix", 0.5);
  EXPECT_FALSE(same(half, longs));
  EXPECT_FALSE(same(half, shorts));
  EXPECT_EQ(Safetensors::load(out / "half" / "t2i.safetensors").metadata().at("captions"),
            "human-mix");
}

TEST_F(T2iTrain, RecaptionFilesAreValidated) {
  test::TempDir dir("t2i-jsonl");
  write_file_atomic(dir / "bad.jsonl", R"({"key": "web-000000001", "caption": "x"})" "\n");
  EXPECT_THAT([&] { load_recaptions({dir / "bad.jsonl"}); },
              ::testing::ThrowsMessage<Error>(HasSubstr("record 1")));
  const std::string line =
      R"({"key": "web-000000001", "caption": "x", "kind": "short"})" "\n";
  write_file_atomic(dir / "twice.jsonl", line + line);
  EXPECT_THAT([&] { load_recaptions({dir / "twice.jsonl"}); },
              ::testing::ThrowsMessage<Error>(HasSubstr("already given")));
  write_file_atomic(dir / "good.jsonl", line);
  EXPECT_EQ(load_recaptions({dir / "good.jsonl"}).short_captions.at("web-000000001"), "x");
}

TEST_F(T2iTrain, SamplingIsSeededAndGuidanceZeroIsUnconditional) {
  torch::set_num_threads(1);  // the same-seed comparison is bit-exact at a fixed thread count
  auto [model, options] = smoke_model();
  const std::vector<std::string> prompts = {"two red circles", "a blue star left of a square"};
  auto a = sample_images(model, tokenizer(), prompts, {1, 2}, options);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(a, sample_images(model, tokenizer(), prompts, {1, 2}, options)));
  EXPECT_FALSE(torch::equal(a, sample_images(model, tokenizer(), prompts, {1, 3}, options)));
  // sample_images encodes the prompts once per call; the same sampler calling the whole model
  // at every step gives the same images (the same operations on the same inputs).
  {
    auto cond = prompt_ids(tokenizer(), prompts, model->options().text.max_length);
    auto predictor = diffusion::classifier_free_guidance(
        [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& ids) {
          return model->forward(x, t, ids);
        },
        cond, unconditional_ids(cond.size(1)), options.guidance_scale);
    std::vector<torch::Tensor> noise;
    uint64_t sampler_seed = 0x5A3B'0000;
    for (uint64_t seed : {1, 2}) {
      noise.push_back(diffusion::gaussian_noise(torch::empty({1, 3, 32, 32}),
                                                at::detail::createCPUGenerator(seed)));
      sampler_seed = derive_seed(sampler_seed, seed);
    }
    diffusion::SamplerOptions sampler;
    sampler.seed = sampler_seed;
    sampler.clip_x0 = 1;
    torch::NoGradGuard no_grad;
    const auto stepwise =
        diffusion::sample(options.sampler, predictor, options.prediction,
                          noise_schedule(options),
                          torch::cat(noise), options.steps, sampler)
            .clamp(-1, 1);
    EXPECT_TRUE(torch::equal(a, stepwise));
  }
  auto uncond = options;
  uncond.guidance_scale = 0;
  auto plain = options;
  plain.guidance_scale = 1;
  // Not bit-equal: the prompts pad the empty condition to their length, and the masked
  // padding changes the attention's summation order.
  EXPECT_TRUE(torch::allclose(sample_images(model, tokenizer(), prompts, {1, 2}, uncond),
                              sample_images(model, tokenizer(), {"", ""}, {1, 2}, plain), 0,
                              1e-5));
}

TEST_F(T2iTrain, WeightsRoundTripAndMisshapedFilesAreRefused) {
  torch::set_num_threads(1);  // original vs reloaded samples: bit-exact at a fixed thread count
  test::TempDir dir("t2i-weights");
  auto [model, options] = smoke_model();
  options.log_snr_shift = 1.5;
  save_t2i(dir / "a.safetensors", model, options, tokenizer(), {{"captions", "alt"}});
  auto loaded = load_t2i(dir / "a.safetensors", tokenizer());
  EXPECT_EQ(loaded.metadata.at("captions"), "alt");
  EXPECT_EQ(loaded.sample.steps, options.steps);
  EXPECT_EQ(loaded.sample.log_snr_shift, 1.5);
  EXPECT_TRUE(torch::equal(sample_images(model, tokenizer(), {"a star"}, {5}, options),
                           sample_images(loaded.model, tokenizer(), {"a star"}, {5},
                                         loaded.sample)));
  // The metadata describes 16-channel UNet; the tensors come from an 8-channel one.
  auto narrow = t2i_train_options(smoke({"unet.channels=8"}), tokenizer().vocab_size(), 32);
  save_module(dir / "b.safetensors", *T2iModel(narrow.model),
              Safetensors::load(dir / "a.safetensors").metadata());
  EXPECT_THAT([&] { load_t2i(dir / "b.safetensors", tokenizer()); },
              ::testing::ThrowsMessage<Error>(HasSubstr("unet.conv_in.weight")));
  // A sampling setting no schedule has is refused at load, naming the file.
  auto absurd = options;
  absurd.log_snr_shift = 50;
  save_t2i(dir / "c.safetensors", model, absurd, tokenizer(), {});
  EXPECT_THAT([&] { load_t2i(dir / "c.safetensors", tokenizer()); },
              ::testing::ThrowsMessage<Error>(
                  AllOf(HasSubstr("c.safetensors"), HasSubstr("log SNR shift 50"))));
}

// t2i.init starts every tensor from a base model (the arms of `recap run` with
// run.base_steps), and refuses a base whose weights would mean something else here.
TEST_F(T2iTrain, StartsFromABaseModelOfTheSameSettingsOnly) {
  torch::set_num_threads(1);
  test::TempDir dir("t2i-init");
  train_t2i(corpus(), tokenizer_path(), {}, dir / "base", smoke({"t2i.captions=alt"}), 2);
  const auto base_file = dir / "base" / "t2i.safetensors";
  const std::string init = "t2i.init=\"" + base_file.string() + "\"";
  // At the smallest learning rate one step barely moves the weights: the step-1 checkpoint
  // is the base, not the run's own random initialisation.
  train_t2i(corpus(), tokenizer_path(), {}, dir / "tuned",
            smoke({"t2i.captions=human", "t2i.steps=1", "t2i.lr=1e-8", "t2i.warmup_steps=0",
                   "checkpoint.every=1", init}),
            2);
  const auto base = load_tensors(base_file);
  const auto step1 =
      load_tensors(dir / "tuned" / "train" / "checkpoints" / "step-000000001" / "model.safetensors");
  ASSERT_EQ(step1.size(), base.size());
  for (const auto& [name, t] : step1)
    EXPECT_TRUE(torch::allclose(t, base.at(name), 0, 1e-6)) << name;
  auto [fresh, sample] = smoke_model();
  EXPECT_FALSE(torch::allclose(step1.at("unet.conv_in.weight"),
                               fresh->unet->named_parameters()["conv_in.weight"], 0, 1e-3));
  const auto metadata = Safetensors::load(dir / "tuned" / "t2i.safetensors").metadata();
  EXPECT_EQ(metadata.at("init_from"), base_file.string());
  EXPECT_EQ(metadata.at("init_sha256"), sha256_file(base_file));

  auto refused = [&](std::vector<std::string> sets, const std::string& what) {
    sets.push_back("t2i.captions=human");
    sets.push_back(init);
    const auto out = dir / ("refused-" + what);
    EXPECT_THAT([&] { train_t2i(corpus(), tokenizer_path(), {}, out, smoke(sets), 2); },
                ::testing::ThrowsMessage<Error>(AllOf(HasSubstr(base_file.string()),
                                                      HasSubstr(what))))
        << what;
    EXPECT_FALSE(fs::exists(out / "t2i.safetensors")) << what;
  };
  refused({"unet.channels=8"}, "unet");
  refused({"text_encoder.layers=2"}, "text_encoder");
  refused({"t2i.prediction=v"}, "t2i.prediction");
  EXPECT_THAT([&] {
    t2i_train_options(smoke({init, "t2i.text_encoder=\"x.safetensors\""}),
                      tokenizer().vocab_size(), 32);
  }, ::testing::ThrowsMessage<Error>(HasSubstr("not both")));
  EXPECT_THAT([&] {
    train_t2i(corpus(), tokenizer_path(), {}, dir / "missing",
              smoke({"t2i.captions=human",
                     "t2i.init=\"" + (dir / "nope.safetensors").string() + "\""}), 2);
  }, ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("nope.safetensors"), HasSubstr("no such file"))));
}

// In latent space a base made with another autoencoder is refused even when every shape fits:
// its latents mean something else.
TEST_F(T2iTrain, BaseModelOfAnotherAutoencoderIsRefused) {
  test::TempDir dir("t2i-init-latent");
  auto options = t2i_train_options(smoke({}), tokenizer().vocab_size(), 32);
  options.model.autoencoder = models::AutoencoderOptions{};
  options.model.unet.in_channels = options.model.unet.out_channels =
      options.model.autoencoder->latent_channels;
  torch::manual_seed(1);
  T2iModel base(options.model);
  save_t2i(dir / "base.safetensors", base, options.sample, tokenizer(), {});
  torch::manual_seed(2);
  T2iModel other(options.model);
  EXPECT_THAT([&] { init_t2i_from(dir / "base.safetensors", other, options.sample, tokenizer()); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr("base.safetensors"),
                                                    HasSubstr("another autoencoder"))));
  // Same autoencoder weights: the base's UNet and text encoder arrive exactly.
  torch::manual_seed(3);
  T2iModel same(options.model);
  {
    torch::NoGradGuard no_grad;
    const auto from = module_state(*base->autoencoder), to = module_state(*same->autoencoder);
    for (size_t i = 0; i < from.size(); ++i) to[i].second.copy_(from[i].second);
  }
  init_t2i_from(dir / "base.safetensors", same, options.sample, tokenizer());
  const auto want = module_state(*base), got = module_state(*same);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(torch::equal(want[i].second, got[i].second)) << want[i].first;
}

// The UNet, its text conditioning and the preset's loss (v prediction, Min-SNR weights) can
// memorise one fixed batch: same images, captions, timesteps and noise every step. A broken
// gradient path (a detached block, a wrong target, a zero-initialised layer that never wakes)
// shows as a loss that stalls.
TEST_F(T2iTrain, UNetFitsOneFixedBatch) {
  torch::set_num_threads(2);
  auto options = t2i_train_options(smoke({}), tokenizer().vocab_size(), 32);
  torch::manual_seed(11);
  T2iModel model(options.model);
  model->train();
  const diffusion::NoiseSchedule schedule(diffusion::BetaSchedule::Cosine, 1000);
  auto gen = at::detail::createCPUGenerator(12);
  // Four smooth colour fields in [-1, 1] (an 8x8 pattern upsampled), like renders' flat areas.
  auto x0 = torch::nn::functional::interpolate(
                torch::rand({4, 3, 8, 8}, gen) * 2 - 1,
                torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{32, 32}))
                .contiguous();
  auto ids = prompt_ids(tokenizer(), {"two red circles", "a blue star", "three green squares",
                                      "a yellow heart left of a cross"},
                        model->options().text.max_length);
  auto t = torch::tensor({50, 300, 600, 900}, torch::kLong);
  auto eps = torch::randn({4, 3, 32, 32}, gen);
  const diffusion::LossOptions loss_options{diffusion::Prediction::V, 5.0};
  auto x_t = schedule.add_noise(x0, eps, t);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(3e-3));
  auto loss_now = [&] {
    return diffusion::diffusion_loss(schedule, model->forward(x_t, t, ids), x0, eps, t,
                                     loss_options);
  };
  const double first = loss_now().item<double>();
  double last = first;
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    auto loss = loss_now();
    loss.backward();
    optimizer.step();
    last = loss.item<double>();
  }
  EXPECT_TRUE(std::isfinite(last));
  // Measured: 0.26 -> 0.022 (12x) in 60 steps.
  EXPECT_LT(last, first / 5) << "loss " << first << " -> " << last << " in 60 steps";
}

// REPA: a run with an encoder logs the alignment, saves the projector (sampling ignores it)
// and without an encoder refuses to start; the projector and the UNet below the tap can raise
// the alignment with a fixed target.
TEST_F(T2iTrain, RepaTrainsTheProjectorTowardsTheEncoder) {
  test::TempDir out("t2i-repa");
  const Config config = smoke({});
  train_evaluator(world_settings(config), evaluator_settings(config), out / "encoder");
  train_t2i(corpus(), tokenizer_path(), {}, out / "run",
            smoke({"t2i.captions=human", "t2i.repa_weight=0.5",
                   "t2i.repa_encoder=" + (out / "encoder").string()}),
            2);
  int logged = 0;
  for (const auto& line : read_jsonl(out / "run" / "train" / "metrics.jsonl")) {
    if (!line.contains("repa_alignment")) continue;
    ++logged;
    EXPECT_GE(line["repa_alignment"].get<double>(), -1);
    EXPECT_LE(line["repa_alignment"].get<double>(), 1);
    EXPECT_TRUE(line.contains("diffusion_loss"));
  }
  EXPECT_GT(logged, 0);
  auto loaded = load_t2i(out / "run" / "t2i.safetensors", tokenizer());
  ASSERT_TRUE(loaded.model->options().repa);
  EXPECT_EQ(loaded.model->options().repa->features,
            load_detector(out / "encoder")->backbone->options().width);
  EXPECT_EQ(sample_images(loaded.model, tokenizer(), {"a star"}, {3}, loaded.sample).size(0), 1);
  EXPECT_THAT([&] {
    train_t2i(corpus(), tokenizer_path(), {}, out / "none",
              smoke({"t2i.captions=human", "t2i.repa_weight=0.5"}), 1);
  }, ::testing::ThrowsMessage<Error>(HasSubstr("t2i.repa_encoder")));

  // The gradient path: projector and UNet learn to agree with a fixed random target.
  torch::set_num_threads(2);
  auto options = t2i_train_options(smoke({}), tokenizer().vocab_size(), 32);
  options.model.repa = RepaOptions{1, 8, 32};
  torch::manual_seed(4);
  T2iModel model(options.model);
  const auto x = torch::randn({4, 3, 32, 32});
  const auto t = torch::tensor({10, 200, 500, 900}, torch::kLong);
  const auto ids = prompt_ids(tokenizer(), {"a", "b", "c", "d"}, 16);
  const auto target = torch::randn({4, 8, 16, 16});
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-3));
  auto alignment = [&] {
    models::FeatureTap tap{1, {}};
    model->forward(x, t, ids, &tap);
    return torch::cosine_similarity(model->repa->forward(tap.features), target, 1).mean();
  };
  const double first = alignment().item<double>();
  for (int step = 0; step < 40; ++step) {
    optimizer.zero_grad();
    auto loss = -alignment();
    loss.backward();
    optimizer.step();
  }
  const double last = alignment().item<double>();
  EXPECT_GT(last, first + 0.3) << first << " -> " << last;
}

TEST_F(T2iTrain, OddPromptsAreHandled) {
  auto [model, options] = smoke_model();
  const int64_t max_length = model->options().text.max_length;
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "a red circle ";
  auto ids = prompt_ids(tokenizer(), {"", long_prompt, "\u2603 \u6f22"}, max_length);
  EXPECT_EQ(ids.size(1), max_length);  // cut to the encoder's length
  EXPECT_TRUE(torch::equal(ids[0].narrow(0, 0, 2), unconditional_ids(2)[0]));
  EXPECT_EQ(ids[0][2].item<int64_t>(), Tokenizer::kPad);
  EXPECT_EQ(ids[1][max_length - 1].item<int64_t>(), Tokenizer::kEos);
  EXPECT_TRUE((ids[2] == Tokenizer::kUnk).any().item<bool>());
  auto images = sample_images(model, tokenizer(), {"", long_prompt, "\u2603 \u6f22"}, {1, 2, 3},
                              options);
  EXPECT_TRUE(torch::isfinite(images).all().item<bool>());
}

}  // namespace
}  // namespace recap::stages
