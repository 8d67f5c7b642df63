#include "data/rejects.h"

#include "core/atomic_file.h"

namespace recap::data {

namespace {

// Broken shards named in summary(): enough to act on, short enough for one log line even when a
// whole folder is damaged (the JSONL log and to_json() name them all).
constexpr std::size_t kBrokenNamedInSummary = 5;

}  // namespace

RejectLog::RejectLog() = default;

RejectLog::RejectLog(const std::filesystem::path& path)
    : file_(std::make_unique<AtomicFile>(path)) {}

RejectLog::~RejectLog() = default;

void RejectLog::add(const Reject& reject) {
  ++rejected_;
  auto it = counts_.find(reject.reason);
  if (it == counts_.end()) it = counts_.emplace(reject.reason, 0).first;
  ++it->second;
  if (reject.reason == reason::kBrokenShard) broken_shards_.emplace(reject.shard, reject.detail);
  if (file_) {
    nlohmann::json line = {{"shard", reject.shard},
                           {"key", reject.key},
                           {"reason", reject.reason},
                           {"detail", reject.detail}};
    // Keys and details can carry arbitrary bytes from a broken input; replace invalid UTF-8
    // rather than fail the whole run on one bad name.
    file_->write(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }
}

void RejectLog::add_used(uint64_t count) { used_ += count; }

uint64_t RejectLog::count(std::string_view reason) const {
  auto it = counts_.find(reason);
  return it == counts_.end() ? 0 : it->second;
}

std::string RejectLog::summary() const {
  std::string out = "used " + std::to_string(used_) + ", rejected " + std::to_string(rejected_);
  if (counts_.empty()) return out;
  out += " (";
  bool first = true;
  for (const auto& [name, n] : counts_) {
    if (!first) out += ", ";
    out += name + " " + std::to_string(n);
    first = false;
  }
  out += ")";
  if (broken_shards_.empty()) return out;
  out += "; broken shards: ";
  std::size_t named = 0;
  for (const auto& [shard, detail] : broken_shards_) {
    if (named == kBrokenNamedInSummary) {
      out += " and " + std::to_string(broken_shards_.size() - named) + " more";
      break;
    }
    out += (named++ ? ", " : "") + shard;
  }
  return out;
}

nlohmann::json RejectLog::to_json() const {
  nlohmann::json reasons = nlohmann::json::object();
  for (const auto& [name, n] : counts_) reasons[name] = n;
  nlohmann::json broken = nlohmann::json::array();
  for (const auto& [shard, detail] : broken_shards_) broken.push_back(shard);
  return {
      {"used", used_}, {"rejected", rejected_}, {"reasons", reasons}, {"broken_shards", broken}};
}

void RejectLog::finish() {
  if (file_) file_->commit();
  file_.reset();
}

}  // namespace recap::data
