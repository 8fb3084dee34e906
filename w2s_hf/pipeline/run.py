"""The weak-to-strong run as named stages: extract -> train_weak -> label -> train_w2s -> train_ceiling -> evaluate.

Each stage writes its artifacts into the run folder (`RunFolder`) and is skipped on a rerun when they
are there (unless `overwrite`), so any stage can be redone alone (`stages=["train_w2s", "evaluate"]`).
Who trains and selects on which labels is the table `w2s_hf.protocol.PROTOCOL`; the training stages
only read it.

More (design notes): docs/ARCHITECTURE.md, "Module notes".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..data.kinds import TASK_KINDS
from ..data.rows import EVAL_SPLITS, SPLIT_NAMES, TaskRows
from ..data.splits import STREAM_W2S_SIZE, STREAM_WEAK_BUDGET, nested_subset
from ..divergences import get_loss
from ..errors import ConfigError
from .protocol import FIT_SPLITS, GOLD, HEADS, PROTOCOL, SELECTION_SPLITS, STAGES, HeadSpec, active_heads, teacher_of
from .run_folder import RunFolder

if TYPE_CHECKING:  # the config describes a run; the pipeline only reads it (config imports the domain)
    from ..config import W2SConfig

logger = logging.getLogger("w2s_hf.pipeline")

ROLES = ("weak", "strong")
# Keys that steer the run but do not change its numbers: a rerun may change them freely.
_CONTROL_KEYS = {"output_dir", "cache_dir", "stages", "overwrite", "report_to", "plot", "no_cache", "weak_name",
                 "strong_name"}
# Keys added after run folders existed: at their default they change nothing, so they stay out of the
# identity and older run folders are still recognised as the same run.
_INERT_AT_DEFAULT = {"weak_scale": "none", "strong_scale": "none", "weak_pca": None, "strong_pca": None,
                     "weak_parts": None, "strong_parts": None, "weak_ridge": None, "w2s_ridge": None,
                     "ceiling_ridge": None, "weak_clip": False, "weak_budget": None, "w2s_size": None,
                     "cv_folds": None, "cv_fold": 0,
                     "weak_chat_template": False, "strong_chat_template": False, "weak_device_map": None,
                     "strong_device_map": None, "dataset_config": None, "dataset_revision": None, "data_files": None,
                     "split_map": None, "template": None, "pair_column": None,
                     "pair_from_scores": None, "pairs_per_item": None}
THEOREM_NOTE = (
    "gain >= misfit (Charikar, Pabbaraju & Shiragur 2024) is guaranteed only for students whose class is convex: "
    "a linear head on a frozen representation (covered_by_theorem: true). A LoRA student is not in a convex class: "
    "its gain, misfit and residual are measured here, not bounded by the theorem. Its pgr uses the linear ceiling."
)


class W2SPipeline:
    """One weak-to-strong run. `run()` executes the selected stages and returns the results dict."""

    def __init__(self, config: W2SConfig, accelerator=None, hooks: list | None = None, task=None,
                 print_table: bool = True):
        from accelerate import Accelerator

        self.config = config
        self.accelerator = accelerator or Accelerator(cpu=not _has_cuda())
        self.folder = RunFolder(config.run.output_dir)
        self.out = self.folder.root
        self.extra_hooks = list(hooks or [])
        self.print_table = print_table  # the decomposition table on the console (a sweep prints its own summary)
        self.timings: dict[str, float] = {}
        self._features: dict[str, np.ndarray] = {}
        self._heads: dict[str, Any] = {}
        self._weak_labels: dict[str, np.ndarray] | None = None  # set only inside fit_student_on
        # Everything that can fail on bad input is checked here, before any forward pass.
        self.task = task if task is not None else load_task_of(config)
        self.data = TaskRows.of(self.task)
        self.targets, self.gold = self.data.targets, self.data.gold
        # The task kind owns the prediction columns, the training targets, the divergence and the head fitters.
        self.classes = self.data.classes
        self.kind = TASK_KINDS[self.task.task_type]
        self.columns = self.kind.columns(self.targets, self.classes)
        # the students' loss names the divergence the decomposition measures (gain >= misfit is a statement about
        # the divergence the student was fitted under); every built-in loss of a kind names the kind's divergence
        self.student_loss = (config.lora.lora_loss if self.kind.name == "regression"
                             else getattr(config.head, self.kind.student_loss_key))
        self.divergence = get_loss(self.student_loss, self.kind.name).divergence
        _check_input_kinds(config, self.task)
        self._encoders = {role: config.model.representation(role).build() for role in ROLES}
        # The identity: every key that changes the numbers, the task's data (ids, inputs, targets) and
        # each model's content (Hub commit, or hash of its files), so an edited data file or weights
        # rewritten at the same path are a changed run, never a silent reuse.
        flat = config.to_dict()
        # the split the task resolved ("auto" -> scaffold / random): a run keeps its identity whichever spelling
        flat["split"] = self.task.split
        if flat.get("input_kind") is None:  # unset: the guessed kind; runs from before the flag keep their identity
            flat.pop("input_kind", None)
        self.active, self.teacher = active_heads(flat), teacher_of(flat)
        _check_pairwise(self.kind, self.active)
        _check_weak_clip(config, self.kind, self.teacher)
        lora_student = any(s.is_student and s.kind == "lora" for s in self.active)
        if self.kind.name == "regression" and self.student_loss != self.kind.gold_loss and not lora_student:
            raise ConfigError(f"lora_loss={self.student_loss!r} trains LoRA students only: the linear regression "
                              f"student is fitted on {self.kind.gold_loss}; set student=lora or lora_loss="
                              f"{self.kind.gold_loss}.")
        # LoRA keys change no number of a run without a LoRA head: such runs keep their old identity
        lora_keys = {f.name for f in dataclasses.fields(config.lora)}
        inert = set() if any(s.kind == "lora" for s in self.active) else lora_keys
        # the preference kind's student loss changes nothing of another kind's run
        inert = inert | ({"preference_loss"} if self.kind.student_loss_key != "preference_loss" else set())
        self.identity = {k: v for k, v in flat.items() if k not in _CONTROL_KEYS | inert
                         and not (k in _INERT_AT_DEFAULT and v == _INERT_AT_DEFAULT[k])}
        self.identity["task_data"] = self.data.fingerprint()
        self.identity.update({f"{role}_model_content": self._encoders[role].content_key() for role in ROLES})
        encoded = json.dumps(self.identity, sort_keys=True, default=str).encode()
        self.identity_hash = hashlib.sha256(encoded).hexdigest()
        self._redone = False  # once a stage is redone, every later stage is redone too
        self._reused: dict[str, bool] = {}  # per stage of this invocation: were its artifacts reused?
        self.folder.check_config(self.identity, config.run.overwrite)
        _warn_degenerate(config, self.data)
        # the rows of each training split that its heads train on (None: all): graded weak teachers, scaling over N
        self._subsets = {split: _subset_rows(config.task, split, len(self.data.ids[split])) for split in _SUBSETS}
        for spec in self.active:
            if spec.kind == "lora":  # target modules resolved on the meta device: no weights loaded
                from ..heads.lora import check_lora_targets

                check_lora_targets(self._encoders[spec.features], config.lora.lora_target_modules)

    # ------------------------------------------------------------------ plumbing
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def features(self, role: str) -> np.ndarray:
        """Weak or strong features of every row, in the canonical order; a cache hit after `extract`."""
        if role not in self._features:
            run, encoder = self.config.run, self._encoders[role]
            # A featurizer that scales its outputs (rdkit:descriptors) fits the scaler on the rows some
            # head trains on (weak_train + w2s_train), never on val or test.
            fit = {"fit_rows": self.train_rows()} if getattr(encoder, "fits_on_rows", False) else {}
            common = {"cache_dir": None if run.no_cache else os.path.join(run.resolved_cache_dir(), "features"),
                      "accelerator": self.accelerator, "no_cache": run.no_cache, "show_progress": self.is_main}
            if self.kind.inputs == "pair_difference":  # preferences: each distinct side extracted once
                from ..features.pairs import pair_difference

                sides = self.data.sides
                fit = {"fit_pairs": fit["fit_rows"]} if fit else {}  # a scaler fits on training pairs' sides
                self._features[role] = pair_difference(encoder, sides["prompt"], sides["first"], sides["second"],
                                                       **common, **fit)
            else:
                self._features[role] = encoder.encode(self.data.canonical_texts, **common, **fit)
        return self._features[role]

    def train_rows(self) -> np.ndarray:
        """Canonical positions of every row some head of the protocol trains on (weak_train, w2s_train)."""
        return self.data.positions({spec.train_split for spec in PROTOCOL})

    def rows(self, role: str, split: str) -> np.ndarray:
        return np.asarray(self.features(role)[self.data.index[split]])

    def labels(self, kind: str, split: str) -> np.ndarray:
        """Gold labels, or the teacher's predictions ("weak" labels), of `split`."""
        if kind != GOLD and self._weak_labels is not None:
            return self._weak_labels[split]
        return self.gold[split] if kind == GOLD else self.load_predictions(self.teacher.name)[split]

    def texts(self, split: str) -> list[str]:
        return [self.data.canonical_texts[i] for i in self.data.index[split]]

    def training_targets(self, kind: str, split: str) -> np.ndarray:
        """What a head trains or selects on: the labels of `split` as its task kind consumes them (values,
        or class distributions: gold one-hot, a teacher's probabilities)."""
        return self.kind.training_targets(kind, self.labels(kind, split), self.classes)

    def _stage_artifacts(self, stage: str) -> list:
        if stage in ("extract", "evaluate"):
            return [self.folder.features if stage == "extract" else self.folder.results]
        heads = [self._head_path(s) for s in self.active if s.stage == stage]
        return heads + [self.folder.predictions(s.name) for s in self.active if s.predict_stage == stage]

    def _applies(self, stage: str) -> bool:
        """extract, evaluate and the stages of this run's heads (not train_w2s_lora without --student lora)."""
        return stage in ("extract", "evaluate") or any(stage in (s.stage, s.predict_stage) for s in self.active)

    def _is_current(self, stage: str) -> bool:
        """The stage's artifacts exist, are readable and were made under this run's identity."""
        return (all(p.exists() for p in self._stage_artifacts(stage))
                and self.folder.stage_is_current(stage, self.identity_hash)
                and (stage != "evaluate" or self.folder.read_results() is not None))

    def _fitter(self, spec: HeadSpec):
        """The registry's fitter of a row: (task kind, the config's solver, or "lora" for a LoRA row)."""
        from ..heads.registry import get_fitter

        return get_fitter(self.kind.name, "lora" if spec.kind == "lora" else self.config.head.solver)

    def _head_path(self, spec: HeadSpec):
        if self._fitter(spec).artifact == "adapter":
            return self.folder.adapter(spec.name) / "adapter_config.json"
        return self.folder.head(spec.name)

    def _done(self, stage: str) -> bool:
        """A stage is skipped only if its artifacts exist and were made under this run's identity."""
        from ..distributed import Processes

        done = not self.config.run.overwrite and not self._redone and self._is_current(stage)
        # one decision for all processes: a slow one must not see files the main one has just rewritten
        done = all(Processes.from_accelerator(self.accelerator).gather([done]))
        self._redone = self._redone or not done
        self._reused[stage] = done
        return done

    def _plan(self) -> list[str]:
        """The selected stages, and before them every earlier stage they would read that was not made
        under this run's identity (another config, data or model; missing; unreadable): those are
        redone first, so no stage ever runs on a stale upstream."""
        selected = self.config.run.selected_stages()
        last = max(STAGES.index(name) for name in selected)
        stale = [name for name in STAGES[:last] if name not in selected and self._applies(name)
                 and not self._is_current(name)]
        if stale and self.is_main:
            logger.warning("%s: stage(s) %s were made under another config, data or model, or are missing: "
                           "redoing them before %s.", self.out, ", ".join(stale), ", ".join(selected))
        return [name for name in STAGES if (name in selected or name in stale) and self._applies(name)]

    # ------------------------------------------------------------------ stages
    def run(self) -> dict[str, Any]:
        from ..distributed import Processes

        procs = Processes.from_accelerator(self.accelerator)
        with ExitStack() as held:
            refusal = None
            if self.is_main:
                try:
                    held.enter_context(self.folder.lock())
                    # another run may have claimed the folder since __init__ checked it
                    self.folder.check_config(self.identity, self.config.run.overwrite)
                    self.folder.write_json(self.folder.config, self.identity)
                except ConfigError as err:
                    refusal = str(err)
            refusals = [r for r in procs.gather([refusal]) if r]
            if refusals:
                raise ConfigError(refusals[0])
            for name in self._plan():
                start = time.perf_counter()
                self._stage(name)
                self.accelerator.wait_for_everyone()
                if self._reused.get(name):
                    continue  # its stamp keeps the seconds and processes of the run that made it
                self.timings[name] = round(time.perf_counter() - start, 3)
                if self.is_main:
                    self.folder.stamp(name, self.identity_hash, self.timings[name], procs.world)
                logger.info("stage %s: %.2f s", name, self.timings[name])
            self.accelerator.wait_for_everyone()
        if self.is_main:
            done = [f"{n}: reused" if self._reused.get(n) else f"{n}: {self.timings.get(n, 0):.2f} s"
                    for n in STAGES if n in self._reused or n in self.timings]
            logger.info("%s on %d process%s; %s", self.out, procs.world, "es" * (procs.world > 1), ", ".join(done))
        return self.folder.read_results() or {}

    def _stage(self, name: str) -> None:
        if name == "extract":
            return self.extract()
        if name == "evaluate":
            return self.evaluate()
        if not any(name in (s.stage, s.predict_stage) for s in self.active):
            return  # a stage of rows this run does not have (train_w2s_lora without --student lora)
        if self._done(name):
            return
        for spec in self.active:
            if spec.stage == name:
                self.fit_head(spec)
            if spec.predict_stage == name:
                self._predict_and_save(spec)

    def extract(self) -> None:
        if self._done("extract"):
            return
        info = {}
        for role in ROLES:
            feats = self.features(role)
            info[role] = {"fingerprint": self._encoders[role].fingerprint(self.data.canonical_texts),
                          "n": int(feats.shape[0]), "dim": int(feats.shape[1])}
        if self.is_main:
            self.folder.write_json(self.folder.features, info)

    def evaluate(self) -> None:
        from ..hooks.evaluation import JsonResultsHook, PlotHook, TableHook, TrackerHook, evaluate_point

        folder = self.folder
        if self._done("evaluate"):
            if self.is_main:
                if self.print_table:
                    TableHook().on_end(folder.read_results())
            return
        preds = {s.name: self.load_predictions(s.name) for s in self.active if folder.predictions(s.name).exists()}
        students = [s for s in self.active if s.is_student]
        for needed in (self.teacher.name, *(s.name for s in students)):
            if needed not in preds:
                raise RuntimeError(
                    f"evaluate needs predictions/{needed}.csv in {self.out}: run the earlier stages first."
                )
        tracked = [TrackerHook(self.accelerator), *self.extra_hooks]
        hooks = [TrackerHook(self.accelerator), JsonResultsHook(folder.results),
                 *([TableHook()] if self.print_table else []), *self.extra_hooks]
        if self.config.run.plot:
            hooks.append(PlotHook(folder.plot))
        run = self.config.run
        # every student against the same weak labels, gold labels and ceiling; the first linear one is
        # the theorem's student (the top-level "splits", the plot), any other is logged under its name
        main = next(s for s in students if s.covered_by_theorem)
        blocks: dict[str, Any] = {}
        for spec in students:
            splits = {}
            for split in EVAL_SPLITS:
                dec = evaluate_point(
                    0,
                    split,
                    self.gold[split],
                    preds[self.teacher.name][split],
                    preds[spec.name][split],
                    preds["ceiling"][split] if "ceiling" in preds else None,
                    hooks=hooks if spec is main else tracked,
                    state={"head": spec.name} if spec is main else {"head": spec.name, "prefix": spec.name},
                    accelerator=self.accelerator,
                    target_names=self.targets,
                    n_boot=run.n_boot,
                    seed=run.seed,
                    divergence=self.divergence,
                )
                splits[split] = {**dec.as_dict(), "used_for_selection": split in SELECTION_SPLITS,
                                 "in_sample": split in FIT_SPLITS}
            blocks[spec.name] = {"kind": spec.kind, "init_from": spec.init_from,
                                 "covered_by_theorem": spec.covered_by_theorem, "splits": splits}
        splits = blocks[main.name]["splits"]
        features = folder.read_json(folder.features, {})
        results = {
            # the split as resolved for this task (--split auto: scaffold for SMILES, random for text)
            "config": {**self.config.to_dict(), "split": self.task.split},
            "task": self._task_record(),
            "fingerprints": {r: features.get(r, {}).get("fingerprint") for r in ROLES},
            "heads": {n: folder.read_json(folder.head_record(n)) for n in preds if folder.head_record(n).exists()},
            "splits": splits,
            "teacher": self.teacher.name,
            "students": blocks,
            "theorem": THEOREM_NOTE,
            "predictors": self._predictors(preds, splits),
            # stages skipped or not selected in this invocation keep the seconds they took when run
            "timings": {**{k: v["seconds"] for k, v in folder.read_stamps().items() if isinstance(v, dict)
                           and "seconds" in v}, **self.timings},
            "processes": self.accelerator.num_processes,
            "stages": self._stage_records(),
        }
        if self.kind.theory:
            results["theory"] = self.kind.theory
        if self.is_main:
            for hook in hooks:
                hook.on_end(results)
        self.accelerator.wait_for_everyone()

    def _task_record(self) -> dict[str, Any]:
        """results.json -> task: what was run on, and the rows the heads of each training split trained on."""
        return {
            "name": self.task.name,
            "targets": self.targets,
            "input_kind": self.task.input_kind,
            "sizes": self.data.sizes(),
            # weak_budget / w2s_size rows, else every row of the split
            "trained_rows": {split: len(self.train_subset(split)) for split in _SUBSETS},
            **({} if self.kind.name == "regression" else {"task_type": self.kind.name}),
            **({} if not self.kind.has_classes else {"classes": self.classes}),
        }

    def _predictors(self, preds: dict[str, dict[str, np.ndarray]], splits: dict[str, Any]) -> dict[str, Any]:
        """The gain's predictors (`w2s_hf.decomposition.predictors`) from the w2s_train features and the
        gathered predictions: every process holds every row, so each computes the same block."""
        from ..decomposition.predictors import predictor_block

        start, teacher = time.perf_counter(), preds[self.teacher.name]
        rows = self.train_subset("w2s_train")  # the rows the student trained on (all, or a w2s_size of them)
        at = self.data.index["w2s_train"][rows]  # their canonical positions: one copy of the features, not two
        weak, strong = (np.asarray(self.features(role)[at]) for role in ROLES)
        block = predictor_block(
            weak_features=weak, strong_features=strong,
            weak_labels=teacher["w2s_train"][rows], weak_pred=teacher, ceiling_pred=preds.get("ceiling"),
            gold=self.gold,
            misfit={t: v["misfit"] for t, v in splits["test"]["per_target"].items()}, targets=self.targets,
            classification=self.kind.has_classes, eval_split="test", gold_split="val")
        self.timings["predictors"] = round(time.perf_counter() - start, 4)
        return block

    def _stage_records(self) -> dict[str, dict[str, Any]]:
        """Per stage of this run: reused from an earlier invocation or made now, and on how many processes."""
        stamps = self.folder.read_stamps()
        records = {}
        for name in (n for n in STAGES if self._applies(n)):
            made_now = name == "evaluate" or self._reused.get(name) is False
            stamp = stamps.get(name) if isinstance(stamps.get(name), dict) else {}
            records[name] = {"reused": not made_now,
                             "processes": self.accelerator.num_processes if made_now else stamp.get("processes")}
        return records

    # ------------------------------------------------------------------ heads and predictions
    def fit_head(self, spec: HeadSpec | str) -> Any:
        """Fit one head of the protocol: the row says which features, rows and labels; the task kind and
        the solver pick the fitter (`w2s_hf.heads.registry`)."""
        spec = HEADS[spec] if isinstance(spec, str) else spec
        solver = "lora" if spec.kind == "lora" else self.config.head.solver
        fitter, request = self._fitter(spec), self._fit_request(spec)
        head, fitted = fitter.load_fit()(request)
        record = {"solver": solver, "kind": spec.kind, "features": spec.features, "train_split": spec.train_split,
                  "selected_on": spec.selected_on, "init_from": spec.init_from, **fitted}
        if self._clipped(spec.name):
            head, record["clip"] = self._clip_head(spec, head)
        if spec.kind != "lora":
            del record["kind"], record["init_from"]
        if self.kind.divergence == "squared" and request.X is not None:
            X_val, y_val = request.X_val_all, request.y_val_all
            record["train_val_mse"] = float(np.mean((head.predict(X_val).reshape(y_val.shape) - y_val) ** 2))
        if self.is_main:
            if fitter.artifact == "adapter":
                head.save(self.folder.adapter(spec.name), {"head": spec.name})
            else:
                head.save(self.folder.head(spec.name))
            self.folder.write_json(self.folder.head_record(spec.name), record)
        self.accelerator.wait_for_everyone()
        self._heads[spec.name] = head
        return head

    def _clipped(self, name: str) -> bool:
        return name == "weak" and self.config.head.weak_clip

    def _clip_head(self, spec: HeadSpec, head: Any) -> tuple[Any, dict[str, Any]]:
        """`weak_clip`: the teacher clipped to the range of the gold labels of the rows it was fitted on."""
        from ..heads.bounded import BoundedHead, label_range

        y = self._head_targets(spec)
        bounds = label_range(y)
        bounded = BoundedHead.from_record(head, bounds)
        # how much the clip moves, on the rows the student will learn from
        moved = bounded.clipped_share(self.rows(spec.features, "w2s_train"))
        return bounded, {**bounds, "from": f"gold labels of the {len(y)} {spec.train_split} rows it was fitted on",
                         "clipped_share_w2s_train": moved}

    def fit_student_on(self, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The protocol's linear student (row `w2s`) fitted as in the run, on other weak labels ({split: (n, k)}
        for w2s_train and val, e.g. a mixture of several teachers' predictions): its predictions on every
        split, gathered. Nothing is written to the run folder and no evaluation hook sees it."""
        spec = HEADS["w2s"]
        self._weak_labels = labels
        try:
            request = dataclasses.replace(self._fit_request(spec), on_eval=None)
        finally:
            self._weak_labels = None
        head, _ = self._fitter(spec).load_fit()(request)
        return {split: self._gathered_predictions(head, spec.features, split) for split in SPLIT_NAMES}

    def _fit_request(self, spec: HeadSpec):
        """A `FitRequest` for one row: this process's rows (a strided shard) of its features and targets."""
        from ..heads.fitters import FitRequest

        acc, cfg = self.accelerator, self.config.head
        subset = self._train_subset(spec)
        y_train = self._head_targets(spec)
        y_val = self.training_targets(spec.select_labels, spec.select_split)
        # heads on gold labels train on the kind's gold loss; students on the configured student loss
        loss = self.student_loss if spec.is_student else self.kind.gold_loss
        common = {"accelerator": acc, "head": cfg, "seed": self.config.run.seed, "loss": loss,
                  "ridge": cfg.ridge_for(spec.name, spec.is_student),
                  "k": cfg.k_heads if spec.mixture else 1, "on_eval": self._on_eval(spec)}
        if spec.kind == "lora":
            eval_splits = EVAL_SPLITS if spec.is_student else (spec.select_split,)
            return FitRequest(
                y=y_train, y_val=y_val, lora=self.config.lora, init_head=self._head(spec.init_from),
                # a fresh encoder: the student's model is trained in place, the cached features stay frozen
                encoder=self.config.model.representation(spec.features).build(),
                texts={split: self.texts(split) for split in eval_splits} | {spec.train_split: [
                    self.texts(spec.train_split)[i] for i in subset]},
                train_split=spec.train_split, select_split=spec.select_split, eval_splits=eval_splits, **common)
        X, X_val = self.rows(spec.features, spec.train_split), self.rows(spec.features, spec.select_split)
        X = X[subset]
        shard = slice(acc.process_index, None, acc.num_processes)
        return FitRequest(y=y_train[shard], y_val=y_val[shard], X=X[shard], X_val=X_val[shard], X_val_all=X_val,
                          y_val_all=y_val, **common)

    def train_subset(self, split: str) -> np.ndarray:
        """Positions within a training split of the rows its heads train on: all of them, a `weak_budget` of
        weak_train (graded weak teachers) or a `w2s_size` of w2s_train (scaling over N)."""
        found = self._subsets.get(split)
        return np.arange(len(self.data.ids[split])) if found is None else found

    def _train_subset(self, spec: HeadSpec) -> np.ndarray:
        return self.train_subset(spec.train_split)

    def _head_targets(self, spec: HeadSpec) -> np.ndarray:
        """The training targets of the rows a head is fitted on (all processes' rows)."""
        return self.training_targets(spec.train_labels, spec.train_split)[self._train_subset(spec)]

    def _on_eval(self, spec: HeadSpec) -> Callable[[int, Any], None]:
        """adamw and LoRA evaluation points (every `eval_every` steps, on every process).

        The callback takes (step, head): a linear head, or a LoRA student's gathered predictions
        {split: (n, k)}.

        A student: the full decomposition on every evaluation split, from its current predictions
        gathered per example, goes through the hooks (trackers under `train_<name>/...` and any hook
        passed to the pipeline). Any other head: its error on the labels it selects on goes to the
        trackers as `<name>/val_error`.
        """
        from ..decomposition.core import DIVERGENCES
        from ..hooks.evaluation import TrackerHook, evaluate_point

        acc = self.accelerator
        if not spec.is_student:
            y_val = self.labels(spec.select_labels, spec.select_split)
            div = DIVERGENCES[self.divergence]

            def log_val_error(step: int, head) -> None:
                if self.is_main:
                    pred = (head[spec.select_split] if isinstance(head, dict) else
                            head.predict(self.rows(spec.features, spec.select_split))).reshape(len(y_val), -1)
                    error = float(np.mean(div.loss(pred, y_val)))
                    acc.log({f"{spec.name}/{spec.select_split}_error": error}, step=step)

            return log_val_error
        teacher = self.load_predictions(self.teacher.name)
        hooks = [TrackerHook(acc), *self.extra_hooks]
        state = {"head": spec.name, "stage": spec.stage, "prefix": spec.stage}

        def decompose_now(step: int, head) -> None:
            for split in EVAL_SPLITS:
                evaluate_point(
                    step,
                    split,
                    self.gold[split],
                    teacher[split],
                    head[split] if isinstance(head, dict) else self._gathered_predictions(head, spec.features, split),
                    hooks=hooks,
                    state=state,
                    accelerator=acc,
                    target_names=self.targets,
                    n_boot=0,
                    divergence=self.divergence,
                )

        return decompose_now

    def _head(self, name: str):
        if name in self._heads:
            return self._heads[name]
        spec, fitter = HEADS[name], self._fitter(HEADS[name])
        if fitter.artifact == "adapter":  # a LoRA student reloads onto a fresh encoder
            encoder = self.config.model.representation(spec.features).build()
            self._heads[name] = fitter.load_head_class().load(self.folder.adapter(name), encoder, self.accelerator)
            return self._heads[name]
        head = fitter.load_head_class().load(self.folder.head(name))
        if self._clipped(name):  # the same function as when it was fitted: the bounds live in its record
            from ..heads.bounded import BoundedHead

            clip = (self.folder.read_json(self.folder.head_record(name)) or {}).get("clip")
            if clip is None:
                raise RuntimeError(f"{self.folder.head_record(name)} has no clip bounds although weak_clip is set: "
                                   "rerun with --overwrite")
            head = BoundedHead.from_record(head, clip)
        return head

    def _gathered_predictions(self, head, role: str, split: str) -> np.ndarray:
        """(n, k) predictions of `head` on `split`, rows in the task's order: each process predicts its
        own rows, then they are gathered per example (no padded duplicates, no per-rank averages)."""
        from ..distributed import gather_predictions

        acc = self.accelerator
        if hasattr(head, "predict_texts"):  # a finetuned student reads the texts, not the cached features
            return head.predict_texts(self.texts(split))
        X = self.rows(role, split)
        local = np.arange(acc.process_index, len(X), acc.num_processes)
        pos, pred = gather_predictions(acc, local, head.predict(X[local]).reshape(len(local), -1))
        pred = np.asarray(pred)[np.argsort(np.asarray(pos))]
        if len(pred) != len(X):
            raise RuntimeError(f"gathered {len(pred)} predictions for {len(X)} rows of {split}")
        return pred

    def _predict_and_save(self, spec: HeadSpec) -> None:
        """Predict every split (gathered across processes) and write predictions/<name>.csv."""
        head, ids, splits, preds = self._head(spec.name), [], [], []
        for split in SPLIT_NAMES:
            preds.append(self._gathered_predictions(head, spec.features, split))
            ids += self.data.ids[split]
            splits += [split] * len(self.data.ids[split])
        if self.is_main:
            self.folder.write_predictions(spec.name, ids, splits, np.concatenate(preds), self.columns)
        self.accelerator.wait_for_everyone()

    def load_predictions(self, name: str) -> dict[str, np.ndarray]:
        """{split: (n, k) predictions} from predictions/<name>.csv, rows in the task's order."""
        return self.folder.read_predictions(name, self.data.ids, self.columns)


# ---------------------------------------------------------------------- helpers
assert set(STAGES) == {"extract", "evaluate"} | {s.stage for s in PROTOCOL} | {s.predict_stage for s in PROTOCOL}


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_task_of(config: W2SConfig):
    from ..data import load_task

    return load_task(config.task.task, **config.task.load_kwargs())


def _check_input_kinds(config: W2SConfig, task) -> None:
    for role in ROLES:
        name = getattr(config.model, f"{role}_model")
        if name.lower().startswith("rdkit:") and task.input_kind != "smiles":
            raise ConfigError(
                f"{role}_model={name!r} featurizes SMILES, but task {task.name!r} has "
                f"{task.input_kind} inputs; use a language model for it."
            )


def _check_weak_clip(config: W2SConfig, kind, teacher: HeadSpec) -> None:
    if not config.head.weak_clip:
        return
    if kind.name != "regression":
        raise ConfigError(f"weak_clip clips regression teachers to their label range; task_type={kind.name} "
                          "predicts probabilities: drop weak_clip.")
    if teacher.name != "weak":
        raise ConfigError(f"weak_clip clips the linear weak head; this run's teacher is {teacher.name!r} "
                          "(weak_student=lora): drop weak_clip or use weak_student=linear.")


def _check_pairwise(kind, active) -> None:
    """Preference features are differences of two sides' features: no LoRA student (a row-fitted scaler such as
    rdkit:descriptors fits on the sides of the training pairs: `w2s_hf.features.pairs.pair_difference`)."""
    if kind.inputs != "pair_difference":
        return
    lora = [s.name for s in active if s.kind == "lora"]
    if lora:
        raise ConfigError(f"task_type={kind.name} has no LoRA students yet (rows {lora}); use student=linear.")


def _warn_degenerate(config: W2SConfig, data: TaskRows) -> None:
    """Runs that work but cannot say anything: warn before any work is done."""
    import warnings

    weak, strong = (dataclasses.replace(config.model.representation(r), name=None) for r in ROLES)
    if weak == strong:
        warnings.warn(f"weak and strong are the same representation ({weak.model_name!r}, same layer and "
                      "pooling): the student can only copy its teacher, so gain and misfit are ~0.", stacklevel=3)
    for split in ("weak_train", "w2s_train"):
        for j, target in enumerate(data.targets):
            column = data.gold[split][:, j]
            if len(column) and np.ptp(column) == 0:
                warnings.warn(f"target {target!r} is constant ({column[0]!r}) on {split}: every error is that "
                              "of predicting a constant, and the decomposition is degenerate.", stacklevel=3)


# the config key that sizes each training split's subset, and its stream of the split seed
_SUBSETS = {"weak_train": ("weak_budget", STREAM_WEAK_BUDGET), "w2s_train": ("w2s_size", STREAM_W2S_SIZE)}


def _subset_rows(task_args, split: str, n: int) -> np.ndarray | None:
    """Positions within `split` of the `weak_budget` / `w2s_size` rows its heads train on, drawn with the split
    seed: the first N rows of one seeded order, so the subsets of a seed are nested (16 rows are inside 32)."""
    key, stream = _SUBSETS[split]
    size = getattr(task_args, key)
    if size is None:
        return None
    if size > n:
        raise ConfigError(f"{key}={size} is more than the {n} rows of {split} (split_seed {task_args.split_seed}); "
                          "lower it or drop it.")
    return nested_subset(n, size, task_args.split_seed, stream)


def run_w2s(config: W2SConfig, accelerator=None, hooks: list | None = None) -> dict[str, Any]:
    """Run (or resume) one weak-to-strong run and return its results dict."""
    return W2SPipeline(config, accelerator=accelerator, hooks=hooks).run()
