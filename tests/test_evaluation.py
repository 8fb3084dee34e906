"""Evaluation points: predictions gathered across processes equal the one-process predictions (no
padded duplicates), results.json written atomically, the plot, the table and the tracker keys."""

import json
import os

import numpy as np
import pytest
from helpers import Recorder, fresh_fork_state

from w2s_hf.decomposition.core import decompose
from w2s_hf.hooks.evaluation import (
    JsonResultsHook,
    PlotHook,
    TableHook,
    TrackerHook,
    evaluate_point,
    format_table,
    gather_predictions,
    metric_path,
    write_json_atomic,
)

N_ROWS = 7


def seven_rows():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(N_ROWS, 2))
    weak = y + rng.normal(size=y.shape)
    w2s = y + 0.5 * rng.normal(size=y.shape)
    ids = np.array([f"row-{i}" for i in range(N_ROWS)])
    return ids, y, weak, w2s




# ---------------------------------------------------------------------- two processes

def _gather_worker(out_dir):
    import torch
    from accelerate import Accelerator

    fresh_fork_state()
    acc = Accelerator(cpu=True)
    ids, y, weak, w2s = seven_rows()
    rank = acc.process_index
    # 1) uneven shards by hand: 4 rows and 3 rows, in a scrambled order
    local = [6, 0, 4, 2] if rank == 0 else [5, 3, 1]
    got_ids, got_w2s = gather_predictions(acc, ids[local], w2s[local])
    # 2) a prepared dataloader: 7 rows over 2 processes in batches of 2 pads with repeated rows
    loader = acc.prepare(torch.utils.data.DataLoader(torch.arange(N_ROWS), batch_size=2))
    seen = [int(i) for batch in loader for i in batch]
    dl_ids, dl_preds = gather_predictions(acc, ids[seen], w2s[seen])
    # 3) string ids, 1-D predictions, one process holding nothing
    local_1d = [] if rank == 0 else list(range(N_ROWS))
    ids_1d, preds_1d = gather_predictions(acc, ids[local_1d], w2s[local_1d, 0])
    rec = Recorder()
    hook = JsonResultsHook(os.path.join(out_dir, "results.json"))
    dec = evaluate_point(3, "test", y, weak, got_w2s, hooks=[rec, hook], accelerator=acc,
                         state={"head": "w2s"}, target_names=["a", "b"], n_boot=200, seed=0)
    if acc.is_main_process:
        hook.on_end({"splits": {"test": dec.as_dict()}})
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), ids=got_ids, w2s=got_w2s, seen=np.array(seen),
             dl_ids=dl_ids, dl_preds=dl_preds, ids_1d=ids_1d, preds_1d=preds_1d,
             hook_calls=len(rec.calls), misfit=dec.misfit)


def test_two_processes_gather_exactly_the_one_process_rows(tmp_path):
    from accelerate import debug_launcher

    debug_launcher(_gather_worker, args=(str(tmp_path),), num_processes=2)
    ids, y, weak, w2s = seven_rows()
    one_ids, one_w2s = gather_predictions(None, ids, w2s)
    expected = decompose(y, weak, w2s, target_names=["a", "b"], n_boot=200, seed=0)
    seen = []
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npz")
        seen += got["seen"].tolist()
        for key_ids, key_preds, want in (
            ("ids", "w2s", one_w2s),
            ("dl_ids", "dl_preds", one_w2s),
            ("ids_1d", "preds_1d", w2s[:, 0]),
        ):
            assert got[key_ids].tolist() == one_ids.tolist()  # all 7 rows, once each, same order
            np.testing.assert_array_equal(got[key_preds], want)
        assert float(got["misfit"]) == pytest.approx(expected.misfit, rel=1e-12)
        # hooks run on the main process only
        assert int(got["hook_calls"]) == (1 if rank == 0 else 0)
    assert len(seen) > N_ROWS, "the prepared dataloader was expected to pad with duplicates"
    saved = json.loads((tmp_path / "results.json").read_text())["splits"]["test"]
    assert saved["misfit"] == pytest.approx(expected.misfit, rel=1e-12)
    assert saved["ci"]["misfit"] == pytest.approx(expected.ci["misfit"], rel=1e-12)


def test_gather_one_process_sorts_dedups_and_rejects_conflicts():
    ids, _, _, w2s = seven_rows()
    order = [3, 1, 6, 0, 5, 2, 4, 3]  # row 3 twice (a padded duplicate)
    got_ids, got = gather_predictions(None, ids[order], w2s[order])
    assert got_ids.tolist() == sorted(ids.tolist())
    np.testing.assert_array_equal(got, w2s)
    bad = w2s[order].copy()
    bad[-1] += 1.0  # the duplicate disagrees: two different heads predicted row 3
    with pytest.raises(ValueError, match="row-3"):
        gather_predictions(None, ids[order], bad)
    with pytest.raises(ValueError, match="n = len\\(ids\\) = 8"):
        gather_predictions(None, ids[order], w2s[:3])


def test_evaluate_point_calls_hooks_with_the_decomposition():
    _, y, weak, w2s = seven_rows()
    rec = Recorder()
    dec = evaluate_point(5, "val", y, weak, w2s, y + 0.01, hooks=[rec], state={"epoch": 2}, n_boot=0)
    ((step, split, got, state),) = rec.calls
    assert (step, split, state) == (5, "val", {"epoch": 2})
    assert got is dec
    assert dec.misfit == pytest.approx(np.mean((w2s - weak) ** 2))
    assert dec.ceiling_error == pytest.approx(1e-4)


# ---------------------------------------------------------------------- hooks
def results_dict(k=2, n_boot=100):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(60, k))
    names = ["cohesion", "syntax"][:k] if k <= 2 else [f"t{j}" for j in range(k)]
    splits = {}
    for split, noise in (("w2s_train", 0.6), ("val", 0.7), ("test", 0.8)):
        dec = decompose(
            y,
            y + rng.normal(size=y.shape),
            y + noise * rng.normal(size=y.shape),
            y + 0.3 * rng.normal(size=y.shape),
            target_names=names,
            n_boot=n_boot,
            seed=0,
        )
        splits[split] = dec.as_dict()
    return {
        "config": {"task": "toy"},
        "fingerprints": {"weak": "abc", "strong": "def"},
        "splits": splits,
        "timings": {"total": 1.5},
    }


def test_write_json_atomic_survives_a_failed_write(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    hook = JsonResultsHook(path)
    first = results_dict()
    hook.on_end(first)
    assert json.loads(path.read_text())["splits"]["test"]["misfit"] == first["splits"]["test"]["misfit"]
    before = path.read_bytes()

    import w2s_hf.atomic as atomic

    real_open = open

    class HalfThenFail:  # the temporary file: half of the bytes land, then the disk fails
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise RuntimeError("disk full")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def open_then_fail_mid_write(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return HalfThenFail(fh) if "w" in mode else fh

    monkeypatch.setattr(atomic, "open", open_then_fail_mid_write, raising=False)
    with pytest.raises(RuntimeError, match="disk full"):
        hook.on_end(results_dict(n_boot=10))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["results.json"]  # no temp file left behind

    def no_rename(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="rename failed"):
        write_json_atomic(path, {"other": 1})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["results.json"]
    # NaN (an undefined pgr) becomes null: strict JSON that other tools can read
    write_json_atomic(path, {"pgr": float("nan"), "x": np.float32(1.5), "arr": np.arange(2)})
    assert json.loads(path.read_text()) == {"pgr": None, "x": 1.5, "arr": [0, 1]}


def test_json_hook_history_of_evaluation_points(tmp_path):
    _, y, weak, w2s = seven_rows()
    hook = JsonResultsHook(tmp_path / "r.json", include_history=True)
    for step in (10, 20):
        evaluate_point(step, "val", y, weak, w2s, hooks=[hook], state={"head": "w2s"}, n_boot=0)
    hook.on_end({"splits": {}})
    history = json.loads((tmp_path / "r.json").read_text())["history"]
    assert [h["step"] for h in history] == [10, 20]
    assert history[0]["head"] == "w2s" and history[0]["misfit"] == pytest.approx(np.mean((w2s - weak) ** 2))


def test_plot_hook_writes_a_png_per_target_chart(tmp_path):
    path = tmp_path / "plots" / "decomposition.png"
    PlotHook(path).on_end(results_dict(k=2))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert os.listdir(path.parent) == ["decomposition.png"]
    # one target, no ceiling: still draws
    res = results_dict(k=1)
    for d in res["splits"].values():
        d["ceiling_error"] = d["pgr"] = None
    PlotHook(tmp_path / "one.png").on_end(res)
    assert (tmp_path / "one.png").read_bytes()[:4] == b"\x89PNG"


def test_table_hook_prints_splits_quantities_and_targets(capsys):
    res = results_dict(k=2)
    TableHook().on_end(res)
    out = capsys.readouterr().out
    for name in (
        "w2s_train",
        "val",
        "test",
        "weak_error",
        "w2s_error",
        "misfit",
        "gain",
        "residual",
        "predicted_w2s_error",
        "ceiling_error",
        "pgr",
        "target cohesion",
        "target syntax",
    ):
        assert name in out, name
    test = res["splits"]["test"]
    assert f"{test['misfit']:.4f}" in out
    assert f"{test['per_target']['syntax']['w2s_error']:.4f}" in out
    lo, hi = test["ci"]["misfit"]
    assert f"[{lo:.3f}, {hi:.3f}]" in out
    # the table comes out the same from the JSON on disk (what a rerun prints)
    assert format_table(json.loads(json.dumps(res))) == out.rstrip("\n")


def test_tracker_hook_logs_to_tensorboard(tmp_path):
    from accelerate import Accelerator

    class Capture:
        def __init__(self):
            self.logged, self.trackers = [], []

        def log(self, values, step=None):
            self.logged.append((step, values))

    _, y, weak, w2s = seven_rows()
    dec = decompose(y, weak, w2s, target_names=["a", "b"], n_boot=0)
    cap = Capture()
    TrackerHook(cap).on_evaluate(7, "test", dec, {"head": "w2s"})
    TrackerHook(cap).on_evaluate(8, "val", dec, {"prefix": "run2"})
    (step, values), (_, prefixed) = cap.logged
    assert step == 7
    assert values["test/misfit"] == pytest.approx(dec.misfit)
    assert values["test/b/w2s_error"] == pytest.approx(dec.per_target["b"]["w2s_error"])
    assert "test/pgr" not in values  # no ceiling: nothing undefined is logged
    assert prefixed["run2/val/gain"] == pytest.approx(dec.gain)

    acc = Accelerator(cpu=True, log_with="tensorboard", project_dir=str(tmp_path))
    acc.init_trackers("w2s")
    hook = TrackerHook(acc)
    hook.on_evaluate(1, "val", dec, {})
    hook.on_end({})
    acc.end_training()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = {root for root, _, files in os.walk(tmp_path) if any(f.startswith("events.out.tfevents") for f in files)}
    assert folders
    tags = {}
    for folder in folders:
        events = EventAccumulator(folder)
        events.Reload()
        tags.update({tag: events.Scalars(tag) for tag in events.Tags()["scalars"]})
    assert tags["val/misfit"][0].step == 1
    assert tags["val/misfit"][0].value == pytest.approx(dec.misfit, rel=1e-6)
    assert "val/a/w2s_error" in tags


def test_metric_path_points_at_the_metric_script():
    assert os.path.isfile(os.path.join(metric_path(), "misfit_decomposition.py"))


def test_table_shows_a_withheld_pgr_with_its_reason():
    res = results_dict(k=2)
    res["splits"]["test"].update(pgr=None, pgr_reason="gap weak_error - ceiling_error = -0.1 <= 0")
    out = format_table(res)
    assert "pgr on test: null, gap weak_error - ceiling_error = -0.1 <= 0" in out


def test_table_marks_the_split_used_for_selection():
    res = results_dict(k=1)
    res["splits"]["val"]["used_for_selection"] = True
    out = format_table(res)
    header = out.splitlines()[0].split()
    assert header[1:] == ["w2s_train", "val*", "test"]
    assert out.splitlines()[-1].startswith("* used for selection")
    assert "*" not in format_table(results_dict(k=1))
