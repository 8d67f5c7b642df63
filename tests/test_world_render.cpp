// Embedded world: Cairo renderer determinism and colour placement.
#include <gtest/gtest.h>

#include <cmath>

#include "world/render.h"
#include "world/sampler.h"

namespace recap::world {
namespace {

const uint8_t* pixel(const data::Image& img, int x, int y) {
  return &img.pixels[(size_t(y) * img.width + x) * 3];
}

double distance(const uint8_t* px, Rgb c) {
  const double dr = px[0] - c.r, dg = px[1] - c.g, db = px[2] - c.b;
  return std::sqrt(dr * dr + dg * dg + db * db);
}

TEST(WorldRender, SameSceneSameBytesDifferentSceneDifferentBytes) {
  const WorldConfig cfg;
  for (uint64_t seed : {0ull, 5ull, 99ull}) {
    const data::Image a = render(sample_scene(cfg, seed), cfg);
    const data::Image b = render(sample_scene(cfg, seed), cfg);
    ASSERT_EQ(a.width, cfg.canvas);
    ASSERT_EQ(a.height, cfg.canvas);
    ASSERT_EQ(a.pixels.size(), size_t(cfg.canvas * cfg.canvas * 3));
    EXPECT_EQ(a.pixels, b.pixels);
    EXPECT_NE(a.pixels, render(sample_scene(cfg, seed + 1), cfg).pixels);
  }
}

// The pixel under each object's centre has the group's colour, and a canvas corner that no
// object's enclosing circle reaches has the background colour.
void check_colours(const WorldConfig& cfg, int seeds) {
  int centres = 0, corners = 0;
  for (uint64_t seed = 0; seed < uint64_t(seeds); ++seed) {
    const Scene s = sample_scene(cfg, seed);
    const data::Image img = render(s, cfg);
    const Rgb bg = cfg.background(s.background).rgb;
    for (const auto& g : s.groups) {
      const Rgb colour = cfg.colour(g.colour).rgb;
      for (const auto& o : g.objects) {
        const uint8_t* px = pixel(img, int(o.x), int(o.y));
        EXPECT_LT(distance(px, colour), 40) << "seed " << seed << " " << g.colour << " " << g.shape;
        ++centres;
      }
    }
    for (auto [cx, cy] :
         {std::pair{0, 0}, {s.width - 1, 0}, {0, s.height - 1}, {s.width - 1, s.height - 1}}) {
      bool free = true;
      for (const auto& g : s.groups)
        for (const auto& o : g.objects)
          free = free && std::hypot(o.x - (cx + 0.5), o.y - (cy + 0.5)) > o.size / 2 + 1;
      if (!free) continue;
      EXPECT_EQ(distance(pixel(img, cx, cy), bg), 0) << "seed " << seed;
      ++corners;
    }
  }
  EXPECT_GT(centres, seeds);
  EXPECT_GT(corners, seeds);
}

TEST(WorldRender, ObjectCentresHaveGroupColourCornersHaveBackground) {
  check_colours(WorldConfig{}, 300);
  WorldConfig big;
  big.canvas = 64;
  check_colours(big, 100);
}

// Coverage of a lone white object on gray, per pixel in [0, 1].
std::vector<double> coverage(const std::string& shape, double size, int canvas) {
  const WorldConfig cfg;
  const double c = canvas / 2.0;
  const data::Image img =
      render(Scene{canvas, canvas, "gray", {{shape, "white", {{c, c, size, 0}}}}, {}}, cfg);
  std::vector<double> out;
  for (size_t i = 0; i < img.pixels.size(); i += 3) out.push_back((img.pixels[i] - 128) / 127.0);
  return out;
}

TEST(WorldRender, EveryShapeIsDrawnAndDistinctAtTheMinimumSize) {
  const WorldConfig cfg;
  std::vector<std::vector<double>> small;
  for (const auto& shape : cfg.shapes) {
    double covered = 0;
    for (double v : coverage(shape, 24, 32)) covered += v;
    const double share = covered / (3.14159 * 12 * 12);  // of the enclosing circle
    EXPECT_GT(share, 0.3) << shape;
    EXPECT_LT(share, 0.95) << shape;
    small.push_back(coverage(shape, cfg.min_object_size * cfg.canvas, 16));
  }
  // At 7 px, any two shapes differ by several pixels' worth of coverage (L1), so a detector
  // has something to go on; a regular hexagon (vs circle: 2.4) would fail this.
  for (size_t a = 0; a < small.size(); ++a)
    for (size_t b = a + 1; b < small.size(); ++b) {
      double d = 0;
      for (size_t i = 0; i < small[a].size(); ++i) d += std::abs(small[a][i] - small[b][i]);
      EXPECT_GT(d, 4.5) << cfg.shapes[a] << " vs " << cfg.shapes[b];
    }
}

}  // namespace
}  // namespace recap::world
