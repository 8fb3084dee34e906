"""Every sweep and run config the repository ships parses with the one schema (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from w2s_hf.config.sweep import SweepConfig

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "scripts" / "configs" / "sweep").rglob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_sweep_config_parses(path):
    config = SweepConfig.from_yaml(path)
    assert config.weak_models and config.seeds
    if "figure2" in path.parts:  # the Figure 2 panels: the theorem's ridge setting, graded teachers
        assert str(config.base.head.ridge) == "theorem" and config.budgets[-1] is None
    if "search" in path.parts:  # a search is scored on val only (w2s choose-on-val refuses anything else)
        assert config.eval_split == "val"
