"""Sweep outputs, weak-model selection that never reads the student's or test gold labels, the Figure-2 plot."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest

TARGETS = ["cohesion", "grammar"]


@pytest.fixture(scope="module")
def essays(tmp_path_factory):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    return str(write_synthetic_ellipse(tmp_path_factory.mktemp("sweep") / "essays.csv", n=140, seed=1))


def _sweep_config(essays, tiny_bert, tiny_gpt2, out, **extra):
    from w2s_hf.experiments.sweep import SweepConfig

    return SweepConfig.from_dict({
        "task": essays, "split": "random", "seeds": [0, 1], "targets": TARGETS,
        "strong": {"model": tiny_gpt2, "pooling": "last", "max_length": 48},
        "weak_models": [
            {"model": tiny_bert, "layer": 1, "max_length": 48},
            {"model": tiny_bert, "layer": 3, "max_length": 48},
            {"model": tiny_gpt2, "layer": 1, "max_length": 48, "name": "gpt2-L1"},
        ],
        "output_dir": str(out), "cache_dir": str(out / "cache"), "n_boot": 20, **extra,
    })


def test_sweep_writes_one_row_per_run_and_target(essays, tiny_bert, tiny_gpt2, tmp_path):
    from w2s_hf.experiments.sweep import CSV_COLUMNS, PREDICTOR_COLUMNS, run_sweep

    config = _sweep_config(essays, tiny_bert, tiny_gpt2, tmp_path / "sweep", swap_roles=True)
    summary = run_sweep(config)
    with open(tmp_path / "sweep" / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS + PREDICTOR_COLUMNS
    normal = [r for r in rows if r["direction"] == "normal"]
    reversed_ = [r for r in rows if r["direction"] == "reversed"]
    assert len(normal) == len(reversed_) == 3 * 2 * 2  # weak models x seeds x targets
    assert {(r["weak_model"], r["seed"], r["target"]) for r in normal} == {
        (w, s, t) for w in ("bert@L1", "bert@L3", "gpt2-L1") for s in ("0", "1") for t in TARGETS}
    for r in normal:
        assert float(r["gain"]) == pytest.approx(float(r["weak_error"]) - float(r["w2s_error"]), abs=1e-9)
        assert float(r["residual"]) == pytest.approx(float(r["gain"]) - float(r["misfit"]), abs=1e-9)
        split = float(r["finite_sample_term"]) + float(r["nonrealizability_term"])
        assert split == pytest.approx(float(r["residual"]), abs=1e-9) and r["in_sample"] == "False"
    # reversed rows train each weak model on the strong model's labels
    assert {r["weak_model"] for r in reversed_} == {"gpt2"} and {r["strong_model"] for r in reversed_} == {
        "bert@L1",
        "bert@L3",
        "gpt2-L1",
    }
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["n_runs"] == summary["n_runs"] == 6
    assert saved["residual_split"]["mean"]["residual"] == pytest.approx(saved["mean_residual"], abs=1e-12)
    assert saved["residual_split"]["fit_proxy_truth"]["n"] == len(normal)
    fit = saved["fit"]["all"]
    x = np.array([float(r["misfit"]) for r in normal])
    y = np.array([float(r["gain"]) for r in normal])
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["slope"] == pytest.approx(slope, rel=1e-6) and fit["intercept"] == pytest.approx(
        intercept, rel=1e-6, abs=1e-9
    )
    assert set(fit["ci"]) >= {"slope", "intercept", "r2"}
    # the interval resamples row ids: the union of both seeds' test rows, shared by every weak model and target
    from w2s_hf.data import load_task

    test_ids = {str(i) for seed in (0, 1) for i in load_task(essays, split="random", seed=seed,
                                                                targets=TARGETS).splits["test"]["id"]}
    assert fit["bootstrap"]["n_ids"] == len(test_ids) and fit["bootstrap"]["n_skipped"] == 0
    # the chosen student ridge is reported beside every slope (ridge 0 is the theorem's setting)
    ridges = [float(r["w2s_ridge"]) for r in normal]
    assert fit["w2s_ridge"]["median"] == pytest.approx(float(np.median(ridges)))
    assert fit["w2s_ridge"]["matches_theorem"] == all(r == 0 for r in ridges)
    assert all("w2s_ridge" in f for f in saved["fit"]["per_target"].values())
    assert "row id" in saved["bootstrap"]["resampling_unit"] and saved["bootstrap"]["seed"] == 0
    assert set(saved["fit"]["per_target"]) == set(TARGETS)
    assert set(saved["selection"]["mean_regret"]) == {"predicted_w2s_error", "lowest_weak_error", "largest_misfit"}
    # the regret both ways: misfit on val (which chose the ridges) and on test's unlabelled inputs
    both = saved["selection"]["by_misfit_split"]
    assert set(both) == {"misfit_on_val", "misfit_on_test"}
    assert both["misfit_on_val"]["mean_regret"] == saved["selection"]["mean_regret"]
    assert set(both["misfit_on_test"]["mean_regret"]) == set(saved["selection"]["mean_regret"])
    assert saved["ceiling_error_val"]["used_for_selection"] is True
    assert set(saved["ceiling_error_val"]["per_representation"]) == {"bert@L1", "bert@L3", "gpt2-L1", "gpt2"}
    assert set(saved["reversal"]) == {"bert@L1", "bert@L3", "gpt2-L1"}
    assert (tmp_path / "sweep" / "misfit_vs_gain.png").stat().st_size > 1000
    # every predictor scored against the gain of the normal rows; its column is the run's results.json value
    scores = saved["predictors"]["scores"]
    assert set(scores) == {"misfit", *PREDICTOR_COLUMNS}
    assert all(s["n"] == len(normal) and s["n_units"] == 6 and s["selection"]["n_scenarios"] == 4
               for s in scores.values())
    run = json.loads((tmp_path / "sweep" / "runs" / "normal__bert@L1__gpt2__seed0" / "results.json").read_text())
    first = next(r for r in normal if (r["weak_model"], r["seed"], r["target"]) == ("bert@L1", "0", TARGETS[0]))
    for name in PREDICTOR_COLUMNS:
        assert float(first[name]) == pytest.approx(run["predictors"]["per_target"][TARGETS[0]][name], rel=1e-12)


def _candidates(rng, names=("a", "b", "c", "d")):
    def block():
        per = {t: {k: float(rng.uniform(0.1, 2)) for k in ("weak_error", "w2s_error", "misfit")} for t in TARGETS}
        return {
            **{k: float(np.mean([per[t][k] for t in TARGETS])) for k in ("weak_error", "w2s_error", "misfit")},
            "per_target": per,
        }

    return {n: {"splits": {s: block() for s in ("w2s_train", "val", "test")}} for n in names}


def _poison(results, rng):
    """Replace every number the selection rule must not read: all of w2s_train and test, and val's w2s_error."""
    out = copy.deepcopy(results)
    for res in out.values():
        for split in ("w2s_train", "test"):
            for key in ("weak_error", "w2s_error", "misfit"):
                res["splits"][split][key] = float(rng.normal() * 100)
                for t in TARGETS:
                    res["splits"][split]["per_target"][t][key] = float(rng.normal() * 100)
        res["splits"]["val"]["w2s_error"] = float(rng.normal() * 100)
    return out


def test_selection_ranks_by_predicted_w2s_error_and_reports_regret():
    from w2s_hf.decomposition.selection import select_weak_model

    rng = np.random.default_rng(0)
    cands = _candidates(rng)
    pick = select_weak_model(cands)
    predicted = {n: r["splits"]["val"]["weak_error"] - r["splits"]["val"]["misfit"] for n, r in cands.items()}
    assert pick.chosen == min(predicted, key=predicted.get)
    assert [n for n, _ in pick.ranking] == sorted(predicted, key=predicted.get)
    test = {n: r["splits"]["test"]["w2s_error"] for n, r in cands.items()}
    assert pick.true_best == min(test, key=test.get)
    assert pick.regret == pytest.approx(test[pick.chosen] - min(test.values()))
    assert pick.baselines["lowest_weak_error"]["chosen"] == min(
        cands, key=lambda n: cands[n]["splits"]["val"]["weak_error"]
    )
    assert pick.baselines["largest_misfit"]["chosen"] == max(cands, key=lambda n: cands[n]["splits"]["val"]["misfit"])


@pytest.mark.parametrize("seed", range(5))
def test_selection_never_reads_student_or_test_gold(seed):
    from w2s_hf.decomposition.selection import select_weak_model

    rng = np.random.default_rng(seed)
    cands = _candidates(rng)
    for target in (None, *TARGETS):
        clean = select_weak_model(cands, target=target, evaluate_on=None)
        poisoned = select_weak_model(_poison(cands, rng), target=target, evaluate_on=None)
        assert poisoned.chosen == clean.chosen and poisoned.ranking == clean.ranking


@pytest.mark.parametrize("seed", range(3))
def test_selection_can_read_the_misfit_on_unlabelled_test_inputs(seed):
    """The misfit needs no labels, so the test inputs are legitimate for it: misfit_split == evaluate_on
    is allowed, and the choice reads only val's weak_error and test's misfit (nothing gold of test)."""
    from w2s_hf.decomposition.selection import select_weak_model

    rng = np.random.default_rng(seed)
    cands = _candidates(rng)
    pick = select_weak_model(cands, misfit_split="test", evaluate_on="test")
    predicted = {n: r["splits"]["val"]["weak_error"] - r["splits"]["test"]["misfit"] for n, r in cands.items()}
    assert pick.chosen == min(predicted, key=predicted.get) and pick.regret is not None
    poisoned = copy.deepcopy(cands)
    for res in poisoned.values():
        for key in ("weak_error", "w2s_error", "ceiling_error", "gain", "residual"):
            res["splits"]["test"][key] = float(rng.normal() * 100)
        res["splits"]["val"]["misfit"] = float(rng.normal() * 100)
    again = select_weak_model(poisoned, misfit_split="test", evaluate_on=None)
    assert again.chosen == pick.chosen and again.ranking == pick.ranking
    with pytest.raises(ValueError, match="any misfit_split is fine"):
        select_weak_model(cands, weak_error_split="test", evaluate_on="test")


def test_selection_unchanged_when_gold_labels_of_w2s_train_and_test_are_poisoned(
    essays, tiny_bert, tiny_gpt2, tmp_path
):
    """Through the real pipeline: scramble the gold labels the student must not see; the choice stays."""
    from w2s_hf.data import load_task
    from w2s_hf.decomposition.selection import select_weak_model
    from w2s_hf.pipeline import W2SPipeline

    config = _sweep_config(essays, tiny_bert, tiny_gpt2, tmp_path / "s")
    clean_task = load_task(essays, split="random", seed=0, targets=TARGETS)
    poisoned_task = load_task(essays, split="random", seed=0, targets=TARGETS)
    rng = np.random.default_rng(7)
    for split in ("w2s_train", "test"):
        ds = poisoned_task.splits[split]
        for t in TARGETS:
            ds = ds.remove_columns(t).add_column(t, list(rng.uniform(-50, 50, len(ds))))
        poisoned_task.splits[split] = ds
    picks = []
    for tag, task in (("clean", clean_task), ("poisoned", poisoned_task)):
        results = {}
        for weak in config.weak_models:
            run = config.run_config(weak, config.strong, 0, f"{tag}_{weak.label}")
            results[weak.label] = W2SPipeline(run, task=task).run()
        picks.append(select_weak_model(results, evaluate_on=None))
    assert picks[0].chosen == picks[1].chosen
    assert [n for n, _ in picks[0].ranking] == [n for n, _ in picks[1].ranking]
    assert [v for _, v in picks[0].ranking] == pytest.approx([v for _, v in picks[1].ranking], rel=1e-9)


def test_plot_has_one_point_per_run(tmp_path, monkeypatch):
    import matplotlib.figure

    from w2s_hf.hooks.plots import plot_misfit_vs_gain

    figures = []
    original = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    rng = np.random.default_rng(0)
    rows = [
        {"weak_model": w, "seed": s, "panel": p, "misfit": float(rng.uniform()), "gain": float(rng.uniform())}
        for w in ("m1", "m2", "m3")
        for s in range(3)
        for p in ("esol", "freesolv")
    ]
    path = plot_misfit_vs_gain(rows, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [fig] = figures
    per_panel = [sum(len(c.get_offsets()) for c in ax.collections) for ax in fig.axes if ax.collections]
    assert per_panel == [9, 9]  # 3 weak models x 3 seeds in each of the two panels
    assert all(any("y = x" in t.get_text() for t in ax.get_legend().get_texts()) for ax in fig.axes if ax.collections)


def test_one_run_sweep_writes_its_row_and_reports_no_line(essays, tiny_bert, tmp_path):
    """One weak model, one seed, one target: one point, so no gain-on-misfit line, but the run's row,
    sweep.json and the plot are still written (nothing computed is lost)."""
    from w2s_hf.experiments.sweep import SweepConfig, run_sweep

    out = tmp_path / "one"
    config = SweepConfig.from_dict(
        {
            "task": essays,
            "split": "random",
            "seeds": [0],
            "targets": ["cohesion"],
            "strong": {"model": tiny_bert, "layer": 3, "max_length": 48},
            "weak_models": [{"model": tiny_bert, "layer": 1, "max_length": 48}],
            "output_dir": str(out),
            "cache_dir": str(tmp_path / "cache"),
            "n_boot": 0,
            "head": {"ridge": "theorem"},  # the student a projection onto a subspace, the others chosen on val
        }
    )
    summary = run_sweep(config)
    with open(out / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["weak_model"], r["target"]) for r in rows] == [("bert@L1", "cohesion")]
    assert summary["fit"]["all"]["slope"] is None and summary["fit"]["all"]["n"] == 1
    assert json.loads((out / "sweep.json").read_text())["n_runs"] == 1
    assert (out / "misfit_vs_gain.png").is_file()
    # and the README's tabulating script reads it: one point, no slope
    from helpers import load_script

    assert summary["fit"]["all"]["w2s_ridge"] == {"min": 0.0, "median": 0.0, "max": 0.0, "matches_theorem": True,
                                                  "heads": "theorem: student at ridge 0, weak heads and ceilings "
                                                           "chosen on val"}
    assert float(rows[0]["weak_ridge"]) > 0 and float(rows[0]["ceiling_ridge"]) > 0  # chosen on val, not 0
    assert rows[0]["w2s_ridge"] == "0.0"
    assert "| 1 | n/a [n/a, n/a] | 0 (theorem) | n/a |" in load_script("summarize_sweeps").table([out])


def test_an_all_heads_ridge_0_sweep_is_not_called_the_theorem():
    """ridge 0 for every head also unregularises the teacher and the ceiling: the table says so."""
    from helpers import load_script

    from w2s_hf.experiments.sweep import ridge_summary

    fmt = load_script("summarize_sweeps")._fmt_ridge
    assert fmt(ridge_summary([0.0, 0.0], [0.0, 0.0])) == "0 (all heads)"
    assert fmt(ridge_summary([0.0, 0.0], [3.0, None, 10.0])) == "0 (theorem)"
    assert fmt(ridge_summary([0.0, 1.0], [0.0])) == "0.5"


def test_summarize_sweeps_reads_flags_and_positional_folders(tmp_path, capsys):
    """summarize_sweeps is on the one parser: `--sweeps a b`, the older positional form, and an
    unknown flag answered with a did-you-mean hint."""
    from helpers import load_script

    script = load_script("summarize_sweeps")
    missing = tmp_path / "nowhere"
    for argv in (["--sweeps", str(missing)], [str(missing), "--per_target"]):
        assert script.main(argv) == 2
        assert "has no sweep.json" in capsys.readouterr().err
    assert script.main(["--sweep", str(missing)]) == 2
    assert "Did you mean --sweeps" in capsys.readouterr().err
    assert script.main([]) == 2


def test_a_classification_sweep_runs_unchanged_on_the_kl_quantities(essays, tiny_bert, tiny_gpt2, tmp_path):
    from w2s_hf.experiments.sweep import CLASSIFICATION_COLUMNS, CSV_COLUMNS, SweepConfig, run_sweep

    base = _sweep_config(essays, tiny_bert, tiny_gpt2, tmp_path / "s").as_dict()
    values = {k: base[k] for k in ("task", "split", "seeds", "output_dir", "cache_dir", "n_boot")}
    values.update(task_type="classification", label_column="cohesion", threshold=3.0,
                  head={"k_heads": 2, "epochs": 40},
                  strong={"model": tiny_gpt2, "pooling": "last", "max_length": 48},
                  weak_models=[{"model": tiny_bert, "layer": 1, "max_length": 48},
                               {"model": tiny_bert, "layer": 3, "max_length": 48}])
    summary = run_sweep(SweepConfig.from_dict(values))
    with open(tmp_path / "s" / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS + CLASSIFICATION_COLUMNS and len(rows) == 2 * 2
    for r in rows:
        assert r["target"] == "cohesion" and r["k_heads"] == "2"
        assert 0 <= float(r["w2s_accuracy"]) <= 1 and float(r["misfit"]) >= 0 and float(r["misfit_forward"]) >= 0
        assert float(r["residual"]) == pytest.approx(float(r["gain"]) - float(r["misfit"]), abs=1e-9)
    assert summary["fit"]["all"]["n"] == 4
    picked = summary["selection"]["per_scenario"]["seed0/cohesion"]
    assert picked["chosen"] in {"bert@L1", "bert@L3"}
