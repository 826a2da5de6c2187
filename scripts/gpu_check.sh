#!/usr/bin/env bash
# The GPU check in one call, most important first, each part under its own time limit so that
# one slow part cannot eat the others' time:
#   1. the machine, and CuPy really computing on the GPU (stops here if it does not);
#   2. the GPU-specific tests on the CuPy backend: fused kernels, CUDA-graph replay, devices;
#   3. the GPU benchmarks against PyTorch (SKIP_BENCH=1 leaves them out, QUICK_BENCH=1 smokes them);
#   4. the rest of the test suite on the CuPy backend.
# Full logs go to LOG_DIR (six files); CuPy's compiled kernels are kept in .cupy_cache so a
# rerun on the same machine skips compiling.
#   scripts/gpu_check.sh LOG_DIR
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh LOG_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 CUPY_CACHE_DIR="$PWD/.cupy_cache" BACKPROP_TEST_BACKENDS=cupy
status=0
pytest_args=(-q -rs -p no:cacheprovider --durations=10)
{
  date -u
  nvidia-smi || echo "nvidia-smi not found"
  python3 -c "import sys, numpy, cupy; print(sys.version); print('numpy', numpy.__version__, 'cupy', cupy.__version__)"
  timeout 120 python3 -c "import cupy; x = cupy.arange(10.0); assert float((x @ x).get()) == 285.0; print('cupy computes on', cupy.cuda.runtime.getDeviceProperties(0)['name'])"
} > "$out/machine.txt" 2>&1 || { cat "$out/machine.txt"; echo "CuPy cannot compute on this machine: stopping"; exit 1; }
python3 -c "import backprop as bp; print('devices', [d.name for d in bp.available_devices()])" >> "$out/machine.txt" 2>&1
cat "$out/machine.txt"

echo "== GPU-specific tests"
timeout "${GPU_TESTS_TIMEOUT:-240}" python3 -m pytest "${pytest_args[@]}" tests/test_kernels.py tests/test_graph.py \
  tests/test_devices.py > "$out/tests-gpu.log" 2>&1 || status=1
tail -n 25 "$out/tests-gpu.log"

if [ -z "${SKIP_BENCH:-}" ]; then
  echo "== GPU benchmarks"
  timeout "${BENCH_TIMEOUT:-200}" python3 benchmarks/run.py --device cuda ${QUICK_BENCH:+--quick} \
    --json "$out/bench-gpu.json" > "$out/bench-gpu.md" 2> "$out/bench-gpu.log" || status=1
  cat "$out/bench-gpu.md"
  tail -n 5 "$out/bench-gpu.log"
fi

echo "== the rest of the suite"
timeout "${SUITE_TIMEOUT:-240}" python3 -m pytest "${pytest_args[@]}" tests --ignore=tests/test_kernels.py \
  --ignore=tests/test_graph.py --ignore=tests/test_devices.py > "$out/tests-rest.log" 2>&1 || status=1
tail -n 25 "$out/tests-rest.log"
exit $status
