// The text-to-image pipeline RECAP's step 3 trains and `recap sample` runs: a text encoder and
// a UNet in one module (weights "text_encoder.*", "unet.*"), in latent space also the frozen
// autoencoder that turns latents into images ("autoencoder.*"), prompt encoding, sampling with
// classifier-free guidance, and the weight file with the settings needed to sample from it.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/torch_pch.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"
#include "models/autoencoder.h"
#include "models/text_encoder.h"
#include "models/unet.h"
#include "text/tokenizer.h"

namespace recap::stages {

namespace fs = std::filesystem;

// Representation alignment (REPA, Yu et al. 2024): during training a small projector maps the
// UNet's activation at the end of down-path level `level` to a frozen image encoder's features
// of the clean image. It shapes training only; sampling never runs it, but it is saved with
// the weights so a checkpoint resumes with it.
struct RepaOptions {
  int64_t level = 1;       // UNet down-path level tapped (models::FeatureTap)
  int64_t features = 48;   // the encoder's feature channels
  int64_t hidden = 128;    // the projector's hidden width
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RepaOptions, level, features, hidden)

struct T2iModelOptions {
  models::TextEncoderOptions text;
  models::UNetOptions unet;  // unet.context_dim must equal text.dim
  // Latent diffusion (t2i.space = latent): the UNet's input and output are this
  // autoencoder's latents (unet in/out channels = its latent_channels), which sample_images
  // decodes. Unset: the UNet works on pixels.
  std::optional<models::AutoencoderOptions> autoencoder;
  std::optional<RepaOptions> repa;  // a projector "repa.*" for training with REPA
};

class T2iModelImpl : public torch::nn::Module {
 public:
  explicit T2iModelImpl(T2iModelOptions options);  // recap::Error on inconsistent options

  // x_t [B, C, h, w] (pixels, or latents in latent space), t [B] long, ids [B, L] prompt ids
  // (PAD-padded) -> [B, C, h, w] in the trained parameterisation (eps or v).
  // With `tap`, tap->features is set to the UNet's activation there (models::FeatureTap).
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t,
                        const torch::Tensor& ids, models::FeatureTap* tap = nullptr);
  const T2iModelOptions& options() const { return options_; }

  // What the UNet diffuses for images of side `image_size`: [C, side, side].
  std::array<int64_t, 3> diffused_shape(int64_t image_size) const;

  models::TextEncoder text_encoder{nullptr};
  models::UNet unet{nullptr};
  models::Autoencoder autoencoder{nullptr};  // latent space only; its parameters are frozen
  // REPA only: 1x1 conv, SiLU, 1x1 conv: [B, level width, h, w] -> [B, repa.features, h, w].
  torch::nn::Sequential repa{nullptr};

 private:
  T2iModelOptions options_;
};
TORCH_MODULE(T2iModel);

// Prompts -> ids [B, L] long: [BOS, tokens, EOS] cut to max_length, right-padded with PAD to
// the longest. The empty prompt is [BOS, EOS], the unconditional condition; unknown
// characters become <unk>.
torch::Tensor prompt_ids(const text::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                         int64_t max_length);
// The unconditional condition as one row of `length` (>= 2) ids: [BOS, EOS, PAD...] [1, length].
torch::Tensor unconditional_ids(int64_t length);

struct SampleOptions {
  // How the model was trained (stored with its weights).
  diffusion::Prediction prediction = diffusion::Prediction::Eps;
  diffusion::BetaSchedule schedule = diffusion::BetaSchedule::Cosine;
  int64_t timesteps = 1000;
  double log_snr_shift = 0;  // see diffusion::NoiseSchedule
  int64_t image_size = 32;  // pixels per side of the images (latent space: before encoding)
  // How to sample.
  diffusion::Sampler sampler = diffusion::Sampler::DDIM;
  int steps = 50;
  double guidance_scale = 3.0;  // 0: unconditional, 1: conditional without guidance
};

// The noise schedule the model was trained on.
diffusion::NoiseSchedule noise_schedule(const SampleOptions& options);

// One image per prompt: [B, 3, H, W] in [-1, 1] on the model's device. Image i starts from
// noise seeded by seeds[i] (and stochastic samplers draw from a seed derived from all seeds),
// so the same prompts, seeds and options give the same images. Runs without grad.
torch::Tensor sample_images(T2iModel& model, const text::Tokenizer& tokenizer,
                            const std::vector<std::string>& prompts,
                            const std::vector<uint64_t>& seeds, const SampleOptions& options);

struct LoadedT2i {
  T2iModel model{nullptr};
  SampleOptions sample;  // the training settings; sampler, steps and guidance from training
  std::map<std::string, std::string> metadata;
};

// Writes `model` to `path` with everything load_t2i needs in the metadata: the model options,
// `sample`, the tokenizer's sha256, and `extra` entries (e.g. the caption source).
void save_t2i(const fs::path& path, const T2iModel& model, const SampleOptions& sample,
              const text::Tokenizer& tokenizer, const std::map<std::string, std::string>& extra);
// Throws recap::Error naming the file when it lacks the metadata, was trained with another
// tokenizer, or its tensors do not fit the model it describes (listing the bad names).
LoadedT2i load_t2i(const fs::path& path, const text::Tokenizer& tokenizer);

// Starts `model` from the weights of the whole t2i model at `path` (a base model another
// training made: the paper's pre-trained Stable Diffusion). Its text encoder, UNet, REPA
// projector and diffusion parameterisation (prediction, schedule, timesteps, log-SNR shift)
// must equal `model`'s and `sample`'s, and in latent space its autoencoder must be the same
// weights as `model`'s (the latents would mean something else otherwise); otherwise throws
// recap::Error naming the file and what differs, leaving `model` untouched.
void init_t2i_from(const fs::path& path, T2iModel& model, const SampleOptions& sample,
                   const text::Tokenizer& tokenizer);

}  // namespace recap::stages
