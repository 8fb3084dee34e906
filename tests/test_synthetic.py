"""The paper's synthetic experiment (w2s_hf.experiments.synthetic) at test size (`quick`)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from w2s_hf.experiments.synthetic import (
    SyntheticConfig,
    build_mlp,
    format_summary,
    pretrain,
    run_synthetic,
)


def _read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def realizable(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic_realizable")
    results = run_synthetic(SyntheticConfig(quick=True, variants=["realizable"]), out)
    return results["realizable"], _read_rows(out / "realizable" / "tasks.csv")


def test_realizable_gain_tracks_misfit_on_fresh_samples(realizable):
    result, rows = realizable
    assert len(rows) == 100
    # Measured on fresh samples, as in the paper: the projection is fitted on a finite sample, so
    # the slope is near 1 but not exactly 1 (an independent run: slope 0.98, R^2 0.97).
    assert 0.9 <= result["slope"] <= 1.1, result["regression"]
    assert result["r2"] >= 0.9, result["regression"]
    # The reported line is the least-squares line of the CSV's own points.
    misfit = np.array([float(r["misfit"]) for r in rows])
    gain = np.array([float(r["gain"]) for r in rows])
    slope, intercept = np.polyfit(misfit, gain, 1)
    assert slope == pytest.approx(result["slope"], rel=1e-9)
    assert intercept == pytest.approx(result["intercept"], rel=1e-6, abs=1e-9 * np.mean(gain))
    lo, hi = result["regression"]["ci"]["slope"]
    assert lo <= result["slope"] <= hi
    # The student learns from the weak labels, not the gold ones: it keeps a real share of the weak
    # error (a student fitted on gold labels would also give gain == misfit, at w2s_error ~ 0).
    assert result["mean"]["w2s_error"] >= 0.2 * result["mean"]["weak_error"]
    # The weak model really is weak (a trivial weak head would make the test vacuous).
    assert np.all(gain > 0.01 * np.array([float(r["label_variance"]) for r in rows]))


def test_realizable_fitted_set_is_pythagorean(realizable):
    result, rows = realizable
    for r in rows:
        fit_gain, fit_misfit = float(r["fit_gain"]), float(r["fit_misfit"])
        # The truth lies in the span of h_s = h*, so the w2s head is the orthogonal projection of the
        # weak labels and gain == misfit on the set it was fitted on.
        assert abs(fit_gain - fit_misfit) <= 1e-8 * abs(fit_misfit), r
        assert float(r["fit_ceiling_error"]) <= 1e-12 * float(r["label_variance"])
        assert float(r["fit_residual"]) == pytest.approx(fit_gain - fit_misfit, abs=1e-9 * fit_misfit)
    assert result["fitted_set_max_relative_residual"] <= 1e-8
    assert result["regression_fitted_set"]["slope"] == pytest.approx(1.0, abs=1e-7)


def test_all_variants_write_their_outputs(tmp_path):
    config = SyntheticConfig(quick=True, n_tasks=6, n_samples=300, n_test=300, n_boot=20)
    results = run_synthetic(config, tmp_path)
    assert list(results) == ["realizable", "pretrained", "reversal"]
    for variant, result in results.items():
        folder = tmp_path / variant
        rows = _read_rows(folder / "tasks.csv")
        assert len(rows) == config.n_tasks
        assert [int(r["task"]) for r in rows] == list(range(config.n_tasks))
        for key in ("weak_error", "w2s_error", "misfit", "gain", "residual", "ceiling_error", "fit_gain"):
            assert all(np.isfinite(float(r[key])) for r in rows), key
        on_disk = json.loads((folder / "results.json").read_text())
        for key in ("slope", "intercept", "r2", "regression", "pretraining", "better_representation",
                    "weak_representation", "strong_representation", "gold_head_error", "seconds", "config"):
            assert key in on_disk, (variant, key)
        assert on_disk["slope"] == pytest.approx(result["slope"])
        for stats in on_disk["pretraining"].values():
            assert stats["epochs"] >= 1 and stats["seconds"] > 0
            assert np.isfinite(stats["final_loss_rel"]) and np.isfinite(stats["heldout_loss_rel"])
        assert (folder / "gain_vs_misfit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Reversal swaps the roles: the deep net teaches the shallow one, and the verdict names one of them.
    rev = results["reversal"]
    assert rev["weak_representation"].startswith("deep") and rev["strong_representation"].startswith("shallow")
    assert rev["better_representation"] in (rev["weak_representation"], rev["strong_representation"])
    assert set(rev["pretraining"]) == {"deep", "shallow"}
    # realizable and pretrained share the shallow net (pretrained once, same weak errors).
    assert results["realizable"]["mean"]["weak_error"] == results["pretrained"]["mean"]["weak_error"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == set(results)
    assert "reversal" in format_summary(results)


def test_pretraining_is_seeded_and_leaves_global_state_alone():
    def run():
        gen = torch.Generator().manual_seed(3)
        truth = build_mlp(3, 4, 8, torch.Generator().manual_seed(1)).double().requires_grad_(False)
        net = build_mlp(2, 4, 8, gen)
        rng = np.random.default_rng(0)
        heads = rng.standard_normal((2, 8))
        x = rng.normal(0, 50.0, (2, 64, 4))
        return pretrain(net, truth, heads, x, x[:, :16], epochs=5, batch_size=32, lr=1e-2,
                        weight_decay=0.01, warmup_fraction=0.1, generator=gen)

    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    (net_a, stats_a), (net_b, stats_b) = run(), run()
    assert torch.equal(rng_state, torch.get_rng_state())
    assert torch.get_num_threads() == threads
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        assert pa.dtype == torch.float64 and torch.equal(pa, pb)
    assert stats_a["final_loss"] == stats_b["final_loss"]
    assert stats_a["loss_curve_rel"][-1][1] < stats_a["loss_curve_rel"][0][1]  # it trains


def test_quick_only_shrinks_defaults_and_bad_config_is_rejected():
    resolved = SyntheticConfig(quick=True, epochs=7).resolved()
    assert resolved.epochs == 7 and resolved.pretrain_samples < SyntheticConfig().pretrain_samples
    with pytest.raises(ValueError, match="variants"):
        SyntheticConfig(variants=["realizable", "nope"])
    with pytest.raises(ValueError, match="n_tasks"):
        SyntheticConfig(n_tasks=0)
    with pytest.raises(ValueError, match="warmup_fraction"):
        SyntheticConfig(warmup_fraction=1.5)


def test_script_runs_as_documented(tmp_path, capsys):
    from helpers import load_script

    script = load_script("synthetic")
    out = tmp_path / "run"
    assert script.main(["--quick", "--variants", "realizable", "--n_tasks", "5", "--output_dir", str(out)]) == 0
    assert "realizable" in capsys.readouterr().out
    assert len(_read_rows(out / "realizable" / "tasks.csv")) == 5
    assert script.main(["--variants", "bogus", "--output_dir", str(out)]) == 2
