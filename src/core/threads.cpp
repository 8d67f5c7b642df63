#include "core/torch_pch.h"
#include "core/threads.h"

#include <dlfcn.h>
#include <sched.h>
#include <strings.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace recap {

int usable_cores() {
  cpu_set_t set;
  int cores = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = CPU_COUNT(&set);
  std::ifstream quota_file("/sys/fs/cgroup/cpu.max");
  std::string quota, period;
  if (quota_file >> quota >> period && quota != "max") {
    double limit = std::stod(quota) / std::stod(period);
    cores = std::max(1, std::min(cores, static_cast<int>(limit + 0.5)));
  }
  return std::max(1, cores);
}

int configure_threads(int n) {
  if (n <= 0) n = usable_cores();
  torch::set_num_threads(n);
  return n;
}

std::string openblas_core() {
  using CoreName = char* (*)();
  const auto get = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = get ? get() : nullptr;
  return name ? name : "";
}

bool cpu_has_avx512() {
  // GCC's CPU model checks the OS's XCR0 too, so these are false where the kernel does not save
  // the AVX-512 registers.
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}

bool openblas_narrower_than_cpu(std::string_view core, bool avx512) {
  const std::string name(core);
  return avx512 &&
         (::strcasecmp(name.c_str(), "Haswell") == 0 || ::strcasecmp(name.c_str(), "Zen") == 0);
}

BlasInfo detect_blas() {
  // Touch BLAS once so the library is mapped before /proc/self/maps is read.
  auto a = torch::randn({512, 512});
  auto b = torch::randn({512, 512});
  torch::mm(a, b);

  BlasInfo info;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    // maps shows the resolved file, so Debian's alternatives symlink reveals its target.
    if (path.find("libblas.so") != std::string::npos ||
        path.find("libopenblas") != std::string::npos || path.find("libmkl") != std::string::npos) {
      info.path = path;
      if (path.find("mkl") != std::string::npos)
        info.library = "MKL";
      else if (path.find("openblas-openmp") != std::string::npos)
        info.library = "OpenBLAS (openmp)";
      else if (path.find("openblas-pthread") != std::string::npos)
        info.library = "OpenBLAS (pthread)";
      else if (path.find("openblas") != std::string::npos)
        info.library = "OpenBLAS";
      else if (path.find("/blas/") != std::string::npos)
        info.library = "reference BLAS";
      if (path.find("libblas.so") != std::string::npos) break;  // the one torch calls through
    }
  }
  if (info.library.empty()) info.library = info.path.empty() ? "built into libtorch" : "unknown";
  info.reference = info.library == "reference BLAS";
  info.core = openblas_core();

  // Warm up the BLAS thread pool first: the first calls pay for thread start-up.
  for (int i = 0; i < 3; ++i) torch::mm(a, b);
  constexpr int kReps = 10;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kReps; ++i) torch::mm(a, b);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  info.gflops = kReps * 2.0 * 512 * 512 * 512 / s / 1e9;
  return info;
}

bool blas_is_slow(const BlasInfo& info) {
  // The library's identity decides; the timing only backs it up when the library is unknown,
  // because a busy machine (parallel builds, other jobs) can slow even OpenBLAS to a few
  // GFLOP/s. Reference BLAS measures about 5 here, OpenBLAS 40+ per idle core.
  const bool optimized = info.library.find("OpenBLAS") != std::string::npos ||
                         info.library.find("MKL") != std::string::npos;
  return info.reference || (!optimized && info.gflops < 10.0);
}

void warn_if_slow_blas(const BlasInfo& info) {
  if (blas_is_slow(info)) {
    spdlog::warn("!!! slow BLAS: {} ({}) measured {:.1f} GFLOP/s on a 512x512 matmul.",
                 info.library, info.path.empty() ? "?" : info.path, info.gflops);
    spdlog::warn(
        "!!! Training will be 15-30x slower than it should. Fix: "
        "apt-get install libopenblas0-openmp  (or run scripts/install-deps.sh)");
  }
  if (openblas_narrower_than_cpu(info.core, cpu_has_avx512())) {
    // Information, not a warning: a pinned core type is usually deliberate (the same kernels,
    // so the same sums, on every machine of a fleet).
    const char* forced = std::getenv("OPENBLAS_CORETYPE");
    spdlog::info("OpenBLAS runs its AVX2 {} kernels on this AVX-512 CPU{}; its AVX-512 kernels "
                 "made the text-to-image step 1.4x faster here (docs/BENCHMARKS.md)",
                 info.core, forced ? fmt::format(" (OPENBLAS_CORETYPE={})", forced) : "");
  }
}

}  // namespace recap
