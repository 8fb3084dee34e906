"""Performance knobs that change no number: torch's thread count on a busy machine, the CPU token budget chosen
from the texts' lengths, an encoder that reads its sizes without importing transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from w2s_hf.features.encoder import cpu_token_budget, plain_config_sizes
from w2s_hf.threads import ENV, free_cores, torch_thread_count, torch_threads

ROOT = Path(__file__).resolve().parents[1]


def test_free_cores_takes_other_processes_load_off_the_available_cores():
    assert free_cores(cores=2, load=1.0) == 2  # only this process runs
    assert free_cores(cores=2, load=1.4) == 2
    assert free_cores(cores=2, load=1.6) == 1  # more than half a core taken elsewhere: one thread fewer
    assert free_cores(cores=2, load=6.0) == 1  # never below one
    assert free_cores(cores=8, load=3.0) == 6
    assert free_cores(cores=4, load=0.0) == 4  # never above the cores


def test_thread_setting_auto_fixed_and_torch_own(monkeypatch):
    monkeypatch.setattr("w2s_hf.threads.free_cores", lambda: 1)
    assert torch_thread_count(4, "auto") == 1
    assert torch_thread_count(4, "") == 1
    monkeypatch.setattr("w2s_hf.threads.free_cores", lambda: 8)
    assert torch_thread_count(2, "auto") == 2  # never more than torch's own (OMP_NUM_THREADS, accelerate's split)
    assert torch_thread_count(2, "0") == 2
    assert torch_thread_count(2, "3") == 3
    for bad in ("many", "-1"):
        with pytest.raises(ValueError, match=ENV):
            torch_thread_count(2, bad)


def test_torch_threads_applies_the_count_and_restores_torch_own(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(ENV, "1")
    with torch_threads() as used:
        assert used == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv(ENV, str(before + 1))
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads():
            assert torch.get_num_threads() == before + 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before  # restored on an exception too


def test_cpu_token_budget_follows_the_lengths_within_its_bounds():
    assert cpu_token_budget(np.full(100, 40), 384) == 2048  # short SMILES: already ~50 rows a batch
    assert cpu_token_budget(np.full(100, 300), 384) == 16 * 300  # essays: 16 rows, not 6
    assert cpu_token_budget(np.full(100, 512), 384) == 8192  # capped
    assert cpu_token_budget(np.full(100, 512), 1536) == 4096  # a wider model: proportionally fewer tokens
    assert cpu_token_budget(np.full(100, 512), 8192) == 2048  # never below the old default
    # the 75th percentile: a few long outliers do not set the batch size of the rest
    assert cpu_token_budget(np.array([200] * 80 + [512] * 20), 384) == 16 * 200


def test_plain_config_sizes_read_only_where_config_json_states_them(tiny_bert, tiny_gpt2, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_bert)
    assert plain_config_sizes(tiny_bert) == (config.num_hidden_layers, config.hidden_size)
    assert plain_config_sizes(tiny_gpt2) is None  # n_layer / n_embd: transformers' attribute map decides
    assert plain_config_sizes(tmp_path) is None  # no config.json
    (tmp_path / "config.json").write_text("{not json")
    assert plain_config_sizes(tmp_path) is None


def test_an_encoder_whose_features_are_cached_never_imports_transformers(tiny_bert, tmp_path):
    """Building the encoder and reading its cached features (a warm rerun) imports no transformers."""
    from w2s_hf.features.encoder import FrozenEncoder

    texts = ["a short text", "another, somewhat longer text to encode"]
    expected = FrozenEncoder(tiny_bert).encode(texts, cache_dir=tmp_path, show_progress=False)
    code = ("import sys, json; from w2s_hf.features.encoder import FrozenEncoder\n"
            f"enc = FrozenEncoder({tiny_bert!r})\n"
            f"X = enc.encode({texts!r}, cache_dir={str(tmp_path)!r}, show_progress=False)\n"
            "print(json.dumps({'transformers': 'transformers' in sys.modules, 'X': X.tolist(),"
            " 'sizes': [enc.num_layers, enc.hidden_size]}))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["transformers"] is False
    assert np.array_equal(np.asarray(got["X"], np.float32), expected)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_bert)
    assert got["sizes"] == [config.num_hidden_layers, config.hidden_size]
