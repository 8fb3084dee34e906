"""End-to-end weak-to-strong runs on tiny models: 1 vs 2 processes, predictions vs JSON, reruns, bad configs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import load_script

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["cohesion", "grammar"]


def _train_main():
    return load_script("train_w2s").main


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert, tiny_gpt2):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    root = tmp_path_factory.mktemp("pipeline")
    data = write_synthetic_ellipse(root / "essays.csv", n=160, seed=0)
    config = {
        "task": str(data), "split": "random", "targets": TARGETS,
        "weak": {"model": tiny_bert, "layer": 1, "max_length": 64},
        "strong": {"model": tiny_gpt2, "pooling": "last", "max_length": 64},
        "report_to": "none", "n_boot": 50, "cache_dir": str(root / "cache"),
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = root / "run1"
    assert _train_main()(["--config", str(path), "--output_dir", str(out)]) == 0
    return {"root": root, "config": path, "out": out, "values": config}


def _read_preds(path: Path) -> dict[tuple[str, str], np.ndarray]:
    with open(path, newline="") as fh:
        return {(r["split"], r["id"]): np.array([float(r[t]) for t in TARGETS]) for r in csv.DictReader(fh)}


def _numbers(obj, prefix=""):
    """Flatten every number in a nested dict (for comparing two results.json files)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{prefix}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def test_results_schema_and_values_match_saved_predictions(setup):
    from w2s_hf.data import load_task

    results = json.loads((setup["out"] / "results.json").read_text())
    assert {"config", "fingerprints", "splits", "timings"} <= set(results)
    assert set(results["fingerprints"]) == {"weak", "strong"} and all(results["fingerprints"].values())
    assert set(results["splits"]) == {"w2s_train", "val", "test"}
    # val chose every ridge: marked, so nobody reads its errors as clean estimates
    assert {s: b["used_for_selection"] for s, b in results["splits"].items()} == {
        "w2s_train": False, "val": True, "test": False}
    task = load_task(str(setup["values"]["task"]), split="random", seed=0, targets=TARGETS)
    weak = _read_preds(setup["out"] / "predictions" / "weak.csv")
    w2s = _read_preds(setup["out"] / "predictions" / "w2s.csv")
    ceiling = _read_preds(setup["out"] / "predictions" / "ceiling.csv")
    for split, block in results["splits"].items():
        for key in ("weak_error", "w2s_error", "misfit", "gain", "residual", "predicted_w2s_error",
                    "ceiling_error", "pgr", "ci", "per_target"):
            assert key in block, (split, key)
        ds = task.splits[split]
        y = np.stack([np.asarray(ds[t], dtype=float) for t in TARGETS], axis=1)
        ids = list(ds["id"])
        pw = np.stack([weak[(split, i)] for i in ids])
        ps = np.stack([w2s[(split, i)] for i in ids])
        pc = np.stack([ceiling[(split, i)] for i in ids])
        by_hand = {
            "weak_error": ((pw - y) ** 2).mean(0), "w2s_error": ((ps - y) ** 2).mean(0),
            "misfit": ((ps - pw) ** 2).mean(0), "ceiling_error": ((pc - y) ** 2).mean(0),
        }
        for name, per_target in by_hand.items():
            assert block[name] == pytest.approx(per_target.mean(), rel=1e-9, abs=1e-12)
            for t, value in zip(TARGETS, per_target):
                assert block["per_target"][t][name] == pytest.approx(value, rel=1e-9, abs=1e-12)
        assert block["gain"] == pytest.approx(block["weak_error"] - block["w2s_error"], abs=1e-12)
        # the residual split from the saved predictions; w2s_train, where the heads were fitted, is in-sample
        split_by_hand = {"finite_sample_term": 2 * ((pw - ps) * (ps - pc)).mean(0),
                         "nonrealizability_term": 2 * ((pw - ps) * (pc - y)).mean(0)}
        for name, per_target in split_by_hand.items():
            assert block["diagnostics"][name] == pytest.approx(per_target.mean(), rel=1e-9, abs=1e-12)
            for t, value in zip(TARGETS, per_target):
                assert block["diagnostics_per_target"][t][name] == pytest.approx(value, rel=1e-9, abs=1e-12)
        assert block["in_sample"] is (split == "w2s_train")
        assert block["reading"].startswith("residual ")
    assert (setup["out"] / "decomposition.png").stat().st_size > 1000


def test_results_carry_every_gain_predictor(setup):
    from w2s_hf.decomposition.predictors import DIRECTIONS

    results = json.loads((setup["out"] / "results.json").read_text())
    block = results["predictors"]
    assert set(block["values"]) == set(DIRECTIONS) and all(v is not None for v in block["values"].values())
    assert set(block["per_target"]) == set(TARGETS)
    for t in TARGETS:  # the misfit predictor is the test split's misfit, the others are on their own scales
        assert block["per_target"][t]["misfit"] == results["splits"]["test"]["per_target"][t]["misfit"]
    assert 0 <= block["values"]["subspace_overlap"] <= 1 and -1 <= block["values"]["similarity"] <= 1
    assert "val" in block["reads"]["similarity"] and "no label" in block["reads"]["subspace_overlap"]
    assert results["timings"]["predictors"] >= 0


def test_student_never_sees_gold_labels(setup):
    """The w2s head's ridge is chosen against weak labels of val; its training labels are weak labels."""
    meta = json.loads((setup["out"] / "heads" / "w2s.json").read_text())
    assert meta["selected_on"] == "val weak labels" and meta["train_split"] == "w2s_train"
    assert json.loads((setup["out"] / "heads" / "ceiling.json").read_text())["selected_on"] == "val gold labels"


@pytest.mark.slow
def test_two_processes_give_the_same_results(setup):
    out2 = setup["root"] / "run2"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # through the `w2s` command's hand-off to accelerate launch (it picks a free rendezvous port itself)
    cmd = [sys.executable, "-m", "w2s_hf", "run", "--num_processes", "2",
           "--config", str(setup["config"]), "--output_dir", str(out2)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = ("splits", "predictors")  # predictors: from features and predictions gathered on every process
    one = dict(_numbers({k: json.loads((setup["out"] / "results.json").read_text())[k] for k in keys}))
    two = dict(_numbers({k: json.loads((out2 / "results.json").read_text())[k] for k in keys}))
    assert one.keys() == two.keys()
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-6), key
    # the predictions themselves, example by example, without duplicates
    p1, p2 = _read_preds(setup["out"] / "predictions" / "w2s.csv"), _read_preds(out2 / "predictions" / "w2s.csv")
    assert p1.keys() == p2.keys()
    assert max(np.abs(p1[k] - p2[k]).max() for k in p1) < 1e-6


def test_rerun_skips_finished_stages_and_overwrite_redoes_them(setup):
    main = _train_main()
    artifacts = [
        setup["out"] / p
        for p in ("heads/weak.safetensors", "heads/w2s.safetensors", "predictions/weak.csv", "results.json")
    ]
    before = [p.stat().st_mtime_ns for p in artifacts]
    assert main(["--config", str(setup["config"]), "--output_dir", str(setup["out"])]) == 0
    assert [p.stat().st_mtime_ns for p in artifacts] == before
    assert (
        main(
            [
                "--config",
                str(setup["config"]),
                "--output_dir",
                str(setup["out"]),
                "--overwrite",
                "--stages",
                "train_w2s",
                "evaluate",
            ]
        )
        == 0
    )
    after = [p.stat().st_mtime_ns for p in artifacts]
    assert after[0] == before[0] and after[2] == before[2]  # weak head and labels untouched
    assert after[1] != before[1] and after[3] != before[3]  # w2s head and results redone


def test_changed_config_in_same_folder_is_refused(setup, capsys):
    results = (setup["out"] / "results.json").read_bytes()
    rc = _train_main()(["--config", str(setup["config"]), "--output_dir", str(setup["out"]), "--weak_layer", "2"])
    assert rc == 2 and "weak_layer" in capsys.readouterr().err
    assert (setup["out"] / "results.json").read_bytes() == results


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"wek_model": "x"}, "wek_model"),
        ({"weak": {"pooling": "max"}}, "weak_pooling"),
        ({"strong": {"model": "/nonexistent/model/folder"}}, "/nonexistent/model/folder"),
        ({"targets": ["cohesion", "no_such_rubric"]}, "no_such_rubric"),
        ({"task": "ellipse"}, "task_path"),
        ({"ridge": "-1"}, "ridge"),
    ],
)
def test_bad_config_fails_before_extraction(setup, tmp_path, capsys, change, expected):
    values = json.loads(json.dumps(setup["values"]))
    for key, value in change.items():
        if isinstance(value, dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    values["cache_dir"] = str(tmp_path / "cache")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    rc = _train_main()(["--config", str(path), "--output_dir", str(tmp_path / "run")])
    assert rc == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))
    assert not (tmp_path / "run" / "features.json").exists()


def test_unknown_command_line_option_names_the_key(capsys):
    assert _train_main()(["--weak_pooling", "mean", "--strong_layr", "3"]) == 2
    err = capsys.readouterr().err
    assert "--strong_layr" in err and "strong_layer" in err


def test_adamw_solver_runs_the_same_stages(setup, tmp_path):
    out = tmp_path / "adamw"
    assert (
        _train_main()(
            [
                "--config",
                str(setup["config"]),
                "--output_dir",
                str(out),
                "--solver",
                "adamw",
                "--epochs",
                "30",
                "--n_boot",
                "0",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    exact = json.loads((setup["out"] / "results.json").read_text())
    assert results["config"]["solver"] == "adamw"
    assert json.loads((out / "heads" / "w2s.json").read_text())["solver"] == "adamw"
    for split in ("w2s_train", "val", "test"):
        assert np.isfinite([results["splits"][split][k] for k in ("weak_error", "w2s_error", "misfit")]).all()
    # the same rows were used: the gold labels (hence the sizes) agree with the exact run
    assert results["splits"]["test"]["n"] == exact["splits"]["test"]["n"]


def test_adamw_student_reports_the_decomposition_at_every_evaluation_point(setup, tmp_path):
    """Hooks see the student's decomposition every `eval_every` steps, then once more at the end."""
    from helpers import Recorder

    from w2s_hf.config import parse_config
    from w2s_hf.pipeline import W2SPipeline

    recorder = Recorder()
    config = parse_config(
        [
            "--config",
            str(setup["config"]),
            "--output_dir",
            str(tmp_path / "adamw"),
            "--solver",
            "adamw",
            "--epochs",
            "40",
            "--eval_every",
            "10",
            "--n_boot",
            "0",
        ]
    )
    W2SPipeline(config, hooks=[recorder]).run()
    during = [c for c in recorder.calls if c[3].get("stage") == "train_w2s"]
    steps = sorted({c[0] for c in during})
    assert len(steps) >= 2 and all(s % 10 == 0 or s == 40 for s in steps)
    for step in steps:  # one call per evaluation split at every point
        assert sorted(c[1] for c in during if c[0] == step) == ["test", "val", "w2s_train"]
    # the points are real decompositions of the current head: they move as it trains
    tests = [c[2] for c in during if c[1] == "test"]
    assert len({round(d.w2s_error, 12) for d in tests}) > 1
    for d in tests:
        assert d.gain == pytest.approx(d.weak_error - d.w2s_error, abs=1e-12)
        assert d.ceiling_error is None  # the ceiling is trained after the student
    # the weak error does not depend on the student: the same at every point and at the end
    final = [c[2] for c in recorder.calls if c[3].get("stage") != "train_w2s" and c[1] == "test"][-1]
    assert all(d.weak_error == pytest.approx(final.weak_error, rel=1e-12) for d in tests)
