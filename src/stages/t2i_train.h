// RECAP step 3: train the text-to-image model (stages/t2i_model.h) on the web corpus with the
// captions of one experiment arm: alt-text (the baseline), recaptions (long, or short and long
// mixed), or the human ground truth only a synthetic world has. Same architecture, steps and
// seeds for every arm; only the caption source differs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/weights.h"
#include "diffusion/loss.h"
#include "stages/arm_captions.h"
#include "stages/competence.h"
#include "stages/t2i_model.h"
#include "text/tokenizer.h"

namespace recap::stages {

struct T2iTrainOptions {
  T2iModelOptions model;   // text.vocab_size is set from the tokenizer
  SampleOptions sample;    // training parameterisation + validation sampling
  int64_t steps = 2000;
  int64_t batch_size = 32;
  double lr = 3e-4;
  int64_t warmup_steps = 100;
  double ema_decay = 0.999;
  double grad_clip = 1.0;
  double beta1 = 0.9, beta2 = 0.999;  // AdamW's moment decays
  double weight_decay = 0.01;         // AdamW's decoupled decay
  // Share of captions replaced by the empty one: its ids [BOS, EOS, PAD...] are exactly the
  // unconditional row classifier-free guidance samples with (unconditional_ids), so the
  // unconditional branch sees the empty prompt's encoding that dropout trained.
  double cfg_dropout = 0.1;
  double min_snr_gamma = 5;
  double noise_offset = 0;
  diffusion::TimestepDensity timestep_density;  // which noise levels training visits
  ArmCaptionOptions captions;  // the arm: which caption each web image is trained with
  // Photographs of any size and aspect: the largest square, centred or at a random offset,
  // resized to sample.image_size, and mirrored half the time with flip (data/image.h).
  data::Crop crop = data::Crop::kCenter;
  bool flip = false;
  int64_t validate_every = 500;
  int64_t checkpoint_every = 500;
  int keep_last = 3;
  int64_t log_every = 10;
  int workers = 0;  // loader decode threads; 0: the `threads` train_t2i is given
  uint64_t seed = 0;
  fs::path init;               // a whole t2i model to start from; empty: random weights
  fs::path text_encoder;       // weights to start the text encoder from; empty: from scratch
  bool freeze_text = false;    // the text encoder keeps its weights; only the UNet trains
  bool allow_partial = false;  // text_encoder may lack tensors (they keep their init)
  fs::path autoencoder;        // latent space: the trained autoencoder; empty: pixel space
  double repa_weight = 0;      // REPA loss weight; 0: off
  fs::path repa_encoder;       // REPA's frozen encoder: a detector (its backbone's features)
  int64_t repa_level = 1;      // the UNet down-path level aligned with it
  // A curriculum (fewer objects first, as MOSAIC suggests): the first curriculum_steps
  // batches hold only scenes of at most curriculum_max_groups groups; 0: off.
  int64_t curriculum_steps = 0;
  int64_t curriculum_max_groups = 1;
  fs::path probe_evaluator;    // competence probe at every validation; empty: none
  int64_t probe_images = 100;
};

// [t2i], [text_encoder], [unet], [checkpoint] and run.seed from `config`; the model's
// vocabulary from `vocab_size`, the image size from t2i.image_size or, when that is 0, from
// `canvas`.
T2iTrainOptions t2i_train_options(const Config& config, int64_t vocab_size, int64_t canvas);

// A training checkpoint (OUT/train/checkpoints/step-N) as a model file `recap sample` reads:
// the checkpoint's EMA weights (its raw weights when it has no EMA) with the settings and
// metadata of `final_model`, the finished model of the same training, and "steps" = N. This
// is how intermediate checkpoints are scored (the report's sample efficiency). Throws
// recap::Error naming the file whose tensors do not fit or that is not a checkpoint.
void export_t2i_checkpoint(const fs::path& final_model, const fs::path& checkpoint,
                           const text::Tokenizer& tokenizer, const fs::path& out);

// The number of object groups of a web sample's scene (its metadata's scene.groups), for the
// curriculum. Throws recap::Error naming the sample when it has no scene metadata (a corpus
// not made by `recap corpus make`).
int64_t scene_groups(const data::DecodedSample& sample);

// Loads `path` into `encoder`: either a bare text encoder (names as in models::TextEncoder),
// a whole t2i model or a CLIP (stages/clip_train.h), whose "text_encoder.*" tensors are taken
// and the rest ignored. Throws
// recap::Error naming the file when it was made with another tokenizer or other text encoder
// options (as its metadata says), or when tensors are unexpected, mis-shaped or (unless
// allow_partial) missing, listing them; `encoder` may then be partly loaded. The report's
// `missing` are the tensors that kept their initialisation.
LoadReport load_text_encoder(const fs::path& path, models::TextEncoder& encoder,
                             const text::Tokenizer& tokenizer, bool allow_partial);

struct T2iTrainResult {
  int64_t start_step = 0;  // > 0 when resumed
  int64_t steps = 0;
  double last_loss = 0;
  CaptionCounts captions;     // over the whole run, resumed parts included
  double seconds_per_step = 0;  // this process's steps only
  fs::path weights;             // out_dir/t2i.safetensors
};

// What step 3 trains on: a corpus's web split, or the user's own images, and whose captions.
struct T2iData {
  fs::path corpus;               // a finished `recap corpus make` folder; or empty, and:
  std::vector<fs::path> images;  // any sources data::expand_sources reads
  std::vector<fs::path> recap_files;  // recaption sidecars for t2i.captions = recap, recap-mix
  std::optional<CaptionMix> mix;      // replaces the t2i.captions arm when set
};

// Trains on corpus_dir's web split (a finished `recap corpus make` folder) with checkpoints,
// metrics.jsonl and validation grids (out_dir/grids/step-NNNNNN.png: the first prompts of the
// counting and position dev suites, fixed seeds) under out_dir, resuming from out_dir/train
// when a checkpoint is there, then writes out_dir/t2i.safetensors (EMA weights when
// t2i.ema_decay > 0). With t2i.probe_evaluator set, every validation also runs the competence
// probe: t2i.probe_images samples of the dev multi-object prompts judged by PromptScorer,
// recorded as probe_* fields in metrics.jsonl and in probe.json (stages/competence.h).
// With t2i.space = latent the UNet diffuses t2i.autoencoder's latents: every web image is
// encoded once before training (stages/autoencoder_train.h: encode_corpus) and the
// autoencoder is saved, frozen, inside the model, so sampling needs nothing else.
// With t2i.repa_weight > 0 the loss adds representation alignment (REPA): the UNet's
// activation at t2i.repa_level, through the model's projector, is pulled towards the frozen
// t2i.repa_encoder detector backbone's features of the clean image (negative cosine
// similarity per position, times the weight).
// A fresh run starts its whole model from t2i.init (init_t2i_from: a base model of the same
// settings) or its text encoder from t2i.text_encoder when set (a resumed one takes
// everything from its checkpoint and only hashes the file, for the weights' metadata);
// t2i.freeze_text leaves the encoder out of training, bit-identical in the output.
// `recap_files` are needed for captions = recap / recap-mix only. `threads` is the loader's
// decode thread count unless t2i.workers sets it.
T2iTrainResult train_t2i(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                         const std::vector<fs::path>& recap_files, const fs::path& out_dir,
                         const Config& config, int threads);
// The same on any T2iData. With `images` instead of a corpus: the images are preprocessed
// (t2i.crop, t2i.flip) to t2i.image_size (0: world.canvas), there are no
// validation grids and no competence probe (they need the world's dev prompts), and in latent
// space each batch is encoded as it is drawn. Latents are encoded once before training only
// for a corpus at its own canvas with centre crops and no flip; otherwise per batch. With a
// `mix`, each sample's caption is drawn from it (ArmCaptions) and t2i.captions is not read;
// recap_files then are an error (name them with --caption-source).
T2iTrainResult train_t2i(const T2iData& data, const fs::path& tokenizer_model,
                         const fs::path& out_dir, const Config& config, int threads);

}  // namespace recap::stages
