#include "core/torch_pch.h"
#include "stages/evaluator_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/weights.h"
#include "train/trainer.h"
#include "world/sampler.h"
#include "world/score.h"

namespace recap::stages {

namespace {

double share(int num, int den) { return den > 0 ? static_cast<double>(num) / den : 0; }

// The initial weights come from torch's global generator; seeding it from the options makes
// the whole run (init, data, augmentation) a function of the seed.
models::Detector seeded_detector(const world::WorldConfig& config,
                                 const EvaluatorTrainOptions& options) {
  torch::manual_seed(derive_seed(options.seed, 0xE7A1'0000));
  return models::make_detector(config, options.model);
}

// The training stream: batch `batch` holds scenes derive_seed(derive_seed(train, batch), i),
// so the data cursor is just the batch index and resuming redraws nothing.
class EvaluatorTask : public train::Task {
 public:
  EvaluatorTask(const world::WorldConfig& config, const EvaluatorTrainOptions& options)
      : config_(config), options_(options), model_(seeded_detector(config, options)),
        train_stream_(evaluator_train_stream(options.seed)),
        augment_stream_(evaluator_augment_stream(options.seed)),
        object_free_stream_(evaluator_object_free_stream(options.seed)) {}

  torch::nn::Module& module() override { return *model_; }
  models::Detector& detector() { return model_; }

  torch::Tensor loss(train::Metrics& metrics) override {
    // The first k images are object-free noise with no objects to find, the rest renders.
    const auto k = std::min<int64_t>(
        options_.batch_size, std::llround(options_.object_free * options_.batch_size));
    const uint64_t batch_seed = derive_seed(train_stream_, next_batch_);
    std::vector<world::Scene> scenes;
    std::vector<std::vector<models::TruthObject>> truth(static_cast<size_t>(k));
    for (int64_t i = k; i < options_.batch_size; ++i) {
      scenes.push_back(world::sample_scene(config_, derive_seed(batch_seed, i)));
      truth.push_back(models::truth_objects(scenes.back(), config_));
    }
    std::vector<torch::Tensor> parts;
    if (k > 0)
      parts.push_back(models::object_free_images(k, config_.canvas,
                                                 derive_seed(object_free_stream_, next_batch_)));
    if (!scenes.empty()) {
      auto rendered = models::render_batch(scenes, config_);  // [B - k, 3, H, W]
      if (options_.use_augment) {
        auto aug = models::augment(rendered, derive_seed(augment_stream_, next_batch_),
                                   options_.augment);
        rendered = aug.images;
        for (size_t i = 0, j = static_cast<size_t>(k); i < scenes.size(); ++i, ++j)
          truth[j] = models::apply_affine(truth[j], aug.affines[i], config_.canvas);
      }
      parts.push_back(rendered);
    }
    auto images = torch::cat(parts);  // [B, 3, H, W]
    ++next_batch_;
    auto targets = models::encode_targets(truth, config_.canvas, options_.model.stride);
    const auto device = model_->parameters().front().device();
    auto maps = model_->forward(images.to(device));
    auto loss = models::detector_loss(maps, targets);
    metrics["heatmap"] = loss.heatmap;
    metrics["shape"] = loss.shape;
    metrics["colour"] = loss.colour;
    metrics["offset"] = loss.offset;
    metrics["size"] = loss.size;
    return loss.total;
  }

  nlohmann::json cursor() const override { return {{"next_batch", next_batch_}}; }
  void restore(const nlohmann::json& c) override {
    next_batch_ = c.at("next_batch").get<uint64_t>();
  }

 private:
  world::WorldConfig config_;
  EvaluatorTrainOptions options_;
  models::Detector model_;
  uint64_t train_stream_, augment_stream_, object_free_stream_;
  uint64_t next_batch_ = 0;
};

nlohmann::json options_json(const EvaluatorTrainOptions& o) {
  const auto& a = o.augment;
  return {{"model", {{"width", o.model.width}, {"depth", o.model.depth},
                     {"stride", o.model.stride}}},
          {"augment", o.use_augment ? nlohmann::json{{"max_scale", a.max_scale},
                                                     {"max_shift_px", a.max_shift_px},
                                                     {"max_blur_sigma", a.max_blur_sigma},
                                                     {"max_noise", a.max_noise},
                                                     {"max_brightness", a.max_brightness},
                                                     {"max_contrast", a.max_contrast}}
                                    : nlohmann::json(nullptr)},
          {"steps", o.steps}, {"batch_size", o.batch_size}, {"lr", o.lr},
          {"warmup_steps", o.warmup_steps}, {"object_free", o.object_free}, {"seed", o.seed},
          {"heldout_scenes", o.heldout_scenes}, {"threshold", o.decode.threshold}};
}

}  // namespace

uint64_t evaluator_train_stream(uint64_t seed) { return derive_seed(seed, 0xE7A1'0001); }
uint64_t evaluator_augment_stream(uint64_t seed) { return derive_seed(seed, 0xE7A1'0002); }
uint64_t evaluator_heldout_stream(uint64_t seed) { return derive_seed(seed, 0xE7A1'0003); }
uint64_t evaluator_object_free_stream(uint64_t seed) { return derive_seed(seed, 0xE7A1'0004); }

nlohmann::json to_json(const FalseDetections& f) {
  return {{"images", f.images},
          {"detections", f.detections},
          {"images_with_detections", f.images_with_detections},
          {"per_image", f.per_image},
          {"image_share", f.image_share}};
}

FalseDetections measure_false_detections(models::Detector& model,
                                         const world::WorldConfig& config, int n_images,
                                         uint64_t seed,
                                         const models::DetectionDecodeOptions& decode) {
  if (n_images < 1)
    throw Error(fmt::format("false detections: {} images (must be positive)", n_images));
  constexpr int kBatch = 100;
  const auto device = model->parameters().front().device();
  FalseDetections f;
  for (int start = 0; start < n_images; start += kBatch) {
    const int n = std::min(kBatch, n_images - start);
    auto images = models::object_free_images(n, config.canvas, derive_seed(seed, start));
    for (const auto& found : models::detect(model, images.to(device), config, decode)) {
      f.detections += static_cast<int>(found.size());
      f.images_with_detections += !found.empty();
    }
    f.images += n;
  }
  f.per_image = share(f.detections, f.images);
  f.image_share = share(f.images_with_detections, f.images);
  return f;
}

nlohmann::json to_json(const EvaluatorAccuracy& a) {
  return {{"images", a.images},
          {"objects", a.objects},
          {"detections", a.detections},
          {"matched", a.matched},
          {"precision", a.precision},
          {"recall", a.recall},
          {"groups", a.groups},
          {"groups_exact", a.groups_exact},
          {"count_exact", a.count_exact},
          {"shape", a.shape},
          {"colour", a.colour},
          {"centre_error_px", a.centre_error_px},
          {"relations", a.relations},
          {"relations_held", a.relations_held},
          {"relation", a.relation},
          {"image_exact", a.image_exact},
          {"match_radius_px", a.match_radius_px},
          {"passes_gate", a.passes_gate()}};
}

EvaluatorAccuracy score_detections(const std::vector<world::Scene>& scenes,
                                   const std::vector<std::vector<eval::Detection>>& detections,
                                   const world::WorldConfig& config) {
  if (scenes.size() != detections.size())
    throw std::logic_error("score_detections: one detection list per scene");
  EvaluatorAccuracy acc;
  acc.match_radius_px = config.min_object_size * config.canvas / 2;
  const double margin = world::relation_margin_px(config);
  int shape_ok = 0, colour_ok = 0, images_exact = 0;
  double centre_error = 0;
  for (size_t s = 0; s < scenes.size(); ++s) {
    const auto& scene = scenes[s];
    const auto& dets = detections[s];
    ++acc.images;
    acc.detections += static_cast<int>(dets.size());
    // One-to-one matching, closest pairs first (ties by index, so the result is deterministic).
    struct Truth { const world::Group* group; const world::Object* object; };
    std::vector<Truth> truth;
    for (const auto& g : scene.groups)
      for (const auto& o : g.objects) truth.push_back({&g, &o});
    acc.objects += static_cast<int>(truth.size());
    std::vector<std::tuple<double, size_t, size_t>> pairs;
    for (size_t d = 0; d < dets.size(); ++d)
      for (size_t t = 0; t < truth.size(); ++t) {
        const double dist = std::hypot(dets[d].x - truth[t].object->x,
                                       dets[d].y - truth[t].object->y);
        if (dist <= acc.match_radius_px) pairs.emplace_back(dist, d, t);
      }
    std::sort(pairs.begin(), pairs.end());
    std::vector<bool> det_used(dets.size()), truth_used(truth.size());
    for (const auto& [dist, d, t] : pairs) {
      if (det_used[d] || truth_used[t]) continue;
      det_used[d] = truth_used[t] = true;
      ++acc.matched;
      centre_error += dist;
      shape_ok += dets[d].shape == truth[t].group->shape;
      colour_ok += dets[d].colour == truth[t].group->colour;
    }
    // Counts and centroids per (shape, colour), from detections alone (unmatched ones too):
    // this is how prompt metrics read the detector.
    std::map<std::pair<std::string, std::string>, std::pair<int, world::Point>> found;
    for (const auto& d : dets) {
      auto& [n, sum] = found[{d.shape, d.colour}];
      ++n;
      sum.x += d.x;
      sum.y += d.y;
    }
    bool exact = found.size() == scene.groups.size();
    for (const auto& g : scene.groups) {
      ++acc.groups;
      auto it = found.find({g.shape, g.colour});
      const int n = it == found.end() ? 0 : it->second.first;
      acc.groups_exact += n == g.count();
      exact = exact && n == g.count();
    }
    images_exact += exact;
    for (const auto& r : scene.relations) {
      ++acc.relations;
      auto a = found.find({scene.groups[r.a].shape, scene.groups[r.a].colour});
      auto b = found.find({scene.groups[r.b].shape, scene.groups[r.b].colour});
      if (a == found.end() || b == found.end()) continue;
      const auto ca = world::Point{a->second.second.x / a->second.first,
                                   a->second.second.y / a->second.first};
      const auto cb = world::Point{b->second.second.x / b->second.first,
                                   b->second.second.y / b->second.first};
      acc.relations_held += world::relation_holds(ca, cb, r.relation, margin);
    }
  }
  acc.precision = share(acc.matched, acc.detections);
  acc.recall = share(acc.matched, acc.objects);
  acc.count_exact = share(acc.groups_exact, acc.groups);
  acc.shape = share(shape_ok, acc.matched);
  acc.colour = share(colour_ok, acc.matched);
  acc.centre_error_px = acc.matched ? centre_error / acc.matched : 0;
  acc.relation = share(acc.relations_held, acc.relations);
  acc.image_exact = share(images_exact, acc.images);
  return acc;
}

EvaluatorAccuracy measure_evaluator_accuracy(
    models::Detector& model, const world::WorldConfig& config, int n_scenes, uint64_t seed,
    int64_t batch_size, const models::DetectionDecodeOptions& decode,
    const std::optional<models::AugmentOptions>& augment) {
  if (n_scenes < 1 || batch_size < 1)
    throw Error(fmt::format("evaluator accuracy: scenes ({}) and batch size ({}) must be positive",
                            n_scenes, batch_size));
  const auto device = model->parameters().front().device();
  std::vector<world::Scene> scenes;
  std::vector<std::vector<eval::Detection>> detections;
  for (int start = 0; start < n_scenes; start += static_cast<int>(batch_size)) {
    std::vector<world::Scene> batch;
    for (int i = start; i < std::min<int>(n_scenes, start + static_cast<int>(batch_size)); ++i)
      batch.push_back(world::sample_scene(config, derive_seed(seed, i)));
    auto images = models::render_batch(batch, config);
    if (augment) {
      auto aug = models::augment(images, derive_seed(~seed, start), *augment);
      images = aug.images;
      // The scene is only scored, never rendered again, so its objects may move freely.
      for (size_t i = 0; i < batch.size(); ++i)
        for (auto& g : batch[i].groups)
          for (auto& o : g.objects) {
            auto moved = models::apply_affine({{0, 0, o.x, o.y, o.size}}, aug.affines[i],
                                              config.canvas)[0];
            o.x = moved.x;
            o.y = moved.y;
            o.size = moved.size;
          }
    }
    auto found = models::detect(model, images.to(device), config, decode);
    scenes.insert(scenes.end(), batch.begin(), batch.end());
    detections.insert(detections.end(), found.begin(), found.end());
  }
  return score_detections(scenes, detections, config);
}

EvaluatorAccuracy train_evaluator(const world::WorldConfig& config,
                                  EvaluatorTrainOptions options, const fs::path& out_dir) {
  config.validate();
  if (options.batch_size < 1 || options.heldout_scenes < 1)
    throw Error(fmt::format("evaluator: batch size ({}) and held-out scenes ({}) must be "
                            "positive", options.batch_size, options.heldout_scenes));
  fs::create_directories(out_dir);
  EvaluatorTask task(config, options);
  train::TrainerOptions t;
  t.steps = options.steps;
  t.lr = options.lr;
  t.warmup_steps = options.warmup_steps;
  t.checkpoint_every = options.checkpoint_every;
  t.log_every = options.log_every;
  t.dir = out_dir / "train";
  const auto t0 = std::chrono::steady_clock::now();
  auto result = train::train(task, t);
  const double train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  auto& model = task.detector();
  const uint64_t heldout = evaluator_heldout_stream(options.seed);
  auto accuracy = measure_evaluator_accuracy(model, config, options.heldout_scenes, heldout,
                                             100, options.decode);
  std::optional<EvaluatorAccuracy> augmented;
  if (options.use_augment)
    augmented = measure_evaluator_accuracy(model, config, options.heldout_scenes, heldout, 100,
                                           options.decode, options.augment);
  // The held-out object-free images come from the held-out stream's own branch, so none of
  // them was seen in training.
  const auto false_detections = measure_false_detections(
      model, config, options.heldout_scenes, evaluator_object_free_stream(heldout),
      options.decode);
  std::string shapes, colours;
  for (const auto& s : config.shapes) shapes += (shapes.empty() ? "" : ",") + s;
  for (const auto& c : config.colours) colours += (colours.empty() ? "" : ",") + c.name;
  save_module(out_dir / "evaluator.safetensors", *model,
              {{"canvas", std::to_string(config.canvas)},
               {"stride", std::to_string(options.model.stride)},
               {"width", std::to_string(options.model.width)},
               {"depth", std::to_string(options.model.depth)},
               {"shapes", shapes},
               {"colours", colours}});
  nlohmann::json report = {{"canvas", config.canvas},
                           {"options", options_json(options)},
                           {"train_seconds", train_seconds},
                           {"start_step", result.start_step},
                           {"last_loss", result.last_loss},
                           {"accuracy", to_json(accuracy)},
                           {"accuracy_augmented",
                            augmented ? to_json(*augmented) : nlohmann::json(nullptr)},
                           {"false_detections", to_json(false_detections)}};
  write_file_atomic(out_dir / "evaluator_accuracy.json", report.dump(2) + "\n");
  spdlog::info("evaluator: count exact {:.2f}%, shape {:.2f}%, colour {:.2f}%, precision "
               "{:.2f}%, recall {:.2f}%, centre error {:.2f} px on {} held-out scenes",
               100 * accuracy.count_exact, 100 * accuracy.shape, 100 * accuracy.colour,
               100 * accuracy.precision, 100 * accuracy.recall, accuracy.centre_error_px,
               accuracy.images);
  if (augmented)
    spdlog::info("evaluator on augmented renders: count exact {:.2f}%, shape {:.2f}%, colour "
                 "{:.2f}%, precision {:.2f}%, recall {:.2f}%", 100 * augmented->count_exact,
                 100 * augmented->shape, 100 * augmented->colour, 100 * augmented->precision,
                 100 * augmented->recall);
  spdlog::info("evaluator on {} object-free noise images: {:.3f} false detections per image, "
               "{:.1f}% of images with any", false_detections.images, false_detections.per_image,
               100 * false_detections.image_share);
  return accuracy;
}

fs::path evaluator_weights_path(const fs::path& evaluator_dir_or_file) {
  return evaluator_dir_or_file.extension() == ".safetensors"
             ? evaluator_dir_or_file
             : evaluator_dir_or_file / "evaluator.safetensors";
}

models::Detector load_detector(const fs::path& evaluator_dir_or_file,
                               const world::WorldConfig* world,
                               models::DetectionDecodeOptions* decode) {
  const fs::path file = evaluator_weights_path(evaluator_dir_or_file);
  if (!fs::exists(file))
    throw Error(fmt::format("{}: no evaluator here (run `recap evaluator train`)", file.string()));
  const auto metadata = Safetensors::load(file).metadata();
  auto get = [&](const std::string& key) {
    auto it = metadata.find(key);
    if (it == metadata.end())
      throw Error(fmt::format("{}: not a recap evaluator (no '{}' metadata)", file.string(), key));
    return it->second;
  };
  auto number = [&](const std::string& key) {
    try {
      return std::stoll(get(key));
    } catch (const std::logic_error&) {
      throw Error(fmt::format("{}: metadata '{}' is not a number", file.string(), key));
    }
  };
  // The names as train_evaluator joins them: comma-separated, in class-index order.
  auto names = [&](const std::string& key) {
    std::vector<std::string> out;
    const std::string joined = get(key);
    for (size_t start = 0; start <= joined.size();) {
      const size_t end = std::min(joined.find(',', start), joined.size());
      out.push_back(joined.substr(start, end - start));
      start = end + 1;
    }
    return out;
  };
  const auto shapes = names("shapes"), colours = names("colours");
  if (world) {
    std::vector<std::string> world_colours;
    for (const auto& c : world->colours) world_colours.push_back(c.name);
    if (number("canvas") != world->canvas || shapes != world->shapes || colours != world_colours)
      throw Error(fmt::format("{}: trained for another world (canvas {}, shapes {}, colours {}); "
                              "this one has canvas {}, shapes {}, colours {}",
                              file.string(), get("canvas"), get("shapes"), get("colours"),
                              world->canvas, fmt::join(world->shapes, ","),
                              fmt::join(world_colours, ",")));
  }
  models::DetectorOptions options;
  options.width = number("width");
  options.depth = number("depth");
  options.stride = number("stride");
  models::Detector model(static_cast<int64_t>(shapes.size()),
                         static_cast<int64_t>(colours.size()), options);
  load_module(file, *model);
  model->eval();
  const fs::path accuracy = file.parent_path() / "evaluator_accuracy.json";
  if (decode && fs::exists(accuracy)) {
    try {
      decode->threshold = nlohmann::json::parse(read_file(accuracy))
                              .at("options").at("threshold").get<double>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: no decode threshold ({})", accuracy.string(), e.what()));
    }
  }
  return model;
}

}  // namespace recap::stages
