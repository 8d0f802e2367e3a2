#!/usr/bin/env bash
# One short script for a GPU machine: the GPU tests, then the GPU benchmark.
# Run from the repository root:  bash benchmarks/gpu/run_device_checks.sh [OUT_DIR]
# The machine needs CuPy and (for the torch row) a CUDA build of torch; nothing is installed.
set -uo pipefail
OUT="${1:-${OUT:-/tmp/sparselin-gpu}}"
mkdir -p "$OUT"
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import sparselin; print(sparselin.show_versions())" | tee "$OUT/info.txt"
# Every GPU-marked test: the SVD core (tests/gpu, the cupy case of the backend fixture in
# tests/linalg/test_backends.py and tests/estimators) and the Walsh-Hadamard kernels
# (tests/transforms/test_transforms_gpu_paths.py).
timeout 300 python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest_gpu.txt"
timeout 240 python3 benchmarks/gpu/bench_svd_gpu.py --json "$OUT/svd_gpu.json" 2>&1 \
    | tee "$OUT/bench_svd_gpu.txt"
# Robust PCA (issue 21): PCP 3000 x 3000 and a 76800 x 600 video, float32 and float64.
timeout 180 python3 benchmarks/gpu/bench_rpca_gpu.py --repeat 2 --max-seconds 10 \
    --json "$OUT/rpca_gpu.json" 2>&1 | tee "$OUT/bench_rpca_gpu.txt"
