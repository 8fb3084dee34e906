"""Each kind of bad task input fails early with a TaskDataError naming the file, column and rows."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from w2s_hf.data import TaskDataError, load_task


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def essay_rows(n: int) -> list[list]:
    return [[f"id{i}", f"This is essay {i}. It has a few words.", 1.0 + (i % 9) / 2, 3.0] for i in range(n)]


HEADER = ["uid", "text", "score", "other"]
TEXT_ARGS = dict(input_column="text", target_columns=["score"], id_column="uid")
SMILES_ARGS = dict(input_column="smiles", target_columns=["y"], id_column="uid")


def load(path: Path, **overrides):
    return load_task("custom", path=path, **{**TEXT_ARGS, **overrides})


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "train.csv"
    with pytest.raises(TaskDataError, match="file not found") as err:
        load(missing)
    assert str(missing) in str(err.value)
    with pytest.raises(TaskDataError, match="no built-in task named 'esoll'.*esol, freesolv"):
        load_task("esoll")


def test_ellipse_without_path_says_which_file_to_give():
    with pytest.raises(TaskDataError, match=r"path=.*Feedback Prize"):
        load_task("ellipse")


def test_missing_columns_list_the_available_ones(tmp_path):
    path = write_csv(tmp_path / "t.csv", HEADER, essay_rows(30))
    with pytest.raises(
        TaskDataError, match=r"input column\(s\) 'essay' not found.*'uid', 'text', 'score', 'other'"
    ) as err:
        load(path, input_column="essay")
    assert err.value.column == "essay" and str(path) in str(err.value)
    with pytest.raises(TaskDataError, match=r"target column\(s\) 'grade' not found.*target_columns="):
        load(path, target_columns=["score", "grade"])
    with pytest.raises(TaskDataError, match=r"id column\(s\) 'id' not found"):
        load(path, id_column="id")
    with pytest.raises(TaskDataError, match=r"input_column=.*target_columns=.*'uid', 'text'"):
        load_task(path)


@pytest.mark.parametrize(
    "bad, kind",
    [
        ("", "missing / NaN"),
        ("nan", "missing / NaN"),
        ("three", "non-numeric"),
        ("inf", "infinite"),
        ("-Infinity", "infinite"),
    ],
)
def test_bad_target_values_name_column_rows_and_values(tmp_path, bad, kind):
    rows = essay_rows(30)
    rows[2][2] = bad  # data row 3
    rows[17][2] = bad  # data row 18
    path = write_csv(tmp_path / "t.csv", HEADER, rows)
    with pytest.raises(TaskDataError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message and "'score'" in message and kind in message
    assert "2 rows: row 3" in message and "row 18" in message and repr(bad) in message
    assert err.value.rows == [3, 18] and err.value.column == "score"


def test_long_lists_of_bad_rows_are_cut_short(tmp_path):
    rows = essay_rows(40)
    for r in rows[:12]:
        r[2] = "x"
    with pytest.raises(TaskDataError, match=r"12 rows: row 1 \('x'\), .*row 5 \('x'\), and 7 more"):
        load(write_csv(tmp_path / "t.csv", HEADER, rows))


def test_bad_targets_in_parquet_are_caught_too(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": ["an essay"] * 30, "score": [1.0] * 29 + [float("nan")]})
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(TaskDataError, match=r"'score' has missing / NaN values in 1 row: row 30"):
        load_task(tmp_path / "t.parquet", input_column="text", target_columns=["score"])


def test_empty_input_text(tmp_path):
    rows = essay_rows(30)
    rows[4][1] = "   "
    rows[9][1] = ""
    path = write_csv(tmp_path / "t.csv", HEADER, rows)
    with pytest.raises(TaskDataError, match=r"input column 'text' is empty in 2 rows: row 5, row 10") as err:
        load(path)
    assert str(path) in str(err.value) and err.value.rows == [5, 10]


def test_invalid_smiles_listed_or_dropped(tmp_path, caplog):
    pytest.importorskip("rdkit")
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCl", "C1CCCCC1", "CC(C)O", "OCCO", "c1ccncc1", "CCCC"]
    rows = [[f"m{i}", "C" * (i // 10) + smiles[i % 10], float(i)] for i in range(40)]
    rows[6][1] = "C1CC"  # unclosed ring
    rows[20][1] = "c1cccc1"  # cannot be kekulized
    path = write_csv(tmp_path / "m.csv", ["uid", "smiles", "y"], rows)
    with pytest.raises(
        TaskDataError, match=r"'smiles' has SMILES that RDKit cannot parse in 2 rows: row 7 \('C1CC'\), row 21"
    ) as err:
        load_task("mols", path=path, **SMILES_ARGS)
    assert "drop_invalid=True" in str(err.value) and str(path) in str(err.value)
    with caplog.at_level(logging.WARNING, logger="w2s_hf.data"):
        task = load_task("mols", path=path, drop_invalid=True, **SMILES_ARGS)
    assert "dropped 2 rows with invalid SMILES" in caplog.text
    kept = [i for name in task.splits for i in task.splits[name]["id"]]
    assert len(kept) == 38 and "m6" not in kept and "m20" not in kept


def test_empty_split_names_the_split_and_the_fix(tmp_path):
    path = write_csv(tmp_path / "tiny.csv", HEADER, essay_rows(4))
    with pytest.raises(TaskDataError, match=r"split 'val' is empty \(4 usable rows.*add rows") as err:
        load(path)
    assert str(path) in str(err.value)
    path = write_csv(tmp_path / "small.csv", HEADER, essay_rows(12))
    with pytest.raises(TaskDataError, match=r"split 'weak_train' is empty.*weak_fraction=0.04"):
        load(path, weak_fraction=0.04)


def test_duplicate_ids(tmp_path):
    rows = essay_rows(30)
    rows[11][0] = rows[3][0]  # row 12 repeats the id of row 4
    path = write_csv(tmp_path / "t.csv", HEADER, rows)
    with pytest.raises(
        TaskDataError, match=r"column 'uid' has duplicate ids in 1 row: row 12 \('id3 \(also row 4\)'\)"
    ) as err:
        load(path)
    assert err.value.rows == [12] and str(path) in str(err.value)


def test_scaffold_split_of_text_is_refused(tmp_path):
    path = write_csv(tmp_path / "t.csv", HEADER, essay_rows(30))
    with pytest.raises(TaskDataError, match="scaffold.*needs SMILES"):
        load(path, split="scaffold")


def test_argument_errors(tmp_path):
    path = write_csv(tmp_path / "t.csv", HEADER, essay_rows(30))
    with pytest.raises(ValueError, match="split must be one of"):
        load(path, split="temporal")
    with pytest.raises(ValueError, match="weak_fraction"):
        load(path, weak_fraction=1.0)
    with pytest.raises(ValueError, match="input_kind"):
        load(path, input_kind="image")
    with pytest.raises(TaskDataError, match="unknown file type"):
        load(write_csv(tmp_path / "t.xlsx", HEADER, essay_rows(3)))
    with pytest.raises(ValueError, match="built-in task 'freesolv' has fixed columns"):
        load_task("freesolv", input_column="smiles")
    with pytest.raises(TaskDataError, match=r"no target\(s\) \['logp'\]; choose from \['hydration_free_energy'\]"):
        load_task("freesolv", targets=["logp"])
