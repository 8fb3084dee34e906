"""Content digests of model files, memoised on disk so a rerun does not re-read gigabytes of weights.

A run's identity holds the content hash of each local or packaged model (`hash_model_files`), so
weights rewritten at the same path are a changed run. Hashing a multi-GB folder on every start would
cost seconds; the digest of each file is kept in `<cache>/file_digests.json` under a key that any
rewrite changes: path, size, modification and change time (ns), inode and device. The change time
cannot be set from user space, and an atomic replace gives a new inode. A file changed within the
last `_SETTLED_SECONDS` is hashed but not memoised: a rewrite inside one clock tick of the
filesystem would leave every key field equal (the "racy git" problem).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_json_atomic

MEMO_NAME = "file_digests.json"
_SETTLED_SECONDS = 2.0
_MAX_ENTRIES = 20000  # oldest dropped first; an entry is ~200 bytes


def default_cache_dir() -> Path:
    """w2s_hf's one cache folder (features, descriptors, file digests, unzipped packaged models):
    $W2S_HF_CACHE, else $HF_HOME/w2s_hf, else ~/.cache/w2s_hf."""
    if os.environ.get("W2S_HF_CACHE"):
        return Path(os.environ["W2S_HF_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "w2s_hf"
    return Path.home() / ".cache" / "w2s_hf"


def _key(path: str, st: os.stat_result) -> str:
    return f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}|{st.st_dev}"


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_digests(paths: Sequence[str]) -> list[str]:
    """sha256 (hex) of each file's bytes, read from the on-disk memo where the file is unchanged."""
    memo_path = default_cache_dir() / MEMO_NAME
    memo = _read_memo(memo_path)
    now, out, added = time.time(), [], {}
    for path in paths:
        st = os.stat(path)
        key = _key(os.path.abspath(path), st)
        digest = memo.get(key)
        if digest is None:
            digest = _sha256(path)
            if now - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 >= _SETTLED_SECONDS:
                added[key] = digest
        out.append(digest)
    if added:
        stale = {k.rsplit("|", 5)[0] for k in added}  # older entries of the same paths are dead
        kept = {k: v for k, v in memo.items() if k.rsplit("|", 5)[0] not in stale}
        kept.update(added)
        try:
            write_json_atomic(memo_path, dict(list(kept.items())[-_MAX_ENTRIES:]), strict=False)
        except OSError:  # a read-only or full cache folder only costs the next run a re-hash
            pass
    return out


def _read_memo(path: Path) -> dict[str, str]:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in memo.items() if isinstance(v, str)} if isinstance(memo, dict) else {}
