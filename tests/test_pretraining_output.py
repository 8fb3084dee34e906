"""Where pretraining writes: one run per output folder (a lock), `--overwrite` replaces only a model folder,
checkpoints that a killed run resumes from to the uninterrupted run's weights, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("chemloader")

from test_pretraining import SCRIPT, TINY, _nci_corpus  # noqa: E402

from w2s_hf.pretraining.output import OutputFolder  # noqa: E402


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "W2S_HF_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}


def _script(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=timeout)


def _one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_second_run_into_a_folder_in_use_is_refused_and_touches_nothing(tmp_path):
    corpus = _nci_corpus(tmp_path / "corpus.txt", 100)
    out = tmp_path / "m"
    with OutputFolder(out).lock():  # a first run holds the folder
        done = _script(tmp_path, "--output_dir", str(out), "--corpus_file", str(corpus), *TINY)
    _one_line_error(done, "in use by another pretraining run")
    assert not out.exists() and not (tmp_path / ".m.partial").exists()


def test_overwrite_never_empties_a_folder_that_holds_no_model(tmp_path):
    corpus = _nci_corpus(tmp_path / "corpus.txt", 100)
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.md").write_text("my notes")
    (out / "data.csv").write_text("smiles\nCCO\n")
    done = _script(tmp_path, "--output_dir", str(out), "--corpus_file", str(corpus), *TINY, "--overwrite", "true")
    _one_line_error(done, "not a model pretrained by this script", "data.csv, notes.md")
    assert sorted(p.name for p in out.iterdir()) == ["data.csv", "notes.md"]
    # without --overwrite a model folder is refused too, and with it the model is replaced
    (out / "notes.md").unlink()
    (out / "data.csv").unlink()
    (out / "config.json").write_text("{}")
    (out / "pretraining.json").write_text("{}")
    _one_line_error(_script(tmp_path, "--output_dir", str(out), "--corpus_file", str(corpus), *TINY),
                    "already holds a pretrained model", "--overwrite")


def test_binary_corpus_files_paths_and_modes_are_one_line_errors(tmp_path):
    binary = tmp_path / "corpus.bin"
    binary.write_bytes(b"CCO\nCCN\n\x89PNG\r\n\x1a\n\x00\x00")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _one_line_error(_script(tmp_path, "--output_dir", str(tmp_path / "m"), "--corpus_file", str(binary)),
                    "not a text file of SMILES", "line 3")
    _one_line_error(_script(tmp_path, "--output_dir", str(a_file)), "is a file, not a folder")
    _one_line_error(_script(tmp_path, "--output_dir", str(a_file / "m")), "is a file, not a folder")
    _one_line_error(_script(tmp_path, "--output_dir", str(tmp_path / "m"), "--cache_dir", str(a_file)), "cache_dir")
    for mode in ("--evaluate", "--ship", "--table"):
        _one_line_error(_script(tmp_path, mode, str(a_file)), mode, "is a file")
        _one_line_error(_script(tmp_path, mode, str(tmp_path / "nowhere")), mode, "does not exist")
    _one_line_error(_script(tmp_path, "--output_dir", str(tmp_path / "m"), "--config_file", "x.yaml"), "--config_file")
    assert not (tmp_path / "m").exists()


def test_help_lists_the_modes_and_hides_the_internal_key(tmp_path):
    done = _script(tmp_path, "--help")
    assert done.returncode == 0
    for mode in ("--evaluate", "--ship", "--table", "--save_steps", "--sources"):
        assert mode in done.stdout
    assert "config_file" not in done.stdout


RESUME = ("--max_steps", "24", "--save_steps", "6", "--logging_steps", "3", "--eval_steps", "12", "--save_dtype",
          "float32", "--enumerate_prob", "0.5", "--dropout", "0.1", "--batch_size", "24")


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """Kill -9 after the second checkpoint, rerun the same command: it resumes (losing at most one
    interval) and ends with the uninterrupted run's weights bit for bit (same process count, CPU)."""
    from safetensors.numpy import load_file

    corpus = _nci_corpus(tmp_path / "corpus.txt", 300)
    base = ["--corpus_file", str(corpus), *TINY, *RESUME]
    done = _script(tmp_path, "--output_dir", str(tmp_path / "whole"), *base)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed"
    cmd = [sys.executable, str(SCRIPT), "--output_dir", str(out), *base]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(tmp_path))
    marker = tmp_path / ".killed.partial" / "trainer" / "checkpoint-12" / "w2s_checkpoint_done.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and marker.exists() and not out.exists()

    done = _script(tmp_path, "--output_dir", str(out), *base)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "pretraining.json").read_text())
    assert summary["resumed_from"] in ("checkpoint-12", "checkpoint-18") and summary["steps"] == 24
    whole, resumed = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("whole", "killed"))
    assert whole.keys() == resumed.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key], resumed[key], err_msg=key)
    assert not (tmp_path / ".killed.partial").exists()  # the checkpoints go once the model is saved


def test_checkpoints_of_another_recipe_are_refused_and_discarded_only_with_overwrite(tmp_path):
    folder = OutputFolder(tmp_path / "m")
    assert folder.resume_from({"lr": 1e-3}, overwrite=False) is None  # a fresh work folder
    for step, done in ((6, True), (12, True), (18, False)):  # 18: killed while it was written
        (folder.checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        if done:
            (folder.checkpoints / f"checkpoint-{step}" / "w2s_checkpoint_done.json").write_text("{}")
    assert folder.resume_from({"lr": 1e-3}, overwrite=False) == str(folder.checkpoints / "checkpoint-12")
    with pytest.raises(FileExistsError, match="checkpoints of another recipe \\(changed: lr\\)"):
        folder.resume_from({"lr": 2e-3}, overwrite=False)
    assert folder.complete_checkpoints()  # nothing was deleted
    assert folder.resume_from({"lr": 2e-3}, overwrite=True) is None
    assert not folder.checkpoints.exists()
    assert json.loads(folder.identity_file.read_text()) == {"lr": 2e-3}


def test_init_from_loads_the_start_encoder_and_tokenizer_and_refuses_another_architecture(tmp_path):
    import torch

    from w2s_hf.pretraining.corpus import read_source
    from w2s_hf.pretraining.model import BertForMaskedLMAndMTR, make_config
    from w2s_hf.pretraining.tokenizer import build_smiles_tokenizer
    from w2s_hf.pretraining.train import PretrainConfig
    from w2s_hf.pretraining.warm_start import load_start_encoder, start_tokenizer

    tok = build_smiles_tokenizer(read_source("rdkit_nci")[:200])
    dims = dict(hidden_size=32, num_layers=2, num_heads=2, max_position=256)
    torch.manual_seed(0)
    start = BertForMaskedLMAndMTR(make_config(len(tok), **dims, num_mtr_targets=3, mtr_weight=1.0))
    folder = tmp_path / "start"
    start.bert.save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = PretrainConfig(output_dir=str(tmp_path / "m"), init_from=str(folder), **dims).validate()
    loaded_tok = start_tokenizer(cfg)
    assert loaded_tok.get_vocab() == tok.get_vocab()
    torch.manual_seed(1)
    model = BertForMaskedLMAndMTR(make_config(len(loaded_tok), **dims, num_mtr_targets=5, mtr_weight=1.0))
    record = load_start_encoder(model, cfg)
    assert record["name"] == str(folder)
    for key, value in start.bert.state_dict().items():
        assert torch.equal(model.bert.state_dict()[key], value), key
    with pytest.raises(ValueError, match=r"hidden_size=64 \(start model: 32\)"):
        PretrainConfig(output_dir=str(tmp_path / "m"), init_from=str(folder), **{**dims, "hidden_size": 64}).validate()
