#include "core/torch_pch.h"
#include "stages/autoencoder_train.h"

#include <chrono>
#include <cmath>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/weights.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/tensor_batch.h"
#include "eval/fid.h"
#include "models/evaluator.h"
#include "stages/corpus.h"
#include "stages/sample.h"
#include "stages/settings.h"
#include "train/trainer.h"
#include "world/sampler.h"

namespace recap::stages {

namespace {

constexpr const char* kOptionsKey = "autoencoder_options";
constexpr int64_t kEncodeBatch = 64;
constexpr int64_t kSheetColumns = 8;

uint64_t ae_init_seed(uint64_t seed) { return derive_seed(seed, 0xAE00'0000); }
uint64_t ae_loader_seed(uint64_t seed) { return derive_seed(seed, 0xAE00'0001); }
uint64_t ae_check_stream(uint64_t seed) { return derive_seed(seed, 0xAE00'0002); }

class AutoencoderTask : public train::Task {
 public:
  // `perceptual`: the frozen feature network of the perceptual term (null: L1 only).
  AutoencoderTask(models::Autoencoder model, data::LoaderOptions loader,
                  nn::ConvBackbone perceptual, double perceptual_weight)
      : model_(std::move(model)), loader_options_(std::move(loader)),
        loader_(std::make_unique<data::Loader>(loader_options_)),
        perceptual_(std::move(perceptual)), perceptual_weight_(perceptual_weight) {}

  torch::nn::Module& module() override { return *model_; }

  torch::Tensor loss(train::Metrics& metrics) override {
    std::vector<data::DecodedSample> batch;
    if (!loader_->next_batch(batch))
      throw std::logic_error("autoencoder: the endless loader ended");
    const auto device = model_->parameters().front().device();
    const auto images = data::to_tensor_batch(batch).images.to(device);
    const auto rebuilt = model_->forward(images);
    // L1 keeps edges sharp where L2 would blur them into the background.
    auto loss = (rebuilt - images).abs().mean();
    metrics["batch"] = static_cast<double>(images.size(0));
    if (!perceptual_) return loss;
    metrics["l1"] = loss.item<double>();
    torch::Tensor target;
    {
      torch::NoGradGuard no_grad;
      target = perceptual_->forward(images);  // [B, D, S / stride, S / stride]
    }
    const auto perceptual = (perceptual_->forward(rebuilt) - target).pow(2).mean() /
                            target.pow(2).mean().clamp_min(1e-8);
    metrics["perceptual"] = perceptual.item<double>();
    return loss + perceptual_weight_ * perceptual;
  }

  nlohmann::json cursor() const override { return {{"loader", loader_->cursor().to_json()}}; }
  void restore(const nlohmann::json& c) override {
    loader_.reset();  // its threads stop before the new one starts reading
    loader_ = std::make_unique<data::Loader>(loader_options_, nullptr,
                                             data::Cursor::from_json(c.at("loader")));
  }

 private:
  models::Autoencoder model_;
  data::LoaderOptions loader_options_;
  std::unique_ptr<data::Loader> loader_;
  nn::ConvBackbone perceptual_;
  double perceptual_weight_;
};

// Standardises `model`'s latents: per-channel mean and standard deviation of the raw latents
// of `n` web images, and the largest |standardised value| among them.
void standardise_latents(models::Autoencoder& model, const fs::path& corpus_dir,
                         const Config& config, int workers, int64_t n) {
  model->set_latent_stats({}, {}, 0);
  const auto latents = encode_corpus(model, corpus_dir, config, workers, n);
  std::vector<torch::Tensor> all;
  for (const auto& [key, z] : latents) all.push_back(z);
  const auto z = torch::stack(all).to(torch::kDouble);    // [N, C, h, w]
  const auto per_channel = z.transpose(0, 1).flatten(1);  // [C, N*h*w]
  const auto mean = per_channel.mean(1), std = per_channel.std(1).clamp_min(1e-6);
  const double bound =
      ((per_channel - mean.unsqueeze(1)) / std.unsqueeze(1)).abs().max().item<double>();
  std::vector<double> shift, scale;
  for (int64_t c = 0; c < mean.size(0); ++c) {
    shift.push_back(mean[c].item<double>());
    scale.push_back(std[c].item<double>());
  }
  model->set_latent_stats(shift, scale, bound);
}

nlohmann::json accuracy_brief(const EvaluatorAccuracy& a) {
  return {{"count_exact", a.count_exact}, {"shape", a.shape}, {"colour", a.colour},
          {"precision", a.precision},     {"recall", a.recall}, {"images", a.images},
          {"passes_gate", a.passes_gate()}};
}

}  // namespace

AutoencoderTrainOptions autoencoder_settings(const Config& c) {
  AutoencoderTrainOptions o;
  o.model.channels = c.get_int("autoencoder.channels");
  o.model.channel_mult = c.get_ints("autoencoder.channel_mult");
  o.model.res_blocks = c.get_int("autoencoder.res_blocks");
  o.model.latent_channels = c.get_int("autoencoder.latent_channels");
  o.model.groups = c.get_int("autoencoder.groups");
  o.steps = c.get_int("autoencoder.steps");
  o.batch_size = c.get_int("autoencoder.batch_size");
  o.lr = c.get_float("autoencoder.lr");
  o.warmup_steps = std::min(c.get_int("autoencoder.warmup_steps"), o.steps);
  o.stats_images = c.get_int("autoencoder.stats_images");
  o.heldout_scenes = static_cast<int>(c.get_int("autoencoder.heldout_scenes"));
  o.checkpoint_every = c.get_int("checkpoint.every");
  o.keep_last = static_cast<int>(c.get_int("checkpoint.keep_last"));
  o.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  o.evaluator = c.get_string("autoencoder.evaluator");
  o.perceptual_weight = c.get_float("autoencoder.perceptual_weight");
  o.perceptual_encoder = c.get_string("autoencoder.perceptual_encoder");
  return o;
}

nlohmann::json to_json(const ReconstructionCheck& check) {
  return {{"renders", accuracy_brief(check.renders)},
          {"reconstructions", accuracy_brief(check.reconstructions)},
          {"fid", check.fid},
          {"fid_floor", check.fid_floor},
          {"l1", check.l1},
          {"passes", check.passes()}};
}

std::map<std::string, torch::Tensor> encode_corpus(models::Autoencoder& model,
                                                   const fs::path& corpus_dir,
                                                   const Config& config, int workers,
                                                   int64_t limit) {
  torch::NoGradGuard no_grad;
  auto lo = corpus::split_loader(corpus_dir, corpus::Split::Web, config, workers, kEncodeBatch);
  lo.shuffle_buffer = 0;  // shard order: the batches, and so the latents' bits, never vary
  lo.shuffle_sources = false;
  data::Loader loader(lo);
  const auto device = model->parameters().front().device();
  std::map<std::string, torch::Tensor> out;
  std::vector<data::DecodedSample> batch;
  while ((limit < 0 || static_cast<int64_t>(out.size()) < limit) && loader.next_batch(batch)) {
    const auto tensors = data::to_tensor_batch(batch);
    const auto z = model->encode(tensors.images.to(device)).cpu();
    for (size_t i = 0; i < tensors.keys.size(); ++i)
      if (!out.emplace(tensors.keys[i], z[static_cast<int64_t>(i)].clone()).second)
        throw Error(fmt::format("{}: the key {} occurs twice in the web split",
                                corpus_dir.string(), tensors.keys[i]));
  }
  return out;
}

ReconstructionCheck check_reconstructions(models::Autoencoder& autoencoder,
                                          const fs::path& evaluator_dir,
                                          const world::WorldConfig& world, int n_scenes,
                                          uint64_t seed) {
  torch::NoGradGuard no_grad;
  models::DetectionDecodeOptions decode;
  auto detector = load_detector(evaluator_dir, &world, &decode);
  const auto device = autoencoder->parameters().front().device();
  // What a saved sample goes through: the round trip, then 8-bit rounding.
  const auto round_trip = [&](const torch::Tensor& images) {
    return autoencoder->forward(images.to(device))
        .clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1);
  };
  // One pass over the held-out scenes: the detector on the renders and on their
  // reconstructions, and FID features of both and of fresh renders from another stream.
  ReconstructionCheck check;
  std::vector<world::Scene> all;
  std::vector<std::vector<eval::Detection>> on_renders, on_rebuilt;
  std::vector<torch::Tensor> real, rebuilt, fresh;
  double l1 = 0;
  const uint64_t floor_seed = derive_seed(seed, 0xF100'0000);
  for (int start = 0; start < n_scenes; start += kEncodeBatch) {
    const int n = std::min<int>(kEncodeBatch, n_scenes - start);
    std::vector<world::Scene> scenes, others;
    for (int i = start; i < start + n; ++i) {
      scenes.push_back(world::sample_scene(world, derive_seed(seed, i)));
      others.push_back(world::sample_scene(world, derive_seed(floor_seed, i)));
    }
    const auto images = models::render_batch(scenes, world).to(device);
    const auto recon = round_trip(images);
    if (start == 0) {
      // Eyes, not only the evaluator: the first kSheetColumns renders over their
      // reconstructions.
      const int64_t k = std::min<int64_t>(kSheetColumns, n);
      check.sheet = torch::cat({images.narrow(0, 0, k), recon.narrow(0, 0, k)}).cpu();
    }
    l1 += (recon - images).abs().mean().item<double>() * n;
    for (auto& d : models::detect(detector, images, world, decode)) on_renders.push_back(d);
    for (auto& d : models::detect(detector, recon, world, decode)) on_rebuilt.push_back(d);
    all.insert(all.end(), scenes.begin(), scenes.end());
    real.push_back(detector->features(images));
    rebuilt.push_back(detector->features(recon));
    fresh.push_back(detector->features(models::render_batch(others, world).to(device)));
  }
  check.renders = score_detections(all, on_renders, world);
  check.reconstructions = score_detections(all, on_rebuilt, world);
  const auto reference = torch::cat(real);
  check.fid = eval::fid(torch::cat(rebuilt), reference);
  check.fid_floor = eval::fid(torch::cat(fresh), reference);
  check.l1 = l1 / n_scenes;
  return check;
}

AutoencoderTrainResult train_autoencoder(const fs::path& corpus_dir, const fs::path& out_dir,
                                         const Config& config, int threads) {
  auto options = autoencoder_settings(config);
  if (options.batch_size < 1 || options.stats_images < 1 || options.heldout_scenes < 1)
    throw Error(fmt::format("autoencoder: batch_size ({}), stats_images ({}) and "
                            "heldout_scenes ({}) must be positive", options.batch_size,
                            options.stats_images, options.heldout_scenes));
  auto lo = corpus::split_loader(corpus_dir, corpus::Split::Web, config, threads,
                                 options.batch_size);
  lo.seed = ae_loader_seed(options.seed);
  lo.epochs = 0;
  const int64_t canvas = lo.image_size;
  if (canvas % options.model.downsample() != 0)
    throw Error(fmt::format("autoencoder: the canvas ({} px) is not a multiple of the "
                            "downsampling factor {} (autoencoder.channel_mult has {} levels)",
                            canvas, options.model.downsample(), options.model.channel_mult.size()));

  nn::ConvBackbone perceptual{nullptr};
  if (options.perceptual_weight > 0 && !options.perceptual_encoder.empty()) {
    perceptual = load_detector(options.perceptual_encoder)->backbone;
    perceptual->eval();
    // Frozen, but gradients still flow through it to the reconstruction.
    for (auto& p : perceptual->parameters()) p.set_requires_grad(false);
  }
  torch::manual_seed(ae_init_seed(options.seed));
  models::Autoencoder model(options.model);
  fs::create_directories(out_dir);
  AutoencoderTask task(model, lo, perceptual, options.perceptual_weight);
  train::TrainerOptions t;
  t.dir = out_dir / "train";
  t.steps = options.steps;
  t.lr = options.lr;
  t.warmup_steps = options.warmup_steps;
  t.checkpoint_every = options.checkpoint_every;
  t.keep_last = options.keep_last;
  t.log_every = std::clamp<int64_t>(options.steps / 50, 1, 50);
  spdlog::info("autoencoder: {} steps of {} on {} web shard(s), {}x{} px -> {} x {}x{}",
               t.steps, options.batch_size, lo.sources.size(), canvas, canvas,
               options.model.latent_channels, canvas / options.model.downsample(),
               canvas / options.model.downsample());
  const auto t0 = std::chrono::steady_clock::now();
  const auto trained = train::train(task, t);
  const double train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  model->eval();

  standardise_latents(model, corpus_dir, config, threads, options.stats_images);
  AutoencoderTrainResult result;
  result.start_step = trained.start_step;
  result.steps = trained.steps;
  result.last_loss = trained.last_loss;
  const auto corpus = corpus::corpus_config(corpus_dir);
  if (!options.evaluator.empty()) {
    result.check = check_reconstructions(model, options.evaluator, world_settings(corpus),
                                         options.heldout_scenes, ae_check_stream(options.seed));
    const auto& r = result.check->reconstructions;
    spdlog::info("autoencoder: the evaluator on {} reconstructed held-out renders: count exact "
                 "{:.2f}%, shape {:.2f}%, colour {:.2f}% (renders: {:.2f} / {:.2f} / {:.2f}); "
                 "FID {:.3f} (floor {:.3f}); L1 {:.4f}{}",
                 r.images, 100 * r.count_exact, 100 * r.shape, 100 * r.colour,
                 100 * result.check->renders.count_exact, 100 * result.check->renders.shape,
                 100 * result.check->renders.colour, result.check->fid,
                 result.check->fid_floor, result.check->l1,
                 result.check->passes() ? "" : " - BELOW the 98% gate");
  }
  result.weights = out_dir / "autoencoder.safetensors";
  save_module(result.weights, *model,
              {{kOptionsKey, nlohmann::json(model->options()).dump()},
               {"canvas", std::to_string(canvas)},
               {"steps", std::to_string(result.steps)}});
  const nlohmann::json report = {
      {"options", model->options()}, {"canvas", canvas},
      {"steps", result.steps},       {"batch_size", options.batch_size},
      {"lr", options.lr},            {"train_seconds", train_seconds},
      {"perceptual_weight", perceptual ? options.perceptual_weight : 0.0},
      {"perceptual_encoder", perceptual ? options.perceptual_encoder.string() : ""},
      {"last_loss", result.last_loss},
      {"check", result.check ? to_json(*result.check) : nlohmann::json(nullptr)}};
  write_file_atomic(out_dir / "autoencoder.json", report.dump(2) + "\n");
  if (result.check)
    write_file_atomic(out_dir / "reconstructions.png",
                      data::encode_png(grid_image(result.check->sheet,
                                                  result.check->sheet.size(0) / 2, kGridUpscale)));
  return result;
}

fs::path autoencoder_weights_path(const fs::path& dir_or_file) {
  return dir_or_file.extension() == ".safetensors" ? dir_or_file
                                                   : dir_or_file / "autoencoder.safetensors";
}

models::Autoencoder load_autoencoder(const fs::path& dir_or_file) {
  const fs::path file = autoencoder_weights_path(dir_or_file);
  if (!fs::exists(file))
    throw Error(fmt::format("{}: no autoencoder here (run `recap autoencoder train`)",
                            file.string()));
  const auto options = options_from_metadata<models::AutoencoderOptions>(
      Safetensors::load(file).metadata(), file, kOptionsKey, "autoencoder");
  return load_model<models::Autoencoder>(file, options);
}

}  // namespace recap::stages
