"""Inputs at scale: the SMILES check streams and stops at the first bad rows; huge texts are cut before
tokenizing without changing a token that truncation keeps."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from w2s_hf.data import TaskDataError, load_task


def _write(path: Path, smiles: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "smiles", "y"])
        writer.writerows([[f"m{i}", s, float(i)] for i, s in enumerate(smiles)])
    return path


def test_smiles_check_stops_at_the_first_bad_chunk_and_keeps_no_molecules(tmp_path, monkeypatch):
    pytest.importorskip("rdkit")
    from rdkit import Chem

    from w2s_hf.data import chem

    calls = []
    real = Chem.MolFromSmiles
    monkeypatch.setattr(Chem, "MolFromSmiles", lambda s: calls.append(s) or real(s))
    monkeypatch.setattr(chem, "CHECK_CHUNK", 50)
    smiles = ["C" * (1 + i % 7) + "O" * (i // 7 % 5) for i in range(500)]
    smiles[9] = "C1CC"
    path = _write(tmp_path / "big.csv", smiles)
    with pytest.raises(TaskDataError, match=r"cannot parse in 1 row: row 10 \('C1CC'\) \(the check stops at the "
                       r"first bad rows: rows 51..500 are not checked yet\)") as err:
        load_task("mols", path=path, input_column="smiles", target_columns=["y"], id_column="uid")
    assert err.value.rows == [10] and "--drop_invalid" in str(err.value)
    assert len(calls) == 50  # one chunk parsed, not the whole file

    bad, canon, scaffolds = chem.smiles_keys(["CCO", "c1ccccc1CC", "C1CC"], scaffolds=True)
    assert bad == [2] and canon[:2] == ["CCO", "CCc1ccccc1"] and scaffolds[:2] == ["", "c1ccccc1"]
    assert all(isinstance(x, str) for x in canon[:2] + scaffolds)  # strings, no RDKit objects kept


@pytest.mark.parametrize("family", ["tiny_bert", "tiny_gpt2"])
def test_long_texts_are_cut_before_tokenizing_and_keep_the_truncated_tokens(family, request, monkeypatch):
    from tiny_models import sentences

    from w2s_hf.features import FrozenEncoder
    from w2s_hf.features import tokens as tokens_module

    path = request.getfixturevalue(family)
    normal = sentences(12)
    # ~40k characters each: far over the bound for max_length 16 (768 characters)
    huge = [" ".join(sentences(400, seed=s)) + "  \n trailing" for s in (3, 4)]
    texts = normal[:6] + huge + normal[6:]
    enc = FrozenEncoder(path, max_length=16)
    tok = enc._load_tokenizer()
    seen: list[int] = []
    real_call = type(tok).__call__
    monkeypatch.setattr(type(tok), "__call__", lambda self, t, **kw: seen.append(max(map(len, t))) or real_call(
        self, t, **kw))
    table, _, lengths = enc._tokenize(texts)
    assert max(seen) <= tokens_module.char_bound(16)  # the tokenizer never saw a whole essay
    monkeypatch.undo()
    reference = tok(texts, truncation=True, max_length=16)["input_ids"]
    assert [table[i].tolist() for i in range(len(texts))] == reference
    assert lengths[6] == lengths[7] == 16
    cut = enc.encode(texts, show_progress=False)
    monkeypatch.setattr(tokens_module, "CHARS_PER_TOKEN", 10**9)  # no cut: the old, whole-text path
    whole = FrozenEncoder(path, max_length=16).encode(texts, show_progress=False)
    assert np.array_equal(cut, whole)


def test_a_cut_that_leaves_too_few_tokens_falls_back_to_the_whole_text(tiny_bert):
    from w2s_hf.features import FrozenEncoder
    from w2s_hf.features.tokens import char_bound, cut_text, cut_texts

    tok = FrozenEncoder(tiny_bert, max_length=16)._load_tokenizer()
    # one giant word (one [UNK] token) then words: the cut keeps ~1 token, fewer than truncation keeps
    text = "x" * (char_bound(16) - 10) + " " + "the essay " * 200
    assert cut_text(text, char_bound(16)) != text
    assert cut_texts(tok, [text], 16) == [text]
    assert cut_text("no space" + "y" * 5000, 100) == "no space" + "y" * 5000  # no word boundary late enough


def test_an_encoder_saved_without_a_pooler_loads_without_one(tmp_path, tiny_bert):
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertModel

    from w2s_hf.features import FrozenEncoder
    from w2s_hf.features.hub import checkpoint_keys

    folder = tmp_path / "no_pooler"
    torch.manual_seed(0)
    BertModel(AutoConfig.from_pretrained(tiny_bert), add_pooling_layer=False).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    assert not any("pooler" in k for k in checkpoint_keys(folder))
    bare = FrozenEncoder(str(folder), max_length=32)
    bare.encode(["a short text"], show_progress=False)
    assert bare._model.pooler is None  # no randomly initialised pooler, no "pooler.dense.weight MISSING" report
    full = FrozenEncoder(tiny_bert, max_length=32)
    full.encode(["a short text"], show_progress=False)
    assert full._model.pooler is not None  # a checkpoint with a pooler keeps it
