"""Helpers that turn tables and plots into Dagster UI metadata."""


import base64
from pathlib import Path
from typing import Sequence

import dagster as dg


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, floats: int = 4) -> str:
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())

    def cell(v):
        if isinstance(v, float):
            return f"{v:.{floats}f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def table_metadata(rows: Sequence[dict], columns: Sequence[str] | None = None) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(rows, columns))


def image_metadata(png: bytes | Path, alt: str = "plot") -> dg.MetadataValue:
    """Embed a (small) PNG in the asset's metadata so the UI shows it inline."""
    data = png.read_bytes() if isinstance(png, Path) else png
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})")


def rows_of(con, sql: str, params: dict | None = None) -> list[dict]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
