"""Residual diagnostics: the exact split of gain - misfit, its bounds, the ceiling as the truth, the table's
reading, and 2 processes = 1."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import fresh_fork_state

from w2s_hf.decomposition.core import DIAGNOSTICS, decompose
from w2s_hf.hooks.evaluation import format_table

TERMS = ("finite_sample_term", "nonrealizability_term")


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def regression(seed, n=300, k=3, spread=1.0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, k)) * spread
    # any predictions: independent noise of different sizes, no structure the identity could lean on
    return y, rng.normal(size=(n, k)) * 2, y + rng.normal(size=(n, k)), y + 0.3 * rng.normal(size=(n, k)) + 0.5


def classification(seed, n=300, classes=4, logits=False, soft=False, scale=1.0):
    rng = np.random.default_rng(seed)
    z = [rng.normal(size=(n, classes)) * s * scale for s in (1.0, 2.0, 3.0)]
    preds = z if logits else [_softmax(a) for a in z]
    y = _softmax(rng.normal(size=(n, classes))) if soft else rng.integers(0, classes, n)
    return (y, *preds)


def binary(seed, n=300, logits=False):
    rng = np.random.default_rng(seed)
    z = [rng.normal(size=n) * s for s in (1.0, 2.0, 4.0)]
    preds = z if logits else [1.0 / (1.0 + np.exp(-a)) for a in z]
    return (rng.integers(0, 2, n), *preds)


CASES = [
    *[("squared", regression(s, k=k)) for s in range(3) for k in (1, 3)],
    ("squared", regression(7, n=50, k=2, spread=100.0)),
    *[("kl", classification(s)) for s in range(3)],
    ("kl", classification(4, soft=True)),
    ("kl_logits", classification(5, logits=True)),
    ("kl_logits", classification(9, logits=True, scale=10.0)),  # peaked: probabilities down to e^-100
    ("kl", binary(6)),
    ("kl_logits", binary(8, logits=True)),
]


@pytest.mark.parametrize("divergence,arrays", CASES)
def test_the_split_sums_to_the_residual_on_any_predictions(divergence, arrays):
    y, weak, w2s, ceiling = arrays
    dec = decompose(y, weak, w2s, ceiling, divergence=divergence, n_boot=0)
    d = dec.diagnostics
    scale = max(1.0, abs(dec.weak_error))
    assert d["finite_sample_term"] + d["nonrealizability_term"] == pytest.approx(dec.residual, abs=1e-12 * scale)
    for t, per in dec.diagnostics_per_target.items():
        base = dec.per_target[t]
        assert per["finite_sample_term"] + per["nonrealizability_term"] == pytest.approx(
            base["residual"], abs=1e-12 * scale)
    # with the ceiling as the truth the residual is the finite-sample term: the non-realizability term is 0
    assert d["proxy_residual"] == pytest.approx(d["finite_sample_term"], abs=1e-12 * scale)
    # the bounds hold
    for term in TERMS:
        assert abs(d[term]) <= d[term.replace("term", "bound")] + 1e-12, term


def test_squared_terms_and_bounds_are_the_closed_forms_a_flipped_sign_breaks():
    y, weak, w2s, ceiling = regression(11, k=2)
    weak = weak + 0.5 * (ceiling - y)  # a teacher that shares the ceiling's error: both terms far from 0
    dec = decompose(y, weak, w2s, ceiling, target_names=["a", "b"], n_boot=0)
    d, per = dec.diagnostics, dec.diagnostics_per_target
    finite = 2 * np.mean((weak - w2s) * (w2s - ceiling), axis=0)
    nonreal = 2 * np.mean((weak - w2s) * (ceiling - y), axis=0)
    misfit = np.mean((weak - w2s) ** 2, axis=0)
    finite_bound = 2 * np.sqrt(misfit * np.mean((w2s - ceiling) ** 2, axis=0))
    nonreal_bound = 2 * np.sqrt(misfit * np.mean((ceiling - y) ** 2, axis=0))
    for j, t in enumerate("ab"):
        assert per[t]["finite_sample_term"] == pytest.approx(finite[j], rel=1e-12)
        assert per[t]["nonrealizability_term"] == pytest.approx(nonreal[j], rel=1e-12)
        assert per[t]["finite_sample_bound"] == pytest.approx(finite_bound[j], rel=1e-12)
        assert per[t]["nonrealizability_bound"] == pytest.approx(nonreal_bound[j], rel=1e-12)
    assert d["finite_sample_term"] == pytest.approx(finite.mean(), rel=1e-12)
    assert d["nonrealizability_term"] == pytest.approx(nonreal.mean(), rel=1e-12)
    # the terms are not trivially equal up to sign: a flipped sign in either would change the sum
    assert abs(finite.mean()) > 0.05 and abs(nonreal.mean()) > 0.05
    assert abs(-finite.mean() + nonreal.mean() - dec.residual) > 0.05
    assert abs(finite.mean() - nonreal.mean() - dec.residual) > 0.05


def test_kl_terms_are_the_bregman_inner_products_and_the_chi_square_bounds():
    y, weak, w2s, ceiling = classification(12, n=200, classes=3)
    dec = decompose(y, weak, w2s, ceiling, divergence="kl", n_boot=0)
    d = dec.diagnostics
    onehot = np.eye(3)[y]
    grad_gap = np.log(w2s) - np.log(weak)  # grad(sum p log p) = log p + 1; the 1 cancels
    finite = np.mean(np.sum(grad_gap * (ceiling - w2s), axis=1))
    nonreal = np.mean(np.sum(grad_gap * (onehot - ceiling), axis=1))
    assert d["finite_sample_term"] == pytest.approx(finite, rel=1e-10)
    assert d["nonrealizability_term"] == pytest.approx(nonreal, rel=1e-10)
    assert abs(-finite + nonreal - dec.residual) > 0.05 and abs(finite - nonreal - dec.residual) > 0.05
    # Cauchy-Schwarz in L2(student): sqrt(E_S[log^2(S/W)]) * sqrt(chi2(C || S)), resp. chi2(y || C)-like
    moment = np.mean(np.sum(w2s * grad_gap**2, axis=1))
    assert d["finite_sample_bound"] == pytest.approx(np.sqrt(moment * np.mean(np.sum((ceiling - w2s) ** 2 / w2s, 1))))
    assert d["nonrealizability_bound"] == pytest.approx(
        np.sqrt(moment * np.mean(np.sum((onehot - ceiling) ** 2 / w2s, axis=1))))


def test_with_the_ceiling_as_the_truth_every_quantity_is_recomputed_and_the_nonrealizability_term_is_0():
    y, weak, w2s, ceiling = regression(13, k=2)
    dec = decompose(y, weak, w2s, ceiling, n_boot=0)
    proxy = decompose(ceiling, weak, w2s, ceiling, n_boot=0)  # the ceiling's predictions as gold labels
    assert proxy.diagnostics["nonrealizability_term"] == 0.0
    for q in ("weak_error", "w2s_error", "gain", "residual", "predicted_w2s_error", "pgr"):
        assert dec.diagnostics[f"proxy_{q}"] == pytest.approx(getattr(proxy, q), rel=1e-12), q
    assert proxy.ceiling_error == 0.0 and proxy.misfit == dec.misfit
    # KL: soft labels equal to the ceiling's probabilities
    y, weak, w2s, ceiling = classification(14, classes=3)
    kl = decompose(ceiling, weak, w2s, ceiling, divergence="kl", n_boot=0)
    assert kl.diagnostics["nonrealizability_term"] == pytest.approx(0.0, abs=1e-15)
    assert kl.residual == pytest.approx(kl.diagnostics["finite_sample_term"], abs=1e-12)


def _linear_task(n, seed, realizable):
    """Strong features X (5), gold y = X beta + noise (+ a part outside the span of X when not
    realizable); weak predictions from other features. Exact heads at ridge 0 on n rows, evaluated on n
    fresh rows."""
    rng = np.random.default_rng(seed)
    beta, gamma = rng.normal(size=5), rng.normal(size=5)

    def draw(m):
        X = rng.normal(size=(m, 5))
        z = np.sin(2 * X[:, 0]) + X[:, 1] ** 2  # a feature the strong (linear) class cannot express
        y = X @ beta + 0.5 * rng.normal(size=m) + (1.5 * z if not realizable else 0.0)
        weak = X @ gamma * 0.5 + z + 0.3 * rng.normal(size=m)
        return np.c_[X, np.ones(m)], y, weak

    Xtr, ytr, wtr = draw(n)
    Xte, yte, wte = draw(n)
    student = np.linalg.lstsq(Xtr, wtr, rcond=None)[0]
    ceiling = np.linalg.lstsq(Xtr, ytr, rcond=None)[0]
    on_test = decompose(yte, wte, Xte @ student, Xte @ ceiling, n_boot=0)
    on_train = decompose(ytr, wtr, Xtr @ student, Xtr @ ceiling, n_boot=0)
    return on_test, on_train


def test_on_a_realizable_task_the_nonrealizability_term_goes_to_0_with_n():
    sizes = (100, 1000, 30000)
    mean_abs = {n: np.mean([abs(_linear_task(n, s, True)[0].diagnostics["nonrealizability_term"])
                            for s in range(4)]) for n in sizes}
    assert mean_abs[100] > 3 * mean_abs[1000] > 3 * 3 * mean_abs[30000]
    big, train = _linear_task(30000, 0, True)
    assert abs(big.diagnostics["nonrealizability_term"]) < 0.02 * big.diagnostics["nonrealizability_bound"]
    # the bound does not go to 0: it scales with the ceiling's own (noise) error, not with n
    assert big.diagnostics["nonrealizability_bound"] > 0.3
    # a subspace student on its own fitted rows: the finite-sample term is 0 (S - C in the span, W - S orthogonal)
    assert train.diagnostics["finite_sample_term"] == pytest.approx(0.0, abs=1e-10)
    # not realizable: the term stays away from 0 however large n is, and explains most of the residual
    off, _ = _linear_task(30000, 0, False)
    assert off.diagnostics["nonrealizability_term"] < -0.5
    assert abs(off.diagnostics["nonrealizability_term"]) > 0.8 * abs(off.residual)


def test_intervals_ride_in_the_base_resamples_and_hold_the_point():
    y, weak, w2s, ceiling = regression(15, n=400, k=2)
    dec = decompose(y, weak, w2s, ceiling, n_boot=300, seed=4)
    assert set(dec.diagnostics_ci) == set(DIAGNOSTICS)
    for q, (lo, hi) in dec.diagnostics_ci.items():
        assert lo <= dec.diagnostics[q] <= hi, q
    # same replicates as the base: a student equal to the ceiling has finite-sample term 0 in every one
    same = decompose(y, weak, ceiling, ceiling, n_boot=100, seed=4)
    assert same.diagnostics_ci["finite_sample_term"] == [0.0, 0.0]
    # proxy_residual = finite_sample_term replicate by replicate, so their intervals agree
    assert dec.diagnostics_ci["proxy_residual"] == pytest.approx(dec.diagnostics_ci["finite_sample_term"], abs=1e-12)
    no_ceiling = decompose(y, weak, w2s, n_boot=50)
    assert set(no_ceiling.diagnostics.values()) == {None} and no_ceiling.diagnostics_ci == {}
    assert no_ceiling.reading is None


def test_table_prints_the_split_and_says_when_the_misfit_cannot_predict_the_gain():
    on_test, _ = _linear_task(2000, 0, False)  # far from realizable: the bound exceeds the misfit
    near, _ = _linear_task(2000, 0, True)
    assert on_test.diagnostics["nonrealizability_bound"] > on_test.misfit
    assert near.diagnostics["nonrealizability_bound"] <= near.misfit
    splits = {"w2s_train": {**near.as_dict(), "in_sample": True}, "test": on_test.as_dict()}
    out = format_table({"splits": splits})
    assert out.splitlines()[0].split()[1:] == ["w2s_train^", "test"]
    for name in DIAGNOSTICS[:4]:
        assert name in out
    assert f"{on_test.diagnostics['nonrealizability_term']:.4f}" in out
    reading = [line for line in out.splitlines() if line.startswith("reading on test:")]
    assert len(reading) == 1 and "the misfit cannot predict the gain" in reading[0]
    assert "cannot predict" not in next(x for x in out.splitlines() if x.startswith("reading on w2s_train:"))
    assert any(line.startswith("^ in-sample") for line in out.splitlines())


def test_the_reading_says_when_the_student_is_not_the_projection_of_the_weak_labels():
    from w2s_hf.decomposition.diagnostics import reading

    # a ridge-0 student that fitted a teacher's extreme labels: finite-sample term far beyond the misfit
    wild = {"finite_sample_term": -6.2, "nonrealizability_term": -0.2, "nonrealizability_bound": 0.5,
            "finite_sample_bound": 9.0}
    text = reading(wild, misfit=3.7, residual=-6.4)
    assert "not the projection of the weak labels" in text and "<= misfit" in text
    tame = {**wild, "finite_sample_term": -0.01}
    assert "not the projection" not in reading(tame, misfit=3.7, residual=-0.21)
    assert "not the projection" in reading({**wild, "nonrealizability_bound": 5.0}, misfit=3.7, residual=-6.4)


# ---------------------------------------------------------------------- two processes

def _two_process_worker(out_dir):
    from accelerate import Accelerator

    from w2s_hf.hooks.evaluation import evaluate_point, gather_predictions

    fresh_fork_state()
    acc = Accelerator(cpu=True)
    y, weak, w2s, ceiling = regression(16, n=41, k=2)
    ids = np.array([f"r{i:02d}" for i in range(len(y))])
    local = np.arange(acc.process_index, len(y), acc.num_processes)  # uneven shards
    _, got_w2s = gather_predictions(acc, ids[local], w2s[local])
    _, got_ceiling = gather_predictions(acc, ids[local], ceiling[local])
    dec = evaluate_point(0, "test", y, weak, got_w2s, got_ceiling, accelerator=acc, target_names=["a", "b"],
                         n_boot=200, seed=0)
    values = [dec.diagnostics[q] for q in DIAGNOSTICS]
    cis = [dec.diagnostics_ci[q] for q in DIAGNOSTICS]
    np.savez(os.path.join(out_dir, f"rank{acc.process_index}.npz"), values=values, cis=cis)


def test_two_processes_give_the_diagnostics_of_one(tmp_path):
    from accelerate import debug_launcher

    debug_launcher(_two_process_worker, args=(str(tmp_path),), num_processes=2)
    y, weak, w2s, ceiling = regression(16, n=41, k=2)
    one = decompose(y, weak, w2s, ceiling, target_names=["a", "b"], n_boot=200, seed=0)
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npz")
        np.testing.assert_allclose(got["values"], [one.diagnostics[q] for q in DIAGNOSTICS], rtol=1e-12)
        np.testing.assert_allclose(got["cis"], [one.diagnostics_ci[q] for q in DIAGNOSTICS], rtol=1e-12)


def test_trackers_the_metric_module_and_the_callback_report_the_diagnostics():
    import evaluate
    from transformers import EvalPrediction

    from w2s_hf.hooks.callbacks import MisfitCallback
    from w2s_hf.hooks.evaluation import TrackerHook, metric_path

    y, weak, w2s, ceiling = regression(17, n=60, k=2)
    dec = decompose(y, weak, w2s, ceiling, target_names=["a", "b"], n_boot=50)

    class Capture:
        logged: list = []

        def log(self, values, step=None):
            self.logged.append(values)

    TrackerHook(Capture()).on_evaluate(1, "test", dec, {})
    logged = Capture.logged[0]
    callback = MisfitCallback(weak, y, ceiling, target_names=["a", "b"], n_boot=50)
    flat = callback.compute_metrics(EvalPrediction(predictions=w2s, label_ids=y))
    out = evaluate.load(metric_path()).compute(
        predictions=w2s.tolist(), weak_predictions=weak.tolist(), references=y.tolist(),
        ceiling_predictions=ceiling.tolist(), target_names=["a", "b"], n_boot=50)
    for q in DIAGNOSTICS:
        want, per_b = dec.diagnostics[q], dec.diagnostics_per_target["b"][q]
        assert logged[f"test/{q}"] == want and logged[f"test/b/{q}"] == per_b, q
        assert flat[q] == want and flat[f"b/{q}"] == per_b and flat[f"{q}_ci_low"] == dec.diagnostics_ci[q][0], q
        assert out[q] == pytest.approx(want, rel=1e-12) and out[f"b/{q}"] == pytest.approx(per_b, rel=1e-12), q
        assert out[f"{q}_ci"] == pytest.approx(dec.diagnostics_ci[q], rel=1e-12), q
    assert out["reading"] == dec.reading
