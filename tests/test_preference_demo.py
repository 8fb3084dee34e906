"""Preference tasks made from scored tables (issue 22.6): pairs drawn inside each split, labels from the scores.

ESOL ships with chemloader, so most tests run on it (or on a slice of its file); the ELLIPSE test needs the
Kaggle train.csv beside the repository (../shared/data/ellipse/train.csv) or at $W2S_ELLIPSE_CSV and skips
cleanly without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")

from w2s_hf.data import SPLIT_NAMES, TaskDataError, load_task  # noqa: E402
from w2s_hf.data.score_pairs import draw_pairs, pairs_from_scores  # noqa: E402

ELLIPSE = Path(os.environ.get("W2S_ELLIPSE_CSV") or
               Path(__file__).resolve().parents[2] / "shared" / "data" / "ellipse" / "train.csv")
PAIRS = {"task_type": "preference", "pair_from_scores": "log_solubility"}


@pytest.fixture(scope="module")
def esol_items():
    return load_task("esol", split="scaffold", seed=3, targets=["log_solubility"])


@pytest.fixture(scope="module")
def esol_pairs(esol_items):
    return pairs_from_scores(esol_items, "log_solubility", 2)


def _items_of(task, split):
    data = task.splits[split]
    return dict(zip(data["input"], data["log_solubility"]))


def test_pairs_never_share_an_item_across_splits_and_use_every_item(esol_items, esol_pairs):
    used = {s: set(esol_pairs.splits[s]["first"]) | set(esol_pairs.splits[s]["second"]) for s in SPLIT_NAMES}
    for k, a in enumerate(SPLIT_NAMES):
        assert used[a] == set(_items_of(esol_items, a))  # the split's own molecules, every one of them
        for b in SPLIT_NAMES[k + 1:]:
            assert not used[a] & used[b], (a, b)
    assert esol_pairs.input_kind == "smiles" and esol_pairs.task_type == "preference"
    assert esol_pairs.split == "scaffold" and esol_pairs.seed == 3


def test_labels_follow_the_scores_ties_are_skipped_and_the_order_is_a_coin(esol_items, esol_pairs):
    labels = []
    for split in SPLIT_NAMES:
        score = _items_of(esol_items, split)
        data = esol_pairs.splits[split]
        first = np.array([score[s] for s in data["first"]])
        second = np.array([score[s] for s in data["second"]])
        assert np.all(first != second)
        np.testing.assert_array_equal(np.asarray(data["first_preferred"]), (first > second).astype(float))
        assert set(data["prompt"]) == {""}
        labels += data["first_preferred"]
        assert data.num_rows == 2 * len(score)  # each item draws pairs_per_item partners (none runs out here)
    assert 0.45 < np.mean(labels) < 0.55


def test_the_draw_is_seeded_and_the_seed_matters(esol_items, esol_pairs):
    again = pairs_from_scores(esol_items, "log_solubility", 2)
    other = pairs_from_scores(esol_items, "log_solubility", 2, seed=4)
    for split in SPLIT_NAMES:
        assert again.splits[split].to_dict() == esol_pairs.splits[split].to_dict()
    assert other.splits["w2s_train"]["id"] != esol_pairs.splits["w2s_train"]["id"]


def test_draw_pairs_skips_ties_never_repeats_a_pair_and_gives_each_item_its_partners():
    rng = np.random.default_rng(0)
    # items 0-2 tie: their only untied partner is item 3, so the draw can give nothing else
    pairs = draw_pairs(np.array([1.0, 1.0, 1.0, 2.0]), 2, rng)
    assert sorted(tuple(sorted(p)) for p in pairs) == [(0, 3), (1, 3), (2, 3)]
    scores = rng.integers(0, 5, size=40).astype(float)
    pairs = draw_pairs(scores, 3, rng)
    keys = [tuple(sorted(p)) for p in pairs]
    assert len(set(keys)) == len(keys) and np.all(scores[pairs[:, 0]] != scores[pairs[:, 1]])
    counts = np.bincount(pairs.ravel(), minlength=40)
    assert counts.min() >= 3 and len(pairs) <= 3 * 40


def _write(tmp_path, scores, name="scores.csv"):
    path = tmp_path / name
    lines = ["id,smiles,score"] + [f"m{i},{'C' * (i + 1)},{s}" for i, s in enumerate(scores)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _own(path, **kw):
    kw = {"pair_from_scores": "score", **kw}
    return load_task(str(path), split="random", seed=0, input_column="smiles", id_column="id", input_kind="smiles",
                     task_type="preference", **kw)


def test_your_own_scored_file_becomes_a_smiles_preference_task(tmp_path):
    task = _own(_write(tmp_path, np.arange(40) % 7))
    assert task.input_kind == "smiles" and task.name == "scores-pairs-score"
    assert all(i.count("~") == 1 for s in SPLIT_NAMES for i in task.splits[s]["id"])


@pytest.mark.parametrize("make, kw, match", [
    (lambda p: _write(p, range(40)), {"target_columns": ["nope"]}, r"scores\.csv: target column\(s\) 'nope'"),
    (lambda p: _write(p, range(40)), {"target_columns": ["score"], "pair_from_scores": "id"},
     r"pair_from_scores='id' is not a target"),
    (lambda p: _write(p, [1.5] * 5 + [""] + [2.0] * 34), {}, r"column 'score'.*row 6"),
    (lambda p: _write(p, range(12)), {}, r"split 'val' has 1 item\(s\).*a pair needs two items"),
    (lambda p: _write(p, [3.0] * 40), {}, r"distinct 'score' score"),
])
def test_bad_input_is_one_line_naming_what_and_where(tmp_path, make, kw, match):
    with pytest.raises(TaskDataError, match=match) as err:
        _own(make(tmp_path), **kw)
    assert "\n" not in str(err.value)


def test_a_missing_score_of_a_built_in_task_and_misplaced_options_are_refused():
    with pytest.raises(TaskDataError, match=r"task 'esol' has no target\(s\) \['solubility'\]"):
        load_task("esol", task_type="preference", pair_from_scores="solubility")
    with pytest.raises(ValueError, match="give both task_type='preference' and pair_from_scores"):
        load_task("esol", pair_from_scores="log_solubility")
    from w2s_hf.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="give task_type=preference"):
        parse_config(["--task", "esol", "--pairs_per_item", "3"])
    with pytest.raises(ValueError, match="pairs_per_item must be an int >= 1"):
        load_task("esol", pairs_per_item=0, **PAIRS)


def test_a_row_fitted_scaler_fits_on_the_sides_of_the_training_pairs_only():
    from w2s_hf.features.pairs import pair_difference

    class Scaler:  # records the rows it was fitted on, returns one-hot features of each side
        def encode(self, inputs, fit_rows=None, **kw):
            self.inputs, self.fit = list(inputs), fit_rows
            return np.eye(len(inputs))

    enc = Scaler()
    diff = pair_difference(enc, ["", "", ""], ["a", "c", "e"], ["b", "d", "a"], fit_pairs=[0, 2])
    assert sorted(enc.inputs[i] for i in enc.fit) == ["a", "b", "e"]  # pair 1 (c, d) is not a training pair
    assert diff.shape == (3, 5) and diff[1, enc.inputs.index("c")] == 1 and diff[1, enc.inputs.index("d")] == -1


def test_esol_pairs_run_end_to_end_with_rdkit_featurizers(tmp_path):
    """rdkit:morgan -> rdkit:descriptors on 90 ESOL molecules: SMILES pairs reach the rdkit featurizers."""
    from w2s_hf.config import parse_config
    from w2s_hf.data.sources import BUILTIN_TASKS, builtin_file
    from w2s_hf.pipeline.run import W2SPipeline

    lines = builtin_file(BUILTIN_TASKS["esol"], None).read_text().splitlines()
    small = tmp_path / "esol90.csv"
    small.write_text("\n".join(lines[:91]) + "\n")
    config = parse_config([
        "--task", "esol", "--task_path", str(small), "--split", "random", "--task_type", "preference",
        "--pair_from_scores", "log_solubility", "--weak_model", "rdkit:morgan", "--strong_model", "rdkit:descriptors",
        "--ridge", "0.01", "--report_to", "none", "--n_boot", "0", "--plot", "false",
        "--output_dir", str(tmp_path / "run"), "--cache_dir", str(tmp_path / "cache")])
    pipe = W2SPipeline(config)
    results = pipe.run()
    test = results["splits"]["test"]
    assert pipe.task.input_kind == "smiles" and test["divergence"] == "binary_kl"
    assert {"weak_accuracy", "w2s_accuracy", "ceiling_accuracy"} <= set(test["extras"])
    assert test["n"] == pipe.task.splits["test"].num_rows > 0
    assert np.isfinite([test[q] for q in ("weak_error", "w2s_error", "misfit", "gain")]).all()


@pytest.mark.skipif(not ELLIPSE.is_file(), reason="needs the ELLIPSE train.csv (../shared/data/ellipse)")
def test_ellipse_cohesion_pairs_stay_inside_splits():
    task = load_task("ellipse", path=ELLIPSE, split="random", seed=1, task_type="preference",
                     pair_from_scores="cohesion", pairs_per_item=1)
    essays = {s: set(task.splits[s]["first"]) | set(task.splits[s]["second"]) for s in SPLIT_NAMES}
    assert sum(len(e) for e in essays.values()) == len(set().union(*essays.values()))
    assert task.input_kind == "text" and task.sizes()["test"] > 300
