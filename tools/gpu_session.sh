#!/usr/bin/env bash
# The project's one prepared run on a CUDA machine (the H200 the device tool lends):
# the CUDA tests, the LSCE CUDA benchmark and the pets GPU benchmark, each under its own
# time limit so a hang in one still leaves the others' results. Everything goes to $OUT
# (default build/gpu): gpu.txt, cuda_tests.txt, cuda.json, cuda.txt, cuda_bench.txt,
# pets_gpu_h200.json, pets_gpu_h200.txt, pets_gpu.txt. Copy cuda.json, cuda.txt and
# pets_gpu_h200.{json,txt} to docs/benchmarks/: the Benchmarks page and lesson 10 show them.
set -u
OUT=${OUT:-build/gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
  $PY -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__,
  'cuda', torch.version.cuda, torch.cuda.get_device_name())"; } > "$OUT/gpu.txt" 2>&1

timeout 150 $PY -m pytest -q -p no:cacheprovider -m cuda -o addopts=-ra \
  tests/test_nn.py tests/test_fast_torch.py tests/test_fused_linear.py tests/test_pets_train.py \
  > "$OUT/cuda_tests.txt" 2>&1
echo "cuda tests exit $?" >> "$OUT/cuda_tests.txt"
tail -5 "$OUT/cuda_tests.txt"

timeout 120 $PY benchmarks/bench.py --device cuda --out "$OUT/cuda.json" > "$OUT/cuda_bench.txt" 2>&1
echo "cuda bench exit $?" >> "$OUT/cuda_bench.txt"
tail -25 "$OUT/cuda_bench.txt"

timeout 300 $PY benchmarks/pets_gpu.py --compile --out "$OUT/pets_gpu_h200.json" --work /tmp/pets-bench \
  > "$OUT/pets_gpu.txt" 2>&1
echo "pets bench exit $?" >> "$OUT/pets_gpu.txt"
tail -25 "$OUT/pets_gpu.txt"
