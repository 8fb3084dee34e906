"""`LinearHead`: an affine map on frozen features, its predictions and its safetensors file."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..arrays import as_real_array

# Rows per chunk are chosen so that one float64 chunk is about this many bytes: large enough for
# BLAS to run at full speed, small enough that the chunk stays a small fraction of the features.
_CHUNK_BYTES = 32 << 20


@contextmanager
def single_blas_thread():
    """Run the enclosed numpy BLAS / LAPACK calls on one thread (no-op without threadpoolctl).

    The d x d solves and the predictions are short calls, each ending in a barrier of the BLAS's
    threads; on a busy machine (other jobs, or torch's OpenMP pool just after feature extraction)
    a thread that lost its core stalls every barrier, and a 10,000 x 768 fit took 0.4 to 2.8 s where
    the arithmetic is ~0.05 s (scripts/benchmarks/bench_heads.py --after_torch). One thread loses
    little on an idle machine for these calls; the Gram accumulation, the one long product, runs
    its own barrier-free streams (`SufficientStats`). W2S_HF_SOLVE_THREADS=N sets another count, 0
    leaves the BLAS's own (e.g. for a very large d on an idle many-core machine).
    """
    threads = solve_threads()
    if threads <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def solve_threads() -> int:
    """BLAS threads for short solves (`single_blas_thread`): W2S_HF_SOLVE_THREADS, default 1; 0 leaves the
    BLAS's own count (also what runs without threadpoolctl)."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return 0
    return int(os.environ.get("W2S_HF_SOLVE_THREADS", "1"))


def default_chunk_size(d: int) -> int:
    """Rows per chunk for `d` features (~32 MiB of float64, between 256 and 16384 rows)."""
    return int(min(16384, max(256, _CHUNK_BYTES // (8 * max(d, 1)))))


@dataclass(eq=False)
class LinearHead:
    """An affine map x -> x @ weight + bias, stored in float64.

    `output_1d` records that the head was fitted on 1-D targets, so `predict` returns shape (n,)
    rather than (n, 1).
    """

    weight: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    output_1d: bool = False

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float64)
        self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
        if self.weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (d, k), got shape {self.weight.shape}")
        if self.bias.shape != (self.weight.shape[1],):
            raise ValueError(f"bias must have shape ({self.weight.shape[1]},), got {self.bias.shape}")
        if self.output_1d and self.weight.shape[1] != 1:
            raise ValueError("output_1d=True needs exactly one output column")

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[1])

    def predict(self, features: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """Predictions (n,) or (n, k) in float64; features are converted chunk by chunk."""
        X = as_real_array(features, "features", ndim=(2,), allow_empty=True)
        if X.shape[1] != self.in_features:
            raise ValueError(
                f"features has {X.shape[1]} columns but the head expects {self.in_features}; "
                "use features from the same representation the head was fitted on"
            )
        step = chunk_size or default_chunk_size(self.in_features)
        out = np.empty((X.shape[0], self.out_features), dtype=np.float64)
        with single_blas_thread():
            for start in range(0, X.shape[0], step):
                chunk = np.asarray(X[start : start + step], dtype=np.float64)
                np.matmul(chunk, self.weight, out=out[start : start + step])
        out += self.bias
        return out[:, 0] if self.output_1d else out

    def save(self, path: str | os.PathLike) -> None:
        """Write weight, bias and `output_1d` to a safetensors file (atomically)."""
        write_head_file(path, "LinearHead", {"weight": self.weight, "bias": self.bias},
                        output_1d=str(bool(self.output_1d)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearHead:
        """Read a head written by `save`."""
        tensors, meta = read_head_file(path, "LinearHead", ("weight", "bias"))
        return cls(tensors["weight"], tensors["bias"], output_1d=meta.get("output_1d") == "True")


def write_head_file(path: str | os.PathLike, kind: str, tensors: dict[str, np.ndarray], **metadata: str) -> None:
    """A head's arrays and metadata in a safetensors file (atomically), tagged format=w2s_hf.<kind>."""
    from safetensors.numpy import save_file

    from ..atomic import atomic_path

    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
                  metadata={"format": f"w2s_hf.{kind}", **metadata})


def read_head_file(path: str | os.PathLike, kind: str, keys: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict]:
    """({key: array}, metadata) of a file written by `write_head_file` for `kind`; a clear error otherwise."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no {kind} file at {path!r}")
    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
        found = set(f.keys())
        if not set(keys) <= found or meta.get("format") != f"w2s_hf.{kind}":
            raise ValueError(f"{path!r} is not a {kind} file (keys {sorted(found)}, metadata {meta})")
        return {k: f.get_tensor(k) for k in keys}, meta
