// `recap sample`: images from a trained text-to-image model (stages/t2i_model.h) for a list of
// prompts, written as numbered PNGs with an images.jsonl index that `recap eval` reads. The
// index records each image's prompt, its suite and exact target when it came from a prompt
// suite, its seed and the sampling settings, so a folder is self-describing and reproducible.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "data/image.h"
#include "diffusion/samplers.h"
#include "world/facts.h"
#include "world/geneval_prompts.h"
#include "world/prompts.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct SampleRequest {
  std::string text;
  std::optional<std::string> suite;    // set for suite prompts: the world's or a user's name
  std::optional<world::Facts> target;  // set for suite prompts (their exact target)
  // Set for GenEval prompts (suite "geneval"; target world::geneval_target of it): what
  // `--layout geneval` writes as NNNNN/metadata.jsonl and `recap eval` judges by GenEval's rules.
  std::optional<world::GenevalPrompt> geneval;
};

// The suite name of GenEval prompts, whatever their tag.
inline constexpr const char* kGenevalSuite = "geneval";

// A prompts file: JSONL suite prompts (world::to_json(Prompt) lines, as in
// CORPUS/prompts/SUITE.jsonl, or GenEval metadata lines, as in
// CORPUS/prompts/geneval/evaluation_metadata.jsonl; chosen when the first non-empty line starts
// with '{') or plain text, one prompt per line (surrounding whitespace dropped). Empty lines are skipped. Throws
// recap::Error naming file:line for invalid UTF-8, bad JSON or a bad prompt object.
std::vector<SampleRequest> read_prompts(const fs::path& file);
// The GenEval prompts a run evaluates: the first `per_task` prompts of each GenEval task (tag)
// of the corpus's test file (CORPUS/prompts/geneval/evaluation_metadata.jsonl), in file order;
// the same subset is sampled for every arm and rendered for the ceiling (eval.geneval_per_task).
// Empty for per_task 0, and, with a warning, for a corpus made before the world wrote that
// file. Throws what read_prompts throws, and recap::Error naming the file and prompt for a
// prompt without GenEval metadata.
std::vector<SampleRequest> corpus_geneval_prompts(const fs::path& corpus_dir, int per_task);

// Where images go. Flat: DIR/000000.png ... GenEval (github.com/djghosh13/geneval, README
// "Image generation"): DIR/NNNNN/metadata.jsonl (prompt NNNNN's GenEval metadata, one line) and
// DIR/NNNNN/samples/NNNN.png, which GenEval's evaluate_images.py reads; every prompt must then
// carry GenEval metadata. Both layouts also get DIR/images.jsonl (GenEval skips what is not a
// numbered folder).
enum class SampleLayout { Flat, Geneval };
SampleLayout parse_sample_layout(const std::string& name);  // "flat" | "geneval"

struct SampleRunOptions {
  SampleLayout layout = SampleLayout::Flat;
  std::optional<diffusion::Sampler> sampler;  // unset: the model's stored settings
  std::optional<int> steps;
  std::optional<double> guidance_scale;
  int images_per_prompt = 1;
  uint64_t seed = 0;  // image j of prompt i uses derive_seed(seed, i * images_per_prompt + j)
  int64_t batch_size = 16;
  int grid_columns = 0;  // > 0: also write grid.png with this many columns
};

struct SampleRunResult {
  int64_t images = 0, skipped = 0;
  double seconds = 0;
};

// Writes out_dir/000000.png ... (image k = i * images_per_prompt + j; in the GenEval layout
// out_dir/NNNNN/samples/NNNN.png, prompt i's image j) and out_dir/images.jsonl, one line per
// image: {"file", "prompt", "suite"|null, "target"|null, "seed", "sampler", "steps",
// "guidance", "model" (the weights' sha256)}, plus "geneval": its metadata for GenEval prompts. images.jsonl is written last
// (atomically) and marks the folder finished; a finished folder with the same lines is
// skipped (result.skipped = images). Prompts longer than the text encoder reads are truncated
// with a warning. At guidance 0 the prompt is not read: every image is sampled from the empty
// condition, exactly as `--cfg 1` with the empty prompt would. Throws recap::Error for invalid
// UTF-8 in a prompt, bad options, or a model/tokenizer load_t2i refuses.
SampleRunResult sample_to_folder(const fs::path& model, const fs::path& tokenizer_model,
                                 const std::vector<SampleRequest>& prompts, const fs::path& out_dir,
                                 const SampleRunOptions& options);

// One line of images.jsonl, read back.
struct SampledImage {
  fs::path file;  // absolute: the folder joined with the line's "file"
  SampleRequest request;
  nlohmann::json record;  // the whole line
};
// Reads DIR/images.jsonl; without one, a folder in GenEval's layout (numbered folders, each
// with metadata.jsonl and samples/N.png; prompts in folder order, images in number order, suite
// "geneval", no seed). Throws recap::Error naming the file (and line) when neither is there, a
// line is bad JSON, lacks "file" or "prompt", or holds a bad "suite", "target" or "geneval",
// and for a GenEval folder without metadata.jsonl or samples/ or with bad metadata.
std::vector<SampledImage> read_sample_folder(const fs::path& dir);

// images [N, 3, S, S] in [-1, 1] -> one image of rows of `columns` cells, each upscaled
// (nearest) by `upscale`; cells past N are black. Grids of 32 px samples use kGridUpscale:
// smaller cells are too small to judge by eye.
inline constexpr int64_t kGridUpscale = 4;
data::Image grid_image(const torch::Tensor& images, int64_t columns, int64_t upscale);

}  // namespace recap::stages
