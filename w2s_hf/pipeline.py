"""The weak-to-strong run as named stages: extract -> train_weak -> label -> train_w2s -> train_ceiling -> evaluate.

Each stage writes its artifact into the run folder and is skipped on a rerun when that artifact is
there (unless `overwrite`), so any stage can be redone alone (`stages=["train_w2s", "evaluate"]`):

    run_config.json             the config that made the folder (a different config is refused)
    features.json               extract: fingerprints and sizes of the weak / strong features
    heads/{weak,w2s,ceiling}.safetensors (+ .json: ridge chosen, validation curve)
    predictions/{weak,w2s,ceiling}.csv   id, split and one column per target, every split
    results.json, decomposition.png      evaluate

Who sees which labels (the protocol the theorem is about):
- the weak head is fitted on `weak_train` gold labels and chooses its ridge on `val` gold labels;
- the w2s head is fitted on the weak head's labels of `w2s_train` and chooses its ridge against the
  weak labels of `val`: the student never sees a gold label;
- the ceiling (strong head on `w2s_train` gold labels, the paper's eps) chooses on `val` gold labels.

Under `accelerate launch` every process holds the full feature matrices (the cache makes that one
extraction), fits heads on its own shard of rows with all-reduced sufficient statistics (exact
solver) or DDP (adamw solver), and predictions are gathered per example, so N processes write the
same numbers as one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import ConfigError, W2SConfig

logger = logging.getLogger("w2s_hf.pipeline")

SPLIT_ORDER = ("weak_train", "w2s_train", "val", "test")
EVAL_SPLITS = ("w2s_train", "val", "test")
# Keys that steer the run but do not change its numbers: a rerun may change them freely.
_CONTROL_KEYS = {"output_dir", "cache_dir", "stages", "overwrite", "report_to", "plot", "no_cache"}


class W2SPipeline:
    """One weak-to-strong run. `run()` executes the selected stages and returns the results dict."""

    def __init__(self, config: W2SConfig, accelerator=None, hooks: list | None = None, task=None):
        from accelerate import Accelerator

        self.config = config
        self.accelerator = accelerator or Accelerator(cpu=not _has_cuda())
        self.out = Path(config.run.output_dir)
        self.extra_hooks = list(hooks or [])
        self.timings: dict[str, float] = {}
        self._features: dict[str, np.ndarray] = {}
        self._encoders: dict[str, Any] = {}
        # Everything that can fail on bad input is checked here, before any forward pass.
        self.task = task if task is not None else _load_task(config)
        self.targets = list(self.task.targets)
        self.ids = {s: [str(i) for i in self.task.splits[s]["id"]] for s in SPLIT_ORDER}
        self.gold = {s: _target_matrix(self.task.splits[s], self.targets) for s in SPLIT_ORDER}
        # Features are extracted once for the whole task in a canonical (id-sorted) order that does
        # not depend on the split kind or seed, so every split of a task shares one cache entry.
        self.canonical_ids, self.canonical_texts = canonical_inputs(self.task)
        position = {i: k for k, i in enumerate(self.canonical_ids)}
        self.index = {s: np.array([position[i] for i in self.ids[s]], dtype=np.int64) for s in SPLIT_ORDER}
        self._check_run_folder()
        for role in ("weak", "strong"):
            name = getattr(config.model, f"{role}_model")
            if name.lower().startswith("rdkit:") and self.task.input_kind != "smiles":
                raise ConfigError(f"{role}_model={name!r} featurizes SMILES, but task {self.task.name!r} has "
                                  f"{self.task.input_kind} inputs; use a language model for it.")
        for role in ("weak", "strong"):
            self._encoder(role)

    # ------------------------------------------------------------------ plumbing
    def _encoder(self, role: str):
        if role not in self._encoders:
            from .features import build_representation

            self._encoders[role] = build_representation(**self.config.model.representation(role))
        return self._encoders[role]

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _check_run_folder(self) -> None:
        """Refuse to mix artifacts of two different configs in one folder (unless overwriting)."""
        path = self.out / "run_config.json"
        identity = {k: v for k, v in self.config.to_dict().items() if k not in _CONTROL_KEYS}
        if path.exists() and not self.config.run.overwrite:
            previous = json.loads(path.read_text())
            changed = sorted(k for k in set(identity) | set(previous) if identity.get(k) != previous.get(k))
            if changed:
                raise ConfigError(
                    f"{self.out} holds a run made with a different config (changed: {', '.join(changed)}). "
                    "Use another --output_dir, or --overwrite to redo it."
                )
        self._identity = identity

    def _done(self, *artifacts: str) -> bool:
        return not self.config.run.overwrite and all((self.out / a).exists() for a in artifacts)

    def features(self, role: str) -> np.ndarray:
        """Weak or strong features of every row, in `canonical_ids` order; a cache hit after `extract`."""
        if role not in self._features:
            run = self.config.run
            self._features[role] = self._encoder(role).encode(
                self.canonical_texts,
                cache_dir=None if run.no_cache else os.path.join(run.resolved_cache_dir(), "features"),
                accelerator=self.accelerator,
                no_cache=run.no_cache,
                show_progress=self.is_main,
            )
        return self._features[role]

    def rows(self, role: str, split: str) -> np.ndarray:
        return np.asarray(self.features(role)[self.index[split]])

    # ------------------------------------------------------------------ stages
    def run(self) -> dict[str, Any]:
        stages: dict[str, Callable[[], None]] = {
            "extract": self.extract,
            "train_weak": self.train_weak,
            "label": self.label,
            "train_w2s": self.train_w2s,
            "train_ceiling": self.train_ceiling,
            "evaluate": self.evaluate,
        }
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            _write_json(self.out / "run_config.json", self._identity)
        self.accelerator.wait_for_everyone()
        for name in self.config.run.selected_stages():
            start = time.perf_counter()
            stages[name]()
            self.accelerator.wait_for_everyone()
            self.timings[name] = round(time.perf_counter() - start, 3)
            logger.info("stage %s: %.2f s", name, self.timings[name])
        path = self.out / "results.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def extract(self) -> None:
        if self._done("features.json"):
            return
        texts = self.canonical_texts
        info = {}
        for role in ("weak", "strong"):
            feats = self.features(role)
            info[role] = {"fingerprint": self._encoder(role).fingerprint(texts), "n": int(feats.shape[0]), "dim": int(feats.shape[1])}
        if self.is_main:
            _write_json(self.out / "features.json", info)

    def train_weak(self) -> None:
        if self._done("heads/weak.safetensors"):
            return
        self._fit_head("weak", "weak", self.gold["weak_train"], self.gold["val"])

    def label(self) -> None:
        if self._done("predictions/weak.csv"):
            return
        self._predict_and_save("weak", "weak")

    def train_w2s(self) -> None:
        if self._done("heads/w2s.safetensors", "predictions/w2s.csv"):
            return
        weak = self.load_predictions("weak")
        # The student is chosen against the weak labels of val: it never sees a gold label.
        self._fit_head("w2s", "strong", weak["w2s_train"], weak["val"])
        self._predict_and_save("w2s", "strong")

    def train_ceiling(self) -> None:
        if self._done("heads/ceiling.safetensors", "predictions/ceiling.csv"):
            return
        self._fit_head("ceiling", "strong", self.gold["w2s_train"], self.gold["val"])
        self._predict_and_save("ceiling", "strong")

    def evaluate(self) -> None:
        from .evaluation import JsonResultsHook, PlotHook, TableHook, TrackerHook
        from .misfit import decompose

        if self._done("results.json"):
            if self.is_main:
                TableHook().on_end(json.loads((self.out / "results.json").read_text()))
            return
        preds = {name: self.load_predictions(name) for name in ("weak", "w2s", "ceiling") if (self.out / f"predictions/{name}.csv").exists()}
        for needed in ("weak", "w2s"):
            if needed not in preds:
                raise RuntimeError(f"evaluate needs predictions/{needed}.csv in {self.out}: run the earlier stages first.")
        hooks = [TrackerHook(self.accelerator), JsonResultsHook(self.out / "results.json"), TableHook(), *self.extra_hooks]
        if self.config.run.plot:
            hooks.append(PlotHook(self.out / "decomposition.png"))
        splits = {}
        for split in EVAL_SPLITS:
            dec = decompose(
                self.gold[split], preds["weak"][split], preds["w2s"][split],
                preds["ceiling"][split] if "ceiling" in preds else None,
                target_names=self.targets, n_boot=self.config.run.n_boot, seed=self.config.run.seed,
            )
            splits[split] = dec.as_dict()
            if self.is_main:
                for hook in hooks:
                    hook.on_evaluate(0, split, dec, {"head": "w2s"})
        features = json.loads((self.out / "features.json").read_text()) if (self.out / "features.json").exists() else {}
        results = {
            "config": self.config.to_dict(),
            "task": {"name": self.task.name, "targets": self.targets, "input_kind": self.task.input_kind,
                     "sizes": {s: len(self.ids[s]) for s in SPLIT_ORDER}},
            "fingerprints": {r: features.get(r, {}).get("fingerprint") for r in ("weak", "strong")},
            "heads": {n: json.loads((self.out / f"heads/{n}.json").read_text()) for n in preds if (self.out / f"heads/{n}.json").exists()},
            "splits": splits,
            "timings": dict(self.timings),
        }
        if self.is_main:
            for hook in hooks:
                hook.on_end(results)
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ heads and predictions
    def _fit_head(self, name: str, role: str, y_train: np.ndarray, y_val: np.ndarray) -> None:
        """Fit head `name` on the `role` features: train rows of its split, selection on val labels given."""
        from .heads import SufficientStats, select_ridge

        train_split = "weak_train" if name == "weak" else "w2s_train"
        X, X_val = self.rows(role, train_split), self.rows(role, "val")
        cfg, acc = self.config.head, self.accelerator
        meta: dict[str, Any] = {"solver": cfg.solver, "features": role, "train_split": train_split,
                                "selected_on": "val weak labels" if name == "w2s" else "val gold labels"}
        if cfg.solver == "exact":
            # Each process accumulates its own rows; the all-reduce makes the head identical to one process.
            shard = slice(acc.process_index, None, acc.num_processes)
            stats = SufficientStats.from_arrays(X[shard], y_train[shard]).all_reduce(acc)
            ridge = cfg.ridge_value()
            if ridge is None:
                ridge, head, curve = select_ridge(stats, X_val, y_val, fit_intercept=cfg.fit_intercept)
                meta["val_errors"] = {repr(float(k)): float(v) for k, v in curve.items()}
            else:
                head = stats.solve(ridge=ridge, fit_intercept=cfg.fit_intercept)
            meta["ridge"] = float(ridge)
        else:
            from .adamw import fit_adamw

            # DDP: each process trains on, and validates, its own rows; fit_adamw reduces across them.
            shard = slice(acc.process_index, None, acc.num_processes)
            head = fit_adamw(X[shard], y_train[shard], X_val[shard], y_val[shard], accelerator=acc, lr=cfg.lr, epochs=cfg.epochs,
                             batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, eval_every=cfg.eval_every,
                             patience=cfg.patience, seed=self.config.run.seed, on_eval=self._on_eval(name))
        meta["train_val_mse"] = float(np.mean((head.predict(X_val).reshape(y_val.shape) - y_val) ** 2))
        if self.is_main:
            (self.out / "heads").mkdir(parents=True, exist_ok=True)
            _atomic(self.out / f"heads/{name}.safetensors", head.save)
            _write_json(self.out / f"heads/{name}.json", meta)
        acc.wait_for_everyone()
        self._heads = getattr(self, "_heads", {})
        self._heads[name] = head

    def _on_eval(self, name: str):
        """adamw evaluation points (every `eval_every` steps, on every process).

        Weak head and ceiling: their val error (against the labels they are selected on) goes to the
        trackers. Student: the full decomposition on every evaluation split, from its current
        predictions gathered per example, goes through the hooks (trackers under `train_w2s/...` and
        any hook passed to the pipeline), with the state {"head": "w2s", "stage": "train_w2s"}.
        """
        from .evaluation import TrackerHook, evaluate_point

        acc = self.accelerator
        if name != "w2s":
            role = "weak" if name == "weak" else "strong"

            def log_val_error(step: int, head) -> None:
                if self.is_main:
                    pred = head.predict(self.rows(role, "val")).reshape(self.gold["val"].shape)
                    acc.log({f"{name}/val_error": float(np.mean((pred - self.gold["val"]) ** 2))}, step=step)

            return log_val_error
        weak = self.load_predictions("weak")
        hooks = [TrackerHook(acc), *self.extra_hooks]

        def decompose_now(step: int, head) -> None:
            for split in EVAL_SPLITS:
                evaluate_point(step, split, self.gold[split], weak[split], self._gathered_predictions(head, "strong", split),
                               hooks=hooks, state={"head": "w2s", "stage": "train_w2s", "prefix": "train_w2s"},
                               accelerator=acc, target_names=self.targets, n_boot=0)

        return decompose_now

    def _head(self, name: str):
        from .heads import LinearHead

        heads = getattr(self, "_heads", {})
        return heads[name] if name in heads else LinearHead.load(self.out / f"heads/{name}.safetensors")

    def _gathered_predictions(self, head, role: str, split: str) -> np.ndarray:
        """(n, k) predictions of `head` on `split`, rows in the task's order: each process predicts its
        own rows, then they are gathered per example (no padded duplicates, no per-rank averages)."""
        from .evaluation import gather_predictions

        acc = self.accelerator
        X = self.rows(role, split)
        local = np.arange(acc.process_index, len(X), acc.num_processes)
        pos, pred = gather_predictions(acc, local, head.predict(X[local]).reshape(len(local), -1))
        pred = np.asarray(pred)[np.argsort(np.asarray(pos))]
        if len(pred) != len(X):
            raise RuntimeError(f"gathered {len(pred)} predictions for {len(X)} rows of {split}")
        return pred

    def _predict_and_save(self, name: str, role: str) -> None:
        """Predict every split (gathered across processes) and write predictions/<name>.csv."""
        head, ids, splits, preds = self._head(name), [], [], []
        for split in SPLIT_ORDER:
            preds.append(self._gathered_predictions(head, role, split))
            ids += self.ids[split]
            splits += [split] * len(self.ids[split])
        if self.is_main:
            _write_predictions(self.out / f"predictions/{name}.csv", ids, splits, np.concatenate(preds), self.targets)
        self.accelerator.wait_for_everyone()

    def load_predictions(self, name: str) -> dict[str, np.ndarray]:
        """{split: (n, k) predictions} from predictions/<name>.csv, rows in the task's order."""
        path = self.out / f"predictions/{name}.csv"
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            table = {(r["split"], r["id"]): [float(r[t]) for t in self.targets] for r in reader}
        out = {}
        for split in SPLIT_ORDER:
            try:
                out[split] = np.array([table[(split, i)] for i in self.ids[split]], dtype=np.float64).reshape(-1, len(self.targets))
            except KeyError as err:
                raise RuntimeError(f"{path} has no prediction for id {err.args[0][1]!r} of {split}: rerun with --overwrite.") from None
        return out


# ---------------------------------------------------------------------- helpers
def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _load_task(config: W2SConfig):
    from .data import load_task

    return load_task(config.task.task, **config.task.load_kwargs())


def canonical_inputs(task) -> tuple[list[str], list[str]]:
    """All (id, input) pairs of a task sorted by id: the row order of its cached features."""
    pairs = sorted({str(i): t for s in SPLIT_ORDER for i, t in zip(task.splits[s]["id"], task.splits[s]["input"])}.items())
    return [i for i, _ in pairs], [t for _, t in pairs]


def _target_matrix(dataset, targets: list[str]) -> np.ndarray:
    return np.stack([np.asarray(dataset[t], dtype=np.float64) for t in targets], axis=1)


def _atomic(path: Path, write: Callable[[str], Any]) -> None:
    """Write through `write(tmp_path)` then rename, so a crash never leaves a half-written artifact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(path: Path, obj: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2)

    _atomic(path, write)


def _write_predictions(path: Path, ids: list[str], splits: list[str], preds: np.ndarray, targets: list[str]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "split", *targets])
            for i, s, row in zip(ids, splits, preds):
                writer.writerow([i, s, *(repr(float(v)) for v in row)])

    _atomic(path, write)


def run_w2s(config: W2SConfig, accelerator=None, hooks: list | None = None) -> dict[str, Any]:
    """Run (or resume) one weak-to-strong run and return its results dict."""
    return W2SPipeline(config, accelerator=accelerator, hooks=hooks).run()
