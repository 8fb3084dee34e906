#!/usr/bin/env bash
# Issue 24 point 3, the second device call (after gpu_check.sh, on the warm machine): pretrain the largest
# SMILES BERT the minutes allow, evaluate it and pack it for the trip back (see gpu_pretrain.py):
#   here:   python scripts/benchmarks/gpu_pretrain.py --prepare runs/gpu_corpus.smi.gz
#   device: run(command="bash scripts/benchmarks/gpu_pretrain.sh --budget_min 4.5", timeout_s=540,
#               carry=["runs/gpu_corpus.smi.gz"])
#   here:   cat <files_at>/model.tar.part* | tar x -C runs/pretrain
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error \
       HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
export HF_HOME="${HF_HOME:-$(mktemp -d)}"
OUT="${OUT:-runs/gpu_pretrain}"
if [ -d .whl ]; then python -m pip install -q --no-index --find-links .whl .whl/*.whl || true; fi
python -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv || true
python scripts/benchmarks/gpu_pretrain.py --out "$OUT" "$@"
