#!/usr/bin/env bash
# The GPU check of issue 16, in one device call (see scripts/benchmarks/gpu_check.py for what it measures):
#   run(command="bash scripts/benchmarks/gpu_check.sh", timeout_s=420)
# Prints a table and writes $OUT/gpu_check.json. Packages missing on the device machine travel as wheels
# in .whl/ (pip download --only-binary=:all: --python-version 3.12 ... here), installed offline first.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error \
       HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
export HF_HOME="${HF_HOME:-$(mktemp -d)}"
OUT="${OUT:-runs/gpu_check}"
if [ -d .whl ]; then python -m pip install -q --no-index --find-links .whl .whl/*.whl || true; fi
python -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
python scripts/benchmarks/gpu_check.py --out "$OUT" "$@"
