#include "core/torch_pch.h"
#include "stages/t2i_train.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/weights.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/tensor_batch.h"
#include "diffusion/guidance.h"
#include "diffusion/loss.h"
#include "stages/autoencoder_train.h"
#include "stages/corpus.h"
#include "stages/evaluate.h"
#include "stages/evaluator_train.h"
#include "stages/model_settings.h"
#include "stages/sample.h"
#include "stages/settings.h"
#include "train/trainer.h"

namespace recap::stages {

namespace {

constexpr int64_t kGridColumns = 8;   // prompts per suite in the validation grid
constexpr int kCurriculumDraws = 1000;  // loader batches one curriculum batch may take
constexpr const char* kGridSuites[] = {"counting", "position"};

// Independent streams derived from the run seed.
uint64_t init_seed(uint64_t seed) { return derive_seed(seed, 0x7215'0000); }
uint64_t loader_seed(uint64_t seed) { return derive_seed(seed, 0x7215'0001); }
uint64_t noise_stream(uint64_t seed) { return derive_seed(seed, 0x7215'0002); }
uint64_t mix_stream(uint64_t seed) { return derive_seed(seed, 0x7215'0003); }
uint64_t grid_stream(uint64_t seed) { return derive_seed(seed, 0x7215'0004); }
uint64_t probe_stream(uint64_t seed) { return derive_seed(seed, 0x7215'0005); }

// One seed per image, image i drawing derive_seed(stream, i): fixed across validations.
std::vector<uint64_t> image_seeds(uint64_t stream, size_t n) {
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < n; ++i) seeds.push_back(derive_seed(stream, i));
  return seeds;
}

// What the competence probe samples and how it judges.
struct Probe {
  PromptScorer scorer;
  std::vector<std::string> prompts;  // probe_images of them: the dev prompts, cycled
  std::vector<world::Facts> targets;
  eval::MetricOptions metrics;
  fs::path out_dir;
};

std::optional<Probe> make_probe(const fs::path& corpus_dir, const fs::path& out_dir,
                                const T2iTrainOptions& options, const Config& config) {
  if (options.probe_evaluator.empty()) return std::nullopt;
  const auto file = corpus::dev_prompts_path(corpus_dir, "multi_object");
  const auto dev = read_prompts(file);
  if (dev.empty()) throw Error(fmt::format("{}: no prompts for the competence probe", file.string()));
  Probe probe{PromptScorer(options.probe_evaluator, corpus_dir), {}, {}, {}, out_dir};
  for (int64_t i = 0; i < options.probe_images; ++i) {
    const auto& request = dev[static_cast<size_t>(i) % dev.size()];
    if (!request.target) throw Error(fmt::format("{}: a prompt without a target", file.string()));
    probe.prompts.push_back(request.text);
    probe.targets.push_back(*request.target);
  }
  probe.metrics = evaluate_settings(config).metrics;
  probe.metrics.bootstrap_samples = 0;  // a progress signal; the final tables carry intervals
  return probe;
}

// The first kGridColumns dev prompts of each grid suite present in the corpus: what a person
// watching the run judges by eye is part of tuning, so never the test prompts.
std::vector<std::string> grid_prompts(const fs::path& corpus_dir) {
  std::vector<std::string> prompts;
  for (const char* suite : kGridSuites) {
    const auto path = corpus::dev_prompts_path(corpus_dir, suite);
    if (!fs::exists(path)) {
      spdlog::warn("t2i: {} is missing; the validation grid goes without it", path.string());
      continue;
    }
    const auto lines = read_jsonl(path);
    for (size_t i = 0; i < lines.size() && i < static_cast<size_t>(kGridColumns); ++i)
      prompts.push_back(lines[i].at("text").get<std::string>());
  }
  return prompts;
}

class T2iTask : public train::Task {
 public:
  // `latents`: latent space, every web image's latent by key; empty: pixel space, or latent
  // space encoding each batch as it is drawn.
  // `repa_encoder`: REPA's frozen target encoder (null: no REPA).
  T2iTask(T2iModel model, const text::Tokenizer& tokenizer, const T2iTrainOptions& options,
          data::LoaderOptions loader, CaptionMix mix, std::vector<std::string> prompts,
          fs::path grid_dir, std::optional<Probe> probe,
          std::map<std::string, torch::Tensor> latents, nn::ConvBackbone repa_encoder)
      : model_(std::move(model)), tokenizer_(tokenizer), options_(options),
        batches_(std::move(loader), ArmCaptions("t2i", std::move(mix)), mix_stream(options.seed)),
        prompts_(std::move(prompts)), grid_dir_(std::move(grid_dir)), probe_(std::move(probe)),
        latents_(std::move(latents)), repa_encoder_(std::move(repa_encoder)),
        schedule_(noise_schedule(options.sample)) {}

  torch::nn::Module& module() override { return *model_; }
  const CaptionCounts& counts() const { return batches_.counts(); }

  torch::Tensor loss(train::Metrics& metrics) override {
    const uint64_t call = batches_.draws();  // this batch's first draw: seeds its noise
    const auto batch = next_batch();
    ++steps_;
    const auto b = static_cast<int64_t>(batch.captions.size());
    auto gen = at::detail::createCPUGenerator(derive_seed(noise_stream(options_.seed), call));
    const auto device = model_->parameters().front().device();
    auto ids = prompt_ids(tokenizer_, batch.captions, options_.model.text.max_length);
    auto drop = diffusion::condition_dropout_mask(b, options_.cfg_dropout, gen);
    ids = diffusion::drop_conditions(ids, unconditional_ids(ids.size(1)), drop).to(device);
    // What is diffused: the images, or in latent space their latents.
    auto x0 = (batch.latents.defined() ? batch.latents : batch.images).to(device);
    auto t = diffusion::sample_timesteps(b, schedule_, gen, device, options_.timestep_density);
    auto eps = diffusion::training_noise(x0, gen, options_.noise_offset);
    models::FeatureTap tap{options_.repa_level, {}};
    auto out = model_->forward(schedule_.add_noise(x0, eps, t), t, ids,
                               repa_encoder_ ? &tap : nullptr);
    const auto& counts = batches_.counts();
    metrics["captions_used"] = static_cast<double>(counts.used);
    metrics["captions_fell_back"] = static_cast<double>(counts.fell_back);
    metrics["captions_skipped"] = static_cast<double>(counts.skipped);
    metrics["batch"] = static_cast<double>(b);
    if (options_.curriculum_steps > 0)
      metrics["scene_groups_max"] = static_cast<double>(batch.max_groups);
    auto loss = diffusion::diffusion_loss(schedule_, out, x0, eps, t,
                                          {options_.sample.prediction, options_.min_snr_gamma});
    if (!repa_encoder_) return loss;
    metrics["diffusion_loss"] = loss.item<double>();
    const auto alignment = repa_alignment(batch.images.to(device), tap.features);
    metrics["repa_alignment"] = alignment.item<double>();
    return loss - options_.repa_weight * alignment;
  }

  nlohmann::json cursor() const override {
    nlohmann::json c = {{"steps", steps_}};
    batches_.save(c);
    return c;
  }
  void restore(const nlohmann::json& c) override {
    batches_.restore(c);
    // Checkpoints from before the curriculum drew one batch per step.
    steps_ = c.value("steps", c.at("batches").get<uint64_t>());
  }

  void validate(int64_t step, train::Metrics& metrics) override {
    if (!prompts_.empty()) {
      const auto t0 = std::chrono::steady_clock::now();
      auto images = sample_images(model_, tokenizer_, prompts_,
                                  image_seeds(grid_stream(options_.seed), prompts_.size()),
                                  options_.sample);
      write_file_atomic(grid_dir_ / fmt::format("step-{:06d}.png", step),
                        data::encode_png(grid_image(images, kGridColumns, kGridUpscale)));
      metrics["grid_seconds"] = seconds_since(t0);
    }
    if (probe_) run_probe(step, metrics);
  }

 private:
  // Samples the probe's prompts (fixed seeds), scores them and records the result in
  // `metrics` (probe_*) and probe.json.
  void run_probe(int64_t step, train::Metrics& metrics) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto images = sample_images(
        model_, tokenizer_, probe_->prompts,
        image_seeds(probe_stream(options_.seed), probe_->prompts.size()), options_.sample);
    const auto scored = probe_->scorer.score(images, probe_->targets, probe_->metrics);
    const bool is_competent = competent(scored);
    auto value = [](const eval::Stat& stat) { return stat.value.value_or(0.0); };
    metrics["probe_soa_c"] = value(scored.soa_c);
    metrics["probe_colour_binding"] = value(scored.colour_binding);
    metrics["probe_count_exact"] = value(scored.count_exact);
    metrics["probe_competent"] = is_competent ? 1 : 0;
    metrics["probe_seconds"] = seconds_since(t0);
    const nlohmann::json record = {{"step", step},
                                   {"train_seconds", metrics.at("train_seconds")},
                                   {"images", probe_->prompts.size()},
                                   {"competent", is_competent},
                                   {"metrics", eval::to_json(scored)}};
    write_file_atomic(probe_path(probe_->out_dir), record.dump(2) + "\n");
    spdlog::info("t2i probe at step {}: SOA-C {:.1f}%, colour binding {:.1f}%{}", step,
                 100 * value(scored.soa_c), 100 * value(scored.colour_binding),
                 is_competent ? " (competent)" : "");
  }

  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // REPA's agreement: the mean cosine similarity, per position, between the projected UNet
  // features [B, C, h, w] and the frozen encoder's features of the clean images (pooled to
  // h x w when its grid is finer). Scalar in [-1, 1]; the loss subtracts it.
  torch::Tensor repa_alignment(const torch::Tensor& images, const torch::Tensor& features) {
    torch::Tensor target;
    {
      torch::NoGradGuard no_grad;
      target = repa_encoder_->forward(images);  // [B, D, S / stride, S / stride]
      if (target.size(2) != features.size(2) || target.size(3) != features.size(3))
        target = torch::adaptive_avg_pool2d(target, {features.size(2), features.size(3)});
    }
    const auto projected = model_->repa->forward(features);  // [B, D, h, w]
    return torch::cosine_similarity(projected, target, 1).mean();
  }

  struct Batch {
    torch::Tensor images;   // [B, 3, S, S] in [-1, 1]; undefined with precomputed latents
                            // and no REPA
    torch::Tensor latents;  // latent space: [B, C, S / f, S / f]; else undefined
    std::vector<std::string> captions;
    int64_t max_groups;  // the largest scene's groups, with a curriculum; else 0
  };

  // The next loader batch with this arm's captions (ArmBatches: skipped samples leave it),
  // as pixels, latents or both. During the curriculum, loader batches are drawn until
  // batch_size samples of small enough scenes are found; the others are passed over.
  Batch next_batch() {
    auto [kept, captions] = batches_.next();
    if (static_cast<int64_t>(steps_) < options_.curriculum_steps) {
      std::vector<data::DecodedSample> small;
      std::vector<std::string> small_captions;
      for (int draws = 1;; ++draws) {
        for (size_t i = 0; i < kept.size(); ++i) {
          if (static_cast<int64_t>(small.size()) == options_.batch_size) break;
          if (scene_groups(kept[i]) > options_.curriculum_max_groups) continue;
          small.push_back(std::move(kept[i]));
          small_captions.push_back(std::move(captions[i]));
        }
        if (static_cast<int64_t>(small.size()) == options_.batch_size) break;
        if (draws == kCurriculumDraws)
          throw Error(fmt::format("t2i: {} loader batches hold only {} scenes of at most {} "
                                  "groups (t2i.curriculum_max_groups); the corpus has too few",
                                  draws, small.size(), options_.curriculum_max_groups));
        auto more = batches_.next();
        kept = std::move(more.samples);
        captions = std::move(more.captions);
      }
      kept = std::move(small);
      captions = std::move(small_captions);
    }
    Batch out{{}, {}, std::move(captions), 0};
    if (options_.curriculum_steps > 0)
      for (const auto& sample : kept)
        out.max_groups = std::max(out.max_groups, scene_groups(sample));
    // Latent space needs the pixels only as REPA's target, or to encode them here when its
    // latents were not encoded before training.
    const bool latent = options_.model.autoencoder.has_value();
    if (!latent || latents_.empty() || repa_encoder_)
      out.images = data::to_tensor_batch(kept).images;
    if (!latent) return out;
    if (latents_.empty()) {
      torch::NoGradGuard no_grad;
      out.latents = model_->autoencoder->encode(
          out.images.to(model_->parameters().front().device()));
      return out;
    }
    std::vector<torch::Tensor> z;
    for (const auto& sample : kept) {
      auto it = latents_.find(sample.key);
      if (it == latents_.end())
        throw Error(fmt::format("t2i: {} in {} was not encoded before training", sample.key,
                                sample.shard));
      z.push_back(it->second);
    }
    out.latents = torch::stack(z);
    return out;
  }

  T2iModel model_;
  const text::Tokenizer& tokenizer_;
  T2iTrainOptions options_;
  ArmBatches batches_;
  std::vector<std::string> prompts_;
  fs::path grid_dir_;
  std::optional<Probe> probe_;
  std::map<std::string, torch::Tensor> latents_;
  nn::ConvBackbone repa_encoder_;
  diffusion::NoiseSchedule schedule_;
  uint64_t steps_ = 0;  // loss() calls so far: whether the curriculum still holds
};

}  // namespace

T2iTrainOptions t2i_train_options(const Config& c, int64_t vocab_size, int64_t canvas) {
  T2iTrainOptions o;
  o.model = {text_encoder_settings(c, vocab_size), unet_settings(c), std::nullopt};
  o.sample.prediction = diffusion::parse_prediction(c.get_string("t2i.prediction"));
  o.sample.schedule = diffusion::parse_beta_schedule(c.get_string("t2i.schedule"));
  o.sample.timesteps = c.get_int("t2i.timesteps");
  o.sample.log_snr_shift = c.get_float("t2i.log_snr_shift");
  o.sample.image_size = canvas;
  o.sample.sampler = diffusion::parse_sampler(c.get_string("t2i.sample_sampler"));
  o.sample.steps = static_cast<int>(c.get_int("t2i.sample_steps"));
  o.sample.guidance_scale = c.get_float("t2i.guidance_scale");
  o.steps = c.get_int("t2i.steps");
  o.batch_size = c.get_int("t2i.batch_size");
  o.lr = c.get_float("t2i.lr");
  o.warmup_steps = std::min(c.get_int("t2i.warmup_steps"), o.steps);
  o.ema_decay = c.get_float("t2i.ema_decay");
  o.grad_clip = c.get_float("t2i.grad_clip");
  o.beta1 = c.get_float("t2i.beta1");
  o.beta2 = c.get_float("t2i.beta2");
  o.weight_decay = c.get_float("t2i.weight_decay");
  o.cfg_dropout = c.get_float("t2i.cfg_dropout");
  o.min_snr_gamma = c.get_float("t2i.min_snr_gamma");
  o.noise_offset = c.get_float("t2i.noise_offset");
  o.timestep_density = {c.get_float("t2i.timestep_log_snr_mean"),
                        c.get_float("t2i.timestep_log_snr_std")};
  o.captions = {parse_caption_source(c.get_string("t2i.captions")),
                c.get_string("t2i.recap_fallback") == "skip", c.get_float("t2i.mix_long")};
  o.crop = c.get_string("t2i.crop") == "random" ? data::Crop::kRandom : data::Crop::kCenter;
  o.flip = c.get_bool("t2i.flip");
  if (c.get_int("t2i.image_size") > 0) o.sample.image_size = c.get_int("t2i.image_size");
  o.validate_every = c.get_int("t2i.validate_every");
  o.checkpoint_every = c.get_int("checkpoint.every");
  o.keep_last = static_cast<int>(c.get_int("checkpoint.keep_last"));
  o.log_every = std::clamp<int64_t>(o.steps / 50, 1, 50);
  o.workers = static_cast<int>(c.get_int("t2i.workers"));
  o.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  o.init = c.get_string("t2i.init");
  o.text_encoder = c.get_string("t2i.text_encoder");
  if (!o.init.empty() && !o.text_encoder.empty())
    throw Error("t2i: set t2i.init (the whole model) or t2i.text_encoder, not both: the "
                "model t2i.init names has its own text encoder");
  o.freeze_text = c.get_bool("t2i.freeze_text");
  o.curriculum_steps = c.get_int("t2i.curriculum_steps");
  o.curriculum_max_groups = c.get_int("t2i.curriculum_max_groups");
  o.allow_partial = c.get_bool("t2i.allow_partial");
  // A path key another setting makes necessary.
  auto required = [&c](const char* key, const char* because, const char* what) {
    const fs::path path = c.get_string(key);
    if (path.empty()) throw Error(fmt::format("t2i: {} needs {} ({})", because, key, what));
    return path;
  };
  if (c.get_string("t2i.space") == "latent")
    o.autoencoder = required("t2i.autoencoder", "t2i.space = latent",
                             "a trained autoencoder: `recap autoencoder train`");
  o.repa_weight = c.get_float("t2i.repa_weight");
  o.repa_level = c.get_int("t2i.repa_level");
  if (o.repa_weight > 0)
    o.repa_encoder = required("t2i.repa_encoder", "t2i.repa_weight > 0",
                              "a detector: `recap evaluator train`, or a run's vision/ folder");
  o.probe_evaluator = c.get_string("t2i.probe_evaluator");
  o.probe_images = c.get_int("t2i.probe_images");
  return o;
}

int64_t scene_groups(const data::DecodedSample& sample) {
  const auto& meta = sample.meta;
  if (!meta.is_object() || !meta.contains("scene") || !meta["scene"].is_object() ||
      !meta["scene"].contains("groups") || !meta["scene"]["groups"].is_array())
    throw Error(fmt::format("t2i: {} in {} has no scene.groups in its metadata; the curriculum "
                            "(t2i.curriculum_steps) needs a corpus made by `recap corpus make`",
                            sample.key, sample.shard));
  return static_cast<int64_t>(meta["scene"]["groups"].size());
}

LoadReport load_text_encoder(const fs::path& path, models::TextEncoder& encoder,
                             const text::Tokenizer& tokenizer, bool allow_partial) {
  constexpr std::string_view kPrefix = "text_encoder.";
  const auto file = Safetensors::load(path);
  // A t2i file's metadata names what its tensor shapes cannot tell: the tokenizer (another
  // one of the same size would mean other tokens) and the head count.
  const auto& metadata = file.metadata();
  if (auto it = metadata.find("tokenizer_sha256"); it != metadata.end()) {
    const auto sha = sha256_hex(tokenizer.model_bytes());
    if (it->second != sha)
      throw Error(fmt::format("{}: trained with another tokenizer (sha256 {}, given {})",
                              path.string(), it->second, sha));
  }
  // A t2i model and a CLIP both keep their encoder's options under "text_encoder".
  for (const char* key : {"t2i_options", "clip_options"}) {
    auto it = metadata.find(key);
    if (it == metadata.end()) continue;
    int64_t heads = 0;
    try {
      heads = nlohmann::json::parse(it->second).at("text_encoder").at("heads").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: bad {} metadata: {}", path.string(), key, e.what()));
    }
    if (heads != encoder->options().heads)
      throw Error(fmt::format("{}: its text encoder has {} attention heads, text_encoder.heads "
                              "is {}", path.string(), heads, encoder->options().heads));
  }

  // A whole model's names match the encoder registered under "text_encoder"; its other
  // tensors (unet.*, a CLIP's image tower) are not the encoder's and are dropped from the
  // report.
  const bool whole = std::any_of(file.tensors().begin(), file.tensors().end(),
                                 [&](const TensorInfo& t) { return t.name.starts_with(kPrefix); });
  torch::nn::Module holder;
  if (whole) holder.register_module(std::string(kPrefix.substr(0, kPrefix.size() - 1)), encoder);
  auto report = load_module(path, whole ? holder : *encoder, /*allow_partial=*/true);
  auto strip = [&](std::vector<std::string>& names) {
    if (!whole) return;
    std::erase_if(names, [&](const std::string& n) { return !n.starts_with(kPrefix); });
    for (auto& n : names) n.erase(0, kPrefix.size());
  };
  strip(report.unexpected);
  strip(report.missing);
  strip(report.mismatched);
  if (!report.unexpected.empty() || !report.mismatched.empty() ||
      (!allow_partial && !report.missing.empty()))
    throw Error(fmt::format("{}: does not fit a text encoder of the [text_encoder] sizes and "
                            "{} token ids ({}){}",
                            path.string(), tokenizer.vocab_size(), report.summary(),
                            report.unexpected.empty() && report.mismatched.empty()
                                ? "; --allow-partial (t2i.allow_partial) keeps the missing "
                                  "ones at their initialisation"
                                : ""));
  return report;
}

T2iTrainResult train_t2i(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                         const std::vector<fs::path>& recap_files, const fs::path& out_dir,
                         const Config& config, int threads) {
  return train_t2i(T2iData{corpus_dir, {}, recap_files, std::nullopt}, tokenizer_model, out_dir,
                   config, threads);
}

T2iTrainResult train_t2i(const T2iData& data, const fs::path& tokenizer_model,
                         const fs::path& out_dir, const Config& config, int threads) {
  const bool on_corpus = !data.corpus.empty();
  if (on_corpus == !data.images.empty())
    throw Error("t2i: train on a corpus (--corpus) or on images (--images), one of the two");
  const int64_t corpus_canvas =
      on_corpus ? corpus::corpus_config(data.corpus).get_int("world.canvas")
                : config.get_int("world.canvas");
  const auto tokenizer = text::Tokenizer::load(tokenizer_model);
  auto options = t2i_train_options(config, tokenizer.vocab_size(), corpus_canvas);
  const int64_t canvas = options.sample.image_size;
  models::Autoencoder autoencoder{nullptr};
  if (!options.autoencoder.empty()) {
    autoencoder = load_autoencoder(options.autoencoder);
    options.model.autoencoder = autoencoder->options();
    options.model.unet.in_channels = options.model.unet.out_channels =
        autoencoder->options().latent_channels;
  }
  if (options.batch_size < 1) throw Error("t2i: batch_size must be positive");
  if (!on_corpus && !options.probe_evaluator.empty())
    throw Error("t2i: the competence probe (t2i.probe_evaluator) scores the world's dev "
                "prompts and needs --corpus");
  CaptionMix mix;
  if (data.mix) {
    if (!data.recap_files.empty())
      throw Error("t2i: --recap files go with t2i.captions; with a caption mix name them as "
                  "--caption-source NAME=FILE");
    mix = *data.mix;
  } else {
    if (needs_recaptions(options.captions.source) && data.recap_files.empty())
      throw Error(fmt::format("t2i: captions = {} needs recaption files (NAME.recap.jsonl)",
                              caption_source_name(options.captions.source)));
    mix = arm_mix(options.captions, needs_recaptions(options.captions.source)
                                        ? load_recaptions(data.recap_files)
                                        : Recaptions{});
  }
  const std::string captions_label =
      data.mix ? mix.describe() : std::string(caption_source_name(options.captions.source));

  const int workers = options.workers > 0 ? options.workers : threads;
  data::LoaderOptions lo;
  if (on_corpus) {
    lo = corpus::split_loader(data.corpus, corpus::Split::Web, config, workers,
                              options.batch_size);
  } else {
    lo.sources = data::expand_sources(data.images);
    lo.workers = std::max(1, workers);
    lo.batch_size = static_cast<size_t>(options.batch_size);
    lo.read = read_limits(config);
    lo.decode = decode_limits(config);
    lo.strict = config.get_bool("data.strict");
  }
  lo.image_size = static_cast<int>(canvas);
  lo.crop = options.crop;
  lo.flip = options.flip;
  lo.seed = loader_seed(options.seed);
  lo.epochs = 0;

  // The initial weights come from torch's global generator; seeding it makes them a function
  // of the run seed.
  nn::ConvBackbone repa_encoder{nullptr};
  if (!options.repa_encoder.empty()) {
    // The backbone only: its features, not its detections, are the target.
    repa_encoder = load_detector(options.repa_encoder)->backbone;
    repa_encoder->eval();
    for (auto& p : repa_encoder->parameters()) p.set_requires_grad(false);
    options.model.repa = RepaOptions{options.repa_level, repa_encoder->options().width, 128};
  }
  torch::manual_seed(init_seed(options.seed));
  T2iModel model(options.model);
  std::map<std::string, torch::Tensor> latents;
  // Encoded once when the latents of the corpus's own images are what every step draws.
  const bool encode_before = on_corpus && canvas == corpus_canvas &&
                             options.crop == data::Crop::kCenter && !options.flip;
  if (autoencoder) {
    model->diffused_shape(canvas);  // throws for a canvas the autoencoder cannot divide
    load_module(autoencoder_weights_path(options.autoencoder), *model->autoencoder);
  }
  if (autoencoder && encode_before) {
    const auto t0 = std::chrono::steady_clock::now();
    latents = encode_corpus(model->autoencoder, data.corpus, config, lo.workers);
    spdlog::info("t2i: latent space: {} web images encoded to {} x {}x{} in {:.1f} s",
                 latents.size(), autoencoder->options().latent_channels,
                 canvas / autoencoder->options().downsample(),
                 canvas / autoencoder->options().downsample(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  train::TrainerOptions t;
  t.dir = out_dir / "train";
  const bool resuming = Checkpointer(t.dir / "checkpoints", options.keep_last).latest().has_value();
  // Hashed before training, for the weights' metadata: a file changed meanwhile cannot matter.
  auto start_file_sha256 = [](const fs::path& path, const char* key) -> std::string {
    if (path.empty()) return "";
    if (!fs::is_regular_file(path))
      throw Error(fmt::format("{}: no such file ({})", path.string(), key));
    return sha256_file(path);
  };
  const std::string init_sha256 = start_file_sha256(options.init, "t2i.init");
  const std::string text_encoder_sha256 =
      start_file_sha256(options.text_encoder, "t2i.text_encoder");
  if (!options.init.empty() && !resuming) {
    init_t2i_from(options.init, model, options.sample, tokenizer);
    spdlog::info("t2i: starting from {}", options.init.string());
  }
  if (!options.text_encoder.empty() && !resuming) {
    const auto report =
        load_text_encoder(options.text_encoder, model->text_encoder, tokenizer,
                          options.allow_partial);
    spdlog::info("t2i: text encoder from {} ({} tensors)", options.text_encoder.string(),
                 report.loaded);
    if (!report.missing.empty())
      spdlog::warn("t2i: {} lacks {} text encoder tensor(s), left at their initialisation: {}",
                   options.text_encoder.string(), report.missing.size(),
                   fmt::join(report.missing, ", "));
  }
  // No gradient, so AdamW skips them: no update and no weight decay.
  if (options.freeze_text)
    for (auto& p : model->text_encoder->parameters()) p.set_requires_grad(false);
  fs::create_directories(out_dir);
  T2iTask task(model, tokenizer, options, lo, std::move(mix),
               on_corpus ? grid_prompts(data.corpus) : std::vector<std::string>{},
               out_dir / "grids", make_probe(data.corpus, out_dir, options, config),
               std::move(latents), repa_encoder);

  t.steps = options.steps;
  t.lr = options.lr;
  t.warmup_steps = options.warmup_steps;
  t.grad_clip = options.grad_clip;
  t.beta1 = options.beta1;
  t.beta2 = options.beta2;
  t.weight_decay = options.weight_decay;
  t.ema_decay = options.ema_decay;
  t.checkpoint_every = options.checkpoint_every;
  t.keep_last = options.keep_last;
  t.log_every = options.log_every;
  t.validate_every = options.validate_every;
  spdlog::info("t2i ({} captions): {} steps of {} on {} source(s)", captions_label, t.steps,
               options.batch_size, lo.sources.size());
  const auto t0 = std::chrono::steady_clock::now();
  const auto trained = train::train(task, t);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  T2iTrainResult result;
  result.start_step = trained.start_step;
  result.steps = trained.steps;
  result.last_loss = trained.last_loss;
  result.captions = task.counts();
  result.seconds_per_step =
      trained.steps > trained.start_step ? seconds / (trained.steps - trained.start_step) : 0;
  result.weights = out_dir / "t2i.safetensors";
  const auto& n = result.captions;
  save_t2i(result.weights, model, options.sample, tokenizer,
           {{"captions", captions_label},
            {"recap_fallback", options.captions.recap_skip ? "skip" : "alt"},
            {"caption_counts", nlohmann::json{{"used", n.used},
                                              {"fell_back", n.fell_back},
                                              {"skipped", n.skipped},
                                              {"by_source", n.by_source}}.dump()},
            {"steps", std::to_string(result.steps)},
            {"ema", options.ema_decay > 0 ? "true" : "false"},
            {"init_from", options.init.string()},
            {"init_sha256", init_sha256},
            {"text_encoder_from", options.text_encoder.string()},
            {"text_encoder_sha256", text_encoder_sha256},
            {"text_encoder_frozen", options.freeze_text ? "true" : "false"},
            {"autoencoder_from", options.autoencoder.string()},
            {"repa_encoder", options.repa_encoder.string()},
            {"repa_weight", fmt::format("{}", options.repa_weight)}});
  spdlog::info("t2i: {} steps, last loss {:.4f}, captions {}", result.steps, result.last_loss,
               n.summary());
  return result;
}

void export_t2i_checkpoint(const fs::path& final_model, const fs::path& checkpoint,
                           const text::Tokenizer& tokenizer, const fs::path& out) {
  auto loaded = load_t2i(final_model, tokenizer);
  const fs::path ema = checkpoint / "ema.safetensors";
  const bool has_ema = fs::exists(ema);
  load_module(has_ema ? ema : checkpoint / "model.safetensors", *loaded.model);
  auto metadata = loaded.metadata;
  metadata["steps"] = std::to_string(Checkpointer::step_of(checkpoint));
  metadata["ema"] = has_ema ? "true" : "false";
  save_t2i(out, loaded.model, loaded.sample, tokenizer, metadata);
}

}  // namespace recap::stages
