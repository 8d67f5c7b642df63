// Caption parser (grammar in parser.h). Pipeline: tokenize into words and breaks, find
// mentions, merge mentions into groups, then attach relations, positions and background.
#include "world/parser.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <unordered_map>

namespace recap::world {
// The lexicon's types live in a named namespace, not the anonymous one below: ParserLexicon
// (declared in parser.h) holds a Words, and a class with external linkage must not have a
// member of an internal-linkage type (-Wsubobject-linkage, which fires in unity builds).
namespace lexicon {

// Word classes. Conjunctions only end clauses; fillers may sit inside a mention.
enum class Kind {
  Shape,
  Colour,
  Background,
  Count,
  Filler,
  Top,
  Bottom,
  Left,
  Right,
  Center,
  Above,
  Below,
  Comparative,
  BackgroundWord,
  Conjunction
};

struct Entry {
  Kind kind;
  std::string name;  // canonical shape/colour/background, or the comparative word
  int count = 0;     // for Kind::Count
};

using Words = std::unordered_map<std::string, Entry>;

}  // namespace lexicon

namespace {

using lexicon::Entry;
using lexicon::Kind;
using lexicon::Words;

struct Token {
  std::string word;  // empty for a break
  int sentence = 0;
  int clause = 0;  // unique across the text, so equal clause implies equal sentence
};

std::vector<Token> tokenize(std::string_view text, const Words& words) {
  std::vector<Token> tokens;
  int sentence = 0, clause = 0;
  std::string word;
  const auto flush = [&] {
    if (word.empty()) return;
    const auto it = words.find(word);
    if (it != words.end() && it->second.kind == Kind::Conjunction) {
      ++clause;
    } else {
      tokens.push_back({std::move(word), sentence, clause});
    }
    word.clear();
  };
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      word += static_cast<char>(c);
    } else if (c >= 'A' && c <= 'Z') {
      word += static_cast<char>(c - 'A' + 'a');
    } else {
      flush();
      // Non-word characters keep words apart; only punctuation changes the structure.
      if (c == '.' || c == '!' || c == '?' || c == ';' || c == '\n') {
        ++sentence, ++clause;
        tokens.push_back({"", sentence, clause});
      } else if (c == ',' || c == ':' || c == '|' || c == '(' || c == ')') {
        ++clause;
        tokens.push_back({"", sentence, clause});
      }
    }
  }
  flush();
  return tokens;
}

struct Mention {
  size_t token;
  std::string shape;
  std::optional<std::string> colour;
  std::optional<int> count;
  int group = -1;
};

const Entry* lookup(const Words& words, const Token& t) {
  if (t.word.empty()) return nullptr;
  const auto it = words.find(t.word);
  return it == words.end() ? nullptr : &it->second;
}

std::optional<int> number(const std::string& word) {
  if (word.empty() || word.size() > 6 || word[0] < '0' || word[0] > '9') return std::nullopt;
  int n = 0;
  const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), n);
  if (ec != std::errc() || end != word.data() + word.size()) return std::nullopt;
  return n;
}

// The group a mention refers to: same shape and compatible colour, else a new group.
int merge(Facts& facts, const Mention& m) {
  int found = -1;
  for (size_t g = 0; g < facts.groups.size() && found < 0; ++g) {
    const FactGroup& fg = facts.groups[g];
    if (fg.shape == m.shape && (!m.colour || !fg.colour || fg.colour == m.colour))
      found = static_cast<int>(g);
  }
  if (found < 0) {
    facts.groups.push_back({m.shape, m.colour, m.count, std::nullopt});
    return static_cast<int>(facts.groups.size()) - 1;
  }
  FactGroup& fg = facts.groups[found];
  if (!fg.colour) fg.colour = m.colour;
  if (!fg.count) fg.count = m.count;
  return found;
}

}  // namespace

struct ParserLexicon {
  lexicon::Words words;
};

CaptionParser::CaptionParser(const WorldConfig& config) {
  auto lexicon = std::make_shared<ParserLexicon>();
  const auto add = [&](const std::string& w, Kind k, const std::string& name = "", int n = 0) {
    lexicon->words.emplace(w, Entry{k, name, n});
  };
  for (const auto& s : known_shapes()) {
    if (!config.has_shape(s.name)) continue;
    for (const auto& w : s.singular) add(w, Kind::Shape, s.name);
    for (const auto& w : s.plural) add(w, Kind::Shape, s.name);
  }
  for (const auto& c : config.colours) add(c.name, Kind::Colour, c.name);
  for (const auto& c : config.backgrounds) add(c.name, Kind::Background, c.name);
  if (config.has_background("gray")) add("grey", Kind::Background, "gray");
  const std::vector<std::pair<const char*, int>> counts = {
      {"a", 1},    {"an", 1},     {"one", 1},   {"single", 1}, {"lone", 1}, {"two", 2},
      {"pair", 2}, {"couple", 2}, {"three", 3}, {"trio", 3},   {"four", 4}, {"five", 5},
      {"six", 6},  {"seven", 7},  {"eight", 8}, {"nine", 9},   {"ten", 10}};
  for (const auto& [w, n] : counts) add(w, Kind::Count, "", n);
  for (const char* w :
       {"of", "small", "little", "tiny", "big", "large", "identical", "matching", "solid", "plain"})
    add(w, Kind::Filler);
  for (const char* w : {"top", "upper"}) add(w, Kind::Top);
  add("bottom", Kind::Bottom);
  add("lower", Kind::Comparative, "lower");
  add("higher", Kind::Comparative, "higher");
  add("left", Kind::Left);
  add("right", Kind::Right);
  for (const char* w : {"centre", "center", "middle", "central"}) add(w, Kind::Center);
  add("above", Kind::Above);
  for (const char* w : {"below", "beneath", "under", "underneath"}) add(w, Kind::Below);
  for (const char* w : {"background", "backdrop", "backgrounds"}) add(w, Kind::BackgroundWord);
  for (const char* w : {"and", "while", "whereas", "but", "plus"}) add(w, Kind::Conjunction);
  lexicon_ = std::move(lexicon);
}

Facts CaptionParser::parse(std::string_view text) const {
  const Words& words = lexicon_->words;
  const std::vector<Token> tokens = tokenize(text, words);
  const auto entry = [&](size_t i) {
    return i < tokens.size() ? lookup(words, tokens[i]) : nullptr;
  };
  const auto is_word = [&](size_t i, const char* w) {
    return i < tokens.size() && tokens[i].word == w;
  };

  // Mentions: a shape word and what precedes it.
  std::vector<Mention> mentions;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto* e = entry(i);
    if (!e || e->kind != Kind::Shape) continue;
    Mention m{i, e->name, std::nullopt, std::nullopt};
    size_t j = i;  // tokens [j, i) belong to the mention
    const auto before = [&](Kind k) {
      const auto* p = j > 0 && tokens[j - 1].clause == tokens[i].clause ? entry(j - 1) : nullptr;
      return p && p->kind == k ? p : nullptr;
    };
    while (before(Kind::Filler)) --j;
    if (const auto* c = before(Kind::Colour)) m.colour = c->name, --j;
    while (before(Kind::Filler)) --j;
    if (const auto* c = before(Kind::Count)) {
      m.count = c->count;
    } else if (j > 0 && tokens[j - 1].clause == tokens[i].clause) {
      m.count = number(tokens[j - 1].word);
    }
    mentions.push_back(std::move(m));
  }
  Facts facts;
  for (auto& m : mentions) m.group = merge(facts, m);

  // Mentions are in token order, so neighbours are found by binary search.
  const auto first_after = [&](size_t i) {
    return std::upper_bound(mentions.begin(), mentions.end(), i,
                            [](size_t t, const Mention& m) { return t < m.token; });
  };
  const auto previous_in_clause = [&](size_t i) -> const Mention* {
    auto it = std::lower_bound(mentions.begin(), mentions.end(), i,
                               [](const Mention& m, size_t t) { return m.token < t; });
    if (it == mentions.begin()) return nullptr;
    --it;
    return tokens[it->token].clause == tokens[i].clause ? &*it : nullptr;
  };
  const auto next_in = [&](size_t i, bool same_clause) -> const Mention* {
    const auto it = first_after(i);
    if (it == mentions.end()) return nullptr;
    const Token &a = tokens[it->token], &b = tokens[i];
    return (same_clause ? a.clause == b.clause : a.sentence == b.sentence) ? &*it : nullptr;
  };

  // The absolute position being read: consecutive direction words.
  struct Run {
    size_t start;
    AbsPosition pos;
    bool centre = false;
  };
  std::optional<Run> run;
  const auto finish_run = [&] {
    if (!run) return;
    // "centre" alone means both axes; "top centre" and "centre left" fill in the other one.
    if (run->centre && !run->pos.h) run->pos.h = HPos::Center;
    if (run->centre && !run->pos.v) run->pos.v = VPos::Middle;
    const Mention* owner = previous_in_clause(run->start);
    if (!owner) owner = next_in(run->start, true);
    if (!owner) owner = next_in(run->start, false);
    if (owner && !facts.groups[owner->group].position)
      facts.groups[owner->group].position = run->pos;
    run.reset();
  };
  const auto extend_run = [&](size_t i, Kind k) {
    if (run && tokens[run->start].clause != tokens[i].clause) finish_run();
    if (!run) run = Run{i, {}};
    if (k == Kind::Top) run->pos.v = VPos::Top;
    if (k == Kind::Bottom) run->pos.v = VPos::Bottom;
    if (k == Kind::Left) run->pos.h = HPos::Left;
    if (k == Kind::Right) run->pos.h = HPos::Right;
    if (k == Kind::Center) run->centre = true;
  };

  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto* e = entry(i);
    std::optional<Relation> relation;
    size_t last = i;  // last token of a relation phrase
    if (e && (e->kind == Kind::Left || e->kind == Kind::Right)) {
      if (is_word(i + 1, "of"))
        last = i + 1;
      else if ((is_word(i + 1, "side") || is_word(i + 1, "hand")) && is_word(i + 2, "of"))
        last = i + 2;
      if (last != i) relation = e->kind == Kind::Left ? Relation::LeftOf : Relation::RightOf;
    } else if (e && e->kind == Kind::Above) {
      relation = Relation::Above;
    } else if (e && e->kind == Kind::Below) {
      relation = Relation::Below;
    } else if (e && e->kind == Kind::Comparative && is_word(i + 1, "than")) {
      relation = e->name == "higher" ? Relation::Above : Relation::Below;
      last = i + 1;
    }
    if (relation) {
      finish_run();
      const Mention* subject = previous_in_clause(i);
      const Mention* object = next_in(last, true);
      if (subject && object) add_relation(facts, {subject->group, object->group, *relation});
      i = last;
      continue;
    }
    const bool direction =
        e && (e->kind == Kind::Top || e->kind == Kind::Bottom || e->kind == Kind::Left ||
              e->kind == Kind::Right || e->kind == Kind::Center ||
              (e->kind == Kind::Comparative && e->name == "lower"));
    if (direction) {
      extend_run(i, e->kind == Kind::Comparative ? Kind::Bottom : e->kind);
    } else {
      finish_run();
    }
    if (e && e->kind == Kind::Background && !facts.background) {
      for (size_t j = i > 4 ? i - 4 : 0; j < tokens.size() && j <= i + 4; ++j) {
        const auto* near = entry(j);
        if (near && near->kind == Kind::BackgroundWord && tokens[j].sentence == tokens[i].sentence)
          facts.background = e->name;
      }
    }
  }
  finish_run();
  return facts;
}

Facts parse_caption(std::string_view text, const WorldConfig& config) {
  return CaptionParser(config).parse(text);
}

}  // namespace recap::world
