// A CLIP (models/clip.h) trained on the web corpus's images and one caption source: the
// analogue of the CLIP whose text encoder Stable Diffusion reads, frozen. Trained on the
// web's alt-text it is the paper's setting (CLIP saw LAION's alt-text); on the exact human
// captions it is an upper bound of what a pre-trained text encoder can bring. Step 3 starts
// its text encoder from one with `t2i.text_encoder` (and keeps it with `t2i.freeze_text`).
// Trained on fresh world renders with exact captions (clip.data = renders) it is a judge
// that shares nothing with the experiment. Checked by top-1 retrieval on held-out pairs: the
// corpus's eval scenes with their exact short and long captions.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "models/clip.h"
#include "stages/arm_captions.h"
#include "text/tokenizer.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct ClipTrainOptions {
  models::ClipOptions model;  // text_encoder from [text_encoder], so a t2i model can take it
  ArmCaptionOptions captions{CaptionSource::Alt};
  // Train on fresh world renders with exact captions (a judge's data) instead of the corpus.
  bool renders = false;
  int64_t steps = 1000;
  int64_t batch_size = 128;
  double lr = 1e-3;
  int64_t warmup_steps = 50;
  int64_t heldout = 500;  // eval-split pairs of the retrieval check
  int64_t validate_every = 250;
  int64_t checkpoint_every = 500;
  int keep_last = 3;
  int workers = 0;  // loader decode threads; 0: the `threads` train_clip is given
  uint64_t seed = 0;
};

// [clip] and [text_encoder] keys, checkpoint.* and run.seed; the vocabulary from the tokenizer.
ClipTrainOptions clip_train_options(const Config& config, int64_t vocab_size);

// Retrieval among the held-out pairs, with their short and their long exact captions.
struct ClipCheck {
  models::Retrieval short_captions, long_captions;
};
nlohmann::json to_json(const ClipCheck& check);

// The check: the first `n` eval-split scenes of corpus_dir (in shard order) against their
// captions.human_short and captions.human_long. Throws recap::Error when the split holds no
// scene.
ClipCheck check_clip(models::Clip& model, const text::Tokenizer& tokenizer,
                     const fs::path& corpus_dir, const Config& config, int64_t n, int workers);

struct ClipTrainResult {
  int64_t start_step = 0, steps = 0;
  double last_loss = 0;
  CaptionCounts captions;
  ClipCheck check;
  fs::path weights;  // out_dir/clip.safetensors
};

// Trains on corpus_dir's web split (or, with `renders`, on fresh scenes of its world from a
// seed stream of their own, each with its exact long or short caption) with train::train (checkpoints and metrics.jsonl under
// out_dir/train, resumed from there; the check at every validation), then writes
// out_dir/clip.safetensors (metadata: clip_options, tokenizer_sha256, captions, steps),
// out_dir/clip.json (options, loss, check) and out_dir/tokenizer.model (a copy of the
// tokenizer's, so the folder is a self-contained judge). `recap_files` are needed for the recap sources.
ClipTrainResult train_clip(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                           const std::vector<fs::path>& recap_files, const fs::path& out_dir,
                           const Config& config, int threads);

// A trained CLIP as a judge of generated images (`recap eval --clip DIR`): the model, the
// tokenizer it reads (DIR/tokenizer.model, which train_clip copies there) and its clip.json
// check, printed beside its scores as the evaluator's accuracy is. Throws recap::Error naming
// the file that is missing or bad.
struct ClipJudge {
  models::Clip model{nullptr};
  text::Tokenizer tokenizer;
  nlohmann::json check;  // clip.json's "check"
};
ClipJudge load_clip_judge(const fs::path& dir);

// CLIPScore (Hessel et al. 2021, without their 2.5 weight): 100 * max(cos, 0) between each
// image [N, 3, S, S] in [-1, 1] and its prompt, `batch` at a time. Prompts longer than the
// judge's text_encoder.max_length tokens are cut there, as CLIP cuts at 77.
std::vector<double> clip_scores(ClipJudge& judge, const torch::Tensor& images,
                                const std::vector<std::string>& prompts, int64_t batch);

// out_dir/clip.safetensors for a folder, the path itself for a .safetensors file.
fs::path clip_weights_path(const fs::path& dir_or_file);
// Throws recap::Error naming the file when it is missing, is not a CLIP (no clip_options
// metadata, or bad ones), was trained with another tokenizer, or its tensors do not fit.
models::Clip load_clip(const fs::path& dir_or_file, const text::Tokenizer& tokenizer);

}  // namespace recap::stages
