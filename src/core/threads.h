// Thread count and BLAS checks. libtorch's OpenMP pool sees no cgroup quota here and
// defaults to one thread, so recap always sets the count explicitly; and Debian's libtorch
// silently falls back to reference BLAS when OpenBLAS is missing, 15-30x slower on matmul.
#pragma once
#include <string>
#include <string_view>

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
  std::string core;     // OpenBLAS's kernel family ("Haswell", "SkylakeX", ...); empty if not OpenBLAS
};

// openblas_get_corename() of the OpenBLAS torch calls, looked up at run time; empty when the
// BLAS is another library.
std::string openblas_core();
// The CPU and the OS both support AVX-512 F, CD, BW, DQ and VL (what OpenBLAS's SkylakeX
// kernels use).
bool cpu_has_avx512();
// True when OpenBLAS runs an AVX2 kernel family (Haswell, Zen) on a CPU with AVX-512. OpenBLAS
// picks its family by CPU model unless OPENBLAS_CORETYPE names one; Debian's 0.3.21 picks its
// AVX-512 "Cooperlake" kernels on an AMD Zen 5 by itself, and an environment that sets
// OPENBLAS_CORETYPE=Haswell (seen on machines of this project's CI kind, where it pins the
// same kernels on AVX2 and AVX-512 machines) keeps it on AVX2 ones, which made the quick
// text-to-image step 1.4x slower there (docs/BENCHMARKS.md).
bool openblas_narrower_than_cpu(std::string_view core, bool avx512);

// Inspects the loaded libraries and times a 512x512 matmul (~30 ms with OpenBLAS).
BlasInfo detect_blas();

// True for reference BLAS, and for an unidentified library that measured slow.
bool blas_is_slow(const BlasInfo& info);
// Logs a loud warning with the fix when blas_is_slow(), and an info line when
// openblas_narrower_than_cpu().
void warn_if_slow_blas(const BlasInfo& info);

}  // namespace recap
