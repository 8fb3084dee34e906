"""Principal spans of two representations on the same rows, and the two predictors read off them.

    principal_components  the principal directions U of centred features, as functions on the rows
    span_pair             both representations' components and U_s^T U_w, from the fewest products
    kernel_projection     ||P_s (I - P_w) w||^2 / n of the weak labels and the label-free ||P_s (I - P_w)||
                          (after Xue, Li & Mirzasoleiman, ICML 2025)
    subspace_overlap      effective ranks and principal angles of the two spans (Dong et al., ICML 2025)

Cost (issue 23: the predictors may add at most 10% to a sweep's time). Every product over the n rows
is a float64 moment accumulated in chunks by `SufficientStats`, the exact heads' own barrier-free
streams (one single-threaded BLAS stream per core): the centred Gram of each representation and their
cross Gram, never a float64 copy of the features, never U itself. The kernel projection then works in
the components' coordinates (U^T w, U_s^T U_w) instead of on n-vectors, and the d x d
eigendecompositions and small products run on one BLAS thread (`one_blas_thread`, as the heads'
solves: on shared cores a threaded eigh of 768 x 768 took 1-2 s against 0.09 s on one thread). What
depends on the features alone (each side's components, the cross Gram) is kept in a small in-process
cache (`SPAN_CACHE`) keyed by a sha256 of the features' bytes, shape and dtype, never by a name: a
sweep's runs that share a seed's strong w2s_train features (every weak model and budget) compute the
strong side once, and those that share the weak ones too (every budget) compute the cross Gram once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np

from ..heads.linear import solve_threads
from ..heads.stats import SufficientStats

# P = K (K + lambda * tr(K)/n * I)^-1: lambda is in units of the mean eigenvalue of K = X X^T / n
KERNEL_LAMBDA = 0.1
# effective rank: the fewest principal components holding this share of the centred features' variance
VARIANCE_SHARE = 0.9
# components below this fraction of the largest eigenvalue of the Gram (1e-6 of the largest singular value)
# are dropped: the Gram route resolves them poorly and their weight mu / (mu + beta) is below ~1e-11 n
DROP_BELOW = 1e-12


class SpanCache:
    """A least-recently-used store of arrays, bounded in bytes, with hit and miss counts."""

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = int(max_bytes)
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple, tuple[np.ndarray, ...]] = OrderedDict()

    def get(self, key: tuple) -> tuple[np.ndarray, ...] | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found

    def put(self, key: tuple, value: tuple[np.ndarray, ...]) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while self._entries and self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for value in self._entries.values() for a in value)

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0


SPAN_CACHE = SpanCache()


_CONTROLLER: list = []  # threadpoolctl's view of the loaded BLAS libraries, taken once (see one_blas_thread)


@contextlib.contextmanager
def one_blas_thread():
    """The heads' `single_blas_thread` (one BLAS thread, or W2S_HF_SOLVE_THREADS), without its scan of the
    process's libraries on every call: ~1 ms each with torch loaded, and a block enters several. The scan
    is taken on first use, when this module's imports have loaded numpy's and scipy's BLAS."""
    threads = solve_threads()
    if threads <= 0:
        yield
        return
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    with _CONTROLLER[0].limit(limits=threads, user_api="blas"):
        yield


def features_key(X: np.ndarray) -> str:
    """sha256 of the array's shape, dtype and bytes: equal keys mean equal features on equal rows."""
    data = np.ascontiguousarray(X)
    digest = hashlib.sha256(f"{data.shape}|{data.dtype.str}|".encode())
    digest.update(memoryview(data).cast("B"))
    return digest.hexdigest()


# ---------------------------------------------------------------------- principal components
class Components(NamedTuple):
    """Principal directions U = (F - mean) @ T (n, r) of centred features, never formed. With d <= n, F is
    the caller's (n, d) features (not copied) and T = V / sqrt(eig) from their centred d x d Gram; with
    d > n, F = U itself (eigenvectors of the n x n kernel), mean = 0 and T = I. mu (r,): the nonzero
    eigenvalues of K = Xc Xc^T / n, largest first. key: `features_key` of the features."""

    F: np.ndarray
    mean: np.ndarray
    T: np.ndarray
    mu: np.ndarray
    key: str

    def coords(self, L: np.ndarray) -> np.ndarray:
        """U^T L (U^T 1 = 0, so L's column means do not matter), F read in float64 chunks. (Callers at large
        n run it under `one_blas_thread`: matrix-vector products.)"""
        L = np.asarray(L, dtype=np.float64).reshape(len(self.F), -1)
        L = L - L.mean(axis=0)
        out = np.zeros((self.F.shape[1], L.shape[1]))
        # one reused float64 buffer (a fresh one per chunk costs its page faults, ~4x the product itself)
        buf = np.empty((min(len(self.F), 2048), self.F.shape[1]))
        for start in range(0, len(self.F), len(buf)):
            rows = buf[: len(self.F[start : start + len(buf)])]
            np.copyto(rows, self.F[start : start + len(rows)])
            np.subtract(rows, self.mean, out=rows)
            out += rows.T @ L[start : start + len(rows)]
        return self.T.T @ out

    def cross(self, other: Components, rows: int | None = None, cols: int | None = None) -> np.ndarray:
        """U_self[:, :rows]^T U_other[:, :cols], from the (cached) centred cross Gram of the two."""
        key = ("cross", self.key, other.key)
        found = SPAN_CACHE.get(key)
        if found is None:
            found = (_moments(self.F, other.F)[3],)
            SPAN_CACHE.put(key, found)
        with one_blas_thread():
            return self.T[:, :rows].T @ found[0] @ other.T[:, :cols]


def principal_components(X: np.ndarray) -> Components:
    """The principal directions of the column-centred X as functions on its rows (float64, cached).

    From the smaller Gram matrix (d x d, accumulated in chunks; or n x n when d > n): O(n min(n, d)^2),
    a few times cheaper than an SVD, and U itself is never formed. The caller's X is never modified.
    """
    X, key = _checked(X)
    found = SPAN_CACHE.get(("components", key))
    if found is not None:
        return _unpack(found, X, key)
    moments = _moments(X, np.zeros((len(X), 1))) if X.shape[1] <= len(X) else None
    with one_blas_thread():  # the eigh: see the module docstring
        pc = _from_kernel(X, key) if moments is None else _from_gram(X, moments, key)
    SPAN_CACHE.put(("components", key), _pack(pc, X))
    return pc


def span_pair(weak: np.ndarray, strong: np.ndarray) -> tuple[Components, Components, np.ndarray]:
    """(weak components, strong components, M = U_s^T U_w) of two representations of the same rows.

    The strong side's centred Gram is one pass over the rows; the weak side's Gram and the cross Gram are
    one more (the weak features as X, the strong as the targets of one `SufficientStats`); each is cached.
    """
    strong_pc = principal_components(strong)
    weak, key = _checked(weak)
    if len(weak) != len(strong_pc.F):
        raise ValueError(f"weak and strong features must be rows of the same inputs, got {len(weak)} and "
                         f"{len(strong_pc.F)} rows")
    found = SPAN_CACHE.get(("pair", key, strong_pc.key))
    if found is not None:
        return _unpack(found[1:], weak, key), strong_pc, found[0]
    weak_pc = None if weak.shape[1] <= len(weak) else principal_components(weak)
    # the weak features as X, the strong ones (or U of d > n) as targets: the weak Gram and the cross Gram
    moments = _moments(weak if weak_pc is None else weak_pc.F, strong_pc.F)
    with one_blas_thread():  # the d x d work
        weak_pc = _from_gram(weak, moments, key) if weak_pc is None else weak_pc
        M = strong_pc.T.T @ moments[3].T @ weak_pc.T  # moments[3]: (F_w - mean)^T (F_s - mean)
    SPAN_CACHE.put(("pair", key, strong_pc.key), (M, *_pack(weak_pc, weak)))
    return weak_pc, strong_pc, M


def _moments(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centred float64 moments of (X, Y) (`SufficientStats.centred`): in the heads' parallel streams, or on
    one BLAS thread below ~1e9 flops, where starting the streams costs more than they save (1 ms against
    6 ms at 446 x 192 on two busy cores)."""
    small = len(X) * X.shape[1] * (X.shape[1] + Y.shape[1]) < 1e9
    with one_blas_thread() if small else contextlib.nullcontext():  # one thread: one stream
        return SufficientStats.from_arrays(X, Y).centred()


def _checked(X: Any) -> tuple[np.ndarray, str]:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"features must be a (n, d) array with n >= 2 rows, got shape {X.shape}")
    return X, features_key(X)


def _pack(pc: Components, X: np.ndarray) -> tuple[np.ndarray, ...]:
    """What the cache keeps of components: not the caller's features (the key stands for them); U of d > n."""
    return (pc.mean, pc.T, pc.mu) + (() if pc.F is X else (pc.F,))


def _unpack(found: tuple[np.ndarray, ...], X: np.ndarray, key: str) -> Components:
    mean, T, mu, *explicit = found
    return Components(explicit[0] if explicit else X, mean, T, mu, key)


def _kept(eig: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs largest first, without those below DROP_BELOW of the largest."""
    eig, V = eig[::-1], V[:, ::-1]
    keep = eig > (DROP_BELOW * eig[0] if eig.size and eig[0] > 0 else np.inf)
    return eig[keep], V[:, keep]


def _from_gram(X: np.ndarray, moments: tuple[np.ndarray, ...], key: str) -> Components:
    """Components of X (d <= n) from its centred moments (x_mean, y_mean, Gram, ...)."""
    from scipy.linalg import eigh

    eig, V = _kept(*eigh(moments[2], check_finite=False, driver="evd"))
    return Components(X, moments[0], V / np.sqrt(eig), eig / len(X), key)


def _from_kernel(X: np.ndarray, key: str) -> Components:
    """Components of X (d > n) from the n x n kernel of its centred rows."""
    from scipy.linalg import eigh

    Xc = np.array(X, dtype=np.float64)  # one float64 copy, centred in place (n < d: small)
    Xc -= Xc.mean(axis=0)
    eig, V = _kept(*eigh(Xc @ Xc.T, check_finite=False, driver="evd"))
    return Components(np.ascontiguousarray(V), np.zeros(V.shape[1]), np.eye(len(eig)), eig / len(X), key)


# ---------------------------------------------------------------------- the two predictors
def smoother(mu: np.ndarray, n: int, lam: float = KERNEL_LAMBDA) -> np.ndarray:
    """Eigenvalues mu / (mu + beta) of P = K (K + beta I)^-1, beta = lam * tr(K) / n."""
    if lam <= 0:
        raise ValueError(f"the kernel ridge lambda must be > 0, got {lam}")
    beta = lam * float(mu.sum()) / n
    return mu / (mu + beta)


def effective_rank(mu: np.ndarray, share: float = VARIANCE_SHARE) -> int:
    """The fewest principal components whose eigenvalues hold `share` of the total variance."""
    if not 0 < share <= 1:
        raise ValueError(f"variance share must be in (0, 1], got {share}")
    if mu.size == 0:
        return 0
    cumulative = np.cumsum(mu) / mu.sum()
    return int(np.searchsorted(cumulative, share - 1e-12) + 1)


def kernel_projection(weak_pc: Components, strong_pc: Components, labels: np.ndarray,
                      lam: float = KERNEL_LAMBDA, cross: np.ndarray | None = None) -> dict[str, Any]:
    """||P_s (I - P_w) w||^2 / n per label column w, its share of ||w - mean(w)||^2, and the label-free
    operator norm ||P_s (I - P_w)||. `weak_pc`, `strong_pc`: components of the same rows; `cross`:
    M = Us^T Uw if already computed (`span_pair`).

    In coordinates: with P = U D U^T and U orthonormal, ||P_s (I - P_w) w|| = ||D_s (U_s^T w - M D_w U_w^T w)||,
    and ||P_s (I - P_w)||^2 is the top eigenvalue of D_s (I - M (2 D_w - D_w^2) M^T) D_s (r_s x r_s).
    """
    n = len(weak_pc.F)
    L = np.asarray(labels, dtype=np.float64).reshape(n, -1)
    dw, ds = smoother(weak_pc.mu, n, lam), smoother(strong_pc.mu, n, lam)
    M = strong_pc.cross(weak_pc) if cross is None else cross
    with one_blas_thread():
        cw, cs = weak_pc.coords(L), strong_pc.coords(L)
        value = ((ds[:, None] * (cs - M @ (dw[:, None] * cw))) ** 2).sum(axis=0) / n
        gram = np.eye(len(ds)) - (M * (2 * dw - dw ** 2)) @ M.T
        gram = ds[:, None] * gram * ds[None, :]
        top = float(np.linalg.eigvalsh((gram + gram.T) / 2)[-1]) if len(ds) else 0.0
    spread = ((L - L.mean(axis=0)) ** 2).sum(axis=0) / n
    share = np.where(spread > 0, value / np.where(spread > 0, spread, 1.0), np.nan)
    return {"per_column": value, "share": share, "operator_norm": float(np.sqrt(max(top, 0.0))), "lambda": lam}


def subspace_overlap(weak_pc: Components, strong_pc: Components, share: float = VARIANCE_SHARE,
                     cross: np.ndarray | None = None) -> dict[str, Any]:
    """Effective ranks r_w, r_s, principal angles between the spans of the top r_w weak and r_s strong
    components (as functions on the rows), overlap = sum cos^2 / r_w (1: the weak span lies in the
    strong one) and discrepancy = r_w - sum cos^2 (the dimension of V_w outside V_s). `cross`: Us^T Uw
    if already computed."""
    rw, rs = effective_rank(weak_pc.mu, share), effective_rank(strong_pc.mu, share)
    if rw == 0 or rs == 0:
        return {"effective_rank_weak": rw, "effective_rank_strong": rs, "principal_angles_deg": [],
                "overlap": None, "discrepancy": None, "variance_share": share}
    block = weak_pc.cross(strong_pc, rw, rs) if cross is None else cross[:rs, :rw].T
    cos = np.clip(np.linalg.svd(block, compute_uv=False), 0.0, 1.0)
    inside = float((cos ** 2).sum())
    return {"effective_rank_weak": rw, "effective_rank_strong": rs,
            "principal_angles_deg": np.degrees(np.arccos(cos)).tolist(),
            "overlap": inside / rw, "discrepancy": rw - inside, "variance_share": share}
