"""Markdown tables: the one way every report, model card and experiment writes them.

Rows are a mapping ``row name -> {column: value}`` (columns in order of first appearance; a row
without a column, or with None in it, shows an empty cell); floats are formatted with
``floatfmt``, everything else with ``str``. Cells are not padded, so a row reads
``| name | 1.23 | ... |`` in the text and diffs of committed reports stay small.
"""

from __future__ import annotations

from typing import Any, Mapping


def _cell(value: Any, floatfmt: str) -> str:
    if value is None:
        return ""
    return format(value, floatfmt) if isinstance(value, float) else str(value)


def markdown_table(rows: Mapping[str, Mapping[str, Any]], first: str = "", floatfmt: str = ".3f",
                   empty: str = "(no data)") -> str:
    """A table with one line per non-empty row (its name in the first column, headed ``first``)
    and one column per key of any row (in order of first appearance); ``empty`` when there is no
    non-empty row."""
    rows = {name: row for name, row in rows.items() if row}
    if not rows:
        return empty + "\n"
    columns = list(dict.fromkeys(key for row in rows.values() for key in row))
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row.get(c, ""), floatfmt) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def key_value_table(values: Mapping[str, Any], floatfmt: str = ".6g", empty: str = "(none recorded)") -> str:
    """A two-column ``name | value`` table of ``values``, sorted by name."""
    if not values:
        return empty + "\n"
    lines = ["| name | value |", "| --- | --- |"]
    lines += [f"| {k} | {_cell(v, floatfmt)} |" for k, v in sorted(values.items())]
    return "\n".join(lines) + "\n"
