"""Progress of long loops: a tqdm bar on a terminal, plain log lines anywhere else.

A tqdm bar redraws itself with carriage returns; written into a log file or a CI console (stderr not
a terminal) every redraw is kept, and the log fills with `\\r` frames. There we log one line instead
at most every `interval` seconds (and at the end): done / total, rate and time left.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

logger = logging.getLogger("w2s_hf.progress")


def progress(total: int, desc: str, *, enabled: bool = True, unit: str = "row", interval: float = 30.0) -> Any:
    """An object with `update(n)` and `close()`: tqdm when stderr is a terminal, else `LineProgress`."""
    if enabled and _is_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return LineProgress(total, desc, unit=unit, interval=interval, enabled=enabled)


def quiet_library_bars() -> None:
    """Off a terminal, turn off the bars of transformers ("Loading weights") and huggingface_hub too."""
    if _is_terminal():
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    disable_progress_bars()
    transformers_logging.disable_progress_bar()


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class LineProgress:
    """Log `desc: done/total unit (pct), rate, left` at most every `interval` seconds, and once at the end."""

    def __init__(self, total: int, desc: str, *, unit: str = "row", interval: float = 30.0, enabled: bool = True):
        self.total, self.desc, self.unit, self.interval, self.enabled = total, desc, unit, interval, enabled
        self.done = 0
        self._start = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval and self.done < self.total:
            self._last = now
            self._log(now)

    def close(self) -> None:
        if self.enabled and not self._closed and self.total:
            self._log(time.monotonic())
        self._closed = True

    def _log(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        tail = f", {left:.0f} s left" if self.done < self.total and rate > 0 else f" in {elapsed:.1f} s"
        logger.info("%s: %d/%d %ss (%.0f%%), %.1f %ss/s%s", self.desc, self.done, self.total, self.unit, pct,
                    rate, self.unit, tail)
