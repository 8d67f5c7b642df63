#include "eval/image_results.h"

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"

namespace recap::eval {
namespace {

nlohmann::json to_json(const Detection& d) {
  return {{"shape", d.shape}, {"colour", d.colour}, {"x", d.x},
          {"y", d.y},         {"size", d.size},     {"score", d.score}};
}

Detection detection_from_json(const nlohmann::json& j) {
  return {j.at("shape").get<std::string>(), j.at("colour").get<std::string>(),
          j.at("x").get<double>(),          j.at("y").get<double>(),
          j.at("size").get<double>(),       j.at("score").get<double>()};
}

}  // namespace

nlohmann::json to_json(const ImageResult& r) {
  nlohmann::json detections = nlohmann::json::array();
  for (const auto& d : r.image.detections) detections.push_back(to_json(d));
  return {{"file", r.file},
          {"prompt", r.image.id.prompt},
          {"seed", r.image.id.seed ? nlohmann::json(*r.image.id.seed) : nlohmann::json()},
          {"suite", r.suite ? nlohmann::json(*r.suite) : nlohmann::json()},
          {"target", world::to_json(r.image.target)},
          {"detections", std::move(detections)},
          {"metrics", to_json(r.score)}};
}

ImageResult image_result_from_json(const nlohmann::json& j) {
  ImageResult r;
  r.file = j.at("file").get<std::string>();
  r.image.id.prompt = j.at("prompt").get<std::string>();
  if (const auto& seed = j.at("seed"); !seed.is_null()) r.image.id.seed = seed.get<uint64_t>();
  if (const auto& suite = j.at("suite"); !suite.is_null()) {
    world::check_suite_name(suite.get<std::string>());
    r.suite = suite.get<std::string>();
  }
  r.image.target = world::facts_from_json(j.at("target"));
  for (const auto& d : j.at("detections")) r.image.detections.push_back(detection_from_json(d));
  r.score = image_score_from_json(j.at("metrics"));
  r.score.id = r.image.id;
  return r;
}

fs::path image_results_path(const fs::path& summary) {
  fs::path out = summary;
  return out.replace_extension(".images.jsonl");
}

fs::path write_image_results_beside(const fs::path& summary,
                                    const std::vector<ImageResult>& results) {
  std::string lines;
  for (const auto& r : results) lines += to_json(r).dump() + "\n";
  const fs::path path = image_results_path(summary);
  write_file_atomic(path, lines);
  return path;
}

std::vector<ImageResult> read_image_results(const fs::path& path) {
  if (!fs::exists(path)) throw Error(fmt::format("{}: missing", path.string()));
  std::vector<ImageResult> out;
  size_t record = 0;
  for (const auto& line : read_jsonl(path)) {
    ++record;
    try {
      out.push_back(image_result_from_json(line));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: record {}: {}", path.string(), record, e.what()));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: record {}: {}", path.string(), record, e.what()));
    }
  }
  return out;
}

}  // namespace recap::eval
