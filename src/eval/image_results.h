// Per-image results of an evaluation (`recap eval --json NAME.json`, the eval stages of
// `recap run`): one JSON line per image in NAME.images.jsonl beside the summary, holding what
// the summary's statistics are computed from, so that anyone can recompute them, or any other
// statistic, and so that two arms can be compared image by image (eval::compare_paired).
// Torch-free.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/metrics.h"
#include "world/prompts.h"

namespace recap::eval {

namespace fs = std::filesystem;

struct ImageResult {
  std::string file;                   // as the sample folder's images.jsonl names it
  std::optional<std::string> suite;  // its name; unset for a prompt from no suite
  ImageDetections image;              // id (prompt, seed), target, every detection
  ImageScore score;                   // score_image(image); its id is image.id
};

// One line: {"file", "prompt", "seed": n | null, "suite": "counting" | ... | null, "target":
// <facts>, "detections": [{"shape", "colour", "x", "y", "size", "score"}, ...] (all of them,
// also those below eval.min_score), "metrics": to_json(ImageScore)}.
nlohmann::json to_json(const ImageResult& result);
ImageResult image_result_from_json(const nlohmann::json& json);

// DIR/NAME.json -> DIR/NAME.images.jsonl: where the per-image results of a summary lie.
fs::path image_results_path(const fs::path& summary);
// Writes `results` (atomically) to image_results_path(summary) and returns that path.
fs::path write_image_results_beside(const fs::path& summary,
                                    const std::vector<ImageResult>& results);
// Reads a per-image results file. Throws recap::Error naming the file and record for a missing
// file, bad JSON or a bad field (image_score_from_json's checks included).
std::vector<ImageResult> read_image_results(const fs::path& path);

}  // namespace recap::eval
