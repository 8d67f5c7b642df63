// The training data stream: tar shards and/or image folders, decoded and resized by worker
// threads, shuffled, and batched. Deterministic for a seed whatever the worker count and
// thread timing, resumable from a saved Cursor, and bounded in memory (shuffle buffer plus
// a fixed window of samples in flight), independent of corpus size.
//
// Per epoch e, the stream is: sources in an order shuffled with (seed, e); their samples
// through a shuffle buffer driven by recap::Rng(seed, e); read rejects placed where they
// are met. A source that breaks mid-way (a truncated tar) gives its samples before the break
// and then one broken_shard reject, and the stream goes on; with `strict` the break stops the
// stream instead. Each item of that stream has a position; workers decode samples out of order
// and the consumer re-sequences them by position, so the output never depends on timing.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "data/rejects.h"
#include "data/source.h"

namespace recap::data {

struct LoaderOptions {
  std::vector<std::filesystem::path> sources;  // tar shards and/or image folders
  int image_size = 64;  // output side in pixels (crop to a square + resize); <= 0 keeps size
  // Which square is cropped and whether images are mirrored (data/image.h: preprocess). The
  // draws of sample p of epoch e are seeded derive_seed(derive_seed(stream, e), p) from the
  // loader seed, so they do not depend on worker timing and a resumed stream repeats them.
  Crop crop = Crop::kCenter;
  bool flip = false;
  int workers = 2;      // decode threads, at least 1
  std::size_t shuffle_buffer = 1000;  // samples held for shuffling; 0 or 1 keeps input order
  bool shuffle_sources = true;        // reshuffle the source order every epoch
  std::size_t batch_size = 32;
  std::size_t prefetch = 0;  // stream items in flight; 0 picks 2 * batch_size + 4 * workers
  uint64_t seed = 0;
  uint64_t epochs = 1;  // epochs to stream in total; 0 = without end
  // A broken source throws from next_batch (after the samples before the break) instead of
  // becoming a broken_shard reject. Not part of the stream's fingerprint: the positions
  // before a break are the same either way.
  bool strict = false;
  ReadLimits read;
  DecodeLimits decode;
};

struct DecodedSample {
  std::string key;
  std::string shard;
  uint64_t index_in_shard = 0;
  Image image;  // RGB, image_size x image_size
  std::string caption;
  nlohmann::json meta;
};

// Where a stream stands: the next item is `position` (0-based, counting samples and rejects)
// of epoch `epoch`'s stream. `fingerprint` ties it to the options that define the stream
// (seed, shuffle settings, sources, crop and flip); restoring it under other options is an
// error.
struct Cursor {
  uint64_t epoch = 0;
  uint64_t position = 0;
  uint64_t fingerprint = 0;  // 0 = not checked (a fresh start)

  nlohmann::json to_json() const;
  // Throws recap::Error for a malformed cursor.
  static Cursor from_json(const nlohmann::json& json);
};

class Loader {
 public:
  // Resuming from `start` replays the epoch's stream up to its position without decoding
  // (reading costs I/O only) and rejects met there are not logged again. `rejects`, when
  // given, receives every reject and counts every sample used, in stream order.
  explicit Loader(LoaderOptions options, RejectLog* rejects = nullptr, Cursor start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Fills `batch` (cleared first) with up to batch_size samples. A batch never spans two
  // epochs, so an epoch's last batch may be short. False once all epochs are streamed.
  // With options.strict, throws recap::Error for a broken source, after the samples before the
  // break; otherwise logs a warning naming it, once per source.
  bool next_batch(std::vector<DecodedSample>& batch);

  // Where the next batch starts; save it with the model's checkpoint.
  Cursor cursor() const;

 private:
  struct EndOfEpoch {};
  using Result = std::variant<DecodedSample, Reject, EndOfEpoch, std::exception_ptr>;

  void start_epoch(uint64_t epoch, uint64_t skip);
  void stop_threads();
  void feed(uint64_t epoch, uint64_t skip);
  void work();
  // Hands one stream item on (to the workers if it is a sample); false when stopping.
  bool emit(std::variant<Sample, Result> item, uint64_t skip);

  LoaderOptions options_;
  RejectLog* rejects_;
  uint64_t fingerprint_;
  std::size_t window_;  // stream items in flight at most

  uint64_t epoch_ = 0;
  uint64_t next_position_ = 0;       // next item the consumer takes
  bool running_ = false;             // threads are streaming epoch_
  uint64_t epoch_started_at_ = 0;    // position this run's epoch began at (non-zero on resume)
  uint64_t delivered_in_epoch_ = 0;  // samples handed out since

  std::set<std::string> warned_broken_;  // broken sources already warned about

  mutable std::mutex mutex_;
  std::condition_variable feeder_cv_;    // room in the window
  std::condition_variable worker_cv_;    // a job, or the end
  std::condition_variable consumer_cv_;  // a result
  std::deque<std::pair<uint64_t, Sample>> jobs_;
  std::map<uint64_t, Result> results_;
  uint64_t emitted_ = 0;  // stream items the feeder has produced this epoch
  bool feeder_done_ = false;
  bool stop_ = false;
  std::thread feeder_;
  std::vector<std::thread> workers_;
};

}  // namespace recap::data
