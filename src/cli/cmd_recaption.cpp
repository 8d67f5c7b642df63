// recaption, captioner eval and view: RECAP step 2 (relabel the corpus), the quality of the
// captions a captioner writes, and a page to look at them.
#include "core/torch_pch.h"

#include <algorithm>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/image_sources.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "data/source.h"
#include "stages/caption_eval.h"
#include "stages/caption_viewer.h"
#include "stages/recaption.h"
#include "stages/settings.h"

namespace recap::cli {

namespace {

// The decoding flags both commands take; defaults are the [recaption] schema defaults.
struct DecodeArgs {
  stages::RecaptionOptions options = stages::recaption_settings(Config());
  std::string method = models::to_string(options.decode.method);
};

void add_decode_options(CLI::App* command, DecodeArgs& args) {
  auto& o = args.options;
  command->add_option("--batch-size", o.batch_size, "images decoded together")
      ->capture_default_str();
  command->add_option("--method", args.method, "greedy, beam or nucleus")->capture_default_str();
  command->add_option("--beam-width", o.decode.beam_width, "beam: hypotheses per image")
      ->capture_default_str();
  command->add_option("--top-p", o.decode.top_p, "nucleus: probability mass sampled from")
      ->capture_default_str();
  command->add_option("--temperature", o.decode.temperature, "nucleus: logits are divided by it")
      ->capture_default_str();
  command
      ->add_option("--max-length", o.decode.max_length,
                   "tokens with prompt and EOS; 0: the captioner's")
      ->capture_default_str();
  command->add_option("--workers", o.workers, "image decode threads; 0: --threads")
      ->capture_default_str();
}

// The options as parsed, with what only the runtime knows: device, seed, worker count.
stages::RecaptionOptions resolve(const Cli& cli, const DecodeArgs& args) {
  const auto rt = init_runtime(cli.runtime, true);
  stages::RecaptionOptions o = args.options;
  o.decode.method = models::parse_decode_method(args.method);
  o.decode.seed = static_cast<uint64_t>(cli.runtime.seed.value_or(Config().get_int("run.seed")));
  o.device = rt.device;
  if (o.workers <= 0) o.workers = rt.threads;
  return o;
}

// NAME=FILE[:short|long] (long by default).
stages::CaptionModel parse_model_spec(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error(fmt::format("--model '{}': expected NAME=FILE[:short|long]", spec));
  stages::CaptionModel model{spec.substr(0, eq), spec.substr(eq + 1), models::CaptionStyle::kLong};
  const std::string file = model.weights.string();
  const size_t colon = file.rfind(':');
  if (colon != std::string::npos &&
      (file.substr(colon + 1) == "short" || file.substr(colon + 1) == "long")) {
    model.style = stages::parse_caption_kind(file.substr(colon + 1));
    model.weights = file.substr(0, colon);
  }
  return model;
}

}  // namespace

void add_recaption_commands(Cli& cli) {
  struct RecaptionArgs {
    std::string model, tokenizer, out, kind = "long", format = "jsonl";
    std::vector<std::string> inputs, manifests;
    DecodeArgs decode;
  };
  auto args = std::make_shared<RecaptionArgs>();
  auto* recaption = cli.app.add_subcommand(
      "recaption",
      "RECAP step 2: caption every shard or image folder with the fine-tuned captioner into "
      "OUT/<name>.recap.jsonl sidecars (key, caption, org_caption, kind, provenance); "
      "optionally a caption file per image and manifests; resumable, splittable across "
      "processes");
  recaption->add_option("--model", args->model, "captioner weights (from captioner train)")
      ->required();
  recaption->add_option("--tokenizer", args->tokenizer, "tokenizer model the captioner used")
      ->required();
  recaption
      ->add_option("--in", args->inputs,
                   "tar shards, folders of them, image folders or JSONL/CSV manifests (as "
                   "--images reads them)")
      ->required();
  recaption->add_option("--out", args->out, "sidecar folder (finished sidecars are kept)")
      ->required();
  recaption->add_option("--kind", args->kind, "caption style: long or short")
      ->capture_default_str()
      ->check(CLI::IsMember({"long", "short"}));
  recaption
      ->add_option("--format", args->format,
                   "jsonl: the sidecars only; txt: also each image's caption as a text file, "
                   "what kohya sd-scripts and OneTrainer read (OUT/<shard>/KEY.txt; an image "
                   "folder's under OUT/<folder>/ or, with --txt-beside, beside each image); an "
                   "existing file with other text is never overwritten")
      ->capture_default_str()
      ->check(CLI::IsMember({"jsonl", "txt"}));
  recaption
      ->add_option("--txt-ext", args->decode.options.txt_ext,
                   "--format txt: the caption files' extension (kohya's --caption_extension)")
      ->capture_default_str();
  recaption
      ->add_flag("--txt-beside", args->decode.options.txt_beside,
                 "--format txt: an image folder's caption files go beside its images")
      ->capture_default_str();
  recaption->add_option(
      "--manifest", args->manifests,
      "FILE.jsonl or FILE.csv, repeatable: every input's key, file, org_caption, re_caption "
      "and kind in one table (Recap-DataComp-1B's columns), written once every sidecar is "
      "finished (by whichever process finishes last)")
      ->check([](const std::string& file) {
        const auto ext = fs::path(file).extension();
        return ext == ".jsonl" || ext == ".csv" ? std::string()
                                                : std::string("a manifest is .jsonl or .csv");
      });
  recaption
      ->add_option("--shard-index", args->decode.options.shard_index,
                   "this process's index: takes sorted shards i, i+n, ...")
      ->capture_default_str();
  recaption
      ->add_option("--num-shards", args->decode.options.num_shards,
                   "processes the shards are split across")
      ->capture_default_str();
  recaption
      ->add_flag("--strict", args->decode.options.strict,
                 "stop at the first broken shard (truncated or corrupt tar) with its error; "
                 "by default the other shards are captioned and the job fails at the end")
      ->capture_default_str();
  add_decode_options(recaption, args->decode);
  cli.on_run(recaption, [&cli, args] {
    // Processes with other shard indices share --out, so the unit locked is the sidecar: each
    // one of this process's share, held until the end.
    const auto shards =
        data::expand_sources(std::vector<fs::path>(args->inputs.begin(), args->inputs.end()));
    if (args->decode.options.txt_ext.size() < 2 || args->decode.options.txt_ext[0] != '.' ||
        args->decode.options.txt_ext.find('/') != std::string::npos)
      throw Error(fmt::format("--txt-ext '{}': expected a dot and a name, e.g. .txt",
                              args->decode.options.txt_ext));
    std::vector<DirLock> locks;
    for (const auto& [position, shard] : stages::shard_share(shards, args->decode.options))
      locks.push_back(DirLock::file(stages::sidecar_path(args->out, shard)));
    auto options = resolve(cli, args->decode);
    options.style = stages::parse_caption_kind(args->kind);
    options.write_txt = args->format == "txt";
    const auto r =
        stages::recaption_shards(args->model, args->tokenizer, shards, args->out, options);
    const double seconds = std::max(r.seconds, 1e-9);
    fmt::print(
        "recaption: {} images, {} tokens in {:.1f}s ({:.1f} images/s, {:.0f} tokens/s); "
        "sidecars written {}, skipped {}, broken {}; rejected {}; in {}\n",
        r.images, r.tokens, r.seconds, static_cast<double>(r.images) / seconds,
        static_cast<double>(r.tokens) / seconds, r.shards_written, r.shards_skipped,
        r.broken.size(), r.rejected, args->out);
    stages::throw_if_broken(r);
    for (const auto& manifest : args->manifests)
      fmt::print("manifest {}{}\n", manifest,
                 stages::write_manifest(args->out, shards, manifest)
                     ? ""
                     : ": waits for the other processes' sidecars");
  });

  struct EvalArgs {
    std::string corpus, tokenizer, out;
    std::vector<std::string> models;
    int64_t samples = Config().get_int("recaption.eval_samples");
    DecodeArgs decode;
  };
  auto eval_args = std::make_shared<EvalArgs>();
  auto* captioner = cli.group("captioner", "RECAP step 1: the image captioner");
  auto* eval = captioner->add_subcommand(
      "eval",
      "Caption the first web samples with each model and score them next to the "
      "alt-text and human captions on exactly those samples");
  eval->add_option("--corpus", eval_args->corpus, "corpus folder (from corpus make)")->required();
  eval->add_option("--tokenizer", eval_args->tokenizer, "tokenizer model the captioners used")
      ->required();
  eval->add_option("--model", eval_args->models,
                   "NAME=FILE[:short|long] (long by default); repeat to compare models")
      ->required();
  eval->add_option("--out", eval_args->out,
                   "folder for NAME.jsonl, caption_quality.json and caption_quality.txt")
      ->required();
  eval->add_option("--samples", eval_args->samples, "web samples captioned and scored")
      ->capture_default_str();
  add_decode_options(eval, eval_args->decode);
  cli.on_run(eval, [&cli, eval_args] {
    const auto lock = DirLock::folder(eval_args->out);
    const auto options = resolve(cli, eval_args->decode);
    std::vector<stages::CaptionModel> models;
    for (const auto& spec : eval_args->models) models.push_back(parse_model_spec(spec));
    const auto stats = stages::evaluate_captioners(eval_args->corpus, eval_args->tokenizer, models,
                                                   eval_args->out, eval_args->samples, options);
    fmt::print("{}", corpus::format_stats_table(stats));
    fmt::print("written to {}\n", eval_args->out);
  });

  struct ViewArgs {
    ImageSourceArgs sources;
    std::vector<std::string> captions;
    std::string out;
    stages::ViewerOptions options;
  };
  auto view_args = std::make_shared<ViewArgs>();
  auto* view = cli.app.add_subcommand(
      "view",
      "One self-contained HTML page to look at a (recaptioned) corpus: each image beside its "
      "own caption and those of the --caption-source folders, filterable by source, "
      "searchable; images embedded, no network");
  add_image_source_options(view, view_args->sources)->required();
  view->add_option("--caption-source", view_args->captions,
                   "NAME=PATH (repeatable, shown in this order): a recap recaption --out folder "
                   "or sidecar, or a recaption manifest (.jsonl); as t2i train reads them")
      ->type_name("NAME=PATH");
  view->add_option("--out", view_args->out, "the HTML file written")->required();
  view->add_option("--title", view_args->options.title,
                   "page title (default: recap view and the sources' names)");
  view->add_option("--thumb", view_args->options.thumb,
                   "longest side of the embedded thumbnails, in pixels")
      ->capture_default_str();
  view->add_option("--limit", view_args->options.limit,
                   "most images on the page, in source order (the rest are counted)")
      ->capture_default_str();
  cli.on_run(view, [&cli, view_args] {
    init_runtime(cli.runtime, false);
    Config config;
    const auto sources = image_sources(view_args->sources, config);
    std::vector<stages::NamedCaptions> captions;
    if (!view_args->captions.empty())
      for (const auto& entry : stages::parse_caption_mix(view_args->captions, "", false).entries)
        captions.push_back(entry.source);
    const auto r = stages::write_caption_viewer(sources, read_limits(config), captions,
                                                view_args->options, view_args->out);
    fmt::print("view: {} images{}; {}; written to {}\n", r.shown,
               r.not_shown > 0 ? fmt::format(" ({} more not shown: --limit)", r.not_shown) : "",
               r.rejects, view_args->out);
  });
}

}  // namespace recap::cli
