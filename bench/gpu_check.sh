#!/usr/bin/env bash
# The GPU checks (see bench/gpu_check.py); without a GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m bench.gpu_check "$@"
