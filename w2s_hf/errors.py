"""Errors shared by every layer: raised on bad input before any expensive work starts.

`ConfigError` lives here, below every layer, so that a low module (the run folder, the LoRA
student) can refuse a bad setting without importing the configuration package above it.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration key is unknown or has a value that cannot work."""


class DiskFullError(OSError):
    """No space left for a write: one line naming the folder and the bytes needed (`atomic.py`)."""

    def __str__(self) -> str:
        return str(self.strerror)  # the one line, without OSError's "[Errno 28]" prefix
