"""Atomic writes: a reader sees the old file or the new one, never half of one.

Local files are written under a temporary name in the same folder (`.<name>.<host>.<pid>.<rand>.tmp`)
and renamed into place with os.replace, which POSIX makes atomic. The temporary name does not end
in `.parquet`, so globs never pick it up; its pid lets the next writer delete leftovers of dead
runs without touching a live writer's file. Object stores already make a PUT atomic.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

TMP_SUFFIX = ".tmp"


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(folder: Path, name: str) -> list[Path]:
    """Delete temp files for `name` left by dead processes on this host; return what was deleted."""
    removed = []
    if not folder.is_dir():
        return removed
    host = socket.gethostname()
    for tmp in folder.glob(f".{name}.*{TMP_SUFFIX}"):
        parts = tmp.name[len(name) + 2: -len(TMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if not _pid_alive(int(parts[1])):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(final: UPath | str) -> Iterator[Path]:
    """Yield a temporary local path; on success it replaces `final` atomically, on error it is deleted."""
    final = UPath(final)
    if final.protocol not in ("", "file", "local"):
        raise NotImplementedError("atomic_path is for local files; use atomic_parquet for object stores")
    final_path = Path(final.path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(final_path.parent, final_path.name)
    tmp = _tmp_name(final_path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final_path)
        _fsync_dir(final_path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_metadata(path: UPath | str) -> dict:
    """The `synergy` JSON entry of a Parquet footer (model, weights sha256, dims, row counts, images/s)."""
    meta = pq.read_metadata(str(path)).metadata or {}
    return json.loads(meta.get(b"synergy", b"{}"))


class ParquetStreamWriter:
    """Append record batches as row groups; memory stays at one batch whatever the dataset size.

    `metadata` is written into the footer on close, so figures known only at the end (row
    counts, throughput) can be added while writing.
    """

    def __init__(self, path: Path, schema: pa.Schema, metadata: dict | None = None):
        self.schema = schema
        self.rows = 0
        self.metadata = dict(metadata or {})
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        self._writer.write_table(batch.select(self.schema.names).cast(self.schema))
        self.rows += batch.num_rows

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:
            pass

    def close(self) -> None:
        self.metadata.setdefault("rows", self.rows)
        self._writer.add_key_value_metadata({"synergy": json.dumps(self.metadata, sort_keys=True, default=str)})
        self._writer.close()


@contextlib.contextmanager
def atomic_parquet(final: UPath | str, schema: pa.Schema, metadata: dict | None = None) -> Iterator[ParquetStreamWriter]:
    """Stream row groups into `final`; the file appears whole, footer included, or not at all."""
    final = UPath(final)
    if final.protocol in ("", "file", "local"):
        with atomic_path(final) as tmp:
            writer = ParquetStreamWriter(tmp, schema, metadata)
            try:
                yield writer
            except BaseException:
                writer.abort()  # release the file; atomic_path deletes it and `final` is untouched
                raise
            writer.close()
    else:  # object stores: stage locally, then one atomic PUT
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder) / "part.parquet"
            writer = ParquetStreamWriter(tmp, schema, metadata)
            yield writer
            writer.close()
            final.fs.put_file(str(tmp), final.path)


def write_table(final: UPath | str, table: pa.Table, metadata: dict | None = None) -> None:
    """Write a whole small table atomically."""
    with atomic_parquet(final, table.schema, metadata) as writer:
        writer.write(table)


def write_bytes(final: UPath | str, payload: bytes) -> None:
    final = UPath(final)
    if final.protocol in ("", "file", "local"):
        with atomic_path(final) as tmp:
            tmp.write_bytes(payload)
    else:
        final.write_bytes(payload)


