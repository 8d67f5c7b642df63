#include "core/torch_pch.h"
#include "models/evaluator.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "data/tensor_batch.h"
#include "nn/conv.h"
#include "world/render.h"

namespace recap::models {

namespace F = torch::nn::functional;

DetectorImpl::DetectorImpl(int64_t num_shapes, int64_t num_colours, const DetectorOptions& o)
    : options_(o), num_shapes_(num_shapes), num_colours_(num_colours) {
  if (num_shapes < 1 || num_colours < 1)
    throw Error(fmt::format("detector: needs at least one shape and colour (got {} and {})",
                            num_shapes, num_colours));
  if (o.depth < 1) throw Error(fmt::format("detector: depth {} must be >= 1", o.depth));
  backbone = register_module("backbone", nn::ConvBackbone(o));
  head = register_module("head", nn::conv_block(o.width, o.width));
  out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                   o.width, 1 + num_shapes + num_colours + 2 + 1, 1)));
  // CenterNet's prior: start the centre heatmap at p = 0.1 everywhere, so the many empty cells
  // do not swamp the first steps of the focal loss.
  torch::NoGradGuard no_grad;
  out->bias[0].fill_(-2.19);
}

DetectorMaps DetectorImpl::forward(const torch::Tensor& images) {
  auto y = out->forward(head->forward(backbone->forward(images)));  // [B, 1 + S + C + 3, G, G]
  auto parts = y.split_with_sizes({1, num_shapes_, num_colours_, 2, 1}, 1);
  return {parts[0], parts[1], parts[2], parts[3], parts[4]};
}

torch::Tensor DetectorImpl::features(const torch::Tensor& images) {
  return backbone->forward(images).mean({2, 3});  // [B, width]
}

Detector make_detector(const world::WorldConfig& config, const DetectorOptions& options) {
  if (config.canvas % options.stride != 0)
    throw Error(fmt::format("detector: canvas {} px is not a multiple of the stride {}",
                            config.canvas, options.stride));
  return Detector(static_cast<int64_t>(config.shapes.size()),
                  static_cast<int64_t>(config.colours.size()), options);
}

std::vector<TruthObject> truth_objects(const world::Scene& scene,
                                       const world::WorldConfig& config) {
  std::vector<TruthObject> out;
  for (const auto& g : scene.groups) {
    auto s = std::find(config.shapes.begin(), config.shapes.end(), g.shape);
    auto c = std::find_if(config.colours.begin(), config.colours.end(),
                          [&](const world::NamedColour& nc) { return nc.name == g.colour; });
    if (s == config.shapes.end() || c == config.colours.end())
      throw Error(fmt::format("evaluator: scene group '{} {}' is not in the world's vocabulary",
                              g.colour, g.shape));
    for (const auto& o : g.objects)
      out.push_back({static_cast<int>(s - config.shapes.begin()),
                     static_cast<int>(c - config.colours.begin()), o.x, o.y, o.size});
  }
  return out;
}

DetectorTargets encode_targets(const std::vector<std::vector<TruthObject>>& objects,
                               int64_t canvas, int64_t stride) {
  const int64_t b = static_cast<int64_t>(objects.size()), g = canvas / stride;
  auto heat = torch::zeros({b, 1, g, g});
  auto shape = torch::full({b, g, g}, -1, torch::kInt64);
  auto colour = torch::full({b, g, g}, -1, torch::kInt64);
  auto weight = torch::zeros({b, g, g});
  auto offset = torch::zeros({b, 2, g, g});
  auto size = torch::zeros({b, 1, g, g});
  auto mask = torch::zeros({b, 1, g, g});
  auto h = heat.accessor<float, 4>();
  auto sh = shape.accessor<int64_t, 3>();
  auto co = colour.accessor<int64_t, 3>();
  auto w = weight.accessor<float, 3>();
  auto of = offset.accessor<float, 4>();
  auto sz = size.accessor<float, 4>();
  auto m = mask.accessor<float, 4>();
  int64_t count = 0;
  const double s = static_cast<double>(stride);
  for (int64_t i = 0; i < b; ++i) {
    for (const auto& o : objects[i]) {
      // An augmented centre can leave the canvas by a fraction of a pixel; it still belongs to
      // the border cell.
      const double cx = std::clamp(o.x / s, 0.0, g - 1e-6), cy = std::clamp(o.y / s, 0.0, g - 1e-6);
      const int64_t col = static_cast<int64_t>(cx), row = static_cast<int64_t>(cy);
      // Gaussian around the centre cell, sigma ~ size / 6 (CenterNet sizes its radius by the
      // box); at 32 px that is 0.6..0.9 cells, so a neighbour gets <= 0.54 and the centre cell
      // is the only 1.
      const double sigma = std::max(0.5, o.size / s / 6.0);
      const int64_t radius = static_cast<int64_t>(std::ceil(3 * sigma));
      for (int64_t r = std::max<int64_t>(0, row - radius); r <= std::min(g - 1, row + radius); ++r)
        for (int64_t c = std::max<int64_t>(0, col - radius); c <= std::min(g - 1, col + radius);
             ++c) {
          const double d2 = double((r - row) * (r - row) + (c - col) * (c - col));
          const float v = static_cast<float>(std::exp(-d2 / (2 * sigma * sigma)));
          if (v <= h[i][0][r][c]) continue;
          h[i][0][r][c] = v;
          // The cell's owner is the object whose Gaussian is highest there; its classes are
          // taught near the centre too, so a peak one cell off still reads the right class.
          if (v >= 0.3f) {
            sh[i][r][c] = o.shape;
            co[i][r][c] = o.colour;
            w[i][r][c] = v;
          }
        }
      of[i][0][row][col] = static_cast<float>(cx - col);
      of[i][1][row][col] = static_cast<float>(cy - row);
      sz[i][0][row][col] = static_cast<float>(o.size / s);
      m[i][0][row][col] = 1;
      ++count;
    }
  }
  return {heat, shape, colour, weight, offset, size, mask, count};
}

DetectorMaps targets_as_maps(const DetectorTargets& t, int64_t num_shapes, int64_t num_colours) {
  auto one_hot = [](const torch::Tensor& labels, int64_t n) {  // [B, G, G] -> [B, n, G, G]
    return F::one_hot(labels.clamp_min(0), n).permute({0, 3, 1, 2}).to(torch::kFloat32);
  };
  return {t.heatmap, one_hot(t.shape, num_shapes), one_hot(t.colour, num_colours), t.offset,
          t.size};
}

DetectorLoss detector_loss(const DetectorMaps& maps, const DetectorTargets& t) {
  const auto dev = maps.heatmap.device();
  auto gt = t.heatmap.to(dev), pos = t.centre_mask.to(dev);
  const double n = std::max<int64_t>(1, t.objects);
  // Focal loss in log-sigmoid form (no log(0)): positives weighted by (1-p)^2, negatives by
  // p^2 and the penalty reduction (1 - gt)^4 near a centre.
  auto logit = maps.heatmap;
  auto p = torch::sigmoid(logit);
  auto pos_loss = F::logsigmoid(logit) * (1 - p).pow(2) * pos;
  auto neg_loss = F::logsigmoid(-logit) * p.pow(2) * (1 - gt).pow(4) * (1 - pos);
  auto heat = -(pos_loss.sum() + neg_loss.sum()) / n;

  auto w = t.class_weight.to(dev);
  auto wsum = w.sum().clamp_min(1e-6);
  auto ce = [&](const torch::Tensor& logits, const torch::Tensor& labels) {
    auto per_cell = F::cross_entropy(logits, labels.to(dev).clamp_min(0),
                                     F::CrossEntropyFuncOptions().reduction(torch::kNone));
    return (per_cell * w).sum() / wsum;  // [B, G, G] weighted mean
  };
  auto shape = ce(maps.shape, t.shape);
  auto colour = ce(maps.colour, t.colour);
  auto offset = ((maps.offset - t.offset.to(dev)).abs() * pos).sum() / (2 * n);
  auto size = ((maps.size - t.size.to(dev)).abs() * pos).sum() / n;
  DetectorLoss out;
  out.total = heat + shape + colour + offset + 0.1 * size;
  out.heatmap = heat.item<double>();
  out.shape = shape.item<double>();
  out.colour = colour.item<double>();
  out.offset = offset.item<double>();
  out.size = size.item<double>();
  return out;
}

std::vector<std::vector<eval::Detection>> decode(const DetectorMaps& maps,
                                                 const world::WorldConfig& config, int64_t stride,
                                                 const DetectionDecodeOptions& options) {
  torch::NoGradGuard no_grad;
  auto prob = options.heatmap_is_logits ? torch::sigmoid(maps.heatmap) : maps.heatmap;
  prob = prob.detach().to(torch::kCPU, torch::kFloat32);
  // A cell is a peak when it is the maximum of its 3x3 neighbourhood (objects are >= 2 cells
  // apart, see the header, so this never merges two of them).
  auto pooled = F::max_pool2d(prob, F::MaxPool2dFuncOptions(3).stride(1).padding(1));
  auto peaks = (prob == pooled).logical_and(prob >= options.threshold).squeeze(1);  // [B, G, G]
  auto shape_idx = maps.shape.argmax(1).to(torch::kCPU).contiguous();               // [B, G, G]
  auto colour_idx = maps.colour.argmax(1).to(torch::kCPU).contiguous();
  auto offset = maps.offset.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  auto size = maps.size.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (shape_idx.max().item<int64_t>() >= static_cast<int64_t>(config.shapes.size()) ||
      colour_idx.max().item<int64_t>() >= static_cast<int64_t>(config.colours.size()))
    throw Error("evaluator: the detector's class count does not match the world config");
  auto pa = prob.accessor<float, 4>();
  auto pk = peaks.accessor<bool, 3>();
  auto sa = shape_idx.accessor<int64_t, 3>();
  auto ca = colour_idx.accessor<int64_t, 3>();
  auto oa = offset.accessor<float, 4>();
  auto za = size.accessor<float, 4>();
  const double s = static_cast<double>(stride);
  std::vector<std::vector<eval::Detection>> out(prob.size(0));
  for (int64_t b = 0; b < prob.size(0); ++b) {
    for (int64_t r = 0; r < prob.size(2); ++r)
      for (int64_t c = 0; c < prob.size(3); ++c) {
        if (!pk[b][r][c]) continue;
        eval::Detection d;
        d.shape = config.shapes[sa[b][r][c]];
        d.colour = config.colours[ca[b][r][c]].name;
        d.x = (c + oa[b][0][r][c]) * s;
        d.y = (r + oa[b][1][r][c]) * s;
        d.size = za[b][0][r][c] * s;
        d.score = pa[b][0][r][c];
        out[b].push_back(std::move(d));
      }
    std::stable_sort(out[b].begin(), out[b].end(),
                     [](const auto& x, const auto& y) { return x.score > y.score; });
  }
  return out;
}

std::vector<std::vector<eval::Detection>> detect(Detector& model, const torch::Tensor& images,
                                                 const world::WorldConfig& config,
                                                 const DetectionDecodeOptions& options) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  auto maps = model->forward(images);
  model->train(was_training);
  return decode(maps, config, model->options().stride, options);
}

torch::Tensor render_batch(const std::vector<world::Scene>& scenes,
                           const world::WorldConfig& config) {
  std::vector<data::DecodedSample> samples(scenes.size());
  for (size_t i = 0; i < scenes.size(); ++i) samples[i].image = world::render(scenes[i], config);
  return data::to_tensor_batch(samples).images;
}

torch::Tensor object_free_images(int64_t n, int64_t canvas, uint64_t seed) {
  torch::NoGradGuard no_grad;
  if (n < 0 || canvas < 8)
    throw Error(fmt::format("object_free_images: {} images of {} px", n, canvas));
  auto gen = at::detail::createCPUGenerator(seed);
  int levels = 1;  // cells of 1, 2, ..., canvas / 8 px: coarser blobs would pass for circles
  while ((int64_t{8} << levels) <= canvas) ++levels;
  auto images = torch::empty({n, 3, canvas, canvas});
  for (int64_t i = 0; i < n; ++i) {
    auto u = torch::rand({2}, gen, torch::kFloat64);
    const int64_t cell = int64_t{1} << std::min<int64_t>(levels - 1, u[0].item<double>() * levels);
    const int64_t side = (canvas + cell - 1) / cell;
    auto field = torch::randn({1, 3, side, side}, gen);
    if (cell > 1)
      field = F::interpolate(field, F::InterpolateFuncOptions()
                                        .size(std::vector<int64_t>{canvas, canvas})
                                        .mode(torch::kBilinear)
                                        .align_corners(false));
    auto background = torch::rand({1, 3, 1, 1}, gen) * 2 - 1;
    const double strength = 0.2 + 0.8 * u[1].item<double>();
    images[i] = (background + strength * field).clamp(-1, 1)[0];
  }
  return images;
}

Augmented augment(const torch::Tensor& images, uint64_t seed, const AugmentOptions& o) {
  torch::NoGradGuard no_grad;
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  const double px = static_cast<double>(w) / 32;  // strengths are stated for a 32 px canvas
  auto gen = at::detail::createCPUGenerator(seed);
  // Uniform draws per image: [affine?, scale, tx, ty, blur?, sigma, brightness, contrast, noise].
  auto u = torch::rand({b, 9}, gen, torch::kFloat64);
  auto noise = torch::randn({b, 3, h, w}, gen, torch::kFloat32);
  auto ua = u.accessor<double, 2>();

  Augmented out;
  auto theta = torch::zeros({b, 2, 3});
  auto warp = torch::zeros({b}, torch::kBool);
  const int64_t radius =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3 * o.max_blur_sigma * px)));
  const int64_t k = 2 * radius + 1;
  auto kernels = torch::zeros({b, k, k});
  auto brightness = torch::zeros({b, 1, 1, 1}), contrast = torch::ones({b, 1, 1, 1});
  auto noise_std = torch::zeros({b, 1, 1, 1});
  for (int64_t i = 0; i < b; ++i) {
    Affine a;
    if (ua[i][0] < 2.0 / 3) {
      a.scale = 1 + o.max_scale * (2 * ua[i][1] - 1);
      a.tx = o.max_shift_px * px * (2 * ua[i][2] - 1);
      a.ty = o.max_shift_px * px * (2 * ua[i][3] - 1);
      warp[i] = true;
    }
    out.affines.push_back(a);
    // grid_sample maps output to input coordinates, normalised to [-1, 1] (align_corners
    // false: u = (x - c) / c for a continuous coordinate x), so theta inverts
    // x' = c + s (x - c) + t.
    theta[i][0][0] = 1 / a.scale;
    theta[i][0][2] = -a.tx / (w / 2.0) / a.scale;
    theta[i][1][1] = 1 / a.scale;
    theta[i][1][2] = -a.ty / (h / 2.0) / a.scale;
    const double sigma = ua[i][4] < 2.0 / 3 ? o.max_blur_sigma * px * ua[i][5] : 0;
    if (sigma < 0.05) {
      kernels[i][radius][radius] = 1;  // no blur: a delta kernel
    } else {
      auto x = torch::arange(-radius, radius + 1, torch::kFloat64);
      auto g1 = torch::exp(-x * x / (2 * sigma * sigma));
      g1 = g1 / g1.sum();
      kernels[i] = torch::outer(g1, g1).to(torch::kFloat32);
    }
    brightness[i] = o.max_brightness * (2 * ua[i][6] - 1);
    contrast[i] = 1 + o.max_contrast * (2 * ua[i][7] - 1);
    noise_std[i] = o.max_noise * ua[i][8];
  }
  const auto dev = images.device();
  auto x = images.to(torch::kFloat32);
  if (warp.any().item<bool>()) {
    auto grid = F::affine_grid(theta.to(dev), {b, 3, h, w}, /*align_corners=*/false);
    auto warped = F::grid_sample(x, grid, F::GridSampleFuncOptions()
                                              .mode(torch::kBilinear)
                                              .padding_mode(torch::kBorder)
                                              .align_corners(false));
    x = torch::where(warp.to(dev).view({b, 1, 1, 1}), warped, x);
  }
  // Per-image blur as one grouped convolution: [1, B*3, H, W] with B*3 kernels [1, k, k].
  auto weight = kernels.repeat_interleave(3, 0).unsqueeze(1).to(dev);  // [B*3, 1, k, k]
  auto padded = F::pad(x.reshape({1, b * 3, h, w}),
                       F::PadFuncOptions({radius, radius, radius, radius}).mode(torch::kReplicate));
  x = F::conv2d(padded, weight, F::Conv2dFuncOptions().groups(b * 3)).reshape({b, 3, h, w});
  auto mean = x.mean({1, 2, 3}, /*keepdim=*/true);
  x = (x - mean) * contrast.to(dev) + mean + brightness.to(dev);
  x = x + noise.to(dev) * noise_std.to(dev);
  out.images = x.clamp(-1, 1);
  return out;
}

std::vector<TruthObject> apply_affine(const std::vector<TruthObject>& objects, const Affine& a,
                                      int64_t canvas) {
  const double c = canvas / 2.0;
  std::vector<TruthObject> out = objects;
  for (auto& o : out) {
    o.x = c + a.scale * (o.x - c) + a.tx;
    o.y = c + a.scale * (o.y - c) + a.ty;
    o.size *= a.scale;
  }
  return out;
}

}  // namespace recap::models
