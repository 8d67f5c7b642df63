// Step 3 on the user's own data, below the binary: caption mixes drawn per sample with their
// probabilities (and the experiment's arms as mixes, drawing exactly as before), resumable
// caption draws, and the preprocessing of photographs of any size and aspect.
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/image.h"
#include "data/loader.h"
#include "stages/arm_captions.h"
#include "photo_folder.h"
#include "test_util.h"

namespace recap::stages {
namespace {

using ::testing::HasSubstr;

data::DecodedSample sample_of(const std::string& key, const std::string& caption) {
  return {key, "shard", 0, {}, caption, nullptr};
}

NamedCaptions table_of(const std::string& name, std::map<std::string, std::string> captions) {
  return {name, NamedCaptions::Kind::kTable,
          std::make_shared<const std::map<std::string, std::string>>(std::move(captions))};
}

// A JSONL file of {"key", "caption"} lines, as a recaption sidecar has them.
void write_sidecar(const fs::path& file, const std::string& prefix, int n) {
  std::string text;
  for (int i = 0; i < n; ++i)
    text += nlohmann::json{{"key", fmt::format("k{}", i)},
                           {"caption", fmt::format("{} {}", prefix, i)},
                           {"kind", "long"}}.dump() + "\n";
  write_file_atomic(file, text);
}

// Every source's share over many draws lies within 4.5 standard errors of its probability
// (a false alarm once in ~150,000 runs; a wrong draw rule is off by far more).
TEST(CaptionMix, SharesFollowTheProbabilitiesOverManyDraws) {
  constexpr int kSamples = 20000;
  std::map<std::string, std::string> longs, shorts;
  for (int i = 0; i < kSamples; ++i) {
    longs[fmt::format("k{}", i)] = "long";
    shorts[fmt::format("k{}", i)] = "short";
  }
  for (const auto& shares : std::vector<std::vector<double>>{{0.5, 0.5, 0}, {0.95, 0, 0.05},
                                                            {0.2, 0.3, 0.5}}) {
    CaptionMix mix;
    mix.entries = {{table_of("long", longs), shares[0]},
                   {table_of("short", shorts), shares[1]},
                   {*builtin_captions("original"), shares[2]}};
    ArmCaptions captions("test", mix);
    Rng rng(7);
    std::map<std::string, int> seen;
    for (int i = 0; i < kSamples; ++i)
      ++seen[*captions.choose(sample_of(fmt::format("k{}", i), "original"), rng)];
    const std::string names[] = {"long", "short", "original"};
    for (size_t s = 0; s < 3; ++s) {
      const double p = shares[s];
      const double share = static_cast<double>(seen[names[s]]) / kSamples;
      EXPECT_NEAR(share, p, 4.5 * std::sqrt(p * (1 - p) / kSamples) + 1e-12)
          << names[s] << " in " << mix.describe();
      EXPECT_EQ(captions.counts().by_source.count(names[s]) ? captions.counts().by_source.at(names[s]) : 0,
                seen[names[s]]);
    }
    EXPECT_EQ(captions.counts().used, kSamples);
  }
}

// The arms are mixes that draw exactly as the arms did: one uniform per sample, the long
// recaption exactly when it is below mix_long; a missing kind takes the other, none the
// alt-text (or the sample is skipped).
TEST(CaptionMix, ArmsDrawExactlyAsBeforeAndFallBack) {
  Recaptions recaptions;
  for (int i = 0; i < 1000; ++i) {
    if (i % 10 != 1) recaptions.long_captions[fmt::format("k{}", i)] = "long";
    if (i % 10 != 2) recaptions.short_captions[fmt::format("k{}", i)] = "short";
  }
  ArmCaptions arm("test", ArmCaptionOptions{CaptionSource::RecapMix, false, 0.3}, recaptions);
  EXPECT_EQ(arm.mix().describe(), "recap_long=0.3,recap_short=0.7");
  Rng rng(11), reference(11);
  for (int i = 0; i < 1000; ++i) {
    const bool want_long = reference.chance(0.3);
    const auto key = fmt::format("k{}", i);
    const auto caption = arm.choose(sample_of(key, "alt"), rng);
    ASSERT_TRUE(caption);
    const char* expected = i % 10 == 1 ? "short" : i % 10 == 2 ? "long" : want_long ? "long" : "short";
    EXPECT_EQ(*caption, expected) << key;
  }
  // A key no source has: its alt-text, or skipped.
  EXPECT_EQ(*arm.choose(sample_of("none", "alt"), rng), "alt");
  EXPECT_EQ(arm.counts().fell_back, 1);
  ArmCaptions skip("test", ArmCaptionOptions{CaptionSource::Recap, true, 0.5}, recaptions);
  EXPECT_FALSE(skip.choose(sample_of("none", "alt"), rng));
  EXPECT_EQ(skip.counts().skipped, 1);
  // Human captions come from the world's metadata and are refused without it.
  ArmCaptions human("test", ArmCaptionOptions{CaptionSource::Human, false, 0.5}, {});
  auto world = sample_of("k0", "alt");
  world.meta = {{"captions", {{"human_long", "two red squares"}, {"human_short", "squares"}}}};
  EXPECT_EQ(*human.choose(world, rng), "two red squares");
  EXPECT_THROW(human.choose(sample_of("k0", "alt"), rng), Error);
}

TEST(CaptionMix, CommandLineSpecsAreParsedAndBadOnesRefused) {
  test::TempDir dir("caption-mix");
  write_sidecar(dir / "a.recap.jsonl", "recap", 3);
  fs::create_directories(dir / "sidecars");
  write_sidecar(dir / "sidecars" / "x.recap.jsonl", "folder", 2);
  const auto side = (dir / "a.recap.jsonl").string();

  const auto mix = parse_caption_mix({"recap=" + side, "orig=original"}, "recap=0.95,orig=0.05",
                                     false);
  EXPECT_EQ(mix.describe(), "recap=0.95,orig=0.05");
  EXPECT_EQ(mix.entries[0].source.table->at("k2"), "recap 2");
  EXPECT_EQ(mix.entries[1].source.kind, NamedCaptions::Kind::kOriginal);
  // Without --mix: the declared sources equally; with none, the original caption alone.
  EXPECT_EQ(parse_caption_mix({"a=" + side, "b=" + (dir / "sidecars").string()}, "", true)
                .describe(),
            "a=0.5,b=0.5");
  EXPECT_EQ(parse_caption_mix({}, "", false).describe(), "original=1");
  EXPECT_EQ(parse_caption_mix({}, "alt=0.25,original=0.75", false).describe(),
            "alt=0.25,original=0.75");

  auto refused = [&](std::vector<std::string> sources, const std::string& spec,
                     const std::string& why) {
    try {
      parse_caption_mix(sources, spec, false);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(why)) << spec;
    }
  };
  refused({}, "original=0.5,alt=0.4", "sum to 0.9");
  refused({}, "recap=1", "recap is neither a --caption-source nor built in");
  refused({}, "original=0.5,original=0.5", "given twice");
  refused({}, "original=x", "'x' is not a number in [0, 1]");
  refused({}, "original=1.5", "not a number in [0, 1]");
  refused({"r=" + side}, "original=1", "--caption-source r is not in --mix");
  refused({"r=" + side, "r=original"}, "", "r is declared twice");
  refused({"bad name=" + side}, "", "expected NAME=VALUE");
  refused({"r=" + (dir / "none.jsonl").string()}, "", "no such caption file");
  refused({"r=" + (dir / "m.csv").string()}, "", "CSV is not read");
  write_sidecar(dir / "twice.jsonl", "x", 1);
  write_file_atomic(dir / "twice.jsonl",
                    read_file(dir / "twice.jsonl") + read_file(dir / "twice.jsonl"));
  refused({"r=" + (dir / "twice.jsonl").string()}, "", "a caption of k0 was already given");
  // A manifest's re_caption is the caption it names.
  write_file_atomic(dir / "manifest.jsonl",
                    R"({"key": "k0", "org_caption": "a photo", "re_caption": "two dogs"})" "\n");
  EXPECT_EQ(load_caption_table(dir / "manifest.jsonl").at("k0"), "two dogs");
}

// test::write_photo_folder under `dir`, captioned "photo I".
fs::path write_photos(const test::TempDir& dir, int n) {
  const fs::path folder = dir / "photos";
  test::write_photo_folder(folder, n, [](int i) { return fmt::format("photo {}", i); });
  return folder;
}

// An interrupted stream of batches restored from its cursor draws the same images and the
// same caption sources as the uninterrupted one; a cursor of another mix is refused.
TEST(CaptionMix, ResumedBatchesContinueTheSameDraws) {
  test::TempDir dir("caption-mix-resume");
  const auto photos = write_photos(dir, 12);
  std::map<std::string, std::string> recaps;
  for (int i = 0; i < 12; i += 2) recaps[fmt::format("p{:02d}.png", i)] = fmt::format("recap {}", i);
  CaptionMix mix;
  mix.entries = {{table_of("recap", recaps), 0.6}, {*builtin_captions("original"), 0.4}};
  data::LoaderOptions lo;
  lo.sources = {photos};
  lo.image_size = 8;
  lo.crop = data::Crop::kRandom;
  lo.flip = true;
  lo.batch_size = 5;
  lo.shuffle_buffer = 4;
  lo.epochs = 0;
  lo.seed = 3;
  auto draw = [](ArmBatches& batches, int n) {
    std::vector<std::string> out;
    for (int b = 0; b < n; ++b) {
      const auto batch = batches.next();
      for (size_t i = 0; i < batch.samples.size(); ++i)
        out.push_back(batch.samples[i].key + "|" + batch.captions[i] + "|" +
                      std::string(batch.samples[i].image.pixels.begin(),
                                  batch.samples[i].image.pixels.end()));
    }
    return out;
  };
  ArmBatches whole(lo, ArmCaptions("test", mix), 99);
  const auto expected = draw(whole, 9);  // several epochs: 12 images in batches of 5

  ArmBatches first(lo, ArmCaptions("test", mix), 99);
  auto got = draw(first, 4);
  nlohmann::json cursor;
  first.save(cursor);
  EXPECT_EQ(cursor["mix"], "recap=0.6,original=0.4");
  ArmBatches resumed(lo, ArmCaptions("test", mix), 99);
  resumed.restore(cursor);
  const auto rest = draw(resumed, 5);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(resumed.counts().used, whole.counts().used);
  EXPECT_EQ(resumed.counts().by_source, whole.counts().by_source);
  EXPECT_GT(whole.counts().by_source.at("recap"), 0);
  EXPECT_GT(whole.counts().by_source.at("original"), 0);

  CaptionMix other = mix;
  other.entries[0].p = 0.5;
  other.entries[1].p = 0.5;
  ArmBatches wrong(lo, ArmCaptions("test", other), 99);
  try {
    wrong.restore(cursor);
    ADD_FAILURE() << "a cursor of another mix was restored";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("caption mix \"recap=0.6,original=0.4\""));
  }
}

// columns x: pixel (y, x) = (10 * x + y, x, c) for channel c, so every column is its own.
data::Image columns(int w, int h) {
  data::Image image{w, h, 3, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        image.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] =
            static_cast<uint8_t>(10 * x + y + c);
  return image;
}

TEST(Preprocess, CropsTheLargestSquareAndResizesAnyAspect) {
  // The centre crop of a 10x4 image at its own short side is columns 3..6, untouched.
  const auto wide = columns(10, 4);
  const auto centre = data::preprocess(wide, {4, data::Crop::kCenter, false}, 123);
  ASSERT_EQ(centre.width, 4);
  ASSERT_EQ(centre.height, 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(centre.at(y, x, c), wide.at(y, x + 3, c));
  EXPECT_EQ(centre.pixels, data::fit_square(wide, 4).pixels);
  // Tall images crop rows; every aspect comes out size x size.
  const auto tall = columns(4, 9);
  const auto top = data::square_crop(tall, 0), bottom = data::square_crop(tall, 5);
  EXPECT_EQ(top.at(0, 0, 0), tall.at(0, 0, 0));
  EXPECT_EQ(bottom.at(0, 0, 0), tall.at(5, 0, 0));
  EXPECT_THROW(data::square_crop(tall, 6), Error);
  for (auto [w, h] : std::vector<std::pair<int, int>>{{640, 480}, {17, 300}, {31, 31}, {3, 5}})
    for (auto crop : {data::Crop::kCenter, data::Crop::kRandom}) {
      const auto out = data::preprocess(columns(w, h), {16, crop, true}, 5);
      EXPECT_EQ(out.width, 16);
      EXPECT_EQ(out.height, 16);
      EXPECT_EQ(out.pixels.size(), 16u * 16 * 3);
    }
  // The random crop reaches every offset 0..6 over seeds, each one a crop at its own size;
  // the flip mirrors about half of them.
  std::set<uint8_t> offsets;
  int flipped = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    const auto out = data::preprocess(wide, {4, data::Crop::kRandom, true}, seed);
    const bool mirrored = out.at(0, 0, 0) > out.at(0, 3, 0);
    flipped += mirrored;
    const uint8_t left = mirrored ? out.at(0, 3, 0) : out.at(0, 0, 0);
    offsets.insert(static_cast<uint8_t>(left / 10));
    for (int x = 0; x < 4; ++x)
      EXPECT_EQ(out.at(1, mirrored ? 3 - x : x, 0), wide.at(1, left / 10 + x, 0));
  }
  EXPECT_EQ(offsets, (std::set<uint8_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_GT(flipped, 150);
  EXPECT_LT(flipped, 250);
  // Without flip the centre crop ignores the seed.
  EXPECT_EQ(data::preprocess(wide, {4}, 1).pixels, data::preprocess(wide, {4}, 2).pixels);
}

// The loader's random crops and flips depend on the seed and the stream position only: any
// worker count gives the same pixels, and the cursor says they are on.
TEST(Preprocess, LoaderDrawsDoNotDependOnWorkers) {
  test::TempDir dir("preprocess-loader");
  data::LoaderOptions lo;
  lo.sources = {write_photos(dir, 10)};
  lo.image_size = 12;
  lo.crop = data::Crop::kRandom;
  lo.flip = true;
  lo.batch_size = 10;
  lo.seed = 5;
  auto pixels = [&](int workers) {
    auto options = lo;
    options.workers = workers;
    data::Loader loader(options);
    std::vector<data::DecodedSample> batch;
    std::map<std::string, std::vector<uint8_t>> out;
    while (loader.next_batch(batch))
      for (auto& s : batch) out[s.key] = s.image.pixels;
    return out;
  };
  const auto one = pixels(1);
  EXPECT_EQ(one.size(), 10u);
  EXPECT_EQ(one, pixels(3));
  auto centre = lo;
  centre.crop = data::Crop::kCenter;
  centre.flip = false;
  EXPECT_NE(data::Loader(lo).cursor().fingerprint, data::Loader(centre).cursor().fingerprint);
}

}  // namespace
}  // namespace recap::stages
