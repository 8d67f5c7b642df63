#include "core/torch_pch.h"
#include "stages/clip_train.h"

#include <chrono>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/weights.h"
#include "data/loader.h"
#include "data/tensor_batch.h"
#include "stages/corpus.h"
#include "stages/model_settings.h"
#include "stages/settings.h"
#include "stages/t2i_model.h"
#include "train/trainer.h"
#include "models/evaluator.h"
#include "world/captions.h"
#include "world/sampler.h"

namespace recap::stages {

namespace {

constexpr const char* kClipOptionsKey = "clip_options";
constexpr int64_t kClipEncodeBatch = 100;

uint64_t clip_init_seed(uint64_t seed) { return derive_seed(seed, 0xC11F'0000); }
uint64_t clip_loader_seed(uint64_t seed) { return derive_seed(seed, 0xC11F'0001); }
uint64_t clip_mix_stream(uint64_t seed) { return derive_seed(seed, 0xC11F'0002); }
uint64_t clip_render_stream(uint64_t seed) { return derive_seed(seed, 0xC11F'0003); }

// The held-out pairs of the check, read once: images [n, 3, S, S] and both exact captions.
struct ClipHeldOut {
  torch::Tensor images;
  std::vector<std::string> short_captions, long_captions;
};

ClipHeldOut read_heldout(const fs::path& corpus_dir, const Config& config, int64_t n, int workers) {
  auto lo = corpus::split_loader(corpus_dir, corpus::Split::Eval, config, workers, kClipEncodeBatch);
  lo.shuffle_buffer = 0;  // shard order: the same scenes on every call
  lo.shuffle_sources = false;
  lo.epochs = 1;
  data::Loader loader(lo);
  std::vector<data::DecodedSample> batch, kept;
  ClipHeldOut out;
  while (static_cast<int64_t>(kept.size()) < n && loader.next_batch(batch))
    for (auto& sample : batch) {
      if (static_cast<int64_t>(kept.size()) == n) break;
      const auto& captions = sample.meta.contains("captions") ? sample.meta["captions"]
                                                               : nlohmann::json::object();
      for (const char* field : {"human_short", "human_long"})
        if (!captions.contains(field) || !captions[field].is_string())
          throw Error(fmt::format("clip check: {} in {} has no captions.{} in its metadata",
                                  sample.key, sample.shard, field));
      out.short_captions.push_back(captions["human_short"].get<std::string>());
      out.long_captions.push_back(captions["human_long"].get<std::string>());
      kept.push_back(std::move(sample));
    }
  if (kept.empty())
    throw Error(fmt::format("{}: the eval split holds no scene for the CLIP check",
                            corpus_dir.string()));
  out.images = data::to_tensor_batch(kept).images;
  return out;
}

ClipCheck check_pairs(models::Clip& model, const text::Tokenizer& tokenizer,
                      const ClipHeldOut& heldout) {
  torch::NoGradGuard no_grad;
  const auto device = model->parameters().front().device();
  const int64_t n = heldout.images.size(0);
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < n; i += kClipEncodeBatch)
    images.push_back(model->encode_image(
        heldout.images.slice(0, i, std::min(n, i + kClipEncodeBatch)).to(device)));
  const auto image = torch::cat(images);
  auto texts = [&](const std::vector<std::string>& captions) {
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < n; i += kClipEncodeBatch) {
      const std::vector<std::string> part(captions.begin() + i,
                                          captions.begin() + std::min(n, i + kClipEncodeBatch));
      out.push_back(model->encode_text(
          prompt_ids(tokenizer, part, model->options().text_encoder.max_length).to(device)));
    }
    return torch::cat(out);
  };
  return {models::retrieval_accuracy(image, texts(heldout.short_captions)),
          models::retrieval_accuracy(image, texts(heldout.long_captions))};
}

// A batch of training pairs: images [B, 3, S, S] in [-1, 1] and one caption each.
struct Pairs {
  torch::Tensor images;
  std::vector<std::string> captions;
};

// Where a CLIP's training pairs come from, resumably.
class PairSource {
 public:
  virtual ~PairSource() = default;
  virtual Pairs next() = 0;
  virtual nlohmann::json cursor() const = 0;
  virtual void restore(const nlohmann::json& cursor) = 0;
  virtual const CaptionCounts& counts() const = 0;
};

// The corpus's web images, each with one arm's caption (ArmBatches).
class CorpusPairs final : public PairSource {
 public:
  explicit CorpusPairs(ArmBatches batches) : batches_(std::move(batches)) {}

  Pairs next() override {
    auto batch = batches_.next();
    return {data::to_tensor_batch(batch.samples).images, std::move(batch.captions)};
  }
  nlohmann::json cursor() const override {
    nlohmann::json c = nlohmann::json::object();
    batches_.save(c);
    return c;
  }
  void restore(const nlohmann::json& c) override { batches_.restore(c); }
  const CaptionCounts& counts() const override { return batches_.counts(); }

 private:
  ArmBatches batches_;
};

// Fresh scenes of the world from a seed stream of their own, rendered, each with its exact
// long or short caption (half each): what a judge trains on, sharing no image or caption
// with the experiment. Batch n is a function of (stream, n) alone.
class RenderPairs final : public PairSource {
 public:
  RenderPairs(world::WorldConfig world, uint64_t stream, int64_t batch_size)
      : world_(std::move(world)), stream_(stream), batch_size_(batch_size) {}

  Pairs next() override {
    const uint64_t seed = derive_seed(stream_, batches_++);
    Rng rng(derive_seed(seed, 0xCA97));
    std::vector<world::Scene> scenes;
    Pairs out;
    for (int64_t i = 0; i < batch_size_; ++i) {
      scenes.push_back(world::sample_scene(world_, derive_seed(seed, static_cast<uint64_t>(i))));
      out.captions.push_back(rng.chance(0.5) ? world::human_long_caption(scenes.back(), rng)
                                             : world::human_short_caption(scenes.back(), rng));
    }
    out.images = models::render_batch(scenes, world_);
    counts_.used += batch_size_;
    return out;
  }

  nlohmann::json cursor() const override { return {{"batches", batches_}}; }
  void restore(const nlohmann::json& c) override {
    batches_ = c.at("batches").get<uint64_t>();
    counts_.used = static_cast<int64_t>(batches_) * batch_size_;
  }
  const CaptionCounts& counts() const override { return counts_; }

 private:
  world::WorldConfig world_;
  uint64_t stream_;
  int64_t batch_size_;
  uint64_t batches_ = 0;
  CaptionCounts counts_;
};

class ClipTask : public train::Task {
 public:
  ClipTask(models::Clip model, const text::Tokenizer& tokenizer, const ClipTrainOptions& options,
           std::unique_ptr<PairSource> pairs, ClipHeldOut heldout)
      : model_(std::move(model)), tokenizer_(tokenizer), options_(options),
        pairs_(std::move(pairs)), heldout_(std::move(heldout)) {}

  torch::nn::Module& module() override { return *model_; }
  const CaptionCounts& counts() const { return pairs_->counts(); }
  const ClipCheck& last_check() const { return check_; }

  torch::Tensor loss(train::Metrics& metrics) override {
    const auto pairs = pairs_->next();
    const auto device = model_->parameters().front().device();
    const auto ids =
        prompt_ids(tokenizer_, pairs.captions, options_.model.text_encoder.max_length).to(device);
    const auto scale = model_->scale();
    metrics["batch"] = static_cast<double>(pairs.captions.size());
    metrics["scale"] = scale.item<double>();
    return models::clip_loss(model_->encode_image(pairs.images.to(device)),
                             model_->encode_text(ids), scale);
  }

  nlohmann::json cursor() const override { return pairs_->cursor(); }
  void restore(const nlohmann::json& c) override { pairs_->restore(c); }

  void validate(int64_t step, train::Metrics& metrics) override {
    check_ = check_pairs(model_, tokenizer_, heldout_);
    metrics["retrieval_short"] = check_.short_captions.image_to_text;
    metrics["retrieval_long"] = check_.long_captions.image_to_text;
    spdlog::info("clip at step {}: image -> caption top-1 among {} held-out scenes: short "
                 "{:.1f}%, long {:.1f}% (chance {:.1f}%)",
                 step, check_.short_captions.pairs, 100 * check_.short_captions.image_to_text,
                 100 * check_.long_captions.image_to_text,
                 100.0 / static_cast<double>(check_.short_captions.pairs));
  }

 private:
  models::Clip model_;
  const text::Tokenizer& tokenizer_;
  ClipTrainOptions options_;
  std::unique_ptr<PairSource> pairs_;
  ClipHeldOut heldout_;
  ClipCheck check_;
};

nlohmann::json to_json(const models::Retrieval& r) {
  return {{"image_to_text", r.image_to_text}, {"text_to_image", r.text_to_image},
          {"pairs", r.pairs}};
}

// What the model was trained on, for its metadata: a caption source, or "renders".
std::string caption_label(const ClipTrainOptions& options) {
  return options.renders ? "renders" : std::string(caption_source_name(options.captions.source));
}

}  // namespace

ClipTrainOptions clip_train_options(const Config& c, int64_t vocab_size) {
  ClipTrainOptions o;
  o.model.image = {c.get_int("clip.width"), c.get_int("clip.depth"), c.get_int("clip.stride")};
  o.model.text_encoder = text_encoder_settings(c, vocab_size);
  o.model.embed_dim = c.get_int("clip.embed_dim");
  o.captions = {parse_caption_source(c.get_string("clip.captions")),
                c.get_string("t2i.recap_fallback") == "skip", c.get_float("t2i.mix_long")};
  o.steps = c.get_int("clip.steps");
  o.batch_size = c.get_int("clip.batch_size");
  o.lr = c.get_float("clip.lr");
  o.warmup_steps = c.get_int("clip.warmup_steps");
  o.renders = c.get_string("clip.data") == "renders";
  o.heldout = c.get_int("clip.heldout");
  o.validate_every = c.get_int("clip.validate_every");
  o.checkpoint_every = c.get_int("checkpoint.every");
  o.keep_last = static_cast<int>(c.get_int("checkpoint.keep_last"));
  o.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  return o;
}

nlohmann::json to_json(const ClipCheck& check) {
  return {{"short_captions", to_json(check.short_captions)},
          {"long_captions", to_json(check.long_captions)}};
}

ClipCheck check_clip(models::Clip& model, const text::Tokenizer& tokenizer,
                     const fs::path& corpus_dir, const Config& config, int64_t n, int workers) {
  return check_pairs(model, tokenizer, read_heldout(corpus_dir, config, n, workers));
}

ClipTrainResult train_clip(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                           const std::vector<fs::path>& recap_files, const fs::path& out_dir,
                           const Config& config, int threads) {
  const auto tokenizer = text::Tokenizer::load(tokenizer_model);
  const auto options = clip_train_options(config, tokenizer.vocab_size());
  if (!options.renders && needs_recaptions(options.captions.source) && recap_files.empty())
    throw Error(fmt::format("clip: captions = {} needs recaption files (NAME.recap.jsonl)",
                            caption_source_name(options.captions.source)));
  // The initial weights come from torch's global generator, seeded from the run seed.
  torch::manual_seed(clip_init_seed(options.seed));
  models::Clip model(options.model);
  std::unique_ptr<PairSource> pairs;
  std::string source;
  if (options.renders) {
    pairs = std::make_unique<RenderPairs>(world_settings(corpus::corpus_config(corpus_dir)),
                                          clip_render_stream(options.seed), options.batch_size);
    source = "world renders with exact captions";
  } else {
    auto lo =
        corpus::split_loader(corpus_dir, corpus::Split::Web, config, threads, options.batch_size);
    lo.seed = clip_loader_seed(options.seed);
    lo.epochs = 0;
    source = fmt::format("{} web shard(s), {} captions", lo.sources.size(),
                         caption_source_name(options.captions.source));
    pairs = std::make_unique<CorpusPairs>(
        ArmBatches(std::move(lo),
                   ArmCaptions("clip", options.captions,
                               needs_recaptions(options.captions.source)
                                   ? load_recaptions(recap_files)
                                   : Recaptions{}),
                   clip_mix_stream(options.seed)));
  }
  fs::create_directories(out_dir);
  ClipTask task(model, tokenizer, options, std::move(pairs),
                read_heldout(corpus_dir, config, options.heldout, threads));
  train::TrainerOptions t;
  t.dir = out_dir / "train";
  t.steps = options.steps;
  t.lr = options.lr;
  t.warmup_steps = options.warmup_steps;
  t.checkpoint_every = options.checkpoint_every;
  t.keep_last = options.keep_last;
  t.validate_every = options.validate_every;
  spdlog::info("clip: {} steps of {} pairs from {}", t.steps, options.batch_size, source);
  const auto t0 = std::chrono::steady_clock::now();
  const auto trained = train::train(task, t);
  const double train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  ClipTrainResult result;
  result.start_step = trained.start_step;
  result.steps = trained.steps;
  result.last_loss = trained.last_loss;
  result.captions = task.counts();
  result.check = task.last_check();  // the trainer validates at the end
  result.weights = out_dir / "clip.safetensors";
  const auto& n = result.captions;
  save_module(result.weights, *model,
              {{kClipOptionsKey, nlohmann::json(model->options()).dump()},
               {"tokenizer_sha256", sha256_hex(tokenizer.model_bytes())},
               {"captions", caption_label(options)},
               {"steps", std::to_string(result.steps)}});
  const nlohmann::json report = {
      {"options", model->options()},
      {"captions", caption_label(options)},
      {"caption_counts", {{"used", n.used}, {"fell_back", n.fell_back}, {"skipped", n.skipped}}},
      {"steps", result.steps},
      {"batch_size", options.batch_size},
      {"lr", options.lr},
      {"train_seconds", train_seconds},
      {"last_loss", result.last_loss},
      {"check", to_json(result.check)}};
  write_file_atomic(out_dir / "clip.json", report.dump(2) + "\n");
  write_file_atomic(out_dir / "tokenizer.model", tokenizer.model_bytes());
  return result;
}

ClipJudge load_clip_judge(const fs::path& dir) {
  const auto tokenizer_file = dir / "tokenizer.model";
  if (!fs::exists(tokenizer_file))
    throw Error(fmt::format("{}: missing; a judge CLIP folder is a `recap clip train --out` "
                            "folder", tokenizer_file.string()));
  auto tokenizer = text::Tokenizer::load(tokenizer_file);
  auto model = load_clip(dir, tokenizer);
  nlohmann::json check;
  const auto report = dir / "clip.json";
  if (fs::exists(report)) {
    try {
      check = nlohmann::json::parse(read_file(report)).at("check");
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: bad JSON: {}", report.string(), e.what()));
    }
  }
  return {std::move(model), std::move(tokenizer), std::move(check)};
}

std::vector<double> clip_scores(ClipJudge& judge, const torch::Tensor& images,
                                const std::vector<std::string>& prompts, int64_t batch) {
  if (images.size(0) != static_cast<int64_t>(prompts.size()))
    throw std::invalid_argument("clip_scores: one prompt per image");
  torch::NoGradGuard no_grad;
  auto& model = judge.model;
  const auto device = model->parameters().front().device();
  std::vector<double> out;
  for (int64_t i = 0; i < images.size(0); i += batch) {
    const int64_t end = std::min(images.size(0), i + batch);
    const std::vector<std::string> part(prompts.begin() + i, prompts.begin() + end);
    const auto ids =
        prompt_ids(judge.tokenizer, part, model->options().text_encoder.max_length).to(device);
    const auto cos = (model->encode_image(images.slice(0, i, end).to(device)) *
                      model->encode_text(ids))
                         .sum(1)
                         .clamp_min(0)
                         .to(torch::kDouble)
                         .cpu();
    for (int64_t j = 0; j < cos.size(0); ++j) out.push_back(100 * cos[j].item<double>());
  }
  return out;
}

fs::path clip_weights_path(const fs::path& dir_or_file) {
  return dir_or_file.extension() == ".safetensors" ? dir_or_file
                                                   : dir_or_file / "clip.safetensors";
}

models::Clip load_clip(const fs::path& dir_or_file, const text::Tokenizer& tokenizer) {
  const fs::path file = clip_weights_path(dir_or_file);
  if (!fs::exists(file))
    throw Error(fmt::format("{}: no CLIP here (run `recap clip train`)", file.string()));
  const auto metadata = Safetensors::load(file).metadata();
  const auto options =
      options_from_metadata<models::ClipOptions>(metadata, file, kClipOptionsKey, "CLIP");
  const auto sha = sha256_hex(tokenizer.model_bytes());
  if (auto t = metadata.find("tokenizer_sha256"); t == metadata.end() || t->second != sha)
    throw Error(fmt::format("{}: trained with another tokenizer than the one given",
                            file.string()));
  return load_model<models::Clip>(file, options);
}

}  // namespace recap::stages
