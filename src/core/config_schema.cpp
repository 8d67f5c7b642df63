// Every configuration key recap reads, with its default, range and meaning (`recap config
// keys` prints this table). A stage that needs a new setting declares it here; presets only
// override these defaults.
#include "core/config.h"

namespace recap {

namespace {

ConfigKey integer(std::string key, int64_t fallback, double min, double max, std::string help) {
  return {std::move(key), ConfigType::Int, fallback, std::move(help), min, max, {}};
}
ConfigKey number(std::string key, double fallback, double min, double max, std::string help) {
  return {std::move(key), ConfigType::Float, fallback, std::move(help), min, max, {}};
}
ConfigKey flag(std::string key, bool fallback, std::string help) {
  return {std::move(key), ConfigType::Bool, fallback, std::move(help), 0, 1, {}};
}
ConfigKey choice(std::string key, std::string fallback, std::vector<std::string> choices,
                 std::string help) {
  return {std::move(key), ConfigType::String, std::move(fallback), std::move(help), 0, 0,
          std::move(choices)};
}
ConfigKey integers(std::string key, std::vector<int64_t> fallback, double min, double max,
                   std::string help) {
  return {std::move(key), ConfigType::IntList, std::move(fallback), std::move(help), min, max, {}};
}
ConfigKey words(std::string key, std::vector<std::string> fallback, std::string help) {
  return {std::move(key), ConfigType::StringList, std::move(fallback), std::move(help), 0, 0, {}};
}

std::vector<ConfigKey> build_schema() {
  return {
      // [run]: the experiment as a whole.
      integer("run.seed", 1234, 0, 9.2e18, "master seed; every stage derives its own from it"),
      words("run.arms", {"alt", "recap", "recap-mix", "human"},
            "experiment arms of `recap run`, one text-to-image model each (alt, recap, "
            "recap-mix, human, human-short)"),
      integer("run.images_per_prompt", 1, 1, 1000,
              "images sampled per evaluation prompt (each from its own seed)"),
      integer("run.base_steps", 0, 0, 1e9,
              "steps of one base text-to-image model trained on the web alt-text with [t2i]'s "
              "settings, which every arm then fine-tunes for t2i.steps (the paper fine-tunes "
              "Stable Diffusion); 0: every arm starts from random weights"),
      flag("run.judge_clip", false,
           "train a judge CLIP on fresh world renders ([clip] keys, clip.data = renders) and "
           "score every arm's images with it (the CLIP score of the report)"),
      integer("run.checkpoint_evals", 0, 0, 1000,
              "intermediate t2i checkpoints (the latest kept) sampled and scored for the "
              "report's sample-efficiency plot; each costs one more samples stage per arm"),

      // [world]: the embedded world's vocabulary and scene statistics (docs/WORLD.md).
      integer("world.canvas", 32, 16, 512, "image side in pixels"),
      words("world.shapes",
            {"circle", "square", "triangle", "star", "heart", "cross", "diamond", "hexagon"},
            "shapes scenes are drawn from (any of the eight defaults)"),
      words("world.colours",
            {"red", "green", "blue", "yellow", "purple", "orange", "white", "black"},
            "object colours (any of the eight defaults)"),
      words("world.backgrounds",
            {"gray", "tan", "slate", "olive", "pink", "maroon", "teal", "lavender"},
            "background colours (any of the eight defaults)"),
      integer("world.min_groups", 1, 1, 64, "fewest object groups per scene"),
      integer("world.max_groups", 3, 1, 64, "most object groups per scene"),
      integer("world.min_count", 1, 1, 64, "fewest objects per group"),
      integer("world.max_count", 4, 1, 64, "most objects per group"),
      number("world.min_object_size", 0.21875, 0.01, 1, "smallest object, fraction of the canvas"),
      number("world.max_object_size", 0.34375, 0.01, 1, "largest object, fraction of the canvas"),
      number("world.max_rotation_deg", 15, 0, 180, "largest object rotation in degrees"),
      number("world.relation_margin", 0.1, 0, 1,
             "centroid separation, fraction of the canvas, for a relation to hold"),

      // [alt]: how often each failure mode of web alt-text occurs; the rest is "partial".
      number("alt.context_only", 0.22, 0, 1, "site, credit, product or licence text only"),
      number("alt.salient_only", 0.18, 0, 1, "the largest group only"),
      number("alt.keywords", 0.10, 0, 1, "keyword lists without binding"),
      number("alt.wrong_attributes", 0.08, 0, 1, "a wrong colour or count"),
      number("alt.filename", 0.06, 0, 1, "a camera or upload filename"),
      number("alt.empty", 0.04, 0, 1, "no alt-text at all"),

      // [corpus]: what `recap corpus make` writes.
      integer("corpus.web_samples", 20000, 1, 1e9, "web images with alt-text (the corpus)"),
      integer("corpus.human_samples", 1000, 1, 1e9,
              "separate images with detailed human captions (captioner fine-tuning)"),
      integer("corpus.eval_samples", 1000, 1, 1e9,
              "held-out scenes with human captions and reference renders"),
      integer("corpus.prompts_per_suite", 200, 1, 1e7,
              "prompts in each compositional suite (counting, position, ...)"),
      integer("corpus.shard_size", 1000, 1, 1e7, "samples per tar shard"),

      // [tokenizer]: the sentencepiece model every text model shares.
      integer("tokenizer.vocab_size", 1000, 16, 1000000, "pieces, including special tokens"),
      choice("tokenizer.model_type", "unigram", {"unigram", "bpe"}, "sentencepiece algorithm"),
      number("tokenizer.character_coverage", 1.0, 0.5, 1.0,
             "share of characters kept; the rarest others become <unk>"),
      flag("tokenizer.byte_fallback", false, "encode unseen characters as UTF-8 bytes"),

      // [text_encoder]: the causal transformer over caption tokens (CLIP-text-like).
      integer("text_encoder.dim", 128, 8, 8192, "width"),
      integer("text_encoder.layers", 4, 1, 128, "transformer blocks"),
      integer("text_encoder.heads", 4, 1, 128, "attention heads; divides dim"),
      integer("text_encoder.max_length", 64, 4, 4096, "tokens per caption, BOS and EOS included"),
      flag("text_encoder.causal", true,
              "each token sees only earlier ones (CLIP); false: the whole caption (T5)"),

      // [unet]: the denoiser, Stable Diffusion's structure scaled down.
      integer("unet.channels", 64, 4, 4096, "width of the first level"),
      integers("unet.channel_mult", {1, 2, 2}, 1, 64, "width multiplier of each level"),
      integer("unet.res_blocks", 1, 1, 16, "ResBlocks per level on the way down"),
      integers("unet.attention_levels", {1, 2}, 0, 16,
               "levels with spatial transformers (self + cross-attention)"),
      integer("unet.heads", 4, 1, 128, "attention heads; divides every level's width"),
      integer("unet.groups", 8, 1, 256, "GroupNorm groups; divides every level's width"),
      number("unet.dropout", 0.0, 0, 0.9, "dropout inside ResBlocks"),
      integer("unet.patch", 1, 1, 16,
              "pixels folded into channels by the first layer (2: half resolution inside)"),
      flag("unet.zero_init", false,
           "zero the output conv and every residual branch's last layer at initialisation"),
      flag("unet.pooled_text", false,
           "add the projected mean of the text states to the timestep embedding"),

      // [clip]: a contrastive image-text model (models/clip.h) whose text encoder step 3 can
      // start from (t2i.text_encoder) and keep frozen (t2i.freeze_text), as SD keeps CLIP's.
      // Its text tower has the [text_encoder] sizes.
      integer("clip.steps", 1000, 1, 1e9, "training steps on the corpus's web images"),
      integer("clip.batch_size", 128, 2, 65536, "pairs per step (each other's negatives)"),
      number("clip.lr", 1e-3, 1e-8, 1, "peak learning rate"),
      integer("clip.warmup_steps", 50, 0, 1e9, "linear warmup steps"),
      choice("clip.captions", "alt",
             {"alt", "human", "human-short", "human-mix", "recap", "recap-mix"},
             "which caption each web image is paired with (alt: the paper's CLIP, trained on "
             "web alt-text)"),
      choice("clip.data", "corpus", {"corpus", "renders"},
             "corpus: its web images with clip.captions; renders: fresh world scenes with "
             "exact captions, half long, half short (a judge's data, none of the experiment's)"),
      integer("clip.width", 64, 8, 4096, "image tower: backbone channels"),
      integer("clip.depth", 2, 0, 64, "image tower: residual blocks at the output stride"),
      integer("clip.stride", 4, 2, 64, "image tower: output stride in px (a power of two)"),
      integer("clip.embed_dim", 128, 2, 8192, "width of the shared embedding"),
      integer("clip.heldout", 500, 2, 1e6,
              "eval-split scenes of the retrieval check (top-1 among them)"),
      integer("clip.validate_every", 250, 0, 1e9, "run the retrieval check every N steps"),

      // [autoencoder]: the latent space of t2i.space = latent (models/autoencoder.h).
      integer("autoencoder.channels", 32, 4, 4096, "width of the full-resolution level"),
      integers("autoencoder.channel_mult", {1, 2, 2}, 1, 64,
               "width multiplier of each level; 2x downsampling between levels"),
      integer("autoencoder.res_blocks", 1, 1, 16, "ResBlocks per level, each way"),
      integer("autoencoder.latent_channels", 4, 1, 256, "channels of the latent"),
      integer("autoencoder.groups", 8, 1, 256, "GroupNorm groups; divides every level's width"),
      integer("autoencoder.steps", 1500, 1, 1e9, "training steps on the corpus's web images"),
      integer("autoencoder.batch_size", 32, 1, 65536, "images per step"),
      number("autoencoder.lr", 1e-3, 1e-8, 1, "peak learning rate"),
      integer("autoencoder.warmup_steps", 50, 0, 1e9, "linear warmup steps"),
      integer("autoencoder.stats_images", 2000, 1, 1e9,
              "web images the per-channel latent standardisation is measured on"),
      integer("autoencoder.heldout_scenes", 500, 1, 1e6,
              "held-out renders of the reconstruction check"),
      number("autoencoder.perceptual_weight", 0.0, 0, 1000,
             "weight of the perceptual term (a frozen detector backbone's features of "
             "reconstruction vs image); 0 off"),
      choice("autoencoder.perceptual_encoder", "", {},
             "the perceptual term's detector folder, never the judge (`recap run` sets the "
             "captioner's vision encoder)"),
      choice("autoencoder.evaluator", "", {},
             "evaluator folder for the reconstruction check (>= 98% count/shape/colour on "
             "reconstructions); empty: no check (`recap run` sets it)"),

      // [evaluator]: the detector that judges generated images (docs/RESULTS.md).
      integer("evaluator.steps", 800, 1, 1e9, "training steps on freshly rendered scenes"),
      integer("evaluator.batch_size", 32, 1, 65536, "scenes per step"),
      number("evaluator.lr", 3e-3, 1e-8, 1, "peak learning rate"),
      number("evaluator.object_free", 0.25, 0, 0.9,
             "share of each batch replaced by object-free noise images (taught: no objects)"),
      integer("evaluator.heldout_scenes", 1000, 1, 1e7,
              "held-out renders the accuracy is measured on"),
      flag("evaluator.gate", true,
           "fail unless exact count, shape and colour accuracy reach 98% on held-out renders"),

      // [eval]: `recap eval`, prompt following and FID/KID of generated images (docs/RESULTS.md).
      integer("eval.bootstrap", 1000, 0, 1e6,
              "bootstrap resamples of the images for metric intervals; 0: no intervals"),
      number("eval.level", 0.95, 0.01, 0.999, "central mass of the bootstrap intervals"),
      number("eval.min_score", 0, 0, 1, "detections scoring below are ignored"),
      flag("eval.fid", true, "FID/KID against the eval-split renders, with the noise floor"),
      integer("eval.kid_subsets", 100, 1, 1e5, "KID subsets"),
      integer("eval.kid_subset_size", 1000, 2, 1e7,
              "images per KID subset (at most half the smaller set, so subsets differ)"),
      integer("eval.batch_size", 100, 1, 65536, "images per detector call"),
      integer("eval.geneval_per_task", 100, 0, 1e6,
              "GenEval prompts per task that `recap run` samples for every arm and renders for "
              "the ceiling (the first N of each task in prompts/geneval/); 0: no GenEval"),

      // [captioner]: RECAP step 1, pre-trained on alt-text, fine-tuned on human captions.
      integer("captioner.dim", 128, 8, 8192, "decoder and image-token width"),
      integer("captioner.layers", 4, 1, 128, "decoder blocks"),
      integer("captioner.heads", 4, 1, 128, "attention heads; divides dim"),
      integer("captioner.grid", 8, 1, 512,
              "image tokens per side; divides canvas / the vision encoder's stride"),
      choice("captioner.vision", "", {},
             "a detector (evaluator-format folder or .safetensors) whose backbone starts the "
             "vision encoder; `recap run` pre-trains one; empty: from scratch"),
      flag("captioner.freeze_vision", true, "keep a loaded vision encoder's weights fixed"),
      integer("captioner.encoder_layers", 1, 0, 128, "self-attention blocks over image tokens"),
      integer("captioner.max_length", 96, 3, 4096, "caption tokens, BOS, style and EOS included"),
      integer("captioner.pretrain_steps", 2000, 1, 1e9, "steps on the web corpus's alt-text"),
      integer("captioner.finetune_steps", 1000, 1, 1e9, "steps on the human-captioned set"),
      integer("captioner.batch_size", 32, 1, 65536, "images per step"),
      number("captioner.lr", 1e-3, 1e-8, 1, "peak learning rate of pre-training"),
      number("captioner.finetune_lr", 3e-4, 1e-8, 1, "peak learning rate of fine-tuning"),
      integer("captioner.warmup_steps", 100, 0, 1e9, "linear warmup steps of each stage"),
      number("captioner.long_fraction", 0.7, 0, 1,
             "share of fine-tuning samples trained on the long caption; the rest on the short"),
      number("captioner.ema_decay", 0, 0, 0.99999, "weight EMA decay; 0 turns it off"),
      integer("captioner.workers", 0, 0, 256, "loader decode threads; 0: the run's --threads"),

      // [recaption]: RECAP step 2, the fine-tuned captioner relabelling the web corpus.
      integer("recaption.batch_size", 64, 1, 65536, "images decoded together"),
      choice("recaption.method", "greedy", {"greedy", "beam", "nucleus"}, "decoding method"),
      integer("recaption.beam_width", 4, 1, 64, "beam: hypotheses kept per image"),
      number("recaption.top_p", 0.9, 0, 1, "nucleus: probability mass sampled from"),
      number("recaption.temperature", 1.0, 1e-6, 100, "nucleus: logits are divided by it"),
      integer("recaption.max_length", 0, 0, 4096,
              "caption tokens with prompt and EOS; 0: the captioner's max_length"),
      integer("recaption.eval_samples", 500, 1, 1e9,
              "web samples `captioner eval` captions and scores"),

      // [data]: limits applied when reading any corpus, ours or a user's.
      integer("data.max_pixels", 89478485, 1, 4e9,
              "largest declared image size (width x height) decoded; guards decompression bombs"),
      integer("data.max_caption_bytes", 16384, 1, 1e8, "longest caption accepted, in bytes"),
      integer("data.max_entry_bytes", 67108864, 1, 1e12, "largest tar entry or file read"),
      integer("data.max_shard_bytes", 17179869184, 1, 1e15,
              "most tar data one shard may hold after decompression; stops decompression bombs"),
      choice("data.caption_field", "caption", {},
             "which caption a sample has: a manifest's column or JSONL field (e.g. re_caption "
             "beside org_caption); for tar shards caption is KEY.txt, another name a field of "
             "KEY.json; sidecar folders ignore it"),
      flag("data.strict", false,
           "stop at the first broken shard (truncated or corrupt tar); otherwise its samples "
           "before the break are used, it is counted and named, and reading goes on"),

      // [own]: `recap run` on your own data instead of the world (stages/run_own_data.h).
      words("own.images", {},
            "your image sources, as --images reads them (tar shards or folders of them, image "
            "folders, manifests); not empty: `recap run` trains on them and skips the stages "
            "that need the world's ground truth, each with its reason"),
      choice("own.captions", "", {},
             "with own.images: the human caption set the captioner fine-tunes on (JSONL: key or "
             "file, caption, style long|short)"),
      choice("own.prompts", "", {},
             "with own.images: prompts every arm samples (one per line, or suite JSONL); "
             "empty: no samples"),

      // [t2i]: RECAP step 3, the text-to-image model (text encoder + UNet) trained per arm.
      integer("t2i.steps", 2000, 1, 1e9, "optimizer steps"),
      integer("t2i.batch_size", 32, 1, 65536, "images per step"),
      number("t2i.lr", 3e-4, 1e-8, 1, "peak learning rate"),
      integer("t2i.warmup_steps", 100, 0, 1e9, "linear warmup steps"),
      number("t2i.ema_decay", 0.999, 0, 0.99999, "EMA of the weights (saved and sampled); 0 off"),
      number("t2i.grad_clip", 1.0, 0, 1e6, "max global gradient norm; 0 off"),
      number("t2i.beta1", 0.9, 0, 0.99999, "AdamW's first-moment decay"),
      number("t2i.beta2", 0.999, 0, 0.99999,
             "AdamW's second-moment decay (EDM2 trains with 0.99)"),
      number("t2i.weight_decay", 0.01, 0, 1, "AdamW's decoupled weight decay"),
      number("t2i.cfg_dropout", 0.1, 0, 1,
             "share of captions replaced by the empty one (for classifier-free guidance)"),
      choice("t2i.prediction", "eps", {"eps", "v"}, "what the UNet predicts"),
      choice("t2i.schedule", "cosine", {"linear", "scaled-linear", "cosine"}, "noise schedule"),
      integer("t2i.timesteps", 1000, 2, 100000, "diffusion timesteps T"),
      number("t2i.log_snr_shift", 0.0, -20, 20,
             "added to every timestep's log SNR (positive: less noise; for small latents)"),
      number("t2i.min_snr_gamma", 5.0, 0, 1e6, "Min-SNR-gamma loss weighting; 0 off"),
      number("t2i.noise_offset", 0.0, 0, 1, "per-channel constant added to training noise"),
      number("t2i.timestep_log_snr_std", 0.0, 0, 100,
             "0: uniform training timesteps; > 0: log SNR ~ N(mean, std^2) (2: SD3's logit-normal)"),
      number("t2i.timestep_log_snr_mean", 0.0, -20, 20,
             "centre of the training log-SNR density when its std > 0"),
      choice("t2i.captions", "recap",
             {"alt", "human", "human-short", "human-mix", "recap", "recap-mix"},
             "the arm: which caption each web image is trained with"),
      choice("t2i.recap_fallback", "alt", {"alt", "skip"},
             "a web image without the chosen recaption: train on its alt-text, or skip it"),
      number("t2i.mix_long", 0.5, 0, 1, "recap-mix, human-mix: share of long captions"),
      integer("t2i.image_size", 0, 0, 4096,
              "pixels per side of the training images; 0: world.canvas (the corpus's)"),
      choice("t2i.crop", "center", {"center", "random"},
             "which square of a non-square image is trained on (then resized)"),
      flag("t2i.flip", false,
           "mirror half the training images; off: a mirror breaks 'left of' captions"),
      integer("t2i.validate_every", 500, 0, 1e9,
              "write a sample grid every N steps (0: at the end only)"),
      integer("t2i.sample_steps", 50, 1, 100000, "sampler steps for grids and `recap sample`"),
      choice("t2i.sample_sampler", "ddim", {"ddim", "ddpm", "euler", "dpm++2m"}, "sampler"),
      number("t2i.guidance_scale", 3.0, 0, 100, "classifier-free guidance scale; 1 off, 0 uncond"),
      integer("t2i.workers", 0, 0, 256, "image decode threads; 0: --threads"),
      choice("t2i.init", "", {},
             "a whole t2i model (t2i.safetensors) to start from, e.g. a run's base model; "
             "empty: random weights (`recap run` sets it when base.steps > 0)"),
      choice("t2i.text_encoder", "", {},
             "safetensors to start the text encoder from (a bare encoder, a whole t2i "
             "model or a CLIP); empty: train it from scratch"),
      choice("t2i.probe_evaluator", "", {},
             "evaluator folder for the competence probe at every validation (SOA-C, colour "
             "binding on dev multi-object prompts); empty: no probe (`recap run` sets it)"),
      choice("t2i.space", "pixel", {"pixel", "latent"},
             "where the UNet diffuses: pixels, or the latent of t2i.autoencoder"),
      choice("t2i.autoencoder", "", {},
             "autoencoder (folder or .safetensors) of t2i.space = latent (`recap run` trains "
             "and sets it)"),
      number("t2i.repa_weight", 0.0, 0, 100,
             "representation alignment (REPA) loss weight: UNet features towards a frozen "
             "encoder's; 0 off"),
      choice("t2i.repa_encoder", "", {},
             "REPA's frozen encoder: a detector folder or .safetensors (`recap run` sets its "
             "vision encoder)"),
      integer("t2i.repa_level", 1, 0, 16, "the UNet down-path level REPA aligns"),
      integer("t2i.probe_images", 100, 1, 100000,
              "competence probe images (the dev multi-object prompts, cycled with new seeds)"),
      integer("t2i.curriculum_steps", 0, 0, 1e9,
              "a curriculum: for the first N steps train only on scenes of at most "
              "t2i.curriculum_max_groups object groups (needs the world's scene metadata); "
              "0 off"),
      integer("t2i.curriculum_max_groups", 1, 1, 64,
              "the most object groups a scene may have during the curriculum"),
      flag("t2i.freeze_text", false, "keep the text encoder's weights fixed (train the UNet only)"),
      flag("t2i.allow_partial", false,
           "t2i.text_encoder may lack tensors; those keep their initialisation"),

      // [checkpoint]: how trainers save and keep state.
      integer("checkpoint.every", 500, 1, 1e9, "save a checkpoint every N optimizer steps"),
      integer("checkpoint.keep_last", 3, 1, 1000, "how many recent checkpoints to keep"),
  };
}

}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = build_schema();
  return schema;
}

}  // namespace recap
