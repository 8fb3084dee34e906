"""The w2s_train size as a run key (w2s_size) and a sweep axis (w2s_sizes): bad values, the identity, the rows the
student and the ceiling read, the configs the axis builds, the power laws of a sweep, 1 vs 2 processes."""

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
from helpers import free_port, load_script

from w2s_hf.errors import ConfigError

TARGETS = ["target_a", "target_b"]
COLUMNS = {"input_column": "smiles", "target_columns": TARGETS, "id_column": "mol_id"}


@pytest.fixture(scope="module")
def molecules(tmp_path_factory):
    from w2s_hf.data.fixtures import write_synthetic_qsar

    return str(write_synthetic_qsar(tmp_path_factory.mktemp("axis") / "mols.csv", n=120, seed=0))


def _run_config(molecules, out: Path, **task):
    from w2s_hf.config import HeadArguments, ModelArguments, RunArguments, TaskArguments, W2SConfig

    return W2SConfig(model=ModelArguments(weak_model="rdkit:morgan", strong_model="rdkit:descriptors"),
                     task=TaskArguments(task=molecules, split="random", **COLUMNS, **task), head=HeadArguments(),
                     run=RunArguments(output_dir=str(out), cache_dir=str(out.parent / "cache"), report_to="none",
                                      n_boot=0, plot=False)).validate()


def _sweep_values(molecules, out: Path, **extra) -> dict:
    return {"task": molecules, "split": "random", **COLUMNS, "seeds": [0, 1],
            "strong": {"model": "rdkit:descriptors"},
            "weak_models": [{"model": "rdkit:morgan"}, {"model": "rdkit:morgan", "pca": 8, "name": "morgan-pca8"}],
            "w2s_sizes": [12, "all"], "n_boot": 20, "output_dir": str(out), "cache_dir": str(out.parent / "cache"),
            **extra}


def test_bad_sizes_are_one_line_errors_naming_the_key_before_any_work(molecules, tmp_path):
    from w2s_hf.config import parse_config
    from w2s_hf.experiments.sweep import SweepConfig, run_sweep
    from w2s_hf.pipeline import W2SPipeline

    for bad in (0, -3):
        with pytest.raises(ConfigError, match=f"w2s_size={bad} must be >= 2"):
            _run_config(molecules, tmp_path / "r", w2s_size=bad)
    with pytest.raises(ConfigError, match="w2s_size=1 must be"):
        parse_config(["--task", molecules, "--input_column", "smiles", "--w2s_size", "1", "--output_dir", "o"])
    # larger than this split's w2s_train (48 rows): refused when the run is built, before any feature is made
    with pytest.raises(ConfigError, match="w2s_size=49 is more than the 48 rows of w2s_train"):
        W2SPipeline(_run_config(molecules, tmp_path / "r", w2s_size=49))
    for bad in ([0], ["ten"], [12, 12]):
        with pytest.raises(ConfigError, match="w2s_sizes"):
            SweepConfig.from_dict(_sweep_values(molecules, tmp_path / "s", w2s_sizes=bad))
    config = SweepConfig.from_dict(_sweep_values(molecules, tmp_path / "s", w2s_sizes=[12, 49]))
    with pytest.raises(ConfigError, match=r"w2s_sizes \[49\] exceed the 48 rows of w2s_train \(split_seed 0\)"):
        run_sweep(config)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "s").exists()  # nothing extracted or written


def test_the_flag_and_the_yaml_key_set_the_run_key(molecules, tmp_path):
    from w2s_hf.config import parse_config

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"task": molecules, "input_column": "smiles", "w2s_size": 16, "output_dir": "o"}))
    assert parse_config(["--config", str(path)]).task.w2s_size == 16
    assert parse_config(["--config", str(path), "--w2s_size", "32"]).task.w2s_size == 32  # flags over YAML
    assert parse_config(["--task", molecules, "--input_column", "smiles", "--output_dir", "o"]).task.w2s_size is None


def test_the_axis_builds_one_run_per_weak_model_budget_size_and_seed(molecules, tmp_path):
    from w2s_hf.experiments.sweep import SweepConfig, point_folder

    config = SweepConfig.from_dict(_sweep_values(molecules, tmp_path / "s", weak_budgets=[10, "all"],
                                                 w2s_sizes=[12, 24, "all"]))
    assert config.sizes == [12, 24, None] and config.budgets == [10, None]
    weak = config.weak_models[1]
    run = config.run_config(weak, config.strong, 1, "f", budget=10, size=24)
    assert (run.task.w2s_size, run.task.weak_budget, run.task.split_seed, run.model.weak_pca) == (24, 10, 1, 8)
    assert config.run_config(weak, config.strong, 1, "f").task.w2s_size is None
    folders = {point_folder("normal", w, config.strong, s, b, n) for w in config.weak_models
               for b in config.budgets for n in config.sizes for s in config.seeds}
    assert len(folders) == 2 * 2 * 3 * 2  # every point its own run folder
    name = "normal__morgan-pca8__descriptors__seed1__n10__w2s24"
    assert point_folder("normal", weak, config.strong, 1, 10, 24) == name


def test_the_student_and_the_ceiling_read_only_their_n_rows_and_the_identity_names_n(molecules, tmp_path):
    """w2s_size=N: the ceiling's gold labels and the student's weak labels outside the N seeded rows change
    nothing (inside, they do); another N is another run (the folder refuses it), and no w2s_size keeps the
    identity of runs made before the key existed."""
    from w2s_hf.pipeline import W2SPipeline

    config = _run_config(molecules, tmp_path / "n12", w2s_size=12)
    pipeline = W2SPipeline(config)
    result = pipeline.run()
    assert result["task"]["trained_rows"] == {"weak_train": 48, "w2s_train": 12}
    rows = pipeline.train_subset("w2s_train")
    outside, inside = np.setdiff1d(np.arange(48), rows)[0], rows[0]
    clean = pipeline.load_predictions("ceiling")["test"]
    gold = pipeline.gold["w2s_train"].copy()
    for row, changes in ((outside, False), (inside, True)):
        pipeline.gold["w2s_train"] = gold.copy()
        pipeline.gold["w2s_train"][row] = 99.0
        ceiling = pipeline.fit_head("ceiling").predict(pipeline.rows("strong", "test"))
        assert (not np.allclose(ceiling.reshape(clean.shape), clean)) == changes
    pipeline.gold["w2s_train"] = gold
    labels = {s: pipeline.load_predictions("weak")[s] for s in ("w2s_train", "val")}
    student = pipeline.fit_student_on(labels)["test"]
    np.testing.assert_allclose(student, pipeline.load_predictions("w2s")["test"], rtol=1e-6, atol=1e-9)
    labels["w2s_train"] = labels["w2s_train"].copy()
    labels["w2s_train"][np.setdiff1d(np.arange(48), rows)] = 99.0
    np.testing.assert_allclose(pipeline.fit_student_on(labels)["test"], student, rtol=1e-6, atol=1e-9)
    # the identity: N is in it; None is left out (older run folders are still the same run)
    other = W2SPipeline(_run_config(molecules, tmp_path / "n24", w2s_size=24))
    full = W2SPipeline(_run_config(molecules, tmp_path / "all"))
    assert pipeline.identity["w2s_size"] == 12 and other.identity["w2s_size"] == 24
    assert "w2s_size" not in full.identity and len({pipeline.identity_hash, other.identity_hash,
                                                     full.identity_hash}) == 3
    moved = dataclasses.replace(config, task=dataclasses.replace(config.task, w2s_size=24))
    with pytest.raises(ConfigError, match="w2s_size: 12 -> 24"):
        W2SPipeline(moved)


def test_a_sweep_fits_the_known_exponents_of_synthetic_errors():
    """Rows of a sweep whose errors are exact power laws (each seed its own constant factor): the fitted
    exponents are the true ones, with a zero-width interval over seeds, for the right error on each axis."""
    from w2s_hf.experiments.scaling import sweep_scaling

    rows = []
    for seed, factor in ((0, 1.0), (1, 1.7), (2, 0.6)):
        for budget, weak_rows in ((20, 20), (None, 80)):
            for size, n in ((16, 16), (32, 32), (None, 100)):
                rows.append({"direction": "normal", "weak_model": "w", "target": "y", "seed": seed,
                             "weak_budget": budget, "w2s_size": size, "weak_rows": weak_rows, "w2s_rows": n,
                             "weak_error": factor * 5 * weak_rows ** -0.25,
                             "w2s_error": factor * (2 * n ** -0.3 + weak_rows ** -0.5) / 2,
                             "ceiling_error": factor * 3 * n ** -0.5})
    out = sweep_scaling(rows, n_boot=50)
    panel = out["panels"]["w / y"]
    ceiling = panel["w2s_size"]["weak_budget=all"]["ceiling_error"]
    assert ceiling["alpha"] == pytest.approx(0.5) and ceiling["ci"] == pytest.approx([0.5, 0.5])
    assert ceiling["a"] == pytest.approx(3 * np.exp(np.mean(np.log([1.0, 1.7, 0.6]))))  # geometric mean factor
    weak = panel["weak_budget"]["w2s_size=all"]["weak_error"]
    assert weak["alpha"] == pytest.approx(0.25) and weak["n_seeds"] == 3
    assert panel["ceiling_error_all_rows"] == pytest.approx(3 * 100 ** -0.5 * np.mean([1.0, 1.7, 0.6]))
    assert sweep_scaling([{**r, "w2s_size": None, "weak_budget": None} for r in rows], n_boot=0) is None


def _read(folder: Path) -> tuple[list[dict], dict]:
    with open(folder / "sweep.csv", newline="") as fh:
        return list(csv.DictReader(fh)), json.loads((folder / "sweep.json").read_text())


def test_a_sweep_over_n_on_two_processes_gives_the_numbers_of_one(molecules, tmp_path, capsys):
    def write(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(_sweep_values(molecules, tmp_path / name)))
        return path

    assert load_script("sweep").main(["--config", str(write("one"))]) == 0
    assert "power laws err = a*N^-alpha" in capsys.readouterr().out
    rows1, summary1 = _read(tmp_path / "one")
    assert len(rows1) == 2 * 2 * 2 * 2  # weak models x sizes x seeds x targets
    for weak in ("morgan", "morgan-pca8"):
        for seed in ("0", "1"):
            sel = [r for r in rows1 if r["weak_model"] == weak and r["seed"] == seed]
            assert sorted((r["w2s_size"], r["w2s_rows"]) for r in sel) == sorted([("12", "12"), ("", "48")] * 2)
            for target in TARGETS:  # the weak head never sees w2s_train: its error does not move with N
                assert len({r["weak_error"] for r in sel if r["target"] == target}) == 1
    assert (tmp_path / "one" / "runs" / "normal__morgan-pca8__descriptors__seed1__w2s12").is_dir()
    assert (tmp_path / "one" / "scaling_vs_n.png").stat().st_size > 0
    panel = summary1["scaling"]["panels"]["morgan-pca8 / target_a"]
    assert set(panel["w2s_size"]["weak_budget=all"]) == {"w2s_error", "ceiling_error"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--main_process_port", str(free_port()), "-m", "w2s_hf", "sweep", "--config", str(write("two"))]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows2, summary2 = _read(tmp_path / "two")
    assert len(rows1) == len(rows2)
    for a, b in zip(rows1, rows2):
        assert (a["weak_model"], a["seed"], a["w2s_size"], a["target"]) == (
            b["weak_model"], b["seed"], b["w2s_size"], b["target"])
        for key in ("weak_error", "w2s_error", "misfit", "ceiling_error", "kernel_projection", "subspace_overlap"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-6, abs=1e-9), key
    for name, fits in summary1["scaling"]["panels"].items():
        for fixed, errors in fits["w2s_size"].items():
            for error, fit in errors.items():
                other = summary2["scaling"]["panels"][name]["w2s_size"][fixed][error]
                assert other["alpha"] == pytest.approx(fit["alpha"], rel=1e-6, abs=1e-9)
                assert other["ci"] == pytest.approx(fit["ci"], rel=1e-6, abs=1e-9)


def test_an_exponent_without_interval_says_why():
    from w2s_hf.experiments.sweep_report import scaling_lines

    def lines(n_seeds):
        fit = {"alpha": 0.5, "a": 1.0, "n_points": 6, "n_seeds": n_seeds, "ci": None}
        return scaling_lines({"resampling_unit": "seed", "panels": {"w / y": {"w2s_size": {"budget=all": {
            "w2s_error": fit}}}}})[1]
    assert "no interval: one seed" in lines(1)
    assert "no bootstrap (n_boot 0)" in lines(3) and "one seed" not in lines(3)
