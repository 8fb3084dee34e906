"""The knobs that meet the theorem's premises: PCA and parts fitted on training rows only, graded weak
teachers, a ridge per head (ridge=theorem), cross-fitting (every row a test row once), 1 vs 2 processes."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import free_port

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["cohesion", "grammar"]


@pytest.fixture(scope="module")
def essays(tmp_path_factory):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    return str(write_synthetic_ellipse(tmp_path_factory.mktemp("knobs") / "essays.csv", n=120, seed=3))


def _config(essays, tiny_bert, tiny_gpt2, out: Path, **task_head):
    from w2s_hf.config import HeadArguments, ModelArguments, RunArguments, TaskArguments, W2SConfig

    head = {k: v for k, v in task_head.items() if k in {f.name for f in dataclasses.fields(HeadArguments)}}
    task = {k: v for k, v in task_head.items() if k not in head}
    model = ModelArguments(weak_model=tiny_bert, weak_layer=1, weak_max_length=48, strong_model=tiny_gpt2,
                           strong_pooling="last", strong_max_length=48,
                           strong_parts=[f"{tiny_bert},layer=3,max_length=48,scale=standard",
                                         f"{tiny_gpt2},pooling=last,max_length=48"], strong_pca=6)
    return W2SConfig(model=model, task=TaskArguments(task=essays, split="random", targets=TARGETS, **task),
                     head=HeadArguments(**head),
                     run=RunArguments(output_dir=str(out), cache_dir=str(out.parent / "cache"), report_to="none",
                                      n_boot=0, plot=False)).validate()


def _poison_inputs(task, splits=("val", "test")):
    """The same task with every input of `splits` replaced (ids and labels kept)."""
    for split in splits:
        ds = task.splits[split]
        poison = [f"poison {i} " * 9 for i in range(len(ds))]
        task.splits[split] = ds.remove_columns("input").add_column("input", poison)
    return task


def test_pca_and_scaling_never_read_val_or_test_rows(essays, tiny_bert, tiny_gpt2, tmp_path):
    """Parts z-scored and projected on PCA axes fitted on the training rows: replacing every val and test
    input leaves the fitted transform, hence every training row's features, identical."""
    from w2s_hf.data import load_task
    from w2s_hf.pipeline import W2SPipeline

    config = _config(essays, tiny_bert, tiny_gpt2, tmp_path / "a")
    clean = W2SPipeline(config, task=load_task(essays, split="random", seed=0, targets=TARGETS))
    poisoned = W2SPipeline(dataclasses.replace(config, run=dataclasses.replace(config.run,
                                                                              output_dir=str(tmp_path / "b"))),
                           task=_poison_inputs(load_task(essays, split="random", seed=0, targets=TARGETS)))
    train = clean.train_rows()
    assert np.array_equal(train, poisoned.train_rows())
    a, b = clean.features("strong"), poisoned.features("strong")
    assert a.shape == (120, 6)
    np.testing.assert_array_equal(a[train], b[train])
    other = np.setdiff1d(np.arange(120), train)
    assert not np.allclose(a[other], b[other])  # the poisoned rows did change: the check can fail
    # the training rows are centred by the fit (PCA of centred training rows has mean 0 there)
    assert np.abs(a[train].mean(axis=0)).max() < 1e-4


def test_graded_weak_teacher_reads_only_its_budget_of_gold_labels(essays, tiny_bert, tiny_gpt2, tmp_path):
    """weak_budget=b: the weak head sees b seeded rows of weak_train; poisoning the others' labels changes
    nothing, budgets of a seed are nested, and the rows differ by seed."""
    from w2s_hf.data import load_task
    from w2s_hf.pipeline import W2SPipeline
    from w2s_hf.pipeline.run import _subset_rows

    def _budget_rows(task_args, n):
        return _subset_rows(task_args, "weak_train", n)

    config = _config(essays, tiny_bert, tiny_gpt2, tmp_path / "clean", weak_budget=12)
    rows = _budget_rows(config.task, 48)
    assert len(rows) == 12 and set(rows) <= set(_budget_rows(dataclasses.replace(config.task, weak_budget=24), 48))
    assert not np.array_equal(rows, _budget_rows(dataclasses.replace(config.task, split_seed=1), 48))
    task = load_task(essays, split="random", seed=0, targets=TARGETS)
    poisoned = load_task(essays, split="random", seed=0, targets=TARGETS)
    n = len(task.splits["weak_train"])
    outside = np.setdiff1d(np.arange(n), _budget_rows(config.task, n))
    ds = poisoned.splits["weak_train"]
    for t in TARGETS:
        values = np.asarray(ds[t], dtype=float)
        values[outside] = 99.0
        ds = ds.remove_columns(t).add_column(t, list(values))
    poisoned.splits["weak_train"] = ds
    preds = []
    for name, t in (("clean", task), ("poisoned", poisoned)):
        run = dataclasses.replace(config, run=dataclasses.replace(config.run, output_dir=str(tmp_path / name)))
        pipeline = W2SPipeline(run, task=t)
        pipeline.run()
        preds.append(pipeline.load_predictions("weak")["test"])
    np.testing.assert_array_equal(preds[0], preds[1])


def test_ridge_theorem_fixes_only_the_student(essays, tiny_bert, tiny_gpt2, tmp_path):
    from w2s_hf.config import ConfigError, HeadArguments
    from w2s_hf.data import load_task
    from w2s_hf.pipeline import W2SPipeline

    config = _config(essays, tiny_bert, tiny_gpt2, tmp_path / "run", ridge="theorem")
    W2SPipeline(config, task=load_task(essays, split="random", seed=0, targets=TARGETS)).run()
    heads = {h: json.loads((tmp_path / "run" / "heads" / f"{h}.json").read_text()) for h in ("weak", "w2s", "ceiling")}
    # the student is fixed at 0 (no validation curve); the teacher and the ceiling are chosen on val (a curve
    # over the grid; the grid holds 0 too, so their chosen value itself may be anything)
    assert heads["w2s"]["ridge"] == 0.0 and "val_errors" not in heads["w2s"]
    assert all(len(heads[h]["val_errors"]) > 1 for h in ("weak", "ceiling"))
    assert HeadArguments(ridge=0).ridge_setting().startswith("0 for all heads")
    assert HeadArguments(ridge="theorem").ridge_setting().startswith("theorem")
    assert HeadArguments(ridge=3, w2s_ridge=0).ridge_for("w2s", True) == 0.0
    assert HeadArguments(ridge=3, w2s_ridge=0).ridge_for("weak", False) == 3.0
    for bad, key in (({"ridge": -1}, "ridge"), ({"w2s_ridge": "theorem"}, "w2s_ridge"), ({"ridge": True}, "ridge")):
        with pytest.raises(ConfigError, match=key):
            HeadArguments(**bad)


@pytest.mark.parametrize("scaffolds", [False, True])
def test_cross_fitting_makes_every_row_a_test_row_exactly_once(scaffolds):
    from w2s_hf.data.splits import make_splits

    n, k = 101, 5
    groups = [f"s{i % 23}" for i in range(n)] if scaffolds else None
    split = "scaffold" if scaffolds else "random"
    seen = np.zeros(n, dtype=int)
    for fold in range(k):
        parts = make_splits(n, split, seed=4, scaffolds=groups, cv_folds=k, cv_fold=fold)
        every = np.concatenate(list(parts.values()))
        assert len(every) == n and len(set(every)) == n  # a partition of the rows in each fold
        seen[parts["test"]] += 1
        if scaffolds:  # no scaffold in test and in a training or val split
            test = {groups[i] for i in parts["test"]}
            assert not test & {groups[i] for s in ("weak_train", "w2s_train", "val") for i in parts[s]}
    assert (seen == 1).all()


def _sweep_yaml(essays, tiny_bert, tiny_gpt2, out: Path) -> Path:
    values = {
        "task": essays, "split": "random", "targets": TARGETS, "seeds": [0], "cv_folds": 2,
        "strong": {"name": "parts-pca", "pca": 6, "parts": [
            {"model": tiny_bert, "layer": 3, "max_length": 48, "scale": "standard"},
            {"model": tiny_gpt2, "pooling": "last", "max_length": 48}]},
        "weak_models": [{"model": tiny_bert, "layer": 1, "max_length": 48}],
        "weak_budgets": [10, "all"], "n_boot": 20,
        # the student at 0, the teachers minimum-norm and clipped to their label range (the Figure 2 setting)
        "head": {"ridge": "theorem", "weak_ridge": 0, "weak_clip": True},
        "output_dir": str(out), "cache_dir": str(out.parent / "cache"),
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_sweep_with_every_knob_pools_folds_and_two_processes_give_the_numbers_of_one(
        essays, tiny_bert, tiny_gpt2, tmp_path):
    from helpers import load_script

    from w2s_hf.data import load_task

    one = tmp_path / "one"
    assert load_script("sweep").main(["--config", str(_sweep_yaml(essays, tiny_bert, tiny_gpt2, one))]) == 0
    with open(one / "sweep.csv", newline="") as fh:
        rows1 = list(csv.DictReader(fh))
    assert [(r["weak_budget"], r["target"]) for r in rows1] == [(b, t) for b in ("10", "") for t in TARGETS]
    assert all(r["folds"] == "2" and r["split"] == "test (cross-fitted)" for r in rows1)
    # the pooled point holds every row of the task once: 2 folds' test rows
    tests = [list(load_task(essays, split="random", seed=0, targets=TARGETS, cv_folds=2, cv_fold=f)
                  .splits["test"]["id"]) for f in range(2)]
    assert len(tests[0] + tests[1]) == len(set(tests[0] + tests[1])) == 120
    assert json.loads((one / "sweep.json").read_text())["fit"]["all"]["bootstrap"]["n_ids"] == 120
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--main_process_port", str(free_port()), "-m", "w2s_hf", "sweep",
           "--config", str(_sweep_yaml(essays, tiny_bert, tiny_gpt2, two))]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(two / "sweep.csv", newline="") as fh:
        rows2 = list(csv.DictReader(fh))
    assert len(rows1) == len(rows2)
    for a, b in zip(rows1, rows2):
        for key in ("weak_error", "w2s_error", "misfit", "gain", "ceiling_error", "nonrealizability_term",
                    "weak_clipped"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-6, abs=1e-9), key
    assert any(float(r["weak_clipped"]) > 0 for r in rows1)  # the clip did act: the comparison covers it
    # eval_split val under cross-fitting: each fold's val rows pooled, never the test rows under a val label
    config = _sweep_yaml(essays, tiny_bert, tiny_gpt2, one)
    assert load_script("sweep").main(["--config", str(config), "--eval_split", "val"]) == 0
    with open(one / "sweep.csv", newline="") as fh:
        rows_val = list(csv.DictReader(fh))
    assert all(r["split"] == "val (cross-fitted)" for r in rows_val)
    for row in rows_val:
        budget = f"__n{row['weak_budget']}" if row["weak_budget"] else ""
        folds = [json.loads(next((one / "runs").glob(f"*seed0{budget}__fold{f}")).joinpath("results.json")
                            .read_text())["splits"]["val"]["per_target"][row["target"]] for f in range(2)]
        for key in ("weak_error", "w2s_error", "misfit"):  # equal-sized val splits: the pooled mean is the mean
            assert float(row[key]) == pytest.approx(np.mean([f[key] for f in folds]), rel=1e-9), key
            assert float(row[key]) != pytest.approx(float(next(r for r in rows1 if r["target"] == row["target"]
                                                               and r["weak_budget"] == row["weak_budget"])[key]))


def test_the_line_bootstrap_resamples_rows_shared_by_points_together():
    """Points scored on the same molecules share each replicate's draw: two points that differ by +1 in every
    row's gain and misfit keep slope exactly 1 in every replicate (independent resampling would scatter it),
    and a point on other molecules adds its ids to the pool."""
    from w2s_hf.experiments.resampling import PointRows, row_bootstrap_line

    rng = np.random.default_rng(0)
    ids = [f"m{i}" for i in range(40)]
    gain, misfit = rng.normal(size=40), rng.uniform(size=40)
    points = [PointRows(ids, gain, misfit), PointRows(ids, gain + 1.0, misfit + 1.0)]
    out = row_bootstrap_line(points, n_boot=200, seed=1)
    assert out["ci"]["slope"] == pytest.approx([1.0, 1.0]) and out["n_ids"] == 40 and out["n_skipped"] == 0
    other = PointRows([f"x{i}" for i in range(10)], rng.normal(size=10), rng.uniform(size=10) + 3)
    wider = row_bootstrap_line([*points, other], n_boot=200, seed=1)
    assert wider["n_ids"] == 50 and wider["ci"]["slope"][0] < wider["ci"]["slope"][1]
