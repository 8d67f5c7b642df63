// Caption text -> Facts. Reads the language the world's caption writers and prompt suites
// produce (and recovers their facts exactly), and degrades gracefully on anything else: any
// byte string is accepted, unknown words are ignored, work is linear in the text length.
//
// The grammar, in short: a mention is [count] [filler] [colour] [filler] shape-word ("two red
// stars", "a pair of blue discs"); a relation is "<mention> ... left of / right of / above /
// below / under / beneath / higher than / lower than ... <mention>" within one clause; an
// absolute position ("in the top left", "at the bottom", "in the centre") belongs to the
// previous mention in its clause, else the next one; a background colour counts when
// "background" or "backdrop" is close by. Clauses end at , ; . ! ? and at and/while/but.
// Colour words bind to a shape only when adjacent, so tag lists ("red, star") bind nothing.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "world/facts.h"
#include "world/vocab.h"

namespace recap::world {

struct ParserLexicon;  // word -> meaning, defined in parser.cpp

class CaptionParser {
 public:
  explicit CaptionParser(const WorldConfig& config);  // the vocabulary comes from `config`
  Facts parse(std::string_view text) const;

 private:
  std::shared_ptr<const ParserLexicon> lexicon_;  // shared: copies of a parser are cheap
};

// One-off convenience; build a CaptionParser to parse many captions.
Facts parse_caption(std::string_view text, const WorldConfig& config);

}  // namespace recap::world
