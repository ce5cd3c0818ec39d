"""Declarative automation: new backbone -> extraction of exactly its partitions -> per-dataset refresh.

Uses Dagster's own `evaluate_automation_conditions` on an ephemeral instance, with materializations
reported as runless events (no code runs), tick after tick with the cursor carried over.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from tiny_world import registry_text

DATASETS = ("shapes", "shapes-b")
OLD = ("vit-a", "vit-b")


def _mk(b, d):
    return str(dg.MultiPartitionKey({"backbone": b, "dataset": d}))


class Ticker:
    def __init__(self, defs, instance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self) -> dict[str, set]:
        result = dg.evaluate_automation_conditions(self.defs, self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        graph = self.defs.resolve_asset_graph()
        return {k.to_user_string(): set(map(str, result.get_requested_partitions(k)))
                for k in graph.materializable_asset_keys if result.get_num_requested(k)}

    def mat(self, key, partition=None, data_version=None):
        tags = {"dagster/data_version": data_version} if data_version else None
        self.instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition, tags=tags))


@pytest.fixture
def world(tmp_path, load_defs):
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_text(tmp_path / "images", {b: ("synergy-tiny-test", tmp_path / f"{b}.pt")
                                                            for b in OLD}, DATASETS))
    defs = load_defs(registry, tmp_path / "store")
    graph = defs.resolve_asset_graph()
    if not graph.has(dg.AssetKey("analysis")):  # the analysis module is wired in by its own change
        from assets import analysis
        from pipelines.automation import with_automation

        extra = [a for a in dg.load_assets_from_modules([analysis]) if not any(graph.has(k) for k in a.keys)]
        defs = dg.Definitions.merge(defs, dg.Definitions(assets=with_automation([*defs.assets, *extra])[len(defs.assets):]))
        graph = defs.resolve_asset_graph()
    from pipelines.automation import downstream_keys

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("backbone", list(OLD))
    t = Ticker(defs, instance)
    for d in DATASETS:
        t.mat("dataset_examples", d, f"examples-{d}")
    for b in OLD:
        t.mat("backbone_weights", b, f"sha-{b}")
        for d in DATASETS:
            t.mat("embeddings", _mk(b, d))
    down = downstream_keys([a for a in defs.assets if isinstance(a, dg.AssetsDefinition)])
    per_dataset = sorted(k.to_user_string() for k in down if graph.get(k).partitions_def is not None)
    unpartitioned = sorted(k.to_user_string() for k in down if graph.get(k).partitions_def is None)
    for k in per_dataset:
        for d in DATASETS:
            t.mat(k, d)
    for k in unpartitioned:
        t.mat(k)
    assert t.tick() == {}  # a fully materialized store: the first tick requests nothing
    return t, per_dataset, unpartitioned


def test_conditions_are_on_the_real_definitions(load_defs, tmp_path):
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("embeddings")).automation_condition.get_label() == \
        "new_partition_or_input_data_version_changed"
    for key in graph.materializable_asset_keys:
        if key.to_user_string() in ("dataset_examples", "backbone_weights", "embeddings"):
            continue
        # everything downstream of embeddings refreshes on its own
        assert graph.get(key).automation_condition.get_label() == "eager_unless_upstream_check_failed", key
    sensor = defs.resolve_sensor_def("automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_new_backbone_is_extracted_then_each_dataset_refreshes(world):
    t, per_dataset, unpartitioned = world
    assert "analysis" in per_dataset
    t.instance.add_dynamic_partitions("backbone", ["rn-new"])  # what the registry sensor does
    assert t.tick() == {}  # its weights are not there yet
    t.mat("backbone_weights", "rn-new", "sha-new")  # the sensor's weights run lands
    assert t.tick() == {"embeddings": {_mk("rn-new", d) for d in DATASETS}}  # exactly new x each dataset
    assert t.tick() == {}  # requested once

    t.mat("embeddings", _mk("rn-new", "shapes"))
    assert t.tick() == {k: {"shapes"} for k in per_dataset}  # only the affected dataset; warehouse waits
    t.mat("embeddings", _mk("rn-new", "shapes-b"))
    assert t.tick() == {**{k: {"shapes-b"} for k in per_dataset}, **{k: {"None"} for k in unpartitioned}}


def test_inputs_rerun_with_the_same_data_version_do_not_reextract(world):
    t, _, _ = world
    t.mat("backbone_weights", "vit-a", "sha-vit-a")
    t.mat("dataset_examples", "shapes", "examples-shapes")
    assert t.tick() == {}
    t.mat("backbone_weights", "vit-a", "sha-vit-a-retrained")
    assert t.tick() == {"embeddings": {_mk("vit-a", d) for d in DATASETS}}


def test_failed_blocking_check_holds_the_dataset_back(world):
    t, per_dataset, _ = world
    key = _mk("vit-a", "shapes")
    t.mat("embeddings", key)
    record = t.instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("embeddings"), asset_partitions=[key]), limit=1).records[0]
    t.instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("embeddings"), check_name="finite_unit_norm", passed=False, partition=key,
        severity=dg.AssetCheckSeverity.ERROR, blocking=True,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)))
    t.mat("embeddings", _mk("vit-b", "shapes-b"))
    requested = t.tick()
    assert all("shapes" not in parts for parts in requested.values())  # shapes is held back
    assert requested == {k: {"shapes-b"} for k in per_dataset}  # shapes-b refreshes (warehouse also held)
