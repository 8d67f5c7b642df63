// The captioner and its decoders: shapes, names, the loss's masking, memorising a tiny batch
// through the trainer, and decoding checked against a reference that recomputes the whole
// prefix every step (no KV cache), beam search against greedy, and seeded nucleus sampling.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/weights.h"
#include "models/captioner.h"
#include "models/decoding.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

namespace recap::models {
namespace {

using text::Tokenizer;
using Tokens = std::vector<std::vector<int>>;

CaptionerOptions tiny_options() {
  CaptionerOptions o;
  o.vocab_size = 24;
  o.max_length = 12;
  o.dim = 32;
  o.layers = 2;
  o.heads = 4;
  o.image_size = 32;
  o.grid = 4;
  o.vision = {16, 1, 4};  // 8x8 cells, pooled to the 4x4 grid
  return o;
}

// A random model whose next-token distributions are far from uniform (the default 0.02
// embeddings give near-flat logits) and do not just echo the input token (as tied, enlarged
// embeddings would).
Captioner random_model(uint64_t seed) {
  torch::manual_seed(seed);
  auto o = tiny_options();
  o.tie_embeddings = false;
  Captioner model(o);
  torch::NoGradGuard no_grad;
  model->token_embedding->weight.normal_(0, 0.3);
  model->lm_head->weight.normal_(0, 0.3);
  model->eval();
  return model;
}

// Blocky random images: 4x4 random colours scaled up, so images differ in their overall
// statistics too (per-pixel noise looks alike to a random network once averaged).
torch::Tensor random_images(int64_t n, uint64_t seed, int64_t size = 32) {
  auto cells = torch::rand({n, 3, 4, 4}, at::detail::createCPUGenerator(seed)) * 2 - 1;
  return cells.repeat_interleave(size / 4, 2).repeat_interleave(size / 4, 3);
}

// The reference decoder: recomputes logits over the whole prefix every step, no cache.
Tokens full_recompute(Captioner& model, const torch::Tensor& images, CaptionStyle style,
                      int64_t max_length,
                      const std::function<torch::Tensor(const torch::Tensor&)>& choose) {
  torch::NoGradGuard no_grad;
  auto image_tokens = model->encode_image(images);
  const int64_t b = images.size(0);
  auto ids = torch::tensor({int64_t{Tokenizer::kBos}, int64_t{style_token(style)}})
                 .unsqueeze(0)
                 .repeat({b, 1});
  Tokens out(static_cast<size_t>(b));
  std::vector<bool> done(static_cast<size_t>(b), false);
  while (ids.size(1) < max_length &&
         std::find(done.begin(), done.end(), false) != done.end()) {
    auto next = choose(model->logits(image_tokens, ids).select(1, -1));
    for (int64_t i = 0; i < b; ++i) {
      const auto u = static_cast<size_t>(i);
      if (done[u]) continue;
      out[u].push_back(static_cast<int>(next[i].item<int64_t>()));
      done[u] = out[u].back() == Tokenizer::kEos;
    }
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
  }
  return out;
}

torch::Tensor argmax(const torch::Tensor& logits) { return logits.argmax(-1); }

// Each token greedy decoding chose is an argmax of a full, uncached forward over the prefix it
// had, up to rounding; a row stops at EOS or at max_length. The cached and the full forward sum
// in other orders, so on a random model (logits close together) an exact comparison of whole
// sequences could flip at a near-tie on another CPU; a wrong token is off by far more than tol.
void expect_greedy_choices(Captioner& model, const torch::Tensor& images, CaptionStyle style,
                           int64_t max_length, const Tokens& tokens, double tol = 1e-4) {
  torch::NoGradGuard no_grad;
  ASSERT_EQ(tokens.size(), static_cast<size_t>(images.size(0)));
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto& row = tokens[i];
    ASSERT_FALSE(row.empty());
    EXPECT_TRUE(row.back() == Tokenizer::kEos ||
                static_cast<int64_t>(row.size()) == max_length - kPromptLength)
        << "row " << i << " stops early";
    std::vector<int64_t> ids = {Tokenizer::kBos, style_token(style)};
    ids.insert(ids.end(), row.begin(), row.end());
    auto logits = model->logits(model->encode_image(images.narrow(0, static_cast<int64_t>(i), 1)),
                                torch::tensor(ids).unsqueeze(0))[0];  // [L, V]
    for (size_t j = 0; j < row.size(); ++j) {
      const auto step = logits[static_cast<int64_t>(kPromptLength + j) - 1];
      EXPECT_GE(step[row[j]].item<double>(), step.max().item<double>() - tol)
          << "row " << i << " token " << j;
    }
  }
}

// log p(tokens | image, prompt) under the model, teacher-forced.
double sequence_log_prob(Captioner& model, const torch::Tensor& image, CaptionStyle style,
                         const std::vector<int>& tokens) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids = {Tokenizer::kBos, style_token(style)};
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  auto t = torch::tensor(ids).unsqueeze(0);
  auto logp = torch::log_softmax(
      model->logits(model->encode_image(image), t.narrow(1, 0, t.size(1) - 1)).to(torch::kDouble),
      -1);
  double total = 0;
  for (size_t j = 0; j < tokens.size(); ++j)
    total += logp[0][static_cast<int64_t>(j + 1)][tokens[j]].item<double>();
  return total;
}

size_t count_finished(const Tokens& tokens) {
  return static_cast<size_t>(std::count_if(tokens.begin(), tokens.end(), [](const auto& t) {
    return !t.empty() && t.back() == Tokenizer::kEos;
  }));
}

TEST(Captioner, ShapesNamesAndErrors) {
  torch::manual_seed(0);
  Captioner model(tiny_options());
  auto tokens = model->encode_image(random_images(3, 1));
  EXPECT_EQ(tokens.sizes(), (std::vector<int64_t>{3, 16, 32}));  // 4x4 grid
  auto ids = torch::randint(0, 24, {3, 7}, torch::kLong);
  EXPECT_EQ(model->logits(tokens, ids).sizes(), (std::vector<int64_t>{3, 7, 24}));

  std::set<std::string> names;
  for (const auto& [name, t] : module_state(*model)) names.insert(name);
  for (const char* expected :
       {"vision.stem.0.weight", "vision.stem.1.weight", "vision.down.1.0.weight",
        "vision.blocks.0.1.bias", "image_proj.weight", "image_position",
        "image_blocks.0.attn1.to_q.weight", "image_norm.bias", "token_embedding.weight",
        "position_embedding.weight", "blocks.1.attn1.to_k.weight", "blocks.1.attn2.to_v.weight",
        "final_norm.weight"})
    EXPECT_TRUE(names.count(expected)) << expected;
  EXPECT_FALSE(names.count("lm_head.weight"));  // tied to the token embedding
  auto untied = tiny_options();
  untied.tie_embeddings = false;
  std::set<std::string> untied_names;
  for (const auto& [name, t] : module_state(*Captioner(untied))) untied_names.insert(name);
  EXPECT_TRUE(untied_names.count("lm_head.weight"));

  EXPECT_THROW(model->encode_image(random_images(1, 2, 16)), Error);
  EXPECT_THROW(model->logits(tokens, torch::zeros({3, 13}, torch::kLong)), Error);
  auto caches = model->make_caches();
  model->logits(tokens, torch::zeros({3, 10}, torch::kLong), &caches);
  EXPECT_THROW(model->logits(tokens, torch::zeros({3, 3}, torch::kLong), &caches), Error);
  using Break = std::function<void(CaptionerOptions&)>;
  for (const Break& broken :
       {Break([](auto& o) { o.grid = 3; }), Break([](auto& o) { o.image_size = 40; }),
        Break([](auto& o) { o.heads = 5; }), Break([](auto& o) { o.max_length = 2; }),
        Break([](auto& o) { o.vision.stride = 3; })}) {
    auto o = tiny_options();
    broken(o);
    EXPECT_THROW(Captioner{o}, Error);
  }
}

TEST(Captioner, CaptionIdsAndPadding) {
  const Tokenizer tokenizer = Tokenizer::train(
      {"a red circle above a blue star", "two green squares", "a yellow heart below a star",
       "three blue circles to the left of a red square"},
      text::TokenizerOptions{.vocab_size = 40});
  auto ids = caption_ids(tokenizer, "a red circle above a blue star", CaptionStyle::kLong, 96);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], Tokenizer::kBos);
  EXPECT_EQ(ids[1], Tokenizer::kLong);
  EXPECT_EQ(ids.back(), Tokenizer::kEos);
  EXPECT_EQ(tokenizer.decode(ids), "a red circle above a blue star");
  auto cut = caption_ids(tokenizer, "a red circle above a blue star <long>", CaptionStyle::kShort,
                         5);
  EXPECT_EQ(cut, (std::vector<int>{Tokenizer::kBos, Tokenizer::kShort, ids[2], ids[3],
                                   Tokenizer::kEos}));
  EXPECT_THROW(caption_ids(tokenizer, "a", CaptionStyle::kShort, 2), Error);

  auto batch = pad_captions({{2, 4, 7, 3}, {2, 5, 3}});
  EXPECT_TRUE(torch::equal(batch.ids, torch::tensor({{2, 4, 7, 3}, {2, 5, 3, 0}}, torch::kLong)));
  EXPECT_TRUE(torch::equal(batch.padding, torch::tensor({{false, false, false, false},
                                                         {false, false, false, true}})));
  EXPECT_THROW(pad_captions({}), Error);
}

TEST(Captioner, LossIgnoresPaddingAndTheStyleToken) {
  torch::set_num_threads(1);
  auto model = random_model(3);
  auto images = random_images(2, 4);
  auto batch = pad_captions({{2, 4, 7, 8, 9, 3}, {2, 5, 10, 3}});
  auto loss = model->loss(images, batch.ids, batch.padding);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  // Three more PAD columns, and junk under the existing padding.
  auto ids = torch::cat({batch.ids, torch::full({2, 3}, Tokenizer::kPad, torch::kLong)}, 1);
  auto padding = torch::cat({batch.padding, torch::ones({2, 3}, torch::kBool)}, 1);
  ids.masked_fill_(padding, 17);
  // Equal in exact arithmetic, but the float32 attention and mean over 8 positions instead of 5
  // round differently, and 1e-6 is only a few ulps of a loss of a few nats. Junk under the
  // padding counted as targets would move it by far more than 1e-5.
  EXPECT_NEAR(model->loss(images, ids, padding).item<double>(), loss.item<double>(), 1e-5);
  // The mean runs over the caption tokens and EOS only: the style token is given, not
  // predicted, and padding is no target.
  auto logits = model->logits(model->encode_image(images), batch.ids.narrow(1, 0, 5));
  auto targets = batch.ids.narrow(1, 1, 5);
  auto logp = torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  auto mask = ~batch.padding.narrow(1, 1, 5);
  mask.narrow(1, 0, 1).fill_(false);
  EXPECT_NEAR(loss.item<double>(), (-(logp * mask).sum() / mask.sum()).item<double>(), 1e-5);
  EXPECT_THROW(model->loss(images, batch.ids.narrow(1, 0, 2), batch.padding.narrow(1, 0, 2)),
               Error);
}

// Two images, each with a short and a long caption, to be memorised.
class MemoriseTask : public train::Task {
 public:
  MemoriseTask() {
    torch::manual_seed(11);
    model = Captioner(tiny_options());
    auto two = random_images(2, 12);
    images = torch::stack({two[0], two[0], two[1], two[1]});
    captions = {{2, 4, 7, 8, 3}, {2, 5, 7, 9, 10, 11, 8, 3},
                {2, 4, 12, 18, 13, 3}, {2, 5, 12, 14, 15, 16, 17, 13, 3}};
    batch = pad_captions(captions);
  }
  torch::nn::Module& module() override { return *model; }
  torch::Tensor loss(train::Metrics&) override {
    return model->loss(images, batch.ids, batch.padding);
  }
  nlohmann::json cursor() const override { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) override {}

  Captioner model{nullptr};
  torch::Tensor images;
  Tokens captions;
  CaptionBatch batch;
};

TEST(Captioner, MemorisesATinyBatchThroughTheTrainer) {
  torch::set_num_threads(1);
  test::TempDir dir("captioner");
  MemoriseTask task;
  train::Metrics unused;
  const double before = task.loss(unused).item<double>();
  train::TrainerOptions o;
  o.steps = 100;
  o.lr = 1e-2;
  o.warmup_steps = 10;
  o.weight_decay = 0;
  o.checkpoint_every = 1000;
  o.log_every = 50;
  o.dir = dir.path();
  const auto result = train::train(task, o);
  EXPECT_LT(result.last_loss, before * 0.05) << "before " << before;

  // Greedy and beam decoding give back the memorised captions, stopping at EOS.
  auto images = task.images.index({torch::tensor({0, 2})});
  for (auto method : {DecodeMethod::kGreedy, DecodeMethod::kBeam}) {
    DecodeOptions d;
    d.method = method;
    d.beam_width = 3;
    auto short_captions = decode(task.model, images, CaptionStyle::kShort, d);
    auto long_captions = decode(task.model, images, CaptionStyle::kLong, d);
    for (size_t i = 0; i < 2; ++i) {
      const auto& s = task.captions[2 * i];
      const auto& l = task.captions[2 * i + 1];
      EXPECT_EQ(short_captions[i], std::vector<int>(s.begin() + kPromptLength, s.end()))
          << to_string(method);
      EXPECT_EQ(long_captions[i], std::vector<int>(l.begin() + kPromptLength, l.end()))
          << to_string(method);
    }
  }
  EXPECT_TRUE(task.model->is_training());  // decode restored the mode it found

  // Rows finishing at different steps (short and long captions in one batch, hot sampling)
  // decode the same with the cache as with full recomputation.
  task.model->eval();
  auto mixed = task.images.index({torch::tensor({0, 2, 2, 0})});
  const auto greedy = decode(task.model, mixed, CaptionStyle::kShort, {});
  EXPECT_EQ(greedy, full_recompute(task.model, mixed, CaptionStyle::kShort, 12, argmax));
  DecodeOptions hot;
  hot.method = DecodeMethod::kNucleus;
  hot.temperature = 3;
  hot.top_p = 1;
  hot.seed = 5;
  auto generator = at::detail::createCPUGenerator(5);
  const auto sampled = decode(task.model, mixed, CaptionStyle::kLong, hot);
  EXPECT_EQ(sampled, full_recompute(task.model, mixed, CaptionStyle::kLong, 12,
                                    [&](const torch::Tensor& logits) {
                                      return sample_top_p(logits, 1, 3, generator);
                                    }));
  for (const auto* tokens : {&greedy, &sampled}) {
    EXPECT_GT(count_finished(*tokens), 0u) << ::testing::PrintToString(*tokens);
    std::set<size_t> lengths;
    for (const auto& t : *tokens) lengths.insert(t.size());
    EXPECT_GT(lengths.size(), 1u) << ::testing::PrintToString(*tokens);
  }
}

// Random models rarely emit EOS; rows that finish at different steps are checked on the
// memorising model above.
TEST(Decoding, CachedDecodingMatchesFullRecomputation) {
  torch::set_num_threads(1);
  for (uint64_t seed : {21, 22}) {
    auto model = random_model(seed);
    auto images = random_images(5, seed + 100);
    const auto cached = decode(model, images, CaptionStyle::kLong, {});
    expect_greedy_choices(model, images, CaptionStyle::kLong, 12, cached);
    DecodeOptions nucleus;
    nucleus.method = DecodeMethod::kNucleus;
    nucleus.top_p = 0.8;
    nucleus.temperature = 1.3;
    nucleus.seed = seed;
    auto generator = at::detail::createCPUGenerator(seed);
    const auto sampled = decode(model, images, CaptionStyle::kShort, nucleus);
    EXPECT_EQ(sampled, full_recompute(model, images, CaptionStyle::kShort, 12,
                                      [&](const torch::Tensor& logits) {
                                        return sample_top_p(logits, 0.8, 1.3, generator);
                                      }));
  }
}

TEST(Decoding, BeamWidthOneIsGreedy) {
  torch::set_num_threads(1);
  auto model = random_model(31);
  auto images = random_images(6, 32);
  DecodeOptions beam;
  beam.method = DecodeMethod::kBeam;
  beam.beam_width = 1;
  beam.length_penalty = 0;
  EXPECT_EQ(decode(model, images, CaptionStyle::kShort, beam),
            decode(model, images, CaptionStyle::kShort, {}));
}

TEST(Decoding, BeamFindsSequencesAtLeastAsLikelyAsGreedy) {
  torch::set_num_threads(1);
  auto model = random_model(41);
  auto images = random_images(6, 42);
  DecodeOptions beam;
  beam.method = DecodeMethod::kBeam;
  beam.beam_width = 4;
  beam.length_penalty = 0;  // rank by the plain sequence log-prob
  const auto greedy = decode(model, images, CaptionStyle::kLong, {});
  const auto beamed = decode(model, images, CaptionStyle::kLong, beam);
  int better = 0;
  for (int64_t i = 0; i < 6; ++i) {
    auto image = images.narrow(0, i, 1);
    const auto u = static_cast<size_t>(i);
    const double g = sequence_log_prob(model, image, CaptionStyle::kLong, greedy[u]);
    const double b = sequence_log_prob(model, image, CaptionStyle::kLong, beamed[u]);
    // Beam ranks by its KV-cached float32 scores, the rescoring runs the full forward: they can
    // differ by ~1e-6 per token over up to 10 tokens, so allow 1e-4 where beam and greedy tie.
    EXPECT_GE(b, g - 1e-4) << "image " << i;
    better += b > g + 1e-9;
  }
  EXPECT_GT(better, 0);  // the search actually explored beyond greedy somewhere
  // With a length penalty the results still end properly and fit.
  beam.length_penalty = 1.0;
  for (const auto& t : decode(model, images, CaptionStyle::kLong, beam))
    EXPECT_LE(static_cast<int64_t>(t.size()), 12 - kPromptLength);
}

TEST(Decoding, NucleusIsSeededAndTopPZeroIsGreedy) {
  torch::set_num_threads(1);
  auto model = random_model(51);
  auto images = random_images(6, 52);
  DecodeOptions o;
  o.method = DecodeMethod::kNucleus;
  o.top_p = 0.95;
  o.seed = 7;
  const auto first = decode(model, images, CaptionStyle::kLong, o);
  EXPECT_EQ(first, decode(model, images, CaptionStyle::kLong, o));
  o.seed = 8;
  EXPECT_NE(first, decode(model, images, CaptionStyle::kLong, o));
  o.top_p = 0;
  EXPECT_EQ(decode(model, images, CaptionStyle::kLong, o),
            decode(model, images, CaptionStyle::kLong, {}));
}

TEST(Decoding, MaxLengthOptionsAndProvenance) {
  torch::set_num_threads(1);
  auto model = random_model(61);
  auto images = random_images(4, 62);
  for (auto method : {DecodeMethod::kGreedy, DecodeMethod::kBeam, DecodeMethod::kNucleus}) {
    DecodeOptions o;
    o.method = method;
    o.max_length = 5;
    for (const auto& t : decode(model, images, CaptionStyle::kShort, o)) {
      EXPECT_GE(t.size(), 1u);
      EXPECT_LE(static_cast<int64_t>(t.size()), 5 - kPromptLength) << to_string(method);
    }
  }
  DecodeOptions o;
  o.method = DecodeMethod::kBeam;
  o.max_length = 13;  // past the model's position table
  EXPECT_THROW(decode(model, images, CaptionStyle::kShort, o), Error);
  o.max_length = 0;
  o.beam_width = 0;
  EXPECT_THROW(decode(model, images, CaptionStyle::kShort, o), Error);
  o = {};
  o.temperature = 0;
  EXPECT_THROW(decode(model, images, CaptionStyle::kShort, o), Error);

  o = {};
  o.method = parse_decode_method("beam");
  o.seed = 3;
  const auto json = o.to_json();
  EXPECT_EQ(json.at("method"), "beam");
  EXPECT_EQ(json.at("beam_width"), 4);
  EXPECT_EQ(json.at("seed"), 3);
  for (const char* key : {"top_p", "temperature", "max_length", "length_penalty"})
    EXPECT_TRUE(json.contains(key)) << key;
  EXPECT_THROW(parse_decode_method("sample"), Error);
}

}  // namespace
}  // namespace recap::models
