// Thread count and BLAS checks. libtorch's OpenMP pool sees no cgroup quota here and
// defaults to one thread, so recap always sets the count explicitly; and Debian's libtorch
// silently falls back to reference BLAS when OpenBLAS is missing, 15-30x slower on matmul.
#pragma once
#include <string>

namespace recap {

// CPUs this process may use: the affinity mask, capped by a cgroup v2 cpu.max quota.
int usable_cores();

// Sets libtorch's intra-op threads (n <= 0: usable_cores()). Returns the count set.
int configure_threads(int n);

struct BlasInfo {
  std::string library;  // "OpenBLAS (openmp)", "reference BLAS", "MKL", ...
  std::string path;     // the shared object actually mapped, when found
  double gflops = 0;    // measured on a 512x512 float matmul with the current threads
  bool reference = false;
};

// Inspects the loaded libraries and times a 512x512 matmul (~30 ms with OpenBLAS).
BlasInfo detect_blas();

// True for reference BLAS, and for an unidentified library that measured slow.
bool blas_is_slow(const BlasInfo& info);
// Logs a loud warning with the fix when blas_is_slow().
void warn_if_slow_blas(const BlasInfo& info);

}  // namespace recap
