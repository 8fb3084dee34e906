"""Classification through the toolkit: tasks (classes, thresholds, stratified splits), the k-head heads
under DDP (2 processes = 1), the pipeline's artifacts and the theory on a realizable task."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter

import numpy as np
import pytest
from helpers import fresh_fork_state, load_script

from w2s_hf.data import TaskDataError, TaskRows, load_task
from w2s_hf.decomposition.core import decompose


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------- tasks
@pytest.fixture(scope="module")
def essays(tmp_path_factory):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    return write_synthetic_ellipse(tmp_path_factory.mktemp("cls") / "essays.csv", n=300, seed=0)


def test_ellipse_levels_are_ordered_classes_and_random_splits_keep_their_proportions(essays):
    task = load_task("ellipse", path=essays, task_type="classification", label_column="cohesion")
    rows = TaskRows.of(task)
    assert task.task_type == "classification" and task.targets == ["cohesion"]
    levels = [float(c) for c in task.classes]
    assert levels == sorted(levels) and all(2 * v == int(2 * v) for v in levels)  # half-point score levels
    # gold labels are class indices that name the file's scores
    import pandas as pd

    frame = pd.read_csv(essays).set_index("text_id")
    for split in rows.ids:
        idx = rows.gold[split][:, 0].astype(int)
        assert [float(task.classes[i]) for i in idx] == [float(frame.loc[i, "cohesion"]) for i in rows.ids[split]]
    # stratified: every class of more than ~10 rows is in val and test, near its overall share
    every = Counter(np.concatenate([rows.gold[s][:, 0] for s in rows.ids]).tolist())
    for split in ("val", "test", "w2s_train"):
        here = Counter(rows.gold[split][:, 0].tolist())
        for cls, n in every.items():
            share = {"val": 0.1, "test": 0.1, "w2s_train": 0.4}[split]
            assert abs(here.get(cls, 0) - share * n) <= 1.01, (split, cls, here.get(cls, 0), n)


def test_a_threshold_makes_two_classes_below_first(essays):
    task = load_task("ellipse", path=essays, task_type="classification", label_column="syntax", threshold=3.0)
    assert task.classes == ["<3", ">=3"]
    rows = TaskRows.of(task)
    import pandas as pd

    frame = pd.read_csv(essays).set_index("text_id")
    gold = rows.gold["test"][:, 0]
    assert np.array_equal(gold, (frame.loc[rows.ids["test"], "syntax"].to_numpy() >= 3.0).astype(float))


def test_qsar_views_need_a_threshold_and_string_classes_load_from_any_file(tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        load_task("esol", task_type="classification")
    esol = load_task("esol", task_type="classification", threshold=-3.0, split="scaffold")
    assert esol.classes == ["<-3", ">=-3"]
    path = tmp_path / "reviews.csv"
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "sentiment"])
        for i in range(60):
            w.writerow([f"review number {i} is here", ["neg", "pos", "mixed"][rng.integers(0, 3)]])
    task = load_task(path, task_type="classification", input_column="text", label_column="sentiment")
    assert task.classes == ["mixed", "neg", "pos"]


def test_bad_classification_tasks_are_clear_errors(tmp_path, essays):
    path = tmp_path / "labels.csv"
    path.write_text("text,label\nhello there,a\nhow are you,\nfine thanks,b\n")
    with pytest.raises(TaskDataError, match=r"label column 'label' has missing.*row 2"):
        load_task(path, task_type="classification", input_column="text", label_column="label")
    with pytest.raises(ValueError, match="label_column.*task_type='classification' only"):
        load_task(essays, label_column="cohesion")
    with pytest.raises(ValueError, match="one label column"):
        load_task("ellipse", path=essays, task_type="classification")
    from w2s_hf.data.labels import check_classes

    labels = ["a", "b", "a", "b", "c"]
    positions = {"weak_train": np.array([0, 1]), "w2s_train": np.array([2, 3]), "val": np.array([]), "test":
                 np.array([4])}
    with pytest.raises(TaskDataError, match=r"\['c'\] appear in test .* no training row"):
        check_classes(labels, positions, "file.csv")


def test_config_keys_are_checked_before_any_work():
    from w2s_hf.config import ConfigError, HeadArguments, parse_config

    with pytest.raises(ConfigError, match="threshold.*classification only"):
        parse_config(["--threshold", "3"])
    with pytest.raises(ConfigError, match="k_heads"):
        parse_config(["--task_type", "classification", "--k_heads", "0"])
    with pytest.raises(ConfigError, match="student_loss='hinge'"):
        HeadArguments(student_loss="hinge").validate()


# ---------------------------------------------------------------------- 2 processes = 1
def _problem(seed=0, n=1200, d=12, c=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + 2.0
    W = rng.normal(size=(d, c))
    T = _softmax((X - 2.0) @ W)  # soft teacher labels
    return X[: n - 300], T[: n - 300], X[n - 300:], T[n - 300:]


def _fit(acc=None, k=4, loss="reverse_kl"):
    from w2s_hf.heads.mixture import fit_classifier

    X, T, Xv, Tv = _problem()
    rank, size = (0, 1) if acc is None else (acc.process_index, acc.num_processes)
    return fit_classifier(X[rank::size], T[rank::size], Xv[rank::size], Tv[rank::size], k=k, loss=loss, epochs=150,
                          lr=1e-2, weight_decay=0.01, patience=20, accelerator=acc, seed=3)


def _two_process_worker(out_dir):
    from accelerate import Accelerator

    fresh_fork_state()
    acc = Accelerator(cpu=True)
    fit = _fit(acc)
    X, _, Xv, _ = _problem()
    np.save(os.path.join(out_dir, f"rank{acc.process_index}.npy"), fit.predict_proba(np.concatenate([X, Xv])))
    with open(os.path.join(out_dir, f"rank{acc.process_index}.json"), "w") as fh:
        json.dump({"best_epoch": fit.best_epoch, "epochs": fit.epochs}, fh)


def test_two_processes_train_the_student_that_one_process_trains(tmp_path):
    """Full-batch steps: the 2-process gradient is the 1-process gradient summed in another order, so
    the runs differ by rounding carried through the epochs: ~5e-6 in float32, < 1e-12 in float64 (the CPU default)."""
    from accelerate import debug_launcher

    debug_launcher(_two_process_worker, args=(str(tmp_path),), num_processes=2)
    one = _fit()
    X, _, Xv, _ = _problem()
    expected = one.predict_proba(np.concatenate([X, Xv]))
    ranks = [np.load(tmp_path / f"rank{r}.npy") for r in (0, 1)]
    np.testing.assert_array_equal(ranks[0], ranks[1])  # DDP keeps the replicas identical
    assert np.abs(ranks[0] - expected).max() <= 1e-10
    meta = json.loads((tmp_path / "rank0.json").read_text())
    assert (meta["best_epoch"], meta["epochs"]) == (one.best_epoch, one.epochs)


def test_the_mixture_head_folds_the_trained_module_exactly_and_reloads(tmp_path):
    import torch

    from w2s_hf.heads.mixture import MixtureHead

    fit = _fit(k=3)
    X, _, Xv, _ = _problem()
    from w2s_hf.heads.adamw import training_moments

    x_mean, x_map, *_ = training_moments(None, X, _problem()[1], "standardize")
    with torch.no_grad():
        direct = fit.model(torch.as_tensor((Xv - x_mean) @ x_map, dtype=torch.float64)).exp().numpy()
    assert np.abs(fit.predict_proba(Xv) - direct).max() < 1e-12
    np.testing.assert_allclose(fit.predict_proba(Xv).sum(1), 1.0, atol=1e-12)
    fit.head.save(tmp_path / "h.safetensors")
    again = MixtureHead.load(tmp_path / "h.safetensors")
    np.testing.assert_array_equal(again.predict(Xv), fit.predict_proba(Xv))


# ---------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def cls_run(tmp_path_factory, tiny_bert, tiny_gpt2, essays):
    import yaml

    root = tmp_path_factory.mktemp("cls_run")
    config = {
        "task": str(essays), "split": "random", "task_type": "classification", "label_column": "cohesion",
        "threshold": 3.0, "k_heads": 3, "epochs": 60,
        "weak": {"model": tiny_bert, "layer": 1, "max_length": 64},
        "strong": {"model": tiny_gpt2, "pooling": "last", "max_length": 64},
        "report_to": "none", "n_boot": 50, "cache_dir": str(root / "cache"),
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = root / "run"
    assert load_script("train_w2s").main(["--config", str(path), "--output_dir", str(out)]) == 0
    return {"root": root, "config": path, "out": out}


def _predictions(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in rows[0] if c.startswith("p_")]
    return cols, {(r["split"], r["id"]): np.array([float(r[c]) for c in cols]) for r in rows}


def test_a_classification_run_writes_probabilities_and_the_kl_decomposition(cls_run, essays):
    out = cls_run["out"]
    results = json.loads((out / "results.json").read_text())
    assert results["task"]["classes"] == ["<3", ">=3"] and "convex" in results["theory"]
    cols, preds = {}, {}
    for name in ("weak", "w2s", "ceiling"):
        cols[name], preds[name] = _predictions(out / "predictions" / f"{name}.csv")
        assert cols[name] == ["p_<3", "p_>=3"]
        assert all(abs(p.sum() - 1) < 1e-9 and (p >= 0).all() for p in preds[name].values())
    heads = results["heads"]
    assert heads["weak"]["k_heads"] == 1 and heads["w2s"]["k_heads"] == 3 and heads["ceiling"]["k_heads"] == 3
    assert heads["w2s"]["loss"] == "reverse_kl" and heads["ceiling"]["loss"] == "forward_kl"
    assert heads["w2s"]["selected_on"] == "val weak labels"
    # the reported numbers are those of the written predictions and the gold classes
    task = load_task(essays, task_type="classification", label_column="cohesion", threshold=3.0)
    rows = TaskRows.of(task)
    test = results["splits"]["test"]
    stack = {n: np.stack([preds[n][("test", i)] for i in rows.ids["test"]]) for n in preds}
    y = rows.gold["test"][:, 0].astype(int)
    xent = lambda p: float(np.mean(-np.log(p[np.arange(len(y)), y])))  # noqa: E731
    assert test["divergence"] == "kl"
    assert test["weak_error"] == pytest.approx(xent(stack["weak"]), rel=1e-9)
    assert test["w2s_error"] == pytest.approx(xent(stack["w2s"]), rel=1e-9)
    kl = float(np.mean((stack["w2s"] * np.log(stack["w2s"] / stack["weak"])).sum(1)))
    assert test["misfit"] == pytest.approx(kl, rel=1e-9)
    assert test["extras"]["w2s_accuracy"] == pytest.approx(np.mean(stack["w2s"].argmax(1) == y))
    assert test["ci"]["w2s_accuracy"][0] <= test["extras"]["w2s_accuracy"] <= test["ci"]["w2s_accuracy"][1]
    # CAPA of weak vs ceiling: kappa from val's gold classes, observed agreement from test's inputs alone
    block = results["predictors"]
    val = {n: np.stack([preds[n][("val", i)] for i in rows.ids["val"]]) for n in preds}
    yv = rows.gold["val"][:, 0].astype(int)
    pw, pc = val["weak"][np.arange(len(yv)), yv].mean(), val["ceiling"][np.arange(len(yv)), yv].mean()
    expected = pw * pc + (1 - pw) * (1 - pc)
    observed = np.mean((val["weak"] * val["ceiling"]).sum(1))
    assert block["values"]["similarity"] == pytest.approx((observed - expected) / (1 - expected), rel=1e-9)
    assert block["values"]["observed_agreement"] == pytest.approx(
        np.mean((stack["weak"] * stack["ceiling"]).sum(1)), rel=1e-12)
    assert block["values"]["misfit"] == test["misfit"] and block["values"]["kernel_projection"] >= 0


def test_the_table_shows_accuracies_and_a_rerun_reuses_the_heads(cls_run, capsys):
    main = load_script("train_w2s").main
    head = cls_run["out"] / "heads" / "w2s.safetensors"
    before = head.stat().st_mtime_ns
    assert main(["--config", str(cls_run["config"]), "--output_dir", str(cls_run["out"])]) == 0
    assert head.stat().st_mtime_ns == before
    printed = capsys.readouterr().out
    assert "w2s_accuracy" in printed and "misfit_forward" in printed


# ---------------------------------------------------------------------- the theory
def _population(seed, truth_of, n=5000, d=4, c=3):
    """(phi, true class distributions, weak probabilities): the weak model is a softmax head fitted to
    the truth on a corrupted phi (two directions damped or lost, noise added)."""
    from w2s_hf.heads.mixture import fit_classifier

    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(n, d))
    truth = truth_of(phi, rng, d, c)
    weak_phi = phi @ np.diag([1.0, 0.3, 0.0, 0.0]) + 0.5 * rng.normal(size=(n, d))
    weak = fit_classifier(weak_phi, truth, weak_phi, truth, loss="forward_kl", epochs=300, lr=0.05)
    return phi, truth, weak.predict_proba(weak_phi)


def _student_against_truth(phi, weak_p, truth, k, epochs):
    """The reverse-KL k-head student of the weak labels, and its decomposition against the truth."""
    from w2s_hf.heads.mixture import fit_classifier

    student = fit_classifier(phi, weak_p, phi, weak_p, k=k, loss="reverse_kl", epochs=epochs, lr=0.05, seed=1)
    return student, decompose(truth, weak_p, student.predict_proba(phi), divergence="kl", n_boot=0)


def test_on_a_realizable_task_gain_matches_misfit_at_every_k():
    """Labels are softmax(phi(x) W*), so the truth lies in the student's class for every k; the weak
    model is a softmax head on a corrupted phi. The student is the reverse-KL projection of the weak
    labels onto the k-head class, fitted to convergence on the 5,000 weak-labelled rows that the errors
    are measured on (the sample is the population), and errors are KL against the true distributions.
    Mulgund & Pabbaraju: gain >= misfit - eps_k with eps_k = O(sqrt(c / k)) -> 0, and gain = misfit
    for a "linear" class. Measured (seed 0): residual +2.2e-4 (k = 1), +0.4e-4 (k = 3), +3.4e-4 (k = 4)
    on a misfit of 0.0396: no k falls below the bound, and the differences between k are below what
    5,000 rows resolve, so the test asserts the bound at each k, not an order among them.
    Tolerances: the students' losses move by < 1e-5 over their last 100 epochs (converged to far below
    the 5e-4 allowed), and 3% of the misfit for |gain - misfit| leaves room for that and for the
    weak head's own fit. A bug in a direction of the KL, in the mixture or in the projection breaks
    these by an order of magnitude (a forward-KL student misses by ~10%)."""
    phi, truth, weak_p = _population(0, lambda phi, rng, d, c: _softmax(phi @ (rng.normal(size=(d, c)) * 1.5)))
    residual = {}
    for k in (1, 3):
        student, dec = _student_against_truth(phi, weak_p, truth, k, epochs=600)
        losses = [h["train"] for h in student.history]
        assert abs(losses[-1] - losses[-100]) < 1e-5  # converged: the projection, not a stop on the way
        assert dec.misfit > 0.02 and dec.gain > 0.02  # a real gap to recover
        assert abs(dec.residual) <= 0.03 * dec.misfit, (k, dec.gain, dec.misfit)
        residual[k] = dec.residual
    assert min(residual.values()) > -5e-4, residual  # gain >= misfit up to the optimisation error


def test_when_the_truth_is_a_two_head_mixture_the_violation_shrinks_as_k_grows():
    """Truth = an even mixture of two softmax heads of phi: outside the k = 1 class, inside the k >= 2
    class, i.e. where the class's non-convexity matters. Measured (seed 1, 5,000 rows, converged
    students, KL against the true distributions): residual -2.4e-3 at k = 1, -1.6e-3 at k = 2, +0.03e-3
    at k = 4 on a misfit of 0.040: gain >= misfit - eps_k with eps_k shrinking, as Mulgund & Pabbaraju
    prove. Thresholds sit halfway between those values and the students' optimisation error (< 1e-5)."""
    def two_heads(phi, rng, d, c):
        return 0.5 * _softmax(phi @ rng.normal(size=(d, c)) * 3) + 0.5 * _softmax(phi @ rng.normal(size=(d, c)) * 3)

    phi, truth, weak_p = _population(1, two_heads)
    residual = {k: _student_against_truth(phi, weak_p, truth, k, epochs=800)[1].residual for k in (1, 4)}
    assert residual[1] < -1e-3, residual  # the softmax class is not convex: gain < misfit
    assert residual[4] > residual[1] + 1e-3, residual  # more heads: the violation shrinks
    assert residual[4] > -5e-4, residual  # and the bound holds up to the optimisation error
