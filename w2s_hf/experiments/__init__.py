"""Self-contained experiments that exercise the toolkit end to end without any HuggingFace model.

`synthetic`: the synthetic regression experiment of Charikar, Pabbaraju & Shiragur (NeurIPS 2024) —
random ReLU-MLP ground truth, pretrained deep and shallow representations, 100 downstream tasks, and
gain regressed on misfit (`run_synthetic(SyntheticConfig(...), output_dir)`), in the protocol of the
authors' notebook (`protocol="notebook"`) or a faster one (the default), with a sweep that finds where
the shallow net is really the better representation.
"""

from __future__ import annotations

__all__ = ["SyntheticConfig", "run_synthetic"]


def __getattr__(name: str):
    # Lazy, so that `import w2s_hf.experiments` does not import torch.
    if name in __all__:
        from . import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module 'w2s_hf.experiments' has no attribute {name!r}")
