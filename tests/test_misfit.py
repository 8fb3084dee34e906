"""The misfit decomposition: theory identities with exact heads, hand-computed values, bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from w2s_hf.decomposition.core import decompose, fit_gain_on_misfit
from w2s_hf.heads import fit_exact


def _representations(n: int, seed: int):
    """A shared latent seen through a strong (wide, mostly linear) and a weak (narrow, tanh) map."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 6))
    strong = np.hstack([z @ rng.standard_normal((6, 12)), np.sin(z[:, :3]), z[:, :2] ** 2])
    weak = np.tanh(z[:, :3] @ rng.standard_normal((3, 4)))
    return strong, weak


@pytest.mark.parametrize("k", [1, 2])
def test_realizable_pythagoras_is_exact_on_the_fitted_set(k):
    # Truth exactly linear in the strong features; the w2s head is the orthogonal projection of the
    # weak labels onto span(strong features, 1), which contains the truth. Pythagoras then gives
    # w2s_error = weak_error - misfit exactly on the set the head was fitted on.
    rng = np.random.default_rng(0)
    strong, weak = _representations(1200, seed=1)
    y = strong @ rng.standard_normal((strong.shape[1], k)) + rng.standard_normal(k)
    y = y[:, 0] if k == 1 else y
    train_weak, train_w2s = slice(0, 600), slice(600, None)
    weak_head = fit_exact(weak[train_weak], y[train_weak], ridge=1e-3)
    weak_labels = weak_head.predict(weak[train_w2s])
    w2s_head = fit_exact(strong[train_w2s], weak_labels)
    dec = decompose(y[train_w2s], weak_labels, w2s_head.predict(strong[train_w2s]), n_boot=0)
    assert dec.misfit > 0.01 * dec.weak_error  # the identity is not trivially 0 = 0
    assert dec.w2s_error == pytest.approx(dec.weak_error - dec.misfit, rel=1e-8, abs=1e-12 * dec.weak_error)
    assert abs(dec.residual) <= 1e-8 * dec.weak_error
    for values in dec.per_target.values():
        assert abs(values["residual"]) <= 1e-8 * values["weak_error"]


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_ridge_is_a_projection_onto_a_ball_so_gain_exceeds_misfit(fit_intercept):
    # Ridge with penalty lam minimises ||yhat - Xw (- b)||^2 over the ball ||w|| <= ||w_lam|| (Lagrange
    # duality). That set of prediction vectors is convex (an unpenalised intercept only adds a free
    # direction, keeping it convex), and the fitted predictions are the projection of the weak labels
    # onto it. For any truth y = X w* (+ b*) with ||w*|| <= ||w_lam||, y lies in the set, so the
    # projection inequality gives ||y - yhat||^2 >= ||y - P||^2 + ||P - yhat||^2: gain >= misfit.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 20))
    weak_labels = X @ rng.standard_normal(20) + rng.standard_normal(300)  # arbitrary weak predictions
    head = fit_exact(X, weak_labels, ridge=150.0, fit_intercept=fit_intercept)
    radius = np.linalg.norm(head.weight)
    w2s = head.predict(X)
    for scale in (0.1, 0.5, 0.9, 1.0):
        for trial in range(5):
            direction = rng.standard_normal(20)
            y = X @ (scale * radius * direction / np.linalg.norm(direction)) + (2.0 if fit_intercept else 0.0)
            dec = decompose(y, weak_labels, w2s, n_boot=0)
            assert dec.misfit > 0
            assert dec.gain >= dec.misfit - 1e-10 * dec.weak_error, (scale, trial)
    # Outside the ball the guarantee is gone: with the weak labels themselves as truth, gain < 0.
    outside = decompose(weak_labels, weak_labels, w2s, n_boot=0)
    assert outside.gain < outside.misfit


def test_hand_computed_values_per_target_and_averaged():
    y = np.array([[0, 1], [1, 1], [2, 1], [3, 1]], float)
    weak = np.array([[1, 2], [1, 0], [1, 1], [1, 1]], float)
    w2s = np.array([[0, 1], [1, 1], [1, 1], [3, 2]], float)
    ceiling = np.array([[0, 1], [1, 1], [2, 1], [2, 1]], float)
    dec = decompose(y, weak, w2s, ceiling, target_names=["a", "b"], n_boot=0)
    expected_a = dict(weak_error=1.5, w2s_error=0.25, misfit=1.25, gain=1.25, residual=0.0,
                      predicted_w2s_error=0.25, ceiling_error=0.25, pgr=1.0)
    expected_b = dict(weak_error=0.5, w2s_error=0.25, misfit=0.75, gain=0.25, residual=-0.5,
                      predicted_w2s_error=-0.25, ceiling_error=0.0, pgr=0.5)
    assert dec.per_target["a"] == pytest.approx(expected_a)
    assert dec.per_target["b"] == pytest.approx(expected_b)
    for key in set(expected_a) - {"pgr"}:
        assert getattr(dec, key) == pytest.approx((expected_a[key] + expected_b[key]) / 2), key
    # averaged pgr = sum(gain) / sum(gap) = (1.25 + 0.25) / (1.25 + 0.5), not the mean of the ratios
    assert dec.pgr == pytest.approx(1.5 / 1.75) and dec.pgr_reason is None
    assert dec.n == 4 and dec.ci == {}
    single = decompose(y[:, 0], weak[:, 0], w2s[:, 0], ceiling[:, 0], n_boot=0)
    assert single.per_target == {"target_0": pytest.approx(expected_a)}
    assert single.pgr == pytest.approx(1.0)


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.standard_normal(n)
    weak = y + rng.standard_normal(n)
    w2s = y + 0.5 * rng.standard_normal(n)
    ceiling = y + 0.1 * rng.standard_normal(n)
    dec = decompose(y, weak, w2s, ceiling, n_boot=2000, seed=1)
    assert set(dec.ci) == {"weak_error", "w2s_error", "misfit", "gain", "residual",
                           "predicted_w2s_error", "ceiling_error", "pgr"}
    for key, (lo, hi) in dec.ci.items():
        assert lo <= getattr(dec, key) <= hi, key
    # The percentile interval of a mean has width ~ 2 * 1.96 * sd / sqrt(n).
    sd = np.std((weak - y) ** 2)
    width = dec.ci["weak_error"][1] - dec.ci["weak_error"][0]
    assert width == pytest.approx(2 * 1.96 * sd / np.sqrt(n), rel=0.15)
    again = decompose(y, weak, w2s, ceiling, n_boot=2000, seed=1)
    assert again.ci == dec.ci
    assert decompose(y, weak, w2s, ceiling, n_boot=2000, seed=2).ci != dec.ci
    # One set of row indices per replicate for all quantities: a student identical to its teacher
    # has zero gain and misfit in every replicate, so degenerate intervals.
    same = decompose(y, weak, weak, n_boot=200, seed=0)
    assert same.ci["gain"] == [0.0, 0.0] and same.ci["misfit"] == [0.0, 0.0]
    assert "pgr" not in same.ci and same.pgr is None and same.ceiling_error is None


def test_pgr_null_with_reason_when_no_gap_and_json_output():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    weak = y + np.array([1.0, -1.0, 0.5, 0.0])
    dec = decompose(y, weak, y + 0.1, ceiling_pred=weak, n_boot=50)
    assert dec.ceiling_error == dec.weak_error and dec.pgr is None and "<= 0" in dec.pgr_reason
    assert "pgr" not in dec.ci
    out = dec.as_dict()
    assert out["pgr_reason"] == dec.pgr_reason
    text = json.dumps(out, allow_nan=False)  # strict JSON: nan became null
    back = json.loads(text)
    assert back["pgr"] is None and back["weak_error"] == pytest.approx(dec.weak_error)
    assert all(type(v) is float for k, v in out.items() if k in ("weak_error", "gain", "misfit"))
    no_ceiling = decompose(y, weak, y + 0.1, n_boot=0).as_dict()
    assert no_ceiling["ceiling_error"] is None and no_ceiling["pgr"] is None
    json.dumps(no_ceiling, allow_nan=False)


def test_pgr_withheld_when_gap_is_negative_or_its_interval_contains_zero():
    """The default job's `pgr 9.17 [-36.5, 54.1]`: a weak error next to the ceiling's makes the ratio
    explode. pgr is null, with a reason, when the gap is <= 0 or its bootstrap interval holds 0."""
    rng = np.random.default_rng(0)
    n = 400
    y = rng.standard_normal(n)
    weak = y + rng.standard_normal(n)
    w2s = y + 0.8 * rng.standard_normal(n)
    # ceiling worse than weak: the gap is negative, the ratio meaningless
    worse = decompose(y, weak, w2s, y + 1.2 * rng.standard_normal(n), n_boot=0)
    assert worse.pgr is None and "<= 0" in worse.pgr_reason
    assert worse.as_dict()["per_target"]["target_0"]["pgr"] is None
    # ceiling a hair better than weak: the point gap is > 0 but its interval straddles 0
    close = decompose(y, weak, w2s, weak + 0.02 * rng.standard_normal(n), n_boot=500, seed=0)
    assert close.weak_error > close.ceiling_error
    assert close.pgr is None and "contains 0" in close.pgr_reason and "pgr" not in close.ci
    assert "contains 0" in close.per_target["target_0"]["pgr_reason"]
    # a clear gap: pgr reported with its interval
    clear = decompose(y, weak, w2s, y + 0.1 * rng.standard_normal(n), n_boot=500, seed=0)
    assert clear.pgr_reason is None and clear.ci["pgr"][0] <= clear.pgr <= clear.ci["pgr"][1]
    # one target without a gap does not blow up the average (sum of gains over sum of gaps)
    two = decompose(np.c_[y, y], np.c_[weak, weak], np.c_[w2s, w2s],
                    np.c_[y + 0.1 * rng.standard_normal(n), weak - 0.001], n_boot=0)
    per = two.per_target
    assert per["target_1"]["pgr"] is None and per["target_0"]["pgr"] is not None
    gains = per["target_0"]["gain"] + per["target_1"]["gain"]
    gaps = sum(per[t]["weak_error"] - per[t]["ceiling_error"] for t in per)
    assert two.pgr == pytest.approx(gains / gaps)


def test_fit_gain_on_misfit_resamples_whole_clusters():
    """Issue 12.4: a sweep's points are runs x targets, correlated within a run. With each run's point
    repeated 6 times (6 identical "rubrics"), resampling runs as clusters gives exactly the interval of
    the 21 runs alone; resampling the 126 points as independent gives a narrower, wrong one."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, 21)
    y = 1.2 * x + 0.2 * rng.standard_normal(21)
    runs = np.repeat(np.arange(21), 6)
    alone = fit_gain_on_misfit(x, y, n_boot=400, seed=5)
    clustered = fit_gain_on_misfit(x[runs], y[runs], n_boot=400, seed=5, clusters=[("normal", f"w{r}", 0)
                                                                                      for r in runs])
    naive = fit_gain_on_misfit(x[runs], y[runs], n_boot=400, seed=5)
    assert clustered["slope"] == pytest.approx(alone["slope"])
    assert clustered["ci"]["slope"] == pytest.approx(alone["ci"]["slope"])
    assert clustered["resampling_unit"] == "cluster" and clustered["n_clusters"] == 21
    assert naive["resampling_unit"] == "point"
    width = {k: f["ci"]["slope"][1] - f["ci"]["slope"][0] for k, f in (("c", clustered), ("n", naive))}
    assert width["n"] < 0.6 * width["c"]
    with pytest.raises(ValueError, match="clusters has 3 labels"):
        fit_gain_on_misfit(x, y, clusters=[1, 2, 3])


BAD = {
    "shape_mismatch": (dict(w2s_pred=np.zeros(5)), "w2s_pred"),
    "nan_weak": (dict(weak_pred=np.array([0.0, np.nan, 1.0, 2.0])), "weak_pred"),
    "inf_ceiling": (dict(ceiling_pred=np.array([0.0, np.inf, 1.0, 2.0])), "ceiling_pred"),
    "three_d": (dict(y_true=np.zeros((4, 1, 1))), "y_true"),
    "empty": (dict(y_true=np.zeros(0), weak_pred=np.zeros(0), w2s_pred=np.zeros(0)), "y_true"),
    "names": (dict(target_names=["a", "b"]), "target_names"),
    "divergence": (dict(divergence="hinge"), "divergence"),
    "n_boot": (dict(n_boot=-1), "n_boot"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_decompose_bad_inputs_name_the_argument(case):
    kwargs = dict(y_true=np.arange(4.0), weak_pred=np.ones(4), w2s_pred=np.arange(4.0) + 0.5)
    override, name = BAD[case]
    kwargs.update(override)
    with pytest.raises(ValueError, match=name):
        decompose(**kwargs)


def test_fit_gain_on_misfit():
    misfit = np.array([0.1, 0.4, 0.5, 0.9, 1.7, 2.0])
    exact = fit_gain_on_misfit(misfit, 2 * misfit + 1, n_boot=200)
    assert exact["slope"] == pytest.approx(2.0) and exact["intercept"] == pytest.approx(1.0)
    assert exact["r2"] == pytest.approx(1.0) and exact["n"] == 6
    assert exact["ci"]["slope"] == pytest.approx([2.0, 2.0])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 200)
    gain = 0.8 * x + 0.1 + 0.05 * rng.standard_normal(200)
    noisy = fit_gain_on_misfit(x, gain, n_boot=500, seed=3)
    ref_slope, ref_intercept = np.polyfit(x, gain, 1)
    assert noisy["slope"] == pytest.approx(ref_slope) and noisy["intercept"] == pytest.approx(ref_intercept)
    assert noisy["r2"] == pytest.approx(np.corrcoef(x, gain)[0, 1] ** 2)
    assert noisy["ci"]["slope"][0] <= noisy["slope"] <= noisy["ci"]["slope"][1]
    assert noisy["ci"]["slope"][0] < 0.8 < noisy["ci"]["slope"][1]
    json.dumps(noisy, allow_nan=False)
    with pytest.raises(ValueError, match="misfit"):
        fit_gain_on_misfit(np.ones(5), np.arange(5.0))
    with pytest.raises(ValueError, match="gain"):
        fit_gain_on_misfit(np.arange(5.0), np.arange(4.0))
