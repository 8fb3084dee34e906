"""An argparse parser built from dataclasses, light enough that `--help` prints before any heavy import.

It reads fields the way `transformers.HfArgumentParser` does (the scripts' flags are unchanged):
`--name` and `--name-with-dashes` per field; `X | None` takes X; a bool takes `--flag`, `--flag
true/false`, and a True default also gets `--no_flag`; `list[X]` takes one or more values; a field's
metadata (help, choices, ...) goes to `add_argument`. Importing `transformers` for that parser cost
3-40 s under load before `--help` or a bad flag could answer (issue 25); this module needs only the
standard library.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from argparse import SUPPRESS, ArgumentDefaultsHelpFormatter, ArgumentParser, ArgumentTypeError
from collections.abc import Iterable
from typing import Any


def string_to_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise ArgumentTypeError(f"Truthy value expected: got {value} but expected one of yes/no, true/false, t/f, y/n, "
                            "1/0 (case insensitive).")


def _base_type(hint: Any) -> Any:
    """X for `X | None` (and `Optional[X]`); the hint itself otherwise."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise ValueError(f"only `X | None` unions are supported, got {hint}")
        return args[0]
    return hint


class DataclassArgumentParser(ArgumentParser):
    """`ArgumentParser` with one option per field of `dataclass_types`; see the module docstring."""

    def __init__(self, dataclass_types: Any | Iterable[Any], **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        self.dataclass_types = list(dataclass_types) if isinstance(dataclass_types, (list, tuple)) \
            else [dataclass_types]
        for cls in self.dataclass_types:
            hints = typing.get_type_hints(cls)
            # a class's `_argument_group_name` makes its fields a section of --help (as HfArgumentParser does)
            group = self.add_argument_group(cls._argument_group_name) if hasattr(cls, "_argument_group_name") else self
            for f in dataclasses.fields(cls):
                if f.init:
                    self._add_field(group, f, hints[f.name])

    def _add_field(self, group: Any, f: dataclasses.Field, hint: Any) -> None:
        options = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        kwargs = dict(f.metadata)
        kind = _base_type(hint)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if kind is bool:
            kwargs.update(type=string_to_bool, nargs="?", const=True, default=default if has_default else False)
        elif typing.get_origin(kind) is list:
            kwargs.update(type=typing.get_args(kind)[0], nargs="+")
        else:
            kwargs["type"] = kind
        if kind is not bool:
            if has_default:
                kwargs["default"] = default
            else:
                kwargs["required"] = True
        group.add_argument(*options, **kwargs)
        if kind is bool and f.default is True:
            group.add_argument(f"--no_{f.name}", f"--no-{f.name.replace('_', '-')}", action="store_false",
                              dest=f.name, default=SUPPRESS, help=f"Turn off --{f.name}.")

    def parse_args_into_dataclasses(self, args: list[str] | None = None) -> tuple[Any, ...]:
        """One instance per dataclass, from `args` (default: sys.argv[1:])."""
        namespace = self.parse_args(args=args)
        values = vars(namespace)
        return tuple(cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.init})
                     for cls in self.dataclass_types)
