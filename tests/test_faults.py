"""Faults that served a wrong number with exit 0 (issue 25): stale upstream stages, a model rewritten
at the same path, a corrupt results.json. Each rerun must give what a fresh run gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def _config(tmp_path: Path, model: str, data: Path, out: Path, *, layer: int = 1, stages=None, overwrite=False):
    from w2s_hf.config import HeadArguments, ModelArguments, RunArguments, TaskArguments, W2SConfig

    return W2SConfig(
        model=ModelArguments(weak_model=model, weak_layer=layer, weak_max_length=32, strong_model=model,
                             strong_max_length=32),
        task=TaskArguments(task=str(data), split="random", targets=["cohesion"]), head=HeadArguments(),
        run=RunArguments(output_dir=str(out), cache_dir=str(tmp_path / "cache"), report_to="none", plot=False,
                         n_boot=10, stages=stages, overwrite=overwrite),
    ).validate()


def _run(config) -> dict:
    from accelerate import Accelerator

    from w2s_hf.pipeline import W2SPipeline

    return W2SPipeline(config, accelerator=Accelerator(cpu=True)).run()


@pytest.fixture()
def essays(tmp_path):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    return write_synthetic_ellipse(tmp_path / "essays.csv", n=60, seed=0)


def _edit_gold(path: Path) -> None:
    """Change every cohesion label (the path stays the same)."""
    import pandas as pd

    frame = pd.read_csv(path)
    frame["cohesion"] = 6.0 - frame["cohesion"]
    frame.to_csv(path, index=False)


# ---- 1. stale upstream stages under --stages ... --overwrite -----------------------------------------
@pytest.mark.parametrize("stages", [["evaluate"], ["train_w2s", "evaluate"]])
def test_a_config_change_redoes_the_stale_upstream_stages(tiny_bert, tmp_path, essays, stages, caplog):
    _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run"))
    with caplog.at_level("WARNING", logger="w2s_hf.pipeline"):
        again = _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run", layer=2, stages=stages, overwrite=True))
    fresh = _run(_config(tmp_path, tiny_bert, essays, tmp_path / "fresh", layer=2))
    assert again["splits"] == fresh["splits"]  # the new layer's numbers, not the old layer's
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "train_weak" in warned and "label" in warned and "another config" in warned


def test_a_data_edit_redoes_the_stale_upstream_stages(tiny_bert, tmp_path, essays):
    _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run"))
    _edit_gold(essays)
    again = _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run", stages=["evaluate"], overwrite=True))
    fresh = _run(_config(tmp_path, tiny_bert, essays, tmp_path / "fresh"))
    assert again["splits"] == fresh["splits"]
    assert again["stages"]["train_weak"]["reused"] is False


def test_an_interrupted_config_change_is_finished_before_a_later_stage_runs(tiny_bert, tmp_path, essays, monkeypatch):
    """run_config.json names the new config, but a kill left the old config's heads: no --overwrite needed."""
    from w2s_hf.pipeline import W2SPipeline

    _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run"))
    monkeypatch.setattr(W2SPipeline, "extract", lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run", layer=2, overwrite=True))
    monkeypatch.undo()
    again = _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run", layer=2, stages=["evaluate"]))
    fresh = _run(_config(tmp_path, tiny_bert, essays, tmp_path / "fresh", layer=2))
    assert again["splits"] == fresh["splits"]


# ---- 2. a model rewritten at the same path -------------------------------------------------------------
def test_weights_rewritten_in_place_are_a_changed_run(tiny_bert, tmp_path, essays):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from w2s_hf.config import ConfigError

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    first = _run(_config(tmp_path, str(model), essays, tmp_path / "run"))
    weights = next(model.glob("*.safetensors"))
    state = load_file(str(weights))
    generator = torch.Generator().manual_seed(1)
    state = {k: v + 0.5 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in state.items()}
    save_file(state, str(weights), metadata={"format": "pt"})  # same path, same size, new numbers
    with pytest.raises(ConfigError, match="weak_model_content"):
        _run(_config(tmp_path, str(model), essays, tmp_path / "run"))  # not served as if unchanged
    again = _run(_config(tmp_path, str(model), essays, tmp_path / "run", overwrite=True))
    fresh = _run(_config(tmp_path, str(model), essays, tmp_path / "fresh"))
    assert again["splits"] == fresh["splits"] and again["splits"] != first["splits"]


def test_the_content_hash_is_memoised_on_disk_and_misses_on_a_rewrite(tmp_path, monkeypatch):
    import w2s_hf.features.cache as cache
    import w2s_hf.features.digests as digests

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a" * 1000)
    monkeypatch.setenv("W2S_HF_CACHE", str(tmp_path / "memo"))
    read = []
    real = digests._sha256
    monkeypatch.setattr(digests, "_sha256", lambda path: read.append(Path(path).name) or real(path))

    def fresh_process_hash() -> str:
        cache._hash_files.cache_clear()  # a new process: only the on-disk memo is left
        return cache.hash_model_files(folder)

    first = fresh_process_hash()
    assert fresh_process_hash() == first and len(read) == 4  # files just written are never memoised
    monkeypatch.setattr(digests, "_SETTLED_SECONDS", 0.0)
    read.clear()
    assert fresh_process_hash() == first and len(read) == 2
    assert fresh_process_hash() == first and len(read) == 2  # memo hits: no byte read
    (folder / "model.safetensors").write_bytes(b"b" * 1000)  # rewritten in place, same size
    assert fresh_process_hash() != first and read[2:] == ["model.safetensors"]


# ---- 7. a corrupt results.json --------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["[1, 2]", '{"splits": {"test": {"weak_err', "{}"])
def test_a_corrupt_results_file_is_redone_on_rerun(tiny_bert, tmp_path, essays, content):
    out = tmp_path / "run"
    first = _run(_config(tmp_path, tiny_bert, essays, out))
    (out / "results.json").write_text(content)
    again = _run(_config(tmp_path, tiny_bert, essays, out))
    assert again["splits"] == first["splits"]
    assert json.loads((out / "results.json").read_text())["splits"] == first["splits"]
    assert again["stages"]["evaluate"]["reused"] is False and again["stages"]["train_w2s"]["reused"] is True


# ---- 11. processes and reuse are recorded ---------------------------------------------------------------
def test_results_say_how_many_processes_ran_and_which_stages_were_reused(tiny_bert, tmp_path, essays, caplog):
    out = tmp_path / "run"
    first = _run(_config(tmp_path, tiny_bert, essays, out))
    assert first["processes"] == 1 and not any(s["reused"] for s in first["stages"].values())
    (out / "results.json").unlink()
    with caplog.at_level("INFO", logger="w2s_hf.pipeline"):
        again = _run(_config(tmp_path, tiny_bert, essays, out))
    assert again["stages"]["train_weak"]["reused"] is True and again["stages"]["evaluate"]["reused"] is False
    log = " ".join(r.getMessage() for r in caplog.records)
    assert "1 process" in log and "train_weak: reused" in log
    np.testing.assert_equal(again["splits"], first["splits"])


# ---- 6. a full disk --------------------------------------------------------------------------------------
TEXTS = [f"sentence {i} " + "word " * (i % 7) for i in range(40)]


def _no_space(*args):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_at_the_final_cache_write_is_one_line_and_a_rerun_recovers(tiny_bert, tmp_path, monkeypatch):
    import w2s_hf.atomic as atomic
    from w2s_hf.errors import DiskFullError
    from w2s_hf.features import FrozenEncoder
    from w2s_hf.features.cache import _npy_size

    enc = FrozenEncoder(tiny_bert, shard_size=8)
    entry = tmp_path / enc.fingerprint(TEXTS)
    # the blocks of the mapped file cannot be had: today a store through the map dies by SIGBUS
    monkeypatch.setattr(atomic.os, "posix_fallocate", _no_space)
    with pytest.raises(DiskFullError) as err:
        enc.encode(TEXTS, tmp_path, show_progress=False)
    message = str(err.value)
    assert "\n" not in message and str(entry) in message and f"{_npy_size((len(TEXTS), 32)):,} bytes" in message
    assert not list(entry.glob(".*tmp*")) and not (entry / "features.npy").exists()
    assert list((entry / "shards").glob("*.npy"))  # the finished shards are kept for the rerun
    monkeypatch.undo()
    again = enc.encode(TEXTS, tmp_path, show_progress=False)
    fresh = FrozenEncoder(tiny_bert, shard_size=8).encode(TEXTS, tmp_path / "fresh", show_progress=False)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(fresh))


def test_a_full_disk_at_a_shard_write_leaves_no_temporary_file(tiny_bert, tmp_path, monkeypatch):
    import shutil

    import w2s_hf.atomic as atomic
    from w2s_hf.errors import DiskFullError
    from w2s_hf.features import FrozenEncoder

    enc = FrozenEncoder(tiny_bert, shard_size=8)
    real = np.save
    monkeypatch.setattr(np, "save", lambda fh, array: (real(fh, array[:1]), _no_space()))  # dies mid-write
    with pytest.raises(DiskFullError, match=r"no space left in .*shards: writing .* needs [\d,]+ bytes"):
        enc.encode(TEXTS, tmp_path, show_progress=False)
    entry = tmp_path / enc.fingerprint(TEXTS)
    assert not list(entry.rglob(".*tmp*"))
    monkeypatch.undo()
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: usage._replace(free=100))
    with pytest.raises(DiskFullError, match="100 are free"):  # refused before writing, not half way
        enc.encode(TEXTS, tmp_path, show_progress=False)
    assert not list(entry.rglob(".*tmp*"))


def test_the_script_reports_a_full_disk_and_a_folder_in_use_in_one_line(tiny_bert, tmp_path, essays, capsys,
                                                                        monkeypatch):
    import yaml
    from filelock import FileLock
    from helpers import load_script

    import w2s_hf.atomic as atomic

    main = load_script("train_w2s").main
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "task": str(essays), "split": "random", "targets": ["cohesion"], "report_to": "none", "plot": False,
        "weak": {"model": tiny_bert, "layer": 1, "max_length": 32}, "strong": {"model": tiny_bert, "max_length": 32},
        "cache_dir": str(tmp_path / "cache"), "n_boot": 10, "output_dir": str(tmp_path / "run")}))
    (tmp_path / "run").mkdir()
    with FileLock(str(tmp_path / "run" / ".run.lock")):
        assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line] == [
        f"error: {tmp_path / 'run'} is in use by another run; wait for it or use another --output_dir."]
    monkeypatch.setattr(atomic.os, "posix_fallocate", _no_space)
    monkeypatch.setattr("transformers.utils.logging._tqdm_active", True)  # a user without HF_HUB_DISABLE_...
    assert main(["--config", str(config)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: no space left in "), err
    assert "\r" not in err  # no progress-bar frames when stderr is not a terminal


# ---- 9. progress in a log --------------------------------------------------------------------------------
def test_progress_off_a_terminal_is_plain_lines_without_carriage_returns(caplog, monkeypatch):
    import w2s_hf.progress as progress

    monkeypatch.setattr(progress, "_is_terminal", lambda: False)
    with caplog.at_level("INFO", logger="w2s_hf.progress"):
        bar = progress.progress(100, "encode", interval=0.0)
        for _ in range(4):
            bar.update(25)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("encode: 25/100 rows (25%)") and lines[-1].startswith("encode: 100/100 rows (100%)")
    assert len(lines) == 4 and not any("\r" in line for line in lines)


# ---- 9. file permissions --------------------------------------------------------------------------------
def test_head_files_and_library_written_folders_follow_the_umask(tmp_path):
    import os

    from safetensors.numpy import save_file

    from w2s_hf.atomic import follow_umask
    from w2s_hf.heads.linear import LinearHead

    old = os.umask(0o022)
    try:
        LinearHead(np.ones((3, 1)), np.zeros(1)).save(tmp_path / "head.safetensors")
        folder = tmp_path / "adapter"
        folder.mkdir(mode=0o700)
        save_file({"a": np.zeros(2)}, str(folder / "adapter_model.safetensors"))  # 0600, as peft leaves it
        follow_umask(folder)
    finally:
        os.umask(old)
    assert (tmp_path / "head.safetensors").stat().st_mode & 0o777 == 0o644
    assert (folder / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755


# ---- 8. two launches at once ------------------------------------------------------------------------------
_JOB = """
import time, torch
from accelerate import Accelerator
acc = Accelerator(cpu=True)
time.sleep(4)  # both launches hold their rendezvous at once
total = acc.reduce(torch.tensor([acc.process_index + 1.0]), "sum")
if acc.is_main_process:
    print("SUM", float(total), acc.num_processes)
acc.end_training()  # tear the process group down (gloo aborts at exit otherwise, now and then)
"""
CONFIGS = sorted((Path(__file__).resolve().parents[1] / "accelerate_configs").glob("*.yaml"))


@pytest.mark.slow
def test_two_launches_of_the_cpu_config_at_once_both_run(tmp_path):
    import os
    import subprocess
    import sys

    job = tmp_path / "job.py"
    job.write_text(_JOB)
    config = next(p for p in CONFIGS if p.stem == "cpu_2proc")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launches = [subprocess.Popen([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                                  str(job)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in launches]
    for p, (out, err) in zip(launches, outs):
        assert p.returncode == 0 and "SUM 3.0 2" in out, err[-4000:]


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem != "multi_node"], ids=lambda p: p.stem)
def test_two_launches_of_a_shipped_config_get_different_free_ports(path, monkeypatch):
    """accelerate's own launch preparation, twice: a fixed or default (29500) port would collide."""
    import copy

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import launch as launch_utils

    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", str(path), "x.py"]))
    if not (args.multi_gpu or args.use_fsdp or args.use_deepspeed):
        return  # one process (single_gpu): no rendezvous, no port
    ports = []
    for _ in range(2):
        launch = copy.deepcopy(args)
        if launch.use_deepspeed:
            launch.deepspeed_fields_from_accelerate_config = ""
            launch_utils.prepare_deepspeed_cmd_env(launch)
        else:
            launch_utils.prepare_multi_gpu_env(launch)
        ports.append(int(launch.main_process_port))
    assert ports[0] != ports[1] and 29500 not in ports


@pytest.mark.slow
def test_two_processes_redo_a_stale_upstream_as_one_does(tiny_bert, tmp_path, essays):
    import os
    import subprocess
    import sys

    import yaml

    _run(_config(tmp_path, tiny_bert, essays, tmp_path / "run"))  # layer 1, one process
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "task": str(essays), "split": "random", "targets": ["cohesion"], "report_to": "none", "plot": False,
        "weak": {"model": tiny_bert, "layer": 2, "max_length": 32}, "strong": {"model": tiny_bert, "max_length": 32},
        "cache_dir": str(tmp_path / "cache"), "n_boot": 10}))
    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(repo / "accelerate_configs" / "cpu_2proc.yaml"), "-m", "w2s_hf", "run",
           "--config", str(config), "--output_dir", str(tmp_path / "run"), "--overwrite", "--stages", "evaluate"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "run" / "results.json").read_text())
    fresh = _run(_config(tmp_path, tiny_bert, essays, tmp_path / "fresh", layer=2))
    assert two["processes"] == 2 and two["stages"]["train_weak"] == {"reused": False, "processes": 2}
    for split, block in fresh["splits"].items():
        for key, value in block.items():
            if isinstance(value, float):
                assert two["splits"][split][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (split, key)
