"""End to end, in-process, on the tiny world: the CLI adds a backbone, the registry sensor and the
automation conditions request exactly its runs, the runs execute with their asset checks, and the
backbones already extracted keep byte-identical Parquet files. Then it is removed again.
"""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest

from tiny_world import build_world

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::dagster.BetaWarning")]


def _hashes(root, backbone):
    files = sorted(p for table in ("embeddings", "class_embeddings", "rejects", "backbones")
                   for p in (root / table / f"backbone={backbone}").rglob("*") if p.is_file())
    assert files, f"no files for {backbone}"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


class Harness:
    def __init__(self, defs, world):
        from pipelines.resources import SynergyResource
        from pipelines.sensors import registry_sensor

        self.defs, self.world, self.sensor = defs, world, registry_sensor
        self.instance = dg.DagsterInstance.ephemeral()
        self.resource = SynergyResource(registry_path=str(world.registry), store_root=str(world.store))
        self.sensor_cursor = self.automation_cursor = None
        self.executed: list[tuple[str, str]] = []
        self.check_results: dict[str, list] = {}

    def sensor_tick(self):
        ctx = dg.build_sensor_context(instance=self.instance, cursor=self.sensor_cursor,
                                      resources={"synergy": self.resource})
        result = self.sensor(ctx)
        if isinstance(result, dg.SensorResult):
            self.sensor_cursor = result.cursor
            for req in result.dynamic_partitions_requests:
                if isinstance(req, dg.AddDynamicPartitionsRequest):
                    self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
                else:
                    for key in req.partition_keys:
                        self.instance.delete_dynamic_partition(req.partitions_def_name, key)
        return result

    def run_job(self, job_name, partition_key):
        result = self.defs.resolve_job_def(job_name).execute_in_process(
            instance=self.instance, partition_key=partition_key, raise_on_error=False)
        assert result.success, job_name
        self.executed.append((job_name, str(partition_key)))
        evaluations = result.get_asset_check_evaluations()
        if evaluations:
            self.check_results[str(partition_key)] = evaluations
        return result

    def automation_tick(self) -> dict[str, set[str]]:
        result = dg.evaluate_automation_conditions(self.defs, self.instance, cursor=self.automation_cursor)
        self.automation_cursor = result.cursor
        graph = self.defs.resolve_asset_graph()
        return {k.to_user_string(): set(map(str, result.get_requested_partitions(k)))
                for k in graph.materializable_asset_keys if result.get_num_requested(k)}


def test_cli_add_sensor_automation_extract_only_the_new_backbone(tmp_path, load_defs, capsys):
    world = build_world(tmp_path, keys=("vit-a", "rn-b"), registered=("vit-a",))
    defs = load_defs(world.registry, world.store)
    h = Harness(defs, world)

    # a fresh instance: the sensor requests the examples and the weights, automation the extraction
    first = h.sensor_tick()
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [("examples_job", "shapes"),
                                                                          ("weights_job", "vit-a")]
    for r in first.run_requests:
        h.run_job(r.job_name, r.partition_key)
    assert h.automation_tick() == {"embeddings": {"vit-a|shapes"}}
    h.run_job("extract_job", dg.MultiPartitionKey({"backbone": "vit-a", "dataset": "shapes"}))
    checks = {e.check_name: e for e in h.check_results["vit-a|shapes"]}
    blocking = {"finite_unit_norm", "row_counts", "embedding_width", "logits_width", "unique_example_ids"}
    assert set(checks) == blocking | {"accuracy_above_chance"}
    assert all(checks[name].passed for name in blocking)
    assert {e.partition for e in checks.values()} == {"vit-a|shapes"}  # per-partition results
    before = _hashes(world.store, "vit-a")
    # the per-dataset downstream assets (analysis, ensembles) refresh for the dataset; the warehouse, which
    # reads them all, waits for them (they are not executed here: they have their own tests)
    from pipelines.automation import downstream_keys

    graph = defs.resolve_asset_graph()
    per_dataset = {k.to_user_string() for k in downstream_keys([a for a in defs.assets if isinstance(a, dg.AssetsDefinition)])
                   if graph.get(k).partitions_def is not None}
    assert {"analysis", "ensembles"} <= per_dataset
    assert h.automation_tick() == {k: {"shapes"} for k in per_dataset}

    # the CLI adds a second backbone: exactly its weights run, then exactly its extraction
    from synergy.cli import main

    assert main(["--registry", str(world.registry), "backbones", "add", "rn-b", "--model", "synergy-tiny-rn-test",
                 "--pretrained", str(world.checkpoints["rn-b"])]) == 0
    result = h.sensor_tick()
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("weights_job", "rn-b")]
    h.run_job("weights_job", "rn-b")
    requested = h.automation_tick()
    assert requested == {"embeddings": {"rn-b|shapes"}}
    h.run_job("extract_job", dg.MultiPartitionKey({"backbone": "rn-b", "dataset": "shapes"}))
    assert all(e.passed for e in h.check_results["rn-b|shapes"] if e.check_name in blocking)
    assert h.automation_tick() == {k: {"shapes"} for k in per_dataset}

    # vit-a was not run again: no new materialization, byte-identical files
    assert _hashes(world.store, "vit-a") == before
    vit_a_runs = [job for job, key in h.executed if "vit-a" in key]
    assert vit_a_runs == ["weights_job", "extract_job"]

    # removal: partition dropped, files kept, analyses refreshed (warehouse at least)
    assert main(["--registry", str(world.registry), "backbones", "remove", "rn-b"]) == 0
    removed = h.sensor_tick()
    assert ("warehouse_job", None) in [(r.job_name, r.partition_key) for r in removed.run_requests]
    assert "weights_job" not in {r.job_name for r in removed.run_requests}
    assert h.instance.get_dynamic_partitions("backbone") == ["vit-a"]
    assert (world.store / "embeddings" / "backbone=rn-b" / "dataset=shapes" / "data.parquet").exists()
    capsys.readouterr()
