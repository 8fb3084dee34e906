"""Reliability: concurrent runs on one cache entry, resume granularity, corrupt records, bad YAML, leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2s_hf.features import FrozenEncoder

REPO = Path(__file__).resolve().parents[1]
TEXTS = [f"sentence number {i} " + "word " * (i % 13) for i in range(60)]

_WORKER = r"""
import json, sys, numpy as np
from w2s_hf.features import FrozenEncoder
import w2s_hf.features.encoder as E
calls = []
orig = E.FrozenEncoder._make_batch
def counted(self, ids, type_ids, rows, padding_side=None):
    calls.append(len(rows))
    return orig(self, ids, type_ids, rows, padding_side)
E.FrozenEncoder._make_batch = counted
texts = json.loads(sys.argv[3])
x = FrozenEncoder(sys.argv[1], shard_size=4, token_budget=64).encode(texts, sys.argv[2], show_progress=False)
np.save(sys.argv[4], np.asarray(x))
print("ROWS", sum(calls))
"""


@pytest.mark.slow
def test_two_runs_extracting_one_entry_both_succeed_and_only_one_does_the_work(tiny_bert, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, tiny_bert, str(cache), json.dumps(TEXTS),
                               str(tmp_path / f"out{i}.npy")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    rows = sorted(int(out.split("ROWS")[1]) for out, _ in outs)
    assert rows[0] == 0 and rows[1] >= len(TEXTS)  # the waiting run only loaded the finished entry
    np.testing.assert_array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))
    entry = cache / FrozenEncoder(tiny_bert, shard_size=4, token_budget=64).fingerprint(TEXTS)
    assert (entry / "manifest.json").is_file() and not (entry / "shards").exists()


def test_shards_are_sized_by_work_so_a_kill_loses_seconds(tiny_bert, tmp_path, monkeypatch):
    import w2s_hf.features.encoder as encoder

    seen = {}
    original = encoder.cached_extract

    def spy(*args, **kwargs):
        seen["n_shards"] = kwargs["n_shards"]
        return original(*args, **kwargs)

    monkeypatch.setattr(encoder, "cached_extract", spy)
    monkeypatch.setattr(encoder, "DEFAULT_SHARD_TOKENS", {False: 200, True: 200})
    enc = FrozenEncoder(tiny_bert)  # 60 rows, far below shard_size=4096 rows
    enc.encode(TEXTS, tmp_path, show_progress=False)
    assert seen["n_shards"] > 3  # by tokens, not one shard for the whole (small) input


@pytest.mark.parametrize("record", ["[1, 2, 3]", '"text"', "SHAPE5"])
def test_a_manifest_that_is_valid_json_but_not_a_record_is_a_corrupt_entry_and_rebuilt(tiny_bert, tmp_path, record):
    enc = FrozenEncoder(tiny_bert)
    first = enc.encode(TEXTS, tmp_path, show_progress=False)
    manifest = tmp_path / enc.fingerprint(TEXTS) / "manifest.json"
    if record == "SHAPE5":
        data = json.loads(manifest.read_text())
        data["shape"] = 5
        manifest.write_text(json.dumps(data))
    else:
        manifest.write_text(record)
    again = enc.encode(TEXTS, tmp_path, show_progress=False)  # no AttributeError / TypeError
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    assert isinstance(json.loads(manifest.read_text()), dict)


@pytest.mark.parametrize(("text", "expected"), [
    ("weak_layer: null\n", "weak_layer: null is not allowed"),
    ("weak_layer: abc\n", "weak_layer: 'abc' is not a valid int"),
    ("task: [esol\n", "is not valid YAML at line"),
])  # fmt: skip
def test_bad_yaml_values_give_one_line_naming_the_file_key_and_value(tmp_path, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = subprocess.run([sys.executable, "-m", "w2s_hf", "run", "--config", str(config),
                          "--output_dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and str(config) in lines[0], out.stderr
    assert not (tmp_path / "run").exists()


def test_a_dead_writers_temporary_file_is_removed_and_a_live_ones_kept(tiny_bert, tmp_path):
    enc = FrozenEncoder(tiny_bert, shard_size=8)
    entry = tmp_path / enc.fingerprint(TEXTS)
    entry.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = entry / f".features.npy.{int(dead.stdout)}.abc123.tmp"
    live = entry / f".features.npy.{os.getppid()}.def456.tmp"
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    enc.encode(TEXTS, tmp_path, show_progress=False)
    assert not stale.exists() and live.exists()


def test_cache_files_honour_the_umask(tiny_bert, tmp_path):
    old = os.umask(0o022)
    try:
        enc = FrozenEncoder(tiny_bert)
        enc.encode(TEXTS, tmp_path, show_progress=False)
    finally:
        os.umask(old)
    entry = tmp_path / enc.fingerprint(TEXTS)
    for name in ("features.npy", "manifest.json"):
        assert (entry / name).stat().st_mode & 0o777 == 0o644


# ---- the run folder's identity -------------------------------------------------------------------
def _run_config(tmp_path: Path, tiny_bert: str, data: Path, out: Path, **extra):
    from w2s_hf.config import HeadArguments, ModelArguments, RunArguments, TaskArguments, W2SConfig

    return W2SConfig(
        model=ModelArguments(weak_model=tiny_bert, weak_layer=1, weak_max_length=32, strong_model=tiny_bert,
                             strong_max_length=32),
        task=TaskArguments(task=str(data), split="random", targets=["cohesion"]), head=HeadArguments(**extra),
        run=RunArguments(output_dir=str(out), cache_dir=str(tmp_path / "cache"), report_to="none", plot=False,
                         n_boot=20),
    ).validate()


@pytest.fixture()
def essays(tmp_path):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    return write_synthetic_ellipse(tmp_path / "essays.csv", n=80, seed=0)


def _run(config):
    from accelerate import Accelerator

    from w2s_hf.pipeline import W2SPipeline

    return W2SPipeline(config, accelerator=Accelerator(cpu=True)).run()


def test_a_folder_in_use_by_another_run_is_refused(tiny_bert, tmp_path, essays):
    from filelock import FileLock

    from w2s_hf.config import ConfigError

    out = tmp_path / "run"
    out.mkdir()
    with FileLock(str(out / ".run.lock")):  # another run holds the folder
        with pytest.raises(ConfigError, match="in use by another run"):
            _run(_run_config(tmp_path, tiny_bert, essays, out))
    assert not (out / "results.json").exists()


def test_an_edited_data_file_is_a_changed_run_with_old_and_new_values(tiny_bert, tmp_path, essays):
    from w2s_hf.config import ConfigError

    out = tmp_path / "run"
    _run(_run_config(tmp_path, tiny_bert, essays, out))
    text = essays.read_text().splitlines()
    header = text[0].split(",")
    col = header.index("cohesion")
    row = text[1].split(",")
    row[col] = "4.5" if row[col] != "4.5" else "3.5"  # one gold label changes, the path does not
    essays.write_text("\n".join([text[0], ",".join(row), *text[2:]]) + "\n")
    with pytest.raises(ConfigError, match=r"task_data: '[0-9a-f]{16}' -> '[0-9a-f]{16}'"):
        _run(_run_config(tmp_path, tiny_bert, essays, out))
    with pytest.raises(ConfigError, match=r"ridge: 'auto' -> '1.0'"):
        _run(_run_config(tmp_path, tiny_bert, essays, out, ridge="1.0"))


def test_a_failed_overwrite_never_leaves_old_results_to_be_served_as_new(tiny_bert, tmp_path, essays, monkeypatch):
    import w2s_hf.hooks.evaluation as evaluation

    out = tmp_path / "run"
    old = _run(_run_config(tmp_path, tiny_bert, essays, out))
    new_config = _run_config(tmp_path, tiny_bert, essays, out, ridge="10.0")
    new_config.run.overwrite = True

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("SIGTERM during evaluate")

    monkeypatch.setattr(evaluation, "evaluate_point", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(new_config)
    monkeypatch.undo()
    new_config.run.overwrite = False
    again = _run(new_config)  # the plain rerun of the new config
    assert again["config"]["ridge"] == "10.0" and old["config"]["ridge"] == "auto"
    assert again["heads"]["w2s"]["ridge"] == 10.0


def test_an_evaluate_only_rerun_keeps_the_timings_of_the_earlier_stages(tiny_bert, tmp_path, essays):
    out = tmp_path / "run"
    first = _run(_run_config(tmp_path, tiny_bert, essays, out))
    config = _run_config(tmp_path, tiny_bert, essays, out)
    config.run.stages, config.run.overwrite = ["evaluate"], True
    again = _run(config)
    assert {"extract", "train_weak", "label", "train_w2s", "train_ceiling"} <= set(again["timings"])
    assert again["timings"]["train_weak"] == first["timings"]["train_weak"]


def test_weak_equal_to_strong_and_a_constant_target_warn(tiny_bert, tmp_path, essays):
    import pandas as pd

    from w2s_hf.config import HeadArguments, ModelArguments, RunArguments, TaskArguments, W2SConfig
    from w2s_hf.pipeline import W2SPipeline

    frame = pd.read_csv(essays)
    frame["cohesion"] = 3.0
    frame.to_csv(essays, index=False)
    same = ModelArguments(weak_model=tiny_bert, strong_model=tiny_bert, weak_max_length=32, strong_max_length=32)
    config = W2SConfig(model=same, task=TaskArguments(task=str(essays), split="random", targets=["cohesion"]),
                       head=HeadArguments(), run=RunArguments(output_dir=str(tmp_path / "r"), report_to="none",
                                                              cache_dir=str(tmp_path / "c"))).validate()
    with pytest.warns(UserWarning) as caught:
        W2SPipeline(config)
    messages = " ".join(str(w.message) for w in caught)
    assert "same representation" in messages and "constant" in messages


def test_the_empty_split_message_does_not_ask_for_the_weak_fraction_it_already_has():
    from w2s_hf.data.checks import TaskDataError, require_nonempty_splits

    with pytest.raises(TaskDataError) as err:
        require_nonempty_splits({"weak_train": 1, "w2s_train": 0, "val": 0, "test": 0}, 1, "random", 0.5, "f.csv")
    assert "towards 0.5" not in str(err.value) and "add rows" in str(err.value)
