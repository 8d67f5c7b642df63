// Scene sampler: recursive region split for the layout, then per-group placement by rejection
// sampling with a jittered-grid fallback (which shrinks objects as far as the minimum size)
// for crowded regions. All geometry is on a 1/4 px lattice drawn with integer draws, so no
// floating-point rounding can differ between machines.
#include "world/sampler.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "core/rng.h"

namespace recap::world {
namespace {

constexpr double kQuantum = 0.25;  // px; every coordinate and size is a multiple of this
constexpr double kGap = 0.5;       // px kept free between the enclosing circles of objects
constexpr int kSceneAttempts = 20;
constexpr int kLayoutAttempts = 20;
constexpr int kTriesPerObject = 40;

struct Rect {
  double x0, y0, x1, y1;
  double w() const { return x1 - x0; }
  double h() const { return y1 - y0; }
  Rect shrunk(double by) const { return {x0 + by, y0 + by, x1 - by, y1 - by}; }
};

int quanta_ceil(double v) { return static_cast<int>(std::ceil(v / kQuantum)); }
int quanta_floor(double v) { return static_cast<int>(std::floor(v / kQuantum)); }

// A lattice point in [lo, hi]; the caller guarantees one exists.
double lattice_between(Rng& rng, double lo, double hi) {
  return rng.range(quanta_ceil(lo), quanta_floor(hi)) * kQuantum;
}

// Splits `r` between `groups` (already in random order) recursively, giving each side a share
// of the area proportional to its objects' `demand`; every pair that ends up on opposite sides
// of a split gets the relation along that split's axis.
void split(const Rect& r, const std::vector<int>& groups, const std::vector<double>& demand,
           Rng& rng, std::vector<Rect>& regions, std::vector<GroupRelation>& relations) {
  if (groups.size() == 1) {
    regions[groups[0]] = r;
    return;
  }
  const int k = static_cast<int>(groups.size());
  const int first = rng.chance(0.5) ? k / 2 : (k + 1) / 2;
  // Cut across the longer side when the region is elongated, so strips stay usable.
  const bool vertical_cut = r.w() > 1.4 * r.h()   ? true
                            : r.h() > 1.4 * r.w() ? false
                                                  : rng.chance(0.5);
  const std::vector<int> a(groups.begin(), groups.begin() + first);
  const std::vector<int> b(groups.begin() + first, groups.end());
  double demand_a = 0, demand_all = 0;
  for (int i : a) demand_a += demand[i];
  for (int i : groups) demand_all += demand[i];
  // Cut near the fair share, jittered so that layouts vary. Integer arithmetic in quanta and
  // per-mille keeps the cut identical on every machine (no contracted multiply-adds).
  const int share = std::clamp(static_cast<int>(1000 * demand_a / demand_all), 200, 800);
  const int jitter = 100 / k;
  const int start = quanta_floor(vertical_cut ? r.x0 : r.y0);
  const int length = quanta_floor(vertical_cut ? r.w() : r.h());
  const int lo = start + (length * (share - jitter) + 999) / 1000;
  const int hi = std::max(lo, start + length * (share + jitter) / 1000);
  const double cut = rng.range(lo, hi) * kQuantum;
  const Relation before = vertical_cut ? Relation::LeftOf : Relation::Above;
  for (int i : a)
    for (int j : b)
      relations.push_back(i < j ? GroupRelation{i, j, before}
                                : GroupRelation{j, i, inverse(before)});
  split(vertical_cut ? Rect{r.x0, r.y0, cut, r.y1} : Rect{r.x0, r.y0, r.x1, cut}, a, demand, rng,
        regions, relations);
  split(vertical_cut ? Rect{cut, r.y0, r.x1, r.y1} : Rect{r.x0, cut, r.x1, r.y1}, b, demand, rng,
        regions, relations);
}

struct Placement {
  double size;
  std::vector<Point> centres;
};

std::optional<Placement> place_by_rejection(int count, double size, const Rect& inner, Rng& rng) {
  const double r = size / 2;
  if (inner.w() < size + kQuantum || inner.h() < size + kQuantum) return std::nullopt;
  Placement p{size, {}};
  const double min_dist2 = (size + kGap) * (size + kGap);
  for (int tries = 0; tries < kTriesPerObject * count && p.centres.size() < size_t(count);
       ++tries) {
    const Point c{lattice_between(rng, inner.x0 + r, inner.x1 - r),
                  lattice_between(rng, inner.y0 + r, inner.y1 - r)};
    const bool clear = std::all_of(p.centres.begin(), p.centres.end(), [&](Point o) {
      return (o.x - c.x) * (o.x - c.x) + (o.y - c.y) * (o.y - c.y) >= min_dist2;
    });
    if (clear) p.centres.push_back(c);
  }
  if (p.centres.size() < size_t(count)) return std::nullopt;
  return p;
}

// Objects in distinct cells of the best-fitting grid, each jittered inside its cell; shrinks
// objects to the largest lattice size that fits, failing below `min_size`. Cells are whole
// quanta so that every step is exact integer arithmetic.
std::optional<Placement> place_on_grid(int count, double size, double min_size, const Rect& inner,
                                       Rng& rng) {
  const int x0 = quanta_ceil(inner.x0), y0 = quanta_ceil(inner.y0);
  const int w = quanta_floor(inner.x1) - x0, h = quanta_floor(inner.y1) - y0;
  const int gap = quanta_ceil(kGap);
  int best_cols = 1, best_fit = -1;  // object size in quanta, leaving one quantum of jitter
  for (int cols = 1; cols <= count; ++cols) {
    const int rows = (count + cols - 1) / cols;
    const int fit = std::min(w / cols, h / rows) - gap - 1;
    if (fit > best_fit) best_fit = fit, best_cols = cols;
  }
  const double fitted = std::min(size, best_fit * kQuantum);
  if (fitted < min_size) return std::nullopt;
  const int rows = (count + best_cols - 1) / best_cols;
  const int cw = w / best_cols, ch = h / rows;
  std::vector<int> cells(best_cols * rows);
  for (size_t i = 0; i < cells.size(); ++i) cells[i] = static_cast<int>(i);
  rng.shuffle(cells);
  Placement p{fitted, {}};
  const double r = fitted / 2;
  for (int i = 0; i < count; ++i) {
    const Rect cell = Rect{(x0 + cells[i] % best_cols * cw) * kQuantum,
                           (y0 + cells[i] / best_cols * ch) * kQuantum,
                           (x0 + (cells[i] % best_cols + 1) * cw) * kQuantum,
                           (y0 + (cells[i] / best_cols + 1) * ch) * kQuantum}
                          .shrunk(kGap / 2);
    p.centres.push_back({lattice_between(rng, cell.x0 + r, cell.x1 - r),
                         lattice_between(rng, cell.y0 + r, cell.y1 - r)});
  }
  return p;
}

struct Draft {
  Group group;  // shape and colour
  int count;
  double size;  // px, before any shrinking to fit
};

// Lays out and places the drafted groups; nullopt when some group does not fit its region.
std::optional<Scene> lay_out(const WorldConfig& cfg, const std::string& background,
                             const std::vector<Draft>& drafts, Rng& rng) {
  const int n = static_cast<int>(drafts.size());
  Scene s{cfg.canvas, cfg.canvas, background, {}, {}};
  std::vector<int> order(n);
  std::vector<double> demand(n);
  for (int i = 0; i < n; ++i) {
    order[i] = i;
    demand[i] = drafts[i].count * (drafts[i].size + kGap) * (drafts[i].size + kGap);
  }
  rng.shuffle(order);
  std::vector<Rect> regions(n);
  split(Rect{0, 0, double(cfg.canvas), double(cfg.canvas)}, order, demand, rng, regions,
        s.relations);
  std::sort(s.relations.begin(), s.relations.end(),
            [](const auto& x, const auto& y) { return std::pair(x.a, x.b) < std::pair(y.a, y.b); });
  const double min_size = quanta_ceil(cfg.min_object_size * cfg.canvas) * kQuantum;
  const int max_rotation = static_cast<int>(cfg.max_rotation_deg);
  for (int i = 0; i < n; ++i) {
    Group g = drafts[i].group;
    const Rect inner = regions[i].shrunk(kGap / 2);
    auto placed = place_by_rejection(drafts[i].count, drafts[i].size, inner, rng);
    if (!placed) placed = place_on_grid(drafts[i].count, drafts[i].size, min_size, inner, rng);
    if (!placed) return std::nullopt;
    for (Point c : placed->centres) {
      // A circle looks the same at every angle; keep its rotation 0 so the JSON says so.
      const int rotation = g.shape == "circle" ? 0 : rng.range(-max_rotation, max_rotation);
      g.objects.push_back({c.x, c.y, placed->size, double(rotation)});
    }
    s.groups.push_back(std::move(g));
  }
  return s;
}

// The object sizes a scene draws from, in quanta: [first, second].
std::pair<int, int> object_size_quanta(const WorldConfig& cfg) {
  const int min_q = quanta_ceil(cfg.min_object_size * cfg.canvas);
  return {min_q, std::max(min_q, quanta_floor(cfg.max_object_size * cfg.canvas))};
}

// Draws the content first and then tries several layouts for it, so that crowded content
// (many groups with high counts) is not under-represented by redrawing it on failure.
std::optional<Scene> try_sample(const WorldConfig& cfg, Rng& rng) {
  const std::string background = rng.pick(cfg.backgrounds).name;
  const int n = rng.range(cfg.min_groups, cfg.max_groups);
  const auto [min_q, max_q] = object_size_quanta(cfg);
  std::vector<Draft> drafts;
  while (static_cast<int>(drafts.size()) < n) {
    Group g{rng.pick(cfg.shapes), rng.pick(cfg.colours).name, {}};
    const bool seen = std::any_of(drafts.begin(), drafts.end(), [&](const Draft& d) {
      return d.group.shape == g.shape && d.group.colour == g.colour;
    });
    if (seen) continue;
    const int count = rng.range(cfg.min_count, cfg.max_count);
    drafts.push_back({std::move(g), count, rng.range(min_q, max_q) * kQuantum});
  }
  for (int attempt = 0; attempt < kLayoutAttempts; ++attempt)
    if (auto scene = lay_out(cfg, background, drafts, rng)) return scene;
  return std::nullopt;
}

// Does the laid-out `scene` (group i drafted from target group i) say what `target` says
// about places: every stated relation guaranteed by the layout, every absolute position held?
bool meets_target_places(const Scene& scene, const Facts& target) {
  for (const auto& r : target.relations)
    if (std::find(scene.relations.begin(), scene.relations.end(), r) == scene.relations.end())
      return false;
  for (size_t i = 0; i < target.groups.size(); ++i)
    if (const auto& stated = target.groups[i].position;
        stated && !position_agrees(*stated, absolute_position(scene.groups[i].centroid(),
                                                              scene.width, scene.height)))
      return false;
  return true;
}

// Unstated parts of the target drawn afresh: colours (never a shape and colour another group
// has), counts, sizes and the background.
std::vector<Draft> draft_target(const WorldConfig& cfg, const Facts& target, Rng& rng) {
  const auto [min_q, max_q] = object_size_quanta(cfg);
  std::vector<Draft> drafts;
  // Is `colour` on group i's shape already drafted before i, or stated by a group after it?
  const auto taken = [&](size_t i, const std::string& colour) {
    for (size_t j = 0; j < target.groups.size(); ++j)
      if (j != i && target.groups[j].shape == target.groups[i].shape &&
          (j < i ? drafts[j].group.colour == colour : target.groups[j].colour == colour))
        return true;
    return false;
  };
  for (size_t i = 0; i < target.groups.size(); ++i) {
    const FactGroup& g = target.groups[i];
    std::string colour;
    if (g.colour) {
      colour = *g.colour;
    } else {
      std::vector<std::string> free;
      for (const auto& c : cfg.colours)
        if (!taken(i, c.name)) free.push_back(c.name);
      if (free.empty())
        throw Error("world: target has more groups of shape " + g.shape + " than colours");
      colour = rng.pick(free);
    }
    const int count = g.count ? *g.count : rng.range(cfg.min_count, cfg.max_count);
    drafts.push_back({Group{g.shape, colour, {}}, count, rng.range(min_q, max_q) * kQuantum});
  }
  return drafts;
}

void check_target(const WorldConfig& cfg, const Facts& target) {
  if (target.groups.empty()) throw Error("world: a target scene needs at least one group");
  if (target.background && !cfg.has_background(*target.background))
    throw Error("world: target background " + *target.background + " is not in the world");
  for (size_t i = 0; i < target.groups.size(); ++i) {
    const FactGroup& g = target.groups[i];
    if (!cfg.has_shape(g.shape)) throw Error("world: target shape " + g.shape + " is not drawn");
    if (g.colour && !cfg.has_colour(*g.colour))
      throw Error("world: target colour " + *g.colour + " is not in the world");
    if (g.count && *g.count < 1)
      throw Error("world: target group " + std::to_string(i) + " has count " +
                  std::to_string(*g.count));
    for (size_t j = 0; j < i; ++j)
      if (g.colour && target.groups[j].shape == g.shape && target.groups[j].colour == g.colour)
        throw Error("world: target groups " + std::to_string(j) + " and " + std::to_string(i) +
                    " are both " + *g.colour + " " + g.shape +
                    "s; a scene holds one group per shape and colour");
  }
  for (const auto& r : target.relations)
    if (r.a < 0 || r.b < 0 || r.a >= static_cast<int>(target.groups.size()) ||
        r.b >= static_cast<int>(target.groups.size()))
      throw Error("world: target relation between groups " + std::to_string(r.a) + " and " +
                  std::to_string(r.b) + ", which it does not have");
}

}  // namespace

Scene scene_for_target(const WorldConfig& config, const Facts& target, uint64_t seed) {
  config.validate();
  check_target(config, target);
  // Layouts are drawn until one guarantees the stated relations and positions: one relation
  // between two groups holds in a quarter of layouts, so this many attempts never run out for
  // a prompt's target; a contradictory target ("a left of b" and "b left of a") always does.
  constexpr int kTargetAttempts = 400;
  Rng rng(derive_seed(seed, 0x7A46E7));
  for (int attempt = 0; attempt < kTargetAttempts; ++attempt) {
    const std::string background =
        target.background ? *target.background : rng.pick(config.backgrounds).name;
    const auto drafts = draft_target(config, target, rng);
    if (auto scene = lay_out(config, background, drafts, rng);
        scene && meets_target_places(*scene, target))
      return *scene;
  }
  throw Error("world: no layout on a " + std::to_string(config.canvas) +
              " px canvas satisfies the target " + to_json(target).dump() +
              " (contradictory relations or positions, or too many objects)");
}

Scene sample_scene(const WorldConfig& config, uint64_t seed) {
  config.validate();
  Rng rng(derive_seed(seed, 0x5CE4E));
  for (int attempt = 0; attempt < kSceneAttempts; ++attempt)
    if (auto scene = try_sample(config, rng)) return *scene;
  throw Error("world: cannot fit " + std::to_string(config.max_groups) + " groups of up to " +
              std::to_string(config.max_count) + " objects of min_object_size " +
              std::to_string(config.min_object_size) + " on a " + std::to_string(config.canvas) +
              " px canvas; lower the counts or sizes");
}

}  // namespace recap::world
