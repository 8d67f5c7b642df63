#include "core/torch_pch.h"
#include "stages/evaluate.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <unordered_map>
#include <variant>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/loader.h"
#include "data/source.h"
#include "data/tensor_batch.h"
#include "models/evaluator.h"
#include "models/inception.h"
#include "stages/clip_train.h"
#include "stages/corpus.h"
#include "stages/evaluator_train.h"
#include "stages/sample.h"
#include "stages/settings.h"
#include "world/geneval_prompts.h"
#include "world/parser.h"
#include "world/render.h"
#include "world/sampler.h"
#include "world/score.h"

namespace recap::stages {

namespace {

// Scenes of the noise floor: a stream of their own, never the corpus's splits.
uint64_t floor_stream(uint64_t corpus_seed) { return derive_seed(corpus_seed, 0xE7A1'F100); }
// Bootstrap and KID subset draws.
uint64_t metrics_stream(uint64_t seed) { return derive_seed(seed, 0xE7A1'F101); }
uint64_t kid_stream(uint64_t seed) { return derive_seed(seed, 0xE7A1'F102); }
// Scenes of GenEval's ceiling renders: their own stream too.
uint64_t geneval_ceiling_stream(uint64_t corpus_seed) {
  return derive_seed(corpus_seed, 0xE7A1'F103);
}
// Paired comparisons of two evaluations: "PAIRED" below the metrics stream, as the run's
// report has drawn it since paired statistics came in.
uint64_t paired_stream(uint64_t seed) {
  return derive_seed(metrics_stream(seed), 0x504149524544ull);
}

// The evaluator and the world it judges.
struct Judge {
  world::WorldConfig world;
  CorpusSettings corpus;
  data::ReadLimits read_limits;
  data::DecodeLimits decode_limits;
  models::Detector detector{nullptr};
  models::DetectionDecodeOptions decode;
  nlohmann::json accuracy;  // evaluator_accuracy.json, null when absent
  models::InceptionV3 inception{nullptr};  // FID features when set, else the detector's
  std::optional<ClipJudge> clip;            // CLIP scores when set
};

Judge load_judge(const fs::path& evaluator_dir, const fs::path& corpus_dir,
                 const EvaluateOptions& options) {
  const Config config = corpus::corpus_config(corpus_dir);
  Judge judge;
  judge.world = world_settings(config);
  judge.corpus = corpus_settings(config);
  judge.read_limits = read_limits(config);
  judge.decode_limits = decode_limits(config);
  judge.detector = load_detector(evaluator_dir, &judge.world, &judge.decode);
  if (options.inception && options.fid) {
    judge.inception = models::load_inception(*options.inception);
    judge.inception->to(judge.detector->parameters().front().device());
  }
  if (options.clip) {
    judge.clip = load_clip_judge(*options.clip);
    judge.clip->model->to(judge.detector->parameters().front().device());
  }
  const fs::path accuracy =
      evaluator_weights_path(evaluator_dir).parent_path() / "evaluator_accuracy.json";
  if (fs::exists(accuracy)) {
    try {
      judge.accuracy = nlohmann::json::parse(read_file(accuracy));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: bad JSON: {}", accuracy.string(), e.what()));
    }
  }
  return judge;
}

// What the detector makes of a set of images.
struct Judged {
  std::vector<std::vector<eval::Detection>> detections;
  torch::Tensor features;  // [N, width]
};

// With a judge CLIP: each image's CLIP score against its prompt (scores[i].id.prompt), set in
// scores[i], and the judge's check in `report`. Nothing without one.
void score_with_clip(Judge& judge, const std::vector<data::DecodedSample>& images,
                     std::vector<eval::ImageScore>& scores, int64_t batch_size,
                     EvalReport& report) {
  if (!judge.clip) return;
  std::vector<std::string> prompts;
  for (const auto& score : scores) prompts.push_back(score.id.prompt);
  const auto clip =
      clip_scores(*judge.clip, data::to_tensor_batch(images).images, prompts, batch_size);
  for (size_t i = 0; i < scores.size(); ++i) scores[i].clip_score = clip[i];
  report.clip_judge = judge.clip->check;
}

// images: canvas-sized RGB, judged `batch_size` at a time.
Judged judge_images(Judge& judge, const std::vector<data::DecodedSample>& images,
                    int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const auto device = judge.detector->parameters().front().device();
  Judged out;
  std::vector<torch::Tensor> features;
  for (size_t start = 0; start < images.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(images.size(), start + static_cast<size_t>(batch_size));
    const std::vector<data::DecodedSample> batch(images.begin() + static_cast<long>(start),
                                                 images.begin() + static_cast<long>(end));
    const auto tensor = data::to_tensor_batch(batch).images.to(device);
    auto found = models::detect(judge.detector, tensor, judge.world, judge.decode);
    out.detections.insert(out.detections.end(), found.begin(), found.end());
    features.push_back((judge.inception ? models::inception_features(judge.inception, tensor)
                                        : judge.detector->features(tensor))
                           .cpu());
  }
  out.features = torch::cat(features);
  return out;
}

data::DecodedSample decode_checked(const std::string& bytes, const std::string& name,
                                   const Judge& judge) {
  auto decoded = data::decode_image(bytes, judge.decode_limits);
  if (!decoded.image)
    throw Error(
        fmt::format("{}: cannot decode the image ({}: {})", name, decoded.reason, decoded.detail));
  if (decoded.image->width != judge.world.canvas || decoded.image->height != judge.world.canvas)
    throw Error(fmt::format("{}: the image is {}x{}; the evaluator reads {}x{}", name,
                            decoded.image->width, decoded.image->height, judge.world.canvas,
                            judge.world.canvas));
  data::DecodedSample sample;
  sample.key = name;
  sample.image = std::move(*decoded.image);
  return sample;
}

// The eval split's renders with their human long captions (KEY.txt), in shard order.
std::vector<data::DecodedSample> reference_renders(const fs::path& corpus_dir, const Judge& judge) {
  std::vector<data::DecodedSample> out;
  for (const auto& shard : corpus::list_shards(corpus_dir, corpus::Split::Eval)) {
    auto source = data::open_source(shard, judge.read_limits);
    while (auto item = source->next()) {
      if (const auto* reject = std::get_if<data::Reject>(&*item))
        throw Error(fmt::format("{}: {}: unusable reference ({}: {})", shard.string(), reject->key,
                                reject->reason, reject->detail));
      const auto& sample = std::get<data::Sample>(*item);
      auto decoded = decode_checked(sample.image_bytes, shard.string() + ": " + sample.key, judge);
      decoded.key = sample.key;
      decoded.caption = sample.caption;
      out.push_back(std::move(decoded));
    }
  }
  if (out.size() < 2)
    throw Error(fmt::format("{}: the eval split holds {} reference images; FID needs 2",
                            corpus_dir.string(), out.size()));
  return out;
}

// Features of `n` freshly rendered scenes from the floor stream.
torch::Tensor floor_features(Judge& judge, int64_t n, int64_t batch_size) {
  std::vector<data::DecodedSample> renders(static_cast<size_t>(n));
  const uint64_t stream = floor_stream(judge.corpus.seed);
  for (int64_t i = 0; i < n; ++i)
    renders[static_cast<size_t>(i)].image =
        world::render(world::sample_scene(judge.world, derive_seed(stream, i)), judge.world);
  return judge_images(judge, renders, batch_size).features;
}

FidResult fid_against(const Judge& judge, const torch::Tensor& features,
                      const torch::Tensor& reference, const eval::KidOptions& kid) {
  FidResult r;
  r.features = judge.inception ? "inception-v3" : "evaluator";
  r.fid = eval::fid(features, reference);
  r.kid = eval::kid(features, reference, kid);
  r.n_generated = features.size(0);
  r.n_reference = reference.size(0);
  return r;
}

// The seed images.jsonl records for an image (its "seed"), unset when it records none.
std::optional<uint64_t> image_seed(const SampledImage& image, const fs::path& images_dir) {
  const nlohmann::json& seed = image.record.value("seed", nlohmann::json());
  if (seed.is_null()) return std::nullopt;
  if (!seed.is_number_unsigned())
    throw Error(fmt::format("{}: {}: \"seed\" is {}, not an unsigned integer",
                            (images_dir / "images.jsonl").string(),
                            image.file.filename().string(), seed.dump()));
  return seed.get<uint64_t>();
}

std::vector<eval::ImageDetections> with_detections(std::vector<eval::ImageDetections> images,
                                                   const Judged& judged) {
  for (size_t i = 0; i < images.size(); ++i) images[i].detections = judged.detections[i];
  return images;
}

// GenEval's verdict on every image sampled from GenEval metadata (eval/geneval.h).
void judge_geneval(const std::vector<SampledImage>& sampled,
                   const std::vector<eval::ImageDetections>& images,
                   const eval::MetricOptions& options, EvalReport& report) {
  std::vector<std::string> tags;
  std::vector<eval::GenevalVerdict> verdicts;
  for (size_t i = 0; i < sampled.size(); ++i) {
    if (!sampled[i].request.geneval) continue;
    const auto& metadata = *sampled[i].request.geneval;
    verdicts.push_back(eval::geneval_judge(metadata, images[i].detections, options));
    tags.push_back(metadata.tag);
    // Named as in the folder (images.jsonl's "file"), so a run's lines do not depend on
    // where its folder lies.
    report.geneval_lines.push_back(
        eval::geneval_result_line(sampled[i].record.at("file").get<std::string>(), metadata,
                                  images[i].detections, verdicts.back()));
  }
  if (!tags.empty()) report.geneval = eval::geneval_scores(tags, verdicts);
}

// GenEval's ceiling: one render of the perfect scene of each GenEval prompt a run evaluates
// (corpus_geneval_prompts; world::scene_for_target of its target, a seed per prompt from the
// ceiling's own stream), judged by GenEval's rules as a sampled image would be; each is named
// in GenEval's layout (NNNNN/samples/0000.png) though none is written.
void judge_geneval_renders(Judge& judge, const fs::path& corpus_dir, int per_task,
                           int64_t batch_size, const eval::MetricOptions& options,
                           EvalReport& report) {
  std::vector<SampledImage> sampled;
  std::vector<data::DecodedSample> renders;
  const uint64_t stream = geneval_ceiling_stream(judge.corpus.seed);
  for (auto& request : corpus_geneval_prompts(corpus_dir, per_task)) {
    const std::string name = fmt::format("{:05}/samples/0000.png", sampled.size());
    try {
      world::check_geneval_in_world(*request.geneval, judge.world);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: \"{}\": {}",
                              corpus::geneval_prompts_path(corpus_dir).string(), request.text,
                              e.what()));
    }
    data::DecodedSample render;
    render.key = name;
    render.image = world::render(
        world::scene_for_target(judge.world, *request.target, derive_seed(stream, sampled.size())),
        judge.world);
    renders.push_back(std::move(render));
    sampled.push_back({name, std::move(request), {{"file", name}}});
  }
  if (renders.empty()) return;
  const auto judged = judge_images(judge, renders, batch_size);
  judge_geneval(sampled,
                with_detections(std::vector<eval::ImageDetections>(renders.size()), judged),
                options, report);
}

nlohmann::json fid_json(const std::optional<FidResult>& r) {
  if (!r) return nullptr;
  return {{"features", r->features},
          {"fid", r->fid},
          {"kid",
           {{"mean", r->kid.mean},
            {"std", r->kid.std},
            {"std_error", r->kid.std_error},
            {"subsets", r->kid.subsets},
            {"subset_size", r->kid.subset_size}}},
          {"n_generated", r->n_generated},
          {"n_reference", r->n_reference}};
}

std::string fid_cell(const std::optional<FidResult>& r) {
  return r ? fmt::format("{:.4f}", r->fid) : "-";
}
std::string kid_cell(const std::optional<FidResult>& r) {
  return r ? fmt::format("{:.5f} +- {:.5f}", r->kid.mean, r->kid.std_error) : "-";
}

}  // namespace

EvalReport evaluate_images(const fs::path& images_dir, const fs::path& evaluator_dir,
                           const fs::path& corpus_dir, const EvaluateOptions& options) {
  auto sampled = read_sample_folder(images_dir);
  if (options.prompts) {
    std::unordered_map<std::string, SampleRequest> known;
    for (auto& p : read_prompts(*options.prompts)) known.emplace(p.text, std::move(p));
    for (auto& image : sampled) {
      auto it = known.find(image.request.text);
      if (it == known.end())
        throw Error(fmt::format("{}: {} was sampled from \"{}\", which {} does not hold",
                                (images_dir / "images.jsonl").string(),
                                image.file.filename().string(), image.request.text,
                                options.prompts->string()));
      if (!image.request.suite) image.request.suite = it->second.suite;
      if (!image.request.target) image.request.target = it->second.target;
      if (!image.request.geneval) image.request.geneval = it->second.geneval;
    }
  }
  Judge judge = load_judge(evaluator_dir, corpus_dir, options);
  const world::CaptionParser parser(judge.world);
  std::vector<data::DecodedSample> decoded;
  std::vector<eval::ImageDetections> images;
  for (const auto& image : sampled) {
    try {
      if (image.request.geneval) world::check_geneval_in_world(*image.request.geneval, judge.world);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", image.file.string(), e.what()));
    }
    decoded.push_back(decode_checked(read_file(image.file), image.file.string(), judge));
    eval::ImageDetections scored;
    scored.target = image.request.target ? *image.request.target : parser.parse(image.request.text);
    scored.id = {image.request.text, image_seed(image, images_dir)};
    images.push_back(std::move(scored));
  }
  spdlog::info("eval: judging {} images from {}", decoded.size(), images_dir.string());
  const auto judged = judge_images(judge, decoded, options.batch_size);
  images = with_detections(std::move(images), judged);

  EvalReport report;
  report.name = images_dir.filename().empty() ? images_dir.parent_path().filename().string()
                                              : images_dir.filename().string();
  report.images = static_cast<int64_t>(images.size());
  std::vector<eval::ImageScore> scores;
  for (const auto& image : images) scores.push_back(eval::score_image(image, options.metrics));
  score_with_clip(judge, decoded, scores, options.batch_size, report);
  std::vector<std::optional<std::string>> suites;
  for (size_t i = 0; i < images.size(); ++i) {
    report.per_image.push_back({sampled[i].record.at("file").get<std::string>(),
                                sampled[i].request.suite, images[i], scores[i]});
    suites.push_back(sampled[i].request.suite);
  }
  report.overall = eval::summarize(scores, options.metrics);
  report.suites = eval::summarize_by_suite(scores, suites, options.metrics);
  judge_geneval(sampled, images, options.metrics, report);
  if (options.fid) {
    const auto reference =
        judge_images(judge, reference_renders(corpus_dir, judge), options.batch_size).features;
    report.fid = fid_against(judge, judged.features, reference, options.kid);
    report.fid_floor = fid_against(
        judge, floor_features(judge, report.images, options.batch_size), reference, options.kid);
  }
  report.evaluator_accuracy = judge.accuracy;
  return report;
}

EvalReport evaluate_reference(const fs::path& evaluator_dir, const fs::path& corpus_dir,
                              const EvaluateOptions& options) {
  Judge judge = load_judge(evaluator_dir, corpus_dir, options);
  const world::CaptionParser parser(judge.world);
  const auto renders = reference_renders(corpus_dir, judge);
  std::vector<eval::ImageDetections> images;
  for (const auto& r : renders)
    images.push_back({parser.parse(r.caption), {}, {r.caption, std::nullopt}});
  const auto judged = judge_images(judge, renders, options.batch_size);
  images = with_detections(std::move(images), judged);
  EvalReport report;
  report.name = "ceiling";
  report.images = static_cast<int64_t>(images.size());
  std::vector<eval::ImageScore> scores;
  for (const auto& image : images) scores.push_back(eval::score_image(image, options.metrics));
  score_with_clip(judge, renders, scores, options.batch_size, report);
  for (size_t i = 0; i < images.size(); ++i)
    report.per_image.push_back({renders[i].key, std::nullopt, images[i], scores[i]});
  report.overall = eval::summarize(scores, options.metrics);
  judge_geneval_renders(judge, corpus_dir, options.geneval_per_task, options.batch_size,
                        options.metrics, report);
  if (options.fid)
    report.fid_floor =
        fid_against(judge, floor_features(judge, report.images, options.batch_size),
                    judged.features, options.kid);
  report.evaluator_accuracy = judge.accuracy;
  return report;
}

struct PromptScorer::State {
  Judge judge;
};

PromptScorer::PromptScorer(const fs::path& evaluator_dir, const fs::path& corpus_dir) {
  EvaluateOptions options;
  options.fid = false;
  state_ = std::make_unique<State>(State{load_judge(evaluator_dir, corpus_dir, options)});
}
PromptScorer::~PromptScorer() = default;
PromptScorer::PromptScorer(PromptScorer&&) noexcept = default;

eval::PromptMetrics PromptScorer::score(const torch::Tensor& images,
                                        const std::vector<world::Facts>& targets,
                                        const eval::MetricOptions& options) {
  auto& judge = state_->judge;
  if (images.dim() != 4 || images.size(0) != static_cast<int64_t>(targets.size()) ||
      images.size(1) != 3 || images.size(2) != judge.world.canvas ||
      images.size(3) != judge.world.canvas)
    throw Error(fmt::format("scorer: need [{}, 3, {}, {}] images, got {}", targets.size(),
                            judge.world.canvas, judge.world.canvas, c10::str(images.sizes())));
  torch::NoGradGuard no_grad;
  const auto device = judge.detector->parameters().front().device();
  // The same 8-bit rounding as data::to_images, so a probe sees what `recap eval` would.
  const auto quantised =
      images.clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1).to(device);
  auto found = models::detect(judge.detector, quantised, judge.world, judge.decode);
  std::vector<eval::ImageDetections> scored(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    scored[i].target = targets[i];
    scored[i].detections = std::move(found[i]);
  }
  return eval::score_prompts(scored, options);
}

nlohmann::json to_json(const EvalReport& report) {
  nlohmann::json suites = nlohmann::json::object();
  for (const auto& [suite, metrics] : report.suites)
    suites[suite] = eval::to_json(metrics);
  return {{"name", report.name},
          {"images", report.images},
          {"overall", eval::to_json(report.overall)},
          {"suites", suites},
          {"fid", fid_json(report.fid)},
          {"fid_floor", fid_json(report.fid_floor)},
          {"evaluator_accuracy", report.evaluator_accuracy},
          {"clip_judge", report.clip_judge},
          {"geneval", report.geneval ? eval::to_json(*report.geneval) : nlohmann::json()}};
}

fs::path geneval_results_path(const fs::path& summary) {
  return summary.parent_path() / (summary.stem().string() + ".geneval.jsonl");
}

std::optional<fs::path> write_geneval_results_beside(const fs::path& summary,
                                                     const EvalReport& report) {
  if (report.geneval_lines.empty()) return std::nullopt;
  std::string lines;
  for (const auto& line : report.geneval_lines) lines += line.dump() + "\n";
  const fs::path path = geneval_results_path(summary);
  write_file_atomic(path, lines);
  return path;
}

std::string format_eval_table(const std::vector<EvalReport>& reports) {
  std::vector<std::pair<std::string, eval::PromptMetrics>> rows;
  for (const auto& r : reports) {
    rows.emplace_back(r.name, r.overall);
    for (const auto& [suite, metrics] : r.suites)
      rows.emplace_back(fmt::format("{} / {}", r.name, suite), metrics);
  }
  std::string out = eval::format_table(rows);
  // FID/KID: one row per report.
  std::vector<std::vector<std::string>> table = {
      {"set", "FID", "KID +- s.e.", "floor FID", "floor KID +- s.e."}};
  for (const auto& r : reports)
    table.push_back(
        {r.name, fid_cell(r.fid), kid_cell(r.fid), fid_cell(r.fid_floor), kid_cell(r.fid_floor)});
  out += '\n' + eval::align_columns(table);
  for (const auto& r : reports)
    if (r.geneval) out += fmt::format("\n{}: {}\n", r.name, eval::format_geneval(*r.geneval));
  return out;
}

EvaluateOptions evaluate_settings(const Config& config) {
  EvaluateOptions o;
  const auto seed = static_cast<uint64_t>(config.get_int("run.seed"));
  o.metrics.relation_margin_px = world::relation_margin_px(world_settings(config));
  o.metrics.min_score = config.get_float("eval.min_score");
  o.metrics.bootstrap_samples = static_cast<int>(config.get_int("eval.bootstrap"));
  o.metrics.level = config.get_float("eval.level");
  o.metrics.seed = metrics_stream(seed);
  o.paired = {o.metrics.bootstrap_samples, o.metrics.level, paired_stream(seed)};
  o.kid.subsets = static_cast<int>(config.get_int("eval.kid_subsets"));
  o.kid.subset_size = config.get_int("eval.kid_subset_size");
  o.kid.seed = kid_stream(seed);
  o.batch_size = config.get_int("eval.batch_size");
  o.fid = config.get_bool("eval.fid");
  o.geneval_per_task = static_cast<int>(config.get_int("eval.geneval_per_task"));
  return o;
}

}  // namespace recap::stages
