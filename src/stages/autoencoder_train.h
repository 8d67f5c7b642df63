// Training and checking the latent autoencoder (models/autoencoder.h) that lets step 3 diffuse
// in a latent instead of pixels (t2i.space = latent). It learns from the corpus's web images,
// the images step 3 trains on, so it works on a user's corpus as on the embedded world. It
// must not let the latent model cheat: with an evaluator, the world's held-out renders are
// passed through it and judged like generated images, and the evaluator must still read them
// (count, shape and colour >= 98%, the evaluator's own gate); FID of the reconstructions
// against the renders is the floor any latent model can reach.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/torch_pch.h"
#include "models/autoencoder.h"
#include "stages/evaluator_train.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct AutoencoderTrainOptions {
  models::AutoencoderOptions model;
  int64_t steps = 1500;
  int64_t batch_size = 32;
  double lr = 1e-3;
  int64_t warmup_steps = 50;
  int64_t stats_images = 2000;  // web images the latent standardisation is measured on
  int heldout_scenes = 500;     // renders of the reconstruction check
  int64_t checkpoint_every = 500;
  int keep_last = 3;
  uint64_t seed = 0;
  fs::path evaluator;  // the reconstruction check's judge; empty: no check
  // A perceptual term as SD's autoencoder has (LPIPS on VGG there): the squared distance
  // between a frozen detector backbone's features of reconstruction and image, relative to the
  // features' mean square, times the weight. Never the judge: `recap run` gives it the
  // captioner's vision encoder, another detector from another seed. 0 or no encoder: L1 only.
  double perceptual_weight = 0;
  fs::path perceptual_encoder;
};

// [autoencoder] keys (autoencoder.evaluator included), checkpoint.* and run.seed.
AutoencoderTrainOptions autoencoder_settings(const Config& config);

// The reconstruction check: the evaluator on held-out renders and on the autoencoder's
// reconstructions of the same renders (rounded to 8 bits, as a saved sample is), and FID on
// the evaluator's features of reconstructions against renders, beside the FID of as many
// fresh renders against them (the noise floor of the statistic at this size).
struct ReconstructionCheck {
  EvaluatorAccuracy renders, reconstructions;
  double fid = 0, fid_floor = 0;
  double l1 = 0;  // mean absolute pixel error in [-1, 1] units
  torch::Tensor sheet;  // [2k, 3, S, S]: k renders, then their reconstructions
  bool passes() const { return reconstructions.passes_gate(); }
};
nlohmann::json to_json(const ReconstructionCheck& check);

// Scenes of `world` seeded derive_seed(seed, 0..n-1), rendered, reconstructed and judged.
ReconstructionCheck check_reconstructions(models::Autoencoder& autoencoder,
                                          const fs::path& evaluator_dir,
                                          const world::WorldConfig& world, int n_scenes,
                                          uint64_t seed);

struct AutoencoderTrainResult {
  int64_t start_step = 0, steps = 0;
  double last_loss = 0;
  std::optional<ReconstructionCheck> check;  // with an evaluator
  fs::path weights;                          // out_dir/autoencoder.safetensors
};

// Trains on corpus_dir's web split with train::train (L1 loss, plus the perceptual term when
// set; checkpoints and metrics.jsonl under out_dir/train, resumed from there), measures the
// latent statistics on the first stats_images web images, runs the reconstruction check when
// an evaluator is given, and writes out_dir/autoencoder.safetensors, out_dir/autoencoder.json
// (options, loss, check) and, with the check, out_dir/reconstructions.png (held-out renders
// over their reconstructions). Throws recap::Error for bad options or a corpus without web
// shards.
AutoencoderTrainResult train_autoencoder(const fs::path& corpus_dir, const fs::path& out_dir,
                                         const Config& config, int threads);

// The web images of corpus_dir in shard order (the first `limit`; all when negative), encoded
// in fixed batches so the same binary gives the same bits on every call: key -> standardised
// latent [C, S / f, S / f] on the CPU. Throws recap::Error for a key met twice.
std::map<std::string, torch::Tensor> encode_corpus(models::Autoencoder& model,
                                                   const fs::path& corpus_dir,
                                                   const Config& config, int workers,
                                                   int64_t limit = -1);

// out_dir/autoencoder.safetensors for a folder, the path itself for a .safetensors file.
fs::path autoencoder_weights_path(const fs::path& dir_or_file);
// Throws recap::Error naming the file when it is missing, is not an autoencoder (no
// autoencoder_options metadata, or bad ones), or its tensors do not fit.
models::Autoencoder load_autoencoder(const fs::path& dir_or_file);

}  // namespace recap::stages
