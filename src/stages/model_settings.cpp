#include "core/torch_pch.h"
#include "stages/model_settings.h"

namespace recap {

models::TextEncoderOptions text_encoder_settings(const Config& c, int64_t vocab_size) {
  return {vocab_size, c.get_int("text_encoder.max_length"), c.get_int("text_encoder.dim"),
          c.get_int("text_encoder.layers"), c.get_int("text_encoder.heads")};
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
  o.context_dim = c.get_int("text_encoder.dim");
  return o;
}

}  // namespace recap
