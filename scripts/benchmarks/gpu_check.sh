#!/usr/bin/env bash
# The GPU check of issue 16, in one device call (see scripts/benchmarks/gpu_check.py for what it measures):
#   run(command="bash scripts/benchmarks/gpu_check.sh", timeout_s=420)
# Prints a table and writes $OUT/gpu_check.json. Packages missing on the device machine travel as wheels
# in .whl/ (pip download --only-binary=:all: --python-version 3.12 ... here), installed offline first.
set -euo pipefail
source "$(dirname "$0")/device_env.sh"
OUT="${OUT:-runs/gpu_check}"
python scripts/benchmarks/gpu_check.py --out "$OUT" "$@"
