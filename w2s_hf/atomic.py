"""Atomic file writes: every artifact, cache entry and figure is written through `atomic_path`.

A reader never sees a half-written file and a failed write leaves the previous file untouched: the
data goes to a temporary file in the same folder (so the rename cannot cross filesystems), is
fsynced, then renamed over the target. A full disk is one line (`DiskFullError`: the folder, the
bytes needed and free), never a traceback; a file written through a memory map gets its blocks
reserved first (`reserve`), since a store into a map of a full disk kills the process with SIGBUS.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DiskFullError

_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it onto `path`.

    `suffix` ends the temporary name, for writers that pick a format from it (`savefig`, `np.save`).
    `size` (bytes, when known) is checked against the free space first. On any failure the temporary
    file is removed and `path` is left as it was; a full disk raises `DiskFullError` (one line).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if size is not None:
        check_space(path, size)
    # The writer's pid is in the name, so `remove_stale_temporaries` can tell a dead writer's leftover
    # (SIGKILL skips the cleanup below) from a file another live process is writing.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as err:
        raise (_disk_full(path, size or 1) if err.errno in _FULL else err) from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600), and some writers (safetensors) recreate it 0600:
        # give the finished file the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in _FULL or isinstance(err, DiskFullError):
            raise
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        raise _disk_full(path, max(size or 0, written + 1)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_space(path: str | os.PathLike, size: int) -> None:
    """Raise `DiskFullError` at once if the filesystem of `path` has fewer than `size` bytes free."""
    folder = Path(path).parent
    if shutil.disk_usage(folder).free < size:
        raise _disk_full(path, size)


def reserve(fh: Any, size: int, path: str | os.PathLike) -> None:
    """Allocate `size` bytes of the open file `fh` on disk now: a full disk is a `DiskFullError` here,
    not a SIGBUS on a later store through a memory map of a sparse file."""
    try:
        os.posix_fallocate(fh.fileno(), 0, size)
    except AttributeError:  # no posix_fallocate (macOS): the free-space check is the best we can do
        check_space(path, size)
    except OSError as err:
        if err.errno in _FULL:
            raise _disk_full(path, size) from None
        check_space(path, size)  # a filesystem without fallocate (EOPNOTSUPP, EINVAL)


def _disk_full(path: str | os.PathLike, size: int) -> DiskFullError:
    folder = Path(path).parent
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    return DiskFullError(errno.ENOSPC, f"no space left in {folder}: writing {Path(path).name} needs {size:,} bytes, "
                         f"{free:,} are free; free some space (or write elsewhere) and rerun, finished work is kept")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files in `folder` left by `atomic_path` writers that are no longer alive."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(".*.tmp*"):
        parts = tmp.name.split(".")
        pid = next((int(p) for p in parts[2:-1] if p.isdigit()), None)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def follow_umask(folder: str | os.PathLike) -> None:
    """Give a folder written by a library (mkdtemp is 0700, safetensors files 0600) and everything in it
    the permissions a plain open() / mkdir() would: shared caches and run folders stay readable."""
    mask = _umask()
    for root, dirs, files in os.walk(folder):
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
    os.chmod(folder, 0o777 & ~mask)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(obj: Any) -> Any:
    """numpy scalars/arrays to Python; NaN and inf to None so the file is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any, *, strict: bool = True, sort_keys: bool = False) -> None:
    """Write `obj` as indented JSON to `path` atomically.

    `strict` (results files): numpy values become Python ones, NaN/inf become null and the file ends
    with a newline. `strict=False` writes `obj` as `json.dump` does, byte for byte (run records).
    """
    data = json_safe(obj) if strict else obj
    text = json.dumps(data, indent=2, allow_nan=not strict, sort_keys=sort_keys) + ("\n" if strict else "")
    encoded = text.encode("utf-8")
    with atomic_path(path, size=len(encoded)) as tmp, open(tmp, "wb") as fh:
        fh.write(encoded)
