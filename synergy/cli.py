"""The `synergy` command: run the pipeline, query the warehouse, manage backbones.

Every command that computes something goes through the Dagster Definitions in `pipelines`, so the
CLI and the UI share one code path. Errors the user can fix print one line, not a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from synergy.errors import SynergyError


def _store_and_registry(args):
    from pipelines import settings
    from storage.layout import FeatureStore
    from synergy.registry import load_registry

    if getattr(args, "registry", None):
        os.environ["SYNERGY_REGISTRY"] = args.registry
    if getattr(args, "store", None):
        os.environ["SYNERGY_STORE"] = args.store
    return FeatureStore(settings.store_root()), load_registry(settings.registry_path())


def cmd_demo(args) -> int:
    """Materialize everything for the registry (the demo by default) and print the summary."""
    store, registry = _store_and_registry(args)
    from pipelines.instance import get_instance

    instance = get_instance()
    from pipelines.definitions import defs
    from pipelines.runner import materialize_all

    start = time.perf_counter()
    report = materialize_all(defs, instance, registry, force=args.force)
    elapsed = time.perf_counter() - start
    print(f"\npipeline: {report.runs} runs, {report.skipped} partitions already up to date, "
          f"{elapsed / 60:.1f} min ({', '.join(f'{k} {v:.0f}s' for k, v in report.seconds_by_stage.items())})")
    from synergy.summary import print_summary

    print_summary(store, registry)
    return 0


def cmd_summary(args) -> int:
    store, registry = _store_and_registry(args)
    from synergy.summary import print_summary

    print_summary(store, registry)
    return 0


# `synergy sql` runs queries, never changes: only these statement types get to the database.
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


def check_read_only_sql(query: str) -> None:
    """Refuse anything but queries (DDL, DML, COPY, ATTACH, SET, LOAD, ...) before it reaches DuckDB."""
    import re

    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise SynergyError(f"query failed: {str(exc).strip()}") from None
    if not statements:
        raise SynergyError("empty query")
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: check what it explains
            inner = re.sub(r"^\s*EXPLAIN\s+(\([^)]*\)\s*)?(ANALY[SZ]E\s+)?", "", statement.query, flags=re.IGNORECASE)
            try:
                kinds = [s.type.name for s in duckdb.extract_statements(inner)]
            except duckdb.Error:
                kinds = ["UNKNOWN"]
            kind = next((k for k in kinds if k not in READ_ONLY_STATEMENTS), kind)
        if kind not in READ_ONLY_STATEMENTS:
            raise SynergyError(
                f"synergy sql is read-only: {kind} statements are refused. Only queries run here (SELECT, FROM, "
                "WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN); the pipeline rebuilds the warehouse, and files can be "
                "read only under the store root.")


def cmd_sql(args) -> int:
    store, _ = _store_and_registry(args)
    from storage.warehouse import connect_readonly
    from synergy.summary import print_rows

    check_read_only_sql(args.query)
    con = connect_readonly(store.warehouse.path)
    try:
        cur = con.execute(args.query)
        columns = [d[0] for d in cur.description] if cur.description else []
        print_rows(columns, cur.fetchmany(args.limit))
    except Exception as exc:  # duckdb errors: the message is the useful part
        message = str(exc).strip()
        if "disabled by configuration" in message or "read-only mode" in message:
            message += (f"\n(synergy sql opens the warehouse read-only and reads files only under the store root "
                        f"{store.local_root()})")
        raise SynergyError(f"query failed: {message}") from None
    finally:
        con.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synergy", description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="registry YAML (default: $SYNERGY_REGISTRY or registry/demo.yaml)")
    parser.add_argument("--store", help="store root (default: $SYNERGY_STORE or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize every asset for the registry and print the summary")
    demo.add_argument("--force", action="store_true", help="re-run partitions that are already materialized")
    demo.set_defaults(func=cmd_demo)
    summary = sub.add_parser("summary", help="print the summary tables from the warehouse")
    summary.set_defaults(func=cmd_summary)
    sql = sub.add_parser("sql", help="run a read-only SQL query against the warehouse")
    sql.add_argument("query")
    sql.add_argument("--limit", type=int, default=200, help="rows to print (default 200)")
    sql.set_defaults(func=cmd_sql)
    from synergy.cli_backbones import add_backbones_parser  # `backbones list|add|remove`

    add_backbones_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SynergyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
