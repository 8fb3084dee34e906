"""Inputs at scale: the SMILES check streams and stops at the first bad rows; huge texts are cut before
tokenizing without changing a token that truncation keeps."""

from __future__ import annotations

import csv
from pathlib import Path

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
