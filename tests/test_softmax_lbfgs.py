"""The `exact` classification solver: a k = 1 softmax head by full-batch L-BFGS in float64."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import fresh_fork_state


def _problem(seed: int = 0, n: int = 3000, d: int = 12, c: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + 2.0
    logits = (X - 2.0) @ (rng.normal(size=(d, c)) * 0.6)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=row) for row in p])
    cut = n - 600
    return X[:cut], y[:cut], X[cut:], y[cut:], p


def test_lbfgs_head_reaches_the_logistic_regression_optimum():
    from sklearn.linear_model import LogisticRegression

    from w2s_hf.heads.mixture import fit_classifier

    X, y, Xv, yv, _ = _problem()
    onehot, onehot_v = np.eye(3)[y], np.eye(3)[yv]
    fit = fit_classifier(X, onehot, Xv, onehot_v, loss="forward_kl", solver="lbfgs", patience=None, epochs=500)
    mean, std = X.mean(0), X.std(0)
    ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=5000).fit((X - mean) / std, y)

    def xent(proba: np.ndarray, labels: np.ndarray) -> float:
        return float(-np.log(proba[np.arange(len(labels)), labels]).mean())

    # the training loss reaches scikit-learn's optimum; the kept iterate is at least as good on val
    assert fit.history[-1]["train"] == pytest.approx(xent(ref.predict_proba((X - mean) / std), y), abs=1e-8)
    assert fit.best_val_loss <= xent(ref.predict_proba((Xv - mean) / std), yv) + 1e-8
    assert fit.epochs < 100 and fit.stopped_early  # converged in tens of iterations, not hundreds of epochs
    adamw = fit_classifier(X, onehot, Xv, onehot_v, loss="forward_kl", epochs=200, lr=0.05, patience=None)
    assert fit.best_val_loss <= adamw.best_val_loss + 1e-9


def test_lbfgs_keeps_the_best_iterate_on_separable_data():
    from w2s_hf.heads.mixture import fit_classifier

    rng = np.random.default_rng(1)
    X, Xv = rng.normal(size=(40, 60)), rng.normal(size=(40, 60))  # more features than rows: separable
    y, yv = np.eye(2)[rng.integers(0, 2, 40)], np.eye(2)[rng.integers(0, 2, 40)]
    fit = fit_classifier(X, y, Xv, yv, loss="forward_kl", solver="lbfgs", patience=5, epochs=300)
    vals = [h["val"] for h in fit.history]
    assert fit.best_val_loss == pytest.approx(min(vals + [np.log(2)]))
    assert fit.stopped_early and fit.epochs < 300  # val stopped improving while the weights grew
    # the kept head is the best iterate: its val cross-entropy is the reported best
    proba = fit.predict_proba(Xv)[np.arange(len(yv)), yv.argmax(1)]
    assert float(-np.log(proba).mean()) == pytest.approx(fit.best_val_loss, rel=1e-9)


def test_lbfgs_refuses_a_mixture():
    from w2s_hf.heads.mixture import fit_classifier

    X, y, Xv, yv, _ = _problem(n=700)
    with pytest.raises(ValueError, match="lbfgs"):
        fit_classifier(X, np.eye(3)[y], Xv, np.eye(3)[yv], k=2, solver="lbfgs")


def _fit(acc=None):
    from w2s_hf.heads.mixture import fit_classifier

    X, _, Xv, _, p = _problem()
    T, Tv = p[: len(X)], p[len(X):]
    rank, size = (0, 1) if acc is None else (acc.process_index, acc.num_processes)
    return fit_classifier(X[rank::size], T[rank::size], Xv[rank::size], Tv[rank::size], loss="reverse_kl",
                          solver="lbfgs", epochs=200, accelerator=acc)


def _worker(out_dir):
    from accelerate import Accelerator

    fresh_fork_state()
    acc = Accelerator(cpu=True)
    fit = _fit(acc)
    X, _, Xv, _, _ = _problem()
    np.save(os.path.join(out_dir, f"rank{acc.process_index}.npy"), fit.predict_proba(np.concatenate([X, Xv])))
    with open(os.path.join(out_dir, f"rank{acc.process_index}.json"), "w") as fh:
        json.dump({"best_epoch": fit.best_epoch, "epochs": fit.epochs}, fh)


def test_two_processes_fit_the_lbfgs_head_of_one(tmp_path):
    from accelerate import debug_launcher

    debug_launcher(_worker, args=(str(tmp_path),), num_processes=2)
    one = _fit()
    X, _, Xv, _, _ = _problem()
    ranks = [np.load(tmp_path / f"rank{r}.npy") for r in (0, 1)]
    np.testing.assert_array_equal(ranks[0], ranks[1])
    assert np.abs(ranks[0] - one.predict_proba(np.concatenate([X, Xv]))).max() <= 1e-9
    meta = json.loads((tmp_path / "rank0.json").read_text())
    assert (meta["best_epoch"], meta["epochs"]) == (one.best_epoch, one.epochs)


def test_early_stopping_waits_out_the_optimizers_overshoot():
    """Validation falls, then rises for 12 evaluations while the training loss overshoots above its best,
    then both fall lower: the old rule (patience 10 on validation alone) stopped inside the overshoot."""
    from w2s_hf.heads.adamw import Plateau

    train = [1.0, 0.8, 0.6] + [0.6 + 0.05 * i for i in range(1, 7)] + [0.9 - 0.05 * i for i in range(1, 7)] + \
        [0.55 - 0.01 * i for i in range(20)] + [0.36] * 15
    val = [1.0, 0.85, 0.7] + [0.72 + 0.01 * i for i in range(12)] + [0.69 - 0.01 * i for i in range(20)] + [0.6] * 15

    def stop_epoch(guard: bool) -> tuple[int, int]:
        stopper = Plateau(10, overshoot_guard=guard)
        for epoch, (t, v) in enumerate(zip(train, val)):
            stopper.update(v, t, epoch)
            if stopper.should_stop:
                return epoch, stopper.best_step
        return len(val), stopper.best_step

    assert stop_epoch(False)[0] < 15  # the old rule stops inside the overshoot
    epoch, best = stop_epoch(True)
    assert best == 34 and epoch == 44  # the guard finds the later best and stops `patience` after it
