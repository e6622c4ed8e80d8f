#!/usr/bin/env bash
# One command for the GPU machine: build with the CUDA module, run the
# conformance suites on the GPU (and under compute-sanitizer memcheck and
# racecheck in quick mode), then the benchmarks against PyTorch. Logs go to
# $OUT (or ./gpu-out); a short table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWIGLU_ONEDNN=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; exit 1; }
cmake --build build-gpu -j 16 > "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -20; exit 1; }
echo "== ctest (GPU and CPU)"
ctest --test-dir build-gpu --output-on-failure -j 4 > "$OUT/ctest.log" 2>&1
grep -E "tests passed|Failed|Skipped|\*\*\*" "$OUT/ctest.log" | tail -20
for t in glu_oracle glu_quant glu_linear; do
  echo "== $t on cuda"
  ./build-gpu/bin/test_$t --backend cuda > "$OUT/$t-cuda.log" 2>&1; echo "rc=$?"; tail -3 "$OUT/$t-cuda.log"
done
echo "== compute-sanitizer"
mkdir -p "$OUT/logs"
for tool in memcheck racecheck; do
  # racecheck is for shared memory: the linear ops' own kernels use none
  # (their GEMMs are cuBLASLt's), so they get memcheck only
  tests="glu_oracle glu_quant"; [ $tool = memcheck ] && tests="$tests glu_linear"
  for t in $tests; do
    compute-sanitizer --tool $tool --error-exitcode 3 ./build-gpu/bin/test_$t --backend cuda --quick \
      > "$OUT/logs/sanitizer-$tool-$t.log" 2>&1
    echo "$tool $t rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/logs/sanitizer-$tool-$t.log" | tail -1)" | tee -a "$OUT/sanitizer-summary.txt"
  done
done
tar -czf "$OUT/sanitizer-logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
echo "== benchmark"
python3 bench/torch_peers.py --lib build-gpu/lib/libswiglu.so --json "$OUT/gpu-bench.jsonl" ${BENCH_ARGS:-} \
  > "$OUT/gpu-bench.txt" 2>&1
echo "bench rc=$?"
# SKIP_LINEAR=1 leaves out the GEMM-fused ops (a run that must fit a time limit)
if [ -z "${SKIP_LINEAR:-}" ]; then
  python3 bench/torch_peers.py --lib build-gpu/lib/libswiglu.so --linear ${LINEAR_SHAPES:-} \
    --json "$OUT/gpu-linear.jsonl" > "$OUT/gpu-linear.txt" 2>&1
  echo "linear bench rc=$?"
  ./build-gpu/bin/swiglu-bench --backend cuda --op linear --dtype all \
    --shapes 256x2048x5632,4096x4096x14336 > "$OUT/gpu-linear-swiglu-bench.txt" 2>&1
  echo "swiglu-bench linear rc=$?"
fi
grep -E "^(fwd|bwd|fp8q) +(8192|32768|1 |64 ) " "$OUT/gpu-bench.txt" | head -130
[ -z "${SKIP_LINEAR:-}" ] && cat "$OUT/gpu-linear.txt"
