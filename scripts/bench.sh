#!/usr/bin/env bash
# The quick start's first command: install what is missing, build (Release),
# and run swiglu-bench with its defaults on the best backend this machine has.
# Extra arguments go to swiglu-bench (e.g. --json bench.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
exec build/bin/swiglu-bench "$@"
