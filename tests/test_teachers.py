"""Several weak teachers as one: simplex weights against brute force and by hand, the mixture's decomposition
is decompose() of its predictions, its student is the protocol's, no test gold label chooses anything,
2 processes give the numbers of 1."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from w2s_hf.decomposition.simplex import project_to_simplex, simplex_weights

TARGETS = ["cohesion", "grammar"]


def _brute_force(preds: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The simplex-constrained least squares by enumerating supports (KKT on each), independent of the solver."""
    k = len(preds)
    flat, target = preds.reshape(k, -1), y.reshape(-1)
    gram, cross = flat @ flat.T / flat.shape[1], flat @ target / flat.shape[1]
    best, best_w = np.inf, None
    for r in range(1, k + 1):
        for support in map(list, itertools.combinations(range(k), r)):
            kkt = np.zeros((r + 1, r + 1))
            kkt[:r, :r], kkt[:r, r], kkt[r, :r] = 2 * gram[np.ix_(support, support)], 1.0, 1.0
            sol = np.linalg.solve(kkt, np.r_[2 * cross[support], 1.0])
            w = np.zeros(k)
            w[support] = sol[:r]
            value = w @ gram @ w - 2 * cross @ w
            if np.all(w >= -1e-12) and value < best:
                best, best_w = value, w
    return best_w


def test_projection_onto_the_simplex_by_hand():
    assert project_to_simplex([2.0, 0.0]) == pytest.approx([1.0, 0.0])
    assert project_to_simplex([0.5, 0.5, 0.5]) == pytest.approx([1 / 3] * 3)
    assert project_to_simplex([0.2, 0.3, 0.5]) == pytest.approx([0.2, 0.3, 0.5])  # already on it
    assert project_to_simplex([1.0, 0.5, -3.0]) == pytest.approx([0.75, 0.25, 0.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_lie_on_the_simplex_and_match_the_brute_force_minimiser(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(150, 2))
    # five correlated teachers with their own offsets: some weights are interior, some may be 0
    preds = np.stack([y + 0.3 * rng.normal(size=y.shape) + rng.normal(scale=0.5) * s for s in (1, 2, 0.5, 3, 1)])
    w, record = simplex_weights(preds, y)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12) and record["converged"]
    assert w == pytest.approx(_brute_force(preds, y), abs=1e-6)
    assert record["value"] <= record["uniform_value"] + 1e-12


def test_two_teachers_by_hand():
    rng = np.random.default_rng(0)
    y = rng.normal(size=40)
    # one teacher is the truth: all the weight on it, exactly
    w, record = simplex_weights(np.stack([y + rng.normal(size=40), y]), y)
    assert w.tolist() == [0.0, 1.0] and record["value"] == pytest.approx(0.0, abs=1e-12)
    # constant offsets +a and -b: the mixture is unbiased at w_1 = b / (a + b)
    w, _ = simplex_weights(np.stack([y + 1.0, y - 3.0]), y)
    assert w == pytest.approx([0.75, 0.25], abs=1e-9)
    # classification: each teacher sure of the gold class on one row and wrong on the other: -(log w + log(1-w))/2
    probs = np.array([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])  # (teachers, rows, classes)
    w, _ = simplex_weights(probs, np.array([[1], [1]]), loss="kl")
    assert w == pytest.approx([0.5, 0.5], abs=1e-6)
    # binary (one probability per row): a sure and right teacher takes every weight
    w, _ = simplex_weights(np.array([[[0.9], [0.1]], [[0.5], [0.5]]]), np.array([[1], [0]]), loss="binary_kl")
    assert w == pytest.approx([1.0, 0.0], abs=1e-6)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="mixture loss"):
        simplex_weights(np.zeros((2, 3)), np.zeros(3), loss="hinge")
    with pytest.raises(ValueError, match="3 rows"):
        simplex_weights(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        simplex_weights(np.array([[np.nan, 0, 0], [0, 0, 0]]), np.zeros(3))


def test_teachers_of_other_splits_are_refused():
    from w2s_hf.experiments.teachers import check_same_task

    def run(ids):
        return SimpleNamespace(data=SimpleNamespace(ids=ids), gold={"val": np.zeros(2)},
                               config=SimpleNamespace(model=SimpleNamespace(representation=lambda role: {})))

    with pytest.raises(ValueError, match="at least two"):
        check_same_task({"a": run({"val": ["1", "2"]})})
    with pytest.raises(ValueError, match="same task, split and seed"):
        check_same_task({"a": run({"val": ["1", "2"]}), "b": run({"val": ["2", "1"]})})


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_bert, tiny_gpt2):
    """One seed of three teachers on the tiny essays task, run through `run_teachers`, and its runs."""
    from w2s_hf.data.fixtures import write_synthetic_ellipse
    from w2s_hf.experiments.sweep import SweepConfig, point_folder
    from w2s_hf.experiments.teachers import run_teachers
    from w2s_hf.pipeline.run import W2SPipeline

    root = tmp_path_factory.mktemp("teachers")
    values = {
        "task": str(write_synthetic_ellipse(root / "essays.csv", n=140, seed=1)), "split": "random", "seeds": [0],
        "targets": TARGETS, "strong": {"model": tiny_gpt2, "pooling": "last", "max_length": 48},
        "weak_models": [{"model": tiny_bert, "layer": 1, "max_length": 48},
                        {"model": tiny_bert, "layer": 3, "max_length": 48},
                        {"model": tiny_gpt2, "layer": 1, "max_length": 48, "name": "gpt2-L1"}],
        "output_dir": str(root / "out"), "cache_dir": str(root / "cache"), "n_boot": 0,
    }
    (root / "teachers.yaml").write_text(yaml.safe_dump(values))
    config = SweepConfig.from_dict(values)
    out = run_teachers(config)
    runs = {w.label: W2SPipeline(config.run_config(w, config.strong, 0, point_folder("normal", w, config.strong, 0)))
            for w in config.weak_models}
    for r in runs.values():
        r.run()  # every stage is done: reads the folder
    return {"root": root, "out": out, "runs": runs, "config": config}


def test_the_mixture_is_one_teacher_whose_decomposition_is_decompose_of_its_predictions(finished):
    from w2s_hf.decomposition.core import decompose
    from w2s_hf.heads import fit_ridge

    result, runs = finished["out"]["results"][0], finished["runs"]
    first = next(iter(runs.values()))
    teachers = {label: r.load_predictions("weak") for label, r in runs.items()}
    w = np.array([result["weights"][label] for label in runs])
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    assert w == pytest.approx(simplex_weights(np.stack([t["val"] for t in teachers.values()]), first.gold["val"])[0])
    mix = {s: sum(wk * teachers[label][s] for label, wk in zip(runs, w)) for s in ("w2s_train", "val", "test")}
    # its student, by hand: the exact ridge head on strong features of w2s_train, ridge chosen on val mixture labels
    strong = {s: first.rows("strong", s) for s in ("w2s_train", "val", "test")}
    student, _ = fit_ridge(strong["w2s_train"], mix["w2s_train"], strong["val"], mix["val"])
    pred = student.predict(strong["test"]).reshape(mix["test"].shape)
    dec = decompose(first.gold["test"], mix["test"], pred, first.load_predictions("ceiling")["test"], n_boot=0)
    got = result["mixture"]["splits"]["test"]
    for q in ("weak_error", "w2s_error", "misfit", "gain", "residual", "ceiling_error"):
        assert got[q] == pytest.approx(getattr(dec, q), rel=1e-7, abs=1e-10), q
    # per-teacher misfits of the mixture's student, and the exact split of their weighted sum (squared loss)
    for label in runs:
        by_hand = np.mean((pred - teachers[label]["test"]) ** 2)
        assert result["mixture"]["misfit_to_teacher"][label] == pytest.approx(by_hand)
    weighted = sum(wk * result["mixture"]["misfit_to_teacher"][label] for label, wk in zip(runs, w))
    assert weighted == pytest.approx(got["misfit"] + result["mixture"]["diversity"], rel=1e-9)
    # the best single teacher is chosen on val, and only then compared on test
    best = min(runs, key=lambda label: result["single"][label]["val"]["w2s_error"])
    assert result["best_single"]["teacher"] == best
    assert result["comparison"]["mixture"]["w2s_error"] == pytest.approx(
        got["w2s_error"] - result["single"][best]["test"]["w2s_error"])
    assert result["mixture"]["splits"]["val"]["used_for_selection"] and not got["used_for_selection"]
    # each teacher's own block is its run's results.json decomposition
    for label, r in runs.items():
        saved = json.loads((r.out / "results.json").read_text())["splits"]["test"]
        assert result["single"][label]["test"]["w2s_error"] == pytest.approx(saved["w2s_error"], rel=1e-9)


def test_a_single_teacher_fitted_again_is_the_runs_own_student(finished):
    run = next(iter(finished["runs"].values()))
    again = run.fit_student_on(run.load_predictions("weak"))
    saved = run.load_predictions("w2s")
    for split in ("w2s_train", "val", "test"):
        assert again[split] == pytest.approx(saved[split], abs=1e-5)


def test_no_test_gold_label_chooses_anything(finished):
    from w2s_hf.experiments.teachers import teacher_mixture

    runs, clean = finished["runs"], finished["out"]["results"][0]
    saved = {label: {s: r.gold[s].copy() for s in ("test", "w2s_train")} for label, r in runs.items()}
    rng = np.random.default_rng(5)
    poison = {s: rng.normal(50.0, 10.0, size=saved[next(iter(runs))][s].shape) for s in ("test", "w2s_train")}
    try:
        for r in runs.values():
            r.gold.update({s: poison[s] for s in poison})
        poisoned = teacher_mixture(runs, n_boot=0)
    finally:
        for label, r in runs.items():
            r.gold.update(saved[label])
    assert poisoned["weights"] == clean["weights"] and poisoned["best_single"] == clean["best_single"]
    for name in ("mixture", "uniform"):  # the student and its misfit (no gold label) are unchanged
        dirty, kept = poisoned[name]["splits"], clean[name]["splits"]
        assert dirty["test"]["misfit"] == pytest.approx(kept["test"]["misfit"])
        for q in ("weak_error", "w2s_error", "misfit", "ceiling_error"):
            assert dirty["val"][q] == pytest.approx(kept["val"][q]), q
        assert dirty["test"]["w2s_error"] != pytest.approx(kept["test"]["w2s_error"])  # test gold is read to score


@pytest.mark.slow
def test_two_processes_give_the_same_numbers(finished):
    root = finished["root"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "w2s_hf", "teachers", "--num_processes", "2", "--config", str(root / "teachers.yaml"),
           "--output_dir", str(root / "out2")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((root / "out" / "teachers.json").read_text())
    two = json.loads((root / "out2" / "teachers.json").read_text())
    # the features and heads agree to float64 rounding; the simplex solver stops at an optimality residual of
    # 1e-9, so along a flat direction of the val loss the weights may move by ~1e-7 (measured 1.5e-7): 1e-5
    assert two["seeds"]["0"]["best_single"] == one["seeds"]["0"]["best_single"]
    assert two["seeds"]["0"]["weights"] == pytest.approx(one["seeds"]["0"]["weights"], abs=1e-5)
    for name, diffs in one["seeds"]["0"]["comparison"].items():
        assert two["seeds"]["0"]["comparison"][name] == pytest.approx(diffs, rel=1e-5, abs=1e-7), name
    for name in ("mixture", "uniform"):
        for split, block in one["seeds"]["0"][name]["splits"].items():
            for q in ("weak_error", "w2s_error", "misfit", "ceiling_error"):
                assert two["seeds"]["0"][name]["splits"][split][q] == pytest.approx(block[q], rel=1e-5, abs=1e-7)


def test_a_classification_mixture_mixes_probabilities_and_decomposes_on_kl(tmp_path, tiny_bert, tiny_gpt2):
    from w2s_hf.data.fixtures import write_synthetic_ellipse
    from w2s_hf.decomposition.core import decompose
    from w2s_hf.experiments.sweep import SweepConfig, point_folder
    from w2s_hf.experiments.teachers import run_teachers
    from w2s_hf.pipeline.run import W2SPipeline

    config = SweepConfig.from_dict({
        "task": str(write_synthetic_ellipse(tmp_path / "essays.csv", n=120, seed=2)), "split": "random", "seeds": [0],
        "task_type": "classification", "label_column": "cohesion", "threshold": 3.0, "head": {"epochs": 20},
        "strong": {"model": tiny_gpt2, "pooling": "last", "max_length": 48},
        "weak_models": [{"model": tiny_bert, "layer": 1, "max_length": 48},
                        {"model": tiny_bert, "layer": 3, "max_length": 48}],
        "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "n_boot": 0})
    result = run_teachers(config)["results"][0]
    runs = [W2SPipeline(config.run_config(w, config.strong, 0, point_folder("normal", w, config.strong, 0)))
            for w in config.weak_models]
    teachers = [r.load_predictions("weak") for r in runs]
    w = np.array(list(result["weights"].values()))
    assert result["divergence"] == "kl" and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    assert w == pytest.approx(simplex_weights(np.stack([t["val"] for t in teachers]), runs[0].gold["val"],
                                              loss="kl")[0], abs=1e-9)
    mix = w[0] * teachers[0]["test"] + w[1] * teachers[1]["test"]
    assert mix.sum(axis=1) == pytest.approx(np.ones(len(mix)))  # a mixture of distributions is one
    # the decomposition is decompose() on the mixture's probabilities: the weak error is its cross-entropy
    dec = decompose(runs[0].gold["test"], mix, mix, n_boot=0, divergence="kl")
    assert result["mixture"]["splits"]["test"]["weak_error"] == pytest.approx(dec.weak_error, rel=1e-9)
    got = result["mixture"]["splits"]["test"]
    assert got["residual"] == pytest.approx(got["gain"] - got["misfit"], abs=1e-12) and got["misfit"] >= 0
