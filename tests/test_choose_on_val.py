"""The Figure 2 choice on val: the declared rule, and a refusal to read any split but val."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from w2s_hf.config import ConfigError
from w2s_hf.experiments.choose_on_val import candidate_lines, choose

FIELDS = ("direction", "strong_model", "weak_model", "split", "misfit", "gain", "nonrealizability_term",
          "ceiling_error")


def _sweep(folder, lines, split="val (cross-fitted)"):
    """A sweep.csv whose weak family `name` has gain = slope * misfit (+ noise) on 10 points."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    with open(folder / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for name, slope, noise in lines:
            for misfit in np.linspace(0.1, 1.0, 10):
                writer.writerow({"direction": "normal", "strong_model": folder.name, "weak_model": name,
                                 "split": split, "misfit": misfit, "gain": slope * misfit + noise * rng.normal(),
                                 "nonrealizability_term": (slope - 1) * misfit, "ceiling_error": 0.5})
    return folder


def test_the_rule_prefers_a_pair_meeting_every_target_over_a_nearer_slope_that_misses_one(tmp_path):
    a = _sweep(tmp_path / "strong_a", [("near_but_noisy", 1.0, 0.6), ("far", 0.3, 0.0)])
    b = _sweep(tmp_path / "strong_b", [("meets", 0.85, 0.01)])
    lines = candidate_lines([a, b])
    assert {(ln["strong"], ln["weak"]) for ln in lines} == {("strong_a", "near_but_noisy"), ("strong_a", "far"),
                                                           ("strong_b", "meets")}
    chosen = choose(lines)
    assert (chosen["strong"], chosen["weak"], chosen["met_on_val"]) == ("strong_b", "meets", True)
    assert chosen["slope"] == pytest.approx(0.85, abs=0.02)
    # nothing meets the targets: slope nearest 1 over all, and the choice says it missed
    chosen = choose(candidate_lines([a]))
    assert (chosen["weak"], chosen["met_on_val"]) == ("near_but_noisy", False)


def test_a_sweep_scored_on_test_is_refused(tmp_path):
    folder = _sweep(tmp_path / "s", [("w", 1.0, 0.0)], split="test (cross-fitted)")
    with pytest.raises(ConfigError, match="val rows only"):
        candidate_lines([folder])
    with pytest.raises(ConfigError, match="no sweep.csv"):
        candidate_lines([tmp_path / "missing"])
