"""The repository's promises: README's two commands, CI runs the README's test command, configs parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    head = text[: text.index("## What it is")]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", head, flags=re.S)]


def test_readme_opens_with_exactly_two_commands():
    main_cmd, test_cmd = _readme_commands()
    assert "accelerate launch --config_file accelerate_configs/" in main_cmd and "scripts/train_w2s.py" in main_cmd
    assert (REPO / re.search(r"--config_file (\S+)", main_cmd).group(1)).is_file()
    assert "torch==2.13.0" in main_cmd and "torch==2.13.0" in test_cmd
    assert "pytest" in test_cmd
    for cmd in (main_cmd, test_cmd):
        assert "\n" not in cmd, "each README command must be one copy-paste line"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci
    assert _readme_commands()[1] in ci


def test_every_script_docstring_command_names_an_existing_file():
    for script in sorted([*(REPO / "scripts").rglob("*.py"), *(REPO / "w2s_hf" / "commands").glob("*.py")]):
        parts = script.read_text().split('"""')
        if len(parts) < 2:
            continue
        doc = parts[1]
        for path in re.findall(r"(scripts/[\w/.-]+?\.(?:py|yaml)|accelerate_configs/[\w]+\.yaml)", doc):
            assert (REPO / path).exists(), f"{script.name} docstring names missing {path}"


def test_accelerate_configs_parse_and_explain_themselves():
    names = {p.stem for p in (REPO / "accelerate_configs").glob("*.yaml")}
    assert {"cpu_2proc", "single_gpu", "multi_gpu", "multi_node", "fsdp", "deepspeed_zero3"} <= names
    for path in (REPO / "accelerate_configs").glob("*.yaml"):
        text = path.read_text()
        assert text.startswith("#"), f"{path.name} must open with a comment saying when to use it"
        assert isinstance(yaml.safe_load(text), dict)
    cpu = yaml.safe_load((REPO / "accelerate_configs" / "cpu_2proc.yaml").read_text())
    assert cpu["num_processes"] == 2 and cpu["use_cpu"] is True and cpu["distributed_type"] == "MULTI_GPU"


CONFIG_ROOT = REPO / "scripts" / "configs"
CONFIGS = sorted(CONFIG_ROOT.rglob("*.yaml"))


def _schema(path: Path) -> str:
    return path.relative_to(CONFIG_ROOT).parts[0]


def test_configs_are_split_by_schema():
    """One folder per schema: run configs, sweep configs (a run config plus axes), pretraining configs."""
    assert {_schema(p) for p in CONFIGS} == {"run", "sweep", "pretrain"}
    for path in CONFIGS:
        has_axes = "weak_models" in yaml.safe_load(path.read_text())
        assert has_axes == (_schema(path) == "sweep"), path


@pytest.mark.parametrize("path", [p for p in CONFIGS if _schema(p) != "pretrain"],
                         ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_ready_configs_are_valid(path):
    from w2s_hf.config import load_yaml
    from w2s_hf.experiments.sweep import SweepConfig

    if _schema(path) == "sweep":
        config = SweepConfig.from_yaml(path)
        assert (len(config.weak_models) >= 5 or config.budgets != [None]) and len(config.seeds) >= 3
        if "figure2" in path.parts:  # the Figure 2 panels: the student a projection, graded teachers
            head = config.base.head
            assert str(head.ridge) == "theorem" and config.budgets[-1] is None
            assert head.ridge_for("w2s", True) == 0.0 and head.ridge_for("ceiling", False) is None
        if "figure2" in path.parts and "search" not in path.parts:  # a panel runs a candidate of its task's search
            task = config.base.task.task
            searched = [SweepConfig.from_yaml(p) for p in (path.parent / "search").glob(f"{task}_random__*.yaml")]
            assert any(s.base.model == config.base.model and s.base.head == head for s in searched), path
        if "search" in path.parts:  # a search is scored on val only (w2s choose-on-val refuses anything else)
            assert config.eval_split == "val"
    else:
        load_yaml(path)
