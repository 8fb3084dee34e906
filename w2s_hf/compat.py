"""Old import paths, kept working: `w2s_hf.misfit` is `w2s_hf.decomposition.core`, and so on.

The toolkit moved its top-level modules into one folder per layer. Code written against the old
paths (`from w2s_hf.misfit import decompose`, `import w2s_hf.kheads`) still runs: `install()` puts
a finder on `sys.meta_path` that answers each old name with the module now holding that code (the
same module object, so patches and isinstance checks see one thing), with a DeprecationWarning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module -> the module that holds its code now
ALIASES = {
    "w2s_hf.misfit": "w2s_hf.decomposition.core",
    "w2s_hf.classification": "w2s_hf.divergences.kl",
    "w2s_hf.decomposition.kl": "w2s_hf.divergences.kl",
    "w2s_hf.selection": "w2s_hf.decomposition.selection",
    "w2s_hf.adamw": "w2s_hf.heads.adamw",
    "w2s_hf.kheads": "w2s_hf.heads.mixture",
    "w2s_hf.finetune": "w2s_hf.heads.lora",
    "w2s_hf.finetune.student": "w2s_hf.heads.lora.student",
    "w2s_hf.finetune.train": "w2s_hf.heads.lora.train",
    "w2s_hf.finetune.losses": "w2s_hf.heads.losses",
    "w2s_hf.evaluation": "w2s_hf.hooks.evaluation",
    "w2s_hf.callbacks": "w2s_hf.hooks.callbacks",
    "w2s_hf.plotting": "w2s_hf.hooks.plots",
    "w2s_hf.protocol": "w2s_hf.pipeline.protocol",
    "w2s_hf.run_folder": "w2s_hf.pipeline.run_folder",
    "w2s_hf.sweep": "w2s_hf.experiments.sweep",
    "w2s_hf.experiments.synthetic_nets": "w2s_hf.experiments.synthetic.nets",
}


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an old module name with the new module object."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None  # a placeholder; exec_module swaps in the real module

    def exec_module(self, module) -> None:
        new = ALIASES[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}; the old path will be removed in a future release.",
                      DeprecationWarning, stacklevel=2)
        # the import system reads sys.modules back after exec_module: the old name now is the new module
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    """Put the finder first on `sys.meta_path` (once)."""
    if not any(isinstance(f, AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())
