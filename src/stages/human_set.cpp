#include "stages/human_set.h"

#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/folder_files.h"
#include "data/shard_writer.h"
#include "data/text_checks.h"

namespace recap::stages {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kExamples = 3;  // lines named per problem in a refusal

// Problems by name, each with how often it occurred and its first few places.
class Problems {
 public:
  void add(const std::string& problem, std::string where) {
    auto& [count, examples] = problems_[problem];
    ++count;
    if (examples.size() < kExamples) examples.push_back(std::move(where));
  }
  // Throws recap::Error naming `file` and every problem, unless there is none.
  void refuse_if_any(const fs::path& file, std::string_view what) const {
    if (problems_.empty()) return;
    std::string counts, details;
    for (const auto& [problem, entry] : problems_) {
      counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", problem, entry.first);
      details += fmt::format("\n  {} ({}): {}{}", problem, entry.first, fmt::join(entry.second, "; "),
                             entry.first > entry.second.size() ? "; ..." : "");
    }
    throw Error(fmt::format("{}: {} refused ({}):{}", file.string(), what, counts, details));
  }

 private:
  std::map<std::string, std::pair<uint64_t, std::vector<std::string>>> problems_;
};

bool blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

std::vector<std::string> HumanSet::texts() const {
  std::vector<std::string> out;
  for (const auto& [key, captions] : by_key)
    for (const auto* text : {&captions.long_caption, &captions.short_caption})
      if (!text->empty()) out.push_back(*text);
  return out;
}

HumanSet read_human_set(const fs::path& path, const data::CaptionLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open the human caption set");
  HumanSet set;
  set.file = path;
  Problems problems;
  std::string line;
  for (uint64_t number = 1; std::getline(in, line); ++number) {
    if (blank(line)) continue;
    const std::string at = fmt::format("line {}", number);
    const auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      problems.add("bad_json_line", at);
      continue;
    }
    auto text = [&](const char* field) -> std::optional<std::string> {
      auto it = json.find(field);
      if (it == json.end() || !it->is_string()) return std::nullopt;
      return it->get<std::string>();
    };
    std::optional<std::string> key = text("key");
    if (!key || key->empty()) key = text("file");
    if (!key || key->empty()) {
      problems.add("missing_key", at + ": needs a string \"key\" or \"file\"");
      continue;
    }
    const std::optional<std::string> caption = text("caption");
    const std::string style = json.contains("style") ? text("style").value_or("?") : "long";
    if (!caption || blank(*caption)) {
      problems.add("empty_caption", at + " (" + *key + ")");
    } else if (auto problem = data::check_caption(*caption, limits)) {
      problems.add(problem->reason, at + " (" + *key + "): " + problem->detail);
    } else if (style != "long" && style != "short") {
      problems.add("bad_style", at + " (" + *key + "): style must be \"short\" or \"long\"");
    } else {
      HumanCaptions& captions = set.by_key[*key];
      std::string& slot = style == "long" ? captions.long_caption : captions.short_caption;
      if (!slot.empty())
        problems.add("duplicate", at + " (" + *key + "): a second " + style + " caption");
      else
        slot = *caption;
    }
    ++set.lines;
  }
  if (in.bad()) throw Error(path.string() + ": read failed");
  problems.refuse_if_any(path, "human caption set");
  if (set.by_key.empty()) throw Error(path.string() + ": no caption in the human caption set");
  return set;
}

uint64_t write_human_shard(const HumanSet& set, const std::vector<fs::path>& sources,
                           const data::ReadLimits& read, const fs::path& shard) {
  fs::create_directories(shard.parent_path());
  data::ShardWriter writer(shard);
  std::set<std::string, std::less<>> found;
  Problems problems;
  for (const auto& path : sources) {
    auto source = data::open_source(path, read, data::OnBroken::kReject);
    while (auto item = source->next()) {
      if (const auto* reject = std::get_if<data::Reject>(&*item)) {
        if (set.by_key.count(reject->key) && found.insert(reject->key).second)
          problems.add("rejected_sample", reject->key + ": " + reject->reason + " in " + path.string());
        continue;
      }
      const auto& sample = std::get<data::Sample>(*item);
      const auto it = set.by_key.find(sample.key);
      if (it == set.by_key.end() || !found.insert(sample.key).second) continue;
      if (!data::is_image_extension(sample.image_ext)) {
        problems.add("unsupported_image", sample.key + ": not .png/.jpg/.jpeg/.webp");
        continue;
      }
      nlohmann::json captions = nlohmann::json::object();
      if (!it->second.long_caption.empty()) captions["human_long"] = it->second.long_caption;
      if (!it->second.short_caption.empty()) captions["human_short"] = it->second.short_caption;
      writer.add_sample(fmt::format("human-{:09d}", writer.keys()), sample.image_ext,
                        sample.image_bytes, it->second.long_caption,
                        {{"key", sample.key}, {"captions", captions}});
    }
  }
  for (const auto& [key, captions] : set.by_key)
    if (!found.count(key)) problems.add("unknown_key", key);
  problems.refuse_if_any(set.file, "human caption set");
  writer.commit();
  return writer.keys();
}

}  // namespace recap::stages
