"""The demo summary: per-backbone accuracy, oracle and ensemble results, read from the warehouse."""

from __future__ import annotations

from typing import Sequence

import duckdb


def print_rows(columns: Sequence[str], rows: Sequence[tuple], title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    if not rows:
        print("(no rows)")


def _try(con, title: str, sql: str, params: dict | None = None) -> None:
    try:
        cur = con.execute(sql, params or {})
    except duckdb.CatalogException:
        return  # that stage has not been materialized yet
    print_rows([d[0] for d in cur.description], cur.fetchall(), title)


def print_summary(store, registry) -> None:
    from storage.warehouse import connect_readonly, query_sql

    con = connect_readonly(store.warehouse.path)
    try:
        for dataset in registry.dataset_keys:
            _try(con, f"== {dataset}: accuracy per backbone", query_sql("accuracy_by_backbone"), {"dataset": dataset})
        _try(con, "== oracle (test split): share of examples at least one backbone gets right",
             "SELECT * FROM oracle_summary ORDER BY dataset")
        _try(con, "== ensembles (test split, mean ± std over seeds)", query_sql("ensemble_summary")
             if _has_query("ensemble_summary") else "SELECT * FROM ensemble_summary")
    finally:
        con.close()


def _has_query(name: str) -> bool:
    from storage.warehouse import SQL_DIR

    return (SQL_DIR / "queries" / f"{name}.sql").is_file()
