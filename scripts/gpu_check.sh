#!/usr/bin/env bash
# The GPU check in one call, most important first, each part under its own time limit so that
# one slow part cannot eat the others' time:
#   1. the machine, and CuPy really computing on the GPU (stops here if it does not);
#   2. the GPU-specific tests on the CuPy backend: fused kernels, CUDA-graph replay, devices;
#   3. the GPU benchmarks against PyTorch (SKIP_BENCH=1 leaves them out, QUICK_BENCH=1 smokes them),
#      then mixed precision: every GPU config in fp32, tf32, bf16-mixed and fp16-mixed against
#      PyTorch's fp32, TF32, bf16 and fp16 autocast, eager and CUDA graph, with per-step memory
#      and the issue's targets (benchmarks/precision.py; SKIP_PRECISION=1 leaves it out,
#      PRECISION_TIMEOUT (180) bounds it);
#   4. where `fit`'s time goes beyond its bare steps on mnist-wide (benchmarks/profile_fit.py;
#      SKIP_BENCH=1 leaves it out too);
#   5. data-parallel training's NCCL path at one rank: the reduction captured in the step's CUDA
#      graph, against no reduction (benchmarks/nccl_overhead.py; needs NCCL, pip install
#      nvidia-nccl-cu12; SKIP_DIST=1 leaves it out, DIST_TIMEOUT (90) bounds it);
#   6. the rest of the test suite on the CuPy backend.
# Full logs go to LOG_DIR (ten files); CuPy's compiled kernels are kept in .cupy_cache so a
# rerun on the same machine skips compiling. Limits in seconds: GPU_TESTS_TIMEOUT (120),
# BENCH_TIMEOUT (180), PROFILE_TIMEOUT (60), SUITE_TIMEOUT (what is left of TOTAL_BUDGET, 420).
# The tests run on TEST_WORKERS (8) processes where pytest-xdist is installed.
#   scripts/gpu_check.sh LOG_DIR
# On a lent GPU machine without array-api-compat/array-api-strict, carry wheels of both in .whl/
# (an ignored path: the call must carry it); the script puts them on PYTHONPATH itself (they are
# pure Python and import from the wheel files), unless the two packages import already.
#   bash scripts/gpu_check.sh "$OUT"
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh LOG_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
if ! python3 -c "import array_api_compat, array_api_strict" 2> /dev/null; then
  for wheel in "$PWD"/.whl/*.whl; do
    [ -e "$wheel" ] && PYTHONPATH="$wheel${PYTHONPATH:+:$PYTHONPATH}"
  done
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 CUPY_CACHE_DIR="$PWD/.cupy_cache" BACKPROP_TEST_BACKENDS=cupy
status=0
# -r fEs: failures, errors and skips listed at the end; SIGINT first on a timeout, so that pytest
# still prints that summary
pytest_args=(-q -rfEs -p no:cacheprovider -p no:benchmark --durations=10)
# the tests on several processes where pytest-xdist is installed (their CPU side, NVRTC compiles
# and launches, is the bottleneck); the benchmark always runs alone
if python3 -c "import xdist" 2> /dev/null; then
  pytest_args+=(-n "${TEST_WORKERS:-8}")
fi
stop_after() { timeout -s INT -k 20 "$@"; }
(
  set -e
  date -u
  nvidia-smi || echo "nvidia-smi not found"
  python3 -c "import sys, numpy, cupy; print(sys.version); print('numpy', numpy.__version__, 'cupy', cupy.__version__)"
  python3 -c "import array_api_compat, array_api_strict, backprop; print('backprop', backprop.__version__)"
  timeout 120 python3 -c "import cupy; x = cupy.arange(10.0); assert float((x @ x).get()) == 285.0; print('cupy computes on', cupy.cuda.runtime.getDeviceProperties(0)['name'])"
) > "$out/machine.txt" 2>&1 || { cat "$out/machine.txt"; echo "backprop or CuPy cannot run here (see above): stopping"; exit 1; }
# the suite turns warnings into errors: a warning from importing or first using the libraries
# would fail every test; then they run with warnings shown instead, and this says so
probe="import importlib.util, cupy, backprop, array_api_compat.cupy, array_api_strict
if importlib.util.find_spec('torch'): import torch
x = cupy.arange(4.0); (x @ x).get()"
if ! python3 -W error -c "$probe" >> "$out/machine.txt" 2>&1; then
  echo "WARNING: importing or first using CuPy/torch/backprop warns (above): tests run with -W default" | tee -a "$out/machine.txt"
  pytest_args+=(-W default)
fi
python3 -c "import backprop as bp; print('devices', [d.name for d in bp.available_devices()])" >> "$out/machine.txt" 2>&1
cat "$out/machine.txt"

echo "== GPU-specific tests"
gpu_tests=(tests/backends/test_ops.py tests/training/test_graph.py tests/backends/test_devices.py
           tests/backends/test_gpu_devices.py tests/training/test_graph_staleness.py
           tests/backends/test_gpu_precision.py tests/test_precision.py)
stop_after "${GPU_TESTS_TIMEOUT:-150}" python3 -m pytest "${pytest_args[@]}" "${gpu_tests[@]}" \
  > "$out/tests-gpu.log" 2>&1 || status=1
tail -n 25 "$out/tests-gpu.log"

if [ -z "${SKIP_BENCH:-}" ]; then
  echo "== GPU benchmarks"
  if stop_after "${BENCH_TIMEOUT:-180}" python3 benchmarks/run.py --device cuda ${QUICK_BENCH:+--quick} \
    --json "$out/bench-gpu.json" > "$out/bench-gpu.md" 2> "$out/bench-gpu.log"; then
    cat "$out/bench-gpu.md"
    tail -n 5 "$out/bench-gpu.log"
  else
    status=1
    cat "$out/bench-gpu.md" "$out/bench-gpu.log"  # each config's rows are in the log as measured
  fi

  if [ -z "${SKIP_PRECISION:-}" ]; then
    echo "== mixed precision against PyTorch (TF32, bf16/fp16 autocast)"
    if stop_after "${PRECISION_TIMEOUT:-180}" python3 benchmarks/precision.py ${QUICK_BENCH:+--quick} \
      --json "$out/bench-precision.json" > "$out/bench-precision.md" 2> "$out/bench-precision.log"; then
      cat "$out/bench-precision.md"
    else
      status=1
      cat "$out/bench-precision.md"
      tail -n 40 "$out/bench-precision.log"  # each config's rows are in the log as measured
    fi
  fi

  echo "== fit profile (mnist-wide)"
  stop_after "${PROFILE_TIMEOUT:-60}" python3 benchmarks/profile_fit.py --device cuda > "$out/profile-fit.txt" 2>&1 \
    || status=1
  head -n 12 "$out/profile-fit.txt"
fi

if [ -z "${SKIP_DIST:-}" ]; then
  echo "== NCCL reduction at one rank (data-parallel fit's GPU path)"
  stop_after "${DIST_TIMEOUT:-90}" python3 benchmarks/nccl_overhead.py > "$out/nccl-overhead.md" 2>&1 || status=1
  cat "$out/nccl-overhead.md"
fi

echo "== the rest of the suite"
# whatever the earlier parts left of one call (TOTAL_BUDGET, 420 s, so that a 15-minute lease
# keeps time for a rerun; a part cut short gets 20 s more to finish), at least a minute
suite_timeout=${SUITE_TIMEOUT:-$(( ${TOTAL_BUDGET:-420} - SECONDS > 60 ? ${TOTAL_BUDGET:-420} - SECONDS : 60 ))}
echo "(up to ${suite_timeout} s)"
stop_after "$suite_timeout" python3 -m pytest "${pytest_args[@]}" tests "${gpu_tests[@]/#/--ignore=}" \
  > "$out/tests-rest.log" 2>&1 || status=1
tail -n 25 "$out/tests-rest.log"
exit $status
