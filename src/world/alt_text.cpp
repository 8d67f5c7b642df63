// Alt-text simulator. The filler vocabularies (sites, credits, tags) deliberately avoid every
// shape, colour and background word, so "nothing visual" really says nothing the parser reads.
#include "world/alt_text.h"

#include <algorithm>
#include <cstdio>

#include "world/phrases.h"

namespace recap::world {
namespace {

const std::vector<std::string> kSites = {"Shutterstock", "iStock", "Etsy",       "Pinterest",
                                         "Redbubble",    "Zazzle", "Amazon.com", "Dreamstime"};
const std::vector<std::string> kProducts = {"Stock Illustration", "Royalty-Free Vector Graphic",
                                            "Wall Art Print",     "Poster for kids room",
                                            "Sticker pack",       "Canvas print, framed",
                                            "Greeting card",      "Gift wrapping paper",
                                            "Phone case design",  "T-shirt print"};
const std::vector<std::string> kCredits = {"Photo by Anna Kowalski", "Image courtesy of the artist",
                                           "Illustration by M. Tanaka", "Design: studio nord",
                                           "Credit: J. Smith / Getty Images"};
const std::vector<std::string> kLicences = {"CC BY-SA 4.0", "All rights reserved",
                                            "Free for commercial use", "Public domain",
                                            "Licensed under CC0"};
const std::vector<std::string> kShopTalk = {"Buy now",         "Free shipping on orders over 35",
                                            "Download now",    "Sale",
                                            "New arrivals",    "Click to enlarge",
                                            "Product ID 48213"};
const std::vector<std::string> kTags = {"shapes",   "geometric", "abstract", "art",     "vector",
                                        "design",   "pattern",   "icon",     "graphic", "modern",
                                        "colorful", "simple",    "flat",     "minimal"};
const std::vector<std::string> kFluff = {"abstract geometric art", "digital print",
                                         "kids wall decor",        "vector illustration",
                                         "simple flat design",     "modern pattern"};

std::string context_only(Rng& rng) {
  std::vector<std::string> parts;
  const std::vector<const std::vector<std::string>*> pools = {&kSites, &kProducts, &kCredits,
                                                              &kLicences, &kShopTalk};
  const int n = rng.range(1, 3);
  for (int i = 0; i < n; ++i) parts.push_back(rng.pick(*pools[rng.below(pools.size())]));
  const char* sep = rng.chance(0.5) ? " | " : " - ";
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

std::string filename(Rng& rng) {
  char buf[64];
  switch (rng.below(5)) {
    case 0:
      std::snprintf(buf, sizeof buf, "IMG_%04d.jpg", rng.range(0, 9999));
      break;
    case 1:
      std::snprintf(buf, sizeof buf, "dsc%04d", rng.range(0, 9999));
      break;
    case 2:
      std::snprintf(buf, sizeof buf, "DSC_%04d.JPG", rng.range(0, 9999));
      break;
    case 3:
      std::snprintf(buf, sizeof buf, "image-%d-final.png", rng.range(1, 99));
      break;
    default:
      std::snprintf(buf, sizeof buf, "%08llx.webp",
                    static_cast<unsigned long long>(rng.next() & 0xFFFFFFFFull));
  }
  return buf;
}

const Group& most_salient(const Scene& scene) {
  return *std::max_element(scene.groups.begin(), scene.groups.end(),
                           [](const Group& a, const Group& b) { return a.area() < b.area(); });
}

std::string salient_only(const Scene& scene, Rng& rng) {
  const Group& g = most_salient(scene);
  const CountStyle style = rng.chance(0.2) ? CountStyle::Word : CountStyle::Implicit;
  std::string text = group_phrase(g.shape, g.colour, g.count(), style, rng);
  if (rng.chance(0.5)) text += " " + rng.pick(kTags);
  return rng.chance(0.5) ? capitalized(text) : text;
}

std::string keywords(const Scene& scene, Rng& rng) {
  std::vector<std::string> tags;
  for (const auto& g : scene.groups) {
    if (rng.chance(0.7)) tags.push_back(g.colour);
    if (rng.chance(0.7)) tags.push_back(shape_noun(g.shape, false, nullptr));
  }
  const int extra = rng.range(2, 4);
  for (int i = 0; i < extra; ++i) tags.push_back(rng.pick(kTags));
  rng.shuffle(tags);
  std::string out;
  for (const auto& t : tags) out += (out.empty() ? "" : ", ") + t;
  return out;
}

// A description of every group with counts in which one group's colour or count is wrong.
std::string wrong_attributes(const Scene& scene, const WorldConfig& config, Rng& rng) {
  const int victim = static_cast<int>(rng.below(scene.groups.size()));
  std::vector<std::string> items;
  for (int i = 0; i < static_cast<int>(scene.groups.size()); ++i) {
    const Group& g = scene.groups[i];
    std::string colour = g.colour;
    int count = g.count();
    if (i == victim) {
      std::vector<std::string> wrong;  // colours no group of this shape has: a binding error
      for (const auto& c : config.colours) {
        const bool taken =
            std::any_of(scene.groups.begin(), scene.groups.end(),
                        [&](const Group& o) { return o.shape == g.shape && o.colour == c.name; });
        if (!taken) wrong.push_back(c.name);
      }
      if (!wrong.empty() && rng.chance(0.5)) {
        colour = rng.pick(wrong);
      } else {
        count = count == 1 ? rng.range(2, 4) : count + (rng.chance(0.5) ? 1 : -1);
      }
    }
    items.push_back(group_phrase(g.shape, colour, count, CountStyle::Word, rng));
  }
  rng.shuffle(items);
  return capitalized(joined(items));
}

std::string partial(const Scene& scene, Rng& rng) {
  std::vector<std::string> items;
  for (const auto& g : scene.groups)
    if (items.empty() || rng.chance(0.6))
      items.push_back(group_phrase(g.shape, g.colour, g.count(), CountStyle::Implicit, rng));
  rng.shuffle(items);
  std::string text = joined(items);
  if (rng.chance(0.6)) text += " - " + rng.pick(kFluff);
  return capitalized(text);
}

}  // namespace

std::string_view alt_mode_name(AltMode mode) {
  switch (mode) {
    case AltMode::ContextOnly:
      return "context_only";
    case AltMode::SalientOnly:
      return "salient_only";
    case AltMode::Keywords:
      return "keywords";
    case AltMode::WrongAttributes:
      return "wrong_attributes";
    case AltMode::Filename:
      return "filename";
    case AltMode::Empty:
      return "empty";
    case AltMode::Partial:
      return "partial";
  }
  return "?";
}

AltText alt_text(const Scene& scene, const WorldConfig& config, Rng& rng) {
  const AltTextRates& r = config.alt_rates;
  const std::pair<double, AltMode> modes[] = {
      {r.context_only, AltMode::ContextOnly}, {r.salient_only, AltMode::SalientOnly},
      {r.keywords, AltMode::Keywords},        {r.wrong_attributes, AltMode::WrongAttributes},
      {r.filename, AltMode::Filename},        {r.empty, AltMode::Empty}};
  double u = rng.uniform();
  AltMode mode = AltMode::Partial;
  for (const auto& [p, m] : modes) {
    if (u < p) {
      mode = m;
      break;
    }
    u -= p;
  }
  switch (mode) {
    case AltMode::ContextOnly:
      return {context_only(rng), mode};
    case AltMode::SalientOnly:
      return {salient_only(scene, rng), mode};
    case AltMode::Keywords:
      return {keywords(scene, rng), mode};
    case AltMode::WrongAttributes:
      return {wrong_attributes(scene, config, rng), mode};
    case AltMode::Filename:
      return {filename(rng), mode};
    case AltMode::Empty:
      return {"", mode};
    case AltMode::Partial:
      return {partial(scene, rng), mode};
  }
  return {"", mode};
}

}  // namespace recap::world
