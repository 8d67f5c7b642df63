#include "core/torch_pch.h"
#include "stages/model_settings.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace recap {

models::TextEncoderOptions text_encoder_settings(const Config& c, int64_t vocab_size) {
  return {vocab_size, c.get_int("text_encoder.max_length"), c.get_int("text_encoder.dim"),
          c.get_int("text_encoder.layers"), c.get_int("text_encoder.heads"),
          c.get_bool("text_encoder.causal")};
}

models::UNetOptions unet_settings(const Config& c) {
  models::UNetOptions o;
  o.channels = c.get_int("unet.channels");
  o.channel_mult = c.get_ints("unet.channel_mult");
  o.res_blocks = c.get_int("unet.res_blocks");
  o.attention_levels = c.get_ints("unet.attention_levels");
  o.heads = c.get_int("unet.heads");
  o.groups = c.get_int("unet.groups");
  o.dropout = c.get_float("unet.dropout");
  o.patch = c.get_int("unet.patch");
  o.zero_init = c.get_bool("unet.zero_init");
  o.pooled_text = c.get_bool("unet.pooled_text");
  o.context_dim = c.get_int("text_encoder.dim");
  return o;
}

stages::EvaluatorTrainOptions evaluator_settings(const Config& c) {
  stages::EvaluatorTrainOptions o;
  o.steps = c.get_int("evaluator.steps");
  o.batch_size = c.get_int("evaluator.batch_size");
  o.lr = c.get_float("evaluator.lr");
  o.object_free = c.get_float("evaluator.object_free");
  o.heldout_scenes = static_cast<int>(c.get_int("evaluator.heldout_scenes"));
  o.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  return o;
}

void check_evaluator_gate(const Config& c, const stages::EvaluatorAccuracy& a) {
  constexpr double kGate = 0.98;
  if (!c.get_bool("evaluator.gate") || a.passes_gate(kGate)) return;
  std::vector<std::string> below;
  for (auto [name, value] : {std::pair{"exact count", a.count_exact}, std::pair{"shape", a.shape},
                             std::pair{"colour", a.colour}})
    if (value < kGate) below.push_back(fmt::format("{} {:.2f}%", name, 100 * value));
  throw Error(fmt::format("evaluator gate failed on {} held-out renders: {} (need 98%); it cannot "
                          "be trusted to judge generated images. Train longer "
                          "(--set evaluator.steps=N) or check the world settings",
                          a.images, fmt::join(below, ", ")));
}

}  // namespace recap
