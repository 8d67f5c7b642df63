// Noise schedules, parameterisation conversions, the training loss and classifier-free
// guidance, checked against closed forms.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "diffusion/guidance.h"
#include "diffusion/loss.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"

namespace recap::diffusion {
namespace {

at::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

torch::Tensor longs(std::initializer_list<int64_t> values) {
  return torch::tensor(std::vector<int64_t>(values), torch::kLong);
}

double cosine_f(double u) {
  return std::pow(std::cos((u + 0.008) / 1.008 * std::numbers::pi / 2), 2);
}

TEST(DiffusionSchedule, FirstAndLastBetasMatchTheirDefinitions) {
  NoiseSchedule linear(BetaSchedule::Linear), scaled(BetaSchedule::ScaledLinear),
      cosine(BetaSchedule::Cosine);
  for (const auto* s : {&linear, &scaled, &cosine}) {
    EXPECT_EQ(s->size(), 1000);
    EXPECT_EQ(s->betas().scalar_type(), torch::kFloat64);
    EXPECT_EQ(s->alphas_cumprod().scalar_type(), torch::kFloat64);
  }
  EXPECT_NEAR(linear.betas()[0].item<double>(), 1e-4, 1e-15);
  EXPECT_NEAR(linear.betas()[999].item<double>(), 0.02, 1e-15);
  EXPECT_NEAR(linear.betas()[1].item<double>(), 1e-4 + (0.02 - 1e-4) / 999, 1e-15);
  EXPECT_NEAR(scaled.betas()[0].item<double>(), 0.00085, 1e-15);
  EXPECT_NEAR(scaled.betas()[999].item<double>(), 0.012, 1e-15);
  EXPECT_NEAR(cosine.betas()[0].item<double>(), 1 - cosine_f(0.001) / cosine_f(0), 1e-12);
  // f(1) = 0: the last step would be all noise, the clip keeps it at 0.999.
  EXPECT_DOUBLE_EQ(cosine.betas()[999].item<double>(), 0.999);
  EXPECT_NEAR(linear.alphas()[5].item<double>(), 1 - linear.betas()[5].item<double>(), 1e-15);
}

TEST(DiffusionSchedule, AlphasCumprodDecreaseInsideTheUnitInterval) {
  for (auto kind : {BetaSchedule::Linear, BetaSchedule::ScaledLinear, BetaSchedule::Cosine}) {
    for (int64_t steps : {1000, 50}) {
      NoiseSchedule s(kind, steps);
      const auto& abar = s.alphas_cumprod();
      EXPECT_TRUE((abar > 0).all().item<bool>());
      EXPECT_TRUE((abar < 1).all().item<bool>());
      EXPECT_TRUE((abar.slice(0, 1) < abar.slice(0, 0, steps - 1)).all().item<bool>());
    }
  }
}

TEST(DiffusionSchedule, CosineAlphaBarFollowsTheFormula) {
  NoiseSchedule s(BetaSchedule::Cosine, 1000);
  // Index t is the (t + 1)-th step: abar_t = f((t + 1) / T) / f(0) until the clip bites.
  for (int64_t t : {0, 10, 250, 500, 900, 990})
    EXPECT_NEAR(s.alpha_bar(t), cosine_f((t + 1) / 1000.0) / cosine_f(0), 1e-12) << t;
}

TEST(DiffusionSchedule, AddNoiseIsTheClosedFormWithTheRightStatistics) {
  torch::set_num_threads(1);
  NoiseSchedule s(BetaSchedule::Linear);
  auto x0 = torch::full({4, 3, 64, 64}, 0.7);
  auto eps = torch::randn({4, 3, 64, 64}, generator(1));
  auto t = longs({0, 250, 600, 999});
  auto x_t = s.add_noise(x0, eps, t);
  EXPECT_EQ(x_t.scalar_type(), torch::kFloat32);
  for (int64_t b = 0; b < 4; ++b) {
    const double a = s.alpha_bar(t[b].item<int64_t>());
    EXPECT_NEAR(x_t[b][1][2][3].item<double>(),
                std::sqrt(a) * 0.7 + std::sqrt(1 - a) * eps[b][1][2][3].item<double>(), 1e-6);
    // 12288 values per sample: 5 standard errors of the mean and of the std.
    const double n = 3 * 64 * 64, sd = std::sqrt(1 - a);
    EXPECT_NEAR(x_t[b].mean().item<double>(), std::sqrt(a) * 0.7, 5 * sd / std::sqrt(n));
    EXPECT_NEAR(x_t[b].std().item<double>(), sd, 5 * sd / std::sqrt(2 * n));
  }
}

TEST(DiffusionSchedule, PredictionConversionsRoundTrip) {
  NoiseSchedule s(BetaSchedule::ScaledLinear);
  auto x0 = torch::randn({5, 2, 4, 4}, generator(2), torch::kFloat64);
  auto eps = torch::randn({5, 2, 4, 4}, generator(3), torch::kFloat64);
  auto t = longs({0, 1, 400, 800, 999});
  auto x_t = s.add_noise(x0, eps, t);
  auto v = s.v_from(x0, eps, t);
  // v by hand for one sample.
  const double a = s.alpha_bar(400);
  EXPECT_TRUE(torch::allclose(v[2], std::sqrt(a) * eps[2] - std::sqrt(1 - a) * x0[2]));
  EXPECT_TRUE(torch::allclose(s.x0_from_eps(x_t, eps, t), x0, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(s.eps_from_x0(x_t, x0, t), eps, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(s.predicted_x0(eps, Prediction::Eps, x_t, t), x0, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(s.predicted_x0(v, Prediction::V, x_t, t), x0, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(s.predicted_eps(v, Prediction::V, x_t, t), eps, 1e-9, 1e-9));
  EXPECT_TRUE(torch::equal(s.predicted_eps(eps, Prediction::Eps, x_t, t), eps));
  EXPECT_TRUE(torch::equal(s.target(Prediction::Eps, x0, eps, t), eps));
  EXPECT_TRUE(torch::equal(s.target(Prediction::V, x0, eps, t), v));
}

TEST(DiffusionSchedule, SnrIsAlphaBarOverOneMinusAlphaBar) {
  NoiseSchedule s(BetaSchedule::Cosine, 200);
  auto snr = s.snr(longs({0, 100, 199}));
  EXPECT_EQ(snr.scalar_type(), torch::kFloat64);
  for (int64_t i = 0; i < 3; ++i) {
    const double a = s.alpha_bar(std::array<int64_t, 3>{0, 100, 199}[i]);
    EXPECT_NEAR(snr[i].item<double>(), a / (1 - a), 1e-12 * a / (1 - a));
  }
}

// The shifted schedule moves every log SNR by exactly the shift, and its betas, alphas and
// alphas_cumprod stay one consistent table (what add_noise and the samplers read).
TEST(DiffusionSchedule, LogSnrShiftMovesEveryLogSnrByTheShift) {
  const NoiseSchedule plain(BetaSchedule::Cosine, 100), shifted(BetaSchedule::Cosine, 100, 2.0);
  auto logit = [](const torch::Tensor& a) { return (a / (1 - a)).log(); };
  const auto moved = logit(shifted.alphas_cumprod()) - logit(plain.alphas_cumprod());
  EXPECT_TRUE(torch::allclose(moved, torch::full_like(moved, 2.0), 0, 1e-9));
  EXPECT_TRUE(torch::allclose(torch::cumprod(1 - shifted.betas(), 0), shifted.alphas_cumprod(),
                              1e-12, 0));
  EXPECT_TRUE(torch::allclose(shifted.alphas(), 1 - shifted.betas(), 0, 1e-15));
  // Less noise at every t for a positive shift; none at all is the plain schedule.
  EXPECT_TRUE((shifted.alphas_cumprod() > plain.alphas_cumprod()).all().item<bool>());
  EXPECT_TRUE(torch::equal(NoiseSchedule(BetaSchedule::Cosine, 100, 0).alphas_cumprod(),
                           plain.alphas_cumprod()));
  EXPECT_THROW(NoiseSchedule(BetaSchedule::Cosine, 100, 21), Error);
  EXPECT_THROW(NoiseSchedule(BetaSchedule::Cosine, 100, std::nan("")), Error);
}

TEST(DiffusionSchedule, NamesParseAndBadInputIsRejected) {
  EXPECT_EQ(parse_beta_schedule("scaled-linear"), BetaSchedule::ScaledLinear);
  EXPECT_EQ(parse_beta_schedule("cosine"), BetaSchedule::Cosine);
  EXPECT_EQ(parse_prediction("v"), Prediction::V);
  EXPECT_EQ(parse_sampler("dpm++2m"), Sampler::DPMpp2M);
  EXPECT_THROW(parse_beta_schedule("quadratic"), Error);
  EXPECT_THROW(parse_prediction("x0"), Error);
  EXPECT_THROW(parse_sampler("heun"), Error);
  // Every name function is parse's inverse.
  for (auto b : {BetaSchedule::Linear, BetaSchedule::ScaledLinear, BetaSchedule::Cosine})
    EXPECT_EQ(parse_beta_schedule(beta_schedule_name(b)), b);
  for (auto p : {Prediction::Eps, Prediction::V}) EXPECT_EQ(parse_prediction(prediction_name(p)), p);
  for (auto m : {Sampler::DDPM, Sampler::DDIM, Sampler::Euler, Sampler::DPMpp2M})
    EXPECT_EQ(parse_sampler(sampler_name(m)), m);
  EXPECT_THROW(NoiseSchedule(BetaSchedule::Linear, 0), Error);
  NoiseSchedule s;
  auto x = torch::zeros({2, 3});
  EXPECT_THROW(s.add_noise(x, x, torch::tensor({0.0, 1.0})), std::invalid_argument);
  EXPECT_THROW(s.add_noise(x, x, longs({0, 1, 2})), std::invalid_argument);
}

TEST(DiffusionLoss, MinSnrWeightsMatchTheClosedForm) {
  NoiseSchedule s(BetaSchedule::Linear);
  const double gamma = 5;
  const std::array<int64_t, 4> ts{0, 100, 300, 999};
  auto t = longs({0, 100, 300, 999});
  auto eps_w = min_snr_weights(s, t, Prediction::Eps, gamma);
  auto v_w = min_snr_weights(s, t, Prediction::V, gamma);
  for (size_t i = 0; i < ts.size(); ++i) {
    const double a = s.alpha_bar(ts[i]), snr = a / (1 - a);
    EXPECT_NEAR(eps_w[i].item<double>(), std::min(snr, gamma) / snr, 1e-12);
    EXPECT_NEAR(v_w[i].item<double>(), std::min(snr, gamma) / (snr + 1), 1e-12);
  }
  // Clean timesteps (SNR > gamma) are down-weighted; noisy ones keep weight 1 for eps.
  EXPECT_LT(eps_w[0].item<double>(), 0.01);
  EXPECT_DOUBLE_EQ(eps_w[3].item<double>(), 1.0);
}

TEST(DiffusionLoss, PerfectPredictionHasZeroLossAndWeightsApplyPerSample) {
  NoiseSchedule s(BetaSchedule::ScaledLinear);
  auto x0 = torch::randn({3, 2, 5, 5}, generator(4));
  auto eps = torch::randn({3, 2, 5, 5}, generator(5));
  auto t = longs({10, 500, 990});
  for (auto type : {Prediction::Eps, Prediction::V}) {
    for (double gamma : {0.0, 5.0}) {
      LossOptions options{type, gamma};
      auto loss = diffusion_loss(s, s.target(type, x0, eps, t), x0, eps, t, options);
      EXPECT_EQ(loss.dim(), 0);
      EXPECT_EQ(loss.item<float>(), 0.0f);
    }
  }
  auto out = torch::zeros_like(eps);
  EXPECT_NEAR(diffusion_loss(s, out, x0, eps, t).item<double>(), eps.square().mean().item<double>(),
              1e-6);
  auto w = min_snr_weights(s, t, Prediction::Eps, 5).to(torch::kFloat32);
  auto expected = (eps.square().flatten(1).mean(1) * w).mean();
  EXPECT_NEAR(diffusion_loss(s, out, x0, eps, t, {Prediction::Eps, 5}).item<double>(),
              expected.item<double>(), 1e-6);
}

TEST(DiffusionLoss, NoiseOffsetAddsOneConstantPerSampleAndChannel) {
  torch::set_num_threads(1);
  auto x0 = torch::zeros({4, 3, 8, 8});
  auto plain = training_noise(x0, generator(6));
  EXPECT_TRUE(torch::equal(plain, torch::randn({4, 3, 8, 8}, generator(6))));
  // The offset draw comes after the per-pixel draw, so the difference is offset * z [B, C].
  auto shifted = training_noise(x0, generator(6), 0.1);
  auto diff = shifted - plain;
  auto per_channel = diff.amax({2, 3}) - diff.amin({2, 3});
  EXPECT_LT(per_channel.abs().max().item<float>(), 1e-6f);
  EXPECT_GT(diff.abs().max().item<float>(), 1e-3f);
  EXPECT_LT(diff.abs().max().item<float>(), 0.6f);  // 0.1 * |z| for 12 normals
}

TEST(DiffusionLoss, TimestepsAreUniformOverTheScheduleAndSeeded) {
  torch::set_num_threads(1);
  NoiseSchedule s(BetaSchedule::Linear, 100);
  auto t = sample_timesteps(20000, s, generator(7));
  EXPECT_EQ(t.scalar_type(), torch::kLong);
  EXPECT_EQ(t.min().item<int64_t>(), 0);
  EXPECT_EQ(t.max().item<int64_t>(), 99);
  EXPECT_NEAR(t.to(torch::kFloat64).mean().item<double>(), 49.5, 5 * 28.9 / std::sqrt(20000.0));
  EXPECT_TRUE(torch::equal(t, sample_timesteps(20000, s, generator(7))));
}

TEST(DiffusionLoss, LogSnrNormalTimestepsFollowTheirDensityAndAreSeeded) {
  torch::set_num_threads(1);
  NoiseSchedule s(BetaSchedule::Cosine, 1000);
  const auto abar = s.alphas_cumprod();
  const auto lambda = (abar / (1 - abar)).log();
  auto draws = [&](double mean, double std) {
    return sample_timesteps(20000, s, generator(7), torch::kCPU, {mean, std});
  };
  // SD3's logit-normal t: log SNR ~ N(0, 4), well inside the cosine schedule's range.
  auto t = draws(0, 2);
  EXPECT_EQ(t.scalar_type(), torch::kLong);
  auto l = lambda.index_select(0, t);
  EXPECT_NEAR(l.mean().item<double>(), 0, 5 * 2 / std::sqrt(20000.0));
  EXPECT_NEAR(l.std().item<double>(), 2, 0.06);
  // A shifted centre moves the draws to less noise (smaller indices), same spread.
  auto shifted = lambda.index_select(0, draws(3, 2));
  EXPECT_NEAR(shifted.mean().item<double>(), 3, 5 * 2 / std::sqrt(20000.0));
  EXPECT_LT(draws(3, 2).to(torch::kFloat64).mean().item<double>(),
            t.to(torch::kFloat64).mean().item<double>());
  EXPECT_TRUE(torch::equal(t, draws(0, 2)));
  // Uniform t on the cosine schedule spreads log SNR wider: std ~ pi.
  auto uniform = lambda.index_select(0, sample_timesteps(20000, s, generator(7)));
  EXPECT_GT(uniform.std().item<double>(), 2.8);
  EXPECT_THROW(draws(0, -1), recap::Error);
  EXPECT_THROW(draws(0, std::nan("")), recap::Error);
  // Mass beyond the schedule's ends folds into its first and last index.
  EXPECT_EQ(draws(1e6, 1e-3).max().item<int64_t>(), 0);
  EXPECT_EQ(draws(-1e6, 1e-3).min().item<int64_t>(), 999);
}

// A conditional model that records each call's batch size: out = x * (1 + mean(cond)) + t / 100.
struct CountingModel {
  std::shared_ptr<std::vector<int64_t>> batches = std::make_shared<std::vector<int64_t>>();
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t,
                           const torch::Tensor& cond) const {
    batches->push_back(x.size(0));
    EXPECT_EQ(cond.size(0), x.size(0));
    EXPECT_EQ(t.size(0), x.size(0));
    return x * (1 + cond.mean({1, 2})).view({-1, 1, 1, 1}) +
           t.to(x.scalar_type()).view({-1, 1, 1, 1}) / 100;
  }
};

TEST(DiffusionGuidance, ScalesZeroAndOneAreExactlyUncondAndCond) {
  CountingModel model;
  auto x = torch::randn({3, 2, 4, 4}, generator(8));
  auto t = longs({5, 6, 7});
  auto cond = torch::randn({3, 7, 16}, generator(9));
  auto uncond = torch::randn({1, 7, 16}, generator(10));
  auto uncond_out = model(x, t, uncond.expand({3, 7, 16}));
  auto cond_out = model(x, t, cond);
  model.batches->clear();
  EXPECT_TRUE(torch::equal(classifier_free_guidance(model, cond, uncond, 0)(x, t), uncond_out));
  EXPECT_TRUE(torch::equal(classifier_free_guidance(model, cond, uncond, 1)(x, t), cond_out));
  EXPECT_EQ(*model.batches, (std::vector<int64_t>{3, 3}));
  model.batches->clear();
  auto guided = classifier_free_guidance(model, cond, uncond, 7.5)(x, t);
  EXPECT_EQ(*model.batches, (std::vector<int64_t>{6}));
  EXPECT_TRUE(torch::allclose(guided, uncond_out + 7.5 * (cond_out - uncond_out), 1e-5, 1e-5));
}

TEST(DiffusionGuidance, OneBatchedModelCallPerSamplerStep) {
  CountingModel model;
  NoiseSchedule s(BetaSchedule::ScaledLinear);
  auto cond = torch::randn({2, 5, 8}, generator(11));
  auto uncond = torch::zeros({2, 5, 8});
  auto guided = classifier_free_guidance(model, cond, uncond, 4.0);
  auto x = sample(Sampler::DDIM, guided, Prediction::Eps, s, torch::randn({2, 3, 4, 4}), 12);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 3, 4, 4}));
  EXPECT_EQ(*model.batches, std::vector<int64_t>(12, 4));
  EXPECT_THROW(classifier_free_guidance(model, cond, torch::zeros({3, 5, 8}), 2),
               std::invalid_argument);
}

TEST(DiffusionGuidance, ConditionDropoutIsSeededAndReplacesExactlyTheChosenRows) {
  torch::set_num_threads(1);
  auto mask = condition_dropout_mask(20000, 0.1, generator(12));
  EXPECT_EQ(mask.scalar_type(), torch::kBool);
  EXPECT_TRUE(torch::equal(mask, condition_dropout_mask(20000, 0.1, generator(12))));
  EXPECT_FALSE(torch::equal(mask, condition_dropout_mask(20000, 0.1, generator(13))));
  EXPECT_NEAR(mask.to(torch::kFloat64).mean().item<double>(), 0.1, 5 * 0.3 / std::sqrt(20000.0));
  EXPECT_FALSE(condition_dropout_mask(100, 0, generator(1)).any().item<bool>());
  EXPECT_TRUE(condition_dropout_mask(100, 1, generator(1)).all().item<bool>());
  EXPECT_THROW(condition_dropout_mask(4, 1.5, generator(1)), Error);

  // Token ids [B, L] with the empty caption's ids as the unconditional row.
  auto ids = torch::arange(1, 13, torch::kLong).view({4, 3});
  auto empty = torch::tensor({{1, 2, 0}}, torch::kLong);
  auto dropped = drop_conditions(ids, empty, torch::tensor({false, true, false, true}));
  EXPECT_TRUE(torch::equal(dropped[0], ids[0]));
  EXPECT_TRUE(torch::equal(dropped[1], empty[0]));
  EXPECT_TRUE(torch::equal(dropped[2], ids[2]));
  EXPECT_TRUE(torch::equal(dropped[3], empty[0]));
}

}  // namespace
}  // namespace recap::diffusion
