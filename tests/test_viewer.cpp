// recap view: the page's structure (one card per readable image, each caption source once
// per card, escaped text, embedded thumbnails, the filter and search controls, nothing fetched
// from the network) and its bad inputs, through the real binary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "data/image.h"
#include "data/shard_writer.h"
#include "photo_folder.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A folder of 5 photos (one caption with markup in it, one broken image) and a sidecar of
// recaptions for 3 of them, as `recap recaption` writes its lines.
struct ViewerData {
  explicit ViewerData(const fs::path& dir) : photos(dir / "photos"), recaps(dir / "recap") {
    test::write_photo_folder(photos, 5, [](int i) {
      return i == 1 ? std::string("<b>bold</b> & \"quoted\"") : fmt::format("photo {}", i);
    });
    write_file_atomic(photos / "p04.png", "not a png");
    fs::create_directories(recaps);
    std::string lines;
    for (int i : {0, 1, 3})
      lines +=
          fmt::format(R"({{"key": "p{:02d}.png", "caption": "recap {}", "kind": "long"}})", i, i) +
          "\n";
    write_file_atomic(recaps / "photos.recap.jsonl", lines);
  }
  fs::path photos, recaps;
};

TEST(View, OneCardPerImageWithEachCaptionSourceEscapedAndEmbedded) {
  test::TempDir dir("view");
  ViewerData data(dir.path());
  const fs::path page = dir / "view.html";
  auto r = test::run_recap("view --images " + data.photos.string() + " --caption-source long=" +
                           data.recaps.string() + " --out " + page.string() + " --thumb 16");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("view: 4 images; used 4, rejected 1 (image_unknown_format 1)"));
  const std::string html = read_file(page);
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">")) << html.substr(0, 80);
  EXPECT_TRUE(html.ends_with("</html>\n"));

  // One card per readable image, in source order, each with both captions.
  EXPECT_EQ(count_of(html, "<article class=\"card\""), 4u);
  EXPECT_EQ(count_of(html, "</article>"), 4u);
  EXPECT_EQ(count_of(html, "data-name=\"original\"><dt>"), 4u);
  EXPECT_EQ(count_of(html, "data-name=\"long\"><dt>"), 4u);
  const std::regex key_re("data-key=\"([^\"]+)\"");
  std::vector<std::string> keys;
  for (std::sregex_iterator it(html.begin(), html.end(), key_re), end; it != end; ++it)
    keys.push_back((*it)[1]);
  EXPECT_EQ(keys, (std::vector<std::string>{"p00.png", "p01.png", "p02.png", "p03.png"}));
  EXPECT_THAT(html, HasSubstr("<dd>recap 3</dd>"));
  EXPECT_EQ(count_of(html, "<dd class=\"missing\">none</dd>"), 1u);  // p02 has no recaption

  // Captions are text, never markup.
  EXPECT_THAT(html, HasSubstr("<dd>&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;</dd>"));
  EXPECT_THAT(html, Not(HasSubstr("<b>bold</b>")));

  // Thumbnails are embedded JPEGs no larger than --thumb; nothing is fetched.
  const std::regex img_re("<img src=\"data:image/jpeg;base64,([A-Za-z0-9+/=]+)\"");
  size_t images = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), img_re), end; it != end; ++it) {
    const std::string b64 = (*it)[1];
    EXPECT_EQ(b64.size() % 4, 0u);
    EXPECT_TRUE(b64.starts_with("/9j/")) << "a JPEG's FF D8 FF";
    ++images;
  }
  EXPECT_EQ(images, 4u);
  EXPECT_THAT(html, Not(HasSubstr("http:")));
  EXPECT_THAT(html, Not(HasSubstr("https:")));
  EXPECT_THAT(html, Not(HasSubstr("src=\"/")));

  // The controls the script drives: a source filter with every source, a search box, a
  // toggle per caption source, the shown count; the stats line counts the broken image.
  EXPECT_THAT(html, HasSubstr("<select id=\"source\">"));
  EXPECT_THAT(html, HasSubstr("<option value=\"" + data.photos.string() + "\">photos</option>"));
  EXPECT_THAT(html, HasSubstr("<input id=\"search\" type=\"search\""));
  EXPECT_EQ(count_of(html, "class=\"show\""), 2u);
  EXPECT_THAT(html, HasSubstr("<span id=\"count\">"));
  EXPECT_THAT(html,
              HasSubstr("4 images from 1 source; used 4, rejected 1 (image_unknown_format 1)"));
  EXPECT_EQ(count_of(html, "<script>"), 1u);
  EXPECT_EQ(count_of(html, "<script"), 1u) << "no external scripts";
}

TEST(View, SeveralSourcesAndTheLimit) {
  test::TempDir dir("view-sources");
  ViewerData data(dir.path());
  const fs::path shard = dir / "web-00000.tar";
  {
    data::ShardWriter writer(shard);
    for (int i = 0; i < 3; ++i) {
      data::Image image{8, 6, 3, std::vector<uint8_t>(8 * 6 * 3, static_cast<uint8_t>(40 * i))};
      writer.add_sample(fmt::format("s{}", i), "png", data::encode_png(image),
                        fmt::format("shard caption {}", i));
    }
    writer.commit();
  }
  const fs::path page = dir / "view.html";
  auto r = test::run_recap("view --images " + data.photos.string() + " " + shard.string() +
                           " --out " + page.string() + " --limit 6 --title 'my <corpus>'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("view: 6 images (1 more not shown: --limit)"));
  const std::string html = read_file(page);
  EXPECT_EQ(count_of(html, "<article class=\"card\""), 6u);
  EXPECT_EQ(count_of(html, "data-source=\"" + shard.string() + "\""), 2u);
  EXPECT_THAT(html, HasSubstr("<option value=\"" + shard.string() + "\">web-00000.tar</option>"));
  EXPECT_THAT(html, HasSubstr("<title>my &lt;corpus&gt;</title>"));
  EXPECT_THAT(html, HasSubstr("<dd>shard caption 1</dd>"));
  EXPECT_EQ(count_of(html, "class=\"show\""), 1u);  // the original captions only
}

TEST(View, BadInputIsRefusedByName) {
  test::TempDir dir("view-bad");
  ViewerData data(dir.path());
  const std::string images = " --images " + data.photos.string();
  const std::string out = " --out " + (dir / "v.html").string();
  auto missing = test::run_recap("view --images " + (dir / "nope").string() + out);
  EXPECT_EQ(missing.status, 2);
  EXPECT_THAT(missing.output, HasSubstr((dir / "nope").string()));
  auto spec = test::run_recap("view" + images + " --caption-source long" + out);
  EXPECT_EQ(spec.status, 2);
  EXPECT_THAT(spec.output, HasSubstr("--caption-source 'long': expected NAME=VALUE"));
  write_file_atomic(data.recaps / "photos.recap.jsonl", "{\"key\": \"p00.png\"}\n");
  auto table =
      test::run_recap("view" + images + " --caption-source long=" + data.recaps.string() + out);
  EXPECT_EQ(table.status, 2);
  EXPECT_THAT(table.output, HasSubstr("photos.recap.jsonl"));
  auto limit = test::run_recap("view" + images + " --limit 0" + out);
  EXPECT_EQ(limit.status, 2);
  EXPECT_THAT(limit.output, HasSubstr("must be at least 1"));
  EXPECT_FALSE(fs::exists(dir / "v.html"));

  auto help = test::run_recap("view --help");
  EXPECT_EQ(help.status, 0);
  for (const char* option : {"--images", "--caption-source", "--out", "--thumb", "--limit"})
    EXPECT_THAT(help.output, HasSubstr(option));
  EXPECT_THAT(help.output, HasSubstr("=192"));  // defaults shown
}

}  // namespace
}  // namespace recap
