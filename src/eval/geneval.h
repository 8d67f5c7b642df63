// GenEval's scoring (Ghosh et al., 2023; github.com/djghosh13/geneval, evaluation/
// evaluate_images.py and summary_scores.py) with the world's detector as the judge. Torch-free.
//
// Rules, GenEval's `evaluate` applied to the detector's output. Detections scoring below
// min_score are dropped; the rest are grouped by class (shape) and ordered by score, highest
// first. Include clauses are checked in order, each against the `count` highest-scoring
// detections of its class (its "found" objects):
// - found < count: incorrect ("expected circle>=2, found 1");
// - a "color": every found object must have that colour (GenEval classifies the colours of
//   the found objects with CLIP; our detector names each detection's colour);
// - a "position" [REL, j]: clause j must itself have matched, and every found object must
//   stand in REL to every object clause j found, by world::relation_holds on the centres with
//   the world's relation margin (GenEval's own rule weighs box sizes and asks the offset to
//   lie mostly along REL's axis; the world's single definition of "left of" is the one its
//   renders guarantee, so a perfect render is never marked wrong on a diagonal);
// - exclude clauses: incorrect when the class has at least `count` detections (counting's
//   exclude is count + 1, so with its include it asks for exactly `count`).
// The image is correct when no clause failed; `reason` joins the failures' messages (GenEval's
// wording) with newlines. What that means per task: single_object and two_object, each
// prompted shape detected; counting, exactly N of the shape; colors, the shape in the colour;
// position, both shapes, the placed one in the relation to the reference one; color_attr, both
// shapes, each in its own colour.
//
// Scores: a task's score is the share of its images that are correct, and the overall score
// is the mean of the task scores over the tasks present (summary_scores.py).
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/metrics.h"
#include "world/geneval_prompts.h"

namespace recap::eval {

struct GenevalVerdict {
  bool correct = false;
  std::string reason;  // empty when correct
};

// Throws recap::Error for invalid options (see score_image).
GenevalVerdict geneval_judge(const world::GenevalPrompt& prompt,
                             const std::vector<Detection>& detections,
                             const MetricOptions& options);

// One line of GenEval's results.jsonl, as evaluate_images.py writes it: {"filename", "tag",
// "prompt", "correct", "reason", "metadata": the metadata as a JSON string, "details": {class:
// [[x0, y0, x1, y1, score], ...]} as a JSON string (every detection, boxes from centre and
// size)}. summary_scores.py reads "tag", "correct" and "metadata".
nlohmann::json geneval_result_line(const std::string& filename,
                                   const world::GenevalPrompt& prompt,
                                   const std::vector<Detection>& detections,
                                   const GenevalVerdict& verdict);

struct GenevalTask {
  int correct = 0, images = 0;
  double score() const { return images ? double(correct) / images : 0; }
};

struct GenevalScores {
  std::map<std::string, GenevalTask> tasks;  // by tag
  int images = 0;
  double overall = 0;  // mean of the task scores
  // Tags in GenEval's order (world::geneval_tags()), then any others sorted.
  std::vector<std::string> tag_order() const;
};

// verdicts[i] is the judgement of an image of tags[i]; std::invalid_argument when the sizes
// differ.
GenevalScores geneval_scores(const std::vector<std::string>& tags,
                             const std::vector<GenevalVerdict>& verdicts);

// {"overall", "images", "tasks": {"single_object": {"score", "correct", "images"}, ...}}.
nlohmann::json to_json(const GenevalScores& scores);
GenevalScores geneval_scores_from_json(const nlohmann::json& json);  // throws recap::Error
// "GenEval-style (our detector): overall 0.62; single_object 0.88 (7/8), ..." on one line.
std::string format_geneval(const GenevalScores& scores);

}  // namespace recap::eval
