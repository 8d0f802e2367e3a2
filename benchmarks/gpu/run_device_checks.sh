#!/usr/bin/env bash
# One short script for a GPU machine: the GPU tests, then the GPU benchmarks.
# Run from the repository root:  bash benchmarks/gpu/run_device_checks.sh [OUT_DIR]
# The machine needs CuPy and (for the torch row) a CUDA build of torch; nothing is installed.
# The step limits add up to 540 s so that the whole script fits one 600 s device call; a step
# that hits its limit leaves what it printed in OUT_DIR and the next step still runs.
set -uo pipefail
OUT="${1:-${OUT:-/tmp/sparselin-gpu}}"
mkdir -p "$OUT"
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import sparselin; print(sparselin.show_versions())" | tee "$OUT/info.txt"
# Every GPU-marked test: the SVD core (tests/gpu, the cupy case of the backend fixture in
# tests/linalg/test_backends.py and tests/estimators) and the Walsh-Hadamard kernels
# (tests/transforms/test_transforms_gpu_paths.py).
timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest_gpu.txt"
timeout 120 python3 benchmarks/gpu/bench_svd_gpu.py --json "$OUT/svd_gpu.json" 2>&1 \
    | tee "$OUT/bench_svd_gpu.txt"
# Robust PCA (issue 21): PCP 3000 x 3000 and a 76800 x 600 video, float32 and float64.
timeout 90 python3 benchmarks/gpu/bench_rpca_gpu.py --repeat 2 --max-seconds 10 \
    --json "$OUT/rpca_gpu.json" 2>&1 | tee "$OUT/bench_rpca_gpu.txt"
# Walsh-Hadamard transform (issue 16): batches of 2^10..2^15 and single 2^20..2^26, float32
# and float64, against a device copy and torch reshape butterflies (about a minute).
timeout 80 python3 benchmarks/gpu/bench_wht_gpu.py --repeat 5 --max-seconds 5 \
    --json "$OUT/wht_gpu.json" 2>&1 | tee "$OUT/bench_wht_gpu.txt"
# Batched OMP (issue 20): A 256 x 1024, s = 20, 1000 and 10000 signals, float64 and float32,
# against the CPU omp and SPAMS (if installed) at default threads and one thread.
timeout 100 python3 benchmarks/gpu/bench_recovery_gpu.py --repeat 3 --max-seconds 5 \
    --json "$OUT/recovery_gpu.json" 2>&1 | tee "$OUT/bench_recovery_gpu.txt"
