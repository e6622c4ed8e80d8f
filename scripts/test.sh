#!/usr/bin/env bash
# The quick start's second command and what CI runs: install what is missing,
# build, run the whole CTest suite, then build again with AddressSanitizer and
# UndefinedBehaviorSanitizer and run the suite once more. Backends absent on
# this machine show as SKIPPED (CTest's "Not Run"/skip), never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs="$(nproc)"
start=$SECONDS
elapsed() { echo "$(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"; }

# Device code for the GPUs this machine has. Where it has none, nothing
# runs that code: the modules only have to build, load and say "no
# device", so the CUDA module is PTX for sm_90 alone (no ptxas: 60% of its
# compile, twice over with sm_80) and the HIP module gfx940 (MI300) alone
# of its four targets (the kernels have no wavefront-size branches for the
# others to compile differently). hipcc compiles its targets one after
# another on one core: about 30 of the Release build's 34 minutes on a
# 2-core Zen 1 VM, where CUDA's two architectures took 22 CPU-minutes
# (bench/NOTES.md, "CI time").
# scripts/bench.sh and a plain cmake build keep every target.
# (the compute capability from nvidia-smi rather than CMake's "native",
# which needs CMake 3.24)
cuda_arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ' || true)
case "$cuda_arch" in [1-9][0-9] | [1-9][0-9][0-9]) ;; *) cuda_arch=90-virtual ;; esac
hip_targets=()
[ -e /dev/kfd ] || hip_targets=(-DSWIGLU_HIP_TARGETS=gfx940)
# The sanitizer and static-registry builds leave out the AVX-512 kernel
# files where this CPU cannot run them (their tests would be skipped): 10 of
# the sanitizer build's 21 CPU-minutes on the Zen 1 VM. The Release build
# keeps them, compiled and shipped whatever this CPU is.
avx512=ON
grep -qw avx512f /proc/cpuinfo 2>/dev/null || avx512=OFF

echo "== build (Release) and test ($(elapsed))"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSWIGLU_ONEDNN=ON -DCMAKE_CUDA_ARCHITECTURES="$cuda_arch" \
  "${hip_targets[@]}" >/dev/null
cmake --build build -j "$jobs" >/dev/null
ctest --test-dir build --output-on-failure -j "$jobs"

# The sanitizer build takes clang where it builds and links a sanitized
# OpenMP program: a second compiler for the library (clang 14 had not
# built it), and clang's UBSan also reports arithmetic on NULL pointers,
# which GCC's missed. GCC otherwise.
san_cc=cc san_cxx=c++
probe="$(mktemp -d)"
if command -v clang >/dev/null && command -v clang++ >/dev/null &&
  printf 'int main(void) { return 0; }\n' >"$probe/p.c" &&
  clang -fopenmp -fsanitize=address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null; then
  san_cc=clang san_cxx=clang++
fi
rm -rf "$probe"
echo "== build with address,undefined sanitizers ($san_cc) and test ($(elapsed))"
# Host code only (the GPU modules are device code built by other compilers),
# at -O1 with line tables, all the reports need: -O3 -g made this build a
# third of CI's time (core/CMakeLists.txt).
cmake -S . -B build-asan -DCMAKE_C_COMPILER="$san_cc" -DCMAKE_CXX_COMPILER="$san_cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DSWIGLU_SANITIZE=address,undefined -DSWIGLU_ONEDNN=ON -DSWIGLU_BUILD_BENCH=OFF -DSWIGLU_CUDA=OFF -DSWIGLU_HIP=OFF \
  -DSWIGLU_CPU_AVX512="$avx512" >/dev/null
cmake --build build-asan -j "$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "== build a static libswiglu with the CUDA backend linked in (SWIGLU_STATIC_BACKENDS), test the registry and the installed archive ($(elapsed))"
  # This build checks the static registry path, not the kernels (the Release
  # build above did): device code for this machine's GPU only, or PTX for
  # sm_90 alone where there is none (no ptxas run: about 60% of the CUDA
  # compile; the Release build above takes the same). With the default
  # sm_80 + sm_90 machine code it took a quarter of CI's time.
  # Its CPU kernels at -O1 for the same reason: the Release build ran them.
  # Where no NVIDIA GPU is present nothing runs its device code either, so
  # cicc leaves it unoptimized (-Xcicc -O0): still parsed, instantiated and
  # lowered to PTX, in 51 s against 217 s on the Zen 1 VM, whose static
  # phase waited on that one compile (bench/NOTES.md, "CI time").
  # A static archive (BUILD_SHARED_LIBS=OFF): the link interface that
  # carries the CUDA runtime to an application linking it as C, which the
  # install tests check through find_package and pkg-config.
  static_cuda_flags=()
  [ "$cuda_arch" != 90-virtual ] || static_cuda_flags=(-DCMAKE_CUDA_FLAGS="-Xcicc -O0")
  cmake -S . -B build-static -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$cuda_arch" -DBUILD_SHARED_LIBS=OFF \
    "${static_cuda_flags[@]}" \
    -DSWIGLU_STATIC_BACKENDS=ON -DSWIGLU_OPT_LEVEL=-O1 -DSWIGLU_HIP=OFF -DSWIGLU_ONEDNN=OFF -DSWIGLU_BUILD_BENCH=OFF \
    -DSWIGLU_CPU_AVX512="$avx512" >/dev/null
  cmake --build build-static -j "$jobs" >/dev/null
  ctest --test-dir build-static --output-on-failure \
    -R "^(cuda_module|registry|validation|glu_oracle_cuda|install_cmake|install_pkgconfig)$"
fi
echo "== done ($(elapsed))"
