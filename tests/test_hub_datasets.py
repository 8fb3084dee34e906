"""`datasets` as the front door: save_to_disk folders and hf:<path> (a local Hub-like parquet folder, data_files),
split maps, the offline refusal, and the checks that files get, naming the dataset."""

from __future__ import annotations

import time

import numpy as np
import pytest

from w2s_hf.data import TaskDataError, TaskRows, load_task


def _columns(n, start=0, seed=0):
    rng = np.random.default_rng(seed)
    return {"uid": [f"q{start + i}" for i in range(n)],
            "question": [f"what is thing {start + i} made of" for i in range(n)],
            "score": rng.normal(size=n).round(3).tolist()}


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A Hub-like dataset folder: data/<split>-00000-of-00001.parquet, as `push_to_hub` writes it."""
    import datasets

    root = tmp_path_factory.mktemp("hub") / "my_dataset"
    (root / "data").mkdir(parents=True)
    for split, (n, start) in {"train": (60, 0), "validation": (12, 100), "test": (10, 200)}.items():
        file = root / "data" / f"{split}-00000-of-00001.parquet"
        datasets.Dataset.from_dict(_columns(n, start)).to_parquet(str(file))
    return root


def test_a_save_to_disk_folder_is_a_task(tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(_columns(40)),
                          "test": datasets.Dataset.from_dict(_columns(10, 500))}).save_to_disk(str(folder))
    task = load_task(folder, input_column="question", target_columns=["score"], id_column="uid", seed=1)
    data = TaskRows.of(task)
    assert sum(task.sizes().values()) == 50 and task.name == "saved"
    both = [_columns(40), _columns(10, 500)]
    expected = dict(zip(both[0]["uid"] + both[1]["uid"], both[0]["score"] + both[1]["score"]))
    for split in data.ids:
        assert data.gold[split][:, 0].tolist() == [expected[i] for i in data.ids[split]]
    # a bare Dataset (no splits) too
    datasets.Dataset.from_dict(_columns(30)).save_to_disk(str(tmp_path / "one"))
    assert sum(load_task(tmp_path / "one", input_column="question", target_columns=["score"]).sizes().values()) == 30


def test_hf_path_with_a_split_map_keeps_the_datasets_splits(hub_folder):
    task = load_task(f"hf:{hub_folder}", input_column="question", target_columns=["score"], id_column="uid",
                     split_map=["train=train", "validation=val", "test=test"], seed=2)
    data = TaskRows.of(task)
    assert sorted(data.ids["val"]) == sorted(f"q{100 + i}" for i in range(12))
    assert sorted(data.ids["test"]) == sorted(f"q{200 + i}" for i in range(10))
    assert sorted(data.ids["weak_train"] + data.ids["w2s_train"]) == sorted(f"q{i}" for i in range(60))
    assert len(data.ids["weak_train"]) == 30
    other = TaskRows.of(load_task(f"hf:{hub_folder}", input_column="question", target_columns=["score"],
                                  id_column="uid", split_map={"train": "train", "validation": "val",
                                                              "test": "test"}, seed=3))
    assert other.ids["val"] == data.ids["val"] and other.ids["weak_train"] != data.ids["weak_train"]
    # a dataset without a validation split: val is carved from the training part
    carved = TaskRows.of(load_task(f"hf:{hub_folder}", input_column="question", target_columns=["score"],
                                   id_column="uid", split_map={"train": "train", "test": "test"}))
    assert len(carved.ids["val"]) > 0 and set(carved.ids["val"]) < {f"q{i}" for i in range(60)}


def test_hf_parquet_with_data_files(hub_folder):
    files = {"train": str(hub_folder / "data" / "train-00000-of-00001.parquet"),
             "test": str(hub_folder / "data" / "test-00000-of-00001.parquet")}
    task = load_task("hf:parquet", data_files=files, input_column="question", target_columns=["score"],
                     id_column="uid")
    assert sum(task.sizes().values()) == 70 and "hf:parquet" in task.source


def test_offline_a_dataset_not_in_the_cache_fails_at_once_with_what_to_run(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(TaskDataError) as err:
        load_task("hf:someone/not-cached", dataset_config="main", revision="v1", input_column="q",
                  target_columns=["y"])
    message = str(err.value)
    assert time.perf_counter() - start < 30
    assert "hf:someone/not-cached (config 'main', revision 'v1') is not in the datasets cache" in message
    assert "datasets.load_dataset('someone/not-cached', 'main', revision='v1')" in message and "\n" not in message


def test_the_checks_files_get_name_the_dataset(tmp_path, hub_folder):
    import datasets

    cols = _columns(40)
    cols["score"][3] = None
    cols["uid"][7] = cols["uid"][8]
    folder = tmp_path / "bad"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(cols)}).save_to_disk(str(folder))
    kwargs = {"input_column": "question", "target_columns": ["score"]}
    with pytest.raises(TaskDataError, match=r"bad \(save_to_disk folder\) \[train\]: target column 'score' has "
                                            r"missing / NaN values in 1 row: row 4"):
        load_task(folder, **kwargs)
    cols["score"][3], cols["question"][5] = 0.5, ""
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(cols)}).save_to_disk(str(tmp_path / "bad2"))
    with pytest.raises(TaskDataError, match=r"input column 'question' is empty in 1 row: row 6"):
        load_task(tmp_path / "bad2", **kwargs)
    cols["question"][5] = "filled"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(cols)}).save_to_disk(str(tmp_path / "bad3"))
    with pytest.raises(TaskDataError, match=r"bad3 .*duplicate ids in 1 row: row 9 \('q8 \(also row 8\)'\)"):
        load_task(tmp_path / "bad3", id_column="uid", **kwargs)
    with pytest.raises(TaskDataError, match=r"hf:.*my_dataset.*target column\(s\) 'nope' not found. Available"):
        load_task(f"hf:{hub_folder}", input_column="question", target_columns=["nope"])
    with pytest.raises(TaskDataError, match=r"split\(s\) \['dev'\] not found; the dataset has \['train', "):
        load_task(f"hf:{hub_folder}", split_map={"dev": "val", "train": "train"}, **kwargs)
    with pytest.raises(TaskDataError, match="must map to one of weak_train, w2s_train, val, test, train"):
        load_task(f"hf:{hub_folder}", split_map={"train": "training"}, **kwargs)
    empty = datasets.Dataset.from_dict(_columns(3)).filter(lambda r: False)  # datasets cannot save from_dict of []
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(_columns(30)), "test": empty}).save_to_disk(
        str(tmp_path / "empty"))
    with pytest.raises(TaskDataError, match="split 'test' is empty"):
        load_task(tmp_path / "empty", split_map={"train": "train", "test": "test"}, **kwargs)
    with pytest.raises(ValueError, match="apply to a dataset"):
        load_task("esol", split_map={"train": "train"})


def test_a_preference_dataset_and_the_config_keys(tmp_path):
    import datasets

    from w2s_hf.config import parse_config

    rows = {"chosen": [f"\n\nHuman: q{i}\n\nAssistant: yes {i}" for i in range(40)],
            "rejected": [f"\n\nHuman: q{i}\n\nAssistant: no {i}" for i in range(40)]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "hh"))
    task = load_task(tmp_path / "hh", task_type="preference")
    assert task.task_type == "preference" and sum(task.sizes().values()) == 40
    config = parse_config(["--task", "hf:org/name", "--dataset_config", "c", "--dataset_revision", "r",
                           "--split_map", "train=train", "validation=val", "--template", "Q: {q}"])
    kwargs = config.task.load_kwargs()
    assert kwargs["split_map"] == ["train=train", "validation=val"] and kwargs["revision"] == "r"
    assert kwargs["dataset_config"] == "c" and kwargs["template"] == "Q: {q}"
    assert "split_map" not in parse_config([]).task.load_kwargs()  # unset keys leave load_task's defaults
