import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.atomic import atomic_parquet, read_metadata, write_table


def _table(n, value):
    return pa.table({"x": pa.array([value] * n, pa.int64())})


def test_replace_is_whole_and_old_readers_keep_their_snapshot(tmp_path):
    target = tmp_path / "p" / "data.parquet"
    write_table(target, _table(10, 1), {"version": 1})
    old = pq.ParquetFile(str(target))  # a reader holding the old file open
    write_table(target, _table(20, 2), {"version": 2})
    assert old.read().column("x").to_pylist() == [1] * 10
    assert pq.read_table(str(target)).column("x").to_pylist() == [2] * 20
    assert read_metadata(target)["version"] == 2 and read_metadata(target)["rows"] == 20
    assert [p.name for p in target.parent.iterdir()] == ["data.parquet"]


def test_failure_mid_write_keeps_previous_version_and_leaves_no_temp(tmp_path):
    target = tmp_path / "data.parquet"
    write_table(target, _table(5, 7))
    with pytest.raises(RuntimeError):
        with atomic_parquet(target, _table(1, 0).schema) as writer:
            writer.write(_table(100, 9))
            raise RuntimeError("killed")
    assert pq.read_table(str(target)).column("x").to_pylist() == [7] * 5
    assert [p.name for p in tmp_path.iterdir()] == ["data.parquet"]


def test_streaming_writes_one_row_group_per_batch(tmp_path):
    target = tmp_path / "data.parquet"
    with atomic_parquet(target, _table(1, 0).schema, {"model": "m"}) as writer:
        for i in range(4):
            writer.write(_table(3, i))
        writer.metadata["images_per_s"] = 12.5
    assert pq.ParquetFile(str(target)).num_row_groups == 4
    assert read_metadata(target) == {"model": "m", "images_per_s": 12.5, "rows": 12}
