"""The truth and the pretrained deep and shallow nets of one synthetic run.

A net pretrained once serves every variant (cached by depth, samples and epochs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from w2s_hf.experiments.synthetic.nets import (
    build_mlp,
    draw_heads,
    pretrain,
    pretrain_notebook,
    seed_seq,
    torch_generator,
)

from .config import (
    HELDOUT_PER_TASK,
    STREAM_HELDOUT,
    STREAM_INIT,
    STREAM_PRETRAIN_DATA,
    STREAM_PRETRAIN_HEADS,
    STREAM_SHUFFLE,
    STREAM_TRUTH,
    SyntheticConfig,
    head_solver,
)
from .tasks import AdamWHeads, task_sample


class Representations:
    """The truth and the pretrained nets of one run; a net pretrained once serves every variant."""

    def __init__(self, config: SyntheticConfig):
        self.config = config
        notebook = config.protocol == "notebook"
        self.truth = (
            build_mlp(config.truth_depth, config.input_dim, config.width, torch_generator(config.seed, STREAM_TRUTH),
                      final_relu=notebook)
            .double()
            .eval()
            .requires_grad_(False)
        )
        self.heads, self.bias = draw_heads(
            np.random.default_rng(seed_seq(config.seed, STREAM_PRETRAIN_HEADS)), config.n_pretrain_tasks, config.width,
            config.protocol,
        )
        self._cache: dict[tuple[int, int, int], tuple[torch.nn.Module, dict[str, Any]]] = {}
        # notebook: every epoch count a sample size is run at, so that one run makes all its snapshots
        self._marks: dict[int, set[int]] = {}
        if "realizable" in config.variants or "pretrained" in config.variants:
            self._marks.setdefault(config.pretrain_samples, set()).add(config.epochs)
        if "reversal" in config.variants:
            self._marks.setdefault(config.reversal_samples, set()).add(config.reversal_epochs)
            for samples in config.sweep_samples:
                self._marks.setdefault(samples, set()).update(config.sweep_epochs)
        self.adamw_heads: AdamWHeads | None = None
        if head_solver(config) == "adamw":
            self.adamw_heads = AdamWHeads(
                config, self.truth, [task_sample(config, t) for t in range(config.n_tasks)]
            )

    def pretrained(self, depth: int, samples: int, epochs: int) -> tuple[torch.nn.Module, dict[str, Any]]:
        key = (depth, samples, epochs)
        if key not in self._cache:
            c = self.config
            shape = (c.n_pretrain_tasks, samples, c.input_dim)
            x = np.random.default_rng(seed_seq(c.seed, STREAM_PRETRAIN_DATA, samples)).normal(0.0, c.input_std, shape)
            heldout = np.random.default_rng(seed_seq(c.seed, STREAM_HELDOUT)).normal(
                0.0, c.input_std, (c.n_pretrain_tasks, HELDOUT_PER_TASK, c.input_dim)
            )
            net = build_mlp(depth, c.input_dim, c.width, torch_generator(c.seed, STREAM_INIT, depth),
                            final_relu=c.protocol == "notebook")
            generator = torch_generator(c.seed, STREAM_SHUFFLE, depth, samples)
            if c.protocol == "fast":
                self._cache[key] = pretrain(
                    net,
                    self.truth,
                    self.heads,
                    x,
                    heldout,
                    epochs=epochs,
                    batch_size=c.batch_size,
                    lr=c.lr,
                    weight_decay=c.weight_decay,
                    warmup_fraction=c.warmup_fraction,
                    generator=generator,
                )
            else:
                snaps = pretrain_notebook(
                    net, self.truth, self.heads, self.bias, x, heldout,
                    snapshots=sorted(self._marks.get(samples, set()) | {epochs}), batch_size=c.batch_size,
                    lr=c.lr, weight_decay=c.weight_decay, generator=generator,
                )
                self._cache.update({(depth, samples, e): v for e, v in snaps.items()})
        return self._cache[key]

    def names(self, samples: int, epochs: int) -> dict[str, str]:
        c = self.config
        return {
            "deep": f"deep ({c.deep_depth}-layer MLP, {samples} samples/task, {epochs} epochs)",
            "shallow": f"shallow ({c.shallow_depth}-layer MLP, {samples} samples/task, {epochs} epochs)",
        }

    def for_variant(self, variant: str) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, Any]]:
        """(weak net, strong net, description incl. pretraining stats) of a variant."""
        c = self.config
        samples, epochs = (
            (c.reversal_samples, c.reversal_epochs) if variant == "reversal" else (c.pretrain_samples, c.epochs)
        )
        names = self.names(samples, epochs)
        deep_name, shallow_name = names["deep"], names["shallow"]
        shallow, shallow_stats = self.pretrained(c.shallow_depth, samples, epochs)
        if variant == "realizable":
            return (
                shallow,
                self.truth,
                {
                    "weak": shallow_name,
                    "strong": f"h* ({c.truth_depth}-layer truth)",
                    "pretraining": {"shallow": shallow_stats},
                },
            )
        deep, deep_stats = self.pretrained(c.deep_depth, samples, epochs)
        pretraining = {"deep": deep_stats, "shallow": shallow_stats}
        if variant == "reversal":  # roles swapped: the deep net teaches the shallow one
            return deep, shallow, {"weak": deep_name, "strong": shallow_name, "pretraining": pretraining}
        return shallow, deep, {"weak": shallow_name, "strong": deep_name, "pretraining": pretraining}


