"""Scaling over N: power-law exponents by hand, intervals over seeds, nested subsets, the protocol's refits."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_hf.data.splits import STREAM_W2S_SIZE, nested_subset
from w2s_hf.experiments.scaling import fit_power_law, scaling_points, scaling_summary


def test_an_exact_power_law_gives_its_exponent_and_a_zero_width_interval():
    n = np.array([10, 20, 40, 80] * 3)
    seeds = np.repeat([0, 1, 2], 4)
    out = fit_power_law(n, 3.0 * n ** -0.5, seeds, n_boot=50)
    assert out["alpha"] == pytest.approx(0.5) and out["a"] == pytest.approx(3.0)
    assert out["ci"] == pytest.approx([0.5, 0.5]) and out["n_seeds"] == 3


def test_the_interval_resamples_seeds_with_their_exponents():
    n = np.array([10, 100] * 2, dtype=float)
    # seed 0 falls as n^-1, seed 1 as n^-0 (flat): the pooled fit is 1/2, the interval spans 0..1
    err = np.array([0.1, 0.01, 1.0, 1.0])
    out = fit_power_law(n, err, [0, 0, 1, 1], n_boot=200)
    assert out["alpha"] == pytest.approx(0.5)
    assert out["ci"][0] == pytest.approx(0.0, abs=1e-12) and out["ci"][1] == pytest.approx(1.0)


def test_bad_power_law_inputs_are_refused():
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2], [0.1, 0.0], [0, 0])
    with pytest.raises(ValueError, match="two distinct sizes"):
        fit_power_law([5, 5], [0.1, 0.2], [0, 1])


def test_subsets_are_nested_and_seeded():
    """The rows of N are inside the rows of 2N for one seed; another seed draws other rows; N = n is every row."""
    for n in (8, 16, 25):
        small, large = nested_subset(50, n, 3, STREAM_W2S_SIZE), nested_subset(50, 2 * n, 3, STREAM_W2S_SIZE)
        assert len(small) == n and len(set(small)) == n and set(small) < set(large)
    assert np.array_equal(nested_subset(50, 10, 3, STREAM_W2S_SIZE), nested_subset(50, 10, 3, STREAM_W2S_SIZE))
    assert not np.array_equal(nested_subset(50, 10, 3, STREAM_W2S_SIZE), nested_subset(50, 10, 4, STREAM_W2S_SIZE))
    assert np.array_equal(nested_subset(50, 50, 3, STREAM_W2S_SIZE), np.arange(50))
    with pytest.raises(ValueError):
        nested_subset(50, 51, 3, STREAM_W2S_SIZE)


class _Run:
    """The two attributes of a finished run that scaling reads: `rows(role, split)` and `gold`."""

    classes = None

    def __init__(self, seed=0, n=(120, 160, 60, 60)):
        rng = np.random.default_rng(seed)
        w = rng.normal(size=6)
        self.X, self.gold = {}, {}
        for split, m in zip(("weak_train", "w2s_train", "val", "test"), n):
            strong = rng.normal(size=(m, 6))
            self.X[("strong", split)] = strong
            self.X[("weak", split)] = strong[:, :3] + 0.5 * rng.normal(size=(m, 3))
            self.gold[split] = (strong @ w + 0.1 * rng.normal(size=m))[:, None]

    def rows(self, role, split):
        return self.X[(role, split)]


def test_scaling_points_refit_the_protocol_on_nested_subsets():
    from w2s_hf.heads import fit_ridge

    run = _Run()
    points = scaling_points(run, [20, 160], [30, None], seed=0)
    assert [(p["weak_budget"], p["w2s_size"]) for p in points] == [(30, 20), (30, 160), (None, 20), (None, 160)]
    assert [(p["weak_rows"], p["w2s_rows"]) for p in points] == [(30, 20), (30, 160), (120, 20), (120, 160)]
    # the full-size points are the ordinary protocol: weak on all weak_train, student on its labels
    weak, _ = fit_ridge(run.rows("weak", "weak_train"), run.gold["weak_train"], run.rows("weak", "val"),
                        run.gold["val"])
    labels = {s: weak.predict(run.rows("weak", s)).reshape(-1, 1) for s in ("w2s_train", "val", "test")}
    student, _ = fit_ridge(run.rows("strong", "w2s_train"), labels["w2s_train"], run.rows("strong", "val"),
                           labels["val"])
    last = points[-1]
    assert last["weak_error"] == pytest.approx(np.mean((labels["test"] - run.gold["test"]) ** 2))
    assert last["w2s_error"] == pytest.approx(
        np.mean((student.predict(run.rows("strong", "test")).reshape(-1, 1) - run.gold["test"]) ** 2))
    # the ceiling learns the (linear) truth: more rows, less error; it does not depend on the weak budget
    assert points[1]["ceiling_error"] < points[0]["ceiling_error"] == points[2]["ceiling_error"]
    assert points[0]["weak_error"] > points[2]["weak_error"]  # 30 gold rows make a worse teacher than 120
    with pytest.raises(ValueError, match="between 2 and"):
        scaling_points(run, [161], [None], seed=0)


def test_scaling_summary_fits_each_axis_with_the_errors_that_move_along_it():
    points = [p for s in (0, 1) for p in scaling_points(_Run(s), [20, 40, 160], [30, 60, None], seed=s)]
    out = scaling_summary(points, n_boot=20)
    assert set(out["w2s_size"]) == {"weak_budget=30", "weak_budget=60", "weak_budget=all"}
    assert set(out["w2s_size"]["weak_budget=all"]) == {"w2s_error", "ceiling_error"}
    assert set(out["weak_budget"]["w2s_size=160"]) == {"weak_error", "w2s_error"}
    assert out["w2s_size"]["weak_budget=all"]["ceiling_error"]["alpha"] > 0  # the ceiling improves with N


def test_the_figure_panels_carry_each_budget_s_student_one_ceiling_and_the_fits(tmp_path):
    """`w2s scaling` and a sweep draw through one builder: per panel one w2s series per weak budget, the ceiling
    once, the weak error of each budget as a level, and each series' fitted line from the summary."""
    from w2s_hf.experiments.scaling import scaling_panels
    from w2s_hf.hooks.scaling_plot import plot_scaling

    points = [{"weak_model": "m", **p} for s in (0, 1) for p in scaling_points(_Run(s), [20, 40, 160], [30, None], s)]
    fits = {"m": scaling_summary(points, n_boot=0)}
    (panel,) = scaling_panels(points, fits, "weak_model")
    assert [(s["error"], s["label"]) for s in panel["series"]] == [
        ("w2s_error", "w2s_error, weak budget 30"), ("w2s_error", "w2s_error, weak budget all"),
        ("ceiling_error", "ceiling_error")]
    ceiling = panel["series"][-1]
    assert ceiling["n"] == [20, 40, 160]
    assert ceiling["fit"] == fits["m"]["w2s_size"]["weak_budget=all"]["ceiling_error"]
    assert ceiling["err"][0] == pytest.approx(np.mean([p["ceiling_error"] for p in points if p["w2s_size"] == 20]))
    assert [lvl["label"] for lvl in panel["levels"]] == ["weak_error, weak budget 30", "weak_error, weak budget all"]
    assert plot_scaling([panel], tmp_path / "s.png").stat().st_size > 0


def test_an_error_of_zero_is_a_note_not_the_end_of_a_sweep():
    from w2s_hf.experiments.sweep_report import scaling_lines

    points = [{"seed": s, "weak_budget": None, "w2s_size": n, "weak_rows": 50, "w2s_rows": n, "weak_error": 1.0,
               "w2s_error": 0.5 * n ** -0.5, "ceiling_error": 0.0} for s in (0, 1) for n in (10, 40)]
    fits = scaling_summary(points, n_boot=10)["w2s_size"]["weak_budget=all"]
    assert fits["w2s_error"]["alpha"] == pytest.approx(0.5)
    assert fits["ceiling_error"]["alpha"] is None and "positive" in fits["ceiling_error"]["note"]
    lines = scaling_lines({"resampling_unit": "seed", "panels": {"m / y": {"w2s_size": {"weak_budget=all": fits}}}})
    assert "ceiling_error no fit (a power law needs positive sizes and errors)" in lines[-1]


def test_the_command_prints_exponents_with_intervals_and_no_table_per_run(tmp_path, tiny_bert, capsys):
    import json

    import yaml

    from w2s_hf.commands.scaling import main
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    essays = write_synthetic_ellipse(tmp_path / "essays.csv", n=120, seed=3)
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "task": str(essays), "split": "random", "targets": ["cohesion"], "seeds": [0, 1],
        "strong": {"model": tiny_bert, "layer": 3, "max_length": 48},
        "weak_models": [{"model": tiny_bert, "layer": 1, "max_length": 48, "name": "L1"}],
        "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}))
    assert main(["--config", str(config), "--sizes", "10", "20", "--n_boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "quantity" not in out  # one exponent table at the end, not a decomposition table per run
    line = next(x for x in out.splitlines() if x.startswith("  L1, over the w2s_train rows"))
    assert "w2s_error" in line and "ceiling_error" in line and "[" in line  # exponents with their intervals
    summary = json.loads((tmp_path / "out" / "scaling.json").read_text())
    assert summary["sizes"] == [10, 20] and summary["seeds"] == [0, 1]
