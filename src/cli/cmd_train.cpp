// evaluator train, captioner train, autoencoder train, clip train, t2i train: the models of
// the experiment.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/image_sources.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "stages/autoencoder_train.h"
#include "stages/captioner_train.h"
#include "stages/clip_train.h"
#include "stages/model_settings.h"
#include "stages/settings.h"
#include "stages/t2i_train.h"

namespace recap::cli {

namespace {

// --corpus --tokenizer --out --set, shared by the stages that train on a corpus.
struct TrainingArgs {
  std::string corpus, tokenizer, out;
  std::vector<std::string> recap_files;
};

// t2i train's shorthands for the t2i.text_encoder, freeze_text and allow_partial keys.
// Where a t2i training starts from: a whole model, or only a text encoder.
struct StartArgs {
  std::string init, text_encoder;
  bool freeze = false, allow_partial = false;
};

void add_training_options(Cli& cli, CLI::App* command, TrainingArgs& args) {
  command->add_option("--corpus", args.corpus, "corpus folder (from corpus make)")->required();
  command->add_option("--tokenizer", args.tokenizer, "tokenizer model (from tokenizer train)")
      ->required();
  command->add_option("--out", args.out, "output folder (a killed run resumes from it)")
      ->required();
  cli.add_set_option(command);
}

}  // namespace

void add_training_commands(Cli& cli) {
  auto* evaluator = cli.group("evaluator", "The detector that judges generated images");
  auto evaluator_out = std::make_shared<std::string>();
  auto* evaluator_train = evaluator->add_subcommand(
      "train", "Train on fresh world renders, measure accuracy on held-out renders, and fail "
               "unless it reaches 98% exact count, shape and colour (the gate)");
  cli.add_config_options(evaluator_train);
  evaluator_train->add_option("--out", *evaluator_out, "output folder (resumes from it)")
      ->required();
  cli.on_run(evaluator_train, [&cli, evaluator_out] {
    const auto lock = DirLock::folder(*evaluator_out);
    init_runtime(cli.runtime, true);
    Config config = cli.load_config();
    auto accuracy = stages::train_evaluator(world_settings(config), evaluator_settings(config),
                                            *evaluator_out);
    fmt::print("{}\n", stages::to_json(accuracy).dump(2));
    check_evaluator_gate(config, accuracy);
    fmt::print("evaluator written to {}\n", *evaluator_out);
  });

  auto* captioner = cli.group("captioner", "RECAP step 1: the image captioner");
  struct CaptionerArgs {
    std::string corpus, tokenizer, out, captions;
    ImageSourceArgs sources;
  };
  auto cap_args = std::make_shared<CaptionerArgs>();
  auto* captioner_train = captioner->add_subcommand(
      "train", "Pre-train on the alt-text, then fine-tune on the human-captioned set with "
               "<short>/<long> style tokens ([captioner] keys): of a corpus (--corpus, its "
               "config) or of your own data (--images --captions, the preset's config)");
  auto* cap_corpus = captioner_train->add_option("--corpus", cap_args->corpus,
                                                 "corpus folder (from corpus make)");
  auto* cap_images = add_image_source_options(captioner_train, cap_args->sources);
  auto* cap_captions = captioner_train
                       ->add_option("--captions", cap_args->captions,
                                    "with --images: the human caption set, JSONL of {\"key\" "
                                    "or \"file\", \"caption\", \"style\": \"long\" (default) "
                                    "| \"short\"}")
                       ->type_name("FILE");
  cap_images->needs(cap_captions);
  cap_captions->needs(cap_images);
  cap_corpus->excludes(cap_images);
  captioner_train
      ->add_option("--tokenizer", cap_args->tokenizer, "tokenizer model (from tokenizer train)")
      ->required();
  captioner_train
      ->add_option("--out", cap_args->out, "output folder (a killed run resumes from it)")
      ->required();
  cli.add_config_options(captioner_train);
  auto vision = std::make_shared<std::string>();
  captioner_train
      ->add_option("--vision", *vision,
                   "start the vision encoder from this detector's backbone (an `evaluator "
                   "train` folder or .safetensors; train one with another --seed than the "
                   "judge's); sets captioner.vision")
      ->type_name("FILE")
      ->capture_default_str();
  cli.on_run(captioner_train, [&cli, cap_args, vision] {
    if (cap_args->corpus.empty() == cap_args->sources.images.empty())
      throw Error("captioner train: give --corpus or --images with --captions");
    if (!cap_args->corpus.empty() && cli.preset_given())
      throw Error("captioner train: --corpus uses the corpus's config; --preset is for --images");
    const auto lock = DirLock::folder(cap_args->out);
    auto rt = init_runtime(cli.runtime, true);
    const bool own_data = cap_args->corpus.empty();
    auto config = own_data ? cli.load_config() : cli.load_corpus_config(cap_args->corpus);
    if (!vision->empty())
      config.set("captioner.vision", nlohmann::json(*vision).dump(), "--vision");
    auto r = own_data ? stages::train_captioner_on_sources(
                            image_sources(cap_args->sources, config), cap_args->captions,
                            cap_args->tokenizer, cap_args->out, config, rt.threads)
                      : stages::train_captioner(cap_args->corpus, cap_args->tokenizer,
                                                cap_args->out, config, rt.threads);
    fmt::print("captioner: pre-trained {} steps (loss {:.4f}), fine-tuned {} steps (loss "
               "{:.4f}); written to {}\n",
               r.pretrain.steps, r.pretrain.last_loss, r.finetune.steps, r.finetune.last_loss,
               cap_args->out);
  });

  auto* autoencoder = cli.group("autoencoder", "The latent space of step 3 (t2i.space = latent)");
  struct AutoencoderArgs {
    std::string corpus, out, evaluator;
  };
  auto ae_args = std::make_shared<AutoencoderArgs>();
  auto* autoencoder_train = autoencoder->add_subcommand(
      "train", "Train on the corpus's web images, standardise the latents, and with "
               "--evaluator check that the evaluator still reads reconstructions of held-out "
               "renders (>= 98% count, shape, colour; FID floor) ([autoencoder] keys)");
  autoencoder_train->add_option("--corpus", ae_args->corpus, "corpus folder (from corpus make)")
      ->required();
  autoencoder_train->add_option("--out", ae_args->out, "output folder (resumes from it)")
      ->required();
  autoencoder_train
      ->add_option("--evaluator", ae_args->evaluator,
                   "evaluator folder for the reconstruction check; sets autoencoder.evaluator")
      ->capture_default_str();
  cli.add_set_option(autoencoder_train);
  cli.on_run(autoencoder_train, [&cli, ae_args] {
    const auto lock = DirLock::folder(ae_args->out);
    auto rt = init_runtime(cli.runtime, true);
    auto config = cli.load_corpus_config(ae_args->corpus);
    if (!ae_args->evaluator.empty())
      config.set("autoencoder.evaluator", nlohmann::json(ae_args->evaluator).dump(),
                 "--evaluator");
    const auto r = stages::train_autoencoder(ae_args->corpus, ae_args->out, config, rt.threads);
    fmt::print("autoencoder: {} steps ({}); {}; weights {}\n", r.steps,
               r.steps > r.start_step ? fmt::format("last loss {:.4f}", r.last_loss)
                                      : std::string("already trained"),
               r.check ? fmt::format("reconstructions: count exact {:.2f}%, shape {:.2f}%, "
                                     "colour {:.2f}%, FID {:.3f} (floor {:.3f}){}",
                                     100 * r.check->reconstructions.count_exact,
                                     100 * r.check->reconstructions.shape,
                                     100 * r.check->reconstructions.colour, r.check->fid,
                                     r.check->fid_floor,
                                     r.check->passes() ? "" : ", BELOW the 98% gate")
                       : std::string("no reconstruction check (no --evaluator)"),
               r.weights.string());
  });

  auto* clip = cli.group("clip", "A contrastive image-text model whose text encoder step 3 "
                                 "can start from (t2i.text_encoder)");
  auto clip_args = std::make_shared<TrainingArgs>();
  auto* clip_train = clip->add_subcommand(
      "train", "Train image and text towers contrastively on the web corpus with one caption "
               "source (clip.captions), checked by retrieval on held-out scenes ([clip] keys; "
               "the text tower has the [text_encoder] sizes)");
  add_training_options(cli, clip_train, *clip_args);
  clip_train->add_option("--recap", clip_args->recap_files,
                         "recaption JSONL files for clip.captions = recap / recap-mix");
  cli.on_run(clip_train, [&cli, clip_args] {
    const auto lock = DirLock::folder(clip_args->out);
    auto rt = init_runtime(cli.runtime, true);
    auto config = cli.load_corpus_config(clip_args->corpus);
    std::vector<fs::path> recaps(clip_args->recap_files.begin(), clip_args->recap_files.end());
    const auto r = stages::train_clip(clip_args->corpus, clip_args->tokenizer, recaps,
                                      clip_args->out, config, rt.threads);
    const auto& c = r.check;
    fmt::print("clip: {} steps (loss {:.4f}); image -> caption top-1 among {} held-out "
               "scenes: short {:.1f}%, long {:.1f}%; weights {}\n",
               r.steps, r.last_loss, c.short_captions.pairs,
               100 * c.short_captions.image_to_text, 100 * c.long_captions.image_to_text,
               r.weights.string());
  });

  auto* t2i = cli.group("t2i", "RECAP step 3: the text-to-image diffusion model");
  struct T2iArgs {
    std::string corpus, tokenizer, out, mix;
    std::vector<std::string> images, recap_files, caption_sources;
  };
  auto t2i_args = std::make_shared<T2iArgs>();
  auto* t2i_train = t2i->add_subcommand(
      "train", "Train text encoder + UNet on the web corpus with one caption source "
               "(t2i.captions: alt, human, human-short, human-mix, recap, recap-mix), or on your "
               "own images with a mix of caption sources (--images, --caption-source, --mix) "
               "([t2i] keys)");
  auto* corpus_option =
      t2i_train->add_option("--corpus", t2i_args->corpus, "corpus folder (from corpus make)");
  t2i_train
      ->add_option("--images", t2i_args->images,
                   "or your own images: tar shards, image folders, folders of *.tar shards; "
                   "settings from --preset (t2i.image_size, t2i.crop, t2i.flip)")
      ->excludes(corpus_option);
  t2i_train->add_option("--tokenizer", t2i_args->tokenizer, "tokenizer model (from tokenizer train)")
      ->required();
  t2i_train->add_option("--out", t2i_args->out, "output folder (a killed run resumes from it)")
      ->required();
  cli.add_config_options(t2i_train);
  t2i_train->add_option("--recap", t2i_args->recap_files,
                        "recaption JSONL files ({\"key\", \"caption\", \"kind\"} lines) for "
                        "the recap arms");
  t2i_train->add_option(
      "--caption-source", t2i_args->caption_sources,
      "NAME=SOURCE, repeatable: SOURCE is original (alias alt: the image's own caption), "
      "human_long, human_short (corpus make's), or recaption sidecars, their folder or a "
      "recaption JSONL manifest; replaces t2i.captions");
  t2i_train
      ->add_option("--mix", t2i_args->mix,
                   "NAME=P,... probabilities summing to 1 over caption sources (declared or "
                   "built in), drawn per image, e.g. long=0.5,short=0.5 or recap=0.95,original="
                   "0.05; default: the --caption-source names equally")
      ->capture_default_str();
  auto start = std::make_shared<StartArgs>();
  t2i_train
      ->add_option("--init", start->init,
                   "start every weight from this t2i model (e.g. a run's "
                   "t2i-base/t2i.safetensors) and fine-tune it; sets t2i.init")
      ->type_name("FILE")
      ->capture_default_str();
  t2i_train
      ->add_option("--text-encoder", start->text_encoder,
                   "start the text encoder from this safetensors (a bare encoder, a whole "
                   "t2i model or a CLIP's clip.safetensors); sets t2i.text_encoder")
      ->type_name("FILE")
      ->capture_default_str();
  t2i_train
      ->add_flag("--freeze-text", start->freeze,
                 "train the UNet only, the text encoder keeps its weights; sets t2i.freeze_text")
      ->capture_default_str();
  t2i_train
      ->add_flag("--allow-partial", start->allow_partial,
                 "--text-encoder may lack tensors (they keep their initialisation); sets "
                 "t2i.allow_partial")
      ->capture_default_str();
  cli.on_run(t2i_train, [&cli, t2i_args, start] {
    if (t2i_args->corpus.empty() == t2i_args->images.empty())
      throw Error("t2i train: give --corpus or --images");
    if (!t2i_args->corpus.empty() && cli.preset_given())
      throw Error("t2i train: --preset goes with --images; a corpus brings its config.toml "
                  "(change keys with --set)");
    const auto lock = DirLock::folder(t2i_args->out);
    auto rt = init_runtime(cli.runtime, true);
    auto config = t2i_args->corpus.empty() ? cli.load_config()
                                           : cli.load_corpus_config(t2i_args->corpus);
    if (!start->init.empty()) config.set("t2i.init", nlohmann::json(start->init).dump(), "--init");
    if (!start->text_encoder.empty())
      config.set("t2i.text_encoder", nlohmann::json(start->text_encoder).dump(),
                 "--text-encoder");
    if (start->freeze) config.set("t2i.freeze_text", "true", "--freeze-text");
    if (start->allow_partial) config.set("t2i.allow_partial", "true", "--allow-partial");
    stages::T2iData data{t2i_args->corpus,
                         {t2i_args->images.begin(), t2i_args->images.end()},
                         {t2i_args->recap_files.begin(), t2i_args->recap_files.end()},
                         std::nullopt};
    if (!t2i_args->caption_sources.empty() || !t2i_args->mix.empty())
      data.mix = stages::parse_caption_mix(t2i_args->caption_sources, t2i_args->mix,
                                           config.get_string("t2i.recap_fallback") == "skip");
    auto r = stages::train_t2i(data, t2i_args->tokenizer, t2i_args->out, config, rt.threads);
    fmt::print("t2i: {} steps (loss {:.4f}); captions {}; weights {}\n", r.steps, r.last_loss,
               r.captions.summary(), r.weights.string());
  });
}

}  // namespace recap::cli
