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
# On a lent GPU machine without array-api-compat/array-api-strict, carry wheels of both in .whl/
# and first: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=$PWD:/tmp/site
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
  python3 -c "import array_api_compat, array_api_strict, backprop; print('backprop', backprop.__version__)"
  timeout 120 python3 -c "import cupy; x = cupy.arange(10.0); assert float((x @ x).get()) == 285.0; print('cupy computes on', cupy.cuda.runtime.getDeviceProperties(0)['name'])"
} > "$out/machine.txt" 2>&1 || { cat "$out/machine.txt"; echo "backprop or CuPy cannot run here (see above): stopping"; exit 1; }
# the suite turns warnings into errors: one from importing CuPy would fail every CuPy test
python3 -W error -c "import cupy" >> "$out/machine.txt" 2>&1 || echo "WARNING: importing CuPy warns; the CuPy tests will fail with it" | tee -a "$out/machine.txt"
python3 -c "import backprop as bp; print('devices', [d.name for d in bp.available_devices()])" >> "$out/machine.txt" 2>&1
cat "$out/machine.txt"

echo "== GPU-specific tests"
timeout "${GPU_TESTS_TIMEOUT:-180}" python3 -m pytest "${pytest_args[@]}" tests/test_kernels.py tests/test_graph.py \
  tests/test_devices.py > "$out/tests-gpu.log" 2>&1 || status=1
tail -n 25 "$out/tests-gpu.log"

if [ -z "${SKIP_BENCH:-}" ]; then
  echo "== GPU benchmarks"
  timeout "${BENCH_TIMEOUT:-150}" python3 benchmarks/run.py --device cuda ${QUICK_BENCH:+--quick} \
    --json "$out/bench-gpu.json" > "$out/bench-gpu.md" 2> "$out/bench-gpu.log" || status=1
  cat "$out/bench-gpu.md"
  tail -n 5 "$out/bench-gpu.log"
fi

echo "== the rest of the suite"
# whatever the earlier parts left of one 600 s call (TOTAL_BUDGET), at least a minute
suite_timeout=${SUITE_TIMEOUT:-$(( ${TOTAL_BUDGET:-570} - SECONDS > 60 ? ${TOTAL_BUDGET:-570} - SECONDS : 60 ))}
echo "(up to ${suite_timeout} s)"
timeout "$suite_timeout" python3 -m pytest "${pytest_args[@]}" tests --ignore=tests/test_kernels.py \
  --ignore=tests/test_graph.py --ignore=tests/test_devices.py > "$out/tests-rest.log" 2>&1 || status=1
tail -n 25 "$out/tests-rest.log"
exit $status
