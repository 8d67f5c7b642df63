#include "core/torch_pch.h"
#include "stages/t2i_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/weights.h"
#include "diffusion/guidance.h"
#include "models/captioner.h"

namespace recap::stages {

namespace {

using text::Tokenizer;

nlohmann::json options_json(const T2iModelOptions& o, const SampleOptions& s) {
  return {{"text_encoder", o.text},
          {"unet", o.unet},
          {"autoencoder", o.autoencoder ? nlohmann::json(*o.autoencoder) : nlohmann::json()},
          {"repa", o.repa ? nlohmann::json(*o.repa) : nlohmann::json()},
          {"sample", {{"prediction", diffusion::prediction_name(s.prediction)},
                      {"schedule", diffusion::beta_schedule_name(s.schedule)}, {"timesteps", s.timesteps},
                      {"log_snr_shift", s.log_snr_shift},
                      {"image_size", s.image_size}, {"sampler", diffusion::sampler_name(s.sampler)},
                      {"steps", s.steps}, {"guidance_scale", s.guidance_scale}}}};
}

std::pair<T2iModelOptions, SampleOptions> options_from_json(const nlohmann::json& j) {
  T2iModelOptions o;
  j.at("text_encoder").get_to(o.text);
  j.at("unet").get_to(o.unet);
  // Files from before latent space have no "autoencoder": pixel space.
  if (j.contains("autoencoder") && !j.at("autoencoder").is_null())
    o.autoencoder = j.at("autoencoder").get<models::AutoencoderOptions>();
  if (j.contains("repa") && !j.at("repa").is_null()) o.repa = j.at("repa").get<RepaOptions>();
  const auto& s = j.at("sample");
  SampleOptions sample;
  sample.prediction = diffusion::parse_prediction(s.at("prediction").get<std::string>());
  sample.schedule = diffusion::parse_beta_schedule(s.at("schedule").get<std::string>());
  s.at("timesteps").get_to(sample.timesteps);
  sample.log_snr_shift = s.value("log_snr_shift", 0.0);  // absent before the option existed
  s.at("image_size").get_to(sample.image_size);
  sample.sampler = diffusion::parse_sampler(s.at("sampler").get<std::string>());
  s.at("steps").get_to(sample.steps);
  s.at("guidance_scale").get_to(sample.guidance_scale);
  return {o, sample};
}

}  // namespace

T2iModelImpl::T2iModelImpl(T2iModelOptions options) : options_(std::move(options)) {
  if (options_.unet.context_dim != options_.text.dim)
    throw Error(fmt::format("t2i model: the UNet's context width ({}) must equal the text "
                            "encoder's width ({})", options_.unet.context_dim, options_.text.dim));
  const int64_t channels = options_.autoencoder ? options_.autoencoder->latent_channels : 3;
  if (options_.unet.in_channels != channels || options_.unet.out_channels != channels)
    throw Error(fmt::format("t2i model: the UNet takes {} and gives {} channels; {} needs {}",
                            options_.unet.in_channels, options_.unet.out_channels,
                            options_.autoencoder ? "the autoencoder's latent" : "an RGB image",
                            channels));
  text_encoder = register_module("text_encoder", models::TextEncoder(options_.text));
  unet = register_module("unet", models::UNet(options_.unet));
  if (options_.autoencoder) {
    autoencoder = register_module("autoencoder", models::Autoencoder(*options_.autoencoder));
    // Trained before, kept as it is: no gradient, so AdamW and the EMA leave it exactly.
    for (auto& p : autoencoder->parameters()) p.set_requires_grad(false);
  }
  if (options_.repa) {
    const auto& r = *options_.repa;
    const auto& u = options_.unet;
    if (r.level < 0 || r.level >= static_cast<int64_t>(u.channel_mult.size()) ||
        r.features < 1 || r.hidden < 1)
      throw Error(fmt::format("t2i model: REPA needs a UNet level in 0..{} and positive widths "
                              "(level {}, features {}, hidden {})",
                              u.channel_mult.size() - 1, r.level, r.features, r.hidden));
    const int64_t width = u.channels * u.channel_mult[static_cast<size_t>(r.level)];
    using torch::nn::Conv2d, torch::nn::Conv2dOptions;
    repa = register_module("repa",
                           torch::nn::Sequential(Conv2d(Conv2dOptions(width, r.hidden, 1)),
                                                 torch::nn::SiLU(),
                                                 Conv2d(Conv2dOptions(r.hidden, r.features, 1))));
  }
}

std::array<int64_t, 3> T2iModelImpl::diffused_shape(int64_t image_size) const {
  if (!options_.autoencoder) return {3, image_size, image_size};
  const int64_t f = options_.autoencoder->downsample();
  if (image_size % f != 0)
    throw Error(fmt::format("t2i model: {} px images do not divide into the autoencoder's "
                            "{}x{} latent cells", image_size, f, f));
  return {options_.autoencoder->latent_channels, image_size / f, image_size / f};
}

torch::Tensor T2iModelImpl::forward(const torch::Tensor& x_t, const torch::Tensor& t,
                                    const torch::Tensor& ids, models::FeatureTap* tap) {
  return unet(x_t, t, text_encoder(ids), ids == Tokenizer::kPad, tap);
}

torch::Tensor prompt_ids(const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                         int64_t max_length) {
  std::vector<std::vector<int>> ids;
  ids.reserve(prompts.size());
  for (const auto& p : prompts) ids.push_back(models::caption_ids(tokenizer, p, max_length));
  return models::pad_captions(ids).ids;
}

torch::Tensor unconditional_ids(int64_t length) {
  if (length < 2) throw std::logic_error("unconditional_ids: length < 2");
  auto ids = torch::full({1, length}, Tokenizer::kPad, torch::kLong);
  ids[0][0] = Tokenizer::kBos;
  ids[0][1] = Tokenizer::kEos;
  return ids;
}

torch::Tensor sample_images(T2iModel& model, const Tokenizer& tokenizer,
                            const std::vector<std::string>& prompts,
                            const std::vector<uint64_t>& seeds, const SampleOptions& options) {
  if (prompts.empty() || prompts.size() != seeds.size())
    throw Error(fmt::format("sample: need one seed per prompt (got {} prompts, {} seeds)",
                            prompts.size(), seeds.size()));
  torch::NoGradGuard no_grad;
  const auto device = model->parameters().front().device();
  // The empty prompt is [BOS, EOS], so every batch is at least 2 ids wide.
  auto cond = prompt_ids(tokenizer, prompts, model->options().text.max_length).to(device);
  auto uncond = unconditional_ids(cond.size(1)).to(device);
  const auto [c, h, w] = model->diffused_shape(options.image_size);
  std::vector<torch::Tensor> noise;
  uint64_t sampler_seed = 0x5A3B'0000;
  for (uint64_t seed : seeds) {
    noise.push_back(diffusion::gaussian_noise(torch::empty({1, c, h, w}),
                                              at::detail::createCPUGenerator(seed)));
    sampler_seed = derive_seed(sampler_seed, seed);
  }
  auto x_T = torch::cat(noise).to(device);
  // The guidance passes the same ids tensor at every step: the text encoder runs once per
  // call, not once per sampler step.
  torch::Tensor encoded_ids, context, padding;
  auto predictor = diffusion::classifier_free_guidance(
      [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& ids) {
        if (!encoded_ids.defined() || !encoded_ids.is_same(ids)) {
          encoded_ids = ids;
          context = model->text_encoder(ids);
          padding = ids == Tokenizer::kPad;
        }
        return model->unet(x, t, context, padding);
      },
      cond, uncond, options.guidance_scale);
  const auto schedule = noise_schedule(options);
  diffusion::SamplerOptions sampler;
  sampler.seed = sampler_seed;
  // Images live in [-1, 1], standardised latents within the bound measured on the training
  // images; see SamplerOptions::clip_x0.
  const auto& ae = model->options().autoencoder;
  sampler.clip_x0 = ae ? ae->latent_bound : 1;
  auto x0 = diffusion::sample(options.sampler, predictor, options.prediction, schedule, x_T,
                              options.steps, sampler);
  if (ae) x0 = model->autoencoder->decode(x0);
  return x0.clamp(-1, 1);
}

diffusion::NoiseSchedule noise_schedule(const SampleOptions& options) {
  return diffusion::NoiseSchedule(options.schedule, options.timesteps, options.log_snr_shift);
}

void save_t2i(const fs::path& path, const T2iModel& model, const SampleOptions& sample,
              const Tokenizer& tokenizer, const std::map<std::string, std::string>& extra) {
  auto metadata = extra;
  metadata["t2i_options"] = options_json(model->options(), sample).dump();
  metadata["tokenizer_sha256"] = sha256_hex(tokenizer.model_bytes());
  save_module(path, *model, metadata);
}

LoadedT2i load_t2i(const fs::path& path, const Tokenizer& tokenizer) {
  LoadedT2i loaded;
  loaded.metadata = Safetensors::load(path).metadata();
  auto it = loaded.metadata.find("t2i_options");
  if (it == loaded.metadata.end())
    throw Error(fmt::format("{}: not a recap text-to-image model (no t2i_options metadata)",
                            path.string()));
  const auto sha = sha256_hex(tokenizer.model_bytes());
  if (loaded.metadata["tokenizer_sha256"] != sha)
    throw Error(fmt::format("{}: trained with another tokenizer (sha256 {}, given {})",
                            path.string(), loaded.metadata["tokenizer_sha256"], sha));
  T2iModelOptions options;
  try {
    std::tie(options, loaded.sample) = options_from_json(nlohmann::json::parse(it->second));
    noise_schedule(loaded.sample);  // refuses a shift or timestep count no schedule has
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: bad t2i_options metadata: {}", path.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: bad t2i_options metadata: {}", path.string(), e.what()));
  }
  loaded.model = T2iModel(options);
  load_module(path, *loaded.model);
  loaded.model->eval();
  return loaded;
}

void init_t2i_from(const fs::path& path, T2iModel& model, const SampleOptions& sample,
                   const Tokenizer& tokenizer) {
  const auto base = load_t2i(path, tokenizer);
  // The sampler, its steps, guidance and image size are not the weights' business.
  const auto ours = options_json(model->options(), sample);
  const auto theirs = options_json(base.model->options(), base.sample);
  std::vector<std::string> differ;
  for (const char* key : {"text_encoder", "unet", "autoencoder", "repa"})
    if (ours.at(key) != theirs.at(key)) differ.push_back(key);
  for (const char* key : {"prediction", "schedule", "timesteps", "log_snr_shift"})
    if (ours.at("sample").at(key) != theirs.at("sample").at(key))
      differ.push_back(fmt::format("t2i.{} ({} there, {} here)", key,
                                   theirs.at("sample").at(key).dump(),
                                   ours.at("sample").at(key).dump()));
  if (!differ.empty())
    throw Error(fmt::format("{}: cannot start from this model: its {} differ from this "
                            "training's settings",
                            path.string(), fmt::join(differ, ", ")));
  if (model->autoencoder) {
    const auto here = module_state(*model->autoencoder);
    const auto there = module_state(*base.model->autoencoder);
    for (size_t i = 0; i < here.size(); ++i)
      if (!torch::equal(here[i].second, there[i].second))
        throw Error(fmt::format("{}: it diffuses the latent of another autoencoder than "
                                "t2i.autoencoder ({} differs)",
                                path.string(), here[i].first));
  }
  // Equal options: the same tensors under the same names, in the same order.
  torch::NoGradGuard no_grad;
  const auto to = module_state(*model), from = module_state(*base.model);
  for (size_t i = 0; i < to.size(); ++i) to[i].second.copy_(from[i].second);
}

}  // namespace recap::stages
