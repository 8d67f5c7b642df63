// `recap corpus stats`: scores every caption source of the web split against the scene graphs
// and measures how much of the evaluation prompts' language each source covers.
#include "stages/corpus_stats.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "data/rejects.h"
#include "data/shard_reader.h"
#include "stages/corpus.h"
#include "stages/settings.h"
#include "world/parser.h"
#include "world/score.h"

namespace recap::corpus {

namespace {

constexpr int kMaxN = 3;  // unigrams (vocabulary), bigrams, trigrams

// Lower-cased words, with an empty token for each clause break (the parser's breaks), so that
// n-grams never join words across punctuation. Bytes outside ASCII belong to words.
std::vector<std::string> tokenize(std::string_view text) {
  constexpr std::string_view kBreaks = ".,;:!?|()\n";
  std::vector<std::string> tokens;
  std::string word;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
      word += ch;
    } else if (c >= 'A' && c <= 'Z') {
      word += static_cast<char>(c - 'A' + 'a');
    } else {
      if (!word.empty()) tokens.push_back(std::exchange(word, {}));
      if (kBreaks.find(ch) != std::string_view::npos) tokens.emplace_back();
    }
  }
  if (!word.empty()) tokens.push_back(std::move(word));
  return tokens;
}

// Calls fn(n, gram) for every n-gram (n = 1..kMaxN) within one clause; words joined by ' '.
void for_each_ngram(const std::vector<std::string>& tokens,
                    const std::function<void(int, const std::string&)>& fn) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string gram;
    for (size_t n = 1; n <= kMaxN && i + n <= tokens.size(); ++n) {
      const std::string& word = tokens[i + n - 1];
      if (word.empty()) break;
      if (n > 1) gram += ' ';
      gram += word;
      fn(static_cast<int>(n), gram);
    }
  }
}

// A text's words, lower-cased and joined by ' ', each clause break as '.': equal for two texts
// that differ only in case, spacing, which mark breaks a clause, and a final full stop.
std::string normalised(std::string_view text) {
  std::string out;
  for (const auto& token : tokenize(text)) {
    if (!out.empty()) out += ' ';
    out += token.empty() ? "." : token;
  }
  while (out.size() >= 2 && out.ends_with(" .")) out.resize(out.size() - 2);  // a final full stop
  return out;
}

// The distinct n-grams of the evaluation prompts, numbered so that each source only needs a
// bitmap of the ones it covers; and the distinct test-suite prompt texts, numbered the same way,
// with the suites each text occurs in.
struct EvalGrams {
  std::array<std::unordered_map<std::string, size_t>, kMaxN> ids;
  std::unordered_map<std::string, size_t> prompts;
  std::vector<std::set<std::string>> prompt_suites;  // by prompt id
  void add(std::string_view text) {
    for_each_ngram(tokenize(text), [&](int n, const std::string& gram) {
      auto& map = ids[n - 1];
      map.try_emplace(gram, map.size());
    });
  }
  void add_prompt(std::string_view text, const std::string& suite) {
    add(text);
    const auto [it, added] = prompts.try_emplace(normalised(text), prompts.size());
    if (added) prompt_suites.emplace_back();
    prompt_suites[it->second].insert(suite);
  }
};

class SourceAccumulator {
 public:
  SourceAccumulator(std::string name, const EvalGrams& eval) : eval_(eval) {
    stats_.name = std::move(name);
    for (int n = 0; n < kMaxN; ++n) covered_[n].assign(eval.ids[n].size(), false);
    verbatim_.assign(eval.prompts.size(), false);
  }

  void add(std::string_view caption, const world::Scene& scene,
           const world::CaptionParser& parser, double margin_px) {
    ++stats_.captions;
    const std::vector<std::string> tokens = tokenize(caption);
    int64_t words = 0;
    for (const auto& t : tokens) {
      if (t.empty()) continue;
      ++words;
      vocabulary_.insert(t);
    }
    words_ += words;
    ++length_histogram_[words];
    for_each_ngram(tokens, [&](int n, const std::string& gram) {
      auto it = eval_.ids[n - 1].find(gram);
      if (it != eval_.ids[n - 1].end()) covered_[n - 1][it->second] = true;
    });
    if (auto it = eval_.prompts.find(normalised(caption)); it != eval_.prompts.end())
      verbatim_[it->second] = true;

    const world::CaptionScore s = world::score_caption(parser.parse(caption), scene, margin_px);
    shape_ += s.mentions_correct_shape();
    binding_ += s.correct_binding();
    count_ += s.correct_count();
    relation_ += s.correct_relation() || s.positions_correct > 0;
    wrong_ += s.wrong_fact;
    precision_sum_ += s.precision();
    recall_sum_ += s.recall();
  }

  void add_missing() { ++stats_.missing; }

  SourceStats finish(int64_t unknown_keys) {
    SourceStats out = stats_;
    out.unknown_keys = unknown_keys;
    const double n = static_cast<double>(out.captions);
    const auto share = [&](double part) { return out.captions ? part / n : 0.0; };
    out.mean_words = share(static_cast<double>(words_));
    out.median_words = median();
    out.vocabulary = static_cast<int64_t>(vocabulary_.size());
    out.shape = share(static_cast<double>(shape_));
    out.binding = share(static_cast<double>(binding_));
    out.count = share(static_cast<double>(count_));
    out.relation_or_position = share(static_cast<double>(relation_));
    out.wrong_fact = share(static_cast<double>(wrong_));
    out.precision = share(precision_sum_);
    out.recall = share(recall_sum_);
    for (int k = 0; k < kMaxN; ++k) {
      const auto& bits = covered_[k];
      out.coverage[k] =
          bits.empty() ? 0.0 : static_cast<double>(std::count(bits.begin(), bits.end(), true)) /
                                   static_cast<double>(bits.size());
    }
    out.prompts_verbatim = std::count(verbatim_.begin(), verbatim_.end(), true);
    for (size_t id = 0; id < verbatim_.size(); ++id)
      for (const auto& suite : eval_.prompt_suites[id])
        out.prompts_verbatim_by_suite[suite] += verbatim_[id] ? 1 : 0;
    return out;
  }

 private:
  double median() const {
    if (stats_.captions == 0) return 0;
    // The lower and upper middle ranks (equal for an odd count), 0-based.
    const int64_t lo = (stats_.captions - 1) / 2, hi = stats_.captions / 2;
    double lo_value = 0, hi_value = 0;
    int64_t seen = 0;
    for (const auto& [words, captions] : length_histogram_) {
      if (seen <= lo && lo < seen + captions) lo_value = static_cast<double>(words);
      if (seen <= hi && hi < seen + captions) hi_value = static_cast<double>(words);
      seen += captions;
    }
    return (lo_value + hi_value) / 2;
  }

  const EvalGrams& eval_;
  SourceStats stats_;
  // Words per caption -> captions: bounded by the longest caption, unlike a list of lengths.
  std::map<int64_t, int64_t> length_histogram_;
  int64_t words_ = 0, shape_ = 0, binding_ = 0, count_ = 0, relation_ = 0, wrong_ = 0;
  double precision_sum_ = 0, recall_sum_ = 0;
  std::unordered_set<std::string> vocabulary_;
  std::array<std::vector<bool>, kMaxN> covered_;
  std::vector<bool> verbatim_;
};

// Calls fn(record, line) for each non-empty line. read_jsonl would do, but field errors must
// name the line too.
void for_each_jsonl_line(const fs::path& path,
                         const std::function<void(const nlohmann::json&, int)>& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded())
      throw Error(fmt::format("{}:{}: invalid JSON line", path.string(), n));
    fn(record, n);
  }
}

const std::string& string_field(const nlohmann::json& record, const char* field,
                                const fs::path& path, int line) {
  auto it = record.is_object() ? record.find(field) : record.end();
  if (it == record.end() || !it->is_string())
    throw Error(fmt::format("{}:{}: expected a string field \"{}\"", path.string(), line, field));
  return it->get_ref<const std::string&>();
}

// key -> caption of one JSONL source. Entries are removed as web samples claim them, so what
// is left at the end are the keys that match no usable web sample.
struct JsonlSource {
  std::string name;
  std::unordered_map<std::string, std::string> captions;
};

JsonlSource read_jsonl_source(const fs::path& path) {
  JsonlSource source{path.stem().string(), {}};
  for_each_jsonl_line(path, [&](const nlohmann::json& record, int line) {
    const std::string& key = string_field(record, "key", path, line);
    if (!source.captions.emplace(key, string_field(record, "caption", path, line)).second)
      throw Error(fmt::format("{}:{}: key {} given twice", path.string(), line, key));
  });
  return source;
}

SplitCounts split_counts(const data::RejectLog& log) {
  return {log.used(), log.rejected(), log.counts(), log.summary()};
}

}  // namespace

const std::string* meta_caption(const nlohmann::json& meta, std::string_view field) {
  if (!meta.is_object() || !meta.contains("captions")) return nullptr;
  const auto& captions = meta["captions"];
  auto it = captions.is_object() ? captions.find(field) : captions.end();
  return it != captions.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

CorpusStats corpus_stats(const fs::path& dir, const std::vector<fs::path>& jsonl_sources,
                         const std::set<std::string>* keys) {
  const Config config = corpus_config(dir);
  const world::WorldConfig world = world_settings(config);
  const data::ReadLimits limits = read_limits(config);
  const CorpusSettings settings = corpus_settings(config);
  const world::CaptionParser parser(world);
  const double margin = world::relation_margin_px(world);

  std::vector<JsonlSource> extra;
  std::set<std::string> names = {"alt", "human-long", "human-short"};
  for (const auto& path : jsonl_sources) {
    extra.push_back(read_jsonl_source(path));
    if (keys)
      std::erase_if(extra.back().captions, [&](const auto& kv) { return !keys->count(kv.first); });
    if (!names.insert(extra.back().name).second)
      throw Error(fmt::format("{}: a caption source named \"{}\" is already given; rename the file",
                              path.string(), extra.back().name));
  }

  CorpusStats stats;
  stats.dir = dir;
  Progress progress("corpus stats", settings.web_samples + settings.eval_samples, "samples");

  // The evaluation language first: the sources are measured against it while streaming.
  EvalGrams eval;
  std::vector<fs::path> prompt_files;
  if (fs::is_directory(dir / "prompts"))
    for (const auto& e : fs::directory_iterator(dir / "prompts"))
      if (e.is_regular_file() && e.path().extension() == ".jsonl") prompt_files.push_back(e.path());
  std::sort(prompt_files.begin(), prompt_files.end());
  for (const auto& path : prompt_files)
    for_each_jsonl_line(path, [&](const nlohmann::json& record, int line) {
      eval.add_prompt(string_field(record, "text", path, line), path.stem().string());
      ++stats.eval_prompts;
    });
  stats.suite_prompts = static_cast<int64_t>(eval.prompts.size());
  for (const auto& suites : eval.prompt_suites)
    for (const auto& suite : suites) ++stats.suite_prompts_by_suite[suite];
  data::RejectLog eval_log;
  for (const auto& shard : list_shards(dir, Split::Eval)) {
    data::ShardReader reader(shard, limits);
    while (auto item = reader.next()) {
      progress.add();
      if (const auto* reject = std::get_if<data::Reject>(&*item)) {
        eval_log.add(*reject);
        continue;
      }
      eval.add(std::get<data::Sample>(*item).caption);
      eval_log.add_used();
      ++stats.eval_prompts;
    }
  }
  for (int n = 0; n < kMaxN; ++n) stats.eval_ngrams[n] = static_cast<int64_t>(eval.ids[n].size());

  std::vector<SourceAccumulator> acc;
  for (const char* name : {"alt", "human-long", "human-short"}) acc.emplace_back(name, eval);
  for (const auto& source : extra) acc.emplace_back(source.name, eval);

  data::RejectLog web_log;
  for (const auto& shard : list_shards(dir, Split::Web)) {
    data::ShardReader reader(shard, limits);
    while (auto item = reader.next()) {
      progress.add();
      if (const auto* reject = std::get_if<data::Reject>(&*item)) {
        if (!keys || keys->count(reject->key)) web_log.add(*reject);
        continue;
      }
      const auto& sample = std::get<data::Sample>(*item);
      if (keys && !keys->count(sample.key)) continue;
      if (!sample.meta.is_object() || !sample.meta.contains("scene")) {
        web_log.add({sample.shard, sample.key, std::string(kBadSceneReason),
                     "KEY.json has no scene"});
        continue;
      }
      world::Scene scene;
      try {
        scene = world::scene_from_json(sample.meta["scene"], world);
      } catch (const Error& e) {
        web_log.add({sample.shard, sample.key, std::string(kBadSceneReason), e.what()});
        continue;
      }
      web_log.add_used();
      acc[0].add(sample.caption, scene, parser, margin);
      for (const auto& [index, field] : {std::pair{1, "human_long"}, std::pair{2, "human_short"}}) {
        if (const std::string* caption = meta_caption(sample.meta, field))
          acc[index].add(*caption, scene, parser, margin);
        else
          acc[index].add_missing();
      }
      for (size_t j = 0; j < extra.size(); ++j) {
        auto& source = acc[3 + j];
        if (auto it = extra[j].captions.find(sample.key); it != extra[j].captions.end()) {
          source.add(it->second, scene, parser, margin);
          extra[j].captions.erase(it);
        } else {
          source.add_missing();
        }
      }
    }
  }
  progress.finish();

  for (size_t i = 0; i < acc.size(); ++i)
    stats.sources.push_back(
        acc[i].finish(i < 3 ? 0 : static_cast<int64_t>(extra[i - 3].captions.size())));
  stats.web = split_counts(web_log);
  stats.eval = split_counts(eval_log);
  return stats;
}

std::string format_stats_table(const CorpusStats& stats) {
  const auto percent = [](double share) { return fmt::format("{:.1f}%", 100 * share); };
  const auto one_decimal = [](double v) { return fmt::format("{:.1f}", v); };
  using Cell = std::function<std::string(const SourceStats&)>;
  std::vector<std::pair<std::string, Cell>> rows = {
      {"captions scored", [](const SourceStats& s) { return std::to_string(s.captions); }},
      {"missing (no caption)", [](const SourceStats& s) { return std::to_string(s.missing); }},
      {"unknown keys", [](const SourceStats& s) { return std::to_string(s.unknown_keys); }},
      {"mean words", [&](const SourceStats& s) { return one_decimal(s.mean_words); }},
      {"median words", [&](const SourceStats& s) { return one_decimal(s.median_words); }},
      {"vocabulary", [](const SourceStats& s) { return std::to_string(s.vocabulary); }},
      {"correct shape", [&](const SourceStats& s) { return percent(s.shape); }},
      {"correct colour binding", [&](const SourceStats& s) { return percent(s.binding); }},
      {"correct count", [&](const SourceStats& s) { return percent(s.count); }},
      {"correct relation/position",
       [&](const SourceStats& s) { return percent(s.relation_or_position); }},
      {"wrong fact", [&](const SourceStats& s) { return percent(s.wrong_fact); }},
      {"group precision", [&](const SourceStats& s) { return percent(s.precision); }},
      {"group recall", [&](const SourceStats& s) { return percent(s.recall); }},
      {"eval word coverage", [&](const SourceStats& s) { return percent(s.coverage[0]); }},
      {"eval bigram coverage", [&](const SourceStats& s) { return percent(s.coverage[1]); }},
      {"eval trigram coverage", [&](const SourceStats& s) { return percent(s.coverage[2]); }},
      {"test prompts verbatim",
       [&](const SourceStats& s) {
         return fmt::format("{}/{}", s.prompts_verbatim, stats.suite_prompts);
       }},
  };
  for (const auto& [suite, distinct] : stats.suite_prompts_by_suite)
    rows.emplace_back("  of them " + suite, [&suite, distinct](const SourceStats& s) {
      const auto it = s.prompts_verbatim_by_suite.find(suite);
      return fmt::format("{}/{}", it == s.prompts_verbatim_by_suite.end() ? 0 : it->second,
                         distinct);
    });

  size_t label_width = 0;
  for (const auto& [label, cell] : rows) label_width = std::max(label_width, label.size());
  std::vector<size_t> widths;
  for (const auto& s : stats.sources) {
    size_t w = s.name.size();
    for (const auto& [label, cell] : rows) w = std::max(w, cell(s).size());
    widths.push_back(w);
  }

  std::string out = fmt::format("{:<{}}", "", label_width);
  for (size_t i = 0; i < stats.sources.size(); ++i)
    out += fmt::format("  {:>{}}", stats.sources[i].name, widths[i]);
  out += "\n";
  for (const auto& [label, cell] : rows) {
    out += fmt::format("{:<{}}", label, label_width);
    for (size_t i = 0; i < stats.sources.size(); ++i)
      out += fmt::format("  {:>{}}", cell(stats.sources[i]), widths[i]);
    out += "\n";
  }
  out += fmt::format("web samples: {}\n", stats.web.summary);
  out += fmt::format("eval samples: {}\n", stats.eval.summary);
  out += fmt::format("evaluation prompts: {} ({} words, {} bigrams, {} trigrams)\n",
                     stats.eval_prompts, stats.eval_ngrams[0], stats.eval_ngrams[1],
                     stats.eval_ngrams[2]);
  return out;
}

nlohmann::json to_json(const CorpusStats& stats) {
  const auto counts = [](const SplitCounts& c) {
    return nlohmann::json{{"used", c.used}, {"rejected", c.rejected}, {"reasons", c.reasons}};
  };
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : stats.sources)
    sources.push_back({{"name", s.name},
                       {"captions", s.captions},
                       {"missing", s.missing},
                       {"unknown_keys", s.unknown_keys},
                       {"mean_words", s.mean_words},
                       {"median_words", s.median_words},
                       {"vocabulary", s.vocabulary},
                       {"shares",
                        {{"correct_shape", s.shape},
                         {"correct_binding", s.binding},
                         {"correct_count", s.count},
                         {"correct_relation_or_position", s.relation_or_position},
                         {"wrong_fact", s.wrong_fact}}},
                       {"precision", s.precision},
                       {"recall", s.recall},
                       {"eval_coverage",
                        {{"words", s.coverage[0]},
                         {"bigrams", s.coverage[1]},
                         {"trigrams", s.coverage[2]}}},
                       {"test_prompts_verbatim", s.prompts_verbatim},
                       {"test_prompts_verbatim_by_suite", s.prompts_verbatim_by_suite}});
  return {{"dir", stats.dir.string()},
          {"web", counts(stats.web)},
          {"eval", counts(stats.eval)},
          {"eval_prompts", stats.eval_prompts},
          {"suite_prompts", stats.suite_prompts},
          {"suite_prompts_by_suite", stats.suite_prompts_by_suite},
          {"eval_ngrams",
           {{"words", stats.eval_ngrams[0]},
            {"bigrams", stats.eval_ngrams[1]},
            {"trigrams", stats.eval_ngrams[2]}}},
          {"sources", sources}};
}

}  // namespace recap::corpus
