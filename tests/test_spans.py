"""The predictors' spans (w2s_hf.decomposition.spans): the cached route gives the numbers of a fresh computation
and of the n x n closed forms, and its cache never answers for other features or other rows."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_hf.decomposition.predictors import predictor_block
from w2s_hf.decomposition.spans import (
    SPAN_CACHE,
    SpanCache,
    features_key,
    kernel_projection,
    principal_components,
    span_pair,
    subspace_overlap,
)

N = 60


@pytest.fixture(autouse=True)
def empty_cache():
    SPAN_CACHE.clear()
    yield
    SPAN_CACHE.clear()


def _features(seed: int, d: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) @ rng.normal(size=(3, d)) + 0.5 * rng.normal(size=(n, d)) + 4).astype(np.float32)


def _closed_form(weak, strong, y, lam=0.1, share=0.9):
    """Every number from the n x n matrices: P = K (K + lam tr(K)/n I)^-1, U from an SVD of the centred rows."""
    n = len(y)

    def projector(X):
        Xc = np.asarray(X, np.float64) - np.asarray(X, np.float64).mean(axis=0)
        K = Xc @ Xc.T / n
        return K @ np.linalg.inv(K + lam * np.trace(K) / n * np.eye(n)), Xc

    (Pw, Xw), (Ps, Xs) = projector(weak), projector(strong)
    inside = Ps @ (np.eye(n) - Pw)

    def top(Xc):
        u, s, _ = np.linalg.svd(Xc, full_matrices=False)
        share_of = np.cumsum(s ** 2) / (s ** 2).sum()
        return u[:, : int(np.searchsorted(share_of, share - 1e-12) + 1)]

    cos = np.linalg.svd(top(Xw).T @ top(Xs), compute_uv=False)
    return {"kernel_projection": float(((inside @ y) ** 2).sum() / n),
            "kernel_operator_norm": np.linalg.norm(inside, 2),
            "subspace_overlap": float((cos ** 2).sum() / top(Xw).shape[1])}


def _block(weak, strong, y):
    pred = {s: np.random.default_rng(1).normal(size=(10, 1)) for s in ("val", "test")}
    return predictor_block(weak_features=weak, strong_features=strong, weak_labels=y, weak_pred=pred,
                           ceiling_pred=None, gold=pred, misfit={"y": 0.1}, targets=["y"])["values"]


@pytest.mark.parametrize("dims", [(4, 9), (80, 9), (6, 75)])  # fewer and more features than rows
def test_cached_and_fresh_blocks_match_the_closed_forms(dims):
    weak, strong = _features(0, dims[0]), _features(1, dims[1])
    y = np.random.default_rng(2).normal(size=(N, 1)) + 3
    fresh = _block(weak, strong, y)
    misses = SPAN_CACHE.misses
    again = _block(weak, strong, y)  # every side from the cache: the same numbers
    assert SPAN_CACHE.misses == misses and SPAN_CACHE.hits >= 2
    assert again == fresh
    expected = _closed_form(weak, strong, y)
    for name, value in expected.items():
        assert fresh[name] == pytest.approx(value, rel=1e-10), name


def test_another_weak_model_reuses_the_strong_side_only():
    strong, y = _features(1, 9), np.random.default_rng(2).normal(size=(N, 1))
    _block(_features(0, 4), strong, y)
    other = _features(5, 4)
    hits = SPAN_CACHE.hits
    cached = _block(other, strong, y)
    assert SPAN_CACHE.hits == hits + 1  # the strong components; the weak ones and the cross Gram are new
    SPAN_CACHE.clear()
    assert _block(other, strong, y) == cached


@pytest.mark.parametrize("change", ["one value", "two rows swapped", "one row fewer", "float64"])
def test_the_cache_never_answers_for_other_features_or_rows(change):
    weak, strong = _features(0, 4), _features(1, 9)
    y = np.random.default_rng(2).normal(size=(N, 1))
    first = _block(weak, strong, y)
    moved = strong.copy()
    if change == "one value":
        moved[7, 3] += 1.0
    elif change == "two rows swapped":  # the same rows in another order: other rows for the weak features' rows
        moved[[3, 11]] = moved[[11, 3]]
    elif change == "float64":
        moved = moved.astype(np.float64)
    rows = slice(None) if change != "one row fewer" else slice(0, N - 1)
    cached = _block(weak[rows], moved[rows], y[rows])
    SPAN_CACHE.clear()
    fresh = _block(weak[rows], moved[rows], y[rows])
    assert cached == fresh
    if change != "float64":  # (float64 copies of float32 numbers are the same features: another key, equal values)
        assert cached != first


def test_features_key_reads_shape_dtype_and_every_byte():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    keys = {features_key(x), features_key(x.reshape(4, 3)), features_key(x.astype(np.float64)),
            features_key(np.where(x == 11, 11.5, x).astype(np.float32))}
    assert len(keys) == 4
    assert features_key(np.asfortranarray(x)) == features_key(x.copy())  # the values, not the memory layout


def test_span_pair_equals_the_components_route():
    weak, strong = _features(3, 5), _features(4, 70)
    y = np.random.default_rng(5).normal(size=(N, 2))
    wpc, spc, cross = span_pair(weak, strong)
    SPAN_CACHE.clear()
    w2, s2 = principal_components(weak), principal_components(strong)
    np.testing.assert_allclose(cross, s2.cross(w2), atol=1e-12)
    a, b = kernel_projection(wpc, spc, y, cross=cross), kernel_projection(w2, s2, y)
    np.testing.assert_allclose(a["per_column"], b["per_column"], rtol=1e-10)
    assert a["operator_norm"] == pytest.approx(b["operator_norm"], rel=1e-10)
    assert subspace_overlap(wpc, spc, cross=cross)["overlap"] == pytest.approx(subspace_overlap(w2, s2)["overlap"])
    with pytest.raises(ValueError, match="same inputs"):
        span_pair(weak[:-1], strong)


def test_the_cache_stays_within_its_bytes_and_drops_the_oldest():
    cache = SpanCache(max_bytes=3 * 800)
    for i in range(5):
        cache.put(("x", i), (np.zeros(100),))  # 800 bytes each
    assert cache.nbytes <= 3 * 800
    assert cache.get(("x", 0)) is None and cache.get(("x", 4)) is not None
    assert (cache.hits, cache.misses) == (1, 1)


def test_one_blas_thread_limits_blas_and_honours_the_solve_threads_setting(monkeypatch):
    from threadpoolctl import threadpool_info

    from w2s_hf.decomposition.spans import one_blas_thread

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    before = blas_threads()
    with one_blas_thread():
        assert blas_threads() == {1}
    assert blas_threads() == before
    monkeypatch.setenv("W2S_HF_SOLVE_THREADS", "0")  # 0: the BLAS's own count, as the heads' solves
    with one_blas_thread():
        assert blas_threads() == before
