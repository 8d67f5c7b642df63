// Prompt-following metrics: each image is reduced once to a record of integer tallies (and one
// absolute-error sum), so that the point estimate and every bootstrap resample are the same
// aggregation over a multiset of image indices.
#include "eval/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/rng.h"
#include "world/scene.h"

namespace recap::eval {
namespace {

// What one image contributes to every statistic.
struct ImageRecord {
  std::vector<std::pair<int, bool>> classes;  // (shape id, detected) per distinct prompted shape
  int groups = 0, groups_found = 0;           // SOA-I: prompted groups, ... whose shape is seen
  int counted = 0, count_exact = 0;
  double count_abs_error = 0;
  int relations = 0, relations_found = 0, relations_hold = 0;
  int coloured = 0, bound = 0;
};

// The statistics in PromptMetrics order; kFields and kNames follow it.
enum StatId { SoaC, SoaI, CountError, CountExact, Position, PositionFound, Binding, kStats };
constexpr std::array<Stat PromptMetrics::*, kStats> kFields = {
    &PromptMetrics::soa_c,         &PromptMetrics::soa_i,    &PromptMetrics::count_error,
    &PromptMetrics::count_exact,   &PromptMetrics::position, &PromptMetrics::position_given_found,
    &PromptMetrics::colour_binding};
constexpr std::array<const char*, kStats> kNames = {
    "soa_c", "soa_i", "count_error", "count_exact", "position", "position_given_found",
    "colour_binding"};

struct Values {
  std::array<std::optional<double>, kStats> value;
  std::array<int, kStats> n{};
};

bool matches(const Detection& d, const world::FactGroup& g) {
  return d.shape == g.shape && (!g.colour || d.colour == *g.colour);
}

ImageRecord make_record(const ImageDetections& image, const MetricOptions& options,
                        std::map<std::string, int>& shape_ids) {
  std::vector<const Detection*> kept;
  for (const auto& d : image.detections) {
    if (!std::isfinite(d.x) || !std::isfinite(d.y))
      throw Error("metrics: detection '" + d.colour + " " + d.shape + "' has a non-finite centre");
    if (d.score >= options.min_score) kept.push_back(&d);
  }
  const auto& groups = image.target.groups;
  ImageRecord rec;
  std::vector<int> matched(groups.size(), 0);
  std::vector<world::Point> centroid(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const world::FactGroup& fg = groups[g];
    bool shape_seen = false;  // colour ignored: object accuracy asks for the class only
    for (const Detection* d : kept) {
      shape_seen |= d->shape == fg.shape;
      if (!matches(*d, fg)) continue;
      ++matched[g];
      centroid[g].x += d->x;
      centroid[g].y += d->y;
    }
    if (matched[g]) centroid[g].x /= matched[g], centroid[g].y /= matched[g];
    ++rec.groups;
    rec.groups_found += shape_seen;
    const auto id = shape_ids.try_emplace(fg.shape, int(shape_ids.size())).first->second;
    const auto same = [id](const auto& c) { return c.first == id; };
    if (std::none_of(rec.classes.begin(), rec.classes.end(), same))
      rec.classes.emplace_back(id, shape_seen);
    if (fg.count) {
      ++rec.counted;
      rec.count_abs_error += std::abs(*fg.count - matched[g]);
      rec.count_exact += *fg.count == matched[g];
    }
    if (fg.colour) {  // then D(g) holds exactly the detections of this shape in this colour
      ++rec.coloured;
      rec.bound += matched[g] > 0;
    }
  }
  for (const auto& r : image.target.relations) {
    const int n = int(groups.size());
    if (r.a < 0 || r.a >= n || r.b < 0 || r.b >= n)
      throw Error(fmt::format("metrics: relation ({}, {}) refers to a group the target does not "
                              "have (it has {})",
                              r.a, r.b, n));
    ++rec.relations;
    if (!matched[r.a] || !matched[r.b]) continue;
    ++rec.relations_found;
    rec.relations_hold +=
        world::relation_holds(centroid[r.a], centroid[r.b], r.relation, options.relation_margin_px);
  }
  return rec;
}

// Every statistic over the images `idx` (a multiset: bootstrap resamples repeat images).
Values aggregate(const std::vector<ImageRecord>& records, const std::vector<size_t>& idx,
                 int num_shapes) {
  std::vector<int> class_images(num_shapes, 0), class_hits(num_shapes, 0);
  double soa_i_sum = 0, abs_error = 0;
  int soa_i_images = 0, counted = 0, exact = 0, relations = 0, found = 0, hold = 0;
  int coloured = 0, bound = 0;
  for (size_t i : idx) {
    const ImageRecord& r = records[i];
    for (const auto& [id, hit] : r.classes) {
      ++class_images[id];
      class_hits[id] += hit;
    }
    if (r.groups) {
      ++soa_i_images;
      soa_i_sum += double(r.groups_found) / r.groups;
    }
    counted += r.counted;
    exact += r.count_exact;
    abs_error += r.count_abs_error;
    relations += r.relations;
    found += r.relations_found;
    hold += r.relations_hold;
    coloured += r.coloured;
    bound += r.bound;
  }
  Values v;
  const auto set = [&v](StatId s, double num, int den) {
    v.n[s] = den;
    if (den) v.value[s] = num / den;
  };
  int classes = 0;
  double class_sum = 0;
  for (int c = 0; c < num_shapes; ++c)
    if (class_images[c]) {
      ++classes;
      class_sum += double(class_hits[c]) / class_images[c];
    }
  set(SoaC, class_sum, classes);
  set(SoaI, soa_i_sum, soa_i_images);
  set(CountError, abs_error, counted);
  set(CountExact, exact, counted);
  set(Position, hold, relations);
  set(PositionFound, hold, found);
  set(Binding, bound, coloured);
  return v;
}

// Linearly interpolated quantile of sorted, non-empty `s`.
double quantile(const std::vector<double>& s, double q) {
  const double pos = q * double(s.size() - 1);
  const size_t lo = size_t(pos);
  const size_t hi = std::min(lo + 1, s.size() - 1);
  return s[lo] + (pos - double(lo)) * (s[hi] - s[lo]);
}

std::string cell(const Stat& s, double scale, int decimals) {
  if (!s.value) return "-";
  std::string out = fmt::format("{:.{}f}", *s.value * scale, decimals);
  if (s.ci) out += fmt::format(" [{:.{}f}, {:.{}f}]", s.ci->lo * scale, decimals,
                               s.ci->hi * scale, decimals);
  return out;
}

}  // namespace

PromptMetrics score_prompts(const std::vector<ImageDetections>& images,
                            const MetricOptions& options) {
  if (!(options.relation_margin_px >= 0))
    throw Error("metrics: relation_margin_px must be >= 0");
  if (options.bootstrap_samples < 0) throw Error("metrics: bootstrap_samples must be >= 0");
  if (!(options.level > 0 && options.level < 1))
    throw Error("metrics: level must be in (0, 1)");

  std::map<std::string, int> shape_ids;
  std::vector<ImageRecord> records;
  records.reserve(images.size());
  for (const auto& image : images) records.push_back(make_record(image, options, shape_ids));
  const int num_shapes = int(shape_ids.size());

  std::vector<size_t> idx(records.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  const Values point = aggregate(records, idx, num_shapes);

  std::array<std::vector<double>, kStats> draws;
  Rng rng(options.seed);
  for (int b = 0; b < options.bootstrap_samples && !records.empty(); ++b) {
    for (size_t& i : idx) i = size_t(rng.below(records.size()));
    const Values v = aggregate(records, idx, num_shapes);
    for (int s = 0; s < kStats; ++s)
      if (v.value[s]) draws[s].push_back(*v.value[s]);
  }

  PromptMetrics m;
  m.images = int(images.size());
  const double tail = (1 - options.level) / 2;
  for (int s = 0; s < kStats; ++s) {
    Stat& stat = m.*kFields[s];
    stat.n = point.n[s];
    stat.value = point.value[s];
    if (!stat.value || draws[s].empty()) continue;
    std::sort(draws[s].begin(), draws[s].end());
    stat.ci = Interval{quantile(draws[s], tail), quantile(draws[s], 1 - tail)};
  }
  return m;
}

std::map<world::Suite, PromptMetrics> score_by_suite(const std::vector<ImageDetections>& images,
                                                     const MetricOptions& options) {
  std::map<world::Suite, std::vector<ImageDetections>> split;
  for (const auto& image : images) split[image.suite].push_back(image);
  std::map<world::Suite, PromptMetrics> out;
  for (const auto& [suite, part] : split) out.emplace(suite, score_prompts(part, options));
  return out;
}

nlohmann::json to_json(const Stat& stat) {
  nlohmann::json j;
  j["value"] = stat.value ? nlohmann::json(*stat.value) : nlohmann::json(nullptr);
  j["ci"] = stat.ci ? nlohmann::json::array({stat.ci->lo, stat.ci->hi}) : nlohmann::json(nullptr);
  j["n"] = stat.n;
  return j;
}

nlohmann::json to_json(const PromptMetrics& metrics) {
  nlohmann::json j;
  j["images"] = metrics.images;
  for (int s = 0; s < kStats; ++s) j[kNames[s]] = to_json(metrics.*kFields[s]);
  return j;
}

std::string format_table(const std::vector<std::pair<std::string, PromptMetrics>>& rows) {
  // Rates print in percent with one decimal; count_error is a count difference, two decimals.
  const std::array<std::string, kStats + 2> header = {
      "set",          "images",   "SOA-C %",          "SOA-I %",         "count err",
      "count exact %", "position %", "position|found %", "colour binding %"};
  std::vector<std::vector<std::string>> table = {{header.begin(), header.end()}};
  for (const auto& [label, m] : rows) {
    std::vector<std::string> line(kStats + 2);
    line[0] = label;
    line[1] = std::to_string(m.images);
    for (int s = 0; s < kStats; ++s)
      line[s + 2] = s == CountError ? cell(m.*kFields[s], 1, 2) : cell(m.*kFields[s], 100, 1);
    table.push_back(line);
  }
  return align_columns(table);
}

std::string align_columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& line : rows) {
    width.resize(std::max(width.size(), line.size()));
    for (size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  std::string out;
  for (const auto& line : rows) {
    for (size_t c = 0; c < line.size(); ++c)
      out += c == 0 ? fmt::format("{:<{}}", line[c], width[c])
                    : fmt::format("  {:>{}}", line[c], width[c]);
    out += '\n';
  }
  return out;
}

}  // namespace recap::eval
