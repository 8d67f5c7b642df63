#include "data/shard_writer.h"

#include <archive.h>
#include <archive_entry.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace recap::data {

namespace {

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

void validate_ext(std::string_view key, std::string_view ext) {
  bool ok = !ext.empty() && ext.size() <= 16 && ext.front() != '.' && ext.back() != '.' &&
            ext.find("..") == std::string_view::npos;
  for (char c : ext) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.');
  if (!ok)
    throw Error("shard key " + std::string(key) + ": bad extension '" + std::string(ext) +
                "' (want 1..16 of [a-z0-9.])");
}

}  // namespace

// libarchive is C: exceptions must not cross it, so a failed write becomes an error string
// that check() turns into recap::Error.
struct ShardWriter::Callbacks {
  static la_ssize_t write(archive*, void* data, const void* buffer, size_t length) {
    auto* self = static_cast<ShardWriter*>(data);
    try {
      self->file_->write(std::string_view(static_cast<const char*>(buffer), length));
      return static_cast<la_ssize_t>(length);
    } catch (const std::exception& e) {
      self->write_error_ = e.what();
      return -1;
    }
  }
};

void validate_key(std::string_view key) {
  bool ok = !key.empty() && key.size() <= kMaxKeyLength;
  for (char c : key) ok = ok && is_key_char(c);
  if (!ok)
    throw Error("bad shard key '" + std::string(key.substr(0, 200)) + "': want 1.." +
                std::to_string(kMaxKeyLength) + " characters of [A-Za-z0-9_-]");
}

ShardWriter::ShardWriter(std::filesystem::path path)
    : path_(std::move(path)), file_(std::make_unique<AtomicFile>(path_)) {
  archive_ = archive_write_new();
  if (!archive_) throw Error(path_.string() + ": cannot create tar writer");
  try {
    // pax_restricted writes plain ustar headers unless a field needs an extension; validated
    // keys never do, so the output is ustar that any tar reads.
    check(archive_write_set_format_pax_restricted(archive_), "set tar format");
    check(archive_write_open(archive_, this, nullptr, &Callbacks::write, nullptr), "open");
  } catch (...) {
    archive_write_free(archive_);
    throw;
  }
}

ShardWriter::~ShardWriter() {
  // Freeing writes the tar trailer into the temporary, which ~AtomicFile then removes.
  if (archive_) archive_write_free(archive_);
}

void ShardWriter::check(int status, std::string_view what) {
  if (status == ARCHIVE_OK || status == ARCHIVE_WARN) return;
  // The file's own error ("PATH: write failed: No space left on device") says it all.
  if (!write_error_.empty()) throw Error(write_error_);
  std::string message =
      archive_error_string(archive_) ? archive_error_string(archive_) : "unknown error";
  throw Error(path_.string() + ": tar " + std::string(what) + " failed: " + message);
}

void ShardWriter::add(std::string_view key, std::string_view ext, std::string_view bytes) {
  if (!file_) throw Error(path_.string() + ": add after commit");
  validate_key(key);
  validate_ext(key, ext);
  if (key != current_key_) {
    if (keys_.count(key))
      throw Error(path_.string() + ": key " + std::string(key) +
                  " reappears after other keys; a key's entries must be consecutive");
    keys_.emplace(key);
    current_key_ = key;
    current_exts_.clear();
  }
  if (!current_exts_.emplace(ext).second)
    throw Error(path_.string() + ": duplicate entry " + std::string(key) + "." + std::string(ext));

  std::string name = std::string(key) + "." + std::string(ext);
  archive_entry* entry = archive_entry_new();
  archive_entry_set_pathname(entry, name.c_str());
  archive_entry_set_filetype(entry, AE_IFREG);
  archive_entry_set_perm(entry, 0644);
  archive_entry_set_size(entry, static_cast<la_int64_t>(bytes.size()));
  archive_entry_set_mtime(entry, 0, 0);
  archive_entry_set_uid(entry, 0);
  archive_entry_set_gid(entry, 0);
  int status = archive_write_header(archive_, entry);
  archive_entry_free(entry);
  check(status, "header for " + name);
  if (!bytes.empty() && archive_write_data(archive_, bytes.data(), bytes.size()) !=
                            static_cast<la_ssize_t>(bytes.size()))
    check(ARCHIVE_FATAL, "data for " + name);
}

void ShardWriter::add_sample(std::string_view key, std::string_view image_ext,
                             std::string_view image_bytes, std::string_view caption,
                             const nlohmann::json& meta) {
  // Serialised first, so a bad meta refuses the whole sample rather than half of it.
  std::string json;
  try {
    if (!meta.is_null()) json = meta.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a string that is not UTF-8
    throw Error(path_.string() + ": metadata of " + std::string(key) + ": " + e.what());
  }
  add(key, image_ext, image_bytes);
  add(key, "txt", caption);
  if (!meta.is_null()) add(key, "json", json);
}

void ShardWriter::commit() {
  if (!file_) throw Error(path_.string() + ": committed twice");
  check(archive_write_close(archive_), "close");
  archive_write_free(archive_);
  archive_ = nullptr;
  file_->commit();
  file_.reset();
}

}  // namespace recap::data
