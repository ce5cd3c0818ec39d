"""SIGKILL a real process in the middle of writing a partition: the store keeps the previous version or none."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from reliability_support import (finish, load_helper, python, sigkill, start_helper, store_registry, wait_for_line,
                                 write_examples_table)

from storage.atomic import clean_stale_tmp
from storage.layout import FeatureStore
from storage.warehouse import build_warehouse, connect_readonly
from synergy.registry import load_registry

BATCHES, ROWS = 60, 400  # what the killed writer would have written: 24,000 rows


def _kill_mid_write(store: Path, folder: Path, tag: str) -> Path:
    """Start a slow writer, wait until it has streamed several row groups, SIGKILL it; return its leftover tmp."""
    proc = start_helper("write_partition", store, "b", "d", tag, "--batches", BATCHES, "--rows", ROWS, "--sleep", 0.2)
    wait_for_line(proc, "batch 3")
    tmps = sorted(folder.glob(".data.parquet.*.tmp"))
    assert len(tmps) == 1 and tmps[0].stat().st_size > 0, "the writer must really be mid-write"
    sigkill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert tmps[0].exists(), "a SIGKILLed writer cannot clean up: its temporary file is left behind"
    return tmps[0]


def _duckdb_rows(store: Path):
    """What a reader globbing the store sees (the glob every view uses)."""
    con = duckdb.connect()
    try:
        return con.execute("SELECT count(*), sum(correct::INT) FROM read_parquet(?)",
                           [FeatureStore(str(store)).glob("embeddings", 2)]).fetchone()
    finally:
        con.close()


def test_sigkill_mid_write_keeps_previous_version_or_none(tmp_path):
    writer = load_helper("write_partition")
    store = tmp_path / "store"
    registry = load_registry(store_registry(tmp_path / "registry.yaml", ["b"], ["d"]))
    part = Path(FeatureStore(str(store)).embeddings("b", "d").path)
    folder = part.parent

    # 1. no previous version: after the kill there is none, and readers see no file at all
    first_tmp = _kill_mid_write(store, folder, "v2")
    assert not part.exists()
    assert [p.name for p in folder.glob("*.parquet")] == []
    with pytest.raises(duckdb.IOException, match="No files found"):
        _duckdb_rows(store)

    # 2. a complete previous version v1; the next write cleans the dead writer's leftover
    writer.write(str(store), "b", "d", "v1", batches=4, rows=100, sleep=0)
    assert not first_tmp.exists(), "the next write of the partition deletes temp files of dead writers"
    v1 = writer.expected_table("v1", 4, 100)
    assert pq.read_table(part).equals(v1)
    write_examples_table(store, "d")
    build_warehouse(FeatureStore(str(store)), registry)

    # 3. kill a writer of v2 mid-write: v1 is still there, whole
    second_tmp = _kill_mid_write(store, folder, "v2")
    table = pq.read_table(part)
    assert table.num_rows == 400 and table.equals(v1)
    assert pq.read_metadata(part).metadata[b"synergy"] == b'{"rows": 400, "writer": "v1"}'
    assert [p.name for p in folder.glob("*.parquet")] == ["data.parquet"], "readers' globs ignore the tmp file"
    assert _duckdb_rows(store) == (400, sum(v1["correct"].to_pylist()))
    for _ in range(2):  # the warehouse built before the crash, then one rebuilt after it
        con = connect_readonly(FeatureStore(str(store)).warehouse.path)
        try:
            assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 400
            assert con.execute("SELECT n FROM accuracy WHERE backbone = 'b'").fetchone()[0] == 400
        finally:
            con.close()
        build_warehouse(FeatureStore(str(store)), registry)

    # 4. a rerun completes, cleans the leftover and yields exactly what an uninterrupted run yields
    second_tmp_existed = second_tmp.exists()
    finish(start_helper("write_partition", store, "b", "d", "v2", "--batches", BATCHES, "--rows", ROWS))
    assert second_tmp_existed and not second_tmp.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    reference = tmp_path / "reference"
    writer.write(str(reference), "b", "d", "v2", batches=BATCHES, rows=ROWS, sleep=0)  # uninterrupted
    rerun = pq.read_table(part)
    assert rerun.num_rows == BATCHES * ROWS
    assert rerun.equals(pq.read_table(FeatureStore(str(reference)).embeddings("b", "d").path))
    assert rerun.equals(writer.expected_table("v2", BATCHES, ROWS))


def test_stale_tmp_of_a_live_writer_is_kept(tmp_path):
    """Cleaning is by dead pid only: a concurrent writer's temporary file is never deleted under it."""
    folder = tmp_path / "p"
    folder.mkdir()
    import socket

    live = folder / f".data.parquet.{socket.gethostname()}.{os.getpid()}.abcd1234.tmp"
    dead_pid = subprocess.run([python(), "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                              check=True).stdout.strip()
    dead = folder / f".data.parquet.{socket.gethostname()}.{dead_pid}.abcd1234.tmp"
    other_host = folder / ".data.parquet.elsewhere.1.abcd1234.tmp"
    for p in (live, dead, other_host):
        p.write_bytes(b"partial")
    assert clean_stale_tmp(folder, "data.parquet") == [dead]
    assert live.exists() and other_host.exists() and not dead.exists()
