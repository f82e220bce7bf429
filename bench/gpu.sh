#!/usr/bin/env bash
# The GPU plan of issue 27 in one run (about 6-8 device minutes on an H100/H200): where one
# energy evaluation's time goes, and the fraction of the measured bf16 matmul peak as the
# rows per call grow, for AntiBERTy and Sapiens-H, plain and compiled; then the end-to-end
# effect on mixing per minute. Every result lands in $OUT (default bench/results/gpu).
# Usage: bash bench/gpu.sh            (on the GPU machine, from the repository root)
set -u
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
run() { echo "== $*"; timeout 240 python bench/energy.py --device cuda --dtype bfloat16 "$@" || echo "FAILED: $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
for model in antiberty sapiens-h; do
  run --model "$model" --repeats 5 --profile "$OUT/profile-$model-1.json" --json "$OUT/energy-$model-1.json"
  for copies in 8 32; do
    run --model "$model" --repeats 5 --copies "$copies" --no-reference \
        --profile "$OUT/profile-$model-$copies.json" --json "$OUT/energy-$model-$copies.json"
  done
  run --model "$model" --repeats 5 --copies 32 --no-reference --row-budget 262144 \
      --json "$OUT/energy-$model-32-budget256k.json"
  run --model "$model" --repeats 5 --copies 32 --no-reference --compile \
      --json "$OUT/energy-$model-32-compiled.json"
done
# end to end: ESS per minute of MH on the CDR-H3 with 64 chains (the batch the energy wants)
timeout 200 python bench/mixing.py --model sapiens-h --device cuda --dtype bfloat16 \
    --only mh "regenerate window 4" --chains 64 --rows 20000 --minutes 3 \
    --json "$OUT/mixing-sapiens-h-64.json" || echo "FAILED: mixing"
ls -l "$OUT"
