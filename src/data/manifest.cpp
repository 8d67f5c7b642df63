#include "data/manifest.h"

#include <algorithm>
#include <array>
#include <utility>

#include "core/error.h"
#include "data/csv.h"
#include "data/folder_files.h"
#include "data/rejects.h"

namespace recap::data {

namespace fs = std::filesystem;

namespace {

// The next line of `in` without its '\n' into `line`; false at the end of the stream. A line
// longer than `limit` bytes is read to its end but not kept (`too_long`): a list without
// newlines must not be held in memory whole.
bool read_line(std::istream& in, std::string& line, uint64_t limit, bool& too_long) {
  line.clear();
  too_long = false;
  bool any = false;
  for (int c = in.get(); c != std::char_traits<char>::eof(); c = in.get()) {
    any = true;
    if (c == '\n') return true;
    if (too_long) continue;
    if (line.size() >= limit) {
      too_long = true;
      std::string().swap(line);
      continue;
    }
    line.push_back(static_cast<char>(c));
  }
  return any;
}

bool blank(std::string_view text) { return text.find_first_not_of(" \t\r") == std::string::npos; }

// What a manifest's first record must name, for messages.
std::string needed_fields(const std::string& caption_field) {
  return "\"file\" or \"key\", and \"" + caption_field + "\"";
}

}  // namespace

ManifestSource::ManifestSource(fs::path manifest, ReadLimits limits, std::string shard)
    : name_(manifest.filename().string()),
      shard_(shard.empty() ? manifest.string() : std::move(shard)),
      limits_(std::move(limits)),
      csv_(lower_extension(manifest) == "csv") {
  in_.open(manifest, std::ios::binary);
  if (!in_) throw Error(manifest.string() + ": cannot open manifest");
  folder_ = fs::canonical(fs::absolute(manifest).parent_path());
  if (!csv_) return;
  CsvRecord header = read_csv_record(in_, limits_.max_entry_bytes);
  next_line_ += header.lines;
  if (header.status != CsvRecord::Status::kFields)
    throw Error(manifest.string() + ": no usable CSV header" +
                (header.problem.empty() ? std::string() : ": " + header.problem));
  columns_ = std::move(header.fields);
  // Spreadsheets save UTF-8 CSV with a byte order mark.
  if (columns_.front().starts_with("\xEF\xBB\xBF")) columns_.front().erase(0, 3);
  auto has = [&](std::string_view column) {
    return std::find(columns_.begin(), columns_.end(), column) != columns_.end();
  };
  std::string listed;
  for (const auto& column : columns_) listed += (listed.empty() ? "" : ", ") + column;
  for (const auto& column : columns_)
    if (std::count(columns_.begin(), columns_.end(), column) > 1)
      throw Error(manifest.string() + ": column '" + column + "' appears twice in the header");
  if ((!has("file") && !has("key")) || !has(limits_.caption_field))
    throw Error(manifest.string() + ": the header (" + listed + ") needs columns " +
                needed_fields(limits_.caption_field) +
                " (choose the caption column with --caption-field or data.caption_field)");
}

std::string ManifestSource::where() const { return name_ + ":" + std::to_string(line_); }

Reject ManifestSource::reject(std::string key, std::string_view why, std::string detail) const {
  return Reject{shard_, std::move(key), std::string(why), std::move(detail)};
}

std::optional<std::variant<nlohmann::json, Reject>> ManifestSource::next_record() {
  if (csv_) {
    while (true) {
      line_ = next_line_;
      CsvRecord record = read_csv_record(in_, limits_.max_entry_bytes);
      next_line_ += record.lines;
      if (record.status == CsvRecord::Status::kEnd) break;
      if (record.status == CsvRecord::Status::kMalformed)
        return reject(where(), reason::kBadCsvRow, record.problem);
      if (record.fields.size() == 1 && blank(record.fields.front())) continue;
      if (record.fields.size() != columns_.size())
        return reject(where(), reason::kBadCsvRow,
                      std::to_string(record.fields.size()) + " fields, the header has " +
                          std::to_string(columns_.size()));
      nlohmann::json fields = nlohmann::json::object();
      for (std::size_t i = 0; i < columns_.size(); ++i)
        fields[columns_[i]] = std::move(record.fields[i]);
      return fields;
    }
  } else {
    std::string line;
    bool too_long = false;
    while (read_line(in_, line, limits_.max_entry_bytes, too_long)) {
      line_ = next_line_++;
      if (too_long)
        return reject(where(), reason::kBadJsonLine,
                      "line longer than " + std::to_string(limits_.max_entry_bytes) +
                          " bytes (data.max_entry_bytes)");
      if (blank(line)) continue;
      nlohmann::json fields = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (fields.is_discarded() || !fields.is_object())
        return reject(where(), reason::kBadJsonLine, "not a JSON object");
      return fields;
    }
  }
  if (in_.bad()) throw Error(shard_ + ": read failed in " + name_ + " at line " +
                             std::to_string(next_line_));
  return std::nullopt;
}

std::optional<SourceItem> ManifestSource::next() {
  auto record = next_record();
  if (!record) return std::nullopt;
  SourceItem item = std::holds_alternative<Reject>(*record)
                        ? SourceItem(std::get<Reject>(std::move(*record)))
                        : to_sample(std::get<nlohmann::json>(std::move(*record)));
  ++sample_index_;
  return item;
}

SourceItem ManifestSource::to_sample(nlohmann::json record) {
  const std::string& caption_field = limits_.caption_field;
  // An empty `file` or `key` (a CSV row that fills only the other column) counts as absent.
  auto text = [&](const char* field) -> const nlohmann::json* {
    auto it = record.find(field);
    return it != record.end() && it->is_string() && !it->get_ref<const std::string&>().empty()
               ? &*it
               : nullptr;
  };
  const nlohmann::json* file_field = text("file");
  const nlohmann::json* key_field = text("key");
  auto caption_it = record.find(caption_field);
  // A CSV row always has its columns; a JSONL line may lack them (bad_json_line as ever).
  if ((!file_field && !key_field) || caption_it == record.end() || !caption_it->is_string())
    return reject(where(), csv_ ? reason::kBadCsvRow : reason::kBadJsonLine,
                  "needs a non-empty \"file\" or \"key\" and a string \"" + caption_field + "\"");
  std::string key = (key_field ? key_field : file_field)->get<std::string>();
  const std::string at = where() + ": ";
  if (!seen_.emplace(key).second) return reject(key, reason::kDuplicateKey, at + "listed twice");

  std::string file;
  if (file_field) {
    file = file_field->get<std::string>();
  } else {
    // img2dataset's "files" layout: KEY.jpg (or .png, .jpeg, .webp) beside the manifest.
    for (const char* ext : {"png", "jpg", "jpeg", "webp"}) {
      std::error_code ec;
      if (fs::exists(folder_ / (key + "." + ext), ec)) {
        file = key + "." + ext;
        break;
      }
    }
    if (file.empty())
      return reject(key, reason::kMissingImage, at + "no " + key + ".png|jpg|jpeg|webp");
  }
  auto read = read_folder_file(folder_, file, limits_.max_entry_bytes);
  if (auto* problem = std::get_if<FileProblem>(&read))
    return reject(key, problem->reason, at + file + ": " + problem->detail);
  std::string caption = caption_it->get<std::string>();
  if (auto problem = check_caption(caption, limits_.caption))
    return reject(key, problem->reason, at + problem->detail);
  return Sample{std::move(key),     shard_,  sample_index_,     std::move(std::get<std::string>(read)),
                lower_extension(file), std::move(caption), std::move(record)};
}

}  // namespace recap::data
