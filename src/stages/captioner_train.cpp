#include "core/torch_pch.h"
#include "stages/captioner_train.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/weights.h"
#include "data/loader.h"
#include "data/tensor_batch.h"
#include "models/decoding.h"
#include "stages/corpus.h"
#include "stages/evaluator_train.h"
#include "stages/human_set.h"
#include "stages/settings.h"
#include "train/trainer.h"

namespace recap {

models::CaptionerOptions captioner_settings(const Config& c, int64_t vocab_size, int image_size) {
  models::CaptionerOptions o;
  o.vocab_size = vocab_size;
  o.max_length = c.get_int("captioner.max_length");
  o.dim = c.get_int("captioner.dim");
  o.layers = c.get_int("captioner.layers");
  o.heads = c.get_int("captioner.heads");
  o.image_size = image_size;
  o.grid = c.get_int("captioner.grid");
  o.encoder_layers = c.get_int("captioner.encoder_layers");
  return o;
}

}  // namespace recap

namespace recap::stages {

using corpus::corpus_config;
using corpus::list_shards;
using corpus::Split;
using corpus::split_name;

namespace {

constexpr int kValidationBatches = 4;
constexpr int kSampleCaptions = 3;

enum class Phase { kPretrain, kFinetune };

// FNV-1a: a fixed function of the key's bytes (std::hash may differ between libraries).
uint64_t key_hash(std::string_view key) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : key) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

// A human-set sample's short caption (KEY.json's captions.human_short), or null without one.
const std::string* find_human_short(const data::DecodedSample& sample) {
  if (!sample.meta.is_object()) return nullptr;
  const auto captions = sample.meta.find("captions");
  if (captions == sample.meta.end() || !captions->is_object()) return nullptr;
  const auto text = captions->find("human_short");
  return text != captions->end() && text->is_string() ? &text->get_ref<const std::string&>()
                                                      : nullptr;
}

// The eval split's, which every embedded-world scene has.
std::string human_short(const data::DecodedSample& sample) {
  const std::string* text = find_human_short(sample);
  if (!text)
    throw Error(fmt::format("{}: sample {} has no captions.human_short in its .json", sample.shard,
                            sample.key));
  return *text;
}

struct PhaseSettings {
  Phase phase;
  data::LoaderOptions loader;
  double long_fraction = 0;  // fine-tuning only
  uint64_t seed = 0;         // of the per-sample style choice
};

// Captions of a loader batch as padded ids; samples without a target caption are dropped.
struct CaptionTargets {
  std::vector<size_t> kept;  // indices into the batch
  models::CaptionBatch ids;
};

// Cached eval-split batches for held-out losses: every image with its short and long caption.
struct CaptionHeldOut {
  std::vector<torch::Tensor> images;
  std::vector<models::CaptionBatch> short_ids, long_ids;
  std::vector<std::vector<std::string>> keys, long_refs;
};

class CaptionerTask : public train::Task {
 public:
  CaptionerTask(models::Captioner model, const text::Tokenizer& tokenizer, PhaseSettings phase,
                std::vector<fs::path> eval_shards)
      : model_(std::move(model)),
        tokenizer_(tokenizer),
        phase_(std::move(phase)),
        eval_shards_(std::move(eval_shards)),
        loader_(std::make_unique<data::Loader>(phase_.loader)) {}

  torch::nn::Module& module() override { return *model_; }
  int64_t empty_skipped() const { return empty_skipped_; }

  torch::Tensor loss(train::Metrics& metrics) override {
    std::vector<data::DecodedSample> batch;
    std::vector<data::DecodedSample> kept;
    std::vector<std::vector<int>> ids;
    while (kept.empty()) {  // an all-empty batch is possible, if unlikely: draw another
      if (!loader_->next_batch(batch)) throw std::logic_error("captioner: endless stream ended");
      const uint64_t batch_seed = derive_seed(phase_.seed, batches_++);
      for (auto& sample : batch) {
        auto [text, style] = target(sample, batch_seed);
        if (text.empty()) {
          ++empty_skipped_;
          continue;
        }
        ids.push_back(models::caption_ids(tokenizer_, text, style, model_->options().max_length));
        kept.push_back(std::move(sample));
      }
    }
    const auto device = model_->parameters().front().device();
    const auto captions = models::pad_captions(ids);
    const auto images = data::to_tensor_batch(kept).images.to(device);
    metrics["empty_skipped"] = static_cast<double>(empty_skipped_);
    return model_->loss(images, captions.ids.to(device), captions.padding.to(device));
  }

  nlohmann::json cursor() const override {
    return {{"loader", loader_->cursor().to_json()},
            {"batches", batches_},
            {"empty_skipped", empty_skipped_}};
  }
  void restore(const nlohmann::json& c) override {
    loader_.reset();  // its threads stop before the new one starts
    loader_ = std::make_unique<data::Loader>(phase_.loader, nullptr,
                                             data::Cursor::from_json(c.at("loader")));
    batches_ = c.at("batches").get<uint64_t>();
    empty_skipped_ = c.at("empty_skipped").get<int64_t>();
  }

  // Held-out loss on both styles (human short and long captions of eval scenes, comparable
  // across the two stages) and a few greedy captions in the log.
  void validate(int64_t step, train::Metrics& metrics) override {
    if (eval_shards_.empty()) return;
    if (!held_out_) held_out_ = read_held_out();
    torch::NoGradGuard no_grad;
    const auto device = model_->parameters().front().device();
    double short_sum = 0, long_sum = 0, long_mismatched_sum = 0;
    for (size_t b = 0; b < held_out_->images.size(); ++b) {
      const auto images = held_out_->images[b].to(device);
      const auto loss = [&](const torch::Tensor& x, const models::CaptionBatch& batch) {
        return model_->loss(x, batch.ids.to(device), batch.padding.to(device)).item<double>();
      };
      short_sum += loss(images, held_out_->short_ids[b]);
      long_sum += loss(images, held_out_->long_ids[b]);
      // Each caption scored against its neighbour's image: how much the image tells the model.
      long_mismatched_sum += loss(images.roll(1, 0), held_out_->long_ids[b]);
    }
    const double n = static_cast<double>(held_out_->images.size());
    metrics["val_loss_short"] = short_sum / n;
    metrics["val_loss_long"] = long_sum / n;
    // Nats per token the image is worth; ~0 means the decoder ignores the picture.
    metrics["val_image_gain_long"] = (long_mismatched_sum - long_sum) / n;
    const auto& first = held_out_->images.front();
    const auto images =
        first.narrow(0, 0, std::min<int64_t>(kSampleCaptions, first.size(0))).to(device);
    const auto shorts = models::decode_text(
        tokenizer_, models::decode(model_, images, models::CaptionStyle::kShort, {}));
    const auto longs = models::decode_text(
        tokenizer_, models::decode(model_, images, models::CaptionStyle::kLong, {}));
    for (size_t i = 0; i < shorts.size(); ++i)
      spdlog::info("captioner step {} {}: <short> \"{}\" | <long> \"{}\" | human \"{}\"", step,
                   held_out_->keys.front()[i], shorts[i], longs[i],
                   held_out_->long_refs.front()[i]);
  }

 private:
  // The caption a sample is trained on, and its style.
  std::pair<std::string, models::CaptionStyle> target(const data::DecodedSample& sample,
                                                      uint64_t batch_seed) const {
    if (phase_.phase == Phase::kPretrain) return {sample.caption, models::CaptionStyle::kShort};
    // The long caption is KEY.txt; a user's human set may give a key only one of the styles.
    const std::string* short_caption = find_human_short(sample);
    if (!short_caption) return {sample.caption, models::CaptionStyle::kLong};
    if (sample.caption.empty()) return {*short_caption, models::CaptionStyle::kShort};
    // Drawn per (seed, draw, key): a fixed function of the cursor, so resume is exact, and
    // a sample seen in several epochs gets both styles.
    Rng rng(derive_seed(batch_seed, key_hash(sample.key)));
    if (rng.chance(phase_.long_fraction)) return {sample.caption, models::CaptionStyle::kLong};
    return {*short_caption, models::CaptionStyle::kShort};
  }

  CaptionHeldOut read_held_out() const {
    data::LoaderOptions o = phase_.loader;
    o.sources = eval_shards_;
    o.shuffle_buffer = 0;
    o.shuffle_sources = false;
    o.epochs = 1;
    data::Loader loader(o);
    CaptionHeldOut held;
    const int64_t max_length = model_->options().max_length;
    std::vector<data::DecodedSample> batch;
    while (static_cast<int>(held.images.size()) < kValidationBatches && loader.next_batch(batch)) {
      std::vector<std::vector<int>> shorts, longs;
      std::vector<std::string> keys, refs;
      for (const auto& s : batch) {
        shorts.push_back(models::caption_ids(tokenizer_, human_short(s),
                                             models::CaptionStyle::kShort, max_length));
        longs.push_back(
            models::caption_ids(tokenizer_, s.caption, models::CaptionStyle::kLong, max_length));
        keys.push_back(s.key);
        refs.push_back(s.caption);
      }
      held.images.push_back(data::to_tensor_batch(batch).images);
      held.short_ids.push_back(models::pad_captions(shorts));
      held.long_ids.push_back(models::pad_captions(longs));
      held.keys.push_back(std::move(keys));
      held.long_refs.push_back(std::move(refs));
    }
    if (held.images.empty()) throw Error("captioner: no usable sample in the eval split");
    return held;
  }

  models::Captioner model_;
  const text::Tokenizer& tokenizer_;
  PhaseSettings phase_;
  std::vector<fs::path> eval_shards_;
  std::unique_ptr<data::Loader> loader_;
  uint64_t batches_ = 0;  // micro-batches drawn, for the style choice
  int64_t empty_skipped_ = 0;
  std::optional<CaptionHeldOut> held_out_;
};

// Where each stage reads its samples, and how.
struct CaptionerData {
  std::vector<fs::path> pretrain, finetune;  // sources of each stage
  std::vector<fs::path> eval;                // held-out shards for validation; may be empty
  std::string description;                   // for the log, e.g. "web shard(s)"
  int image_size;
  data::ReadLimits read;
  data::DecodeLimits decode;
};

struct Inputs {
  const CaptionerData* data;
  const Config* config;
  const text::Tokenizer* tokenizer;
  std::string tokenizer_sha256;
  models::CaptionerOptions options;
  int workers;
  data::ReadLimits read;
  data::DecodeLimits decode;
};

// Trains one stage into `dir` from `model`'s current weights and saves them to `weights`
// (the EMA's when there is one).
CaptionerStageResult run_stage(const Inputs& in, models::Captioner& model, Phase phase,
                               const fs::path& dir, const fs::path& weights) {
  const Config& c = *in.config;
  const bool pretrain = phase == Phase::kPretrain;
  const uint64_t seed = derive_seed(static_cast<uint64_t>(c.get_int("run.seed")),
                                    pretrain ? 0xCA97'0001 : 0xCA97'0002);
  PhaseSettings settings{phase, {}, c.get_float("captioner.long_fraction"), seed};
  auto& lo = settings.loader;
  lo.sources = pretrain ? in.data->pretrain : in.data->finetune;
  lo.image_size = static_cast<int>(in.options.image_size);
  lo.workers = in.workers;
  lo.batch_size = static_cast<size_t>(c.get_int("captioner.batch_size"));
  lo.seed = derive_seed(seed, 1);
  lo.epochs = 0;
  lo.read = in.data->read;
  // The fine-tuning set's captions are its KEY.txt and KEY.json, whatever field the
  // pre-training sources' captions were read from.
  if (!pretrain) lo.read.caption_field = "caption";
  lo.decode = in.data->decode;
  lo.strict = c.get_bool("data.strict");

  CaptionerTask task(model, *in.tokenizer, settings, in.data->eval);
  train::TrainerOptions t;
  t.steps = c.get_int(pretrain ? "captioner.pretrain_steps" : "captioner.finetune_steps");
  t.lr = c.get_float(pretrain ? "captioner.lr" : "captioner.finetune_lr");
  t.warmup_steps = std::min(c.get_int("captioner.warmup_steps"), t.steps);
  t.ema_decay = c.get_float("captioner.ema_decay");
  t.checkpoint_every = c.get_int("checkpoint.every");
  t.keep_last = static_cast<int>(c.get_int("checkpoint.keep_last"));
  t.log_every = std::clamp<int64_t>(t.steps / 50, 1, 50);
  t.dir = dir;
  spdlog::info("captioner {}: {} steps on {} {}", pretrain ? "pretrain" : "finetune", t.steps,
               lo.sources.size(), pretrain ? in.data->description : "human-set shard(s)");
  const auto t0 = std::chrono::steady_clock::now();
  const auto trained = train::train(task, t);
  CaptionerStageResult result;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.start_step = trained.start_step;
  result.steps = trained.steps;
  result.last_loss = trained.last_loss;
  result.empty_skipped = task.empty_skipped();
  save_module(weights, *model,
              {{"options", nlohmann::json(in.options).dump()},
               {"tokenizer_sha256", in.tokenizer_sha256},
               {"stage", pretrain ? "pretrain" : "finetune"}});
  spdlog::info("captioner {}: {} steps in {:.1f} s, last loss {:.4f}, {} empty captions skipped",
               pretrain ? "pretrain" : "finetune", result.steps - result.start_step, result.seconds,
               result.last_loss, result.empty_skipped);
  return result;
}

// Both stages on `data`, into out_dir (train_captioner's contract).
CaptionerTrainResult train_on(const CaptionerData& data, const fs::path& tokenizer_model,
                              const fs::path& out_dir, const Config& config, int threads) {
  const auto tokenizer = text::Tokenizer::load(tokenizer_model);
  CaptionerTrainResult result;
  result.options = captioner_settings(config, tokenizer.vocab_size(), data.image_size);
  // A pre-trained vision encoder decides the encoder's shape and is copied in before training.
  std::optional<models::Detector> vision;
  const std::string vision_file = config.get_string("captioner.vision");
  if (!vision_file.empty()) {
    vision = load_detector(vision_file);
    result.options.vision = (*vision)->options();
  }
  const int64_t workers = config.get_int("captioner.workers");
  const Inputs in{&data,
                  &config,
                  &tokenizer,
                  sha256_hex(tokenizer.model_bytes()),
                  result.options,
                  static_cast<int>(workers > 0 ? workers : std::max(1, threads))};
  fs::create_directories(out_dir);

  torch::manual_seed(derive_seed(static_cast<uint64_t>(config.get_int("run.seed")), 0xCA97'0000));
  models::Captioner model(result.options);
  if (vision) {
    torch::NoGradGuard no_grad;
    auto to = module_state(*model->vision);
    const auto from = module_state(*(*vision)->backbone);
    for (size_t i = 0; i < to.size(); ++i) to[i].second.copy_(from[i].second);
    const bool frozen = config.get_bool("captioner.freeze_vision");
    spdlog::info("captioner: vision encoder from {} ({} tensors, {})", vision_file, to.size(),
                 frozen ? "frozen" : "trained on");
    // No gradient, so AdamW skips them and the EMA keeps them exactly.
    if (frozen)
      for (auto& p : model->vision->parameters()) p.set_requires_grad(false);
  }
  const fs::path pretrained = out_dir / "captioner_pretrain.safetensors";
  const fs::path finetuned = out_dir / "captioner.safetensors";
  if (fs::exists(finetuned)) {
    spdlog::info("captioner: {} exists, nothing to train", finetuned.string());
    result.pretrain.skipped = result.finetune.skipped = true;
    return result;
  }
  if (fs::exists(pretrained)) {
    spdlog::info("captioner: pretrain done ({} exists)", pretrained.string());
    load_module(pretrained, *model);
    result.pretrain.skipped = true;
  } else {
    result.pretrain = run_stage(in, model, Phase::kPretrain, out_dir / "pretrain", pretrained);
  }
  result.finetune = run_stage(in, model, Phase::kFinetune, out_dir / "finetune", finetuned);
  return result;
}

}  // namespace

CaptionerTrainResult train_captioner(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                                     const fs::path& out_dir, const Config& config, int threads) {
  const Config made_with = corpus_config(corpus_dir);
  CaptionerData data{list_shards(corpus_dir, Split::Web),
                     list_shards(corpus_dir, Split::Human),
                     list_shards(corpus_dir, Split::Eval),
                     "web shard(s)",
                     static_cast<int>(made_with.get_int("world.canvas")),
                     read_limits(made_with),
                     decode_limits(made_with)};
  for (const auto& [shards, split] : {std::pair{&data.pretrain, Split::Web},
                                      std::pair{&data.finetune, Split::Human}})
    if (shards->empty())
      throw Error(fmt::format("{}: no {} shards", corpus_dir.string(), split_name(split)));
  return train_on(data, tokenizer_model, out_dir, config, threads);
}

CaptionerTrainResult train_captioner_on_sources(const std::vector<fs::path>& sources,
                                                const fs::path& human_set,
                                                const fs::path& tokenizer_model,
                                                const fs::path& out_dir, const Config& config,
                                                int threads) {
  const data::ReadLimits read = read_limits(config);
  const fs::path human_shard = out_dir / "human" / "human-00000.tar";
  // Checked (and copied out) before pre-training, so a bad set costs no training time.
  if (!fs::exists(out_dir / "captioner.safetensors")) {
    const HumanSet set = read_human_set(human_set, read.caption);
    const uint64_t written = write_human_shard(set, sources, read, human_shard);
    spdlog::info("captioner: human set {}: {} captions of {} samples, copied to {}",
                 human_set.string(), set.lines, written, human_shard.string());
  }
  CaptionerData data{sources,
                     {human_shard},
                     {},
                     "image source(s)",
                     static_cast<int>(config.get_int("world.canvas")),
                     read,
                     decode_limits(config)};
  return train_on(data, tokenizer_model, out_dir, config, threads);
}

models::Captioner load_captioner(const fs::path& path, const text::Tokenizer& tokenizer) {
  const auto file = Safetensors::load(path);
  const auto& meta = file.metadata();
  const auto options_it = meta.find("options");
  const auto sha_it = meta.find("tokenizer_sha256");
  if (options_it == meta.end() || sha_it == meta.end())
    throw Error(fmt::format("{}: not a captioner (no options or tokenizer_sha256 metadata)",
                            path.string()));
  if (sha_it->second != sha256_hex(tokenizer.model_bytes()))
    throw Error(fmt::format("{}: trained with another tokenizer (sha256 {})", path.string(),
                            sha_it->second));
  models::CaptionerOptions options;
  try {
    options = nlohmann::json::parse(options_it->second).get<models::CaptionerOptions>();
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: bad options metadata: {}", path.string(), e.what()));
  }
  models::Captioner model(options);
  load_module(path, *model);
  model->eval();
  return model;
}

}  // namespace recap::stages
