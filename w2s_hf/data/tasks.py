"""`load_task`: a built-in task or a user's table becomes a checked, split `W2STask`.

Order of work: find the file, read it, check columns, ids, inputs and targets (and SMILES with RDKit),
merge duplicate molecules for the built-in QSAR sets, split with the seed, check no split is empty.
All of it is cheap and runs before any model is loaded, so bad input fails in seconds with a message
naming the file, column and rows.

Built-in QSAR sets keep one row per RDKit canonical SMILES, averaging the targets of repeats. For ESOL
this turns the file's 1,144 rows into 1,117 molecules (27 repeats, 18 with different values), 11 fewer
than MoleculeNet's 1,128; FreeSolv (642) and Lipophilicity (4,200) have no repeats.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from w2s_hf.data import chem
from w2s_hf.data.checks import (
    TaskDataError,
    format_rows,
    parse_ids,
    parse_inputs,
    parse_targets,
    require_columns,
    require_file,
    require_nonempty_splits,
    require_unique_ids,
)
from w2s_hf.data.hub import HF_PREFIX, SPLIT_COLUMN, is_dataset_source, mapped_splits, read_dataset
from w2s_hf.data.kinds import TASK_TYPES
from w2s_hf.data.labels import (
    check_classes,
    parse_labels,
    stratified_random_split,
    stratified_weak_split,
    threshold_labels,
)
from w2s_hf.data.prompts import TEMPLATE_COLUMN, render_template
from w2s_hf.data.rows import INPUT_KINDS, PAIR_COLUMN, SPLIT_NAMES, W2STask
from w2s_hf.data.sources import BUILTIN_TASKS, ELLIPSE_RUBRICS, TaskSpec, builtin_file, read_table
from w2s_hf.data.splits import SPLIT_CHOICES, make_splits, resolve_split
from w2s_hf.data.suite import SUITE, suite_frame

if TYPE_CHECKING:
    pass

logger = logging.getLogger("w2s_hf.data")


@dataclass
class _Rows:
    """Parsed rows before splitting; `rows` are 1-based data-row numbers in the source file."""

    ids: list[str]
    inputs: list  # texts, or (text, pair) tuples for a text-pair task
    targets: dict[str, np.ndarray]
    rows: np.ndarray

    def take(self, keep: np.ndarray) -> "_Rows":
        return _Rows(
            ids=[self.ids[i] for i in keep],
            inputs=[self.inputs[i] for i in keep],
            targets={k: v[keep] for k, v in self.targets.items()},
            rows=self.rows[keep],
        )


def load_task(
    name_or_path: str | os.PathLike,
    split: str = "random",
    seed: int = 0,
    *,
    targets: list[str] | None = None,
    input_column: str | None = None,
    target_columns: list[str] | None = None,
    id_column: str | None = None,
    path: str | os.PathLike | None = None,
    weak_fraction: float = 0.5,
    drop_invalid: bool = False,
    input_kind: str | None = None,
    task_type: str = "regression",
    label_column: str | None = None,
    threshold: float | None = None,
    dataset_config: str | None = None,
    revision: str | None = None,
    data_files: Any = None,
    split_map: Any = None,
    template: str | None = None,
    pair_column: str | None = None,
    cv_folds: int | None = None,
    cv_fold: int = 0,
    pair_from_scores: str | None = None,
    pairs_per_item: int | None = None,
) -> W2STask:
    """Load, check and split a task (the arguments are those of `w2s run`; docs: usage/data.md).

    - `name_or_path`: a built-in task (`BUILTIN_TASKS`: esol, freesolv, lipophilicity, ellipse), a suite task
      (`SUITE`: sciq, boolq, ...), a CSV/TSV/JSON(-lines)/parquet file, `hf:<path>` or a `save_to_disk`
      folder (`w2s_hf.data.hub`: `dataset_config`, `revision`, `data_files`, and `split_map` {their split:
      ours, or train}); `path` gives ellipse's file or replaces a built-in's.
    - `split`: "random", "scaffold" (Bemis–Murcko groups, SMILES only) or "auto"; 80/10/10, the training
      part divided by `weak_fraction` into weak_train and w2s_train. `seed` fixes it.
    - `targets` / `target_columns`, `input_column`, `id_column`, `input_kind`: which columns of your file (ids
      default to "row-1", ...; the kind, text or smiles, is guessed when None).
    - `drop_invalid`: drop rows whose SMILES RDKit cannot parse instead of failing.
    - `task_type`: "regression", "classification" (one `label_column`, or a numeric one cut at
      `threshold`; random splits stratified by class; see `w2s_hf.data.labels`) or "preference" (rows
      (prompt, first, second, A/B): `w2s_hf.data.preferences`; or pairs drawn from the scores of
      `pair_from_scores`, `pairs_per_item` each, inside each split: `w2s_hf.data.score_pairs`).
    - `template`, `pair_column`: build the input from a row's columns (`w2s_hf.data.prompts`), or make each
      row a text pair.
    - `cv_folds`, `cv_fold`: cross-fitting: `cv_folds` seeded folds (whole scaffold groups), test is fold
      `cv_fold` (`w2s_hf.data.splits.crossfit_split`; regression only).

    Raises:
        TaskDataError: missing file or column, bad target, empty input, invalid SMILES, duplicate ids,
            or an empty split; the message names the file, column and rows.
        ImportError: a SMILES task needs RDKit (or a built-in needs chemloader) and it is missing.
    """
    _check_arguments(split, seed, weak_fraction, input_kind)
    # every keyword argument, for the steps below (a suite task fixes some of them in place)
    opts = {k: v for k, v in locals().items() if k not in ("name_or_path", "split")}
    special = _special_task(name_or_path, split, seed, opts)
    if special is not None:
        return special
    spec, frame, file, name, data, chosen, suite = _read_rows(name_or_path, opts)
    split = resolve_split(split, spec.input_kind)
    # with the dataset's own splits (a split map, a suite task) the split argument does not apply
    if split == "scaffold" and spec.input_kind != "smiles" and SPLIT_COLUMN not in frame.columns:
        raise TaskDataError(
            f"{file}: a scaffold split needs SMILES input but task {name!r} is text; use --split random or "
            "--split auto (Python: split='random').", path=file
        )
    scaffolds, data = _smiles_rows(data, spec, file, drop_invalid, split == "scaffold")
    require_unique_ids(data.ids, data.rows.tolist(), file, spec.id_column or "(row numbers)")
    where = f"{file} (task {name!r}, seed {seed})"
    positions, classes = _positions(data, frame, chosen, split, seed, scaffolds, file, where, opts)
    task = W2STask(name=name, targets=list(chosen), input_kind=spec.input_kind,
                   splits=_to_dataset_dict(data, positions, chosen), split=split, seed=int(seed),
                   weak_fraction=weak_fraction, source=str(file), task_type=opts["task_type"], classes=classes)
    logger.info("%s", task.describe())
    return task


def _smiles_rows(data: Any, spec: TaskSpec, file: Any, drop_invalid: bool, scaffold: bool) -> tuple[Any, Any]:
    """(scaffolds or None, rows): SMILES checked in one streaming RDKit pass (strings kept, molecules dropped:
    memory flat in rows) and a built-in's repeated molecules merged; text rows pass through."""
    if spec.input_kind != "smiles":
        return None, data
    canon, scaffolds, data = _check_smiles(data, spec.input_column, file, drop_invalid, scaffold)
    keep, data = _merge_duplicates(canon, data, spec, file)
    if scaffolds is not None and keep is not None:
        scaffolds = [scaffolds[i] for i in keep]
    return scaffolds, data


def _special_task(name_or_path: Any, split: str, seed: int, opts: dict[str, Any]) -> W2STask | None:
    """A task of another form than one table of inputs and targets: a suite task of preferences, pairs drawn
    from a scored table, or preference rows; None for the ordinary form (a suite task's fixed columns are
    set in `opts` then)."""
    hub = {"config_name": opts["dataset_config"], "revision": opts["revision"], "data_files": opts["data_files"],
           "split_map": opts["split_map"]}
    weak_fraction, path = opts["weak_fraction"], opts["path"]
    suite = SUITE.get(os.fspath(name_or_path).lower())
    if suite is not None:  # a benchmark-suite task: its form is fixed (w2s_hf.data.suite)
        given = [k for k in ("input_column", "target_columns", "targets", "id_column", "label_column", "template")
                 if opts[k] is not None]
        if given:
            raise ValueError(f"{', '.join(given)} describe your own data; suite task {suite.name!r} has a fixed form "
                             f"({suite.form}). Point path= at a copy in the {suite.hub} schema to use local data.")
        if suite.formatter is None:
            from w2s_hf.data.preferences import load_preference_task

            return load_preference_task(path or f"hf:{suite.hub}", split=split, seed=seed, weak_fraction=weak_fraction,
                                        name=suite.name, **{**hub, "split_map": opts["split_map"] or suite.split_map})
        opts.update(task_type="classification", input_column="text", label_column="label", id_column="id",
                    input_kind="text")
    if opts["pair_from_scores"] is not None or opts["pairs_per_item"] is not None:
        if opts["task_type"] != "preference" or opts["pair_from_scores"] is None:
            raise ValueError(f"pair_from_scores={opts['pair_from_scores']!r} and pairs_per_item="
                             f"{opts['pairs_per_item']!r} make a task_type='preference' task from the scores of one "
                             "target column: give both task_type='preference' and pair_from_scores")
        from w2s_hf.data.score_pairs import load_score_pairs

        # the items are loaded by this very function (their checks, duplicates and split), passed in so that
        # score_pairs needs no import of this module
        keys = ("targets", "input_column", "target_columns", "id_column", "path", "weak_fraction", "drop_invalid",
                "input_kind", "template", "dataset_config", "revision", "data_files", "split_map")
        return load_score_pairs(name_or_path, opts["pair_from_scores"], opts["pairs_per_item"], load_items=load_task,
                                split=split,
                                seed=seed, **{k: opts[k] for k in keys})
    if opts["task_type"] == "preference":
        from w2s_hf.data.preferences import load_preference_task

        extra = [k for k in ("targets", "input_column", "target_columns", "label_column", "threshold", "template",
                             "pair_column") if opts[k] is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)} do not apply to task_type='preference': its rows are (prompt, "
                             "first, second, label A/B), (question, choice, label) or (chosen, rejected); rename "
                             "columns to these")
        return load_preference_task(name_or_path, split=split, seed=seed, weak_fraction=weak_fraction, path=path,
                                    id_column=opts["id_column"], **hub)
    return None


def _read_rows(name_or_path: Any, opts: dict[str, Any]) -> tuple:
    """(spec, frame, file, name, parsed rows, chosen targets, suite task or None): the table read, its inputs
    built (template, text pair) and its targets parsed and checked."""
    hub = {"config_name": opts["dataset_config"], "revision": opts["revision"], "data_files": opts["data_files"],
           "split_map": opts["split_map"]}
    task_type, threshold, path = opts["task_type"], opts["threshold"], opts["path"]
    input_column, id_column, input_kind = opts["input_column"], opts["id_column"], opts["input_kind"]
    # A single name is a common slip for a one-element list.
    targets = [opts["targets"]] if isinstance(opts["targets"], str) else opts["targets"]
    target_columns = [opts["target_columns"]] if isinstance(opts["target_columns"], str) else opts["target_columns"]
    targets, target_columns = _label_arguments(name_or_path, task_type, opts["label_column"], threshold, targets,
                                               target_columns)
    suite = SUITE.get(os.fspath(name_or_path).lower())
    if suite is not None:
        frame, file = suite_frame(suite, None if path is None else os.fspath(path), opts["seed"], **hub)
        spec, name = None, suite.name
    else:
        spec, frame, file, name = read_source(name_or_path, path, input_column, target_columns, id_column, targets,
                                              input_kind, **hub)
    if opts["template"] is not None:
        if input_column is not None:
            raise ValueError(f"template={opts['template']!r} builds the input; drop input_column={input_column!r}")
        frame[TEMPLATE_COLUMN] = render_template(frame, opts["template"], file)
        input_column = TEMPLATE_COLUMN
    if spec is None:
        spec = _custom_spec(name, frame, file, input_column, target_columns, targets, id_column, input_kind)
        if spec is BUILTIN_TASKS["ellipse"] and path is None:
            name = spec.name
    chosen = _choose_targets(spec, targets, file)
    classify = task_type == "classification"
    if classify and len(chosen) != 1:
        raise ValueError(f"task_type='classification' takes one label column; task {name!r} has targets {chosen}: "
                         "pass --label_column (Python: label_column=...)")
    if classify and threshold is None and spec.dedup:
        raise ValueError(f"task {name!r} has a continuous target ({chosen[0]}): pass --threshold T (Python: "
                         "threshold=T) to classify it into <t / >=t")
    data = _parse(frame, spec, chosen, file, as_labels=classify and threshold is None)
    pair_column = opts["pair_column"]
    if pair_column is not None:  # a text pair per row: (input, pair) travel together from here on
        require_columns(frame, [pair_column], file, "pair", "pair_column")
        if spec.input_kind != "text":
            raise TaskDataError(f"{file}: pair_column={pair_column!r} pairs texts, but the inputs are "
                                f"{spec.input_kind}; pass input_kind='text'", path=file)
        data.inputs = list(zip(data.inputs, parse_inputs(frame, pair_column, file, spec.input_kind)))
    return spec, frame, file, name, data, chosen, suite


def _positions(data: Any, frame: Any, chosen: list[str], split: str, seed: int, scaffolds: Any, file: Any,
               where: str, opts: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """The rows of each split (the dataset's own, stratified by class, cross-fitted or seeded) and, for
    classification, the class list (label columns recoded to class indices in place)."""
    classify, threshold, cv_folds, weak_fraction = (opts["task_type"] == "classification", opts["threshold"],
                                                    opts["cv_folds"], opts["weak_fraction"])
    labels = None
    if classify:
        column = data.targets[chosen[0]]
        labels = [str(c) for c in column] if threshold is None else threshold_labels(column, float(threshold))
    if classify and cv_folds:
        raise ValueError("cv_folds applies to regression tasks; classification splits are stratified by class.")
    if SPLIT_COLUMN in frame.columns and cv_folds:
        raise ValueError(f"{file}: cv_folds deals every row into folds, but this dataset maps its own splits "
                         "(split_map): drop one of the two.")
    if SPLIT_COLUMN in frame.columns:  # the dataset's own splits, mapped to ours
        positions = mapped_splits(frame[SPLIT_COLUMN].to_numpy()[data.rows - 1], seed, weak_fraction)
    elif classify and split == "random":
        parts = stratified_random_split(labels, seed)
        positions = {**stratified_weak_split(parts["train"], labels, weak_fraction, seed),
                     "val": parts["val"], "test": parts["test"]}
    else:
        positions = make_splits(len(data.ids), split, seed, weak_fraction, scaffolds, cv_folds, opts["cv_fold"])
    sizes = {k: len(positions[k]) for k in SPLIT_NAMES}
    require_nonempty_splits(sizes, len(data.ids), split, weak_fraction, where)
    classes = None
    if classify:
        classes = check_classes(labels, positions, where)
        index = {c: i for i, c in enumerate(classes)}
        data.targets[chosen[0]] = np.array([index[c] for c in labels], dtype=np.float64)
    return positions, classes


def _check_arguments(split: str, seed: int, weak_fraction: float, input_kind: str | None) -> None:
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {SPLIT_CHOICES}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not isinstance(weak_fraction, (int, float)) or not 0.0 < weak_fraction < 1.0:
        raise ValueError(f"weak_fraction must be strictly between 0 and 1, got {weak_fraction!r}")
    if input_kind is not None and input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS} or None, got {input_kind!r}")


def _label_arguments(name_or_path, task_type, label_column, threshold, targets, target_columns):
    """(targets, target_columns) with the label column of a classification task put in its place."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")
    if task_type == "regression":
        for key, value in (("label_column", label_column), ("threshold", threshold)):
            if value is not None:
                raise ValueError(f"{key}={value!r} applies to task_type='classification' only")
        return targets, target_columns
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not np.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if label_column is None:
        return targets, target_columns
    # The label column is the one target (of a built-in task, an ELLIPSE-format file or your own file).
    for key, given in (("targets", targets), ("target_columns", target_columns)):
        if given not in (None, [label_column]):
            raise ValueError(f"label_column={label_column!r} and {key}={given} disagree; give one of them")
    return [label_column], target_columns


def read_source(name_or_path, path, input_column, target_columns, id_column, targets, input_kind, **hub):
    """(built-in spec or None, table, where, task name) of a built-in task, a file or a dataset."""
    if is_dataset_source(name_or_path):
        frame, where = read_dataset(os.fspath(name_or_path), **hub)
        return None, frame, where, Path(os.fspath(name_or_path).removeprefix(HF_PREFIX).rstrip("/")).name
    given = [k for k, v in hub.items() if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)} apply to a dataset (hf:<path> or a save_to_disk folder), not to "
                         f"{os.fspath(name_or_path)!r}")
    spec, file, name = _resolve(name_or_path, path, input_column, target_columns, id_column, targets, input_kind)
    return spec, read_table(file), file, name


def _resolve(name_or_path, path, input_column, target_columns, id_column, targets, input_kind):
    """(built-in spec or None, file, task name)."""
    key = os.fspath(name_or_path)
    spec = BUILTIN_TASKS.get(key.lower())
    if spec is not None:
        given = {
            "input_column": input_column,
            "target_columns": target_columns,
            "id_column": id_column,
            "input_kind": input_kind,
        }
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise ValueError(
                f"{', '.join(extra)} describe your own file; built-in task {spec.name!r} has fixed columns. "
                f"Use --targets (Python: targets=) to choose among {list(spec.targets)}, or give your file a "
                "different task name."
            )
        return spec, builtin_file(spec, path), spec.name
    if path is not None:
        return None, Path(path), key
    file = Path(key)
    if not file.exists():
        raise TaskDataError(
            f"no built-in task named {key!r} (built-in: {', '.join(BUILTIN_TASKS)}) and no file at {file.resolve()}",
            path=file,
        )
    require_file(file, "task file")
    return None, file, file.stem


def _custom_spec(name, frame, file, input_column, target_columns, targets, id_column, input_kind) -> TaskSpec:
    columns = set(frame.columns)
    if input_column is None and target_columns is None and {"full_text", *ELLIPSE_RUBRICS} <= columns:
        logger.info("%s has the ELLIPSE header; loading it as task 'ellipse'", file)
        return BUILTIN_TASKS["ellipse"]
    target_cols = list(target_columns) if target_columns is not None else (list(targets) if targets else None)
    if input_column is None or not target_cols:
        raise TaskDataError(
            f"{file}: say which columns to use: --input_column and --target_columns "
            "(Python: input_column=..., target_columns=[...]). "
            f"Available columns: {', '.join(repr(c) for c in frame.columns)}",
            path=file,
        )
    require_columns(frame, [input_column], file, "input", "input_column")
    require_columns(frame, target_cols, file, "target", "target_columns")
    if id_column is not None:
        require_columns(frame, [id_column], file, "id", "id_column")
    clash = [t for t in target_cols if t in ("id", "input")]
    if clash:
        raise TaskDataError(
            f"{file}: target column(s) {clash} clash with the output columns 'id'/'input'; rename them.", path=file
        )
    if input_kind is None:
        sample = frame[input_column].astype(str).head(1000)
        no_space = bool(len(sample)) and not sample.str.strip().str.contains(r"\s").any()
        input_kind = "smiles" if "smiles" in input_column.lower() or no_space else "text"
        logger.info("%s: input column %r taken as %s (override with --input_kind, Python: input_kind=)", file,
                    input_column, input_kind)
    return TaskSpec(
        name=name,
        input_kind=input_kind,
        input_column=input_column,
        targets={t: t for t in target_cols},
        id_column=id_column,
        description=f"user file {file}",
    )


def _choose_targets(spec: TaskSpec, targets: list[str] | None, file: Path) -> list[str]:
    if targets is None:
        return list(spec.targets)
    unknown = [t for t in targets if t not in spec.targets]
    if unknown or not targets:
        raise TaskDataError(
            f"{file}: task {spec.name!r} has no target(s) {unknown}; choose from {list(spec.targets)}",
            path=file,
        )
    return list(dict.fromkeys(targets))


def _parse(frame: pd.DataFrame, spec: TaskSpec, chosen: list[str], file: Path, as_labels: bool = False) -> _Rows:
    """Ids, inputs and float targets (class names if `as_labels`), each column checked, in the order a
    user would fix them."""
    needed = [spec.input_column, *(spec.targets[t] for t in chosen)]
    require_columns(frame, needed[:1], file, "input", "input_column")
    require_columns(frame, needed[1:], file, "target", "target_columns")
    if spec.id_column is not None:
        require_columns(frame, [spec.id_column], file, "id", "id_column")
        ids = parse_ids(frame, spec.id_column, file)
    else:
        ids = [f"row-{i + 1}" for i in range(len(frame))]
    inputs = parse_inputs(frame, spec.input_column, file, spec.input_kind)
    parse = parse_labels if as_labels else parse_targets
    values = {t: np.asarray(parse(frame, spec.targets[t], file)) for t in chosen}
    return _Rows(ids=ids, inputs=inputs, targets=values, rows=np.arange(1, len(frame) + 1))


def _check_smiles(data: _Rows, column: str, file: Path, drop_invalid: bool, scaffolds: bool):
    """(canonical SMILES, scaffolds or None, rows) of the parsable rows; unparsable ones fail or are dropped."""
    bad, canon, scaffold = chem.smiles_keys(data.inputs, scaffolds=scaffolds, stop_at_bad=not drop_invalid)
    if not bad:
        return canon, scaffold, data
    where = format_rows(data.rows[bad].tolist(), [data.inputs[i] for i in bad])
    if not drop_invalid:
        checked = len(canon)
        unchecked = (f" (the check stops at the first bad rows: rows {int(data.rows[checked - 1]) + 1}.."
                     f"{int(data.rows[-1])} are not checked yet)") if checked < len(data.ids) else ""
        raise TaskDataError(
            f"{file}: column {column!r} has SMILES that RDKit cannot parse in {where}{unchecked}. Fix them, "
            "or drop these rows with --drop_invalid (Python: drop_invalid=True).",
            path=file,
            column=column,
            rows=data.rows[bad].tolist(),
        )
    logger.warning("%s: dropped %d rows with invalid SMILES in column %r (%s)", file, len(bad), column, where)
    keep = np.setdiff1d(np.arange(len(canon)), bad)
    return ([canon[i] for i in keep], None if scaffold is None else [scaffold[i] for i in keep], data.take(keep))


def _merge_duplicates(canon: list[str], data: _Rows, spec: TaskSpec, file: Path):
    """Built-in sets: one row per canonical SMILES (first id/SMILES kept, targets averaged).

    Returns (kept positions or None when all are kept, rows). A user's file is left as it is (the user
    decides), but repeated molecules are reported because they can sit on both sides of a random split.
    """
    first: dict[str, int] = {}
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(canon):
        groups.setdefault(first.setdefault(c, i), []).append(i)
    repeated = [g for g in groups.values() if len(g) > 1]
    if not repeated:
        return None, data
    if not spec.dedup:
        rows = [int(data.rows[g[1]]) for g in repeated]
        logger.warning(
            "%s: %d molecules appear more than once (same canonical SMILES), repeats in %s",
            file, len(repeated), format_rows(rows),
        )
        return None, data
    keep = np.array(sorted(groups), dtype=np.int64)
    merged = data.take(keep)
    conflicts = 0
    for j, leader in enumerate(keep):
        members = groups[int(leader)]
        if len(members) > 1:
            stacked = np.stack([data.targets[t][members] for t in merged.targets])
            conflicts += int(np.ptp(stacked, axis=1).max() > 0)
            for t in merged.targets:
                merged.targets[t][j] = data.targets[t][members].mean()
    logger.info(
        "%s: merged %d repeated molecules (%d with different targets, averaged): %d rows -> %d",
        spec.name, len(repeated), conflicts, len(data.ids), len(keep),
    )
    return keep, merged


def _to_dataset_dict(data: _Rows, positions: dict[str, np.ndarray], targets: list[str]):
    import datasets

    paired = bool(data.inputs) and isinstance(data.inputs[0], tuple)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "input": datasets.Value("string"),
            **({PAIR_COLUMN: datasets.Value("string")} if paired else {}),
            **{t: datasets.Value("float64") for t in targets},
        }
    )
    out = {}
    for name in SPLIT_NAMES:
        idx = positions[name]
        columns = {"id": [data.ids[i] for i in idx]}
        if paired:
            columns.update({"input": [data.inputs[i][0] for i in idx], PAIR_COLUMN: [data.inputs[i][1] for i in idx]})
        else:
            columns["input"] = [data.inputs[i] for i in idx]
        columns.update({t: data.targets[t][idx].tolist() for t in targets})
        out[name] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(out)
