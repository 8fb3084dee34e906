"""The adamw solver: within 1% of the exact head's validation error, on 1 and 2 processes, early
stopping driven by validation only, multi-output targets, clear errors on bad input."""

import inspect
import json
import os

import numpy as np
import pytest
from helpers import fresh_fork_state

from w2s_hf.heads import LinearHead, fit_exact
from w2s_hf.heads.adamw import fit_adamw, train_adamw


def make_problem(seed=0, d=48, n=2000, n_val=800, k=1, noise=0.5, corr=0.5):
    """Correlated, offset, badly scaled features: what embeddings look like, not unit Gaussians."""
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + corr * rng.normal(size=(d, d))
    X = rng.normal(size=(n + n_val, d)) @ mix * rng.uniform(0.1, 10, size=d) + rng.normal(0, 5, size=d)
    W = rng.normal(size=(d, k))
    Y = (X - X.mean(0)) / X.std(0) @ W / np.sqrt(d) + noise * rng.normal(size=(n + n_val, k)) + 2.0
    Y = Y[:, 0] if k == 1 else Y
    return X[:n], Y[:n], X[n:], Y[n:]


def mse(head, X, Y):
    return float(np.mean((head.predict(X) - Y) ** 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_adamw_within_one_percent_of_exact(seed):
    X, Y, Xv, Yv = make_problem(seed)
    exact = mse(fit_exact(X, Y, ridge=0.0), Xv, Yv)
    fit = train_adamw(X, Y, Xv, Yv)
    head = fit.head
    assert isinstance(head, LinearHead) and head.predict(Xv).shape == (len(Xv),)
    got = mse(head, Xv, Yv)
    assert got <= 1.01 * exact, (got, exact)
    # The folded head acts on raw features: its reported best validation error is what predict gives.
    assert got == pytest.approx(fit.best_val_error, rel=1e-4)
    assert fit.steps < 300, "early stopping never ended the run"


def test_adamw_multi_output():
    X, Y, Xv, Yv = make_problem(3, d=32, k=3)
    exact_head = fit_exact(X, Y)
    head = fit_adamw(X, Y, Xv, Yv)
    assert head.predict(Xv).shape == (len(Xv), 3)
    assert mse(head, Xv, Yv) <= 1.01 * mse(exact_head, Xv, Yv)
    # every target is learnt, not just the average
    per_exact = np.mean((exact_head.predict(Xv) - Yv) ** 2, axis=0)
    per_adamw = np.mean((head.predict(Xv) - Yv) ** 2, axis=0)
    assert np.all(per_adamw <= 1.02 * per_exact)


def test_early_stopping_uses_validation_only_and_keeps_the_best_weights():
    X, Y, Xv, _ = make_problem(4, d=32, n=400, noise=0.1)
    # Validation labels from a different rule: training on (X, Y) first helps then hurts on them,
    # so the best step is early and the run must stop on patience.
    rng = np.random.default_rng(9)
    Yv_other = 0.4 * fit_exact(X, Y).predict(Xv) + rng.normal(size=len(Xv))
    seen = []
    fit = train_adamw(
        X, Y, Xv, Yv_other, patience=4, on_eval=lambda step, head: seen.append((step, mse(head, Xv, Yv_other)))
    )
    assert fit.stopped_early
    steps = [h["step"] for h in fit.history]
    vals = [h["val_error"] for h in fit.history]
    assert fit.best_step == steps[int(np.argmin(vals))]
    assert fit.best_step < fit.steps
    # patience counts evaluations: stopped exactly `patience` evaluations after the last improvement
    assert len(steps) - 1 - steps.index(fit.best_step) >= 4
    # on_eval saw every evaluation point with the head of that moment
    assert [s for s, _ in seen] == steps
    np.testing.assert_allclose([v for _, v in seen], vals, rtol=1e-4)
    # the returned head is the best one, not the last one
    assert mse(fit.head, Xv, Yv_other) == pytest.approx(min(vals), rel=1e-4)
    assert mse(fit.head, Xv, Yv_other) < seen[-1][1]
    # nothing in the API can receive a test split
    assert not any("test" in p for p in inspect.signature(train_adamw).parameters)


def test_adamw_rejects_bad_input_with_named_arguments():
    X, Y, Xv, Yv = make_problem(5, d=8, n=50, n_val=20)
    with pytest.raises(ValueError, match="X_train has 50 rows but Y_train has 49"):
        fit_adamw(X, Y[:-1], Xv, Yv)
    Xbad = X.copy()
    Xbad[7, 3] = np.nan
    with pytest.raises(ValueError, match="X_train has a NaN.*row 7"):
        fit_adamw(Xbad, Y, Xv, Yv)
    with pytest.raises(ValueError, match="X_val has 7 features but X_train has 8"):
        fit_adamw(X, Y, Xv[:, :7], Yv)
    with pytest.raises(ValueError, match="lr=0"):
        fit_adamw(X, Y, Xv, Yv, lr=0)


# ---------------------------------------------------------------------- two processes


def _ddp_fit(out_dir):
    """Runs in each of 2 processes: an uneven shard of train and val rows each."""
    from accelerate import Accelerator

    fresh_fork_state()
    acc = Accelerator(cpu=True)
    X, Y, Xv, Yv = make_problem(0)
    cut, cut_val = (1130, 310)  # uneven on purpose
    tr = slice(0, cut) if acc.process_index == 0 else slice(cut, None)
    va = slice(0, cut_val) if acc.process_index == 0 else slice(cut_val, None)
    fit = train_adamw(X[tr], Y[tr], Xv[va], Yv[va], accelerator=acc)
    with open(os.path.join(out_dir, f"rank{acc.process_index}.json"), "w") as fh:
        json.dump(
            {
                "weight": fit.head.weight.tolist(),
                "bias": fit.head.bias.tolist(),
                "best_step": fit.best_step,
                "best_val_error": fit.best_val_error,
            },
            fh,
        )


def test_adamw_two_processes_ddp(tmp_path):
    from accelerate import debug_launcher

    debug_launcher(_ddp_fit, args=(str(tmp_path),), num_processes=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # DDP keeps the replicas identical
    np.testing.assert_array_equal(ranks[0]["weight"], ranks[1]["weight"])
    head = LinearHead(np.array(ranks[0]["weight"]), np.array(ranks[0]["bias"]), output_1d=True)
    X, Y, Xv, Yv = make_problem(0)
    exact = mse(fit_exact(X, Y), Xv, Yv)
    got = mse(head, Xv, Yv)
    assert got <= 1.01 * exact, (got, exact)
    # the validation error each process tracked is over all validation rows, not its shard
    assert ranks[0]["best_val_error"] == pytest.approx(got, rel=1e-4)
    # full-batch steps: the sharded gradient is the one-process gradient, so the runs agree
    # (a per-rank mean instead would move predictions by ~3% of std(Y) with these uneven shards)
    one = train_adamw(X, Y, Xv, Yv)
    np.testing.assert_allclose(head.predict(Xv), one.head.predict(Xv), rtol=0, atol=1e-3 * np.std(Yv))
