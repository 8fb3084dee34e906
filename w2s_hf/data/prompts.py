"""Prompt templates over a row's columns: `"Question: {question}\\nAnswer: {answer}"` -> one input text per row.

A template is Python `str.format` syntax with column names as fields (`{{` and `}}` are literal braces).
It is checked against the table before any row is rendered: a field naming a missing column, a
positional field (`{}`, `{0}`) or an attribute / index (`{a.b}`, `{a[0]}`) is one error naming the
template, the field and the columns there are. A used cell that is missing (NaN, None) is an error
naming the column and rows; an empty string is kept (a template may leave a field blank on purpose).
The rendered text must not be empty. The model-specific wrapping (a tokenizer's chat template) happens
later, per model, in `w2s_hf.features.prompts`.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from .checks import TaskDataError, format_rows

TEMPLATE_COLUMN = "__template__"  # where a rendered template lands in the table


def template_fields(template: str, where: str | Path = "template") -> list[str]:
    """The column names a template reads, in order of first use; a malformed template is an error."""
    if not isinstance(template, str) or not template.strip():
        raise TaskDataError(f"{where}: template {template!r} is empty; give text with {{column}} fields")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TaskDataError(f"{where}: template {template!r} is not valid str.format syntax ({exc}); "
                            "write literal braces as {{ and }}") from exc
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or any(c in name for c in ".[]"):
            raise TaskDataError(f"{where}: template field {{{name}}} must name a column (e.g. {{question}}); "
                                "positional, attribute and index fields are not allowed")
        if spec or conversion:
            raise TaskDataError(f"{where}: template field {{{name}{'!' + conversion if conversion else ''}"
                                f"{':' + spec if spec else ''}}} has a conversion or format spec; use plain "
                                f"{{{name}}}")
        if name not in fields:
            fields.append(name)
    if not fields:
        raise TaskDataError(f"{where}: template {template!r} names no column; the same text for every row "
                            "carries no information")
    return fields


def render_template(frame: Any, template: str, where: str | Path) -> list[str]:
    """One rendered text per row of `frame` (a pandas table); every failure names column and rows."""
    fields = template_fields(template, where)
    missing = [f for f in fields if f not in frame.columns]
    if missing:
        raise TaskDataError(f"{where}: template {template!r} names column(s) {missing} that the data lacks; "
                            f"available columns: {', '.join(repr(str(c)) for c in frame.columns)}",
                            path=str(where), column=missing[0])
    columns = {f: frame[f].tolist() for f in fields}
    for name, values in columns.items():
        bad = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
        if bad:
            raise TaskDataError(f"{where}: column {name!r}, used by the template, is missing in "
                                f"{format_rows([i + 1 for i in bad])}; fill or drop these rows",
                                path=str(where), column=name, rows=[i + 1 for i in bad])
    out = [template.format(**{f: _cell(columns[f][i]) for f in fields}) for i in range(len(frame))]
    empty = [i for i, text in enumerate(out) if not text.strip()]
    if empty:
        raise TaskDataError(f"{where}: the template renders empty text in {format_rows([i + 1 for i in empty])}",
                            path=str(where), rows=[i + 1 for i in empty])
    return out


def _cell(value: Any) -> str:
    """A cell as text: lists (Hub sequence columns) joined by newlines, everything else str()."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return "\n".join(str(v) for v in value)
    return str(value)
