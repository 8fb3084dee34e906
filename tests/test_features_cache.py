"""The feature cache: hits run no forward pass, every input of the numbers keys it, crashes resume,
corrupt files are rebuilt, and a 2-process `accelerate launch` gives the 1-process array."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import free_port
from tiny_models import build_tiny_bert, sentences
from transformers import PreTrainedModel

from w2s_hf.features import FeatureCache, FrozenEncoder, cached_extract, make_fingerprint
from w2s_hf.features.layers import LayerReader

TEXTS = sentences(40, seed=3)
REPO = Path(__file__).resolve().parents[1]


@contextmanager
def count_forwards():
    """Every forward call of any HuggingFace model (pre-hooks also see calls stopped early)."""
    calls = []

    def hook(module, args):
        if isinstance(module, PreTrainedModel):
            calls.append(type(module).__name__)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture
def rows_encoded(monkeypatch):
    """Rows that go through the model in extraction batches (the model-load probe is not counted)."""
    rows = []
    original = LayerReader.__call__

    def counting(self, inputs, layers):
        rows.append(int(inputs["input_ids"].shape[0]))
        return original(self, inputs, layers)

    monkeypatch.setattr(LayerReader, "__call__", counting)
    return rows


def test_hit_runs_zero_forward_passes_and_loads_no_model(tiny_bert, tmp_path):
    reference = FrozenEncoder(tiny_bert, layer=2).encode(TEXTS, show_progress=False)
    first = FrozenEncoder(tiny_bert, layer=2).encode(TEXTS, tmp_path, show_progress=False)
    np.testing.assert_allclose(first, reference, atol=1e-6)
    fresh = FrozenEncoder(tiny_bert, layer=-3)  # same layer, written another way: same key
    with count_forwards() as calls:
        hit = fresh.encode(TEXTS, tmp_path, show_progress=False)
    assert calls == [] and fresh._model is None
    assert isinstance(hit, np.memmap) and hit.dtype == np.float32
    np.testing.assert_array_equal(hit, first)
    entry = tmp_path / fresh.fingerprint(TEXTS)
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["shape"] == [len(TEXTS), 32] and manifest["meta"]["layer"] == 2
    assert not (entry / "shards").exists()  # consolidated; partial shards are gone


def test_any_change_of_what_makes_the_numbers_is_a_miss(tiny_bert, tmp_path):
    base = dict(layer=2, pooling="mean", max_length=64)
    FrozenEncoder(tiny_bert, **base).encode(TEXTS, tmp_path, show_progress=False)
    keys = {FrozenEncoder(tiny_bert, **base).fingerprint(TEXTS)}
    for change in ({"layer": 3}, {"pooling": "cls"}, {"max_length": 16}, {"dtype": "bfloat16"}):
        enc = FrozenEncoder(tiny_bert, **{**base, **change})
        with count_forwards() as calls:
            enc.encode(TEXTS, tmp_path, show_progress=False)
        assert calls, f"{change} was served from the cache"
        keys.add(enc.fingerprint(TEXTS))
    keys.add(FrozenEncoder(tiny_bert, **base).fingerprint(TEXTS[:-1] + [TEXTS[-1] + "!"]))
    assert len(keys) == 6


def test_new_weights_miss_even_with_same_size_and_mtime(tiny_bert, tmp_path):
    model_dir = Path(shutil.copytree(tiny_bert, tmp_path / "model"))
    weights = model_dir / "model.safetensors"
    old = FrozenEncoder(str(model_dir)).encode(TEXTS, tmp_path / "cache", show_progress=False)
    stat = weights.stat()
    build_tiny_bert(tmp_path / "retrained", seed=1)  # same architecture, other weights
    shutil.copyfile(tmp_path / "retrained" / "model.safetensors", weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    with count_forwards() as calls:
        new = FrozenEncoder(str(model_dir)).encode(TEXTS, tmp_path / "cache", show_progress=False)
    assert calls and not np.allclose(new, old)


def test_resume_after_a_crash_between_shards(tiny_bert, tmp_path, monkeypatch, rows_encoded):
    reference = FrozenEncoder(tiny_bert, layer=1).encode(TEXTS, show_progress=False)
    enc = FrozenEncoder(tiny_bert, layer=1, shard_size=8)  # 40 rows -> 5 shards
    saved = []
    original = FeatureCache.save_shard

    def crash_after_two(self, index, n_shards, rows, array):
        if len(saved) == 2:
            raise KeyboardInterrupt("simulated crash")
        saved.append(len(rows))
        original(self, index, n_shards, rows, array)

    monkeypatch.setattr(FeatureCache, "save_shard", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        enc.encode(TEXTS, tmp_path, show_progress=False)
    entry = tmp_path / enc.fingerprint(TEXTS)
    assert len(list((entry / "shards").glob("*.json"))) == 2 and not (entry / "manifest.json").exists()
    assert not list(entry.rglob("*.tmp"))  # no half-written file left behind

    monkeypatch.setattr(FeatureCache, "save_shard", original)
    rows_encoded.clear()
    resumed = FrozenEncoder(tiny_bert, layer=1, shard_size=8).encode(TEXTS, tmp_path, show_progress=False)
    assert sum(rows_encoded) == len(TEXTS) - sum(saved)  # finished shards were not recomputed
    np.testing.assert_allclose(resumed, reference, atol=1e-5)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "truncate_shard"])
def test_damaged_cache_file_is_detected_and_rebuilt(tiny_bert, tmp_path, monkeypatch, rows_encoded, damage):
    enc = FrozenEncoder(tiny_bert, shard_size=8)
    good = np.array(enc.encode(TEXTS, tmp_path, show_progress=False))
    entry = tmp_path / enc.fingerprint(TEXTS)
    if damage == "truncate_shard":
        shutil.rmtree(entry)
        original = FeatureCache.save_shard

        def crash_after_one(self, *args):
            if (entry / "shards").exists():
                raise KeyboardInterrupt("simulated crash")
            original(self, *args)

        monkeypatch.setattr(FeatureCache, "save_shard", crash_after_one)
        with pytest.raises(KeyboardInterrupt):
            FrozenEncoder(tiny_bert, shard_size=8).encode(TEXTS, tmp_path, show_progress=False)
        monkeypatch.setattr(FeatureCache, "save_shard", original)
        [shard] = (entry / "shards").glob("*.npy")
        shard.write_bytes(shard.read_bytes()[:-64])
    else:
        target = entry / "features.npy"
        data = bytearray(target.read_bytes())
        if damage == "truncate":
            del data[len(data) // 2 :]
        else:
            data[-7] ^= 0xFF  # same size, one byte of one float changed
        target.write_bytes(bytes(data))
        assert FeatureCache(tmp_path, entry.name).load() is None
    rows_encoded.clear()
    with count_forwards() as calls:
        rebuilt = FrozenEncoder(tiny_bert, shard_size=8).encode(TEXTS, tmp_path, show_progress=False)
    assert calls and sum(rows_encoded) == len(TEXTS)  # the damaged file was recomputed, not used
    np.testing.assert_allclose(rebuilt, good, atol=1e-6)
    assert FeatureCache(tmp_path, entry.name).load() is not None


def test_overwrite_and_no_cache(tiny_bert, tmp_path, monkeypatch):
    enc = FrozenEncoder(tiny_bert)
    first = np.array(enc.encode(TEXTS, tmp_path, show_progress=False))
    with count_forwards() as calls:
        enc.encode(TEXTS, tmp_path, overwrite=True, show_progress=False)
    assert calls
    # a failed overwrite leaves the previous entry readable
    monkeypatch.setattr(FeatureCache, "save_shard", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        enc.encode(TEXTS, tmp_path, overwrite=True, show_progress=False)
    np.testing.assert_array_equal(FeatureCache(tmp_path, enc.fingerprint(TEXTS)).load(), first)
    monkeypatch.undo()
    other = tmp_path / "other"
    with count_forwards() as calls:
        enc.encode(TEXTS, other, no_cache=True, show_progress=False)
    assert calls and not other.exists()


def test_cached_extract_serves_any_featurizer(tmp_path):
    """The cache machinery without transformers: a numpy featurizer, sharded, resumed, reloaded."""
    inputs = np.random.default_rng(0).normal(size=(50, 4))
    computed = []

    def compute(rows, advance):
        computed.extend(rows.tolist())
        advance(len(rows))
        return [np.tanh(inputs[rows]).astype(np.float32), inputs[rows, :1].astype(np.float32)]

    key = make_fingerprint({"featurizer": "tanh", "data": inputs.tobytes().hex()})
    caches = [FeatureCache(tmp_path, key + "-a"), FeatureCache(tmp_path, key + "-b")]
    order = np.random.default_rng(1).permutation(50)
    a, b = cached_extract(50, compute, caches, order=order, shard_size=16, show_progress=False)
    np.testing.assert_allclose(a, np.tanh(inputs), rtol=1e-6)
    np.testing.assert_allclose(b, inputs[:, :1], rtol=1e-6)
    assert sorted(computed) == list(range(50))
    computed.clear()
    again = cached_extract(50, compute, caches, order=order, shard_size=16, show_progress=False)
    assert computed == [] and np.array_equal(again[0], a)
    with pytest.raises(ValueError, match="permutation"):
        cached_extract(50, compute, [FeatureCache(tmp_path, "x")], order=np.zeros(50, int))


@pytest.mark.slow
def test_two_processes_equal_one(tiny_bert, tmp_path):
    """accelerate launch --multi_gpu --num_processes 2 (gloo on CPU): cached and gathered paths."""
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("\n".join(TEXTS))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def launch(*extra: str) -> subprocess.Popen:
        # each launch gets its own rendezvous port: two on the default 29500 would collide
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", str(free_port()), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "-m", "w2s_hf", "extract", "--model", tiny_bert,
               "--input", str(texts_file), "--shard_size", "8", "--token_budget", "200", "--layers", "2", "4", *extra]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    jobs = [
        launch("--cache_dir", str(tmp_path / "cache")),
        launch("--no_cache", "--output", str(tmp_path / "out.npy")),
    ]
    logs = [job.communicate(timeout=300)[0] for job in jobs]
    for job, log in zip(jobs, logs):
        assert job.returncode == 0, log[-3000:]
        assert "on 2 process(es)" in log
    one = FrozenEncoder(tiny_bert).encode_layers(TEXTS, [2, 4], show_progress=False)
    gathered = np.load(tmp_path / "out.npy")
    enc = FrozenEncoder(tiny_bert, shard_size=8, token_budget=200)  # the token budget is part of the key
    with count_forwards() as calls:
        cached = enc.encode_layers(TEXTS, [2, 4], tmp_path / "cache", show_progress=False)
    assert calls == []  # the 2-process run wrote exactly the entries a 1-process run looks up
    for i, layer in enumerate((2, 4)):
        assert f"fingerprint={enc.fingerprint(TEXTS, layer)}" in logs[0]
        np.testing.assert_allclose(cached[layer], one[layer], atol=1e-5)
        np.testing.assert_allclose(gathered[i], one[layer], atol=1e-5)
    # Whole batches are dealt to the processes: with the same batches, 1 process gives the same bits.
    # (one thread, as each launched process has: a matmul split over threads may sum in another order)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        same = FrozenEncoder(tiny_bert, shard_size=8, token_budget=200).encode_layers(TEXTS, [2, 4],
                                                                                      show_progress=False)
    finally:
        torch.set_num_threads(threads)
    for i, layer in enumerate((2, 4)):
        np.testing.assert_array_equal(cached[layer], same[layer])
        np.testing.assert_array_equal(gathered[i], same[layer])
