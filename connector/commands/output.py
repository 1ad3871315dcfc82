"""Plain table / JSON / CSV output for the CLI, without extra dependencies."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

import click


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 60) -> str:
    cells = [[_cell(v) for v in r] for r in rows]
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
        click.echo(json.dumps([dict(zip(headers, [(_cell(v) if hasattr(v, "strftime") else v) for v in r]))
                               for r in rows], ensure_ascii=False, indent=2, default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(headers)
        for r in rows:
            w.writerow([_cell(v) for v in r])
        click.echo(buf.getvalue(), nl=False)
    elif not rows:
        click.echo(empty)
    else:
        click.echo(render_table(headers, rows, max_width=1000 if fmt == "wide" else 60))
