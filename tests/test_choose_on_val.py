"""The Figure 2 choice on val: the declared rule, and a refusal to read any split but val."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from w2s_hf.config import ConfigError
from w2s_hf.experiments.choose_on_val import candidate_lines, choose, family_lines

FIELDS = ("direction", "strong_model", "weak_model", "split", "misfit", "gain", "nonrealizability_term",
          "ceiling_error")


def _sweep(folder, families, split="val (cross-fitted)"):
    """A search sweep.csv (strong = the folder's name) whose family `name` has gain = slope * misfit + noise."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    with open(folder / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for name, slope, noise in families:
            for misfit in np.linspace(0.1, 1.0, 10):
                writer.writerow({"direction": "normal", "strong_model": folder.name, "weak_model": name,
                                 "split": split, "misfit": misfit, "gain": slope * misfit + noise * rng.normal(),
                                 "nonrealizability_term": (slope - 1) * misfit, "ceiling_error": 0.5})
    return folder


def test_the_rule_prefers_a_panel_meeting_every_target_over_a_nearer_slope_that_misses_one(tmp_path):
    noisy = _sweep(tmp_path / "noisy", [("a", 1.0, 0.6), ("b", 1.0, 0.6)])
    far = _sweep(tmp_path / "far", [("a", 0.3, 0.0), ("b", 0.3, 0.0)])
    meets = _sweep(tmp_path / "meets", [("a", 0.7, 0.01), ("b", 1.0, 0.01)])
    lines = candidate_lines([noisy, far, meets])
    assert [(ln["strong"], ln["weak"], ln["points"]) for ln in lines] == [
        ("noisy", "all families", 20), ("far", "all families", 20), ("meets", "all families", 20)]
    chosen = choose(lines)
    assert (chosen["strong"], chosen["met_on_val"]) == ("meets", True)
    assert 0.8 <= chosen["slope"] <= 0.9  # the panel pools both families (0.7 and 1.0)
    # families are diagnostics with their own lines
    slopes = {ln["weak"]: ln["slope"] for ln in family_lines([meets])}
    assert slopes == {"a": pytest.approx(0.7, abs=0.05), "b": pytest.approx(1.0, abs=0.05)}
    # nothing meets the targets: slope nearest 1, and the choice says it missed
    chosen = choose(candidate_lines([noisy, far]))
    assert (chosen["strong"], chosen["met_on_val"]) == ("noisy", False)


def test_a_sweep_scored_on_test_is_refused(tmp_path):
    folder = _sweep(tmp_path / "s", [("w", 1.0, 0.0)], split="test (cross-fitted)")
    with pytest.raises(ConfigError, match="val rows only"):
        candidate_lines([folder])
    with pytest.raises(ConfigError, match="no sweep.csv"):
        candidate_lines([tmp_path / "missing"])


def test_candidates_with_one_strong_model_are_told_apart_by_their_teachers(tmp_path):
    import json

    from w2s_hf.experiments.choose_on_val import teachers_of

    settings = {"val": {"ridge": "theorem", "weak_ridge": None},
                "fixed": {"ridge": "theorem", "weak_ridge": "0", "weak_clip": True}}
    folders = []
    for name, config in settings.items():
        folder = _sweep(tmp_path / name, [("a", 1.0, 0.0)])
        (folder / "sweep.json").write_text(json.dumps({"config": config}))
        folders.append(folder)
    assert [ln["teachers"] for ln in candidate_lines(folders)] == ["on val, unclipped", "ridge 0, clipped"]
    assert teachers_of(_sweep(tmp_path / "old", [("a", 1.0, 0.0)])) == "n/a"  # no sweep.json
    (tmp_path / "old" / "sweep.json").write_text("{truncated")
    with pytest.raises(ConfigError, match="unreadable"):
        teachers_of(tmp_path / "old")
