#include "data/shard_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>

#include "core/error.h"
#include "core/sha256.h"
#include "data/folder_files.h"
#include "data/rejects.h"

namespace recap::data {

namespace {

constexpr std::size_t kReadBlock = 1 << 16;  // libarchive read buffer, in bytes

bool usable(int status) { return status == ARCHIVE_OK || status == ARCHIVE_WARN; }

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Empty, absolute, or with a ".." component: a tar must not name files outside its root.
bool is_unsafe_path(std::string_view path) {
  if (path.empty() || path.front() == '/') return true;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = std::min(path.find('/', start), path.size());
    if (path.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}

const char* type_name(mode_t type) {
  switch (type) {
    case AE_IFLNK:
      return "symlink";
    case AE_IFDIR:
      return "directory";
    case AE_IFCHR:
      return "character device";
    case AE_IFBLK:
      return "block device";
    case AE_IFIFO:
      return "fifo";
    case AE_IFSOCK:
      return "socket";
    default:
      return "special file";
  }
}

// WebDataset's rule: the key is the path up to the first '.' of the basename, the extension
// (lower-cased here) everything after it.
std::pair<std::string, std::string> split_name(const std::string& path) {
  std::size_t base = path.rfind('/');
  std::size_t dot = path.find('.', base == std::string::npos ? 0 : base + 1);
  if (dot == std::string::npos) return {path, ""};
  return {path.substr(0, dot), lower(std::string_view(path).substr(dot + 1))};
}

// 64 bits of the key's sha256: a key reappearing is found with 8 bytes per key, whatever its
// length. Two keys of one shard share an id with probability about n^2 / 2^65 (3e-8 for a
// million keys), and then the second is rejected as a duplicate.
uint64_t key_id(std::string_view key) {
  return std::stoull(sha256_hex(key).substr(0, 16), nullptr, 16);
}

}  // namespace

ShardReader::ShardReader(std::filesystem::path path, ReadLimits limits)
    : path_(std::move(path)), shard_(path_.string()), limits_(limits) {
  archive_ = archive_read_new();
  if (!archive_) throw Error(shard_ + ": cannot create tar reader");
  archive_read_support_filter_all(archive_);
  archive_read_support_format_tar(archive_);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path_, ec)) {
    archive_read_free(archive_);
    throw Error(shard_ + ": cannot open shard: no such file");
  }
  // Opening already reads the first block to detect compression and format.
  if (archive_read_open_filename(archive_, shard_.c_str(), kReadBlock) != ARCHIVE_OK) {
    std::string message = archive_error_string(archive_) ? archive_error_string(archive_) : "";
    archive_read_free(archive_);
    throw Error(shard_ + ": not a readable tar (byte offset 0): " + message);
  }
}

ShardReader::~ShardReader() { archive_read_free(archive_); }

void ShardReader::fail(const std::string& what) {
  const char* message = archive_error_string(archive_);
  throw Error(shard_ + ": broken tar at entry " + std::to_string(entry_index_) +
              " (stopped at byte offset " + std::to_string(archive_filter_bytes(archive_, 0)) +
              "): " + what + (message ? std::string(": ") + message : std::string()));
}

void ShardReader::check_shard_size(archive_entry* entry, const std::string& name) {
  // Where the tar stream stands after this header, in decompressed bytes: a small .tar.gz may
  // expand to any size (a decompression bomb), and skipping an entry still decompresses it.
  const uint64_t offset = static_cast<uint64_t>(archive_filter_bytes(archive_, 0));
  const uint64_t size =
      archive_entry_size_is_set(entry) ? static_cast<uint64_t>(archive_entry_size(entry)) : 0;
  if (offset > limits_.max_shard_bytes || size > limits_.max_shard_bytes - offset)
    throw Error(shard_ + ": entry " + std::to_string(entry_index_) + " (" + name + ", " +
                std::to_string(size) + " bytes at byte offset " + std::to_string(offset) +
                ") takes the shard past its limit of " + std::to_string(limits_.max_shard_bytes) +
                " bytes of tar data (data.max_shard_bytes); the rest of the shard is not read");
}

std::optional<SourceItem> ShardReader::next() {
  while (!done_) {
    if (!pending_) {
      archive_entry* entry = nullptr;
      int status = archive_read_next_header(archive_, &entry);
      if (status == ARCHIVE_EOF) {
        done_ = true;
        break;
      }
      // ARCHIVE_WARN still yields a usable entry (e.g. an unknown pax keyword); RETRY (a bad
      // checksum), FAILED and FATAL mean the header itself is damaged.
      if (!usable(status)) fail("cannot read header");
      const char* raw = archive_entry_pathname(entry);
      std::string path = raw ? raw : "";
      // `tar -C dir .` writes ./KEY.png, and "./" for the root directory itself.
      while (path.starts_with("./")) path.erase(0, 2);
      if (path == ".") path.clear();
      pending_.emplace(entry, std::move(path));
      // A new key completes the group before it: hand that sample out before this entry's
      // data is read, so a break there does not take a whole sample down with it.
      if (group_ && group_->key != split_name(pending_->second).first) {
        SourceItem finished = finish(*group_);
        group_.reset();
        return finished;
      }
    }
    auto [entry, path] = *std::exchange(pending_, std::nullopt);
    check_shard_size(entry, path);
    auto [key, ext] = split_name(path);
    if (!group_) {
      group_.emplace();
      group_->key = key;
      if (!seen_keys_.insert(key_id(key)).second) {
        group_->reason = reason::kDuplicateKey;
        group_->detail = "key reappears at entry " + std::to_string(entry_index_);
      }
    }
    add_entry(entry, path, ext);
    ++entry_index_;
  }
  if (group_) {
    SourceItem last = finish(*group_);
    group_.reset();
    return last;
  }
  return std::nullopt;
}

void ShardReader::add_entry(archive_entry* entry, const std::string& name, const std::string& ext) {
  Group& g = *group_;
  mode_t type = archive_entry_filetype(entry);
  int64_t size = archive_entry_size_is_set(entry) ? archive_entry_size(entry) : 0;
  auto poison = [&](std::string_view why, std::string detail) {
    if (g.reason.empty()) g.reason = why, g.detail = std::move(detail);
  };

  // Only these entries are read or checked for duplicates (others are skipped unread), so a
  // sample holds at most one of each however many entries its key has.
  const bool wanted = is_image_extension(ext) || ext == "txt" || ext == "json";

  std::size_t base = name.rfind('/');
  bool root = name.empty() && type == AE_IFDIR;  // reported as a directory, not a bad path
  if (!root && is_unsafe_path(name)) {
    poison(reason::kUnsafePath, "entry path '" + name + "'");
  } else if (!root && name[base == std::string::npos ? 0 : base + 1] == '.') {
    // No key before the first '.', e.g. macOS "._KEY.png" resource forks.
    poison(reason::kUnsafePath, "hidden entry '" + name + "' has no key");
  } else if (archive_entry_hardlink(entry)) {
    poison(reason::kNotRegularFile, name + " is a hard link");
  } else if (type != AE_IFREG) {
    poison(reason::kNotRegularFile, (root ? "./" : name) + " is a " + type_name(type));
  } else if (static_cast<uint64_t>(size) > limits_.max_entry_bytes) {
    poison(reason::kEntryTooLarge, name + ": " + std::to_string(size) + " bytes > limit " +
                                       std::to_string(limits_.max_entry_bytes));
  } else if (ext == "txt" && static_cast<uint64_t>(size) > limits_.caption.max_bytes) {
    poison(reason::kCaptionTooLong, name + ": " + std::to_string(size) + " bytes > limit " +
                                        std::to_string(limits_.caption.max_bytes));
  } else if (wanted && !g.exts.insert(ext).second) {
    poison(reason::kDuplicateKey, "entry " + name + " appears twice");
  } else if (is_image_extension(ext) && !g.image_ext.empty()) {
    poison(reason::kDuplicateKey, "two images: " + g.key + "." + g.image_ext + " and " + name);
  }
  if (!g.reason.empty() || !wanted) {
    // Skipping still walks the data, so truncation is caught here too.
    if (!usable(archive_read_data_skip(archive_))) fail("cannot skip data of " + name);
    return;
  }
  // A caption is read no further than its own limit: check_caption would refuse more anyway.
  const uint64_t limit = ext == "txt" ? limits_.caption.max_bytes : limits_.max_entry_bytes;
  bool too_large = false;
  std::string data = read_data(static_cast<uint64_t>(size), limit, name, &too_large);
  if (too_large) {
    poison(ext == "txt" ? reason::kCaptionTooLong : reason::kEntryTooLarge,
           name + ": more than " + std::to_string(limit) + " bytes");
  } else if (is_image_extension(ext)) {
    g.image_bytes = std::move(data);
    g.image_ext = ext;
  } else if (ext == "txt") {
    g.caption = std::move(data);
  } else {
    g.meta = std::move(data);
  }
}

std::string ShardReader::read_data(uint64_t size_hint, uint64_t limit, const std::string& name,
                                   bool* too_large) {
  std::string data;
  data.reserve(std::min<uint64_t>(size_hint, limit));
  while (true) {
    std::size_t used = data.size();
    data.resize(used + kReadBlock);
    la_ssize_t n = archive_read_data(archive_, data.data() + used, kReadBlock);
    if (n < 0) fail("cannot read data of " + name);
    data.resize(used + static_cast<std::size_t>(n));
    if (n == 0) return data;
    // A sparse entry may hold more than its header said; stop at the limit.
    if (data.size() > limit) {
      *too_large = true;
      if (!usable(archive_read_data_skip(archive_))) fail("cannot skip data of " + name);
      return {};
    }
  }
}

SourceItem ShardReader::finish(Group& g) {
  uint64_t index = sample_index_++;
  auto reject = [&](std::string_view why, std::string detail) -> SourceItem {
    return Reject{shard_, g.key, std::string(why), std::move(detail)};
  };
  if (!g.reason.empty()) return reject(g.reason, g.detail);
  if (g.image_ext.empty()) return reject(reason::kMissingImage, "no .png/.jpg/.jpeg/.webp entry");
  // Another caption field than KEY.txt is a string field of KEY.json (data.caption_field).
  const std::string& field = limits_.caption_field;
  const bool from_json = field != "caption";
  if (!from_json && !g.caption) return reject(reason::kMissingCaption, "no .txt entry");
  nlohmann::json meta;
  if (g.meta) {
    meta = nlohmann::json::parse(*g.meta, nullptr, /*allow_exceptions=*/false);
    if (meta.is_discarded())
      return reject(reason::kMetaInvalidJson, g.key + ".json does not parse");
  }
  if (from_json) {
    auto it = meta.is_object() ? meta.find(field) : meta.end();
    if (it == meta.end() || !it->is_string())
      return reject(reason::kMissingCaption, "no string field \"" + field + "\" in " + g.key +
                                                 ".json (data.caption_field)");
    g.caption = it->get<std::string>();
  }
  if (auto problem = check_caption(*g.caption, limits_.caption))
    return reject(problem->reason, problem->detail);
  return Sample{
      g.key,          shard_, index, std::move(g.image_bytes), g.image_ext, std::move(*g.caption),
      std::move(meta)};
}

}  // namespace recap::data
