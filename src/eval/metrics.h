// Prompt-following metrics of DESIGN.md ("Metrics"), computed from what the evaluator's
// detector finds in each generated image against the prompt's exact target, with percentile
// bootstrap intervals over images, and the paired comparison of two arms sampled on the same
// prompts and seeds. Torch-free.
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
// Each image is reduced once to an ImageScore (its tallies for every statistic); the point
// estimate and every resample are the same aggregation over a multiset of image scores.
//
// A statistic with n == 0 has no value (JSON null) rather than NaN. Intervals: B resamples of
// the images with replacement (recap::Rng seeded with MetricOptions::seed), the statistic
// recomputed on each; resamples on which it is undefined (n == 0) are skipped; the interval is
// the linearly interpolated (1-level)/2 and (1+level)/2 quantiles of the rest.
//
// Paired comparison (compare_paired). Two arms sampled on the same prompts with the same seeds
// are not independent samples: a prompt's difficulty is shared by both arms, so whether their
// separate intervals overlap misses differences far smaller than either interval's width and
// has no stated error rate. Image i of one arm is paired with image i of the other (same
// prompt and seed, checked).
// - Difference: statistic(treatment) - statistic(baseline), each on all its images.
// - Interval: paired percentile bootstrap: each resample draws image indices with replacement
//   and applies the same indices to both arms, so the pairs stay together; the statistic is
//   recomputed on both and the difference kept (resamples where either arm's statistic is
//   undefined are skipped); quantiles as above.
// - p: two-sided sign-flip permutation test of "the arm does not matter": each permutation
//   swaps the two arms' results of every image independently with probability 1/2 and
//   recomputes the difference d*; p = (1 + #{|d*| >= |d|}) / (1 + R), R the permutations on
//   which both arms' statistic is defined. Exact under exchangeability of each pair (no normal
//   approximation, valid for the ratio statistics too); for a share of one 0/1 outcome per
//   image it is a Monte Carlo form of the exact McNemar test. The smallest p it can give is
//   1 / (1 + R).
// The verdict the report gives comes from the interval (does it exclude 0?); p is printed
// beside it. Near the boundary the two may disagree: they are different procedures.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
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

// Who an image is: the prompt and seed it was sampled from. Two arms' images pair when these
// agree (compare_paired); the statistics themselves ignore it.
struct ImageId {
  std::string prompt;
  std::optional<uint64_t> seed;  // unset when the sampler recorded none
  bool operator==(const ImageId&) const = default;
};

// A generated image: the target of the prompt it was generated from and what was detected.
struct ImageDetections {
  world::Facts target;
  std::vector<Detection> detections;
  ImageId id;
};

// What one image contributes to every statistic: the tallies the definitions above sum.
// A pooled statistic is sum(numerator) / sum(denominator) over the images; soa_i is the mean
// of groups_found / groups over the images with groups > 0; soa_c keeps, per prompted shape,
// whether the image shows one.
struct ImageScore {
  ImageId id;
  std::map<std::string, bool> shapes;  // soa_c: each distinct prompted shape: seen?
  int groups = 0, groups_found = 0;    // soa_i
  int counted = 0;                     // count_error, count_exact: groups with a stated count
  double count_abs_error = 0;          // sum of their |count - |D(g)||
  int count_exact = 0;                 // those with |D(g)| == count
  int relations = 0, relations_found = 0, relations_hold = 0;  // position, position_given_found
  int coloured = 0, bound = 0;                                 // colour_binding
  // clip_score: 100 * max(cos, 0) between the image and its prompt under a judge CLIP
  // (models/clip.h); unset when the evaluation had none. The statistic is the mean over the
  // images that have one.
  std::optional<double> clip_score;
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
  Stat clip_score;  // 0-100; undefined without a judge CLIP
};

// Throws recap::Error for a relation index outside target.groups, a non-finite detection centre
// or invalid options (negative margin or resample count, level outside (0, 1)).
ImageScore score_image(const ImageDetections& image, const MetricOptions& options);
// The statistics of a set of image scores, with bootstrap intervals (relation_margin_px and
// min_score were spent by score_image); throws recap::Error for invalid options.
PromptMetrics summarize(const std::vector<ImageScore>& scores, const MetricOptions& options);
// summarize of score_image of every image.
PromptMetrics score_prompts(const std::vector<ImageDetections>& images,
                            const MetricOptions& options);
// summarize per suite, each over its own images only: scores[i] belongs to the suite named
// suites[i] (unset: to none). One entry per suite present; std::invalid_argument when the
// sizes differ.
std::map<std::string, PromptMetrics> summarize_by_suite(
    const std::vector<ImageScore>& scores, const std::vector<std::optional<std::string>>& suites,
    const MetricOptions& options);

struct PairedOptions {
  int resamples = 1000;  // bootstrap resamples, and as many sign-flip permutations; 0: neither
  double level = 0.95;   // central interval mass
  uint64_t seed = 0;
};

// One statistic of two arms compared (see "Paired comparison" above).
struct Difference {
  std::optional<double> value;  // treatment - baseline; unset when either arm's is undefined
  std::optional<Interval> ci;   // paired percentile bootstrap; unset without value or resamples
  std::optional<double> p;      // two-sided sign-flip permutation p; unset likewise
};

struct PairedMetrics {
  int images = 0;  // pairs
  Difference soa_c, soa_i;
  Difference count_error, count_exact;
  Difference position, position_given_found;
  Difference colour_binding;
  Difference clip_score;
  // The difference of the statistic named `key` (the to_json names: "soa_c", ...); an unknown
  // key is a bug (std::logic_error).
  const Difference& at(std::string_view key) const;
};

// treatment minus baseline, image i of one paired with image i of the other. Throws
// recap::Error naming the mismatch when the sets differ in size or an index holds another
// prompt or seed in each, and for invalid options (negative resamples, level outside (0, 1)).
PairedMetrics compare_paired(const std::vector<ImageScore>& baseline,
                             const std::vector<ImageScore>& treatment,
                             const PairedOptions& options);

// Pairwise faithfulness, the automatic analogue of the paper's human study (raters picked the
// image more faithful to its prompt; RECAP's won 64.3%): of two images of the same prompt and
// seed, the more faithful one shows more of the prompted groups' shapes (soa_i's numerator),
// then more groups in their stated colour (colour_binding's), then more groups counted
// exactly, then the smaller counting error, then more relations that hold; equal on all five
// is a tie. 1: `a` is more faithful, -1: `b`, 0: a tie.
int more_faithful(const ImageScore& a, const ImageScore& b);

struct WinRate {
  int images = 0;       // pairs
  Stat win, tie, loss;  // shares of the pairs where the treatment's image is more faithful, ...
  Stat win_of_decided;  // wins / (wins + losses); unset when every pair ties
};
// The treatment's win, tie and loss shares against the baseline, pair i with pair i, each
// with a paired percentile bootstrap interval (the pairs resampled together; options.seed's
// own stream). Throws what compare_paired throws for unpaired sets or bad options.
WinRate win_rate(const std::vector<ImageScore>& baseline, const std::vector<ImageScore>& treatment,
                 const PairedOptions& options);

// {"images": n, "soa_c": {"value": x|null, "ci": [lo, hi]|null, "n": n}, ...}; keys are the
// PromptMetrics field names.
nlohmann::json to_json(const Stat& stat);
nlohmann::json to_json(const PromptMetrics& metrics);

// An image's tallies per statistic, named as in to_json(PromptMetrics): {"soa_c": {"SHAPE":
// 0|1, ...}, "soa_i": [groups_found, groups], "count_error": [count_abs_error, counted],
// "count_exact": [count_exact, counted], "position": [relations_hold, relations],
// "position_given_found": [relations_hold, relations_found], "colour_binding": [bound,
// coloured]}: [numerator, denominator] of each, so a reader can recompute any statistic. The id
// is not included.
nlohmann::json to_json(const ImageScore& score);
// The inverse (id left empty). Throws recap::Error naming the field that is missing, mistyped,
// negative, larger than its denominator, or disagrees with the same tally in another field.
ImageScore image_score_from_json(const nlohmann::json& json);

// A plain-text table of `treatment` minus `baseline` (compare_paired) and its win rate: one
// row per statistic both define (rates in percentage points, count_error and clip_score as
// they are), with its paired interval and permutation p, then the win, tie and loss shares.
std::string format_paired(const PairedMetrics& paired, const WinRate& wins,
                          const std::string& treatment, const std::string& baseline);

// A plain-text table, one row per (label, metrics): rates in percent, count_error as is, each
// with its interval; "-" where undefined.
std::string format_table(const std::vector<std::pair<std::string, PromptMetrics>>& rows);

// Rows of cells as text: the first column left-aligned, the others right-aligned, each padded
// to its widest cell and separated by two spaces; one line per row.
std::string align_columns(const std::vector<std::vector<std::string>>& rows);

}  // namespace recap::eval
