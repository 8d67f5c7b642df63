// Model sizes from the config ([text_encoder], [unet]). Kept apart from settings.h so that
// stages without models do not pull in torch.
#pragma once
#include <cstdint>

#include "core/config.h"
#include "models/text_encoder.h"
#include "models/unet.h"
#include "stages/evaluator_train.h"

namespace recap {

// The vocabulary size comes from the trained tokenizer.
models::TextEncoderOptions text_encoder_settings(const Config& config, int64_t vocab_size);
// The UNet's context width is the text encoder's width.
models::UNetOptions unet_settings(const Config& config);
// [evaluator], seeded from run.seed.
stages::EvaluatorTrainOptions evaluator_settings(const Config& config);
// Throws recap::Error naming every measure below 98% when the config's gate is on.
void check_evaluator_gate(const Config& config, const stages::EvaluatorAccuracy& accuracy);

}  // namespace recap
