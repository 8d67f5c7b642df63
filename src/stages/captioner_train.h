// RECAP step 1: the captioner (models/captioner.h) is pre-trained on the web corpus's
// alt-text, then fine-tuned on the small human-captioned set, each sample on its long caption
// (style <long>) or its short one (<short>), so it can relabel the corpus. Both stages train
// through train::train from samples streamed by data::Loader, and resume from their
// checkpoints after a kill. The data is the embedded world's corpus, or a user's own: any image
// sources (data::open_source) whose captions are the alt-text, and a human.jsonl set
// (stages/human_set.h) naming some of their samples.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/torch_pch.h"
#include "models/captioner.h"
#include "text/tokenizer.h"

namespace recap {

// [captioner] model sizes; the vocabulary comes from the tokenizer, image_size from the
// corpus's world canvas.
models::CaptionerOptions captioner_settings(const Config& config, int64_t vocab_size,
                                            int image_size);

}  // namespace recap

namespace recap::stages {

namespace fs = std::filesystem;

struct CaptionerStageResult {
  bool skipped = false;    // its final weights were already there
  int64_t start_step = 0;  // > 0 when resumed from a checkpoint
  int64_t steps = 0;
  double last_loss = 0;
  int64_t empty_skipped = 0;  // samples without a target caption (empty alt-text)
  double seconds = 0;
};

struct CaptionerTrainResult {
  CaptionerStageResult pretrain, finetune;
  models::CaptionerOptions options;
};

// Writes out_dir/pretrain/ and out_dir/finetune/ (checkpoints, metrics.jsonl), then
// out_dir/captioner_pretrain.safetensors and out_dir/captioner.safetensors (the fine-tuned
// model); metadata: "options" (JSON), "tokenizer_sha256", "stage". A stage whose weights exist
// is skipped; a killed stage resumes from its newest checkpoint. `threads` is the loader's
// decode workers when captioner.workers is 0. The initial weights come from torch's global
// generator, seeded from run.seed here. Throws recap::Error naming the file for a missing
// tokenizer or a folder that is not a finished corpus.
CaptionerTrainResult train_captioner(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                                     const fs::path& out_dir, const Config& config, int threads);

// The same on a user's data: pre-trains on the captions of `sources` (expanded, e.g. by
// data::expand_sources), read with `config`'s [data] keys, at world.canvas pixels; fine-tunes
// on `human_set`, whose samples are first copied out of the sources into
// out_dir/human/human-00000.tar (stages/human_set.h; a bad set is refused there, before
// training). A key with both styles is trained on its long caption with probability
// captioner.long_fraction, one with a single style on that one. No held-out validation: a
// user's data has no eval split.
CaptionerTrainResult train_captioner_on_sources(const std::vector<fs::path>& sources,
                                                const fs::path& human_set,
                                                const fs::path& tokenizer_model,
                                                const fs::path& out_dir, const Config& config,
                                                int threads);

// A captioner saved by train_captioner, rebuilt from its metadata, in eval mode. Throws
// recap::Error naming the file when it is unreadable, lacks the metadata, or was trained with
// another tokenizer.
models::Captioner load_captioner(const fs::path& path, const text::Tokenizer& tokenizer);

}  // namespace recap::stages
