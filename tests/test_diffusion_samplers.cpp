// Samplers against oracle predictors: for a Dirac data distribution and for Gaussian data the
// exact E[eps | x_t] is known in closed form, so a correct sampler must reproduce the data.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"

namespace recap::diffusion {
namespace {

// sqrt(abar_t) and sqrt(1 - abar_t) for t [B], shaped to broadcast against x [B, ...].
std::pair<torch::Tensor, torch::Tensor> scales(const NoiseSchedule& s, const torch::Tensor& t,
                                               const torch::Tensor& x) {
  auto a = s.coefficient(s.alphas_cumprod(), t, x);
  return {a.sqrt(), (1 - a).sqrt()};
}

// Turns the exact eps = E[eps | x_t] into the model output for `type`, by hand (not through
// the schedule's conversions under test): v = sqrt(a) eps - sqrt(1 - a) x0 with
// x0 = (x_t - sqrt(1 - a) eps) / sqrt(a).
torch::Tensor as_output(const torch::Tensor& eps, const torch::Tensor& x_t, const torch::Tensor& sa,
                        const torch::Tensor& so, Prediction type) {
  if (type == Prediction::Eps) return eps;
  return sa * eps - so * (x_t - so * eps) / sa;
}

// Data is the single point x0.
Predictor dirac_oracle(const NoiseSchedule& s, torch::Tensor x0, Prediction type) {
  return [&s, x0, type](const torch::Tensor& x_t, const torch::Tensor& t) {
    auto [sa, so] = scales(s, t, x_t);
    return as_output((x_t - sa * x0) / so, x_t, sa, so, type);
  };
}

// Data is N(mu, sd^2 I): x_t ~ N(sqrt(a) mu, (a sd^2 + 1 - a) I) and
// E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a sd^2 + 1 - a).
Predictor gaussian_oracle(const NoiseSchedule& s, double mu, double sd, Prediction type) {
  return [&s, mu, sd, type](const torch::Tensor& x_t, const torch::Tensor& t) {
    auto [sa, so] = scales(s, t, x_t);
    auto var = sa.square() * sd * sd + so.square();
    return as_output(so * (x_t - sa * mu) / var, x_t, sa, so, type);
  };
}

// n samples of the exact marginal at the first sampling timestep (T - 1), so the test
// measures the sampler and not the small signal left in x_T.
torch::Tensor gaussian_x_T(const NoiseSchedule& s, double mu, double sd, int64_t n, uint64_t seed) {
  const double a = s.alpha_bar(s.size() - 1);
  return std::sqrt(a) * mu + std::sqrt(a * sd * sd + 1 - a) *
                                 torch::randn({n, 1, 2, 2}, at::detail::createCPUGenerator(seed), torch::kFloat64);
}

std::string name(Sampler sampler) {
  switch (sampler) {
    case Sampler::DDPM:
      return "ddpm";
    case Sampler::DDIM:
      return "ddim";
    case Sampler::Euler:
      return "euler";
    case Sampler::DPMpp2M:
      return "dpm++2m";
  }
  return "?";
}

constexpr Sampler kAll[] = {Sampler::DDPM, Sampler::DDIM, Sampler::Euler, Sampler::DPMpp2M};

struct Case {
  Sampler sampler;
  int steps;
  double eta;
};


TEST(DiffusionSampler, TimestepsSpanTheWholeSchedule) {
  EXPECT_EQ(sampling_timesteps(1000, 4), (std::vector<int64_t>{999, 666, 333, 0}));
  EXPECT_EQ(sampling_timesteps(1000, 3), (std::vector<int64_t>{999, 500, 0}));  // 499.5 -> 500
  EXPECT_EQ(sampling_timesteps(1000, 1), (std::vector<int64_t>{999}));
  auto fifty = sampling_timesteps(1000, 50);
  EXPECT_EQ(fifty.size(), 50u);
  EXPECT_EQ(fifty[1], 979);  // 999 * 48 / 49 = 978.6
  EXPECT_EQ(fifty.back(), 0);
  auto all = sampling_timesteps(10, 10);
  EXPECT_EQ(all, (std::vector<int64_t>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_THROW(sampling_timesteps(1000, 0), Error);
  EXPECT_THROW(sampling_timesteps(10, 11), Error);
}

TEST(DiffusionSampler, EverySamplerRecoversADiracDataPoint) {
  torch::set_num_threads(1);
  auto x0 = torch::rand({4, 3, 8, 8}, at::detail::createCPUGenerator(20)) * 2 - 1;
  for (auto kind : {BetaSchedule::Linear, BetaSchedule::ScaledLinear, BetaSchedule::Cosine}) {
    NoiseSchedule s(kind);
    for (auto type : {Prediction::Eps, Prediction::V}) {
      for (auto sampler : kAll) {
        auto x_T = torch::randn({4, 3, 8, 8}, at::detail::createCPUGenerator(21));
        auto out = sample(sampler, dirac_oracle(s, x0, type), type, s, x_T, 20, {1.0, 22});
        // Float32 rounding only: every sampler's last step lands on the x0 prediction.
        EXPECT_LT((out - x0).abs().max().item<float>(), 1e-4f)
            << name(sampler) << " type " << static_cast<int>(type) << " schedule "
            << static_cast<int>(kind);
      }
    }
  }
}

// A sampler that merely returned the oracle's x0 at its last call would pass the test above.
// This one watches every model call: each must come at the next planned timestep with x_t on
// the forward process of the data point, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) n_t. The
// deterministic samplers solve the probability-flow ODE, which for a Dirac keeps the implied
// noise n_t constant (DDIM, Euler in sigma and DPM++(2M) in data prediction are exact there),
// so n_t must equal the n of x_T; the stochastic ones redraw part of it, so n_t must stay a
// unit-variance draw that moves away from x_T's.
TEST(DiffusionSampler, EveryCallIsOnTheForwardProcessOfADiracDataPoint) {
  torch::set_num_threads(1);
  auto x0 = torch::rand({4, 3, 8, 8}, at::detail::createCPUGenerator(23), torch::kFloat64) * 2 - 1;
  NoiseSchedule s(BetaSchedule::Cosine);
  for (auto type : {Prediction::Eps, Prediction::V}) {
    for (auto c : {Case{Sampler::DDPM, 20, 0}, Case{Sampler::DDIM, 20, 0},
                   Case{Sampler::DDIM, 20, 1}, Case{Sampler::Euler, 20, 0},
                   Case{Sampler::DPMpp2M, 20, 0}}) {
      auto oracle = dirac_oracle(s, x0, type);
      std::vector<std::pair<torch::Tensor, int64_t>> calls;
      Predictor recorded = [&](const torch::Tensor& x_t, const torch::Tensor& t) {
        calls.emplace_back(x_t.clone(), t[0].item<int64_t>());
        return oracle(x_t, t);
      };
      auto x_T = torch::randn({4, 3, 8, 8}, at::detail::createCPUGenerator(24), torch::kFloat64);
      sample(c.sampler, recorded, type, s, x_T, c.steps, {c.eta, 25});
      const std::string what = name(c.sampler) + " eta " + std::to_string(c.eta);
      ASSERT_EQ(calls.size(), static_cast<size_t>(c.steps)) << what;
      const auto planned = sampling_timesteps(s.size(), c.steps);
      auto noise_at = [&](size_t i) {
        const double a = s.alpha_bar(calls[i].second);
        return (calls[i].first - std::sqrt(a) * x0) / std::sqrt(1 - a);
      };
      const auto n_T = noise_at(0);
      // Euler hands the model x_T through its sigma scale and back: two roundings.
      EXPECT_TRUE(torch::allclose(calls[0].first, x_T, 1e-14, 0)) << what;
      for (size_t i = 0; i < calls.size(); ++i) {
        EXPECT_EQ(calls[i].second, planned[i]) << what << " call " << i;
        const auto n = noise_at(i);
        if (c.sampler == Sampler::DDPM || c.eta > 0) {
          // 768 values: the std of a unit normal sample is within 0.15 of 1 (six sigma).
          EXPECT_NEAR(n.std().item<double>(), 1.0, 0.15) << what << " call " << i;
          if (i > 2) {
            EXPECT_GT((n - n_T).abs().max().item<double>(), 0.5) << what << " call " << i;
          }
        } else {
          // Double precision; the noise is read back through 1 / sqrt(1 - abar) <= 1e2.
          EXPECT_LT((n - n_T).abs().max().item<double>(), 1e-9) << what << " call " << i;
        }
      }
    }
  }
}

// Clamping x0 predictions to the data range leaves an oracle whose data lies inside it exact,
// and keeps a badly wrong predictor's samples inside the data range.
TEST(DiffusionSampler, ClippedX0KeepsOraclesExactAndBoundsErrors) {
  torch::set_num_threads(1);
  auto x0 = torch::rand({4, 3, 8, 8}, at::detail::createCPUGenerator(30)) * 2 - 1;
  NoiseSchedule s(BetaSchedule::Cosine);
  SamplerOptions clip{0, 31, 1.0};
  for (auto sampler : kAll) {
    auto x_T = torch::randn({4, 3, 8, 8}, at::detail::createCPUGenerator(32));
    auto exact = sample(sampler, dirac_oracle(s, x0, Prediction::Eps), Prediction::Eps, s, x_T,
                        20, clip);
    EXPECT_LT((exact - x0).abs().max().item<float>(), 1e-4f) << name(sampler);

    auto oracle = dirac_oracle(s, x0, Prediction::Eps);
    Predictor off = [&](const torch::Tensor& x, const torch::Tensor& t) {
      return 3 * oracle(x, t);
    };
    auto held = sample(sampler, off, Prediction::Eps, s, x_T, 20, clip);
    EXPECT_LE(held.abs().max().item<float>(), 1.0f + 1e-5f) << name(sampler);
  }
}

TEST(DiffusionSampler, GaussianDataComesOutWithTheRightMeanAndStd) {
  torch::set_num_threads(1);
  // Unit-variance data, as Stable Diffusion scales its latents to. Step counts are where each
  // sampler's discretisation error in the std is under half the tolerance on this schedule
  // (measured: at 50 steps DDIM is 2.4% low, DPM-Solver++(2M) 1.9% high; low-variance data
  // needs more, since its detail lives at the few low-noise timesteps).
  const double mu = 0.5, sd = 1.0;
  const int64_t n = 4096;
  const double count = 4.0 * n;  // four iid values per sample
  NoiseSchedule s(BetaSchedule::ScaledLinear);
  for (auto type : {Prediction::Eps, Prediction::V}) {
    for (auto c :
         {Case{Sampler::DDPM, 250, 0}, Case{Sampler::DDIM, 100, 0}, Case{Sampler::DDIM, 250, 1},
          Case{Sampler::Euler, 100, 0}, Case{Sampler::DPMpp2M, 100, 0}}) {
      auto out = sample(c.sampler, gaussian_oracle(s, mu, sd, type), type, s,
                        gaussian_x_T(s, mu, sd, n, 30), c.steps, {c.eta, 31});
      // Five standard errors of the sample mean and std.
      EXPECT_NEAR(out.mean().item<double>(), mu, 5 * sd / std::sqrt(count))
          << name(c.sampler) << " eta " << c.eta;
      EXPECT_NEAR(out.std().item<double>(), sd, 5 * sd / std::sqrt(2 * count))
          << name(c.sampler) << " eta " << c.eta;
    }
  }
}

// For Gaussian data the probability-flow ODE is linear and solvable in closed form: each value
// keeps its standardised position, x_t = sqrt(a) mu + z sqrt(a sd^2 + 1 - a). Every sampler
// ends with the x0 prediction at t = 0, E[x0 | x_0] = mu + sqrt(a) sd^2 (x - sqrt(a) mu) /
// (a sd^2 + 1 - a), so that applied to the exact state at t = 0 is where an exact solver lands.
torch::Tensor exact_ode_endpoint(const NoiseSchedule& s, double mu, double sd,
                                 const torch::Tensor& x_T) {
  auto spread = [&](double a) { return std::sqrt(a * sd * sd + 1 - a); };
  const double a_T = s.alpha_bar(s.size() - 1), a_0 = s.alpha_bar(0);
  auto z = (x_T - std::sqrt(a_T) * mu) / spread(a_T);
  auto x_0 = std::sqrt(a_0) * mu + spread(a_0) * z;
  return mu + std::sqrt(a_0) * sd * sd * (x_0 - std::sqrt(a_0) * mu) / (spread(a_0) * spread(a_0));
}

// The deterministic samplers against that exact endpoint, sample by sample (no sampling error):
// the error of a first-order method (DDIM, Euler) halves when the steps double, DPM-Solver++(2M)'s
// quarters, and by 80 steps it lands within a tolerance both first-order methods exceed.
// Measured (max |error| over 2,048 values, eps and v alike): DDIM and Euler 0.128 / 0.063 at
// 20 / 40 steps, DPM++(2M) 0.164 / 0.043. At 10 steps DPM++(2M) is the worse one (0.47 vs 0.26):
// the cosine schedule's last interval to t = 0 is ~7x longer in log-SNR than the one before, and
// the multistep extrapolation across such a ratio overshoots (why diffusers' lower_order_final
// falls back to first order for its final steps below 15).
constexpr double kSecondOrderTolerance = 0.02;

TEST(DiffusionSampler, DpmSolverIsSecondOrderOnGaussianData) {
  torch::set_num_threads(1);
  const double mu = 0.5, sd = 0.5;
  NoiseSchedule s(BetaSchedule::Cosine);
  auto x_T = gaussian_x_T(s, mu, sd, 512, 70);
  const auto exact = exact_ode_endpoint(s, mu, sd, x_T);
  // A sampler that ignored its updates would be far off, so the reference has teeth.
  EXPECT_GT((x_T - exact).abs().max().item<double>(), 1.0);
  for (auto type : {Prediction::Eps, Prediction::V}) {
    auto error = [&](Sampler sampler, int steps) {
      auto out = sample(sampler, gaussian_oracle(s, mu, sd, type), type, s, x_T, steps);
      return (out - exact).abs().max().item<double>();
    };
    for (auto sampler : {Sampler::DDIM, Sampler::Euler, Sampler::DPMpp2M}) {
      const double e20 = error(sampler, 20), e40 = error(sampler, 40), e80 = error(sampler, 80);
      const std::string what = name(sampler) + " errors " + std::to_string(e20) + " / " +
                               std::to_string(e40) + " / " + std::to_string(e80);
      if (sampler == Sampler::DPMpp2M) {
        EXPECT_GT(e20 / e40, 3.2) << what;
        EXPECT_GT(e40 / e80, 3.2) << what;
        EXPECT_LT(e80, kSecondOrderTolerance) << what;
      } else {
        EXPECT_NEAR(e20 / e40, 2.0, 0.3) << what;
        EXPECT_NEAR(e40 / e80, 2.0, 0.3) << what;
        EXPECT_GT(e80, kSecondOrderTolerance) << what;
      }
    }
  }
}

TEST(DiffusionSampler, DdimWithEtaOneIsDdpm) {
  torch::set_num_threads(1);
  const double mu = -0.2, sd = 0.5;
  NoiseSchedule s(BetaSchedule::Linear);
  auto model = gaussian_oracle(s, mu, sd, Prediction::Eps);
  auto x_T = gaussian_x_T(s, mu, sd, 4096, 40);
  auto ddpm = sample_ddpm(model, Prediction::Eps, s, x_T, 100, {0, 41});
  auto ddim = sample_ddim(model, Prediction::Eps, s, x_T, 100, {1.0, 41});
  // Same distribution: the statistics agree within sampling error...
  const double count = 4.0 * 4096;
  EXPECT_NEAR(ddim.mean().item<double>(), ddpm.mean().item<double>(), 5 * sd / std::sqrt(count));
  EXPECT_NEAR(ddim.std().item<double>(), ddpm.std().item<double>(), 5 * sd / std::sqrt(2 * count));
  // ...and, with the same noise draws, the update is algebraically the same, so the samples
  // agree up to rounding.
  EXPECT_TRUE(torch::allclose(ddim, ddpm, 1e-9, 1e-9));
  // A fresh noise seed gives other samples from the same distribution.
  auto other = sample_ddim(model, Prediction::Eps, s, x_T, 100, {1.0, 42});
  EXPECT_GT((other - ddpm).abs().max().item<double>(), 0.1);
}

TEST(DiffusionSampler, DeterministicDdimIsEulerInTheSigmaScale) {
  // DDIM(eta = 0) is the Euler step of the same ODE written in sigma (Karras et al. 2022,
  // sec. 4), so the two agree to rounding; this pins Euler's VP <-> VE scaling.
  NoiseSchedule s(BetaSchedule::Cosine);
  for (auto type : {Prediction::Eps, Prediction::V}) {
    auto model = gaussian_oracle(s, 0.3, 0.7, type);
    auto x_T = gaussian_x_T(s, 0.3, 0.7, 256, 60);
    EXPECT_TRUE(torch::allclose(sample_ddim(model, type, s, x_T, 30),
                                sample_euler(model, type, s, x_T, 30), 1e-9, 1e-9));
  }
}

TEST(DiffusionSampler, SameSeedSameSamplesOtherSeedOtherSamples) {
  torch::set_num_threads(1);
  NoiseSchedule s(BetaSchedule::ScaledLinear);
  auto model = gaussian_oracle(s, 0.1, 0.4, Prediction::V);
  auto x_T = torch::randn({8, 3, 4, 4}, at::detail::createCPUGenerator(50));
  for (auto c : {Case{Sampler::DDPM, 25, 0}, Case{Sampler::DDIM, 25, 0.5}}) {
    auto a = sample(c.sampler, model, Prediction::V, s, x_T, c.steps, {c.eta, 51});
    auto b = sample(c.sampler, model, Prediction::V, s, x_T, c.steps, {c.eta, 51});
    auto d = sample(c.sampler, model, Prediction::V, s, x_T, c.steps, {c.eta, 52});
    EXPECT_TRUE(torch::equal(a, b)) << name(c.sampler);
    EXPECT_FALSE(torch::allclose(a, d, 1e-3, 1e-3)) << name(c.sampler);
  }
  // The deterministic samplers ignore the seed.
  for (auto sampler : {Sampler::DDIM, Sampler::Euler, Sampler::DPMpp2M})
    EXPECT_TRUE(torch::equal(sample(sampler, model, Prediction::V, s, x_T, 10, {0, 1}),
                             sample(sampler, model, Prediction::V, s, x_T, 10, {0, 2})))
        << name(sampler);
}

TEST(DiffusionSampler, BadArgumentsAreRejected) {
  NoiseSchedule s(BetaSchedule::Linear, 100);
  auto model = gaussian_oracle(s, 0, 1, Prediction::Eps);
  auto x = torch::randn({2, 3});
  EXPECT_THROW(sample_ddim(model, Prediction::Eps, s, x, 10, {-1.0, 0}), Error);
  EXPECT_THROW(sample_euler(model, Prediction::Eps, s, x, 101), Error);
  Predictor wrong = [](const torch::Tensor& x_t, const torch::Tensor&) { return x_t[0]; };
  EXPECT_THROW(sample_dpmpp_2m(wrong, Prediction::Eps, s, x, 5), std::logic_error);
}

}  // namespace
}  // namespace recap::diffusion
