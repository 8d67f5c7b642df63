// Prompt-following metrics: each image is reduced once to an ImageScore (integer tallies and
// one absolute-error sum), so that the point estimate, every bootstrap resample and every
// permutation of the paired test are the same aggregation over a multiset of image indices.
#include "eval/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <tuple>

#include "core/error.h"
#include "core/rng.h"
#include "world/scene.h"

namespace recap::eval {
namespace {

// The statistics in PromptMetrics order; kFields, kDifferences and kNames follow it.
enum StatId {
  SoaC, SoaI, CountError, CountExact, Position, PositionFound, Binding, ClipScore, kStats
};
constexpr std::array<Stat PromptMetrics::*, kStats> kFields = {
    &PromptMetrics::soa_c,         &PromptMetrics::soa_i,    &PromptMetrics::count_error,
    &PromptMetrics::count_exact,   &PromptMetrics::position, &PromptMetrics::position_given_found,
    &PromptMetrics::colour_binding, &PromptMetrics::clip_score};
constexpr std::array<Difference PairedMetrics::*, kStats> kDifferences = {
    &PairedMetrics::soa_c,         &PairedMetrics::soa_i,    &PairedMetrics::count_error,
    &PairedMetrics::count_exact,   &PairedMetrics::position, &PairedMetrics::position_given_found,
    &PairedMetrics::colour_binding, &PairedMetrics::clip_score};
constexpr std::array<const char*, kStats> kNames = {
    "soa_c", "soa_i", "count_error", "count_exact", "position", "position_given_found",
    "colour_binding", "clip_score"};

struct Values {
  std::array<std::optional<double>, kStats> value;
  std::array<int, kStats> n{};
};

// `name`: what the caller's options call the resample count.
void check_interval_options(const char* name, int resamples, double level) {
  if (resamples < 0) throw Error(fmt::format("metrics: {} must be >= 0", name));
  if (!(level > 0 && level < 1)) throw Error("metrics: level must be in (0, 1)");
}

void check_options(const MetricOptions& options) {
  if (!(options.relation_margin_px >= 0))
    throw Error("metrics: relation_margin_px must be >= 0");
  check_interval_options("bootstrap_samples", options.bootstrap_samples, options.level);
}

bool matches(const Detection& d, const world::FactGroup& g) {
  return d.shape == g.shape && (!g.colour || d.colour == *g.colour);
}

// Image scores with their prompted shapes numbered (0 .. shapes - 1, in name order, one
// numbering across every set given), the form each aggregation reads.
struct Records {
  std::vector<const ImageScore*> scores;
  std::vector<std::vector<std::pair<int, bool>>> classes;  // per score: (shape id, seen)
  int shapes = 0;
};

Records number_shapes(std::initializer_list<const std::vector<ImageScore>*> sets) {
  std::map<std::string, int> ids;
  for (const auto* set : sets)
    for (const auto& score : *set)
      for (const auto& [shape, seen] : score.shapes) ids.emplace(shape, 0);
  Records out;
  for (auto& [shape, id] : ids) id = out.shapes++;
  for (const auto* set : sets)
    for (const auto& score : *set) {
      out.scores.push_back(&score);
      auto& classes = out.classes.emplace_back();
      for (const auto& [shape, seen] : score.shapes) classes.emplace_back(ids.at(shape), seen);
    }
  return out;
}

// Every statistic over the records `idx` (a multiset: bootstrap resamples repeat images).
Values aggregate(const Records& records, const std::vector<size_t>& idx) {
  std::vector<int> class_images(records.shapes, 0), class_hits(records.shapes, 0);
  double soa_i_sum = 0, abs_error = 0;
  int soa_i_images = 0, counted = 0, exact = 0, relations = 0, found = 0, hold = 0;
  int coloured = 0, bound = 0, clip_images = 0;
  double clip_sum = 0;
  for (size_t i : idx) {
    const ImageScore& r = *records.scores[i];
    for (const auto& [id, hit] : records.classes[i]) {
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
    if (r.clip_score) {
      ++clip_images;
      clip_sum += *r.clip_score;
    }
  }
  Values v;
  const auto set = [&v](StatId s, double num, int den) {
    v.n[s] = den;
    if (den) v.value[s] = num / den;
  };
  int classes = 0;
  double class_sum = 0;
  for (int c = 0; c < records.shapes; ++c)
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
  set(ClipScore, clip_sum, clip_images);
  return v;
}

// Linearly interpolated quantile of sorted, non-empty `s`.
double quantile(const std::vector<double>& s, double q) {
  const double pos = q * double(s.size() - 1);
  const size_t lo = size_t(pos);
  const size_t hi = std::min(lo + 1, s.size() - 1);
  return s[lo] + (pos - double(lo)) * (s[hi] - s[lo]);
}

// The central `level` percentile interval of `draws` (sorted here); unset when there are none.
std::optional<Interval> percentile_interval(std::vector<double>& draws, double level) {
  if (draws.empty()) return std::nullopt;
  std::sort(draws.begin(), draws.end());
  const double tail = (1 - level) / 2;
  return Interval{quantile(draws, tail), quantile(draws, 1 - tail)};
}

std::string cell(const Stat& s, double scale, int decimals) {
  if (!s.value) return "-";
  std::string out = fmt::format("{:.{}f}", *s.value * scale, decimals);
  if (s.ci) out += fmt::format(" [{:.{}f}, {:.{}f}]", s.ci->lo * scale, decimals,
                               s.ci->hi * scale, decimals);
  return out;
}

std::string describe_image(const ImageId& id) {
  return fmt::format("\"{}\" ({})", id.prompt,
                     id.seed ? fmt::format("seed {}", *id.seed) : std::string("no seed"));
}

// A [numerator, denominator] pair of to_json(ImageScore), checked: both >= 0, numerator <=
// denominator unless `unbounded` (a sum of count errors may exceed the number of groups).
std::pair<double, int> tally(const nlohmann::json& j, const char* key, bool unbounded = false) {
  const nlohmann::json& pair = j.at(key);
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() ||
      !pair[1].is_number_integer())
    throw Error(fmt::format("\"{}\": expected [numerator, integer denominator]", key));
  const double num = pair[0].get<double>();
  const int den = pair[1].get<int>();
  if (!(num >= 0) || den < 0 || (!unbounded && num > den))
    throw Error(fmt::format("\"{}\": [{}, {}] is not a tally", key, pair[0].dump(), den));
  if (!unbounded && num != std::floor(num))
    throw Error(fmt::format("\"{}\": the numerator {} is not a count", key, pair[0].dump()));
  return {num, den};
}

}  // namespace

ImageScore score_image(const ImageDetections& image, const MetricOptions& options) {
  check_options(options);
  std::vector<const Detection*> kept;
  for (const auto& d : image.detections) {
    if (!std::isfinite(d.x) || !std::isfinite(d.y))
      throw Error("metrics: detection '" + d.colour + " " + d.shape + "' has a non-finite centre");
    if (d.score >= options.min_score) kept.push_back(&d);
  }
  const auto& groups = image.target.groups;
  ImageScore score;
  score.id = image.id;
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
    ++score.groups;
    score.groups_found += shape_seen;
    score.shapes.emplace(fg.shape, shape_seen);  // alike for every group of this shape
    if (fg.count) {
      ++score.counted;
      score.count_abs_error += std::abs(*fg.count - matched[g]);
      score.count_exact += *fg.count == matched[g];
    }
    if (fg.colour) {  // then D(g) holds exactly the detections of this shape in this colour
      ++score.coloured;
      score.bound += matched[g] > 0;
    }
  }
  for (const auto& r : image.target.relations) {
    const int n = int(groups.size());
    if (r.a < 0 || r.a >= n || r.b < 0 || r.b >= n)
      throw Error(fmt::format("metrics: relation ({}, {}) refers to a group the target does not "
                              "have (it has {})",
                              r.a, r.b, n));
    ++score.relations;
    if (!matched[r.a] || !matched[r.b]) continue;
    ++score.relations_found;
    score.relations_hold +=
        world::relation_holds(centroid[r.a], centroid[r.b], r.relation, options.relation_margin_px);
  }
  return score;
}

PromptMetrics summarize(const std::vector<ImageScore>& scores, const MetricOptions& options) {
  check_interval_options("bootstrap_samples", options.bootstrap_samples, options.level);
  const Records records = number_shapes({&scores});
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  const Values point = aggregate(records, idx);

  std::array<std::vector<double>, kStats> draws;
  Rng rng(options.seed);
  for (int b = 0; b < options.bootstrap_samples && !scores.empty(); ++b) {
    for (size_t& i : idx) i = size_t(rng.below(scores.size()));
    const Values v = aggregate(records, idx);
    for (int s = 0; s < kStats; ++s)
      if (v.value[s]) draws[s].push_back(*v.value[s]);
  }

  PromptMetrics m;
  m.images = int(scores.size());
  for (int s = 0; s < kStats; ++s) {
    Stat& stat = m.*kFields[s];
    stat.n = point.n[s];
    stat.value = point.value[s];
    if (stat.value) stat.ci = percentile_interval(draws[s], options.level);
  }
  return m;
}

PromptMetrics score_prompts(const std::vector<ImageDetections>& images,
                            const MetricOptions& options) {
  check_options(options);
  std::vector<ImageScore> scores;
  scores.reserve(images.size());
  for (const auto& image : images) scores.push_back(score_image(image, options));
  return summarize(scores, options);
}

std::map<std::string, PromptMetrics> summarize_by_suite(
    const std::vector<ImageScore>& scores, const std::vector<std::optional<std::string>>& suites,
    const MetricOptions& options) {
  if (scores.size() != suites.size())
    throw std::invalid_argument("summarize_by_suite: one suite (or none) per score");
  std::map<std::string, std::vector<ImageScore>> split;
  for (size_t i = 0; i < scores.size(); ++i)
    if (suites[i]) split[*suites[i]].push_back(scores[i]);
  std::map<std::string, PromptMetrics> out;
  for (const auto& [suite, part] : split) out.emplace(suite, summarize(part, options));
  return out;
}

const Difference& PairedMetrics::at(std::string_view key) const {
  for (int s = 0; s < kStats; ++s)
    if (key == kNames[s]) return this->*kDifferences[s];
  throw std::logic_error(fmt::format("PairedMetrics: no statistic named '{}'", key));
}

namespace {

// The checks every paired statistic makes of its options and its two sets.
void check_pairs(const std::vector<ImageScore>& baseline, const std::vector<ImageScore>& treatment,
                 const PairedOptions& options) {
  check_interval_options("resamples", options.resamples, options.level);
  const size_t n = baseline.size();
  if (treatment.size() != n)
    throw Error(fmt::format("paired metrics: the baseline has {} images, the treatment {}; a "
                            "paired comparison needs the same prompts and seeds in each",
                            n, treatment.size()));
  for (size_t i = 0; i < n; ++i)
    if (!(baseline[i].id == treatment[i].id))
      throw Error(fmt::format("paired metrics: image {} is {} in the baseline but {} in the "
                              "treatment; a paired comparison needs the same prompts and seeds "
                              "in the same order",
                              i, describe_image(baseline[i].id), describe_image(treatment[i].id)));
}

}  // namespace

int more_faithful(const ImageScore& a, const ImageScore& b) {
  // Lexicographic; higher is better in every key.
  const auto key = [](const ImageScore& s) {
    return std::tuple(s.groups_found, s.bound, s.count_exact, -s.count_abs_error,
                      s.relations_hold);
  };
  const auto ka = key(a), kb = key(b);
  return ka > kb ? 1 : ka < kb ? -1 : 0;
}

WinRate win_rate(const std::vector<ImageScore>& baseline,
                 const std::vector<ImageScore>& treatment, const PairedOptions& options) {
  check_pairs(baseline, treatment, options);
  const size_t n = baseline.size();
  std::vector<int> outcome(n);  // +1: the treatment's image wins, -1: it loses, 0: a tie
  for (size_t i = 0; i < n; ++i) outcome[i] = more_faithful(treatment[i], baseline[i]);
  // win, tie, loss shares and the win share among decided pairs, over the images `idx`.
  const auto shares = [&](const std::vector<size_t>& idx) {
    std::array<std::optional<double>, 4> v;
    std::array<int, 3> tally{};
    for (size_t i : idx) ++tally[size_t(1 - outcome[i])];  // [win, tie, loss]
    if (idx.empty()) return std::pair(v, tally);
    for (size_t k = 0; k < 3; ++k) v[k] = double(tally[k]) / double(idx.size());
    if (tally[0] + tally[2] > 0) v[3] = double(tally[0]) / double(tally[0] + tally[2]);
    return std::pair(v, tally);
  };
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  const auto [point, tally] = shares(idx);
  std::array<std::vector<double>, 4> draws;
  Rng rng(derive_seed(options.seed, 2));
  for (int r = 0; r < options.resamples && n > 0; ++r) {
    for (size_t& i : idx) i = size_t(rng.below(n));
    const auto v = shares(idx).first;
    for (size_t k = 0; k < 4; ++k)
      if (v[k]) draws[k].push_back(*v[k]);
  }
  WinRate w;
  w.images = int(n);
  Stat* stats[] = {&w.win, &w.tie, &w.loss, &w.win_of_decided};
  for (size_t k = 0; k < 4; ++k) {
    stats[k]->n = k < 3 ? int(n) : tally[0] + tally[2];
    stats[k]->value = point[k];
    if (point[k]) stats[k]->ci = percentile_interval(draws[k], options.level);
  }
  return w;
}

PairedMetrics compare_paired(const std::vector<ImageScore>& baseline,
                             const std::vector<ImageScore>& treatment,
                             const PairedOptions& options) {
  check_pairs(baseline, treatment, options);
  const size_t n = baseline.size();

  // Both arms in one table, the baseline's images at [0, n) and the treatment's at [n, 2n), so
  // that a resample or a permutation is a choice of record indices for each arm.
  const Records records = number_shapes({&baseline, &treatment});
  std::vector<size_t> a(n), b(n);
  const auto differences = [&] {
    const Values va = aggregate(records, a), vb = aggregate(records, b);
    std::array<std::optional<double>, kStats> d;
    for (int s = 0; s < kStats; ++s)
      if (va.value[s] && vb.value[s]) d[s] = *vb.value[s] - *va.value[s];
    return d;
  };
  for (size_t i = 0; i < n; ++i) a[i] = i, b[i] = i + n;
  const auto point = differences();

  std::array<std::vector<double>, kStats> draws;
  Rng rng(options.seed);
  for (int r = 0; r < options.resamples && n > 0; ++r) {
    for (size_t i = 0; i < n; ++i) {
      const size_t j = size_t(rng.below(n));
      a[i] = j, b[i] = j + n;
    }
    const auto d = differences();
    for (int s = 0; s < kStats; ++s)
      if (d[s]) draws[s].push_back(*d[s]);
  }

  std::array<int, kStats> extreme{}, permutations{};
  Rng flips(derive_seed(options.seed, 1));
  for (int r = 0; r < options.resamples && n > 0; ++r) {
    for (size_t i = 0; i < n; ++i) {
      const bool swap = flips.next() & 1;
      a[i] = swap ? i + n : i, b[i] = swap ? i : i + n;
    }
    const auto d = differences();
    for (int s = 0; s < kStats; ++s) {
      if (!d[s] || !point[s]) continue;
      ++permutations[s];
      // A permuted difference equal to the observed one in exact arithmetic may round a few
      // ulps below it (other images, other summation order); it still counts as extreme.
      const double tie = 1e-9 * std::max(1.0, std::abs(*point[s]));
      extreme[s] += std::abs(*d[s]) >= std::abs(*point[s]) - tie;
    }
  }

  PairedMetrics m;
  m.images = int(n);
  for (int s = 0; s < kStats; ++s) {
    Difference& diff = m.*kDifferences[s];
    diff.value = point[s];
    if (!diff.value) continue;
    diff.ci = percentile_interval(draws[s], options.level);
    if (permutations[s]) diff.p = double(1 + extreme[s]) / double(1 + permutations[s]);
  }
  return m;
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

nlohmann::json to_json(const ImageScore& score) {
  nlohmann::json shapes = nlohmann::json::object();
  for (const auto& [shape, seen] : score.shapes) shapes[shape] = int(seen);
  const auto pair = [](auto num, int den) { return nlohmann::json::array({num, den}); };
  nlohmann::json j;
  j[kNames[SoaC]] = shapes;
  j[kNames[SoaI]] = pair(score.groups_found, score.groups);
  j[kNames[CountError]] = pair(score.count_abs_error, score.counted);
  j[kNames[CountExact]] = pair(score.count_exact, score.counted);
  j[kNames[Position]] = pair(score.relations_hold, score.relations);
  j[kNames[PositionFound]] = pair(score.relations_hold, score.relations_found);
  j[kNames[Binding]] = pair(score.bound, score.coloured);
  if (score.clip_score) j[kNames[ClipScore]] = *score.clip_score;
  return j;
}

ImageScore image_score_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("image score: expected an object");
  try {
    ImageScore s;
    const nlohmann::json& shapes = j.at(kNames[SoaC]);
    if (!shapes.is_object()) throw Error("\"soa_c\": expected {\"SHAPE\": 0 or 1, ...}");
    for (const auto& [shape, seen] : shapes.items()) {
      if (!seen.is_number_integer() || (seen != 0 && seen != 1))
        throw Error(fmt::format("\"soa_c\": \"{}\" must be 0 or 1", shape));
      s.shapes.emplace(shape, seen == 1);
    }
    const auto count = [](std::pair<double, int> t) { return std::pair(int(t.first), t.second); };
    std::tie(s.groups_found, s.groups) = count(tally(j, kNames[SoaI]));
    std::tie(s.count_abs_error, s.counted) = tally(j, kNames[CountError], true);
    int counted = 0, hold = 0;
    std::tie(s.count_exact, counted) = count(tally(j, kNames[CountExact]));
    std::tie(s.relations_hold, s.relations) = count(tally(j, kNames[Position]));
    std::tie(hold, s.relations_found) = count(tally(j, kNames[PositionFound]));
    std::tie(s.bound, s.coloured) = count(tally(j, kNames[Binding]));
    if (counted != s.counted)
      throw Error(fmt::format("\"count_exact\" counts {} groups, \"count_error\" {}", counted,
                              s.counted));
    if (hold != s.relations_hold || s.relations_found > s.relations)
      throw Error("\"position_given_found\" disagrees with \"position\"");
    if (s.groups_found > s.groups || int(s.shapes.size()) > s.groups)
      throw Error("\"soa_c\" names more shapes than \"soa_i\" counts groups");
    if (j.contains(kNames[ClipScore])) {
      const auto& clip = j[kNames[ClipScore]];
      if (!clip.is_number() || !(clip.get<double>() >= 0 && clip.get<double>() <= 100))
        throw Error("\"clip_score\": expected a number in [0, 100]");
      s.clip_score = clip.get<double>();
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("image score: {}", e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("image score: {}", e.what()));
  }
}

std::string format_table(const std::vector<std::pair<std::string, PromptMetrics>>& rows) {
  // Rates print in percent with one decimal; count_error is a count difference, two decimals;
  // the CLIP score is on its own 0-100 scale, one decimal, and only when a row has one.
  const bool clip = std::any_of(rows.begin(), rows.end(),
                                [](const auto& row) { return row.second.clip_score.value; });
  const int stats = clip ? kStats : ClipScore;
  const std::array<std::string, kStats + 2> header = {
      "set",          "images",   "SOA-C %",          "SOA-I %",         "count err",
      "count exact %", "position %", "position|found %", "colour binding %", "CLIP score"};
  std::vector<std::vector<std::string>> table = {{header.begin(), header.begin() + stats + 2}};
  for (const auto& [label, m] : rows) {
    std::vector<std::string> line(stats + 2);
    line[0] = label;
    line[1] = std::to_string(m.images);
    for (int s = 0; s < stats; ++s)
      line[s + 2] = s == CountError  ? cell(m.*kFields[s], 1, 2)
                    : s == ClipScore ? cell(m.*kFields[s], 1, 1)
                                     : cell(m.*kFields[s], 100, 1);
    table.push_back(line);
  }
  return align_columns(table);
}

std::string format_paired(const PairedMetrics& paired, const WinRate& wins,
                          const std::string& treatment, const std::string& baseline) {
  const std::array<const char*, kStats> labels = {
      "SOA-C (points)",      "SOA-I (points)",    "count err",
      "count exact (points)", "position (points)", "position|found (points)",
      "colour binding (points)", "CLIP score"};
  std::vector<std::vector<std::string>> table = {
      {fmt::format("{} - {} ({} pairs)", treatment, baseline, paired.images), "difference",
       "95% interval", "p"}};
  for (int s = 0; s < kStats; ++s) {
    const Difference& d = paired.*kDifferences[s];
    if (!d.value) continue;
    const double scale = s == CountError || s == ClipScore ? 1 : 100;
    const auto num = [&](double v) { return fmt::format("{:+.2f}", v * scale); };
    table.push_back({labels[size_t(s)], num(*d.value),
                     d.ci ? fmt::format("[{}, {}]", num(d.ci->lo), num(d.ci->hi)) : "-",
                     d.p ? fmt::format("{:.4f}", *d.p) : "-"});
  }
  std::string out = align_columns(table);
  std::vector<std::vector<std::string>> shares = {
      {fmt::format("{}'s image more faithful (more_faithful)", treatment), "share %",
       "interval %"}};
  const auto row = [&](const char* label, const Stat& stat) {
    shares.push_back({label, stat.value ? fmt::format("{:.1f}", 100 * *stat.value) : "-",
                      stat.ci ? fmt::format("[{:.1f}, {:.1f}]", 100 * stat.ci->lo,
                                            100 * stat.ci->hi)
                              : "-"});
  };
  row("wins", wins.win);
  row("ties", wins.tie);
  row("losses", wins.loss);
  row("wins of the decided pairs", wins.win_of_decided);
  return out + '\n' + align_columns(shares);
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
