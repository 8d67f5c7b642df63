#include "core/torch_pch.h"
#include "models/unet.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "nn/embeddings.h"

namespace recap::models {

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2));
}

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels));
}

}  // namespace

ResBlockImpl::ResBlockImpl(int64_t in, int64_t out, int64_t time_dim, int64_t groups,
                           double p) {
  norm1 = register_module("norm1", group_norm(groups, in));
  conv1 = register_module("conv1", conv(in, out, 3));
  if (time_dim > 0) time_proj = register_module("time_proj", torch::nn::Linear(time_dim, out));
  norm2 = register_module("norm2", group_norm(groups, out));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  conv2 = register_module("conv2", conv(out, out, 3));
  if (in != out) skip = register_module("skip", conv(in, out, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& time) {
  auto h = conv1(torch::silu(norm1(x)));
  if (time_proj) h = h + time_proj(torch::silu(time)).unsqueeze(-1).unsqueeze(-1);  // [B,out,1,1]
  h = conv2(dropout(torch::silu(norm2(h))));
  return (skip ? skip(x) : x) + h;
}

SpatialTransformerImpl::SpatialTransformerImpl(int64_t channels, int64_t heads,
                                               int64_t context_dim, int64_t groups) {
  norm = register_module("norm", group_norm(groups, channels));
  proj_in = register_module("proj_in", conv(channels, channels, 1));
  block = register_module("block",
                          nn::TransformerBlock(nn::TransformerBlockOptions{channels, heads,
                                                                           context_dim}));
  proj_out = register_module("proj_out", conv(channels, channels, 1));
}

torch::Tensor SpatialTransformerImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                              const torch::Tensor& context_padding) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto tokens = proj_in(norm(x)).flatten(2).transpose(1, 2);  // [B, H*W, C]
  tokens = block->forward(tokens, context, false, nullptr, context_padding);
  return x + proj_out(tokens.transpose(1, 2).reshape({b, c, h, w}));
}

UNetImpl::UNetImpl(UNetOptions o) : options_(o) {
  const int64_t levels = static_cast<int64_t>(o.channel_mult.size());
  if (levels == 0 || o.res_blocks <= 0 || o.channels <= 0)
    throw Error("unet: channel_mult, res_blocks and channels must be non-empty / positive");
  for (int64_t m : o.channel_mult)
    if (m <= 0 || (o.channels * m) % o.groups != 0 || (o.channels * m) % o.heads != 0)
      throw Error(fmt::format("unet: width {} x {} must be positive and divisible by groups ({}) "
                              "and heads ({})", o.channels, m, o.groups, o.heads));
  for (int64_t l : o.attention_levels)
    if (l < 0 || l >= levels)
      throw Error(fmt::format("unet: attention level {} outside 0..{}", l, levels - 1));
  auto has_attention = [&](int64_t level) {
    return std::find(o.attention_levels.begin(), o.attention_levels.end(), level) !=
           o.attention_levels.end();
  };

  if (o.patch < 1) throw Error(fmt::format("unet: patch must be >= 1, got {}", o.patch));
  const int64_t time_dim = 4 * o.channels;
  time_mlp = register_module(
      "time_mlp", torch::nn::Sequential(torch::nn::Linear(o.channels, time_dim), torch::nn::SiLU(),
                                        torch::nn::Linear(time_dim, time_dim)));
  if (o.pooled_text)
    text_pool = register_module("text_pool", torch::nn::Linear(o.context_dim, time_dim));
  conv_in = register_module("conv_in", conv(o.in_channels * o.patch * o.patch, o.channels, 3));

  // Down path; `skips` records the width of every activation the up path will concatenate.
  down = register_module("down", torch::nn::ModuleList());
  std::vector<int64_t> skips = {o.channels};
  int64_t width = o.channels;
  for (int64_t i = 0; i < levels; ++i) {
    UNetLevel level;
    level->res = level->register_module("res", torch::nn::ModuleList());
    level->attn = level->register_module("attn", torch::nn::ModuleList());
    const int64_t out = o.channels * o.channel_mult[i];
    for (int64_t j = 0; j < o.res_blocks; ++j) {
      level->res->push_back(ResBlock(width, out, time_dim, o.groups, o.dropout));
      if (has_attention(i))
        level->attn->push_back(SpatialTransformer(out, o.heads, o.context_dim, o.groups));
      width = out;
      skips.push_back(width);
    }
    if (i + 1 < levels) {
      level->resample = level->register_module("downsample", conv(width, width, 3, 2));
      skips.push_back(width);
    }
    down->push_back(level);
  }

  mid_res1 = register_module("mid_res1", ResBlock(width, width, time_dim, o.groups, o.dropout));
  mid_attn = register_module("mid_attn",
                             SpatialTransformer(width, o.heads, o.context_dim, o.groups));
  mid_res2 = register_module("mid_res2", ResBlock(width, width, time_dim, o.groups, o.dropout));

  // Up path, deepest level first: one more ResBlock per level than on the way down, each
  // taking one skip.
  up = register_module("up", torch::nn::ModuleList());
  for (int64_t i = levels - 1; i >= 0; --i) {
    UNetLevel level;
    level->res = level->register_module("res", torch::nn::ModuleList());
    level->attn = level->register_module("attn", torch::nn::ModuleList());
    const int64_t out = o.channels * o.channel_mult[i];
    for (int64_t j = 0; j <= o.res_blocks; ++j) {
      const int64_t skip = skips.back();
      skips.pop_back();
      level->res->push_back(ResBlock(width + skip, out, time_dim, o.groups, o.dropout));
      if (has_attention(i))
        level->attn->push_back(SpatialTransformer(out, o.heads, o.context_dim, o.groups));
      width = out;
    }
    if (i > 0) level->resample = level->register_module("upsample", conv(width, width, 3));
    up->push_back(level);
  }

  norm_out = register_module("norm_out", group_norm(o.groups, width));
  conv_out = register_module("conv_out", conv(width, o.out_channels * o.patch * o.patch, 3));

  if (o.zero_init) {
    torch::NoGradGuard no_grad;
    auto zero = [](torch::nn::Conv2d& c) {
      c->weight.zero_();
      c->bias.zero_();
    };
    zero(conv_out);
    zero(mid_res1->conv2);
    zero(mid_res2->conv2);
    zero(mid_attn->proj_out);
    for (auto* path : {&down, &up})
      for (const auto& m : **path) {
        auto& level = *m->as<UNetLevel>();
        for (const auto& r : *level.res) zero(r->as<ResBlock>()->conv2);
        for (const auto& a : *level.attn) zero(a->as<SpatialTransformer>()->proj_out);
      }
  }
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                const torch::Tensor& context,
                                const torch::Tensor& context_padding, FeatureTap* tap) {
  if (tap && (tap->level < 0 || tap->level >= static_cast<int64_t>(down->size())))
    throw Error(fmt::format("unet: feature tap at level {} outside 0..{}", tap->level,
                            down->size() - 1));
  const int64_t factor = options_.patch << (options_.channel_mult.size() - 1);
  if (x.dim() != 4 || x.size(2) % factor != 0 || x.size(3) % factor != 0)
    throw Error(fmt::format("unet: input must be [B, C, H, W] with H and W divisible by {}",
                            factor));
  auto time = time_mlp->forward(nn::timestep_embedding(t, options_.channels));  // [B, 4C]
  if (text_pool) {
    // Mean over the prompt's tokens [B, S, D] -> [B, D]; padding carries no weight.
    auto keep = context_padding.defined()
                    ? context_padding.logical_not().to(context.scalar_type()).unsqueeze(-1)
                    : torch::ones({context.size(0), context.size(1), 1}, context.options());
    time = time + text_pool((context * keep).sum(1) / keep.sum(1).clamp_min(1));
  }
  auto run_level = [&](UNetLevelImpl& level, torch::Tensor h, int64_t j) {
    h = level.res[j]->as<ResBlock>()->forward(h, time);
    if (!level.attn->is_empty())
      h = level.attn[j]->as<SpatialTransformer>()->forward(h, context, context_padding);
    return h;
  };

  auto h = conv_in(options_.patch > 1 ? torch::pixel_unshuffle(x, options_.patch) : x);
  std::vector<torch::Tensor> skips = {h};
  for (size_t i = 0; i < down->size(); ++i) {
    auto& level = *down[i]->as<UNetLevel>();
    for (size_t j = 0; j < level.res->size(); ++j) {
      h = run_level(level, h, static_cast<int64_t>(j));
      skips.push_back(h);
    }
    if (tap && tap->level == static_cast<int64_t>(i)) tap->features = h;
    if (level.resample) {
      h = level.resample(h);
      skips.push_back(h);
    }
  }
  h = mid_res2(mid_attn(mid_res1(h, time), context, context_padding), time);
  for (const auto& m : *up) {
    auto& level = *m->as<UNetLevel>();
    for (size_t j = 0; j < level.res->size(); ++j) {
      h = torch::cat({h, skips.back()}, 1);
      skips.pop_back();
      h = run_level(level, h, static_cast<int64_t>(j));
    }
    if (level.resample)
      h = level.resample(torch::nn::functional::interpolate(
          h, torch::nn::functional::InterpolateFuncOptions()
                 .scale_factor(std::vector<double>{2, 2})
                 .mode(torch::kNearest)));
  }
  auto out = conv_out(torch::silu(norm_out(h)));
  return options_.patch > 1 ? torch::pixel_shuffle(out, options_.patch) : out;
}

}  // namespace recap::models
