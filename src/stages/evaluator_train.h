// Training and measuring the evaluator (models/evaluator.h): the detector learns from freshly
// rendered, augmented world scenes (an endless stream, so it cannot overfit a fixed set) and
// its own accuracy is measured on held-out renders from a separate seed stream, to be reported
// beside every result it scores. The CLI command wraps train_evaluator and decides on the gate.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/metrics.h"
#include "models/evaluator.h"
#include "world/scene.h"
#include "world/vocab.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct EvaluatorTrainOptions {
  models::DetectorOptions model;
  models::AugmentOptions augment;
  bool use_augment = true;
  int64_t steps = 800;  // ~4 min on 2 CPU cores at 32 px (measured: see the gate test)
  int64_t batch_size = 32;
  double lr = 3e-3;
  int64_t warmup_steps = 50;
  double object_free = 0.25;  // share of each batch replaced by models::object_free_images
  uint64_t seed = 0;
  int heldout_scenes = 1000;      // for the accuracy written beside the weights
  int64_t checkpoint_every = 250;
  int64_t log_every = 25;
  models::DetectionDecodeOptions decode;
};

// Accuracy of the detector against scene ground truth. Matching: each detection is paired with
// at most one true object and vice versa, greedily by centre distance, within match_radius_px
// (half the smallest object size).
struct EvaluatorAccuracy {
  int images = 0;
  int objects = 0, detections = 0, matched = 0;
  double precision = 0, recall = 0;  // matched / detections, matched / objects
  int groups = 0, groups_exact = 0;  // true groups; those with exactly `count` detections of
  double count_exact = 0;            // their shape and colour (count_exact = share)
  double shape = 0, colour = 0;      // share of matched detections with the right class
  double centre_error_px = 0;        // mean over matched detections
  int relations = 0, relations_held = 0;  // scene relations; those that hold on the detected
  double relation = 0;                    // group centroids (both groups found)
  double image_exact = 0;  // images whose detected (shape, colour) -> count equals the truth's
  double match_radius_px = 0;
  // The evaluator's gate: >= 98% exact count, shape and colour accuracy.
  bool passes_gate(double level = 0.98) const {
    return count_exact >= level && shape >= level && colour >= level;
  }
};
nlohmann::json to_json(const EvaluatorAccuracy& accuracy);

// What the detector finds where there is nothing: models::object_free_images, which look like
// an undertrained diffusion model's samples. Every detection there is a false one.
struct FalseDetections {
  int images = 0, detections = 0, images_with_detections = 0;
  double per_image = 0, image_share = 0;  // detections / images, images_with / images
};
nlohmann::json to_json(const FalseDetections& false_detections);
FalseDetections measure_false_detections(models::Detector& model,
                                         const world::WorldConfig& config, int n_images,
                                         uint64_t seed,
                                         const models::DetectionDecodeOptions& decode = {});

// Torch-free scoring of detections (one list per scene) against the scenes.
EvaluatorAccuracy score_detections(const std::vector<world::Scene>& scenes,
                                   const std::vector<std::vector<eval::Detection>>& detections,
                                   const world::WorldConfig& config);

// Renders scenes seeded derive_seed(seed, 0..n-1), detects and scores them. With `augment`,
// each batch is distorted first (seed derived from `seed` and the batch) and the ground truth
// moved with it: the accuracy on images as imperfect as the training ones.
EvaluatorAccuracy measure_evaluator_accuracy(
    models::Detector& model, const world::WorldConfig& config, int n_scenes, uint64_t seed,
    int64_t batch_size = 100, const models::DetectionDecodeOptions& decode = {},
    const std::optional<models::AugmentOptions>& augment = std::nullopt);

// Seeds of the data streams, all derived from the options' seed.
uint64_t evaluator_train_stream(uint64_t seed);    // training scenes, by batch and index
uint64_t evaluator_augment_stream(uint64_t seed);  // augmentation, by batch
uint64_t evaluator_heldout_stream(uint64_t seed);  // held-out scenes for the accuracy
uint64_t evaluator_object_free_stream(uint64_t seed);  // object-free images, by batch

// Trains the detector with train::train (checkpoints and metrics.jsonl under out_dir/train,
// resumed from there when present), then writes out_dir/evaluator.safetensors (metadata:
// canvas, stride, width, depth, shapes, colours) and out_dir/evaluator_accuracy.json (the
// options, the held-out accuracy on clean renders, on augmented ones when use_augment, and the
// false detections on as many held-out object-free images).
// Returns the accuracy on clean renders; the caller judges the gate. The initial weights come
// from torch's global generator, which is seeded from options.seed (so it is reset here).
// Throws recap::Error for an invalid config or options.
EvaluatorAccuracy train_evaluator(const world::WorldConfig& config,
                                  EvaluatorTrainOptions options, const fs::path& out_dir);

// Loads what train_evaluator wrote: `evaluator_dir_or_file` is its folder or the
// evaluator.safetensors in it. The architecture comes from the file's metadata. With `world`,
// the file's canvas, shapes and colours must be the world's (decode names classes by index).
// With `decode`, the threshold stored in evaluator_accuracy.json beside the file is read into
// it (left as is when that file is absent). Throws recap::Error naming the file when it is
// missing, lacks the metadata, or its tensors do not fit the model it describes.
// evaluator.safetensors: the path itself when it names a .safetensors file, else the file in
// that folder. evaluator_accuracy.json lies beside it.
fs::path evaluator_weights_path(const fs::path& evaluator_dir_or_file);
models::Detector load_detector(const fs::path& evaluator_dir_or_file,
                               const world::WorldConfig* world = nullptr,
                               models::DetectionDecodeOptions* decode = nullptr);

}  // namespace recap::stages
