"""`synergy sql` cannot change the warehouse or the store, and reads files only under the store root."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_support import load_helper, store_registry, write_examples_table

from storage.layout import FeatureStore
from storage.warehouse import build_warehouse, connect_readonly
from synergy.cli import main
from synergy.registry import load_registry


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One store and warehouse for the module: every test checks that it leaves them unchanged."""
    tmp_path = tmp_path_factory.mktemp("sql")
    store_root = tmp_path / "store"
    load_helper("write_partition").write(str(store_root), "b", "d", "b", batches=1, rows=20, sleep=0)
    write_examples_table(store_root, "d")
    registry = store_registry(tmp_path / "registry.yaml", ["b"], ["d"])
    build_warehouse(FeatureStore(str(store_root)), load_registry(registry))
    (tmp_path / "secret.csv").write_text("user,password\nroot,hunter2\n")
    (store_root / "notes.csv").write_text("a,b\n1,2\n")
    return tmp_path, store_root, registry


@pytest.fixture
def warehouse(built, monkeypatch):
    _, store_root, registry = built
    # the CLI writes these into os.environ; monkeypatch restores them after the test
    monkeypatch.setenv("SYNERGY_STORE", str(store_root))
    monkeypatch.setenv("SYNERGY_REGISTRY", str(registry))
    return built


def _sql(capsys, warehouse, query: str) -> tuple[int, str, str]:
    _, store_root, registry = warehouse
    code = main(["--store", str(store_root), "--registry", str(registry), "sql", query])
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(store_root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store_root)): p.read_bytes() for p in sorted(store_root.rglob("*")) if p.is_file()}


def test_queries_and_views_work(capsys, warehouse):
    code, out, err = _sql(capsys, warehouse, "SELECT backbone, split, n FROM accuracy ORDER BY 1")
    assert code == 0 and err == "" and "b " in out and "20" in out
    for query in ("SHOW TABLES", "DESCRIBE predictions", "FROM predictions LIMIT 1", "SUMMARIZE backbones",
                  "WITH x AS (SELECT count(*) AS n FROM embeddings) SELECT n FROM x", "EXPLAIN SELECT 1",
                  "SELECT count(*) FROM duckdb_views() WHERE NOT internal"):
        code, out, err = _sql(capsys, warehouse, query)
        assert code == 0 and err == "", (query, err)
    # a table function reading a file under the store root is allowed: the views do exactly that
    code, out, err = _sql(capsys, warehouse, f"SELECT count(*) AS n FROM read_parquet('{warehouse[1]}/embeddings/*/*/*.parquet')")
    assert code == 0 and "20" in out


@pytest.mark.parametrize("query, kind", [
    ("DROP VIEW predictions", "DROP"),
    ("DROP TABLE backbones", "DROP"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("CREATE OR REPLACE VIEW accuracy AS SELECT 1 AS a", "CREATE"),
    ("INSERT INTO backbones (backbone) VALUES ('evil')", "INSERT"),
    ("UPDATE backbones SET model = 'x'", "UPDATE"),
    ("DELETE FROM backbones", "DELETE"),
    ("ALTER VIEW predictions RENAME TO p", "ALTER"),
    ("COPY (SELECT 1) TO '{store}/evil.csv'", "COPY"),
    ("COPY predictions TO '{tmp}/out.parquet'", "COPY"),
    ("EXPORT DATABASE '{tmp}/dump'", "EXPORT"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH"),
    ("ATTACH ':memory:' AS scratch", "ATTACH"),
    ("DETACH warehouse", "DETACH"),
    ("SET enable_external_access = true", "SET"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("CHECKPOINT", "CALL"),
    ("SELECT 1; DROP VIEW predictions", "DROP"),
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{store}/evil.csv'", "COPY"),
])
def test_writes_are_refused_with_a_clear_message(capsys, warehouse, query, kind):
    tmp_path, store_root, _ = warehouse
    before = _snapshot(store_root)
    code, out, err = _sql(capsys, warehouse, query.format(store=store_root, tmp=tmp_path))
    assert code == 1 and out == ""
    assert err.startswith(f"error: synergy sql is read-only: {kind} statements are refused"), err
    assert "Traceback" not in err
    assert _snapshot(store_root) == before, "nothing in the store may change"
    assert not (tmp_path / "out.parquet").exists() and not (tmp_path / "dump").exists()
    assert not (tmp_path / "other.duckdb").exists()


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM read_csv('{tmp}/secret.csv')",
    "SELECT * FROM '{tmp}/secret.csv'",
    "SELECT * FROM read_text('{store}/../secret.csv')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{tmp}/*/embeddings/*/*/*.parquet')",
    "SELECT * FROM read_json('http://127.0.0.1:9/x.json')",
])
def test_file_reading_functions_are_confined_to_the_store_root(capsys, warehouse, query):
    tmp_path, store_root, _ = warehouse
    code, out, err = _sql(capsys, warehouse, query.format(store=store_root, tmp=tmp_path))
    assert code == 1 and "hunter2" not in out + err and "root:" not in out
    assert err.startswith("error: query failed: Permission Error"), err
    assert f"reads files only under the store root {store_root}" in err


def test_files_under_the_store_root_can_be_read(capsys, warehouse):
    _, store_root, _ = warehouse
    code, out, err = _sql(capsys, warehouse, f"SELECT * FROM read_csv('{store_root}/notes.csv')")
    assert code == 0 and "1" in out and err == ""


def test_connect_readonly_refuses_writes_and_outside_files_even_without_the_cli_check(warehouse):
    """Defence in depth: the connection itself is read-only and confined, whatever SQL reaches it."""
    import duckdb

    tmp_path, store_root, _ = warehouse
    con = connect_readonly(FeatureStore(str(store_root)).warehouse.path)
    try:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 20
        for sql in ("DROP VIEW predictions", "CREATE TABLE t (a INT)", "INSERT INTO backbones (backbone) VALUES ('x')"):
            with pytest.raises(duckdb.Error, match="read-only"):
                con.execute(sql)
        for sql in (f"SELECT * FROM read_csv('{tmp_path}/secret.csv')", f"ATTACH '{tmp_path}/x.duckdb' AS x",
                    f"COPY (SELECT 1) TO '{tmp_path}/x.csv'", "SET enable_external_access = true",
                    "SET allowed_directories = ['/']"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        assert not (tmp_path / "x.duckdb").exists() and not (tmp_path / "x.csv").exists()
    finally:
        con.close()
