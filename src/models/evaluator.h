// The evaluator: a small CenterNet-style detector (Zhou et al. 2019, "Objects as Points") for
// the embedded world. It reads a canvas and reports every object with shape, colour, centre
// and size (eval::Detection); its global-average-pooled backbone features are the feature
// space FID/KID are computed in. Also the target encoding (ground truth -> per-cell maps), the
// decoding (maps -> detections) and the tensor-side augmentation that makes it read imperfect
// generated images. Knows nothing of training loops or files.
//
// Grid. The output grid has stride `stride` px (2 by default: 16x16 cells at 32 px). Cell (i, j)
// covers pixels [j*s, (j+1)*s) x [i*s, (i+1)*s); an object belongs to the cell holding its
// centre, and the offset head gives the centre's position inside it. The sampler keeps centres
// at least min_size + 1/2 px apart (7.5 px at 32 px), so along one axis they differ by at least
// 7.5/sqrt(2) = 5.3 px, i.e. by at least two cells at stride 2: two objects never share a cell,
// nor even a 3x3 neighbourhood, so 3x3 max-pool NMS never suppresses one object with another.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/torch_pch.h"
#include "eval/metrics.h"
#include "nn/conv.h"
#include "world/scene.h"
#include "world/vocab.h"

namespace recap::models {

// width: backbone channels; depth: residual blocks at grid resolution; stride: the output
// grid's stride in px (nn/conv.h).
using DetectorOptions = nn::ConvBackboneOptions;

// The five heads at every cell of the [G, G] grid (G = canvas / stride).
struct DetectorMaps {
  torch::Tensor heatmap;  // [B, 1, G, G] centre logits (decode() reads probabilities, see below)
  torch::Tensor shape;    // [B, S, G, G] shape scores (logits), S = config.shapes.size()
  torch::Tensor colour;   // [B, C, G, G] colour scores (logits), C = config.colours.size()
  torch::Tensor offset;   // [B, 2, G, G] centre inside the cell, (x, y) in cells, ~[0, 1)
  torch::Tensor size;     // [B, 1, G, G] enclosing-circle diameter in cells (px / stride)
};

// An nn::ConvBackbone ("backbone.*"), then a 3x3 conv block ("head.*") and a 1x1 conv ("out.*")
// to the 1 + S + C + 2 + 1 output channels at every grid cell.
class DetectorImpl : public torch::nn::Module {
 public:
  DetectorImpl(int64_t num_shapes, int64_t num_colours, const DetectorOptions& options = {});

  // images [B, 3, H, W] in [-1, 1], H and W multiples of the stride -> maps on [H/s, W/s].
  DetectorMaps forward(const torch::Tensor& images);
  // Global-average-pooled last backbone block: [B, 3, H, W] -> [B, width]. The FID/KID space.
  torch::Tensor features(const torch::Tensor& images);

  const DetectorOptions& options() const { return options_; }
  int64_t num_shapes() const { return num_shapes_; }
  int64_t num_colours() const { return num_colours_; }

  // [B, 3, H, W] -> [B, width, G, G]; also the captioner's pre-trained vision encoder.
  nn::ConvBackbone backbone{nullptr};

 private:
  DetectorOptions options_;
  int64_t num_shapes_, num_colours_;
  torch::nn::Sequential head{nullptr};
  torch::nn::Conv2d out{nullptr};
};
TORCH_MODULE(Detector);

// Builds the detector for a world: class counts follow config.shapes / config.colours.
// Throws recap::Error when the canvas is not a multiple of the stride or the options are bad.
Detector make_detector(const world::WorldConfig& config, const DetectorOptions& options = {});

// One ground-truth object, with indices into config.shapes / config.colours.
struct TruthObject {
  int shape = 0, colour = 0;
  double x = 0, y = 0, size = 0;  // px
};
// Every object of a scene (names resolved against `config`; recap::Error for unknown names).
std::vector<TruthObject> truth_objects(const world::Scene& scene,
                                       const world::WorldConfig& config);

// Training targets on the [G, G] grid for a batch of images (one object list per image).
struct DetectorTargets {
  torch::Tensor heatmap;       // [B, 1, G, G] in [0, 1]: max over objects of a Gaussian around
                               // the centre cell, exactly 1 there
  torch::Tensor shape;         // [B, G, G] int64 class of the cell's owner, -1 where none
  torch::Tensor colour;        // [B, G, G] int64, -1 where none
  torch::Tensor class_weight;  // [B, G, G] owner's Gaussian value where heatmap >= 0.3, else 0
  torch::Tensor offset;        // [B, 2, G, G] (x, y) centre inside the cell, at centre cells
  torch::Tensor size;          // [B, 1, G, G] size in cells, at centre cells
  torch::Tensor centre_mask;   // [B, 1, G, G] 1 at centre cells, else 0
  int64_t objects = 0;
};
DetectorTargets encode_targets(const std::vector<std::vector<TruthObject>>& objects,
                               int64_t canvas, int64_t stride);

// The targets as maps a perfect network would output: decode(targets_as_maps(t)) recovers the
// objects (the round trip the tests check).
DetectorMaps targets_as_maps(const DetectorTargets& targets, int64_t num_shapes,
                             int64_t num_colours);

struct DetectorLoss {
  torch::Tensor total;                                  // scalar with grad
  double heatmap = 0, shape = 0, colour = 0, offset = 0, size = 0;  // parts, for the log
};
// Penalty-reduced focal loss on the heatmap (CenterNet's, alpha 2, beta 4) normalised by the
// object count; cross-entropy on shape and colour weighted by class_weight; L1 on offset and
// (weight 0.1) size at centre cells.
DetectorLoss detector_loss(const DetectorMaps& maps, const DetectorTargets& targets);

struct DetectionDecodeOptions {
  double threshold = 0.3;  // minimum centre probability of a detection
  bool heatmap_is_logits = true;  // false: `maps.heatmap` already holds probabilities
};
// 3x3 max-pool NMS on the centre probabilities, threshold, then per peak: argmax shape and
// colour, centre (cell + offset) * stride, size * stride. One list per image, by score
// descending (ties by cell order).
std::vector<std::vector<eval::Detection>> decode(const DetectorMaps& maps,
                                                 const world::WorldConfig& config, int64_t stride,
                                                 const DetectionDecodeOptions& options = {});

// Runs the detector (eval mode, no grad) on images [B, 3, H, W] in [-1, 1] and decodes.
std::vector<std::vector<eval::Detection>> detect(Detector& model, const torch::Tensor& images,
                                                 const world::WorldConfig& config,
                                                 const DetectionDecodeOptions& options = {});

// Renders scenes into a [B, 3, H, W] float tensor in [-1, 1] (data::to_tensor_batch scaling).
torch::Tensor render_batch(const std::vector<world::Scene>& scenes,
                           const world::WorldConfig& config);

// Tensor-side augmentation so the detector reads imperfect generated images. Per image, with
// strengths drawn uniformly from [0, max]: a small affine distortion (scale about the canvas
// centre, translation; border padding), Gaussian blur, brightness/contrast jitter and Gaussian
// pixel noise; the result is clamped to [-1, 1]. Blur and affine are skipped for about a third
// of the images each, so clean images stay in the mix.
struct AugmentOptions {
  double max_scale = 0.06;      // scale drawn from [1 - max, 1 + max]
  double max_shift_px = 1.0;    // translation per axis, px (scaled with canvas / 32)
  double max_blur_sigma = 0.9;  // px (scaled with canvas / 32)
  double max_noise = 0.08;      // std of added noise, in [-1, 1] units
  double max_brightness = 0.1;  // added offset, in [-1, 1] units
  double max_contrast = 0.15;   // contrast factor drawn from [1 - max, 1 + max]
};

// The geometric part of one image's augmentation: x' = c + scale * (x - c) + tx, with c the
// canvas centre (and the same on y).
struct Affine {
  double scale = 1, tx = 0, ty = 0;
};

struct Augmented {
  torch::Tensor images;          // [B, 3, H, W] in [-1, 1]
  std::vector<Affine> affines;   // one per image; apply to ground truth with apply_affine
};
// Deterministic in (images, seed, options): all draws come from a CPU generator seeded with
// `seed`, whatever the images' device.
Augmented augment(const torch::Tensor& images, uint64_t seed, const AugmentOptions& options = {});
// Moves centres and scales sizes as the image was distorted.
// n object-free images [n, 3, canvas, canvas] in [-1, 1]: a flat random colour plus Gaussian
// noise of random strength whose correlation length is 1, 2, 4, ... canvas / 8 px, the look of
// an undertrained diffusion model's samples. The detector learns from them that texture is not
// an object, so garbage cannot score on the prompt metrics. A function of the seed.
torch::Tensor object_free_images(int64_t n, int64_t canvas, uint64_t seed);

std::vector<TruthObject> apply_affine(const std::vector<TruthObject>& objects, const Affine& a,
                                      int64_t canvas);

}  // namespace recap::models
