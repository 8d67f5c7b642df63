#include "core/torch_pch.h"
#include "stages/sample.h"

#include <chrono>
#include <map>
#include <regex>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "data/tensor_batch.h"
#include "data/text_checks.h"
#include "stages/corpus.h"
#include "stages/t2i_model.h"
#include "text/tokenizer.h"

namespace recap::stages {

namespace {

constexpr const char* kIndex = "images.jsonl";
constexpr const char* kGrid = "grid.png";

std::string_view trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// Image k of a run with `per_prompt` images per prompt: prompt k / per_prompt, its image
// k % per_prompt.
std::string image_name(SampleLayout layout, int64_t k, int64_t per_prompt) {
  if (layout == SampleLayout::Geneval)
    return fmt::format("{:05d}/samples/{:04d}.png", k / per_prompt, k % per_prompt);
  return fmt::format("{:06d}.png", k);
}

std::string geneval_metadata_name(size_t prompt) {
  return fmt::format("{:05d}/metadata.jsonl", prompt);
}

// Removes what a previous, different run left: the index first (so the folder stops counting
// as finished), the grid, and numbered images and prompt folders this run will not write
// (another layout's, or past this run's counts).
void clear_stale(const fs::path& out_dir, SampleLayout layout, int64_t prompts,
                 int64_t per_prompt) {
  fs::remove(out_dir / kIndex);
  fs::remove(out_dir / kGrid);
  static const std::regex flat_image("([0-9]{6})\\.png"), prompt_dir("([0-9]{5})"),
      geneval_image("([0-9]{4})\\.png");
  const bool geneval = layout == SampleLayout::Geneval;
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, flat_image) &&
        (geneval || std::stoll(m[1].str()) >= prompts * per_prompt))
      fs::remove(entry.path());
    if (!std::regex_match(name, m, prompt_dir) || !entry.is_directory()) continue;
    if (!geneval || std::stoll(m[1].str()) >= prompts) {
      fs::remove_all(entry.path());
      continue;
    }
    if (!fs::is_directory(entry.path() / "samples")) continue;
    for (const auto& image : fs::directory_iterator(entry.path() / "samples")) {
      const std::string file = image.path().filename().string();
      if (std::regex_match(file, m, geneval_image) && std::stoll(m[1].str()) >= per_prompt)
        fs::remove(image.path());
    }
  }
}

SampleRequest geneval_request(world::GenevalPrompt metadata) {
  SampleRequest r{metadata.prompt, kGenevalSuite, world::geneval_target(metadata), {}};
  r.geneval = std::move(metadata);
  return r;
}

nlohmann::json geneval_json(const world::GenevalPrompt& metadata) {
  return nlohmann::json::parse(world::to_json(metadata).dump());
}

// A folder in GenEval's layout (evaluate_images.py's reading): every folder whose name is
// digits, in numeric order, holds metadata.jsonl (one JSON object) and samples/ with images
// named DIGITS.png, taken in numeric order.
std::vector<SampledImage> read_geneval_folder(const fs::path& dir) {
  static const std::regex digits("[0-9]+"), image("([0-9]+)\\.png");
  std::vector<std::pair<int64_t, fs::path>> prompts;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, digits) && name.size() < 18)
      prompts.emplace_back(std::stoll(name), entry.path());
  }
  std::sort(prompts.begin(), prompts.end());
  std::vector<SampledImage> images;
  for (const auto& [index, folder] : prompts) {
    const fs::path meta_file = folder / "metadata.jsonl";
    if (!fs::exists(meta_file))
      throw Error(fmt::format("{}: missing (a GenEval prompt folder holds its metadata.jsonl)",
                              meta_file.string()));
    world::GenevalPrompt metadata;
    try {
      metadata = world::geneval_from_json(nlohmann::json::parse(read_file(meta_file)));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: bad JSON: {}", meta_file.string(), e.what()));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", meta_file.string(), e.what()));
    }
    const fs::path samples = folder / "samples";
    if (!fs::is_directory(samples))
      throw Error(fmt::format("{}: missing (a GenEval prompt folder holds its images in "
                              "samples/NNNN.png)",
                              samples.string()));
    std::vector<std::pair<int64_t, std::string>> files;
    for (const auto& entry : fs::directory_iterator(samples)) {
      std::smatch m;
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && std::regex_match(name, m, image) && m[1].length() < 18)
        files.emplace_back(std::stoll(m[1].str()), name);
    }
    std::sort(files.begin(), files.end());
    for (const auto& [number, name] : files) {
      const std::string rel = fs::relative(samples / name, dir).generic_string();
      SampledImage sampled{dir / rel, geneval_request(metadata), {}};
      sampled.record = {{"file", rel},          {"prompt", metadata.prompt},
                        {"suite", kGenevalSuite}, {"target", world::to_json(*sampled.request.target)},
                        {"seed", nullptr},        {"geneval", geneval_json(metadata)}};
      images.push_back(std::move(sampled));
    }
  }
  if (images.empty())
    throw Error(fmt::format("{}: missing (not a finished `recap sample` folder), and {} holds no "
                            "GenEval images (NNNNN/metadata.jsonl, NNNNN/samples/NNNN.png)",
                            (dir / kIndex).string(), dir.string()));
  return images;
}

}  // namespace

SampleLayout parse_sample_layout(const std::string& name) {
  if (name == "flat") return SampleLayout::Flat;
  if (name == "geneval") return SampleLayout::Geneval;
  throw Error(fmt::format("sample layout \"{}\": expected flat or geneval", name));
}

std::vector<SampleRequest> read_prompts(const fs::path& file) {
  const std::string bytes = read_file(file);
  std::vector<SampleRequest> prompts;
  std::optional<bool> jsonl;  // decided by the first non-empty line
  size_t line_no = 0;
  for (size_t start = 0; start < bytes.size();) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    const std::string_view raw(bytes.data() + start, end - start);
    start = end + 1;
    ++line_no;
    const auto where = [&] { return fmt::format("{}:{}", file.string(), line_no); };
    if (!data::is_valid_utf8(raw)) throw Error(where() + ": not valid UTF-8");
    const std::string_view line = trim(raw);
    if (line.empty()) continue;
    if (!jsonl) jsonl = line.front() == '{';
    if (!*jsonl) {
      prompts.push_back({std::string(line), std::nullopt, std::nullopt});
      continue;
    }
    try {
      const auto json = nlohmann::json::parse(line);
      if (world::looks_like_geneval(json)) {
        prompts.push_back(geneval_request(world::geneval_from_json(json)));
        continue;
      }
      const auto prompt = world::prompt_from_json(json);
      prompts.push_back({prompt.text, prompt.suite, prompt.target, {}});
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: bad JSON: {}", where(), e.what()));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", where(), e.what()));
    }
  }
  return prompts;
}

std::vector<SampleRequest> corpus_geneval_prompts(const fs::path& corpus_dir, int per_task) {
  const fs::path file = corpus::geneval_prompts_path(corpus_dir);
  if (per_task <= 0) return {};
  if (!fs::exists(file)) {
    spdlog::warn("{} is missing (a corpus made before the world wrote GenEval prompts): no "
                 "GenEval-style scores",
                 file.string());
    return {};
  }
  std::vector<SampleRequest> out;
  std::map<std::string, int> taken;
  size_t n = 0;
  for (auto& request : read_prompts(file)) {
    ++n;
    if (!request.geneval)
      throw Error(fmt::format("{}: prompt {} (\"{}\") has no GenEval metadata (tag, include)",
                              file.string(), n, request.text));
    if (taken[request.geneval->tag]++ < per_task) out.push_back(std::move(request));
  }
  return out;
}

SampleRunResult sample_to_folder(const fs::path& model_path, const fs::path& tokenizer_model,
                                 const std::vector<SampleRequest>& prompts, const fs::path& out_dir,
                                 const SampleRunOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  if (prompts.empty()) throw Error("sample: no prompts given");
  if (options.images_per_prompt < 1 || options.batch_size < 1 || options.grid_columns < 0)
    throw Error(
        fmt::format("sample: images per prompt ({}) and batch size ({}) must be positive "
                    "and grid columns ({}) not negative",
                    options.images_per_prompt, options.batch_size, options.grid_columns));
  for (size_t i = 0; i < prompts.size(); ++i)
    if (!data::is_valid_utf8(prompts[i].text))
      throw Error(fmt::format("sample: prompt {} is not valid UTF-8", i + 1));
  const auto tokenizer = text::Tokenizer::load(tokenizer_model);
  auto loaded = load_t2i(model_path, tokenizer);
  SampleOptions settings = loaded.sample;
  if (options.sampler) settings.sampler = *options.sampler;
  if (options.steps) settings.steps = *options.steps;
  if (options.guidance_scale) settings.guidance_scale = *options.guidance_scale;
  if (settings.steps < 1 || settings.steps > settings.timesteps)
    throw Error(
        fmt::format("sample: steps must be in 1..{} (got {})", settings.timesteps, settings.steps));
  if (settings.guidance_scale < 0)
    throw Error(fmt::format("sample: guidance scale {} is negative", settings.guidance_scale));

  // The index this run writes, known before any image: it is what a finished folder must hold.
  const std::string model_sha = sha256_file(model_path);
  const int64_t per_prompt = options.images_per_prompt;
  const bool geneval = options.layout == SampleLayout::Geneval;
  if (geneval)
    for (size_t i = 0; i < prompts.size(); ++i)
      if (!prompts[i].geneval)
        throw Error(fmt::format("sample --layout geneval: prompt {} (\"{}\") has no GenEval "
                                "metadata; give a GenEval prompt file "
                                "(CORPUS/prompts/geneval/evaluation_metadata.jsonl)",
                                i + 1, prompts[i].text));
  const int64_t total = static_cast<int64_t>(prompts.size()) * per_prompt;
  std::vector<nlohmann::json> records;
  std::vector<uint64_t> seeds;
  for (int64_t k = 0; k < total; ++k) {
    const auto& p = prompts[static_cast<size_t>(k / per_prompt)];
    seeds.push_back(derive_seed(options.seed, static_cast<uint64_t>(k)));
    records.push_back(
        {{"file", image_name(options.layout, k, per_prompt)},
         {"prompt", p.text},
         {"suite", p.suite ? nlohmann::json(*p.suite) : nlohmann::json()},
         {"target", p.target ? world::to_json(*p.target) : nlohmann::json()},
         {"seed", seeds.back()},
         {"sampler", diffusion::sampler_name(settings.sampler)},
         {"steps", settings.steps},
         {"guidance", settings.guidance_scale},
         {"model", model_sha}});
    if (p.geneval) records.back()["geneval"] = geneval_json(*p.geneval);
  }
  const fs::path index = out_dir / kIndex;
  if (fs::exists(index) && read_jsonl(index) == records &&
      (options.grid_columns == 0 || fs::exists(out_dir / kGrid))) {
    return {total, total, 0};
  }
  fs::create_directories(out_dir);
  clear_stale(out_dir, options.layout, static_cast<int64_t>(prompts.size()), per_prompt);
  if (geneval)
    for (size_t i = 0; i < prompts.size(); ++i)
      write_file_atomic(out_dir / geneval_metadata_name(i),
                        world::to_json(*prompts[i].geneval).dump() + "\n");

  const int64_t max_length = loaded.model->options().text.max_length;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const size_t tokens = tokenizer.encode(prompts[i].text).size();
    if (static_cast<int64_t>(tokens) + 2 > max_length)  // + BOS and EOS
      spdlog::warn(
          "sample: prompt {} is {} tokens; the text encoder reads {}, so it is "
          "truncated: \"{}\"",
          i + 1, tokens, max_length - 2, prompts[i].text);
  }
  if (settings.guidance_scale == 0)
    spdlog::info("sample: guidance 0 samples the unconditional model; prompts are not read");

  Progress progress("sample", total, "img");
  std::vector<torch::Tensor> grid_cells;
  for (int64_t start = 0; start < total; start += options.batch_size) {
    const int64_t end = std::min(total, start + options.batch_size);
    std::vector<std::string> texts;
    // Guidance 0 reads only the empty condition; giving it the empty prompt keeps the result
    // independent of how long the batch's prompts are (they set the condition's padding).
    for (int64_t k = start; k < end; ++k)
      texts.push_back(settings.guidance_scale == 0
                          ? std::string()
                          : prompts[static_cast<size_t>(k / per_prompt)].text);
    const std::vector<uint64_t> batch_seeds(seeds.begin() + start, seeds.begin() + end);
    auto images = sample_images(loaded.model, tokenizer, texts, batch_seeds, settings).cpu();
    const auto pngs = data::to_images(images);
    for (int64_t k = start; k < end; ++k)
      write_file_atomic(out_dir / image_name(options.layout, k, per_prompt),
                        data::encode_png(pngs[static_cast<size_t>(k - start)]));
    if (options.grid_columns > 0) grid_cells.push_back(images);
    progress.add(end - start);
  }
  progress.finish();
  if (options.grid_columns > 0)
    write_file_atomic(
        out_dir / kGrid,
        data::encode_png(grid_image(torch::cat(grid_cells), options.grid_columns, kGridUpscale)));
  std::string lines;
  for (const auto& r : records) lines += r.dump() + "\n";
  write_file_atomic(index, lines);
  return {total, 0, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

std::vector<SampledImage> read_sample_folder(const fs::path& dir) {
  const fs::path index = dir / kIndex;
  if (!fs::exists(index)) {
    if (!fs::is_directory(dir)) throw Error(fmt::format("{}: no such folder", dir.string()));
    return read_geneval_folder(dir);
  }
  std::vector<SampledImage> images;
  size_t line_no = 0;
  for (auto& record : read_jsonl(index)) {
    ++line_no;
    try {
      SampledImage image;
      image.file = dir / record.at("file").get<std::string>();
      image.request.text = record.at("prompt").get<std::string>();
      const auto& suite = record.value("suite", nlohmann::json());
      if (!suite.is_null()) {
        world::check_suite_name(suite.get<std::string>());
        image.request.suite = suite.get<std::string>();
      }
      const auto& target = record.value("target", nlohmann::json());
      if (!target.is_null()) image.request.target = world::facts_from_json(target);
      const auto& geneval = record.value("geneval", nlohmann::json());
      if (!geneval.is_null()) image.request.geneval = world::geneval_from_json(geneval);
      image.record = std::move(record);
      images.push_back(std::move(image));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}:{}: {}", index.string(), line_no, e.what()));
    } catch (const Error& e) {
      throw Error(fmt::format("{}:{}: {}", index.string(), line_no, e.what()));
    }
  }
  if (images.empty()) throw Error(fmt::format("{}: no images listed", index.string()));
  return images;
}

data::Image grid_image(const torch::Tensor& images, int64_t columns, int64_t upscale) {
  if (columns < 1 || upscale < 1 || images.dim() != 4 || images.size(0) < 1)
    throw std::logic_error("grid_image: need [N, 3, S, S] images, columns and upscale >= 1");
  const int64_t n = images.size(0), s = images.size(2);
  const int64_t rows = (n + columns - 1) / columns;
  auto cells = torch::full({rows * columns, 3, s, s}, -1.0f);
  cells.narrow(0, 0, n).copy_(images.cpu());
  auto grid = cells.view({rows, columns, 3, s, s})
                  .permute({2, 0, 3, 1, 4})  // [3, rows, S, cols, S]
                  .reshape({3, rows * s, columns * s})
                  .repeat_interleave(upscale, 1)
                  .repeat_interleave(upscale, 2);
  return data::to_images(grid)[0];
}

}  // namespace recap::stages
