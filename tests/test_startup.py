"""`--help` and a bad flag answer before any heavy library is imported (they took 12-40 s under load)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "scipy", "pandas", "accelerate", "datasets", "matplotlib")
PROBE = """
import runpy, sys
sys.argv = ["train_w2s.py", *{argv!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as exc:
    print("exit", exc.code)
print("heavy", sorted(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["--weak_layr", "2"], 2), (["--split", "scafold"], 2)])
def test_help_and_bad_flags_come_before_heavy_imports(argv, code):
    probe = PROBE.format(argv=argv, script=str(ROOT / "scripts" / "train_w2s.py"), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert f"exit {code}" in done.stdout, done.stdout + done.stderr
    assert "heavy []" in done.stdout, done.stdout
    if code == 2:  # one line naming the flag, no traceback
        assert len(done.stderr.strip().splitlines()) == 1 and argv[0].strip("-")[:5] in done.stderr, done.stderr


def test_dataclass_parser_reads_flags_as_before():
    from dataclasses import dataclass, field

    from w2s_hf.config.dataclass_args import DataclassArgumentParser

    @dataclass
    class Args:
        name: str = "a"
        count: int | None = None
        flag: bool = False
        plot: bool = True
        items: list[str] = field(default_factory=lambda: ["x"])

    parse = DataclassArgumentParser(Args).parse_args_into_dataclasses
    assert parse([]) == (Args(),)
    assert parse(["--flag", "--no_plot", "--count", "3", "--items", "p", "q", "--name=b"]) == \
        (Args("b", 3, True, False, ["p", "q"]),)
    assert parse(["--flag", "false", "--plot", "true", "--no-plot"])[0].flag is False


def test_every_command_prints_its_help(capsys):
    """`w2s <command> --help` answers for every command (`w2s sweep --help` once failed with
    "'--config' is not in list": its parser looked for the config before printing the help)."""
    from w2s_hf.cli import COMMANDS, _main

    for command in COMMANDS:
        try:
            code = _main([command, "--help"])
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        assert code in (0, None), f"w2s {command} --help exited {code}: {out.err[-300:]}"
        assert "usage" in out.out.lower(), f"w2s {command} --help printed no usage: {out.out[:200]} {out.err[-300:]}"
