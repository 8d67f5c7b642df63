// Prompt-following metrics of DESIGN.md ("Metrics"), computed from what the evaluator's
// detector finds in each generated image against the prompt's exact target, with percentile
// bootstrap intervals over images. Torch-free.
//
// Matching. A prompted group g (world::FactGroup) is matched by the detections D(g) whose shape
// equals g.shape and, when g states a colour, whose colour equals it. Detections are not
// assigned exclusively: two prompted groups may share detections (only possible when one of
// them leaves its colour unstated). Detections scoring below MetricOptions::min_score are
// dropped first. "g is found" means D(g) is not empty; its detected centroid is the mean centre
// of D(g).
//
// Definitions (rates are fractions in [0, 1]; pooled sums run over all images of the set):
// - soa_c (object accuracy per class, class = shape, colour ignored): for each shape c that
//   some image prompts, acc(c) = #{images prompting c with a detection of shape c} /
//   #{images prompting c}; soa_c = mean of acc(c) over those shapes. n = number of shapes.
// - soa_i (per image, colour ignored): for each image with at least one prompted group,
//   share(i) = #{prompted groups g with a detection of shape g.shape} / #{prompted groups};
//   soa_i = mean of share(i). n = images with at least one prompted group.
// - count_error: over all prompted groups with a stated count (pooled), mean of
//   |count - |D(g)||. count_exact: share of those groups with |D(g)| == count. n = groups.
// - position: over all prompted relations (pooled), share where both groups are found and
//   world::relation_holds(centroid(a), centroid(b), relation, relation_margin_px). n = relations.
// - position_given_found: the same holds-count over only the relations whose both groups are
//   found (the detector-conditional rate; it separates "drew the objects in the wrong place"
//   from "did not draw them"). n = relations with both groups found.
// - colour_binding: over all prompted groups with a stated colour (pooled), share with a
//   detection of that shape in that colour. n = such groups.
//
// A statistic with n == 0 has no value (JSON null) rather than NaN. Intervals: B resamples of
// the images with replacement (recap::Rng seeded with MetricOptions::seed), the statistic
// recomputed on each; resamples on which it is undefined (n == 0) are skipped; the interval is
// the linearly interpolated (1-level)/2 and (1+level)/2 quantiles of the rest.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "world/facts.h"
#include "world/prompts.h"

namespace recap::eval {

// One object the detector reports in a generated image.
struct Detection {
  std::string shape, colour;  // vocabulary names, as in world::Group
  double x = 0, y = 0;        // centre, pixels, image convention (y downwards)
  double size = 0;            // diameter of the enclosing circle, pixels
  double score = 1;           // detector confidence in [0, 1]
};

// A generated image: the target of the prompt it was generated from and what was detected.
struct ImageDetections {
  world::Suite suite = world::Suite::MultiObject;
  world::Facts target;
  std::vector<Detection> detections;
};

struct MetricOptions {
  double relation_margin_px = 0;  // use world::relation_margin_px(config) for the world's own
  double min_score = 0;           // detections scoring below are ignored
  int bootstrap_samples = 1000;   // 0: no intervals
  double level = 0.95;            // central interval mass
  uint64_t seed = 0;
};

struct Interval {
  double lo = 0, hi = 0;
};

struct Stat {
  std::optional<double> value;  // unset when n == 0
  std::optional<Interval> ci;   // unset without a value, without resamples, or when none of
                                // the resamples defines the statistic
  int n = 0;                    // the denominator (see the definitions above)
};

struct PromptMetrics {
  int images = 0;
  Stat soa_c, soa_i;
  Stat count_error, count_exact;
  Stat position, position_given_found;
  Stat colour_binding;
};

// Throws recap::Error for a relation index outside target.groups, a non-finite detection centre
// or invalid options (negative margin or resample count, level outside (0, 1)).
PromptMetrics score_prompts(const std::vector<ImageDetections>& images,
                            const MetricOptions& options);
// The same per suite (each scored on its own images only), for the suites present.
std::map<world::Suite, PromptMetrics> score_by_suite(const std::vector<ImageDetections>& images,
                                                     const MetricOptions& options);

// {"images": n, "soa_c": {"value": x|null, "ci": [lo, hi]|null, "n": n}, ...}; keys are the
// PromptMetrics field names.
nlohmann::json to_json(const Stat& stat);
nlohmann::json to_json(const PromptMetrics& metrics);

// A plain-text table, one row per (label, metrics): rates in percent, count_error as is, each
// with its interval; "-" where undefined.
std::string format_table(const std::vector<std::pair<std::string, PromptMetrics>>& rows);

// Rows of cells as text: the first column left-aligned, the others right-aligned, each padded
// to its widest cell and separated by two spaces; one line per row.
std::string align_columns(const std::vector<std::vector<std::string>>& rows);

}  // namespace recap::eval
