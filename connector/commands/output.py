"""Plain table / JSON / CSV output for the CLI, without extra dependencies."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

import click

from connector.safety import formula_safe, terminal_safe

# C1 controls and the Unicode separators/bidi overrides json.dumps(ensure_ascii=False) leaves raw.
_JSON_UNSAFE = {c: f"\\u{c:04x}" for c in [*range(0x7f, 0xa0), 0x2028, 0x2029, *range(0x202a, 0x202f),
                                            *range(0x2066, 0x206a)]}


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def _csv_cell(v: Any) -> str:
    """Numbers as they are; text through ``formula_safe`` (a customer name "=HYPERLINK(...)" stays text)."""
    if isinstance(v, (int, float)) or hasattr(v, "quantize"):
        return _cell(v)
    return formula_safe(terminal_safe(_cell(v), keep="\t\r\n"))


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 60) -> str:
    """A plain text table; every cell is ``terminal_safe`` (no escape sequence from data reaches the terminal)."""
    headers = [terminal_safe(h) for h in headers]
    cells = [[terminal_safe(_cell(v)) for v in r] for r in rows]
    # The last column (reasons, what to do) is never cut: it is the part a human must read whole.
    cells = [[c if len(c) <= max_width or i == len(r) - 1 else c[: max_width - 1] + "…" for i, c in enumerate(r)]
             for r in cells]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(out)


def emit(fmt: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str = "nothing to show") -> None:
    if fmt == "json":
        text = json.dumps([dict(zip(headers, [(_cell(v) if hasattr(v, "strftime") else v) for v in r]))
                           for r in rows], ensure_ascii=False, indent=2, default=str)
        click.echo(text.translate(_JSON_UNSAFE))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(headers)
        for r in rows:
            w.writerow([_csv_cell(v) for v in r])
        click.echo(buf.getvalue(), nl=False)
    elif not rows:
        click.echo(empty)
    else:
        click.echo(render_table(headers, rows, max_width=1000 if fmt == "wide" else 60))
