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


# ----------------------------------------------------------------------------- protocol notebook
from w2s_hf.experiments import synthetic  # noqa: E402
from w2s_hf.heads import fit_exact  # noqa: E402


def _tiny(**kw):
    base = dict(quick=True, n_tasks=5, n_samples=200, n_test=200, n_boot=10, sweep_samples=[10, 40],
                sweep_epochs=[5, 30], head_epochs=40)
    base.update(kw)
    return SyntheticConfig(**base).resolved()


def test_notebook_truth_ends_with_relu_and_fast_does_not():
    x = np.random.default_rng(0).normal(0, 500.0, (400, 8))
    nb = synthetic.features(synthetic.Representations(_tiny(protocol="notebook")).truth, x)
    fast = synthetic.features(synthetic.Representations(_tiny()).truth, x)
    assert nb.min() >= 0 and (nb > 0).any()
    assert fast.min() < 0  # no ReLU after the last layer: signed features
    # the same weights (same stream), only the last ReLU differs
    assert np.array_equal(nb, np.maximum(fast, 0))


def test_adamw_heads_have_bias_at_pytorch_init():
    rng = np.random.default_rng(0)
    w, b = synthetic.draw_heads(rng, 50, 16, "notebook")
    assert w.shape == (50, 16) and b.shape == (50,)
    assert np.abs(w).max() <= 0.25 and np.abs(b).max() <= 0.25 and np.abs(b).max() > 0.1
    w_fast, b_fast = synthetic.draw_heads(np.random.default_rng(0), 50, 16, "fast")
    assert b_fast is None and np.abs(w_fast).max() > 1.0  # N(0, I)


def test_notebook_misfit_is_measured_on_its_own_rows():
    nb, fast = synthetic.task_sample(_tiny(protocol="notebook"), 3), synthetic.task_sample(_tiny(), 3)
    assert fast.x_misfit is fast.x_test
    assert nb.x_misfit.shape == nb.x_test.shape
    rows = {tuple(r) for r in nb.x_misfit}
    assert rows.isdisjoint({tuple(r) for r in nb.x_test}) and rows.isdisjoint({tuple(r) for r in nb.x_fit})


def test_notebook_settings_resolve_and_explicit_values_win():
    nb = SyntheticConfig(protocol="notebook").resolved()
    assert (nb.batch_size, nb.lr) == (32, 1e-3)
    fast = SyntheticConfig().resolved()
    assert (fast.batch_size, fast.lr, fast.protocol) == (500, 1e-2, "fast")
    assert SyntheticConfig(protocol="notebook", batch_size=64).resolved().batch_size == 64
    with pytest.raises(ValueError, match="protocol must be one of"):
        SyntheticConfig(protocol="paper")
    with pytest.raises(ValueError, match="warmup_fraction"):
        SyntheticConfig(protocol="notebook", warmup_fraction=0.2)
    with pytest.raises(ValueError, match="sweep_samples"):
        SyntheticConfig(sweep_samples=[10, 0])


def _tiny_pretraining():
    truth = build_mlp(3, 4, 8, torch.Generator().manual_seed(1), final_relu=True).double().requires_grad_(False)
    rng = np.random.default_rng(0)
    heads, bias = synthetic.draw_heads(rng, 3, 8, "notebook")
    x = rng.normal(0, 50.0, (3, 40, 4))
    return truth, heads, bias, x


def test_pretrain_notebook_steps_task_by_task_at_the_configured_batch_and_constant_lr():
    truth, heads, bias, x = _tiny_pretraining()

    def run(snapshots):
        return synthetic.pretrain_notebook(
            build_mlp(2, 4, 8, torch.Generator().manual_seed(5), final_relu=True), truth, heads, bias, x,
            x[:, :10], snapshots=snapshots, batch_size=16, lr=3e-3, weight_decay=0.01,
            generator=torch.Generator().manual_seed(9))

    snaps = run([2, 4])
    net2, stats2 = snaps[2]
    assert stats2["batch_size"] == 16 and stats2["epochs"] == 2 and stats2["steps"] == 2 * 3 * 3  # ceil(40/16)
    # a snapshot is the net of a shorter run, bit for bit (constant rate)
    alone, _ = run([2])[2]
    for pa, pb in zip(net2.parameters(), alone.parameters()):
        assert torch.equal(pa, pb)
    # the reference loop: per epoch, task by task, own shuffle, minibatches of 16, AdamW lr 3e-3 constant
    ref = build_mlp(2, 4, 8, torch.Generator().manual_seed(5), final_relu=True)
    opt = torch.optim.AdamW(ref.parameters(), lr=3e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(9)
    true_rep = synthetic.features(truth, x.reshape(-1, 4)).reshape(3, 40, 8)
    y = torch.from_numpy(np.einsum("tnk,tk->tn", true_rep, heads) + bias[:, None]).float()
    X, W, B = torch.from_numpy(x).float(), torch.from_numpy(heads).float(), torch.from_numpy(bias).float()
    for _ in range(2):
        for t in range(3):
            order = torch.randperm(40, generator=gen)
            for i in range(0, 40, 16):
                idx = order[i : i + 16]
                loss = torch.mean((ref(X[t, idx]) @ W[t] + B[t] - y[t, idx]) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
    for pa, pb in zip(net2.parameters(), ref.parameters()):
        assert torch.allclose(pa.float(), pb.detach(), rtol=1e-4, atol=1e-5)
    assert snaps[4][1]["loss_curve_rel"][-1][1] < snaps[4][1]["loss_curve_rel"][0][1]  # it trains


def test_batched_adamw_heads_move_as_each_would_alone():
    rng = np.random.default_rng(0)
    feats = rng.normal(0, 1, (3, 96, 5))
    targets = feats @ rng.normal(0, 1, 5) + 0.7 + 0.01 * rng.normal(0, 1, (3, 96))
    init = rng.uniform(-0.4, 0.4, (3, 6))

    def fit(f, y, i, epochs=3, lr=1e-2):
        return synthetic.fit_heads_adamw(f, y, i, epochs=epochs, batch_size=32, lr=lr, weight_decay=0.01,
                                         generator=torch.Generator().manual_seed(4))

    w, b = fit(feats, targets, init)
    for h in range(3):
        w_h, b_h = fit(feats[h : h + 1], targets[h : h + 1], init[h : h + 1])
        np.testing.assert_allclose(w_h[0], w[h], rtol=1e-5, atol=1e-6)
        assert b_h[0] == pytest.approx(b[h], rel=1e-5, abs=1e-6)
    # enough epochs reach the least-squares head
    w_long, b_long = fit(feats, targets, init, epochs=300, lr=3e-2)
    exact = fit_exact(feats[0], targets[0])
    np.testing.assert_allclose(feats[0] @ w_long[0] + b_long[0], exact.predict(feats[0]), atol=0.05)


def test_notebook_rows_take_the_misfit_from_their_own_rows(tmp_path):
    config = _tiny(protocol="notebook", variants=["realizable"])
    results = run_synthetic(config, tmp_path)
    rows = _read_rows(tmp_path / "realizable" / "tasks.csv")
    assert len(rows) == config.n_tasks and results["realizable"]["config"]["protocol"] == "notebook"
    for r in rows:
        misfit, gain = float(r["misfit"]), float(r["gain"])
        assert float(r["residual"]) == pytest.approx(gain - misfit, rel=1e-12, abs=1e-12 * abs(misfit))
        assert float(r["predicted_w2s_error"]) == pytest.approx(float(r["weak_error"]) - misfit, rel=1e-12)
        assert misfit != float(r["misfit_on_test_x"])  # another sample, another value


@pytest.mark.parametrize("protocol", ["fast", "notebook"])
def test_reversal_sweep_names_the_really_better_net_and_makes_it_strong(tmp_path, protocol):
    config = _tiny(protocol=protocol, variants=["reversal"])
    result = run_synthetic(config, tmp_path)["reversal"]
    sweep = result["sweep"]
    assert [(p["samples_per_task"], p["epochs"]) for p in sweep["points"]] == [(10, 5), (10, 30), (40, 5), (40, 30)]
    reps = synthetic.Representations(config)
    task_rows = _read_rows(tmp_path / "reversal" / "sweep_tasks.csv")
    assert len(task_rows) == 4 * config.n_tasks
    for p in sweep["points"]:
        s, e = p["samples_per_task"], p["epochs"]
        # gold errors recomputed here, from nets pretrained again (same seeds, same nets)
        deep, _ = reps.pretrained(config.deep_depth, s, e)
        shallow, _ = reps.pretrained(config.shallow_depth, s, e)
        rows = synthetic.evaluate_tasks(config, "check", reps.truth, shallow, deep,
                                        adamw_heads=reps.adamw_heads)
        var = np.array([r["label_variance"] for r in rows])
        deep_gold = np.array([r["ceiling_error"] for r in rows])
        shallow_gold = np.array([r["weak_error"] for r in rows])
        assert p["gold_error"]["deep"] == pytest.approx(deep_gold.mean(), rel=1e-9)
        assert p["gold_error"]["shallow"] == pytest.approx(shallow_gold.mean(), rel=1e-9)
        assert p["gold_error_rel"]["deep"] == pytest.approx(np.mean(deep_gold / var), rel=1e-9)
        assert p["better"] == ("deep" if np.mean(deep_gold / var) < np.mean(shallow_gold / var) else "shallow")
        assert p["reversed"] == (p["better"] == "shallow")
        assert p["strong_representation"].startswith(p["better"])
        # in the point's own rows the strong model is the better one: its gold head beats the weak one
        mine = [r for r in task_rows if int(r["samples_per_task"]) == s and int(r["epochs"]) == e]
        assert len(mine) == config.n_tasks == p["n_points"]
        mine_var = np.array([float(r["label_variance"]) for r in mine])
        assert np.mean([float(r["ceiling_error"]) for r in mine] / mine_var) < np.mean(
            [float(r["weak_error"]) for r in mine] / mine_var)
        gain = np.array([float(r["gain"]) for r in mine])
        misfit = np.array([float(r["misfit"]) for r in mine])
        assert p["slope"] == pytest.approx(np.polyfit(misfit, gain, 1)[0], rel=1e-9)
    assert sweep["reversal_regime"] == [[p["samples_per_task"], p["epochs"]] for p in sweep["points"] if p["reversed"]]
    assert len(_read_rows(tmp_path / "reversal" / "sweep.csv")) == 4
    assert (tmp_path / "reversal" / "sweep_gain_vs_misfit.png").read_bytes()[:4] == b"\x89PNG"
    assert "reversal regime" in synthetic.format_reversal_sweep(sweep)


def test_script_takes_the_protocol_flag(tmp_path, capsys):
    from helpers import load_script

    script = load_script("synthetic")
    out = tmp_path / "nb"
    argv = ["--quick", "--protocol", "notebook", "--variants", "reversal", "--n_tasks", "4", "--n_samples", "100",
            "--n_test", "100", "--head_epochs", "5", "--sweep_samples", "10", "--sweep_epochs", "5", "--output_dir",
            str(out)]
    assert script.main(argv) == 0
    printed = capsys.readouterr().out
    assert "reversal sweep (protocol notebook)" in printed and "reversal regime" in printed
    assert json.loads((out / "reversal" / "results.json").read_text())["config"]["batch_size"] == 32
    with pytest.raises(SystemExit):  # argparse's choices: "invalid choice: 'paper' (choose from 'fast', 'notebook')"
        script.main(["--protocol", "paper", "--output_dir", str(out)])
    assert "invalid choice" in capsys.readouterr().err


def test_notebook_with_exact_heads_measures_the_misfit_on_the_misfit_rows():
    config = _tiny(protocol="notebook", head_solver="exact")
    assert synthetic.head_solver(config) == "exact" and synthetic.head_solver(_tiny(protocol="notebook")) == "adamw"
    reps = synthetic.Representations(config)
    weak, _ = reps.pretrained(config.shallow_depth, 10, 5)
    strong, _ = reps.pretrained(config.deep_depth, 10, 5)
    rows = synthetic.evaluate_tasks(config, "check", reps.truth, weak, strong)
    for task in (0, 4):
        s = synthetic.task_sample(config, task)
        y = synthetic.features(reps.truth, s.x_fit) @ s.head + s.bias[0]
        weak_head = fit_exact(synthetic.features(weak, s.x_fit), y)
        w2s_head = fit_exact(synthetic.features(strong, s.x_fit), weak_head.predict(synthetic.features(weak, s.x_fit)))

        def misfit(x):
            return np.mean((w2s_head.predict(synthetic.features(strong, x))
                            - weak_head.predict(synthetic.features(weak, x))) ** 2)

        assert rows[task]["misfit"] == pytest.approx(misfit(s.x_misfit), rel=1e-9)
        assert rows[task]["misfit_on_test_x"] == pytest.approx(misfit(s.x_test), rel=1e-9)
    with pytest.raises(ValueError, match="head_solver"):
        SyntheticConfig(head_solver="sgd")
