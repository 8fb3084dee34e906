"""A ridge setting, typed once: every config path (flags, YAML, sweeps) builds a `Ridge` and reads `.value`."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

RIDGE_HEADS = ("weak", "w2s", "ceiling")  # the exact heads of the protocol, each with its own ridge key


class Ridge(str):
    """A ridge setting, parsed and checked once: a number >= 0, 'auto' (chosen on val) or 'theorem'.

    A `str` (the text as given, so run identities and results.json keep their values) with `.value`
    (the penalty, None for 'auto') and `.preset` (True for 'theorem': the student at 0, the others on val).
    """

    def __new__(cls, value: Any = "auto", key: str = "ridge") -> "Ridge":
        if isinstance(value, Ridge):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"{key}={value!r} must be a number >= 0, 'auto' or 'theorem'.")
        text = str(value).strip()
        if text.lower() not in ("auto", "theorem"):
            try:
                number = float(text)
            except ValueError:
                number = float("nan")
            if not (number >= 0 and math.isfinite(number)):
                raise ConfigError(f"{key}={value!r} must be a number >= 0, 'auto' or 'theorem'.")
        return super().__new__(cls, text)

    @property
    def preset(self) -> bool:
        return self.lower() == "theorem"

    @property
    def value(self) -> float | None:
        return None if self.lower() in ("auto", "theorem") else float(self)
