#!/usr/bin/env bash
# Installs every Debian 12 package recap needs. Idempotent and non-interactive:
# when everything is present it checks with dpkg and exits without touching apt.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build ccache g++ pkg-config make
  # tensors: libtorch, and a fast BLAS for it (without OpenBLAS Debian's libtorch
  # falls back to reference BLAS, 15-30x slower on matmul)
  libtorch-dev libopenblas0-openmp
  # the recap binary's allocator (keeps tensor buffers instead of returning them to the kernel)
  libtcmalloc-minimal4
  # images, rendering, shards, tokenizer
  libopencv-imgcodecs-dev libopencv-imgproc-dev libcairo2-dev libarchive-dev
  libsentencepiece-dev
  # config, metadata, CLI, logging
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # report plots; the font contact sheets and grids are labelled with
  gnuplot-nox fonts-dejavu-core
  # outside references the tests check against (recap never needs them to run): SciPy for
  # FID, and PyTorch (Debian's, the same 1.13 libtorch) for the model parity test and the
  # peer benchmark
  python3-scipy python3-numpy python3-torch
)

want=("${PACKAGES[@]}")

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
