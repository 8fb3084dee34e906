"""`w2s qsar-figure`'s numbers: the premise-on-val line and the lower-half line, from a sweep folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from w2s_hf.commands.qsar_figure import main, panel_numbers, table
from w2s_hf.experiments.sweep import point_folder_name

FIELDS = ("direction", "weak_model", "strong_model", "seed", "weak_budget", "w2s_size", "folds", "split",
          "misfit", "gain", "proxy_gain")


def _sweep(folder, points):
    """A finished sweep: `points` are (misfit, gain, val weak_error, val ceiling_error)."""
    rows = []
    for seed, (misfit, gain, weak_val, ceiling_val) in enumerate(points):
        row = {"direction": "normal", "weak_model": "w", "strong_model": "s", "seed": seed, "weak_budget": "",
               "w2s_size": "", "folds": "", "split": "test", "misfit": misfit, "gain": gain, "proxy_gain": misfit}
        rows.append(row)
        run = folder / "runs" / point_folder_name("normal", "w", "s", seed)
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps(
            {"splits": {"val": {"weak_error": weak_val, "ceiling_error": ceiling_val, "pgr_reason": None}}}))
    with open(folder / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    gains = [p[1] for p in points]
    (folder / "sweep.json").write_text(json.dumps({
        "config": {"name": "toy panel"}, "fit": {"all": {"slope": 0.5, "r2": 0.9, "n": len(points), "ci": {}}},
        "residual_split": {"mean": {"residual": -0.1, "finite_sample_term": 0.0, "nonrealizability_term": -0.1}},
        "share_positive_gain": float(np.mean(np.array(gains) > 0))}))
    return folder


def test_lower_half_and_premise_lines(tmp_path, capsys):
    # small misfits: gain = misfit; large ones: gain = misfit / 2 (they set the all-points line)
    small = [(m, m, 1.0, 0.5) for m in (0.1, 0.2, 0.3, 0.4)]
    large = [(m, m / 2, 0.4, 0.5) for m in (5.0, 6.0, 7.0, 8.0)]  # val says these teachers beat the ceiling
    folder = _sweep(tmp_path / "panel", small + large)
    panel = panel_numbers(folder)
    assert panel["lower_half"]["n"] == 4
    assert panel["lower_half"]["slope"] == pytest.approx(1.0)
    assert panel["lower_half"]["r2"] == pytest.approx(1.0)
    all_slope = np.polyfit([p[0] for p in small + large], [p[1] for p in small + large], 1)[0]
    assert abs(all_slope - 1.0) > 0.3  # the lower-half line can disagree with the all-points one
    # premise on val: only the teachers whose val error is above the ceiling's (the small ones)
    assert panel["premise"]["n"] == 4 and panel["premise"]["slope"] == pytest.approx(1.0)
    text = table([panel])
    assert "lower half of the misfits" in text and "| 4, 1.00, 1.00, 100% | 4, 1.00, 1.00, 100% |" in text
    assert main(["--sweeps", str(folder)]) == 0
    assert "toy panel" in capsys.readouterr().out
    assert main(["--sweeps", str(tmp_path / "missing")]) == 2
