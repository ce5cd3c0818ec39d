"""Concurrent writers and readers, as real processes: partitions land whole, readers never see a half-built warehouse."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
from reliability_support import (finish, load_helper, python, start_helper, store_registry, wait_for_line,
                                 write_examples_table)

from storage.layout import FeatureStore
from storage.warehouse import build_warehouse, connect_readonly
from synergy.registry import load_registry

BATCHES, ROWS, SLEEP = 25, 200, 0.04  # about a second of writing each, so the two writers overlap


def _start_together(tmp_path: Path, jobs: list[tuple[str, str, str]]) -> list[subprocess.Popen]:
    """Start writers for (backbone, dataset, tag); release them at once when all are up."""
    store, barrier = tmp_path / "store", tmp_path / f"go-{len(list(tmp_path.glob('go-*')))}"
    procs = [start_helper("write_partition", store, b, d, tag, "--batches", BATCHES, "--rows", ROWS, "--sleep", SLEEP,
                          "--barrier", barrier) for b, d, tag in jobs]
    for proc in procs:
        wait_for_line(proc, "started")
    barrier.touch()
    return procs


def test_concurrent_writers_different_partitions_land_and_same_partition_is_one_version(tmp_path):
    """Three processes at once: two write the same partition (b1), one another (b2)."""
    writer = load_helper("write_partition")
    versions = {tag: writer.expected_table(tag, BATCHES, ROWS) for tag in ("alpha", "beta", "other")}
    procs = _start_together(tmp_path, [("b1", "d", "alpha"), ("b1", "d", "beta"), ("b2", "d", "other")])
    outputs = [finish(proc) for proc in procs]
    assert all(out.count("batch ") == BATCHES for out in outputs)
    store = FeatureStore(str(tmp_path / "store"))

    # a different partition written at the same time is intact
    assert pq.read_table(store.embeddings("b2", "d").path).equals(versions["other"])
    # the contested partition is exactly one writer's table, never a mix of row groups
    path = store.embeddings("b1", "d").path
    winner = "alpha" if b'"alpha"' in pq.read_metadata(path).metadata[b"synergy"] else "beta"
    table = pq.read_table(path)
    assert table.num_rows == BATCHES * ROWS and table.equals(versions[winner])
    for backbone in ("b1", "b2"):
        folder = Path(store.embeddings(backbone, "d").path).parent
        assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"], "no temporary file is left behind"


def test_readers_during_rebuilds_see_whole_warehouses_and_no_lock_errors(tmp_path):
    """A process rebuilds the warehouse in a loop, alternating two registries; this one reads it meanwhile."""
    writer = load_helper("write_partition")
    store_root = tmp_path / "store"
    for b in ("b1", "b2"):
        writer.write(str(store_root), b, "d", b, batches=2, rows=50, sleep=0)
    write_examples_table(store_root, "d")
    both = store_registry(tmp_path / "both.yaml", ["b1", "b2"], ["d"])
    one = store_registry(tmp_path / "one.yaml", ["b1"], ["d"])
    store = FeatureStore(str(store_root))

    def snapshot():
        con = connect_readonly(store.warehouse.path)
        try:
            views = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
            counts = con.execute("SELECT backbone, n FROM accuracy ORDER BY backbone").fetchall()
            backbones = con.execute("SELECT backbone FROM backbones ORDER BY 1").fetchall()
            return tuple(views), tuple(counts), tuple(backbones)
        finally:
            con.close()

    expected = {}
    for name, registry in (("one", one), ("both", both)):
        build_warehouse(store, load_registry(registry))
        expected[snapshot()] = name
    assert len(expected) == 2
    views = {v for (v,) in next(iter(expected))[0]}
    assert {"predictions", "embeddings", "accuracy", "examples"} <= views

    held = connect_readonly(store.warehouse.path)  # an analyst's session open across every swap
    try:
        builder = start_helper("rebuild_warehouse", f"{one},{both}", store_root, 5)  # ends on `one`
        wait_for_line(builder, "started")
        seen, reads, errors = set(), 0, []
        while builder.poll() is None:
            try:
                got = snapshot()
                if got in expected:
                    seen.add(expected[got])
                else:
                    errors.append(f"half-built or unexpected warehouse: {got}")
            except Exception as exc:  # a lock error or a missing view is exactly what must not happen
                errors.append(f"{type(exc).__name__}: {exc}")
            reads += 1
        out = finish(builder)
        assert errors == [], errors[:3]
        assert out.count("built ") == 5 and reads >= 3, (reads, out[-200:])
        assert seen == {"one", "both"}, "readers must see the new builds, not a file pinned open"
        # the held session still reads the file it opened (two backbones) while new sessions get the last build
        assert held.execute("SELECT backbone, n FROM accuracy ORDER BY 1").fetchall() == [("b1", 100), ("b2", 100)]
        assert expected[snapshot()] == "one"
    finally:
        held.close()
    assert [p.name for p in store_root.iterdir() if p.name.startswith(".")] == []


def test_a_dead_builders_half_built_file_is_cleaned(tmp_path):
    store_root = tmp_path / "store"
    write_examples_table(store_root, "d")
    registry = load_registry(store_registry(tmp_path / "registry.yaml", ["b"], ["d"]))
    dead = subprocess.run([python(), "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    host = socket.gethostname()
    leftovers = [store_root / f".warehouse.duckdb.{host}.{dead}.00ff00ff.building{suffix}" for suffix in ("", ".wal")]
    for p in leftovers:
        p.write_bytes(b"half a database")
    time.sleep(0.01)
    build_warehouse(FeatureStore(str(store_root)), registry)
    assert not any(p.exists() for p in leftovers)
    assert sorted(p.name for p in store_root.iterdir()) == ["datasets", "warehouse.duckdb"]
