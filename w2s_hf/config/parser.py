"""One command-line parser for every script: dataclass fields as flags, plus `--config file.yaml`.

`W2SArgumentParser(dataclasses).parse_args_and_config(argv)` (after TRL's `TrlParser`): defaults
< values in the YAML file < flags on the command line. A YAML file may be flat (`weak_model: ...`)
or grouped (`weak: {model: ...}` -> `weak_model`). An unknown key, in the file or on the command
line, raises `ConfigError` with a did-you-mean hint. `choices` in a field's metadata shows in `--help`.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import types
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from ..errors import ConfigError


def _hint(key: str, known: set[str], flag: bool = False) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    if not close:
        return ""
    return f" Did you mean --{close[0]}?" if flag else f" Did you mean {close[0]!r}?"


# Groups that are sections of the config, not roles: `head: {ridge: 0}` is `ridge`, not `head_ridge`.
SECTIONS = ("head", "run", "lora")


def load_yaml(path: str | os.PathLike, known: set[str]) -> dict[str, Any]:
    """Read a YAML config file into a flat {key: value} dict whose keys are all in `known`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist.")
    try:
        with open(path) as fh:
            values = yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML{where}: {problem}.") from None
    if not isinstance(values, dict):
        raise ConfigError(f"Config file {str(path)!r} must hold a mapping of keys to values.")
    return flatten(values, known, f"config file {str(path)!r}")


def flatten(values: dict[str, Any], known: set[str], source: str) -> dict[str, Any]:
    """Grouped keys flattened (`weak: {model: x}` -> `weak_model`; a section `head: {ridge: 0}` -> `ridge`),
    every key checked against `known`."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            prefix = "" if key in SECTIONS else f"{key}_"
            flat.update({f"{prefix}{sub}": inner for sub, inner in value.items()})
        else:
            flat[str(key)] = value
    for key in flat:
        if key not in known:
            raise ConfigError(f"Unknown key {key!r} in {source}.{_hint(key, known)}")
    return flat


def check_types(values: dict[str, Any], dataclass_types, path: str) -> None:
    """A YAML value of the wrong type is an error naming the file, the key and the value."""
    import typing

    for cls in dataclass_types:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            value, hint = values[f.name], hints.get(f.name)
            # only a Union (X | None) is unpacked: list[str] is a list, not a str
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            args = typing.get_args(hint) if union else ()
            optional = type(None) in args
            base = [a for a in args if a is not type(None)] if args else [hint]
            if value is None:
                if not optional:
                    raise ConfigError(f"Config file {path!r}: {f.name}: null is not allowed; give a value "
                                      f"(default {f.default!r}) or drop the key.")
                continue
            kind = base[0] if len(base) == 1 else None
            ok = True
            if kind is bool:
                ok = isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif kind is str:
                ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            elif isinstance(kind, type) and issubclass(kind, str):  # a parsed type (Ridge): its constructor checks
                try:
                    kind(value, key=f.name)
                except ConfigError as err:
                    raise ConfigError(f"Config file {path!r}: {err}") from None
            if not ok:
                raise ConfigError(f"Config file {path!r}: {f.name}: {value!r} is not a valid {kind.__name__}.")


class W2SArgumentParser(HfArgumentParser):
    """`HfArgumentParser` with `--config file.yaml` and did-you-mean errors for unknown keys."""

    def _describe_flags(self, yaml_config: bool) -> None:
        """What `--help` shows beyond the fields: `--config`, and `--no_<key>` said as what it does."""
        if yaml_config and "--config" not in self._option_string_actions:
            # help only: --config is taken out of argv before parsing (SUPPRESS keeps it out of the namespace)
            self.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE.yaml",
                              help="YAML file of keys (flat, or grouped as weak: {model: ...}); flags override it.")
        for action in self._actions:
            negated = [o for o in action.option_strings if o.startswith(("--no_", "--no-"))]
            if negated and action.const is False:
                action.help = f"Turn off --{action.dest}."

    def known_keys(self) -> set[str]:
        return {f.name for cls in self.dataclass_types for f in dataclasses.fields(cls)}

    def parse_args_and_config(self, argv: list[str] | None = None, *, yaml_config: bool = True,
                              convert: dict[str, Any] | None = None) -> tuple:
        """Parse `[--config file.yaml] [--key value ...]` into one instance per dataclass.

        With `yaml_config=False`, `--config` is an ordinary field of the dataclasses (a file the
        script reads itself). `convert` maps a key to a function applied to its YAML value.
        """
        argv = list(sys.argv[1:] if argv is None else argv)
        values: dict[str, Any] = {}
        self._describe_flags(yaml_config)
        if yaml_config and "--config" in argv:
            i = argv.index("--config")
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a path to a YAML file.")
            values = load_yaml(argv[i + 1], self.known_keys())
            check_types(values, self.dataclass_types, argv[i + 1])
            del argv[i : i + 2]
        options = {opt[2:] for opt in self._option_string_actions if opt.startswith("--")}
        for arg in argv:
            if arg.startswith("--"):
                key = arg[2:].split("=", 1)[0]
                if key not in options:
                    raise ConfigError(
                        f"Unknown command-line option --{key}.{_hint(key, self.known_keys(), flag=True)}"
                    )
        convert = convert or {}
        self.set_defaults(**{k: convert[k](v) if k in convert else v for k, v in values.items()})
        return tuple(self.parse_args_into_dataclasses(args=argv))
