"""Exact linear heads: agreement with lstsq / scikit-learn, chunking, summing, two processes, inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from w2s_hf.heads import LinearHead, RidgePath, SufficientStats, fit_exact, select_ridge


def _problem(n: int, d: int, k: int, *, rank: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    if rank is None:
        X = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + rng.uniform(-3, 3, d)
    else:  # exactly rank-deficient: every row lies in a `rank`-dimensional affine subspace
        X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) + rng.uniform(-3, 3, d)
    Y = X @ rng.standard_normal((d, k)) + rng.standard_normal((n, k)) + 0.5
    return X, Y


CASES = {
    "tall": dict(n=200, d=15, k=1),
    "wide_min_norm": dict(n=30, d=60, k=2),
    "rank_deficient": dict(n=150, d=20, k=3, rank=7),
    # more targets than the one-product path takes (k > max(16, d // 16)): X^T Y computed apart
    "many_targets": dict(n=120, d=10, k=40),
}


@pytest.mark.parametrize("case", list(CASES))
def test_least_squares_matches_lstsq_and_sklearn(case):
    X, Y = _problem(**CASES[case])
    Y1 = Y[:, 0]
    head = fit_exact(X, Y1)
    ref = LinearRegression().fit(X, Y1)
    # LinearRegression centres and calls lstsq, so it too returns the minimum-norm solution.
    np.testing.assert_allclose(head.weight[:, 0], ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(head.bias[0], ref.intercept_, rtol=0, atol=1e-8)
    assert head.predict(X).shape == (X.shape[0],)

    multi = fit_exact(X, Y)
    Xc = X - X.mean(axis=0)
    w = np.linalg.lstsq(Xc, Y - Y.mean(axis=0), rcond=None)[0]
    np.testing.assert_allclose(multi.weight, w, rtol=0, atol=1e-8)
    np.testing.assert_allclose(multi.predict(X), LinearRegression().fit(X, Y).predict(X), atol=1e-8)

    no_icpt = fit_exact(X, Y, fit_intercept=False)
    np.testing.assert_allclose(no_icpt.weight, np.linalg.lstsq(X, Y, rcond=None)[0], rtol=0, atol=1e-8)
    np.testing.assert_array_equal(no_icpt.bias, 0.0)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_matches_sklearn(case, fit_intercept):
    X, Y = _problem(**CASES[case])
    head = fit_exact(X, Y, ridge=0.7, fit_intercept=fit_intercept)
    ref = Ridge(alpha=0.7, fit_intercept=fit_intercept, solver="svd").fit(X, Y)
    np.testing.assert_allclose(head.weight, ref.coef_.reshape(Y.shape[1], -1).T, rtol=0, atol=1e-9)
    np.testing.assert_allclose(head.bias, np.broadcast_to(ref.intercept_, (Y.shape[1],)), rtol=0, atol=1e-9)


@pytest.mark.parametrize("k", [2, 40])
def test_chunked_and_summed_statistics_equal_one_shot(k):
    X, Y = _problem(301, 12, k, seed=1)
    whole = SufficientStats.from_arrays(X, Y, chunk_size=len(X))
    chunked = SufficientStats.from_arrays(X, Y, chunk_size=7)
    streamed = SufficientStats.empty(12, k)
    for part in np.array_split(np.arange(len(X)), 5):
        streamed.update(X[part], Y[part], chunk_size=16)
    # Halves with far-apart means get different shifts; their sum must still be exact.
    order = np.argsort(X[:, 0])
    halves = SufficientStats.from_arrays(X[order[:100]], Y[order[:100]]) + SufficientStats.from_arrays(
        X[order[100:]], Y[order[100:]]
    )
    ref = whole.centred()
    for stats in (chunked, streamed, halves):
        assert stats.n == whole.n
        for got, want in zip(stats.centred(), ref):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-9)
        np.testing.assert_allclose(stats.solve(0.3).weight, whole.solve(0.3).weight, rtol=0, atol=1e-11)
    # raw moments about zero equal the textbook sums
    raw = whole.shifted(np.zeros(12), np.zeros(k))
    np.testing.assert_allclose(raw.xtx, X.T @ X, rtol=1e-12)
    np.testing.assert_allclose(raw.xty, X.T @ Y, rtol=1e-12)
    np.testing.assert_allclose(raw.yty, (Y**2).sum(0), rtol=1e-12)


def test_threaded_accumulation_matches_single_stream(monkeypatch):
    # The chunk loop runs in several single-threaded BLAS streams when BLAS has several threads;
    # force both paths (whatever this machine's core count) and compare.
    import w2s_hf.heads.stats as heads

    X, Y = _problem(1000, 30, 2, seed=6)
    monkeypatch.setattr(heads, "_blas_threads", lambda: 1)
    single = SufficientStats.from_arrays(X, Y, chunk_size=64)
    monkeypatch.setattr(heads, "_blas_threads", lambda: 3)
    threaded = SufficientStats.from_arrays(X, Y, chunk_size=64)
    for got, want in zip(threaded.centred(), single.centred()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(threaded.xtx, threaded.xtx.T, rtol=0, atol=0)
    np.testing.assert_allclose(threaded.solve().weight, single.solve().weight, rtol=0, atol=1e-11)


def test_large_mean_small_spread_stays_exact():
    # Mean 1e3, spread 1: X^T X - n m m^T would cancel about 6 of the 16 significant digits.
    rng = np.random.default_rng(2)
    X = 1e3 + rng.standard_normal((20000, 10))
    w = rng.standard_normal(10)
    y = X @ w + 0.1 * rng.standard_normal(20000)
    Xc = X - X.mean(axis=0)  # explicit centring in float64 is the accurate reference
    ref = np.linalg.lstsq(Xc, y - y.mean(), rcond=None)[0]
    head = fit_exact(X, y, chunk_size=1000)
    np.testing.assert_allclose(head.weight[:, 0], ref, rtol=1e-11, atol=0)
    np.testing.assert_allclose(head.predict(X), Xc @ ref + y.mean(), rtol=0, atol=1e-9)
    # float32 features (what encoders produce) take the same path
    head32 = fit_exact(X.astype(np.float32), y)
    X32 = X.astype(np.float32).astype(np.float64)
    ref32 = np.linalg.lstsq(X32 - X32.mean(0), y - y.mean(), rcond=None)[0]
    np.testing.assert_allclose(head32.weight[:, 0], ref32, rtol=1e-9, atol=0)


def test_select_ridge_picks_smallest_val_error_and_matches_direct_fit():
    X, Y = _problem(120, 40, 2, seed=3)
    Xv, Yv = _problem(80, 40, 2, seed=4)
    stats = SufficientStats.from_arrays(X, Y)
    grid = [0.0, 0.1, 1.0, 10.0, 100.0, 1000.0]
    best, head, errors = select_ridge(stats, Xv, Yv, grid=grid)
    assert sorted(errors) == grid
    assert errors[best] == min(errors.values())
    for ridge, err in errors.items():  # the eigenbasis shortcut equals fitting each penalty directly
        direct = fit_exact(X, Y, ridge=ridge)
        assert err == pytest.approx(np.mean((direct.predict(Xv) - Yv) ** 2), rel=1e-10)
    np.testing.assert_allclose(head.weight, fit_exact(X, Y, ridge=best).weight, rtol=0, atol=1e-10)
    default = RidgePath(stats).default_grid()
    assert default[0] == 0.0 and all(a < b for a, b in zip(default, default[1:]))
    best_d, _, errors_d = select_ridge(stats, Xv, Yv)
    assert set(errors_d) == set(default) and errors_d[best_d] == min(errors_d.values())


def test_head_save_load_roundtrip(tmp_path):
    X, Y = _problem(50, 6, 1)
    for targets in (Y[:, 0], np.hstack([Y, 2 * Y])):
        head = fit_exact(X, targets, ridge=0.1)
        path = tmp_path / "sub" / "head.safetensors"
        head.save(path)
        loaded = LinearHead.load(path)
        assert loaded.output_1d == (targets.ndim == 1)
        np.testing.assert_array_equal(loaded.predict(X), head.predict(X))
        assert loaded.predict(X).shape == targets.shape
    assert sorted(os.listdir(tmp_path / "sub")) == ["head.safetensors"]  # no temp files left behind
    from safetensors.numpy import save_file

    save_file({"something": np.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a LinearHead"):
        LinearHead.load(tmp_path / "other.safetensors")


BAD_INPUTS = {
    "length_mismatch": (lambda X, y: (X, y[:-1]), "targets"),
    "nan_features": (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 17, np.nan, X), y), "features"),
    "inf_features_float32": (lambda X, y: (np.where(X > 2.5, np.inf, X).astype(np.float32), y), "features"),
    "inf_targets": (lambda X, y: (X, np.where(np.arange(len(y)) == 3, np.inf, y)), "targets"),
    "empty_features": (lambda X, y: (X[:0], y[:0]), "features"),
    "features_1d": (lambda X, y: (X[:, 0], y), "features"),
    "targets_3d": (lambda X, y: (X, y.reshape(-1, 1, 1)), "targets"),
    "string_features": (lambda X, y: (X.astype(str), y), "features"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_value_error_naming_the_argument(case):
    X, Y = _problem(40, 5, 1)
    make, name = BAD_INPUTS[case]
    features, targets = make(X, Y[:, 0])
    with pytest.raises(ValueError, match=name):
        fit_exact(features, targets)
    with pytest.raises(ValueError, match=name):
        SufficientStats.from_arrays(features, targets)


def test_bad_ridge_and_predict_columns():
    X, Y = _problem(40, 5, 1)
    with pytest.raises(ValueError, match="ridge"):
        fit_exact(X, Y, ridge=-1.0)
    with pytest.raises(ValueError, match="features has 4 columns"):
        fit_exact(X, Y).predict(X[:, :4])
    nan_row = np.array(X)
    nan_row[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7, column 2"):
        fit_exact(nan_row, Y)


# ---- two processes through accelerate.debug_launcher (fork): module-level worker, file results ----

def _two_process_worker(out_prefix: str) -> None:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # The fork may inherit a single-process state created by an earlier test in this interpreter.
    AcceleratorState._reset_state(reset_partial_state=True)
    acc = Accelerator(cpu=True)
    X, Y = _problem(1000, 25, 3, seed=5)
    X = X + 1e3  # shifts differ per process and must be reconciled exactly
    cut = 370  # deliberately uneven shards
    rows = slice(0, cut) if acc.process_index == 0 else slice(cut, None)
    head = fit_exact(X[rows].astype(np.float32), Y[rows], ridge=0.5, accelerator=acc)
    np.save(f"{out_prefix}.{acc.process_index}.npy", np.vstack([head.weight, head.bias]))
    # A NaN on one process must raise on both, not hang the other in the all-reduce.
    bad = X[rows].copy()
    if acc.process_index == 1:
        bad[3, 4] = np.nan
    try:
        fit_exact(bad, Y[rows], accelerator=acc)
        message = "no error"
    except ValueError as exc:
        message = str(exc)
    with open(f"{out_prefix}.{acc.process_index}.err", "w") as f:
        f.write(message)


@pytest.mark.slow
def test_two_processes_fit_the_same_head_as_one(tmp_path):
    from accelerate import debug_launcher

    prefix = str(tmp_path / "head")
    debug_launcher(_two_process_worker, args=(prefix,), num_processes=2)
    X, Y = _problem(1000, 25, 3, seed=5)
    one = fit_exact((X + 1e3).astype(np.float32), Y, ridge=0.5)
    expected = np.vstack([one.weight, one.bias])
    for rank in range(2):
        got = np.load(f"{prefix}.{rank}.npy")
        assert np.max(np.abs(got - expected)) <= 1e-10
    errors = [open(f"{prefix}.{rank}.err").read() for rank in range(2)]
    assert "features contains NaN" in errors[1] and "another process" in errors[0]


def _conditioned(cond, n=500, d=20, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (U * np.logspace(0, -np.log10(cond), d)) @ V.T
    return X, X @ rng.standard_normal(d) + 0.01 * rng.standard_normal(n)


def test_fit_exact_is_a_truncated_solve_measured_against_lstsq():
    """Issue 12.5: ridge 0 solves the Gram with an eigenvalue cutoff, not lstsq on X. At cond(X) = 1e6
    nothing is cut and the gap is the documented ~1e-4 (weights) / ~1e-6 (predictions); at 1e8
    directions are dropped, and the fit's record says how many."""
    from w2s_hf.heads import fit_ridge

    X, y = _conditioned(1e6)
    assert np.linalg.cond(X) == pytest.approx(1e6, rel=1e-3)
    ref = np.linalg.lstsq(X, y, rcond=None)[0]
    head, record = fit_ridge(X, y, None, None, ridge=0.0, fit_intercept=False)
    w = head.weight.ravel()
    weight_gap = np.linalg.norm(w - ref) / np.linalg.norm(ref)
    pred_gap = np.linalg.norm(X @ (w - ref)) / np.linalg.norm(X @ ref)
    assert 1e-7 < weight_gap < 1e-3 and pred_gap < 1e-5
    assert record["dropped_directions"] == 0
    X, y = _conditioned(1e8)
    head, record = fit_ridge(X, y, None, None, ridge=0.0, fit_intercept=False)
    assert record["dropped_directions"] > 0
    assert np.linalg.norm(head.weight.ravel()) < np.linalg.norm(np.linalg.lstsq(X, y, rcond=None)[0])
    # ridge > 0 cuts nothing, and the record says nothing about truncation
    assert "dropped_directions" not in fit_ridge(X, y, None, None, ridge=1e-3, fit_intercept=False)[1]
