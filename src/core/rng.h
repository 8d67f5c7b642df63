// recap's one random number generator for everything that reaches an output: scenes,
// captions, prompt suites, corpus and loader shuffles. Outputs must be byte-identical across
// machines and standard libraries, and std::*_distribution is implementation-defined, so every
// draw goes through this splitmix64 stream (Steele, Lea, Flood 2014) and the integer helpers
// below. Callers that need exact reproducibility draw integers (or compare uniform() against a
// probability, which is exact because uniform() is a multiple of 2^-53). Torch tensors use
// torch's own generators.
#pragma once
#include <cassert>
#include <cstdint>
#include <utility>
#include <vector>

namespace recap {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1), a multiple of 2^-53.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n); rejection keeps it unbiased.
  uint64_t below(uint64_t n) {
    assert(n > 0);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }

  // Uniform integer in [lo, hi], both inclusive.
  int range(int lo, int hi) {
    assert(lo <= hi);
    return lo + static_cast<int>(below(static_cast<uint64_t>(hi - lo) + 1));
  }

  bool chance(double p) { return uniform() < p; }

  template <class T>
  const T& pick(const std::vector<T>& items) {
    assert(!items.empty());
    return items[below(items.size())];
  }

  // Fisher-Yates with our own draws (std::shuffle's use of the engine is unspecified).
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  uint64_t state_;
};

// Seed of an independent stream (e.g. sample i of a corpus, or epoch e of a shuffle), so that
// stages draw per-item randomness without sharing one sequential stream. Nest calls for two
// indices: derive_seed(derive_seed(seed, stream), item).
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  Rng rng(seed ^ (stream * 0xD1B54A32D192ED03ull));
  rng.next();
  return rng.next();
}

}  // namespace recap
