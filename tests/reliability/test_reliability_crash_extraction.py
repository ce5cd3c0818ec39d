"""SIGKILL the real extraction (Dagster's `extract_job`, in a subprocess) while it streams a partition.

test_reliability_crash.py shows the guarantee on a synthetic writer; this shows it on the production
path: helpers/extract_partition.py materializes the `embeddings` asset through the real Definitions,
with batch size 1 on the CPU, so the partition is written as hundreds of row groups over a few
seconds, and the test kills the process once its temporary file holds some of them. Nothing is
slowed down artificially and the production code has no test hooks.
"""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from reliability_support import (FolderStore, finish, registry_yaml, sigkill, start_helper, wait_for_line,
                                 write_good_images)

from storage.layout import FeatureStore
from storage.warehouse import build_warehouse, connect_readonly
from synergy.registry import load_registry

pytestmark = pytest.mark.e2e

CLASSES, PER_CLASS = ["cat", "dog"], 200  # 400 rows: ~3 s of streaming at batch size 1 with the tiny model
MID_WRITE_BYTES = 16 * 1024  # the magic, then a dozen or so row groups of ~750 bytes: well inside the write
BACKBONE, DATASET = "tiny", "pets"


@pytest.fixture
def big_folder_store(tmp_path, tiny_checkpoint) -> FolderStore:
    images = tmp_path / "images"
    write_good_images(images, CLASSES, PER_CLASS)
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_yaml(images, tiny_checkpoint, CLASSES))
    return FolderStore(tmp_path, images, registry, tmp_path / "store")


def _start(fs: FolderStore):
    return start_helper("extract_partition", fs.registry_path, fs.store_root, BACKBONE, DATASET, "--batch-size", 1)


def _extract(fs: FolderStore) -> None:
    """One uninterrupted extraction, in its own process; it must succeed."""
    proc = _start(fs)
    out = finish(proc, timeout=300)
    assert out.splitlines()[-1] == "done", out


def _kill_mid_write(fs: FolderStore, folder: Path) -> Path:
    """Start a real extraction, SIGKILL it while it streams row groups to its temporary file; return that file."""
    proc = _start(fs)
    tmp = None
    wait_for_line(proc, "started", timeout=180)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        tmps = list(folder.glob(".data.parquet.*.tmp")) if folder.is_dir() else []
        live = [t for t in tmps if f".{proc.pid}." in t.name]
        try:
            if live and live[0].stat().st_size >= MID_WRITE_BYTES:
                tmp = live[0]
                break
        except FileNotFoundError:  # renamed into place between the glob and the stat: too late
            pass
        time.sleep(0.005)
    assert tmp is not None, (f"never caught the extraction mid-write (rc={proc.poll()}); "
                             f"stderr: {proc.stderr.read().decode()[-2000:] if proc.poll() is not None else ''}")
    sigkill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert tmp.exists() and tmp.stat().st_size >= MID_WRITE_BYTES, "a SIGKILLed writer leaves its partial file"
    return tmp


def _glob_count(store: FeatureStore) -> int:
    """What a reader globbing the store sees (the glob every view uses)."""
    con = duckdb.connect()
    try:
        return con.execute("SELECT count(*) FROM read_parquet(?)", [store.glob("embeddings", 2)]).fetchone()[0]
    finally:
        con.close()


def _warehouse_answers(store: FeatureStore, expected: dict[str, tuple[int, float]]) -> None:
    con = connect_readonly(store.warehouse.path)
    try:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == sum(n for n, _ in expected.values())
        got = con.execute("SELECT split, n, accuracy FROM accuracy WHERE backbone = ? AND dataset = ?",
                          [BACKBONE, DATASET]).fetchall()
        assert {s: (n, pytest.approx(a)) for s, n, a in got} == expected
    finally:
        con.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_mid_extraction_keeps_previous_version_or_none(big_folder_store):
    fs = big_folder_store
    n_rows = fs.write_examples(DATASET).num_rows
    assert n_rows == len(CLASSES) * PER_CLASS
    store = FeatureStore(str(fs.store_root))
    registry = load_registry(fs.registry_path)
    part = Path(store.embeddings(BACKBONE, DATASET).path)
    folder = part.parent

    # a. no previous version: after the kill there is none, and readers' globs find no file at all
    first_tmp = _kill_mid_write(fs, folder)
    assert not part.exists()
    assert [p.name for p in folder.glob("*.parquet")] == []
    with pytest.raises(duckdb.IOException, match="No files found"):
        _glob_count(store)

    # b. an uninterrupted run: version 1; it also deletes the dead writer's leftover
    _extract(fs)
    assert not first_tmp.exists(), "the next write of the partition deletes temp files of dead writers"
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    v1_sha, v1 = _sha256(part), pq.read_table(part)
    assert v1.num_rows == n_rows
    splits, correct = np.array(v1["split"].to_pylist()), np.array(v1["correct"].to_pylist())
    expected = {s: (int((splits == s).sum()), float(correct[splits == s].mean())) for s in set(splits)}
    build_warehouse(store, registry)
    _warehouse_answers(store, expected)

    # c. kill a re-extraction mid-write: version 1 is still there, whole, and everything still reads it
    second_tmp = _kill_mid_write(fs, folder)
    assert _sha256(part) == v1_sha
    assert [p.name for p in folder.glob("*.parquet")] == ["data.parquet"], "readers' globs ignore the tmp file"
    assert _glob_count(store) == n_rows
    _warehouse_answers(store, expected)  # the warehouse built before the crash
    build_warehouse(store, registry)
    _warehouse_answers(store, expected)  # and one rebuilt after it

    # d. a rerun completes, cleans the leftover and yields the rows of the uninterrupted run
    _extract(fs)
    assert not second_tmp.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    rerun = pq.read_table(part)
    assert rerun.schema.equals(v1.schema)
    for column in ("example_id", "split", "label", "pred", "correct"):
        assert rerun[column].equals(v1[column]), column
    for column in ("embedding", "logits"):
        a, b = (np.stack(t[column].to_numpy(zero_copy_only=False)) for t in (rerun, v1))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=column)
    np.testing.assert_allclose(rerun["confidence"].to_numpy(), v1["confidence"].to_numpy(), rtol=0, atol=1e-6)
    assert _glob_count(store) == n_rows
    build_warehouse(store, registry)
    _warehouse_answers(store, expected)
