"""The `w2s` command: one entry point over the library, a subcommand per job.

    w2s run                                   # ESOL, packaged SMILES models, one process
    w2s run --num_processes 2 --task lipophilicity --split random
    w2s run --accelerate_config accelerate_configs/cpu_2proc.yaml --config my_run.yaml
    w2s sweep --config scripts/configs/sweep/figure2/esol_scaffold.yaml
    w2s env                                   # versions and settings, for bug reports
    python -m w2s_hf run --help               # the same, without the console script

A subcommand runs in this process, or, given `--num_processes N` or `--accelerate_config FILE`, hands
itself to `accelerate launch` (as `trl` does): the launcher starts N copies of
`python -m w2s_hf <subcommand> ...`. `accelerate launch ... -m w2s_hf run` works as well. Every other
flag is the subcommand's own (`w2s <subcommand> --help`); YAML files given with `--config` are
overridden by flags. Only the chosen subcommand's module is imported, so `--help` stays fast.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

# subcommand -> (module with main(argv) -> int, can run on several processes, one line of help)
COMMANDS: dict[str, tuple[str, bool, str]] = {
    "run": ("w2s_hf.commands.run", True, "one weak-to-strong run with the misfit decomposition"),
    "sweep": ("w2s_hf.commands.sweep", True, "weak models x seeds against one strong model: gain vs misfit"),
    "extract": ("w2s_hf.commands.extract", True, "extract and cache frozen features of any model"),
    "pretrain": ("w2s_hf.commands.pretrain", True, "pretrain, evaluate, ship SMILES transformers"),
    "synthetic": ("w2s_hf.commands.synthetic", False, "the paper's synthetic experiment (no HF model)"),
    "preference-panels": ("w2s_hf.commands.preference_panels", False, "tables and figure of preference sweeps"),
    "choose-on-val": ("w2s_hf.commands.choose_on_val", False, "strong model and teachers, chosen on val"),
    "qsar-figure": ("w2s_hf.commands.qsar_figure", False, "the paper's Figure 2 d-f from finished sweeps"),
    "scaling": ("w2s_hf.commands.scaling", True, "weak, w2s and ceiling errors against N: power-law exponents"),
    "teachers": ("w2s_hf.commands.teachers", True, "a convex mixture of weak teachers as one teacher"),
    "summarize": ("w2s_hf.commands.summarize", False, "tables and figures over finished sweeps"),
    "lora-experiment": ("w2s_hf.experiments.lora", True, "the linear student against the LoRA student"),
    "env": ("w2s_hf.commands.env", False, "versions and settings, to paste into a bug report"),
}
_LAUNCH_FLAGS = ("--num_processes", "--accelerate_config")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: w2s <command> [--num_processes N | --accelerate_config FILE] [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text) in COMMANDS.items()]
    lines += ["", "`w2s <command> --help` lists a command's options."]
    return "\n".join(lines)


def split_launch_flags(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """(launcher flags, the rest): `--num_processes N` and `--accelerate_config FILE` go to the launcher."""
    launch, rest, i = {}, [], 0
    while i < len(argv):
        key, sep, value = argv[i].partition("=")
        if key in _LAUNCH_FLAGS:
            if not sep:
                if i + 1 >= len(argv):
                    raise ValueError(f"{key} needs a value.")
                value, i = argv[i + 1], i + 1
            launch[key[2:]] = value
        else:
            rest.append(argv[i])
        i += 1
    return launch, rest


def launch_command(command: str, launch: dict[str, str], argv: list[str]) -> list[str]:
    """The `accelerate launch` command line that runs `python -m w2s_hf <command> argv` on several processes."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if "accelerate_config" in launch:
        cmd += ["--config_file", launch["accelerate_config"]]
    # a free rendezvous port of its own, so two launches on one machine never collide on the default one
    cmd += ["--main_process_port", str(free_port())]
    if "num_processes" in launch:
        n = launch["num_processes"]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--num_processes {n!r} must be a whole number >= 1.")
        cmd += ["--num_processes", n]
        # on a CPU, several processes need the multi-GPU launcher (gloo); `--cpu` would start only one
        if int(n) > 1 and "accelerate_config" not in launch:
            cmd += ["--multi_gpu"]
    return cmd + ["-m", "w2s_hf", command, *argv]


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    """The `w2s` command; with `argv` None (the console script, the process's entry) the process ends after it."""
    if argv is not None:
        return _main(list(argv))
    from .commands import exiting

    return exiting(_main(sys.argv[1:]))


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"error: unknown command {command!r}.{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    module, parallel, _ = COMMANDS[command]
    try:
        launch, rest = split_launch_flags(rest)
        if launch and not parallel:
            raise ValueError(f"{command!r} runs on one process: drop {', '.join('--' + k for k in launch)}.")
        if launch and "--help" not in rest and "-h" not in rest:
            return subprocess.call(launch_command(command, launch, rest))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return int(importlib.import_module(module).main(rest) or 0)


def __getattr__(name: str):
    # before the `w2s` command, w2s_hf.cli held the argument parser: keep those names working
    if name in ("W2SArgumentParser", "load_yaml"):
        return getattr(importlib.import_module("w2s_hf.config.parser"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
