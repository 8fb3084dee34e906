#!/usr/bin/env bash
# Issue 24 point 3, the second device call (after gpu_check.sh, on the warm machine): pretrain the largest
# SMILES BERT the minutes allow, evaluate it and pack it for the trip back (see gpu_pretrain.py):
#   here:   python scripts/benchmarks/gpu_pretrain.py --prepare runs/gpu_corpus.smi.gz
#   device: run(command="bash scripts/benchmarks/gpu_pretrain.sh --budget_min 4.5", timeout_s=540,
#               carry=["runs/gpu_corpus.smi.gz"])
#   here:   cat <files_at>/model.tar.part* | tar x -C runs/pretrain
set -euo pipefail
source "$(dirname "$0")/device_env.sh"
OUT="${OUT:-runs/gpu_pretrain}"
python scripts/benchmarks/gpu_pretrain.py --out "$OUT" "$@"
