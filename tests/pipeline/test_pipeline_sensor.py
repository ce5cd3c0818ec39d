"""The registry sensor: exactly which runs and partition changes it requests, on an ephemeral instance."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from tiny_world import registry_text

DATASETS = ("shapes", "shapes-b")


def _registry(tmp_path, keys, models=None):
    path = tmp_path / "registry.yaml"
    models = models or {}
    path.write_text(registry_text(tmp_path / "images", {k: (models.get(k, "synergy-tiny-test"), tmp_path / f"{k}.pt")
                                                        for k in keys}, DATASETS))
    return path


def _tick(instance, registry_path, cursor=None):
    from pipelines.resources import SynergyResource
    from pipelines.sensors import registry_sensor

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={
        "synergy": SynergyResource(registry_path=str(registry_path), store_root=str(registry_path.parent / "store"))})
    return registry_sensor(context)


def _runs(result) -> list[tuple[str, str | None]]:
    return [(r.job_name, r.partition_key) for r in result.run_requests]


def _apply(instance, result):
    for req in result.dynamic_partitions_requests:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for key in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, key)


def _materialize(instance, key, partition=None):
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


@pytest.fixture
def steady(tmp_path):
    """Two extracted backbones on two datasets, and the sensor's cursor after its first tick."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("backbone", ["vit-a", "vit-b"])
    for d in DATASETS:
        _materialize(instance, "dataset_examples", d)
    for b in ("vit-a", "vit-b"):
        _materialize(instance, "backbone_weights", b)
        for d in DATASETS:
            _materialize(instance, "embeddings", f"{b}|{d}")
    path = _registry(tmp_path, ["vit-a", "vit-b"])
    first = _tick(instance, path)
    assert _runs(first) == [] and first.dynamic_partitions_requests == []
    return instance, path, first.cursor


def test_first_tick_on_a_synced_instance_requests_nothing(steady):
    instance, path, cursor = steady
    assert json.loads(cursor)["backbones"].keys() == {"vit-a", "vit-b"}
    again = _tick(instance, path, cursor)
    assert isinstance(again, dg.SkipReason) and "unchanged" in again.skip_message


def test_new_backbone_gets_its_partition_and_only_its_weights_run(steady):
    instance, path, cursor = steady
    path.write_text(path.read_text().replace("backbones:\n", "backbones:\n  - {key: rn-new, model: synergy-tiny-rn-test, "
                                                            "family: resnet, pretrained: /x/rn-new.pt}\n"))
    result = _tick(instance, path, cursor)
    assert _runs(result) == [("weights_job", "rn-new")]  # nothing for vit-a / vit-b, no examples (they exist)
    assert result.run_requests[0].tags["synergy/reason"] == "new backbone"
    [add] = result.dynamic_partitions_requests
    assert isinstance(add, dg.AddDynamicPartitionsRequest) and list(add.partition_keys) == ["rn-new"]
    assert result.cursor != cursor
    _apply(instance, result)
    assert isinstance(_tick(instance, path, result.cursor), dg.SkipReason)  # handled once


def test_removed_backbone_loses_its_partition_and_analyses_refresh(steady):
    instance, path, cursor = steady
    from pipelines.sensors import report_job_names

    path.write_text(registry_text(path.parent / "images", {"vit-a": ("synergy-tiny-test", path.parent / "vit-a.pt")},
                                  DATASETS))
    result = _tick(instance, path, cursor)
    [delete] = result.dynamic_partitions_requests
    assert isinstance(delete, dg.DeleteDynamicPartitionsRequest) and list(delete.partition_keys) == ["vit-b"]
    expected = [(job, d) for job in report_job_names() for d in DATASETS] + [("warehouse_job", None)]
    assert _runs(result) == expected  # refresh only: no weights, no extraction
    _apply(instance, result)
    assert instance.get_dynamic_partitions("backbone") == ["vit-a"]


def test_changed_entry_reruns_only_its_weights(steady):
    instance, path, cursor = steady
    path.write_text(path.read_text().replace("vit-b.pt", "vit-b-v2.pt"))
    result = _tick(instance, path, cursor)
    assert _runs(result) == [("weights_job", "vit-b")]
    assert result.run_requests[0].tags["synergy/reason"] == "registry entry changed"
    assert result.dynamic_partitions_requests == []


def test_readded_backbone_with_its_data_needs_no_training(steady):
    instance, path, cursor = steady
    instance.delete_dynamic_partition("backbone", "vit-b")  # as if removed earlier; its events and files remain
    from pipelines.sensors import report_job_names

    result = _tick(instance, path, cursor)
    assert _runs(result) == [(job, d) for job in report_job_names() for d in DATASETS] + [("warehouse_job", None)]
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["vit-b"]


def test_fresh_instance_gets_examples_and_weights_for_everything(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    path = _registry(tmp_path, ["vit-a", "rn-b"], {"rn-b": "synergy-tiny-rn-test"})
    result = _tick(instance, path)
    assert _runs(result) == [("examples_job", "shapes"), ("examples_job", "shapes-b"),
                             ("weights_job", "vit-a"), ("weights_job", "rn-b")]


def test_unreadable_registry_skips_and_changes_nothing(steady):
    instance, path, cursor = steady
    path.write_text("backbones: [this is: not valid")
    result = _tick(instance, path, cursor)
    assert isinstance(result, dg.SkipReason) and "not readable" in result.skip_message
    assert sorted(instance.get_dynamic_partitions("backbone")) == ["vit-a", "vit-b"]


def test_sensor_is_running_by_default_and_targets_the_jobs():
    from pipelines.definitions import defs

    sensor = defs.resolve_sensor_def("registry_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert {"weights_job", "examples_job", "warehouse_job"} <= {j.name for j in sensor.jobs}
