"""The DuckDB warehouse: views over the Parquet store, defined in `storage/sql/views/*.sql`.

The views hold the store's absolute path, so the SQL files say `{{store}}` where it goes and
`render` substitutes a quoted literal. Registry facts (which backbones and datasets are active)
are small tables copied in at build time; every view filters on them, so a removed backbone
drops out of the analyses while its files stay in the store.

The file is built beside the old one and swapped in with os.replace: readers that have the old
file open keep a consistent snapshot, new readers get the new one, nobody sees a half-built file.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

import duckdb
import pyarrow as pa

from storage.atomic import _fsync_dir, _pid_alive, read_metadata
from storage.layout import FeatureStore
from synergy.errors import StoreError
from synergy.registry import Registry

SQL_DIR = Path(__file__).parent / "sql"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def render(sql: str, **values: str) -> str:
    """Replace `{{name}}` with a quoted SQL string literal (paths only; never user SQL)."""
    def sub(match: re.Match) -> str:
        if match.group(1) not in values:
            raise KeyError(f"SQL placeholder {{{{{match.group(1)}}}}} has no value")
        return sql_literal(values[match.group(1)])

    return _PLACEHOLDER.sub(sub, sql)


def query_sql(name: str) -> str:
    """The text of `storage/sql/queries/<name>.sql` (parameterised with $name placeholders)."""
    path = SQL_DIR / "queries" / f"{name}.sql"
    if not path.is_file():
        raise StoreError(f"no SQL query file {path}")
    return path.read_text()


def view_files() -> list[Path]:
    return sorted((SQL_DIR / "views").glob("*.sql"))


def registry_tables(store: FeatureStore, registry: Registry) -> dict[str, pa.Table]:
    """The active backbones (with what extraction learnt about them) and datasets, as Arrow tables."""
    rows = []
    for b in registry.backbones:
        info_path = store.backbone_info(b.key)
        info = read_metadata(info_path) if info_path.exists() else {}
        rows.append({"backbone": b.key, "model": b.model, "family": b.family,
                     "pretrained": b.pretrained or f"trained here on {b.train.dataset}",
                     "weights_sha256": info.get("weights_sha256"), "embed_dim": info.get("embed_dim"),
                     "image_params": info.get("image_params"), "image_gflops": info.get("image_gflops"),
                     "ms_per_image": info.get("ms_per_image")})
    backbones = pa.Table.from_pylist(rows, schema=pa.schema([
        ("backbone", pa.string()), ("model", pa.string()), ("family", pa.string()), ("pretrained", pa.string()),
        ("weights_sha256", pa.string()), ("embed_dim", pa.int32()), ("image_params", pa.int64()),
        ("image_gflops", pa.float64()), ("ms_per_image", pa.float64())]))
    datasets = pa.Table.from_pylist([
        {"dataset": d.key, "source": d.source, "n_classes": d.n_classes, "class_names": list(d.classes),
         "base_dataset": d.base or d.key, "n_perturbations": len(d.perturbations)}
        for d in registry.datasets
    ], schema=pa.schema([("dataset", pa.string()), ("source", pa.string()), ("n_classes", pa.int32()),
                         ("class_names", pa.list_(pa.string())), ("base_dataset", pa.string()),
                         ("n_perturbations", pa.int32())]))
    return {"backbones": backbones, "datasets": datasets}


def create_views(con: duckdb.DuckDBPyConnection, store: FeatureStore, registry: Registry) -> dict[str, list[str]]:
    """Create registry tables and every view file's views on `con`; return {'created': [...], 'skipped': [...]}.

    A view file whose Parquet files do not exist yet (a stage not materialized) is skipped and reported.
    """
    for name, table in registry_tables(store, registry).items():
        con.register(f"_{name}_arrow", table)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _{name}_arrow")
        con.unregister(f"_{name}_arrow")
    created, skipped = [], []
    for path in view_files():
        try:
            con.execute(render(path.read_text(), store=store.local_root()))
            created.append(path.stem)
        except (duckdb.IOException, duckdb.CatalogException, duckdb.BinderException) as exc:
            if "No files found" not in str(exc) and "does not exist" not in str(exc):
                raise
            skipped.append(path.stem)
    return {"created": created, "skipped": skipped}


def connect_memory(store: FeatureStore, registry: Registry) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with every view: what assets use, so they never wait on the file."""
    con = duckdb.connect()
    create_views(con, store, registry)
    return con


def build_warehouse(store: FeatureStore, registry: Registry) -> dict[str, list[str]]:
    """Build `<root>/warehouse.duckdb` beside the old one and swap it in atomically.

    Readers never see a half-built file: a connection opened before the swap keeps reading the old
    file (its inode stays alive while open), one opened after gets the new file, complete and
    checkpointed. The builder never opens the final path, so it takes no lock a reader could hit.
    """
    if not store.is_local:
        raise StoreError("the DuckDB warehouse file lives on a local store; set SYNERGY_STORE to a local path")
    final = Path(store.warehouse.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_builds(final)
    tmp = final.with_name(f".{final.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}{_BUILDING}")
    try:
        con = duckdb.connect(str(tmp))
        try:
            result = create_views(con, store, registry)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return result


_BUILDING = ".building"


def _clean_stale_builds(final: Path) -> None:
    """Delete half-built warehouse files (and their WALs) left by dead builders on this host."""
    host = socket.gethostname()
    for leftover in final.parent.glob(f".{final.name}.*{_BUILDING}*"):
        middle = leftover.name[len(final.name) + 2:].split(_BUILDING)[0]
        parts = middle.rsplit(".", 2)
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            leftover.unlink(missing_ok=True)


# What `synergy sql` and every other reader may do: read the views, and files under the store root only.
def confine(con: duckdb.DuckDBPyConnection, roots: list[str | Path]) -> None:
    """Limit file access of `con` to `roots`, then lock the configuration so a query cannot undo it."""
    dirs = sorted({os.path.join(os.path.abspath(str(r)), "") for r in roots}
                  | {os.path.join(os.path.realpath(str(r)), "") for r in roots})
    con.execute(f"SET allowed_directories = [{', '.join(sql_literal(d) for d in dirs)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def connect_readonly(path: str | Path, allowed_dirs: list[str | Path] | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only, with file access confined to the store root (the warehouse's folder).

    Nothing can be written (the file is attached READ_ONLY, so DDL and DML are refused), extensions
    cannot be installed, and table functions such as read_csv/read_text see only files under the
    store root, which is where every view reads its Parquet files.

    Each call gets its own in-memory DuckDB instance with the file attached. `duckdb.connect(path)`
    would share one instance per path within a process: a connection left open would then pin the
    old file after a rebuild swapped in a new one, and its settings would leak into other callers.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no warehouse at {path}: run `make demo` or materialize the `warehouse` asset first")
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {sql_literal(str(path.resolve()))} AS warehouse (READ_ONLY)")
        con.execute("USE warehouse")
        confine(con, allowed_dirs if allowed_dirs is not None else [path.parent])
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"cannot open the warehouse {path} read-only: {str(exc).strip().splitlines()[0]}") from None
    except BaseException:
        con.close()
        raise
    return con
