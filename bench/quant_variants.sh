#!/usr/bin/env bash
# Builds the CUDA module in several quantizer configurations side by side
# (the SG_QUANT_* / SG_QV* macros of backends/cuda/gpu_backend.cu) and runs
# the FP8 group-128 quant benchmark for each, interleaved, with the copy
# measured in the same swiglu-bench run. VARIANTS="name:flags;name:flags".
# Build trees are build-v-NAME (ignored by git, so a warm GPU machine keeps
# them: SKIP_BUILD=1 benchmarks them again). The last lines are a summary:
# each variant's best ratio over the repetitions, per op and shape.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
SHAPES="${SHAPES:-8192x14336,32768x11008,32768x4096,8192x4096,8192x1024}"
IFS=';' read -ra VS <<< "${VARIANTS:?}"
for v in "${VS[@]}"; do
  [ -n "${SKIP_BUILD:-}" ] && break
  n=${v%%:*}; f=${v#*:}
  ( cmake -S . -B "build-v-$n" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWIGLU_ONEDNN=OFF -DSWIGLU_HIP=OFF \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="$f" > "$OUT/build-$n.log" 2>&1 &&
    cmake --build "build-v-$n" -j 8 --target swiglu swiglu-cuda swiglu-bench test_glu_quant test_gpu_math >> "$OUT/build-$n.log" 2>&1
    echo "built $n rc=$?" ) &
done
wait
for v in "${VS[@]}"; do n=${v%%:*}; grep -E "spill|error" "$OUT/build-$n.log" | head -3; done
if [ -n "${CHECK:-}" ]; then
  for v in "${VS[@]}"; do
    n=${v%%:*}
    "./build-v-$n/bin/test_glu_quant" --backend cuda ${CHECK_ARGS:-} > "$OUT/quant-$n.log" 2>&1
    echo "quant suite $n rc=$? $(tail -1 "$OUT/quant-$n.log")"
  done
fi
for rep in ${REPS:-1 2}; do
  for v in "${VS[@]}"; do
    n=${v%%:*}
    echo "== $n rep $rep"
    "./build-v-$n/bin/swiglu-bench" --backend cuda --op quant --dtype bf16 --reps 7 --no-peer --shapes "$SHAPES" ${BENCH_EXTRA:-} 2>&1 |
      grep -E "^q-" | awk '{printf "%-10s %6s %6s %7s %5s\n", $1, $3, $4, $5, $8}'
  done
done 2>&1 | tee "$OUT/variants.txt"
echo "== best of the repetitions (ratio to the copy)"
awk '/^== /{v=$2; if (!(v in seen)) {seen[v]=1; order[++nv]=v}; next}
     {k=$1" "$2"x"$3; if (!(k in kseen)) {kseen[k]=1; keys[++nk]=k}; if ($5>best[v,k]) best[v,k]=$5}
     END{printf "%-22s", "op shape"; for(i=1;i<=nv;i++) printf " %7s", order[i]; printf "\n";
         for(j=1;j<=nk;j++){printf "%-22s", keys[j]; for(i=1;i<=nv;i++) printf " %7.3f", best[order[i],keys[j]]; printf "\n"}}' "$OUT/variants.txt"
