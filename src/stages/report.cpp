// The experiment report: reads the run folder section by section and writes index.html and
// report.md from one document (report_parts.h). Inputs that are absent become "not run";
// inputs that are present but malformed are errors naming the file.
#include "stages/report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/run_dir.h"
#include "core/safetensors.h"
#include "eval/geneval.h"
#include "eval/image_results.h"
#include "eval/metrics.h"
#include "stages/competence.h"
#include "stages/report_parts.h"
#include "world/prompts.h"

namespace recap::stages {

namespace {

using json = nlohmann::json;
using report::Cell;
using report::Doc;
using report::kNotRun;
using report::Table;

// ---- inputs ------------------------------------------------------------------------------

json read_json(const fs::path& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
}

// Runs `body` on a parsed file, turning a missing or mistyped field into an error naming it.
template <typename F>
auto parse_fields(const fs::path& path, const char* what, F&& body) {
  try {
    return body();
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not {}: {}", path.string(), what, e.what()));
  }
}

// One metric row: its key in eval::to_json(PromptMetrics), how it prints, and the paper's
// alt-text and RECAP numbers where the abstract gives them (NaN otherwise).
struct MetricRow {
  const char* key;
  const char* label;
  double scale;
  int decimals;
  bool lower_is_better;
  double paper_alt, paper_recap;
  bool optional = false;  // shown only where some column measured it (and absent from older
                          // eval files)
};
constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
// The abstract says "semantic object accuracy" without naming the SOA variant; it sits beside
// SOA-I, the per-image rate.
constexpr MetricRow kMetricRows[] = {
    {"soa_c", "object accuracy SOA-C (%)", 100, 1, false, kNone, kNone},
    {"soa_i", "object accuracy SOA-I (%)", 100, 1, false, 78.90, 84.34},
    {"count_error", "counting error (lower is better)", 1, 2, true, 1.44, 1.32},
    {"count_exact", "exact count (%)", 100, 1, false, kNone, kNone},
    {"position", "positional alignment (%)", 100, 1, false, 57.60, 62.42},
    {"position_given_found", "position given both found (%)", 100, 1, false, kNone, kNone},
    {"colour_binding", "colour binding (%)", 100, 1, false, kNone, kNone},
    {"clip_score", "CLIP score (judge CLIP, 0-100)", 1, 1, false, kNone, kNone, true},
};
constexpr double kPaperFidAlt = 17.87, kPaperFidRecap = 14.84;

struct Metrics {
  int64_t images = 0;
  std::map<std::string, eval::Stat> stats;  // by MetricRow::key
};

struct Fid {
  double fid = 0;
  double kid = 0, kid_std_error = 0;
  int64_t n_generated = 0, n_reference = 0;
};

// eval/ARM.json (stages::to_json(EvalReport)).
struct EvalFile {
  int64_t images = 0;
  std::map<std::string, Metrics> sets;  // "overall" and each suite
  std::optional<Fid> fid, fid_floor;
  std::optional<eval::GenevalScores> geneval;  // when its images had GenEval prompts
};

eval::Stat parse_stat(const json& j) {
  eval::Stat s;
  s.n = j.at("n").get<int>();
  if (!j.at("value").is_null()) s.value = j.at("value").get<double>();
  const json& ci = j.at("ci");
  if (!ci.is_null()) s.ci = eval::Interval{ci.at(0).get<double>(), ci.at(1).get<double>()};
  return s;
}

Metrics parse_metrics(const json& j) {
  Metrics m;
  m.images = j.at("images").get<int64_t>();
  for (const auto& row : kMetricRows)
    m.stats[row.key] = row.optional && !j.contains(row.key) ? eval::Stat{} : parse_stat(j.at(row.key));
  return m;
}

std::optional<Fid> parse_fid(const json& j) {
  if (j.is_null()) return std::nullopt;
  return Fid{j.at("fid").get<double>(), j.at("kid").at("mean").get<double>(),
             j.at("kid").at("std_error").get<double>(), j.at("n_generated").get<int64_t>(),
             j.at("n_reference").get<int64_t>()};
}

std::optional<EvalFile> read_eval(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  const json j = read_json(path);
  return parse_fields(path, "an evaluation report", [&] {
    EvalFile f;
    f.images = j.at("images").get<int64_t>();
    f.sets["overall"] = parse_metrics(j.at("overall"));
    for (const auto& [suite, metrics] : j.at("suites").items())
      f.sets[suite] = parse_metrics(metrics);
    f.fid = parse_fid(j.at("fid"));
    f.fid_floor = parse_fid(j.at("fid_floor"));
    if (j.contains("geneval") && !j["geneval"].is_null())
      f.geneval = eval::geneval_scores_from_json(j["geneval"]);
    return f;
  });
}

// ---- formatting --------------------------------------------------------------------------

std::string number(double v, int decimals) { return fmt::format("{:.{}f}", v, decimals); }

std::string with_interval(double v, std::optional<eval::Interval> ci, double scale, int decimals) {
  std::string out = number(v * scale, decimals);
  if (ci)
    out += fmt::format(" [{}, {}]", number(ci->lo * scale, decimals),
                       number(ci->hi * scale, decimals));
  return out;
}

std::string percent(double share) { return number(100 * share, 1); }

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{:.1f} s", seconds);
  if (s < 3600) return fmt::format("{}m {:02d}s", s / 60, s % 60);
  return fmt::format("{}h {:02d}m {:02d}s", s / 3600, s / 60 % 60, s % 60);
}

// KID with a normal-approximation 95% interval over its subsets, scaled by 1000 to be legible.
std::string kid_cell(const Fid& f) {
  return with_interval(
      f.kid, eval::Interval{f.kid - 1.96 * f.kid_std_error, f.kid + 1.96 * f.kid_std_error}, 1000,
      2);
}

// What an interval of "treatment minus baseline" says: better or worse when it excludes 0.
std::string verdict(eval::Interval ci, bool lower_is_better) {
  if (ci.lo <= 0 && 0 <= ci.hi) return "no clear difference";
  return (ci.lo > 0) != lower_is_better ? "better" : "worse";
}

// "+5.4 [+2.1, +8.7] better, p = 0.002": a difference, its interval, the verdict, and p.
std::string difference_cell(const eval::Difference& d, double scale, int decimals,
                            bool lower_is_better) {
  if (!d.value) return "-";
  const auto signed_number = [&](double v) { return fmt::format("{:+.{}f}", v * scale, decimals); };
  std::string out = signed_number(*d.value);
  if (!d.ci) return out;
  out += fmt::format(" [{}, {}] {}", signed_number(d.ci->lo), signed_number(d.ci->hi),
                     verdict(*d.ci, lower_is_better));
  if (d.p) out += *d.p < 0.001 ? std::string(", p < 0.001") : fmt::format(", p = {:.3f}", *d.p);
  return out;
}

// ---- sections ----------------------------------------------------------------------------

struct Column {
  std::string name;
  const EvalFile* file = nullptr;  // null: not run
};

const Metrics* metrics_of(const Column& c, const std::string& set) {
  if (!c.file) return nullptr;
  auto it = c.file->sets.find(set);
  return it == c.file->sets.end() ? nullptr : &it->second;
}

// Metric rows x columns for one set ("overall" or a suite). With `compare` (the main table),
// the paper's numbers, the FID/KID rows and the treatment-minus-baseline column are added: the
// paired differences in `paired` ("-" without them), KID's from the two arms' standard errors.
// Without `compare` (a suite's table), `paired` alone adds that column.
Table metric_table(const std::vector<Column>& columns, const std::string& set,
                   const ReportOptions& options, bool compare,
                   const std::optional<eval::PairedMetrics>& paired = std::nullopt) {
  Table t;
  t.header.push_back("metric");
  for (const auto& c : columns) t.header.push_back(c.name);
  const Column* base = nullptr;
  const Column* treat = nullptr;
  for (const auto& c : columns) {
    if (c.name == options.baseline) base = &c;
    if (c.name == options.treatment) treat = &c;
  }
  const bool paired_column = compare || paired;
  if (compare) {
    t.header.push_back("paper: alt-text");
    t.header.push_back("paper: RECAP");
  }
  if (paired_column)
    t.header.push_back(fmt::format("{} - {}: paired difference [{:g}%]", options.treatment,
                                   options.baseline, 100 * options.paired.level));
  const auto paper = [](double v, int decimals) {
    return std::isnan(v) ? "" : number(v, decimals);
  };

  std::vector<Cell> images{"images"};
  for (const auto& c : columns) {
    const Metrics* m = metrics_of(c, set);
    images.push_back(!c.file ? kNotRun : m ? std::to_string(m->images) : "-");
  }
  if (compare) images.insert(images.end(), {"", ""});
  if (paired_column) images.push_back("");
  t.rows.push_back(std::move(images));

  for (const auto& row : kMetricRows) {
    if (row.optional && std::none_of(columns.begin(), columns.end(), [&](const auto& c) {
          const Metrics* m = metrics_of(c, set);
          return m && m->stats.at(row.key).value;
        }))
      continue;
    std::vector<Cell> line{row.label};
    for (const auto& c : columns) {
      const Metrics* m = metrics_of(c, set);
      const eval::Stat* s = m ? &m->stats.at(row.key) : nullptr;
      line.push_back(!c.file           ? kNotRun
                     : !s || !s->value ? "-"
                                       : with_interval(*s->value, s->ci, row.scale, row.decimals));
    }
    if (compare) {
      line.push_back(paper(row.paper_alt, 2));
      line.push_back(paper(row.paper_recap, 2));
    }
    if (paired_column)
      line.push_back(paired ? difference_cell(paired->at(row.key), row.scale, row.decimals,
                                              row.lower_is_better)
                            : "-");
    t.rows.push_back(std::move(line));
  }
  if (!compare) return t;

  // Image quality: FID has no interval; KID's comes from its subsets.
  using FidField = std::optional<Fid> EvalFile::*;
  const auto fid_rows = [&](const std::string& label, FidField field, bool kid, double paper_alt,
                            double paper_recap) {
    std::vector<Cell> line{label};
    for (const auto& c : columns) {
      const auto& f = c.file ? c.file->*field : std::nullopt;
      line.push_back(!c.file ? kNotRun : !f ? "-" : kid ? kid_cell(*f) : number(f->fid, 2));
    }
    line.push_back(paper(paper_alt, 2));
    line.push_back(paper(paper_recap, 2));
    // KID is not per image, so not paired: the difference with the two arms' standard errors
    // combined as if independent.
    const auto kid_of = [&](const Column* c) -> const Fid* {
      return c && c->file && c->file->*field ? &*(c->file->*field) : nullptr;
    };
    const Fid* kid_base = kid_of(base);
    const Fid* kid_treat = kid_of(treat);
    if (kid && field == &EvalFile::fid && kid_base && kid_treat) {
      const double se = std::hypot(kid_base->kid_std_error, kid_treat->kid_std_error);
      const double d = kid_treat->kid - kid_base->kid;
      line.push_back(
          difference_cell({d, eval::Interval{d - 1.96 * se, d + 1.96 * se}, std::nullopt}, 1000, 2,
                          true) +
          " (unpaired)");
    } else {
      line.push_back("");
    }
    t.rows.push_back(std::move(line));
  };
  fid_rows("FID (lower is better)", &EvalFile::fid, false, kPaperFidAlt, kPaperFidRecap);
  fid_rows("KID x 1000 (lower is better)", &EvalFile::fid, true, kNone, kNone);
  fid_rows("FID noise floor (real renders)", &EvalFile::fid_floor, false, kNone, kNone);
  fid_rows("KID x 1000 noise floor", &EvalFile::fid_floor, true, kNone, kNone);
  return t;
}

// The suites any evaluation reports, the world's own first, in their order.
std::vector<std::string> suites_of(const std::vector<Column>& columns) {
  std::set<std::string> found;
  for (const auto& c : columns)
    if (c.file)
      for (const auto& [set, m] : c.file->sets)
        if (set != "overall") found.insert(set);
  return world::in_suite_order(std::move(found));
}

// GenEval-style scores (eval/geneval.h) of every column that has them: overall, then GenEval's
// six tasks. No rows when no evaluation sampled GenEval prompts.
Table geneval_table(const std::vector<Column>& columns) {
  Table t{{"arm", "overall"}, {}};
  for (const auto& tag : world::geneval_tags()) t.header.push_back(tag);
  for (const auto& c : columns) {
    if (!c.file || !c.file->geneval) continue;
    const auto& g = *c.file->geneval;
    std::vector<Cell> row = {c.name, number(g.overall, 2)};
    for (const auto& tag : world::geneval_tags()) {
      const auto it = g.tasks.find(tag);
      row.push_back(it == g.tasks.end() ? "-"
                                        : fmt::format("{} ({}/{})", number(it->second.score(), 2),
                                                      it->second.correct, it->second.images));
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

// Each arm's last competence probe (stages/competence.h): whether its model draws at all.
// Empty rows when no arm was trained with a probe.
Table competence_table(const RunLayout& layout, const ReportOptions& options) {
  Table t{{"arm", "step", "images", "dev SOA-C %", "dev colour binding %", "competent"}, {}};
  for (const auto& arm : options.arms) {
    const json probe = read_probe(layout.t2i(arm));
    if (probe.is_null()) continue;
    parse_fields(probe_path(layout.t2i(arm)), "competence probe", [&] {
      const auto cell = [&](const char* key) {
        const eval::Stat s = parse_stat(probe["metrics"].at(key));
        return s.value ? percent(*s.value) : std::string("-");
      };
      t.rows.push_back({arm, std::to_string(probe["step"].get<int64_t>()),
                        std::to_string(probe["metrics"].at("images").get<int64_t>()),
                        cell("soa_c"), cell("colour_binding"),
                        probe["competent"].get<bool>() ? "yes" : "no"});
    });
  }
  return t;
}

void evaluator_section(Doc& doc, const RunLayout& layout, const EvalFile* ceiling) {
  doc.heading(2, "Evaluator accuracy and ceiling");
  const fs::path path = layout.evaluator() / "evaluator_accuracy.json";
  if (!fs::exists(path)) {
    doc.para("Evaluator accuracy: not run.");
  } else {
    const json j = read_json(path);
    Table t = parse_fields(path, "an evaluator accuracy report", [&] {
      Table t{{"measure", "held-out renders", "augmented renders"}, {}};
      const json& clean = j.at("accuracy");
      const json& augmented = j.at("accuracy_augmented");
      const auto row = [&](const char* label, const char* key, int kind) {
        const auto cell = [&](const json& a) -> Cell {
          if (a.is_null()) return "-";
          if (kind == 0) return std::to_string(a.at(key).get<int64_t>());
          if (kind == 1) return percent(a.at(key).get<double>());
          if (kind == 2) return number(a.at(key).get<double>(), 2);
          return a.at(key).get<bool>() ? "yes" : "no";
        };
        t.rows.push_back({label, cell(clean), cell(augmented)});
      };
      row("images", "images", 0);
      row("exact count per group (%)", "count_exact", 1);
      row("shape accuracy (%)", "shape", 1);
      row("colour accuracy (%)", "colour", 1);
      row("detection precision (%)", "precision", 1);
      row("detection recall (%)", "recall", 1);
      row("centre error (px)", "centre_error_px", 2);
      row("relations that hold (%)", "relation", 1);
      row("images entirely right (%)", "image_exact", 1);
      row("passes the 98% gate", "passes_gate", 3);
      const json& noise = j.value("false_detections", json());
      t.rows.push_back({"object-free noise images: detections per image",
                        noise.is_null() ? Cell("-") : number(noise.at("per_image").get<double>(), 3),
                        "-"});
      return t;
    });
    doc.para(
        "How well the detector that scores every image reads world renders with known "
        "ground truth; its errors bound what the metrics can resolve. The last row is what it "
        "finds in noise with no objects at all: every such detection is a false one, so a "
        "value near 0 means garbage samples cannot score.");
    doc.table(t);
  }
  const fs::path clip = layout.judge_clip() / "clip.json";
  if (fs::exists(clip)) {
    const json j = read_json(clip);
    doc.para(parse_fields(clip, "a CLIP report", [&] {
      const json& check = j.at("check");
      const auto top1 = [&](const char* kind) {
        return percent(check.at(kind).at("image_to_text").get<double>());
      };
      return fmt::format(
          "The judge CLIP behind the CLIP score (judge-clip/: {} steps on fresh world renders "
          "with exact captions, none of the experiment's) finds an image's own caption first "
          "among {} held-out scenes for {}% of them with short captions and {}% with long "
          "ones. It reads at most {} tokens of a prompt; longer prompts are cut, as CLIP cuts "
          "at 77.",
          j.at("steps").get<int64_t>(), check.at("short_captions").at("pairs").get<int64_t>(),
          top1("short_captions"), top1("long_captions"),
          j.at("options").at("text_encoder").at("max_length").get<int64_t>());
    }));
  }
  doc.para(ceiling ? "Ceiling: the reference renders themselves scored like generated images "
                     "(eval/ceiling.json), in the \"ceiling\" column of the tables above."
                   : "Ceiling (eval/ceiling.json): not run.");
}

void caption_section(Doc& doc, const RunLayout& layout) {
  doc.heading(2, "Caption quality and train-inference discrepancy");
  const fs::path path = layout.caption_quality_json();
  if (!fs::exists(path)) {
    doc.para("Caption quality: not run.");
    return;
  }
  const json j = read_json(path);
  parse_fields(path, "a caption quality report", [&] {
    const json& sources = j.at("sources");
    Table quality{{"measure"}, {}}, coverage{{"share of eval prompt n-grams"}, {}};
    for (const auto& s : sources) {
      quality.header.push_back(s.at("name").get<std::string>());
      coverage.header.push_back(s.at("name").get<std::string>());
    }
    // (label, JSON pointer into a source, kind: 0 integer, 1 percent, 2 one decimal)
    const auto row = [&](Table& t, const std::string& label, const char* pointer, int kind) {
      std::vector<Cell> line{label};
      for (const auto& s : sources) {
        const json& v = s.at(json::json_pointer(pointer));
        line.push_back(kind == 0   ? std::to_string(v.get<int64_t>())
                       : kind == 1 ? percent(v.get<double>())
                                   : number(v.get<double>(), 1));
      }
      t.rows.push_back(std::move(line));
    };
    row(quality, "captions scored", "/captions", 0);
    row(quality, "missing", "/missing", 0);
    row(quality, "mean words", "/mean_words", 2);
    row(quality, "median words", "/median_words", 2);
    row(quality, "vocabulary", "/vocabulary", 0);
    row(quality, "correct shape (%)", "/shares/correct_shape", 1);
    row(quality, "correct colour binding (%)", "/shares/correct_binding", 1);
    row(quality, "correct count (%)", "/shares/correct_count", 1);
    row(quality, "correct relation or position (%)", "/shares/correct_relation_or_position", 1);
    row(quality, "states something wrong (%)", "/shares/wrong_fact", 1);
    row(quality, "group precision (%)", "/precision", 1);
    row(quality, "group recall (%)", "/recall", 1);
    const json& ngrams = j.at("eval_ngrams");
    row(coverage, fmt::format("words (of {})", ngrams.at("words").get<int64_t>()),
        "/eval_coverage/words", 1);
    row(coverage, fmt::format("bigrams (of {})", ngrams.at("bigrams").get<int64_t>()),
        "/eval_coverage/bigrams", 1);
    row(coverage, fmt::format("trigrams (of {})", ngrams.at("trigrams").get<int64_t>()),
        "/eval_coverage/trigrams", 1);
    doc.para(
        "Each caption source scored against the scene graphs (shares of captions that "
        "state at least one correct fact of a kind, or anything false).");
    doc.table(quality);
    doc.para(fmt::format(
        "Train-inference discrepancy: share of the distinct words, bigrams and trigrams of the "
        "{} evaluation prompts that each source's captions contain (%).",
        j.at("eval_prompts").get<int64_t>()));
    doc.table(coverage);
  });
}

// samples-ARM/SUITE/images.jsonl: prompt -> image file (first one per prompt), and the
// prompts in file order.
struct SuiteSamples {
  std::vector<std::string> prompts;
  std::map<std::string, fs::path> files;
};

std::optional<SuiteSamples> read_samples(const fs::path& dir) {
  const fs::path index = dir / "images.jsonl";
  if (!fs::exists(index)) return std::nullopt;
  SuiteSamples out;
  const auto lines = read_jsonl(index);
  for (size_t n = 0; n < lines.size(); ++n) {
    const json& line = lines[n];
    if (!line.is_object() || !line.contains("file") || !line["file"].is_string() ||
        !line.contains("prompt") || !line["prompt"].is_string())
      throw Error(
          fmt::format("{}: record {}: needs string fields file and prompt", index.string(), n + 1));
    const auto prompt = line["prompt"].get<std::string>();
    if (out.files.emplace(prompt, dir / line["file"].get<std::string>()).second)
      out.prompts.push_back(prompt);
  }
  return out;
}

void grid_section(Doc& doc, const RunLayout& layout, const ReportOptions& options) {
  doc.heading(2, "Image grids");
  // suite -> arm -> samples, suites in the world's order first.
  std::map<std::string, std::map<std::string, SuiteSamples>> by_suite;
  for (const auto& arm : options.arms) {
    const fs::path root = layout.samples(arm);
    if (!fs::is_directory(root)) continue;
    for (const auto& entry : fs::directory_iterator(root))
      if (entry.is_directory())
        if (auto samples = read_samples(entry.path()))
          by_suite[entry.path().filename().string()][arm] = std::move(*samples);
  }
  if (by_suite.empty()) {
    doc.para("Samples: not run.");
    return;
  }
  std::set<std::string> sampled;
  for (const auto& [suite, arms] : by_suite) sampled.insert(suite);
  const auto suites = world::in_suite_order(std::move(sampled));

  doc.para(
      fmt::format("The first {} prompts of each suite, one column per arm (same prompts "
                  "and seeds).",
                  options.grid_prompts));
  for (const auto& suite : suites) {
    const auto& arms = by_suite.at(suite);
    // The prompts of the first arm (in table order) that sampled this suite.
    std::vector<std::string> prompts;
    for (const auto& arm : options.arms)
      if (auto it = arms.find(arm); it != arms.end()) {
        const auto& all = it->second.prompts;
        prompts.assign(
            all.begin(),
            all.begin() + std::min<size_t>(all.size(), std::max(0, options.grid_prompts)));
        break;
      }
    if (prompts.empty()) continue;
    std::vector<report::GridColumn> columns;
    for (const auto& arm : options.arms) {
      auto it = arms.find(arm);
      columns.push_back(
          {arm, it == arms.end() ? std::map<std::string, fs::path>{} : it->second.files});
    }
    const std::string file = "grid-" + suite + ".png";
    report::write_grid(prompts, columns, layout.report() / file);
    doc.heading(3, suite);
    doc.image(file, suite + " prompts, one column per arm");
  }
}

// EMA smoothing of a noisy loss curve, span about a twentieth of the curve.
std::vector<std::pair<double, double>> smooth(std::vector<std::pair<double, double>> points) {
  const double span = std::max(1.0, static_cast<double>(points.size()) / 20);
  const double alpha = 2 / (span + 1);
  double ema = points.empty() ? 0 : points.front().second;
  for (auto& [x, y] : points) y = ema = alpha * y + (1 - alpha) * ema;
  return points;
}

// Training ("loss") and validation ("val_loss*") curves of one metrics.jsonl.
std::vector<report::Series> loss_series(const fs::path& path, const std::string& name) {
  if (!fs::exists(path)) return {};
  std::vector<std::pair<double, double>> train;
  std::map<std::string, std::vector<std::pair<double, double>>> validation;
  for (const json& line : read_jsonl(path)) {
    if (!line.is_object() || !line.contains("step") || !line["step"].is_number()) continue;
    const double step = line["step"].get<double>();
    if (line.value("split", "") == "validation") {
      for (const auto& [key, value] : line.items())
        if (key.rfind("val_loss", 0) == 0 && value.is_number())
          validation[key].emplace_back(step, value.get<double>());
    } else if (line.contains("loss") && line["loss"].is_number()) {
      train.emplace_back(step, line["loss"].get<double>());
    }
  }
  std::vector<report::Series> out;
  if (!train.empty()) out.push_back({name, smooth(std::move(train))});
  for (auto& [key, points] : validation) out.push_back({name + " " + key, std::move(points)});
  return out;
}

// eval/ARM-step-N.json: the metrics of intermediate checkpoints, by arm and step. An arm's
// final evaluation (eval/ARM.json) ends its curve, at the step its model says it was trained
// to; step files at or past that step belong to another training and are left out.
std::map<std::string, std::map<int64_t, EvalFile>> step_evals(const RunLayout& layout,
                                                              const ReportOptions& options) {
  std::map<std::string, std::map<int64_t, EvalFile>> out;
  if (!fs::is_directory(layout.eval())) return out;
  static const std::regex pattern("(.+)-step-([0-9]+)\\.json");
  for (const auto& entry : fs::directory_iterator(layout.eval())) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, match, pattern)) continue;
    if (std::find(options.arms.begin(), options.arms.end(), match[1].str()) == options.arms.end())
      continue;
    out[match[1].str()][std::stoll(match[2].str())] = *read_eval(entry.path());
  }
  for (auto& [arm, by_step] : out) {
    const fs::path model = layout.t2i_weights(arm);
    if (!fs::exists(model)) continue;
    const auto metadata = Safetensors::load(model).metadata();
    int64_t final_step = -1;
    if (auto steps = metadata.find("steps"); steps != metadata.end()) {
      try {
        final_step = std::stoll(steps->second);
      } catch (const std::exception&) {  // stays -1: refused below
      }
    }
    if (final_step < 0)
      throw Error(fmt::format("{}: no valid \"steps\" metadata (not a t2i train output)",
                              model.string()));
    std::erase_if(by_step, [&](const auto& entry) { return entry.first >= final_step; });
    if (auto final_eval = read_eval(layout.eval_json(arm)))
      by_step[final_step] = std::move(*final_eval);
  }
  return out;
}

int curves_section(Doc& doc, const RunLayout& layout, const ReportOptions& options) {
  doc.heading(2, "Training curves");
  int skipped = 0;
  const auto draw = [&](const std::string& what, const std::vector<report::Panel>& panels,
                        const std::string& file) {
    bool any = false;
    for (const auto& p : panels) any = any || !p.series.empty();
    if (!any) {
      doc.para(what + ": not run.");
      return;
    }
    const std::string reason = report::plot(panels, layout.report() / file);
    if (reason.empty()) {
      doc.image(file, what);
    } else {
      ++skipped;
      doc.para(fmt::format("{}: plot skipped: {}.", what, reason));
    }
  };

  report::Panel t2i{"text-to-image training loss (EMA-smoothed)", "step", "loss", {}};
  for (const auto& arm : options.arms)
    for (auto& s : loss_series(layout.t2i_metrics(arm), arm)) t2i.series.push_back(std::move(s));
  draw("Text-to-image loss per arm", {t2i}, "t2i_loss.png");

  report::Panel captioner{"captioner loss (training EMA-smoothed)", "step", "loss", {}};
  for (const char* stage : {"pretrain", "finetune"})
    for (auto& s : loss_series(layout.captioner() / stage / "metrics.jsonl", stage))
      captioner.series.push_back(std::move(s));
  draw("Captioner pre-training and fine-tuning loss", {captioner}, "captioner_loss.png");

  const auto steps = step_evals(layout, options);
  std::vector<report::Panel> efficiency = {
      {"object accuracy SOA-I", "step", "%", {}},
      {"counting error (lower is better)", "step", "mean |error|", {}},
      {"positional alignment", "step", "%", {}}};
  const char* keys[] = {"soa_i", "count_error", "position"};
  for (const auto& [arm, by_step] : steps)
    for (size_t k = 0; k < 3; ++k) {
      report::Series series{arm, {}};
      for (const auto& [step, file] : by_step) {
        const eval::Stat& s = file.sets.at("overall").stats.at(keys[k]);
        if (s.value) series.points.emplace_back(step, *s.value * (k == 1 ? 1 : 100));
      }
      if (!series.points.empty()) efficiency[k].series.push_back(std::move(series));
    }
  draw("Sample efficiency: metrics at intermediate checkpoints", efficiency,
       "sample_efficiency.png");
  return skipped;
}

// Share of the baseline -> oracle gap each RECAP arm closes, per metric: (arm - baseline) /
// (oracle - baseline), in percent, the paper's question asked of our oracle (exact human
// captions). No rows without an oracle arm (human-mix, else human) and a recap arm evaluated;
// "-" where the oracle does not differ from the baseline.
Table gap_table(const std::map<std::string, EvalFile>& evals, const ReportOptions& options) {
  Table t;
  const EvalFile* baseline = nullptr;
  if (auto it = evals.find(options.baseline); it != evals.end()) baseline = &it->second;
  std::string oracle;
  for (const char* name : {"human-mix", "human"})
    if (oracle.empty() && evals.contains(name)) oracle = name;
  std::vector<std::string> arms;
  for (const auto& arm : options.arms)
    if (arm.starts_with("recap") && evals.contains(arm)) arms.push_back(arm);
  if (!baseline || oracle.empty() || arms.empty()) return t;
  t.header.push_back(fmt::format("share of the {} -> {} gap closed (%)", options.baseline, oracle));
  for (const auto& arm : arms) t.header.push_back(arm);
  const auto value = [&](const EvalFile& f, const char* key) -> std::optional<double> {
    auto it = f.sets.find("overall");
    if (it == f.sets.end()) return std::nullopt;
    return it->second.stats.at(key).value;
  };
  for (const auto& row : kMetricRows) {
    const auto base = value(*baseline, row.key), top = value(evals.at(oracle), row.key);
    std::vector<Cell> line{row.label};
    for (const auto& arm : arms) {
      const auto v = value(evals.at(arm), row.key);
      const bool defined = base && top && v && std::abs(*top - *base) > 1e-12;
      line.push_back(defined ? number(100 * (*v - *base) / (*top - *base), 0) : Cell("-"));
    }
    t.rows.push_back(std::move(line));
  }
  return t;
}

// The treatment's per-image results against the baseline's (eval/ARM.images.jsonl). Unset
// when either arm has not been evaluated, or, with the reason in `why_not`, when an
// evaluation wrote no per-image results (one made before they existed).
// The compared arm against the baseline, image by image: the paired differences of every
// metric and the pairwise faithfulness win rate.
struct ArmComparison {
  eval::PairedMetrics paired;
  eval::WinRate wins;
  std::map<std::string, eval::PairedMetrics> suites;  // the same, per suite name
};

std::optional<ArmComparison> compare_arms(const RunLayout& layout,
                                          const std::map<std::string, EvalFile>& evals,
                                          const ReportOptions& options, std::string& why_not) {
  const auto base = evals.find(options.baseline), treat = evals.find(options.treatment);
  if (base == evals.end() || treat == evals.end()) return std::nullopt;
  std::vector<std::string> missing;
  for (const auto& arm : {options.baseline, options.treatment})
    if (!fs::exists(layout.eval_images(arm))) missing.push_back(layout.eval_images(arm).string());
  if (!missing.empty()) {
    why_not = fmt::format(
        "Paired differences: not available: {} missing (an evaluation made before per-image "
        "results were written: delete eval/ARM.json and rerun to evaluate again).",
        fmt::join(missing, " and "));
    return std::nullopt;
  }
  const auto results = [&](const std::string& arm, const EvalFile& summary) {
    const fs::path path = layout.eval_images(arm);
    auto out = eval::read_image_results(path);
    if (static_cast<int64_t>(out.size()) != summary.images)
      throw Error(fmt::format("{}: {} images, but {} counts {}: not the same evaluation",
                              path.string(), out.size(), layout.eval_json(arm).string(),
                              summary.images));
    return out;
  };
  // The scores of the images of `suite` (every image when unset).
  const auto scores = [](const std::vector<eval::ImageResult>& all,
                         const std::optional<std::string>& suite) {
    std::vector<eval::ImageScore> out;
    for (const auto& r : all)
      if (!suite || r.suite == suite) out.push_back(r.score);
    return out;
  };
  try {
    const auto baseline = results(options.baseline, base->second);
    const auto treatment = results(options.treatment, treat->second);
    const auto a = scores(baseline, std::nullopt), b = scores(treatment, std::nullopt);
    ArmComparison out{eval::compare_paired(a, b, options.paired),
                      eval::win_rate(a, b, options.paired), {}};
    std::set<std::string> suites;
    for (const auto& r : baseline)
      if (r.suite) suites.insert(*r.suite);
    for (const auto& suite : suites)
      out.suites.emplace(suite, eval::compare_paired(scores(baseline, suite),
                                                     scores(treatment, suite), options.paired));
    return out;
  } catch (const Error& e) {
    throw Error(fmt::format("{} vs {}: {}", layout.eval_images(options.baseline).string(),
                            layout.eval_images(options.treatment).string(), e.what()));
  }
}

void manifest_section(Doc& doc, const RunLayout& layout) {
  doc.heading(2, "Stages, wall times, seeds");
  if (!fs::exists(layout.manifest())) {
    doc.para("manifest.json: not run.");
    return;
  }
  const json m = RunDir::read_manifest(layout.root);
  parse_fields(layout.manifest(), "a run manifest", [&] {
    doc.para(fmt::format("Seed {}; configuration from {}; run created {}.",
                         m.contains("seed") ? m["seed"].dump() : "?",
                         m.value("config_origin", std::string("?")),
                         m.value("created", std::string("?"))));
    if (m.contains("versions") && m["versions"].is_object()) {
      std::vector<std::string> parts;
      for (const auto& [k, v] : m["versions"].items())
        parts.push_back(k + " " + (v.is_string() ? v.get<std::string>() : v.dump()));
      doc.para("Versions: " + fmt::format("{}", fmt::join(parts, "; ")) + ".");
    }
    // Stages in the order they started (ISO timestamps sort as text).
    std::vector<std::pair<std::string, const json*>> stages;
    for (const auto& [name, rec] : m.at("stages").items()) stages.emplace_back(name, &rec);
    std::stable_sort(stages.begin(), stages.end(), [](const auto& a, const auto& b) {
      return a.second->value("started", std::string()) < b.second->value("started", std::string());
    });
    Table t{{"stage", "status", "wall time", "finished", "error"}, {}};
    double total = 0;
    for (const auto& [name, rec] : stages) {
      const double seconds = rec->value("seconds", 0.0);
      total += seconds;
      t.rows.push_back({name, rec->value("status", std::string("?")),
                        rec->contains("seconds") ? duration(seconds) : "-",
                        rec->value("finished", std::string("-")),
                        rec->value("error", std::string())});
    }
    t.rows.push_back({"total", "", duration(total), "", ""});
    doc.table(t);
  });
}

}  // namespace

std::string treatment_arm(const std::vector<std::string>& arms) {
  for (const auto& arm : arms)
    if (arm == "recap" || arm == "recap-mix") return arm;
  return "recap";
}

ReportResult write_report(const RunLayout& layout, const ReportOptions& options) {
  const fs::path dir = layout.report();
  fs::create_directories(dir);

  std::map<std::string, EvalFile> evals;
  for (const auto& arm : options.arms)
    if (auto f = read_eval(layout.eval_json(arm))) evals.emplace(arm, std::move(*f));
  const std::optional<EvalFile> ceiling = read_eval(layout.eval_json("ceiling"));
  std::vector<Column> columns;
  for (const auto& arm : options.arms) {
    auto it = evals.find(arm);
    columns.push_back({arm, it == evals.end() ? nullptr : &it->second});
  }
  std::vector<Column> with_ceiling = columns;
  with_ceiling.push_back({"ceiling", ceiling ? &*ceiling : nullptr});

  const std::string name = layout.root.filename().string();
  Doc doc;
  doc.heading(1, "RECAP experiment: " + name);
  std::vector<std::string> missing;
  for (const auto& c : columns)
    if (!c.file) missing.push_back(c.name);
  doc.para(
      fmt::format("Arms: {}. Baseline: {}; compared arm: {}.{}", fmt::join(options.arms, ", "),
                  options.baseline, options.treatment,
                  missing.empty() ? "" : fmt::format(" Not run: {}.", fmt::join(missing, ", "))));

  doc.heading(2, "Main results");
  std::string paired_missing;
  const auto compared = compare_arms(layout, evals, options, paired_missing);
  const auto paired =
      compared ? std::optional<eval::PairedMetrics>(compared->paired) : std::nullopt;
  const Table main = metric_table(with_ceiling, "overall", options, true, paired);
  doc.table(main);
  doc.para(fmt::format(
      "Values with 95% percentile-bootstrap intervals over images; KID x 1000 with mean +- 1.96 "
      "standard errors (half-sampling over its subsets); FID has no interval. The last column "
      "is {0} minus {1}, image by image: every arm draws the same prompts with the same seeds, "
      "so each image of one arm has a twin in the other, and the interval ({2:g}%) comes from "
      "a paired bootstrap that resamples the pairs together ({3} resamples). Better or worse "
      "means that interval excludes 0 (for counting error and KID lower is better); \"no clear "
      "difference\" means it does not, which is not evidence that the arms are equal. p is a "
      "two-sided sign-flip permutation test of the same difference ({3} permutations; the "
      "smallest it can report is 1/{4}). Comparing paired images removes the prompts' own "
      "difficulty from the comparison, so a difference can be clear while the arms' separate "
      "intervals overlap. KID is not per image, so its row combines the two arms' standard "
      "errors as if independent (unpaired). The intervals cover the sampling of prompts and "
      "images for one trained model per arm, not the variation between training seeds. The "
      "paper's columns are Segalis et al. 2023, \"A Picture is Worth a Thousand Words: "
      "Principled Recaptioning Improves Image Generation\" (Stable Diffusion fine-tuned on "
      "recaptioned LAION, evaluated on MS-COCO): different data and scale, shown for the "
      "direction and size of the effect, not as values to match. Its \"semantic object "
      "accuracy\" sits beside SOA-I.",
      options.treatment, options.baseline, 100 * options.paired.level, options.paired.resamples,
      options.paired.resamples + 1));
  if (!paired_missing.empty()) doc.para(paired_missing);
  if (compared) {
    const auto& w = compared->wins;
    const auto share = [](const eval::Stat& s) {
      return s.value ? with_interval(*s.value, s.ci, 100, 1) : std::string("-");
    };
    doc.para(fmt::format(
        "Pairwise faithfulness, the automatic analogue of the paper's human study (raters "
        "preferred RECAP's image for 64.3% of prompts): of the two arms' images of the same "
        "prompt and seed ({} pairs), the more faithful shows more of the prompted groups' "
        "shapes, then more groups in their stated colour, then more exact counts, then a "
        "smaller counting error, then more relations that hold (eval::more_faithful). {}'s "
        "image, in percent of the pairs: wins {}, ties {}, loses {}; in percent of the decided "
        "pairs it wins {} (paired bootstrap intervals, {:g}%).",
        w.images, options.treatment, share(w.win), share(w.tie), share(w.loss),
        share(w.win_of_decided), 100 * options.paired.level));
  }
  const Table gap = gap_table(evals, options);
  if (!gap.rows.empty()) {
    doc.heading(3, "How much of the gap to exact captions RECAP closes");
    doc.table(gap);
    doc.para("(RECAP arm minus baseline) / (oracle minus baseline) of each overall metric, "
             "from the point estimates above: 0% is no better than the alt-text baseline, "
             "100% as good as training on the world's exact captions. Point estimates of one "
             "trained model per arm, without intervals; a small oracle-baseline difference "
             "makes the ratio unstable.");
  }
  const Table competence = competence_table(layout, options);
  if (!competence.rows.empty()) {
    doc.heading(3, "Competence");
    doc.table(competence);
    doc.para(fmt::format(
        "Whether each arm's model draws at all, before its prompt following can say anything "
        "about its captions: the competence probe at its last validation, samples of the dev "
        "multi-object prompts (never the test suites) judged by the evaluator. Competent means "
        "SOA-C >= {:.0f}% and colour binding >= {:.0f}%.",
        100 * kCompetentSoaC, 100 * kCompetentColourBinding));
  }
  const Table geneval = geneval_table(with_ceiling);
  if (!geneval.rows.empty()) {
    doc.heading(3, "GenEval-style scores");
    doc.table(geneval);
    doc.para("GenEval's six tasks on the world's GenEval prompts (prompts/geneval/), judged by "
             "GenEval's rules with the evaluator as the detector (src/eval/geneval.h): a task's "
             "score is the share of its images that are correct, overall the mean of the task "
             "scores. The ceiling row judges one render of the perfect scene of each of these "
             "prompts (eval/ceiling.geneval.jsonl): only the evaluator's errors keep it below "
             "1. Published overall scores on GenEval's own COCO prompts (SD1.5 0.43, SDXL "
             "0.55, DALL-E 3 0.67) are another world and detector, for orientation only.");
  }
  for (const auto& suite : suites_of(with_ceiling)) {
    doc.heading(3, "Suite: " + suite);
    std::optional<eval::PairedMetrics> in_suite;
    if (compared)
      if (auto it = compared->suites.find(suite); it != compared->suites.end())
        in_suite = it->second;
    doc.table(metric_table(with_ceiling, suite, options, false, in_suite));
  }

  evaluator_section(doc, layout, ceiling ? &*ceiling : nullptr);
  caption_section(doc, layout);
  grid_section(doc, layout, options);

  doc.heading(2, "Caption examples");
  const Table examples = report::caption_examples(layout, options.caption_examples);
  if (examples.rows.empty())
    doc.para("Caption examples: not run (no corpus).");
  else
    doc.table(examples);

  ReportResult result;
  result.plots_skipped = curves_section(doc, layout, options);
  manifest_section(doc, layout);

  result.index_html = dir / "index.html";
  result.report_md = dir / "report.md";
  write_file_atomic(result.index_html, doc.html("RECAP experiment: " + name));
  write_file_atomic(result.report_md, doc.markdown());
  result.main_table = report::plain_table(main);
  if (!competence.rows.empty()) result.competence_table = report::plain_table(competence);
  return result;
}

}  // namespace recap::stages
