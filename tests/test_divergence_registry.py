"""A divergence is one entry in one file: an entry added to `w2s_hf.divergences.DIVERGENCES` (the Brier score
here, the squared distance of probability vectors, a Bregman divergence with phi(p) = ||p||^2) is a config
choice with its --help, a loss students train on, a divergence `decompose` evaluates and a sweep's columns,
with no other file touched."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2s_hf.divergences import DIVERGENCES, BregmanMap, Divergence, TrainingLoss

CALLS = []  # the torch loss records its calls: proof that training went through the registry's function


def _probs(pred: np.ndarray, target: np.ndarray, is_pred: bool) -> np.ndarray:
    if not is_pred and target.shape[1] == 1:  # class indices
        return np.eye(pred.shape[1])[target[:, 0].astype(np.int64)]
    return target


def _brier_torch(log_q, target):
    CALLS.append(len(target))
    return ((log_q.exp() - target) ** 2).sum(1)


def _check(pred, pred_name, target, target_name):
    if pred.ndim != 2 or pred.shape[1] < 2:
        raise ValueError(f"{pred_name} has shape {pred.shape}: brier takes (n, classes) probabilities")


BRIER = Divergence(
    "brier", lambda p, t: ((p - _probs(p, t, False)) ** 2).sum(1, keepdims=True), _check,
    pair_loss=lambda p, t: ((p - t) ** 2).sum(1, keepdims=True),
    extras=lambda y, weak, w2s, ceiling: {"weak_confidence": weak.max(1)},
    bregman=BregmanMap(point=lambda p: p[:, None, :], gradient=lambda p: 2.0 * p[:, None, :],
                       label_point=lambda y, p: _probs(p, y, False)[:, None, :], weight=np.ones_like),
    label="Brier score", task_type="classification", columns=("weak_confidence",),
    losses=(TrainingLoss("brier", _brier_torch, "squared distance of the probability vectors"),))


@pytest.fixture
def brier(monkeypatch):
    monkeypatch.setitem(DIVERGENCES, "brier", BRIER)
    CALLS.clear()
    return BRIER


def _softmax_problem(seed: int = 0, n: int = 300, d: int = 5, c: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    logits = X @ rng.normal(size=(d, c))
    p = np.exp(logits - logits.max(1, keepdims=True))
    return X, p / p.sum(1, keepdims=True)


def test_every_divergence_names_its_extras_columns():
    rng = np.random.default_rng(0)
    for div in DIVERGENCES.values():
        if div.extras is None:
            assert div.columns == (), div.name
            continue
        logits = rng.normal(size=(6, 3))
        pred = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        if div.name == "binary_kl":
            pred = pred[:, :1]
        elif div.name == "kl_logits":
            pred = logits
        y = rng.integers(0, pred.shape[1] if pred.shape[1] > 1 else 2, size=(6, 1)).astype(float)
        assert set(div.extras(y, pred, pred, pred)) == set(div.columns), div.name


def test_an_added_entry_is_a_loss_a_choice_a_divergence_and_sweep_columns(brier):
    from w2s_hf.config.run import HeadArguments
    from w2s_hf.decomposition import decompose
    from w2s_hf.divergences import loss_names, sweep_columns
    from w2s_hf.errors import ConfigError
    from w2s_hf.heads.losses import LOSSES, get_loss
    from w2s_hf.heads.mixture import fit_classifier

    assert (LOSSES["brier"].task_type, LOSSES["brier"].divergence) == ("classification", "brier")
    assert "brier" in loss_names("classification", student=True) and get_loss("brier", "classification").fn
    HeadArguments(student_loss="brier").validate()
    with pytest.raises(ConfigError, match="brier"):  # the error lists it among the choices
        HeadArguments(student_loss="nope").validate()

    # a student trains on it: through the registry's function, to a lower Brier score than cross-entropy's head
    X, p = _softmax_problem()
    fit = fit_classifier(X[:200], p[:200], X[200:], p[200:], loss="brier", solver="lbfgs", epochs=200)
    assert CALLS, "the registered loss was never called"
    xent = fit_classifier(X[:200], p[:200], X[200:], p[200:], loss="forward_kl", solver="lbfgs", epochs=200)
    brier_of = lambda head: float(((head.predict_proba(X[:200]) - p[:200]) ** 2).sum(1).mean())  # noqa: E731
    assert brier_of(fit) <= brier_of(xent) + 1e-6

    # decompose evaluates it: the misfit is the mean Brier distance of student and weak model
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=(200, 1)).astype(float)
    weak, w2s = p[:200] * 0.5 + 0.5 / 3, fit.predict_proba(X[:200])
    out = decompose(y, weak, w2s, divergence="brier", n_boot=0)
    assert out.misfit == pytest.approx(float(((w2s - weak) ** 2).sum(1).mean()))
    assert out.residual == pytest.approx(out.gain - out.misfit)
    assert out.as_dict()["extras"]["weak_confidence"] == pytest.approx(float(weak.max(1).mean()))
    assert sweep_columns("brier") == ("weak_confidence", "residual_ceiling_as_truth", "k_heads")


def test_an_entry_registered_first_is_in_the_help_and_parsed(tmp_path):
    """As if the entry were written into the registry's file: registered before the config is imported."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_divergence_registry import BRIER\n"
            "from w2s_hf.divergences import DIVERGENCES; DIVERGENCES['brier'] = BRIER\n"
            "from w2s_hf.config import parse_config\n"
            "print(parse_config(['--task', 'x.csv', '--student_loss', 'brier']).head.student_loss)\n"
            "parse_config(['--help'])\n")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "brier"
    help_text = " ".join(out.stdout.split())  # argparse wraps lines
    assert "xent_hard,brier}" in help_text and "brier, squared distance of the probability vectors" in help_text


def test_a_classification_sweep_trains_and_decomposes_on_an_added_divergence(brier, tmp_path, tiny_bert, tiny_gpt2):
    from w2s_hf.data.fixtures import write_synthetic_ellipse
    from w2s_hf.divergences import sweep_columns
    from w2s_hf.experiments.sweep import CSV_COLUMNS, PREDICTOR_COLUMNS, SweepConfig, run_sweep

    essays = str(write_synthetic_ellipse(tmp_path / "essays.csv", n=100, seed=1))
    config = SweepConfig.from_dict({
        "task": essays, "split": "random", "seeds": [0], "task_type": "classification", "label_column": "cohesion",
        "threshold": 3.0, "head": {"student_loss": "brier"}, "n_boot": 0,
        "strong": {"model": tiny_gpt2, "pooling": "last", "max_length": 32},
        "weak_models": [{"model": tiny_bert, "layer": 1, "max_length": 32}],
        "output_dir": str(tmp_path / "s"), "cache_dir": str(tmp_path / "cache")})
    run_sweep(config)
    with open(tmp_path / "s" / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS + PREDICTOR_COLUMNS + sweep_columns("brier")
    assert CALLS, "the student did not train on the registered loss"
    # the run decomposed on it: its misfit is the Brier distance of the student's and the weak model's predictions
    run = next((tmp_path / "s" / "runs").glob("normal__*"))
    split = rows[0]["split"]
    assert json.loads((run / "results.json").read_text())["splits"][split]["divergence"] == "brier"
    w2s, weak = (_read_predictions(run / "predictions" / f"{name}.csv", split) for name in ("w2s", "weak"))
    assert float(rows[0]["misfit"]) == pytest.approx(float(((w2s - weak) ** 2).sum(1).mean()), rel=1e-9)
    assert float(rows[0]["weak_confidence"]) == pytest.approx(float(weak.max(1).mean()), rel=1e-9)


def _read_predictions(path: Path, split: str) -> np.ndarray:
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split]
    return np.array([[float(r[k]) for k in r if k.startswith("p_")] for r in rows])
