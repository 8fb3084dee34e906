"""The `w2s` command: subcommands, fast help, the hand-off to `accelerate launch`, bad input in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from w2s_hf import cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("run", "sweep", "extract", "pretrain", "synthetic", "summarize", "env"):
        assert f"  {name} " in out


def test_unknown_command_is_one_line_with_a_hint(capsys):
    assert cli.main(["rnu"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'rnu'" in err and "Did you mean 'run'?" in err


def test_no_command_prints_usage_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage: w2s <command>" in capsys.readouterr().out


def test_launch_flags_are_taken_out_and_handed_to_accelerate():
    launch, rest = cli.split_launch_flags(["--task", "esol", "--num_processes=2", "--accelerate_config", "x.yaml"])
    assert launch == {"num_processes": "2", "accelerate_config": "x.yaml"} and rest == ["--task", "esol"]
    cmd = cli.launch_command("run", {"num_processes": "2"}, ["--task", "esol"])
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[-5:] == ["-m", "w2s_hf", "run", "--task", "esol"]
    assert "--multi_gpu" in cmd and cmd[cmd.index("--num_processes") + 1] == "2"
    port = int(cmd[cmd.index("--main_process_port") + 1])
    assert port != 29500 and port > 0  # a port of its own: two launches at once must not collide
    single = cli.launch_command("sweep", {"accelerate_config": "c.yaml"}, [])
    assert single[single.index("--config_file") + 1] == "c.yaml" and "--multi_gpu" not in single


@pytest.mark.parametrize("argv, message", [
    (["run", "--num_processes", "two"], "--num_processes 'two' must be a whole number"),
    (["env", "--num_processes", "2"], "'env' runs on one process"),
    (["run", "--num_processes"], "--num_processes needs a value"),
])  # fmt: skip
def test_bad_launch_flags_fail_in_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_env_names_versions_and_settings(capsys):
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    for key in ("python:", "torch:", "transformers:", "accelerate:", "feature cache:", "HF_HUB_OFFLINE:"):
        assert key in out


def test_python_dash_m_run_help_names_its_sections_without_loading_models():
    out = subprocess.run([sys.executable, "-m", "w2s_hf", "run", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("usage: w2s run [--config FILE.yaml]")
    for section in ("models (weak and strong representations):", "task (data, targets, split):", "--config FILE.yaml"):
        assert section in text
    assert "--no_plot, --no-plot  Turn off --plot." in text


def test_a_bad_flag_of_a_subcommand_is_one_line():
    out = subprocess.run([sys.executable, "-m", "w2s_hf", "run", "--weak_modle", "x"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Did you mean --weak_model?" in lines[0]
