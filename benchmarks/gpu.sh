#!/usr/bin/env bash
# Every torch project's full config for a fixed number of steps on generated full-size inputs,
# random-init weights, bf16 on the GPU: images/s or questions/s and peak GPU memory per project.
#   bash benchmarks/gpu.sh            # on a CUDA machine (about 2-4 minutes)
#   bash benchmarks/gpu.sh --cpu      # tiny sizes on CPU, fp32, seconds (what CI runs)
#   bash benchmarks/gpu.sh --steps 20 --reader base
# Extra flags go to benchmarks/gpu.py. Each project runs in its own process (an out-of-memory
# error in one still lets the others report); the exit status is 1 if any failed.
set -u
cd "$(dirname "$0")/.." || exit 1
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
status=0
for project in image_classifier retrieval_qa captioning; do
    "$PY" benchmarks/gpu.py --project "$project" "$@" || { echo "gpu-bench $project FAILED" >&2; status=1; }
done
exit $status
