// README "Your own data", run as written: scripts/own-data-walkthrough.sh (which the README
// quotes whole) on ten real photographs (tests/fixtures/photos, scikit-image's public-domain
// and CC0 samples, their licences in its LICENSES) and nine hand-written captions of seven of
// them, through the real binary: a WebDataset shard of the photos, tokenizer train ->
// captioner train -> recaption (long and short, sidecars + caption files + manifests) ->
// t2i train on the shard with a 50/50 mix -> sample -> view, at the smoke scale.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kSource = RECAP_SOURCE_DIR;
const fs::path kScript = kSource / "scripts" / "own-data-walkthrough.sh";
const fs::path kPhotos = kSource / "tests" / "fixtures" / "photos";

std::vector<nlohmann::json> walkthrough_lines(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(file));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The photos' alt-text files by stem: what every sidecar's org_caption must keep.
std::map<std::string, std::string> alt_texts() {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::directory_iterator(kPhotos))
    if (entry.path().extension() == ".txt")
      out[entry.path().stem().string()] = read_file(entry.path());
  return out;
}

TEST(OwnDataWalkthrough, TheReadmeQuotesTheScriptWhole) {
  const std::string readme = read_file(kSource / "README.md");
  const std::string script = read_file(kScript);
  EXPECT_NE(readme.find("```sh\n" + script + "```\n"), std::string::npos)
      << "README.md must quote scripts/own-data-walkthrough.sh exactly, in a ```sh block";
}

TEST(OwnDataWalkthrough, RealPhotographsEndToEnd) {
  test::TempDir dir("walkthrough");
  // The photos as a user's sidecar folder of their own (the fixture stays untouched).
  const fs::path photos = dir / "photos", out = dir / "mine";
  fs::copy(kPhotos, photos);
  const auto alt = alt_texts();
  ASSERT_EQ(alt.size(), 10u);

  // The script as a user runs it (HUMAN: its default, the fixture), on the copy, at the smoke
  // scale, from the checkout.
  const std::string scale = "--preset smoke --set tokenizer.vocab_size=64";
  auto walk = [&] {
    return test::run_shell("cd '" + kSource.string() +
                           "' && RECAP='" RECAP_BINARY " --threads 2' PHOTOS='" + photos.string() +
                           "' OUT='" + out.string() + "' SCALE='" + scale + "' sh " +
                           kScript.string());
  };
  auto r = walk();
  ASSERT_EQ(r.status, 0) << r.output;

  // Step 1: the tokenizer read the alt-text (11 lines) and the human set (9 captions); the
  // captioner fine-tuned on the 9 captions of 7 photos, copied into its human shard.
  EXPECT_THAT(r.output, HasSubstr("trained on 20 captions (0 skipped)"));
  EXPECT_THAT(r.output, HasSubstr("9 captions of 7 samples"));
  EXPECT_TRUE(fs::exists(out / "captioner" / "human" / "human-00000.tar"));

  // Step 2: every photo recaptioned in the folder and in the shard, long and short, each
  // sidecar line keeping the photo's own alt-text; a caption file per photo; the manifests.
  for (const std::string kind : {"long", "short"}) {
    const fs::path recaps = out / ("recap-" + kind);
    const auto folder = walkthrough_lines(recaps / "photos.recap.jsonl");
    const auto shard = walkthrough_lines(recaps / "photos-00000.recap.jsonl");
    ASSERT_EQ(folder.size(), 10u) << kind;
    ASSERT_EQ(shard.size(), 10u) << kind;
    for (const auto& line : folder) {
      const fs::path key = line["key"].get<std::string>();
      EXPECT_EQ(line["kind"], kind);
      const std::string& text = alt.at(key.stem().string());
      EXPECT_EQ(line["org_caption"], text.substr(0, text.find('\n'))) << key;  // the first line
      EXPECT_FALSE(line["caption"].get<std::string>().empty()) << key;
      EXPECT_EQ(read_file(recaps / "photos" / fs::path(key).replace_extension(".txt")),
                line["caption"].get<std::string>() + "\n");
    }
    // A shard's KEY.txt is its caption byte for byte (WebDataset's rule), line breaks too.
    for (const auto& line : shard)
      EXPECT_EQ(line["org_caption"], alt.at(line["key"].get<std::string>()));
    EXPECT_EQ(walkthrough_lines(out / ("recap-" + kind + ".jsonl")).size(), 20u);
  }

  // Step 3: trained on the shard's 10 photos with the mix, then sampled.
  EXPECT_THAT(r.output, ::testing::ContainsRegex(
                            R"(captions used [0-9]+ \(long [0-9]+, short [0-9]+\), fell back 0)"));
  const auto weights = Safetensors::load(out / "t2i" / "t2i.safetensors");
  EXPECT_EQ(weights.metadata().at("captions"), "long=0.5,short=0.5");
  const auto samples = walkthrough_lines(out / "samples" / "images.jsonl");
  ASSERT_EQ(samples.size(), 2u);
  for (const auto& s : samples)
    EXPECT_TRUE(fs::exists(out / "samples" / s["file"].get<std::string>())) << s.dump();

  // The viewer page: the 20 photos (folder and shard) with three captions each.
  const std::string html = read_file(out / "view.html");
  size_t cards = 0;
  for (size_t at = html.find("<article class=\"card\""); at != std::string::npos;
       at = html.find("<article class=\"card\"", at + 1))
    ++cards;
  EXPECT_EQ(cards, 20u);
  EXPECT_THAT(html, HasSubstr("<dd>NASA portrait of astronaut Eileen Collins</dd>"));

  // The walkthrough runs again over its own output: the finished recaptions are kept.
  r = walk();
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 0, skipped 2"));
}

}  // namespace
}  // namespace recap
