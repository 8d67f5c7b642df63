// GenEval's rules on the detector's output (the rules are written out in geneval.h).
#include "eval/geneval.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>

#include "core/error.h"
#include "world/scene.h"

namespace recap::eval {
namespace {

using ByClass = std::map<std::string, std::vector<const Detection*>>;

ByClass geneval_by_class(const std::vector<Detection>& detections, double min_score) {
  ByClass out;
  for (const auto& d : detections) {
    if (!std::isfinite(d.x) || !std::isfinite(d.y))
      throw Error("geneval: detection '" + d.colour + " " + d.shape + "' has a non-finite centre");
    if (d.score >= min_score) out[d.shape].push_back(&d);
  }
  for (auto& [cls, list] : out)
    std::stable_sort(list.begin(), list.end(),
                     [](const Detection* a, const Detection* b) { return a->score > b->score; });
  return out;
}

// "2 red, 1 blue": the colours of `found`, in first-seen order.
std::string geneval_colour_tally(const std::vector<const Detection*>& found) {
  std::vector<std::pair<std::string, int>> tally;
  for (const Detection* d : found) {
    auto it = std::find_if(tally.begin(), tally.end(),
                           [&](const auto& t) { return t.first == d->colour; });
    if (it == tally.end())
      tally.emplace_back(d->colour, 1);
    else
      ++it->second;
  }
  std::vector<std::string> parts;
  for (const auto& [colour, n] : tally) parts.push_back(fmt::format("{} {}", n, colour));
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

GenevalVerdict geneval_judge(const world::GenevalPrompt& prompt,
                             const std::vector<Detection>& detections,
                             const MetricOptions& options) {
  if (!(options.relation_margin_px >= 0)) throw Error("geneval: relation_margin_px must be >= 0");
  const ByClass by_class = geneval_by_class(detections, options.min_score);
  const auto of_class = [&](const std::string& cls) {
    const auto it = by_class.find(cls);
    return it == by_class.end() ? std::vector<const Detection*>{} : it->second;
  };
  std::vector<std::string> reasons;
  std::vector<std::optional<std::vector<const Detection*>>> matched;
  for (const auto& clause : prompt.include) {
    auto found = of_class(clause.cls);
    const size_t all = found.size();
    if (found.size() > static_cast<size_t>(clause.count)) found.resize(clause.count);
    bool ok = true;
    if (all < static_cast<size_t>(clause.count)) {
      ok = false;
      reasons.push_back(fmt::format("expected {}>={}, found {}", clause.cls, clause.count, all));
    } else {
      if (clause.color) {
        const auto in_colour = std::count_if(found.begin(), found.end(), [&](const Detection* d) {
          return d->colour == *clause.color;
        });
        if (in_colour < clause.count) {
          ok = false;
          reasons.push_back(fmt::format("expected {} {}>={}, found {} {}; and {}", *clause.color,
                                        clause.cls, clause.count, in_colour, *clause.color,
                                        geneval_colour_tally(found)));
        }
      }
      if (clause.position && ok) {
        const auto rel = clause.position->relation;
        const auto rel_name = world::geneval_relation_name(rel);
        const auto& target = matched.at(static_cast<size_t>(clause.position->target));
        if (!target) {
          ok = false;
          reasons.push_back(fmt::format("no target for {} to be {}", clause.cls, rel_name));
        }
        for (size_t i = 0; ok && i < found.size(); ++i)
          for (const Detection* t : *target) {
            const world::Point a{found[i]->x, found[i]->y}, b{t->x, t->y};
            if (world::relation_holds(a, b, rel, options.relation_margin_px)) continue;
            std::vector<std::string> held;
            for (auto r : world::relation_between(a, b, options.relation_margin_px))
              held.emplace_back(world::geneval_relation_name(r));
            ok = false;
            reasons.push_back(fmt::format("expected {} {} target, found {} target", clause.cls,
                                          rel_name, fmt::join(held, " and ")));
            break;
          }
      }
    }
    matched.push_back(ok ? std::optional(found) : std::nullopt);
  }
  for (const auto& clause : prompt.exclude) {
    const size_t n = of_class(clause.cls).size();
    if (n >= static_cast<size_t>(clause.count))
      reasons.push_back(fmt::format("expected {}<{}, found {}", clause.cls, clause.count, n));
  }
  return {reasons.empty(), fmt::format("{}", fmt::join(reasons, "\n"))};
}

nlohmann::json geneval_result_line(const std::string& filename,
                                   const world::GenevalPrompt& prompt,
                                   const std::vector<Detection>& detections,
                                   const GenevalVerdict& verdict) {
  nlohmann::ordered_json details = nlohmann::ordered_json::object();
  std::vector<const Detection*> sorted;
  for (const auto& d : detections) sorted.push_back(&d);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Detection* a, const Detection* b) { return a->score > b->score; });
  for (const Detection* d : sorted) {
    const double r = d->size / 2;
    details[d->shape].push_back({d->x - r, d->y - r, d->x + r, d->y + r, d->score});
  }
  return {{"filename", filename},       {"tag", prompt.tag},
          {"prompt", prompt.prompt},    {"correct", verdict.correct},
          {"reason", verdict.reason},   {"metadata", world::to_json(prompt).dump()},
          {"details", details.dump()}};
}

std::vector<std::string> GenevalScores::tag_order() const {
  std::vector<std::string> out;
  for (const auto& tag : world::geneval_tags())
    if (tasks.count(tag)) out.push_back(tag);
  for (const auto& [tag, task] : tasks)
    if (std::find(out.begin(), out.end(), tag) == out.end()) out.push_back(tag);
  return out;
}

GenevalScores geneval_scores(const std::vector<std::string>& tags,
                             const std::vector<GenevalVerdict>& verdicts) {
  if (tags.size() != verdicts.size())
    throw std::invalid_argument("geneval_scores: one tag per verdict");
  GenevalScores s;
  for (size_t i = 0; i < tags.size(); ++i) {
    auto& task = s.tasks[tags[i]];
    ++task.images;
    task.correct += verdicts[i].correct;
  }
  s.images = static_cast<int>(tags.size());
  double sum = 0;
  for (const auto& [tag, task] : s.tasks) sum += task.score();
  s.overall = s.tasks.empty() ? 0 : sum / static_cast<double>(s.tasks.size());
  return s;
}

nlohmann::json to_json(const GenevalScores& scores) {
  nlohmann::json tasks = nlohmann::json::object();
  for (const auto& [tag, task] : scores.tasks)
    tasks[tag] = {{"score", task.score()}, {"correct", task.correct}, {"images", task.images}};
  return {{"overall", scores.overall}, {"images", scores.images}, {"tasks", tasks}};
}

GenevalScores geneval_scores_from_json(const nlohmann::json& j) {
  try {
    GenevalScores s;
    s.overall = j.at("overall").get<double>();
    s.images = j.at("images").get<int>();
    for (const auto& [tag, task] : j.at("tasks").items())
      s.tasks[tag] = {task.at("correct").get<int>(), task.at("images").get<int>()};
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("GenEval scores: ") + e.what());
  }
}

std::string format_geneval(const GenevalScores& scores) {
  std::vector<std::string> parts;
  for (const auto& tag : scores.tag_order()) {
    const auto& t = scores.tasks.at(tag);
    parts.push_back(fmt::format("{} {:.2f} ({}/{})", tag, t.score(), t.correct, t.images));
  }
  return fmt::format("GenEval-style (our detector judging, {} images): overall {:.2f}; {}",
                     scores.images, scores.overall, fmt::join(parts, ", "));
}

}  // namespace recap::eval
