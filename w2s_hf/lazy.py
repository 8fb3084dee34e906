"""Lazy package exports: a package names what it offers and each name's module loads on first use.

    __getattr__, __dir__ = lazy_exports(__name__, {"load_task": "tasks", ...})

So importing a light module of a package (a list of choices, say) does not import the package's heavy
siblings (pandas, scipy), which keeps `--help` and bad flags fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(module `__getattr__`, `__dir__`) loading `name` from `package.exports[name]` on first use."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{module}", package), name)

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
