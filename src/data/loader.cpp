#include "data/loader.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/rng.h"

namespace recap::data {

namespace {

// Stream ids for derive_seed, so the source order and the sample shuffle are independent.
constexpr uint64_t kSourceOrderStream = 1;
constexpr uint64_t kShuffleStream = 2;
constexpr uint64_t kPreprocessStream = 3;

std::size_t shuffle_capacity(const LoaderOptions& options) {
  return std::max<std::size_t>(1, options.shuffle_buffer);
}

// FNV-1a over everything that decides the order of the stream and its random preprocessing
// (not the worker count, the batch size or the limits: each input item keeps one position
// whatever they are).
uint64_t stream_fingerprint(const LoaderOptions& options) {
  std::string text = std::to_string(options.seed) + "|" +
                     std::to_string(shuffle_capacity(options)) + "|" +
                     (options.shuffle_sources ? "1" : "0");
  for (const auto& source : options.sources) text += "|" + source.string();
  // A random crop or flip makes other pixels at the same positions. Named only when on, so
  // cursors saved before these options existed (centre crop, no flip) still restore.
  if (options.crop == Crop::kRandom) text += "|crop=random";
  if (options.flip) text += "|flip";
  uint64_t hash = 0xCBF29CE484222325ull;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001B3ull;
  return hash;
}

std::string hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

nlohmann::json Cursor::to_json() const {
  return {{"epoch", epoch}, {"position", position}, {"fingerprint", hex(fingerprint)}};
}

Cursor Cursor::from_json(const nlohmann::json& json) {
  try {
    Cursor cursor;
    cursor.epoch = json.at("epoch").get<uint64_t>();
    cursor.position = json.at("position").get<uint64_t>();
    std::string text = json.at("fingerprint").get<std::string>();
    std::size_t used = 0;
    cursor.fingerprint = std::stoull(text, &used, 16);
    if (used != text.size()) throw Error("fingerprint is not hexadecimal");
    return cursor;
  } catch (const std::exception& e) {
    throw Error("bad data cursor " + json.dump() + ": " + e.what());
  }
}

Loader::Loader(LoaderOptions options, RejectLog* rejects, Cursor start)
    : options_(std::move(options)),
      rejects_(rejects),
      fingerprint_(stream_fingerprint(options_)),
      epoch_(start.epoch),
      next_position_(start.position) {
  if (options_.sources.empty()) throw Error("data loader: no sources given");
  if (options_.batch_size == 0) throw Error("data loader: batch size must be at least 1");
  options_.workers = std::max(1, options_.workers);
  window_ = options_.prefetch
                ? options_.prefetch
                : 2 * options_.batch_size + 4 * static_cast<std::size_t>(options_.workers);
  if (start.fingerprint != 0 && start.fingerprint != fingerprint_)
    throw Error("data cursor " + start.to_json().dump() +
                " was saved for other data options (seed, shuffle, sources, crop or flip differ; now " +
                hex(fingerprint_) + ")");
}

Loader::~Loader() { stop_threads(); }

Cursor Loader::cursor() const { return Cursor{epoch_, next_position_, fingerprint_}; }

void Loader::start_epoch(uint64_t epoch, uint64_t skip) {
  {
    std::lock_guard lock(mutex_);
    jobs_.clear();
    results_.clear();
    emitted_ = 0;
    feeder_done_ = false;
    stop_ = false;
  }
  delivered_in_epoch_ = 0;
  epoch_started_at_ = skip;
  running_ = true;
  feeder_ = std::thread(&Loader::feed, this, epoch, skip);
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back(&Loader::work, this);
}

void Loader::stop_threads() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  feeder_cv_.notify_all();
  worker_cv_.notify_all();
  if (feeder_.joinable()) feeder_.join();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  running_ = false;
}

bool Loader::emit(std::variant<Sample, Result> item, uint64_t skip) {
  std::unique_lock lock(mutex_);
  uint64_t position = emitted_++;
  if (position < skip) {
    // Replaying up to a resume point: samples and rejects there were delivered before. The
    // end of the epoch or an error cannot be skipped, or the consumer would wait forever.
    auto* result = std::get_if<Result>(&item);
    bool skippable = !result || std::holds_alternative<Reject>(*result);
    if (skippable) return !stop_;
    position = skip;
  }
  feeder_cv_.wait(lock, [&] { return stop_ || position < next_position_ + window_; });
  if (stop_) return false;
  if (auto* sample = std::get_if<Sample>(&item)) {
    jobs_.emplace_back(position, std::move(*sample));
    worker_cv_.notify_one();
  } else {
    results_.emplace(position, std::move(std::get<Result>(item)));
    consumer_cv_.notify_one();
  }
  return true;
}

void Loader::feed(uint64_t epoch, uint64_t skip) {
  try {
    std::vector<std::size_t> order(options_.sources.size());
    std::iota(order.begin(), order.end(), 0);
    if (options_.shuffle_sources) {
      Rng rng(derive_seed(derive_seed(options_.seed, kSourceOrderStream), epoch));
      rng.shuffle(order);
    }
    // Reservoir-style buffer as in WebDataset: once full, each new sample replaces a random
    // resident, which is emitted; the rest drain in random order at the end of the epoch.
    Rng rng(derive_seed(derive_seed(options_.seed, kShuffleStream), epoch));
    std::size_t capacity = shuffle_capacity(options_);
    std::vector<Sample> buffer;
    for (std::size_t index : order) {
      auto source = open_source(options_.sources[index], options_.read,
                                options_.strict ? OnBroken::kThrow : OnBroken::kReject);
      while (auto item = source->next()) {
        if (auto* reject = std::get_if<Reject>(&*item)) {
          if (!emit(Result(std::move(*reject)), skip)) return;
          continue;
        }
        Sample& sample = std::get<Sample>(*item);
        if (buffer.size() < capacity) {
          buffer.push_back(std::move(sample));
          continue;
        }
        Sample out = std::exchange(buffer[rng.below(capacity)], std::move(sample));
        if (!emit(std::move(out), skip)) return;
      }
    }
    while (!buffer.empty()) {
      std::swap(buffer[rng.below(buffer.size())], buffer.back());
      Sample out = std::move(buffer.back());
      buffer.pop_back();
      if (!emit(std::move(out), skip)) return;
    }
    emit(Result(EndOfEpoch{}), skip);
  } catch (...) {
    emit(Result(std::current_exception()), skip);
  }
  {
    std::lock_guard lock(mutex_);
    feeder_done_ = true;
  }
  worker_cv_.notify_all();
}

void Loader::work() {
  while (true) {
    std::pair<uint64_t, Sample> job;
    {
      std::unique_lock lock(mutex_);
      worker_cv_.wait(lock, [&] { return stop_ || !jobs_.empty() || feeder_done_; });
      if (stop_ || jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Sample& sample = job.second;
    Result result;
    try {
      DecodeResult decoded = decode_image(sample.image_bytes, options_.decode);
      if (!decoded.image) {
        result = Reject{sample.shard, sample.key, decoded.reason, decoded.detail};
      } else {
        // epoch_ changes only while no worker runs.
        const uint64_t seed = derive_seed(
            derive_seed(derive_seed(options_.seed, kPreprocessStream), epoch_), job.first);
        Image image = options_.image_size > 0
                          ? preprocess(*decoded.image,
                                       {options_.image_size, options_.crop, options_.flip}, seed)
                          : std::move(*decoded.image);
        result =
            DecodedSample{std::move(sample.key), std::move(sample.shard),   sample.index_in_shard,
                          std::move(image),      std::move(sample.caption), std::move(sample.meta)};
      }
    } catch (...) {
      result = std::current_exception();
    }
    {
      std::lock_guard lock(mutex_);
      results_.emplace(job.first, std::move(result));
    }
    consumer_cv_.notify_one();
  }
}

bool Loader::next_batch(std::vector<DecodedSample>& batch) {
  batch.clear();
  while (true) {
    if (!running_) {
      if (options_.epochs != 0 && epoch_ >= options_.epochs) return !batch.empty();
      start_epoch(epoch_, next_position_);
    }
    Result result;
    {
      std::unique_lock lock(mutex_);
      consumer_cv_.wait(lock, [&] { return results_.count(next_position_) > 0; });
      auto node = results_.extract(next_position_);
      result = std::move(node.mapped());
      ++next_position_;
    }
    feeder_cv_.notify_one();

    if (auto* sample = std::get_if<DecodedSample>(&result)) {
      if (rejects_) rejects_->add_used();
      ++delivered_in_epoch_;
      batch.push_back(std::move(*sample));
      if (batch.size() >= options_.batch_size) return true;
    } else if (auto* reject = std::get_if<Reject>(&result)) {
      // Training streams often keep no reject log: a skipped rest of a shard must still show.
      if (reject->reason == reason::kBrokenShard && warned_broken_.insert(reject->shard).second)
        spdlog::warn(
            "data loader: {}; the samples before the break are used, the rest of it "
            "skipped (data.strict = true or --strict stops there instead)",
            reject->detail);
      if (rejects_) rejects_->add(*reject);
    } else if (std::holds_alternative<EndOfEpoch>(result)) {
      stop_threads();
      // An unlimited stream over a corpus without one usable sample would spin forever.
      if (options_.epochs == 0 && epoch_started_at_ == 0 && delivered_in_epoch_ == 0)
        throw Error("data loader: no usable sample in " + std::to_string(options_.sources.size()) +
                    " source(s)" + (rejects_ ? " (" + rejects_->summary() + ")" : std::string()));
      ++epoch_;
      next_position_ = 0;
      if (!batch.empty()) return true;
    } else {
      stop_threads();
      std::rethrow_exception(std::get<std::exception_ptr>(result));
    }
  }
}

}  // namespace recap::data
