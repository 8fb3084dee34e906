"""Errors shared by every layer: raised on bad input before any expensive work starts.

`ConfigError` lives here, below every layer, so that a low module (the run folder, the LoRA
student) can refuse a bad setting without importing the configuration package above it.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration key is unknown or has a value that cannot work."""
