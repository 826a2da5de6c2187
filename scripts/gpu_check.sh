#!/usr/bin/env bash
# The GPU check in one call: the machine, the whole test suite on the CuPy backend (a missing
# GPU fails instead of skipping), then the GPU benchmarks against PyTorch (when installed).
# Full logs go to the folder given; set SKIP_BENCH=1 to run the tests only.
#   scripts/gpu_check.sh LOG_DIR
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh LOG_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
status=0
{
  date -u
  nvidia-smi || echo "nvidia-smi not found"
  python3 -c "import sys, numpy, cupy; print(sys.version); print('numpy', numpy.__version__, 'cupy', cupy.__version__)"
  python3 -c "import backprop as bp; print('devices', [d.name for d in bp.available_devices()])"
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
BACKPROP_TEST_BACKENDS=cupy python3 -m pytest -q -rs -p no:cacheprovider tests > "$out/tests-cupy.log" 2>&1 || status=1
tail -n 15 "$out/tests-cupy.log"
if [ -z "${SKIP_BENCH:-}" ]; then
  python3 benchmarks/run.py --device cuda --json "$out/bench-gpu.json" > "$out/bench-gpu.md" 2> "$out/bench-gpu.log" || status=1
  cat "$out/bench-gpu.md"
fi
exit $status
