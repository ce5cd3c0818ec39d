"""End to end: the real Definitions, in-process, on 2 tiny backbones and a few hundred images."""

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.atomic import read_metadata
from storage.layout import FeatureStore
from storage.warehouse import connect_readonly

pytestmark = pytest.mark.e2e


def test_spine_materializes_and_duckdb_matches_numpy(tiny_registry, tmp_path, load_defs):
    store_root = tmp_path / "store"
    defs = load_defs(tiny_registry, store_root)
    from pipelines.partitions import sync_backbone_partitions

    instance = dg.DagsterInstance.ephemeral()
    sync_backbone_partitions(instance, ["tiny-vit", "tiny-rn"])
    run = lambda job, key=None: defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=key)
    assert run("examples_job", "fmnist-tiny").success
    for b in ("tiny-vit", "tiny-rn"):
        assert run("weights_job", b).success
        assert run("extract_job", dg.MultiPartitionKey({"backbone": b, "dataset": "fmnist-tiny"})).success
    assert run("warehouse_job").success

    store = FeatureStore(str(store_root))
    examples = pq.read_table(str(store.examples("fmnist-tiny")))
    split_sizes = {s: examples.column("split").to_pylist().count(s) for s in ("fewshot", "test")}
    for b, dim in (("tiny-vit", 16), ("tiny-rn", 16)):
        path = store.embeddings(b, "fmnist-tiny")
        table = pq.read_table(str(path))
        schema = table.schema
        assert schema.field("embedding").type == pa.list_(pa.float32(), dim)
        assert schema.field("logits").type == pa.list_(pa.float32(), 10)
        assert table.num_rows == sum(split_sizes.values())
        assert {s: table.column("split").to_pylist().count(s) for s in split_sizes} == split_sizes
        emb = table.column("embedding").combine_chunks().values.to_numpy().reshape(-1, dim)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
        meta = read_metadata(path)
        assert meta["rows"] == table.num_rows and len(meta["weights_sha256"]) == 64 and meta["images_per_s"] > 0
        assert meta["model"].startswith("synergy-tiny")
        assert store.checkpoint(b).exists()

    # accuracy from DuckDB's view equals an independent numpy computation from the stored logits
    con = connect_readonly(store.warehouse.path)
    sql_acc = {(b, s): a for b, s, a in con.execute(
        "SELECT backbone, split, accuracy FROM accuracy WHERE dataset = 'fmnist-tiny'").fetchall()}
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    con.close()
    assert {"embeddings", "predictions", "class_embeddings", "examples"} <= views
    for b in ("tiny-vit", "tiny-rn"):
        table = pq.read_table(str(store.embeddings(b, "fmnist-tiny")))
        logits = table.column("logits").combine_chunks().values.to_numpy().reshape(-1, 10)
        labels = table.column("label").to_numpy()
        splits = np.array(table.column("split").to_pylist())
        for s in ("fewshot", "test"):
            expected = float((logits[splits == s].argmax(1) == labels[splits == s]).mean())
            assert sql_acc[(b, s)] == pytest.approx(expected, abs=1e-12)

    # plain duckdb, read-only, finds the documented tables
    con = duckdb.connect(str(store.warehouse.path), read_only=True)
    assert con.execute("SELECT count(*) FROM backbones").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 2 * sum(split_sizes.values())
    con.close()


def test_rerun_replaces_partition_whole(tiny_registry, tmp_path, load_defs):
    defs = load_defs(tiny_registry, tmp_path / "store")
    from pipelines.partitions import sync_backbone_partitions

    instance = dg.DagsterInstance.ephemeral()
    sync_backbone_partitions(instance, ["tiny-vit"])
    key = dg.MultiPartitionKey({"backbone": "tiny-vit", "dataset": "fmnist-tiny"})
    for job, k in (("examples_job", "fmnist-tiny"), ("weights_job", "tiny-vit"), ("extract_job", key)):
        assert defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=k).success
    path = FeatureStore(str(tmp_path / "store")).embeddings("tiny-vit", "fmnist-tiny")
    first = pq.read_table(str(path))
    assert defs.resolve_job_def("extract_job").execute_in_process(instance=instance, partition_key=key).success
    second = pq.read_table(str(path))
    assert first.select(["example_id", "pred", "embedding"]).equals(second.select(["example_id", "pred", "embedding"]))
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]
