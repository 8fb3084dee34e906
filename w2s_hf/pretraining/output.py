"""Where a pretraining run writes: its output folder, held by one run at a time, and resumable checkpoints.

    runs/pretrain/<name>/            the finished model (written last, by one rename)
    runs/pretrain/.<name>.partial/   while training: identity.json, trainer/checkpoint-<step>/, model/
    runs/pretrain/.<name>.lock       the lock (flock: freed when its process dies, however it dies)

- A second run into the same `output_dir` is refused at once while the first holds the lock, so two
  runs can never both print "saved" with the first model gone.
- An existing `output_dir` is replaced only with `overwrite`, and only when it is a model folder this
  recipe wrote (`config.json` and `pretraining.json`): a folder of notes or data is never emptied.
- Checkpoints every `save_steps` optimiser steps; a rerun of the same recipe (the same identity: every
  key that changes the trained weights) resumes from the newest complete checkpoint, so a kill loses
  at most one interval. Checkpoints of another recipe are refused, or discarded with `overwrite`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

MODEL_MARKERS = ("config.json", "pretraining.json")
DONE_MARKER = "w2s_checkpoint_done.json"  # written after everything else of a checkpoint
# Keys that do not change the trained weights: a rerun that changes only these resumes.
NOT_IDENTITY = frozenset({"output_dir", "overwrite", "config_file", "name", "logging_steps", "eval_steps",
                          "save_steps", "descriptor_workers", "dataloader_workers", "cache_dir",
                          "save_dtype"})


class OutputFolderError(FileExistsError):
    """The output folder cannot be used as asked (in use, not a model folder, foreign checkpoints)."""


def is_pretrained_folder(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in MODEL_MARKERS)


def run_identity(cfg: Any) -> dict[str, Any]:
    return {k: v for k, v in sorted(asdict(cfg).items()) if k not in NOT_IDENTITY}


class OutputFolder:
    def __init__(self, output_dir: str | Path):
        self.out = Path(output_dir)
        self.work = self.out.with_name(f".{self.out.name}.partial")
        self.lock_path = self.out.with_name(f".{self.out.name}.lock")
        self.checkpoints = self.work / "trainer"
        self.identity_file = self.work / "identity.json"

    def check(self, overwrite: bool) -> None:
        """Raise before any work if `output_dir` cannot receive this run's model."""
        for parent in [self.out, *self.out.parents]:
            if parent.exists() and not parent.is_dir():
                raise OutputFolderError(f"output_dir={str(self.out)!r}: {str(parent)!r} is a file, not a folder; "
                                        "give a folder path.")
        if not self.out.is_dir() or not any(self.out.iterdir()):
            return
        if not is_pretrained_folder(self.out):
            names = ", ".join(sorted(p.name for p in self.out.iterdir())[:5])
            raise OutputFolderError(f"output_dir={str(self.out)!r} holds files that are not a model pretrained by "
                                    f"this script ({names}); --overwrite replaces only such a model folder, so "
                                    "choose another output_dir.")
        if not overwrite:
            raise OutputFolderError(f"output_dir={str(self.out)!r} already holds a pretrained model; pass "
                                    "--overwrite true (overwrite: true) to replace it, or choose another output_dir.")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold `output_dir` for this run; a second run is refused at once."""
        from filelock import FileLock, Timeout

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise OutputFolderError(f"output_dir={str(self.out)!r} is in use by another pretraining run "
                                    f"(lock {self.lock_path}); wait for it or choose another output_dir.") from None
        try:
            yield
        finally:
            lock.release()

    def resume_from(self, identity: dict[str, Any], overwrite: bool) -> str | None:
        """The newest complete checkpoint of a run with this identity, or None (the work folder is then fresh)."""
        previous = _read_json(self.identity_file)
        if self.work.exists() and previous != identity:
            found = self.complete_checkpoints()
            if found and not overwrite:
                changed = sorted(k for k in set(identity) | set(previous or {})
                                 if identity.get(k) != (previous or {}).get(k))
                raise OutputFolderError(
                    f"{self.work} holds checkpoints of another recipe (changed: {', '.join(changed) or 'unknown'}); "
                    "rerun with that recipe to resume it, or pass --overwrite true to discard them.")
            shutil.rmtree(self.work)
        if not self.work.exists():
            self.work.mkdir(parents=True)
            self.identity_file.write_text(json.dumps(identity, indent=1, default=str) + "\n")
            return None
        found = self.complete_checkpoints()
        return str(found[-1]) if found else None

    def complete_checkpoints(self) -> list[Path]:
        """Checkpoints whose every file was written (a kill during a save leaves one without the marker)."""
        if not self.checkpoints.is_dir():
            return []
        done = [p for p in self.checkpoints.glob("checkpoint-*") if (p / DONE_MARKER).is_file()]
        return sorted(done, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def checkpoint_callback(world: int):
    """A TrainerCallback that marks a checkpoint complete once every process has written its part."""
    from transformers import TrainerCallback

    class MarkCheckpointDone(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            import torch.distributed as dist

            if world > 1 and dist.is_available() and dist.is_initialized():
                dist.barrier()  # every rank has written its RNG state before the checkpoint is called complete
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                (folder / DONE_MARKER).write_text(json.dumps({"step": state.global_step, "processes": world}))

    return MarkCheckpointDone()


def epoch_callback(collator):
    """Tells the collator which pass it is in: its per-molecule randomness is seeded by the pass, which a
    resumed run gets back from the Trainer's state (a count kept in memory would restart at zero)."""
    from transformers import TrainerCallback

    class SetEpoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            collator.epoch = int((state.epoch or 0.0) + 1e-6)

    return SetEpoch()
