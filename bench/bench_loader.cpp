// Loader throughput: images decoded, resized and batched per second, against a plain
// single-threaded read+decode loop over the same shards (the reference in the same run).
//   ./build/bench/recap_bench --benchmark_filter='Loader|DecodeLoop'
#include <benchmark/benchmark.h>

#include <fmt/format.h>

#include "core/error.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"

namespace recap::data {
namespace {

constexpr int kShards = 4;
constexpr int kPerShard = 500;
constexpr int kSourceSize = 96;  // stored images are resized to 64 by the loader

// A corpus of PNG shards made once per process in a temp folder, removed at exit.
struct Corpus {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("recap-bench-{}", ::getpid());
  std::vector<std::filesystem::path> shards;
  ~Corpus() { std::filesystem::remove_all(dir); }
};

const std::vector<std::filesystem::path>& corpus() {
  static Corpus c;
  if (!c.shards.empty()) return c.shards;
  std::filesystem::create_directories(c.dir);
  for (int s = 0; s < kShards; ++s) {
    auto path = c.dir / fmt::format("shard-{:05d}.tar", s);
    ShardWriter w(path);
    for (int i = 0; i < kPerShard; ++i) {
      Image img{kSourceSize, kSourceSize, 3, {}};
      img.pixels.resize(kSourceSize * kSourceSize * 3);
      for (size_t p = 0; p < img.pixels.size(); ++p)
        img.pixels[p] = static_cast<uint8_t>((p * 7 + i * 13 + s) % 251 < 128 ? 40 : 200);
      w.add_sample(fmt::format("s{}_{}", s, i), "png", encode_png(img), "a caption");
    }
    w.commit();
    c.shards.push_back(path);
  }
  return c.shards;
}

void BM_ReferenceDecodeLoop(benchmark::State& state) {
  corpus();  // made once, outside the timed loop
  int64_t images = 0;
  for (auto _ : state) {
    for (const auto& shard : corpus()) {
      ShardReader reader(shard);
      while (auto item = reader.next()) {
        auto& sample = std::get<Sample>(*item);
        auto decoded = decode_image(sample.image_bytes);
        benchmark::DoNotOptimize(fit_square(*decoded.image, 64));
        ++images;
      }
    }
  }
  state.SetItemsProcessed(images);
}
BENCHMARK(BM_ReferenceDecodeLoop)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Loader(benchmark::State& state) {
  corpus();
  int64_t images = 0;
  for (auto _ : state) {
    LoaderOptions opt;
    opt.sources = corpus();
    opt.image_size = 64;
    opt.workers = static_cast<int>(state.range(0));
    opt.batch_size = 64;
    opt.shuffle_buffer = 1000;
    Loader loader(opt);
    std::vector<DecodedSample> batch;
    while (loader.next_batch(batch)) images += static_cast<int64_t>(batch.size());
  }
  state.SetItemsProcessed(images);
}
BENCHMARK(BM_Loader)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace recap::data
