"""Ship a pretrained folder inside the package (`w2s_hf/models/<name>/`), where `packaged:<name>` finds it.

Limits, checked before anything is copied: at most 5 MiB a model and 20 MiB for all of them, so the
package stays small. Only the files a user needs are copied (weights, config, tokenizer, model card,
descriptor scaler, pretraining summary and ceilings). `w2s_hf/models/MANIFEST.json` records each
model's content hash (the `revision` part of its feature fingerprints) and file sizes; the tests check
that the shipped files still hash to it, so a shipped model's fingerprint cannot drift unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

MIB = 1 << 20
MAX_MODEL_BYTES = 5 * MIB
MAX_TOTAL_BYTES = 20 * MIB
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "README.md", "descriptor_scaler.json", "pretraining.json", "ceilings.json")


def models_dir() -> Path:
    from ..features.packaged import SHIPPED_DIR

    return SHIPPED_DIR


def ship(folder: str | os.PathLike, name: str | None = None, *, overwrite: bool = False) -> Path:
    """Copy `folder` to w2s_hf/models/<name> (name: the folder's) and record it in MANIFEST.json."""
    from ..atomic import write_json_atomic
    from ..features.cache import hash_model_files
    from ..features.hub import has_weights

    src = Path(folder)
    if not has_weights(src):
        raise FileNotFoundError(f"{src} is not a model folder (no config.json or weights).")
    name = name or src.name
    files = [src / f for f in _FILES if (src / f).is_file()]
    size = sum(f.stat().st_size for f in files)
    if size > MAX_MODEL_BYTES:
        raise ValueError(f"{src} holds {size / MIB:.2f} MiB; a shipped model may hold at most 5 MiB.")
    root = models_dir()
    target = root / name
    others = sum(f.stat().st_size for d in root.iterdir() if d.is_dir() and d.name != name
                 for f in d.iterdir() if f.is_file()) if root.is_dir() else 0
    if others + size > MAX_TOTAL_BYTES:
        raise ValueError(f"shipping {name} would make the shipped models {(others + size) / MIB:.2f} MiB (limit 20).")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it.")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        for f in files:
            shutil.copyfile(f, tmp / f.name)  # not copy2: save_pretrained may have made a file 0600
            (tmp / f.name).chmod(0o644)
        tmp.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest_path = root / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[name] = {"revision": hash_model_files(target),
                      "files": {f.name: f.stat().st_size for f in sorted(target.iterdir())}}
    write_json_atomic(manifest_path, dict(sorted(manifest.items())))
    return target
