#!/usr/bin/env bash
# Builds the CUDA module in several quantizer configurations side by side
# (the SG_QUANT_* / SG_QV* macros of backends/cuda/gpu_backend.cu) and runs
# the FP8 group-128 quant benchmark for each, interleaved, with the copy
# measured in the same swiglu-bench run. VARIANTS="name:flags;name:flags".
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
SHAPES="${SHAPES:-8192x14336,32768x11008,32768x4096,8192x4096,8192x1024}"
IFS=';' read -ra VS <<< "${VARIANTS:?}"
for v in "${VS[@]}"; do
  n=${v%%:*}; f=${v#*:}
  ( cmake -S . -B "b-$n" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWIGLU_ONEDNN=OFF -DSWIGLU_HIP=OFF \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="$f" > "$OUT/configure-$n.log" 2>&1 &&
    cmake --build "b-$n" -j 8 --target swiglu swiglu-cuda swiglu-bench test_glu_quant > "$OUT/build-$n.log" 2>&1
    echo "built $n rc=$?" ) &
done
wait
for v in "${VS[@]}"; do n=${v%%:*}; grep -E "spill|error" "$OUT/build-$n.log" | head -3; done
if [ -n "${CHECK:-}" ]; then
  for v in "${VS[@]}"; do
    n=${v%%:*}
    "./b-$n/bin/test_glu_quant" --backend cuda ${CHECK_ARGS:-} > "$OUT/quant-$n.log" 2>&1
    echo "quant suite $n rc=$? $(tail -1 "$OUT/quant-$n.log")"
  done
fi
for rep in ${REPS:-1 2}; do
  for v in "${VS[@]}"; do
    n=${v%%:*}
    echo "== $n rep $rep"
    "./b-$n/bin/swiglu-bench" --backend cuda --op quant --dtype bf16 --reps 7 --no-peer --shapes "$SHAPES" ${BENCH_EXTRA:-} 2>&1 |
      grep -E "^q-" | awk '{printf "%-10s %6s %6s %7s %5s\n", $1, $3, $4, $5, $8}'
  done
done 2>&1 | tee "$OUT/variants.txt"
