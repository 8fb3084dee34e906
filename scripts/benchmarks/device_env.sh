# Sourced by gpu_check.sh and gpu_pretrain.sh on the device machine: offline settings, the package (wheels
# carried in .whl/ installed first, offline), and the GPU named in the log.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error \
       HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
export HF_HOME="${HF_HOME:-$(mktemp -d)}"
if [ -d .whl ]; then python -m pip install -q --no-index --find-links .whl .whl/*.whl || true; fi
# The repository first on the path (never `pip install -e .`: on a shared machine that would re-point the
# one editable install of every user to this copy).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
