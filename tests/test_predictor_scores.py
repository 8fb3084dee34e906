"""Scoring gain predictors across sweep points: rank correlations, R², selection regret, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_hf.experiments.predictor_scores import correlation, score_predictors, selection_regret


def _points():
    """3 weak models x 2 seeds x 2 targets; gain rises with the misfit, w2s_error known by hand."""
    pts = []
    for seed in (0, 1):
        for k, weak in enumerate(("a", "b", "c")):
            for j, target in enumerate(("t1", "t2")):
                gain = 0.1 * k + 0.01 * j + 0.001 * seed
                pts.append({"direction": "normal", "weak_model": weak, "seed": seed, "target": target,
                            "gain": gain, "misfit": gain, "subspace_overlap": 1.0 - gain,
                            "similarity": [0.5, 0.2, 0.9][k] + 0.001 * j,
                            "w2s_error": [0.5, 0.3, 0.4][k] + 0.01 * seed})
    return pts


def test_a_monotone_predictor_has_rank_correlation_one_and_its_sign_says_the_papers_direction():
    pts = _points()
    up = correlation(pts, "misfit", n_boot=50)
    assert up["spearman"] == pytest.approx(1.0) and up["aligned"] == pytest.approx(1.0)
    assert up["r2"] == pytest.approx(1.0) and up["r2_identity"] == pytest.approx(1.0)
    down = correlation(pts, "subspace_overlap", n_boot=50)  # paper: more overlap, less gain
    assert down["spearman"] == pytest.approx(-1.0) and down["aligned"] == pytest.approx(1.0)
    assert down["ci"]["aligned"][0] == pytest.approx(1.0)
    # 6 runs, each with its 2 targets: the bootstrap resamples runs
    assert up["n"] == 12 and up["n_units"] == 6


def test_spearman_by_hand_and_misfit_r2_identity_is_fit_free():
    pts = _points()[:4]  # a/t1, a/t2, b/t1, b/t2 of seed 0
    for p, v in zip(pts, (0.3, 0.1, 0.4, 0.2)):
        p["similarity"] = v
    # gains 0, .01, .1, .11 have ranks 1 2 3 4; values .3 .1 .4 .2 have ranks 3 1 4 2
    d2 = (1 - 3) ** 2 + (2 - 1) ** 2 + (3 - 4) ** 2 + (4 - 2) ** 2
    assert correlation(pts, "similarity", n_boot=0)["spearman"] == pytest.approx(1 - 6 * d2 / (4 * 15))
    for p in pts:
        p["misfit"] = p["gain"] / 2  # perfectly correlated, but half the gain: the identity R² says so
    out = correlation(pts, "misfit", n_boot=0)
    y = np.array([p["gain"] for p in pts])
    assert out["r2"] == pytest.approx(1.0)
    assert out["r2_identity"] == pytest.approx(1 - ((y / 2) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def test_regret_of_choosing_by_the_predictor_by_hand():
    pts = _points()
    # similarity (direction -1) picks the least similar weak model: b (0.2); b has the lowest w2s_error
    sim = selection_regret(pts, "similarity", n_boot=50)
    assert sim["n_scenarios"] == 4 and set(sim["chosen"].values()) == {"b"}
    assert sim["mean_regret"] == pytest.approx(0.0)
    # the misfit picks c (largest gain), whose w2s_error is 0.1 above b's in every scenario
    mis = selection_regret(pts, "misfit", n_boot=50)
    assert set(mis["chosen"].values()) == {"c"} and mis["mean_regret"] == pytest.approx(0.1)
    assert mis["ci"] == pytest.approx([0.1, 0.1])


def test_score_predictors_skips_absent_predictors_and_says_its_units():
    out = score_predictors(_points(), n_boot=20)
    assert set(out["scores"]) == {"misfit", "similarity", "subspace_overlap"}
    assert "run" in out["resampling_unit"]["correlation"] and "seed" in out["resampling_unit"]["regret"]
    flat = [dict(p, kernel_projection=0.5) for p in _points()]
    assert score_predictors(flat, n_boot=0)["scores"]["kernel_projection"]["spearman"] is None


def test_regret_chooses_among_weak_models_at_one_budget_and_size():
    """A sweep over w2s_sizes: each (seed, target, budget, size) is its own choice; the same weak model at
    another N is never a candidate (its w2s_error there is not an alternative to choose)."""
    from w2s_hf.experiments.predictor_scores import selection_regret

    points = [{"seed": 0, "target": "y", "weak_budget": None, "w2s_size": n, "weak_model": w, "misfit": m,
               "w2s_error": e} for n, w, m, e in ((16, "a", 0.2, 1.0), (16, "b", 0.1, 0.5),
                                                  (64, "a", 0.3, 0.2), (64, "b", 0.4, 0.3))]
    out = selection_regret(points, "misfit", n_boot=0)
    # N=16 picks a (largest misfit), regret 0.5; N=64 picks b, regret 0.1. Pooled, a@64 (0.2) would be "best".
    assert out["chosen"] == {"seed0/y/N16": "a", "seed0/y/N64": "b"}
    assert out["mean_regret"] == pytest.approx(0.3) and out["n_scenarios"] == 2
