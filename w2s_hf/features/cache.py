"""On-disk cache of feature arrays, keyed by a fingerprint of everything that changes the numbers.

Layout of one entry (one feature array)::

    <cache_dir>/<fingerprint>/
        features.npy        float32 (n_rows, dim), rows in the caller's order, memory-mapped on load
        manifest.json       written last: shape, dtype, file size, crc32 checksum, fingerprint inputs
        shards/00003-of-00025.npy + .json   partial results while an extraction is running

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import shutil
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, reserve, write_json_atomic
from .digests import default_cache_dir, file_digests  # noqa: F401  (default_cache_dir: the cache root, public here)

logger = logging.getLogger(__name__)

# Bump when the meaning of cached numbers changes (pooling maths, layout, dtype), so old entries miss.
FEATURE_FORMAT_VERSION = 1

MANIFEST = "manifest.json"
FEATURES = "features.npy"
SHARDS = "shards"
# Files next to model weights that never change the numbers a model computes.
_IGNORED_MODEL_FILES = {"README.md", "desktop.ini", "LICENSE", "LICENSE.txt", "ceilings.json"}


def fingerprint_texts(texts: Sequence[str]) -> str:
    """sha256 over the texts in order (length-prefixed, so ["ab", "c"] != ["a", "bc"])."""
    digest = hashlib.sha256(len(texts).to_bytes(8, "little"))
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def make_fingerprint(parts: Mapping[str, Any]) -> str:
    """Cache key (32 hex chars) of a JSON-serialisable description of how features are computed."""
    payload = json.dumps({"format_version": FEATURE_FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def hash_model_files(path: str | os.PathLike) -> str:
    """Content hash of every file in a model folder (weights, config, tokenizer), memoised per process.

    Size and modification time alone would miss weights rewritten in place, so the bytes are hashed
    (once: each file's digest is memoised on disk under a key holding inode and ctime, which any
    rewrite changes, see digests.py); the in-process memo key holds the same fields.
    """
    root = Path(path).resolve()
    entries = []
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or file.name in _IGNORED_MODEL_FILES:
            continue
        if not file.is_file():
            continue
        st = file.stat()
        entries.append((rel.as_posix(), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return _hash_files(str(root), tuple(entries))


@functools.lru_cache(maxsize=64)
def _hash_files(root: str, entries: tuple) -> str:
    # each file's digest comes from the on-disk memo when the file is unchanged (digests.py)
    digest = hashlib.sha256()
    files = file_digests([os.path.join(root, rel) for rel, *_ in entries])
    for (rel, size, *_), file_digest in zip(entries, files):
        digest.update(rel.encode())
        digest.update(size.to_bytes(8, "little"))
        digest.update(bytes.fromhex(file_digest))
    return "sha256:" + digest.hexdigest()


def array_checksum(array: np.ndarray) -> str:
    """crc32 of the array's bytes (detects truncation and bit rot; not a security hash)."""
    data = np.ascontiguousarray(array)
    return f"crc32:{zlib.crc32(memoryview(data).cast('B')):08x}"


def _write_json(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj, strict=False, sort_keys=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, size=_npy_size(array.shape)) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def _npy_size(shape: tuple[int, ...]) -> int:
    """Bytes of a float32 .npy file of `shape` (header included)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    return int(np.prod(shape)) * 4 + len(header.getvalue())


def _open_npy(path: Path, record: Mapping[str, Any], verify: bool) -> tuple[np.ndarray | None, str]:
    """Memory-map `path` and check it against its commit record; return (array, "") or (None, why)."""
    if not path.is_file():
        return None, f"{path.name} is missing"
    shape = record.get("shape")
    if not isinstance(shape, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
        return None, f"its record gives no valid shape ({shape!r})"
    size = path.stat().st_size
    if size != record.get("file_size"):
        return None, f"{path.name} has {size} bytes, expected {record.get('file_size')} (truncated?)"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        return None, f"{path.name} is unreadable ({err})"
    if list(array.shape) != list(record.get("shape", [])) or array.dtype != np.float32:
        return None, f"{path.name} has shape {array.shape} {array.dtype}, expected {record.get('shape')} float32"
    if verify and array_checksum(array) != record.get("checksum"):
        return None, f"{path.name} fails its checksum (corrupt)"
    return array, ""


def _read_json(path: Path) -> dict | None:
    """A JSON object from `path`, or None: a missing or unreadable file, or valid JSON that is no object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class FeatureCache:
    """One cached feature array under `<cache_dir>/<fingerprint>/` (see the module docstring)."""

    def __init__(self, cache_dir: str | os.PathLike, fingerprint: str, *, meta: Mapping[str, Any] | None = None):
        if not fingerprint or "/" in fingerprint or fingerprint.startswith("."):
            raise ValueError(f"fingerprint={fingerprint!r} must be a plain folder name (use make_fingerprint).")
        self.cache_dir = Path(cache_dir).expanduser()
        self.fingerprint = fingerprint
        self.path = self.cache_dir / fingerprint
        self.meta = dict(meta or {})

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.path)!r})"

    @property
    def features_path(self) -> Path:
        return self.path / FEATURES

    # ---- the consolidated array -------------------------------------------------------------
    def status(self, *, verify: bool = True) -> tuple[np.ndarray | None, str]:
        """(memory-mapped array, "") on a valid hit, else (None, reason) with reason "missing" or why corrupt."""
        manifest = _read_json(self.path / MANIFEST)
        if manifest is None:
            return None, "missing" if not (self.path / MANIFEST).exists() else "manifest.json is unreadable"
        if manifest.get("format_version") != FEATURE_FORMAT_VERSION or manifest.get("fingerprint") != self.fingerprint:
            return None, "manifest.json belongs to another fingerprint or format version"
        return _open_npy(self.features_path, manifest, verify)

    def load(self, *, verify: bool = True) -> np.ndarray | None:
        """The cached float32 array (read-only memory map) or None on a miss; a corrupt entry is a miss."""
        array, reason = self.status(verify=verify)
        if array is None and reason != "missing":
            logger.warning("feature cache %s is unusable: %s; it will be rebuilt.", self.path, reason)
        return array

    def save(self, array: np.ndarray) -> np.ndarray:
        """Write a whole array atomically (features, then manifest) and return it memory-mapped."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"features must be 2-D (rows, dim); got shape {array.shape}.")
        _save_npy(self.features_path, array)
        self._write_manifest(array)
        return self._reload()

    def clear(self) -> None:
        """Delete this entry (features, manifest and shards); other fingerprints are untouched."""
        shutil.rmtree(self.path, ignore_errors=True)

    def clear_shards(self) -> None:
        """Delete unfinished shards (the consolidated array, if any, stays)."""
        shutil.rmtree(self.path / SHARDS, ignore_errors=True)

    def _write_manifest(self, array: np.ndarray) -> None:
        record = {
            "format_version": FEATURE_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "shape": list(array.shape),
            "dtype": "float32",
            "file_size": self.features_path.stat().st_size,
            "checksum": array_checksum(array),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "meta": self.meta,
        }
        _write_json(self.path / MANIFEST, record)

    def _reload(self) -> np.ndarray:
        array, reason = self.status(verify=False)
        if array is None:
            raise RuntimeError(f"feature cache {self.path} was just written but cannot be read back: {reason}")
        return array

    # ---- shards of a running extraction -----------------------------------------------------
    def _shard_path(self, index: int, n_shards: int) -> Path:
        return self.path / SHARDS / f"{index:05d}-of-{n_shards:05d}.npy"

    def save_shard(self, index: int, n_shards: int, rows: np.ndarray, array: np.ndarray) -> None:
        """Atomically store the features of `rows` (caller's row indices) as shard `index`."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(rows):
            raise ValueError(f"shard {index}: expected ({len(rows)}, dim) features, got {array.shape}.")
        path = self._shard_path(index, n_shards)
        _save_npy(path, array)
        record = {
            "rows": _rows_digest(rows),
            "shape": list(array.shape),
            "file_size": path.stat().st_size,
            "checksum": array_checksum(array),
        }
        _write_json(path.with_suffix(".json"), record)

    def load_shard(self, index: int, n_shards: int, rows: np.ndarray) -> np.ndarray | None:
        """Shard `index` if it was completely written for exactly these `rows`, else None."""
        path = self._shard_path(index, n_shards)
        record = _read_json(path.with_suffix(".json"))
        if record is None or record.get("rows") != _rows_digest(rows):
            return None
        array, reason = _open_npy(path, record, verify=True)
        if array is None:
            logger.warning("feature cache shard %s is unusable: %s; recomputing it.", path, reason)
        return array

    def finalize(self, n_rows: int, shards: Sequence[np.ndarray]) -> np.ndarray:
        """Assemble the shards (row indices per shard) into features.npy, commit, and drop the shards."""
        n_shards = len(shards)
        first = self.load_shard(0, n_shards, shards[0])
        if first is None:
            raise RuntimeError(f"feature cache {self.path}: shard 0 of {n_shards} is missing or corrupt.")
        dim = first.shape[1]
        size = _npy_size((n_rows, dim))
        with atomic_path(self.features_path, size=size) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, dim))
            with open(tmp, "r+b") as fh:  # the map is of a sparse file: take its blocks before any store
                reserve(fh, os.path.getsize(tmp), self.features_path)
            for index, rows in enumerate(shards):
                part = first if index == 0 else self.load_shard(index, n_shards, rows)
                if part is None or part.shape[1] != dim:
                    raise RuntimeError(
                        f"feature cache {self.path}: shard {index} of {n_shards} is missing or corrupt."
                    )
                out[rows] = part
            out.flush()
            del out  # close the memory map before the rename
        array = np.load(self.features_path, mmap_mode="r")
        self._write_manifest(array)
        self.clear_shards()
        return self._reload()


def _rows_digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()
