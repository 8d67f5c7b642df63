#include "stages/caption_viewer.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image.h"
#include "data/rejects.h"
#include "stages/report_parts.h"

namespace recap::stages {

namespace {

using report::escape_html;

// Inline so the page is one file; cards flow in as many columns as the window holds.
constexpr const char* kViewerStyle = R"(
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f2;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:.6em 1.2em;
z-index:1}
h1{font-size:1.2em;margin:0 0 .3em}
.stats{color:#555;font-size:.9em;margin:0 0 .5em}
.controls{display:flex;flex-wrap:wrap;gap:.5em 1.2em;align-items:center;font-size:.9em}
.controls input[type=search]{width:18em;padding:.25em .4em}
#count{color:#555}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(30em,1fr));gap:.8em;padding:1em}
.card{display:flex;gap:.8em;background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em}
.card[hidden],.cap[hidden]{display:none}
.card img{width:160px;height:160px;object-fit:contain;background:#eee;border-radius:4px;
flex:none}
.caps{min-width:0;font-size:.9em}
.key{font-weight:600;word-break:break-all}
.source{font-weight:normal;color:#777;font-size:.85em;margin-left:.4em}
dl{margin:.3em 0 0}
dt{display:inline-block;font-size:.75em;padding:0 .5em;border-radius:1em;margin-top:.35em;
background:#ddd}
dd{margin:.1em 0 0;overflow-wrap:anywhere}
dd.missing{color:#999;font-style:italic}
.cap-0 dt{background:#e0e0e0}.cap-1 dt{background:#cde4ff}.cap-2 dt{background:#d6f5d0}
.cap-3 dt{background:#ffe3c2}.cap-4 dt{background:#f1d4ff}.cap-5 dt{background:#fff3b0}
mark{background:#ffec70;padding:0}
)";

// Filters and search on the page itself: no network, no libraries. A card is shown when its
// source matches and every search word appears in its key or in one of its shown captions;
// the words found are marked.
constexpr const char* kViewerScript = R"(
(function () {
  const cards = Array.from(document.querySelectorAll('.card'));
  const source = document.getElementById('source');
  const search = document.getElementById('search');
  const count = document.getElementById('count');
  const toggles = Array.from(document.querySelectorAll('input.show'));
  for (const dd of document.querySelectorAll('dd')) dd.dataset.text = dd.textContent;
  function mark(dd, words) {
    const text = dd.dataset.text;
    dd.textContent = '';
    const lower = text.toLowerCase();
    let at = 0;
    while (at < text.length) {
      let next = -1, len = 0;
      for (const w of words) {
        const i = lower.indexOf(w, at);
        if (i >= 0 && (next < 0 || i < next)) { next = i; len = w.length; }
      }
      if (next < 0) { dd.append(text.slice(at)); break; }
      dd.append(text.slice(at, next));
      const m = document.createElement('mark');
      m.textContent = text.slice(next, next + len);
      dd.append(m);
      at = next + len;
    }
  }
  function update() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const hidden = new Set(toggles.filter(t => !t.checked).map(t => t.value));
    let shown = 0;
    for (const card of cards) {
      let text = card.dataset.key.toLowerCase();
      for (const cap of card.querySelectorAll('.cap')) {
        cap.hidden = hidden.has(cap.dataset.name);
        if (!cap.hidden) text += '\n' + cap.querySelector('dd').dataset.text.toLowerCase();
      }
      const ok = (!source.value || card.dataset.source === source.value) &&
                 words.every(w => text.includes(w));
      card.hidden = !ok;
      if (ok) {
        ++shown;
        for (const dd of card.querySelectorAll('dd')) mark(dd, words);
      }
    }
    count.textContent = shown + ' of ' + cards.length + ' images shown';
  }
  source.addEventListener('change', update);
  search.addEventListener('input', update);
  for (const t of toggles) t.addEventListener('change', update);
  update();
})();
)";

std::string viewer_base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k)
      v = v << 8 | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

// The image shrunk to fit a thumb x thumb box (aspect kept), as an embeddable JPEG.
std::string viewer_thumbnail(const data::Image& image, int thumb) {
  const int longest = std::max(image.width, image.height);
  const data::Image small = longest <= thumb
                                ? image
                                : data::resize(image, std::max(1, image.width * thumb / longest),
                                               std::max(1, image.height * thumb / longest));
  return "data:image/jpeg;base64," + viewer_base64(data::encode_jpeg(small, 85));
}

std::string source_label(const fs::path& source) {
  const auto name = source.filename().string();
  return name.empty() ? source.parent_path().filename().string() : name;
}

}  // namespace

ViewerResult write_caption_viewer(const std::vector<fs::path>& sources,
                                  const data::ReadLimits& limits,
                                  const std::vector<NamedCaptions>& captions,
                                  const ViewerOptions& options, const fs::path& out) {
  if (options.thumb < 1 || options.limit < 1)
    throw Error(
        fmt::format("view: the thumbnail size ({}) and the image limit ({}) must be at "
                    "least 1",
                    options.thumb, options.limit));
  // The original caption first, then each named source (a source named like it is shown once).
  std::vector<NamedCaptions> columns = {*builtin_captions("original")};
  for (const auto& c : captions)
    if (c.name != "original") columns.push_back(c);

  ViewerResult result;
  data::RejectLog rejects;
  std::string cards;
  for (const auto& path : sources) {
    auto source = data::open_source(path, limits, data::OnBroken::kReject);
    while (auto item = source->next()) {
      if (auto* reject = std::get_if<data::Reject>(&*item)) {
        rejects.add(*reject);
        continue;
      }
      const auto& sample = std::get<data::Sample>(*item);
      if (result.shown >= options.limit) {
        ++result.not_shown;
        continue;
      }
      auto decoded = data::decode_image(sample.image_bytes);
      if (!decoded.image) {
        rejects.add({sample.shard, sample.key, decoded.reason, decoded.detail});
        continue;
      }
      rejects.add_used();
      std::string caps;
      for (size_t i = 0; i < columns.size(); ++i) {
        const auto text = named_caption(columns[i], "view", sample.key, sample.shard,
                                        sample.caption, sample.meta);
        caps += fmt::format(
            "<div class=\"cap cap-{}\" data-name=\"{}\"><dt>{}</dt>{}</div>\n", i % 6,
            escape_html(columns[i].name), escape_html(columns[i].name),
            text ? "<dd>" + escape_html(*text) + "</dd>" : "<dd class=\"missing\">none</dd>");
      }
      cards += fmt::format(
          "<article class=\"card\" data-source=\"{0}\" data-key=\"{1}\">\n"
          "<img src=\"{2}\" alt=\"{1}\">\n"
          "<div class=\"caps\"><div class=\"key\">{1}<span class=\"source\">{3}</span></div>\n"
          "<dl>\n{4}</dl></div>\n</article>\n",
          escape_html(path.string()), escape_html(sample.key),
          viewer_thumbnail(*decoded.image, options.thumb), escape_html(source_label(path)), caps);
      ++result.shown;
    }
  }
  result.rejects = rejects.summary();

  std::string names;
  for (const auto& path : sources) names += (names.empty() ? "" : ", ") + source_label(path);
  const std::string title = options.title.empty() ? "recap view: " + names : options.title;
  std::string select = "<option value=\"\">all sources</option>\n";
  for (const auto& path : sources)
    select += fmt::format("<option value=\"{}\">{}</option>\n", escape_html(path.string()),
                          escape_html(source_label(path)));
  std::string toggles;
  for (size_t i = 0; i < columns.size(); ++i)
    toggles += fmt::format(
        "<label class=\"cap-{}\"><input type=\"checkbox\" class=\"show\" value=\"{}\" checked> "
        "{}</label>\n",
        i % 6, escape_html(columns[i].name), escape_html(columns[i].name));
  std::string stats = fmt::format("{} images from {} source{}", result.shown, sources.size(),
                                  sources.size() == 1 ? "" : "s");
  if (result.not_shown > 0)
    stats += fmt::format("; {} more not shown (the limit is {})", result.not_shown, options.limit);
  stats += "; " + result.rejects;

  const std::string page = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{0}</title>\n<style>{1}</style>\n</head>\n<body>\n<header>\n<h1>{0}</h1>\n"
      "<p class=\"stats\">{2}</p>\n<div class=\"controls\">\n"
      "<label>Source <select id=\"source\">\n{3}</select></label>\n"
      "<label>Search <input id=\"search\" type=\"search\" "
      "placeholder=\"words in a key or caption\"></label>\n"
      "<span>Captions:</span>\n{4}<span id=\"count\"></span>\n</div>\n</header>\n"
      "<main>\n{5}</main>\n<script>{6}</script>\n</body>\n</html>\n",
      escape_html(title), kViewerStyle, escape_html(stats), select, toggles, cards, kViewerScript);
  write_file_atomic(out, page);
  return result;
}

}  // namespace recap::stages
