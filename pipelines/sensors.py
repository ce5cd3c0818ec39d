"""The registry sensor: the registry file is the source of truth for which backbones exist.

Every tick it reads the registry (through `SynergyResource`, so `SYNERGY_REGISTRY` applies) and
compares its backbones with the instance's dynamic `backbone` partitions:

- a **new** backbone gets its partition (`AddDynamicPartitionsRequest`) and one run: `weights_job`
  for that backbone. Its extraction (new backbone × every dataset) is then started by declarative
  automation as soon as the weights exist (`embeddings` has the `new_partition_or_input_data_version_changed`
  condition, pipelines/automation.py): runs cannot mix the backbone and backbone×dataset partitionings,
  and this way extraction waits for the weights instead of racing them. A backbone re-added with its
  weights still materialized needs no run: automation extracts whatever is missing.
- a **changed** entry (same key, different model / pretrained / training budget) re-runs `weights_job`;
  extraction follows only if the weights' sha256 (the data version) changed.
- a **removed** backbone loses its partition (`DeletePartitionsRequest`); its files stay in the store.
  The per-dataset report jobs (`DATASET_REPORT_JOBS`) and the warehouse are re-run so that the
  analyses stop including it (automation cannot see a deleted partition as an update).
- a dataset whose example table was never materialized gets an `examples_job` run along with the
  first backbone runs, so a fresh instance fills itself from the UI alone.

Existing, unchanged backbones never get a run. The cursor is a hash of the registry's backbone
list (with a digest per entry, to tell a changed entry from an unchanged one); an unreadable
registry (half-edited file) skips the tick with the error as the reason and changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field

import dagster as dg

from pipelines.instance import ensure_pool_limits
from pipelines.jobs import DATASET_REPORT_JOBS, JOBS, examples_job, warehouse_job, weights_job
from pipelines.partitions import BACKBONE_PARTITIONS_NAME
from pipelines.resources import SynergyResource
from synergy.errors import SynergyError
from synergy.registry import Registry

REGISTRY_SENSOR_INTERVAL = int(os.environ.get("SYNERGY_REGISTRY_SENSOR_INTERVAL", "15"))


def entry_digest(spec) -> str:
    """A short digest of one backbone entry (key, model, family, pretrained, train)."""
    payload = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def registry_cursor(registry: Registry) -> str:
    """Cursor: `{"hash": sha256 of the backbone list, "backbones": {key: entry digest}}`."""
    digests = {b.key: entry_digest(b) for b in registry.backbones}
    listing = json.dumps(sorted(digests.items()))
    return json.dumps({"hash": hashlib.sha256(listing.encode()).hexdigest(), "backbones": digests}, sort_keys=True)


def parse_cursor(cursor: str | None) -> dict:
    try:
        value = json.loads(cursor) if cursor else {}
    except json.JSONDecodeError:
        value = {}
    return value if isinstance(value, dict) else {}


@dataclass
class SyncPlan:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    run_requests: list[dg.RunRequest] = field(default_factory=list)
    partition_requests: list = field(default_factory=list)
    cursor: str = ""

    @property
    def is_noop(self) -> bool:
        return not (self.added or self.removed or self.changed or self.run_requests)

    def describe(self) -> str:
        parts = [f"{label} {', '.join(keys)}" for label, keys in
                 (("added", self.added), ("removed", self.removed), ("changed", self.changed)) if keys]
        return "; ".join(parts) or "no backbone changes"


def report_job_names() -> list[str]:
    """Per-dataset downstream jobs that exist in this code location, then the warehouse."""
    known = {j.name for j in JOBS}
    return [name for _, name in DATASET_REPORT_JOBS if name in known]


def plan_sync(instance: dg.DagsterInstance, registry: Registry, cursor: str | None) -> SyncPlan:
    """What the sensor does for this registry and instance state (pure apart from instance reads)."""
    new_cursor = registry_cursor(registry)
    previous = parse_cursor(cursor).get("backbones", {})
    existing = set(instance.get_dynamic_partitions(BACKBONE_PARTITIONS_NAME))
    keys = registry.backbone_keys
    digests = json.loads(new_cursor)["backbones"]
    plan = SyncPlan(cursor=new_cursor)
    plan.added = [k for k in keys if k not in existing]
    plan.removed = sorted(existing - set(keys))
    plan.changed = [k for k in keys if k in existing and k in previous and previous[k] != digests[k]]

    weights_done = set(instance.get_materialized_partitions(dg.AssetKey("backbone_weights")))
    need_weights = [k for k in plan.added if k not in weights_done] + plan.changed
    tags = {"synergy/trigger": "registry_sensor"}
    if need_weights:
        examples_done = set(instance.get_materialized_partitions(dg.AssetKey("dataset_examples")))
        for d in registry.dataset_keys:
            if d not in examples_done:
                plan.run_requests.append(dg.RunRequest(job_name=examples_job.name, partition_key=d,
                                                       tags={**tags, "synergy/reason": "examples missing"}))
    for k in need_weights:
        reason = "registry entry changed" if k in plan.changed else "new backbone"
        plan.run_requests.append(dg.RunRequest(job_name=weights_job.name, partition_key=k,
                                               tags={**tags, "synergy/reason": reason, "synergy/backbone": k}))

    # removals, and re-added backbones whose extraction is all still there, change what the analyses
    # cover without any input updating; a re-added backbone with missing partitions is extracted by
    # automation, which then refreshes the analyses itself
    extracted = set(instance.get_materialized_partitions(dg.AssetKey("embeddings")))
    readded_complete = [k for k in plan.added if k in weights_done and all(
        str(dg.MultiPartitionKey({"backbone": k, "dataset": d})) in extracted for d in registry.dataset_keys)]
    refresh = bool(plan.removed or readded_complete)
    if refresh:
        reason = {"synergy/reason": "backbone set changed: " + plan.describe()}
        for name in report_job_names():
            for d in registry.dataset_keys:
                plan.run_requests.append(dg.RunRequest(job_name=name, partition_key=d, tags={**tags, **reason}))
        plan.run_requests.append(dg.RunRequest(job_name=warehouse_job.name, tags={**tags, **reason}))

    if plan.added:
        plan.partition_requests.append(backbone_partitions_add(plan.added))
    if plan.removed:
        plan.partition_requests.append(dg.DeleteDynamicPartitionsRequest(BACKBONE_PARTITIONS_NAME, plan.removed))
    return plan


def backbone_partitions_add(keys: list[str]) -> dg.AddDynamicPartitionsRequest:
    return dg.AddDynamicPartitionsRequest(BACKBONE_PARTITIONS_NAME, keys)


def _sensor_jobs() -> list:
    by_name = {j.name: j for j in JOBS}
    names = [examples_job.name, weights_job.name, warehouse_job.name, *report_job_names()]
    return [by_name[n] for n in dict.fromkeys(names)]


@dg.sensor(
    name="registry_sensor",
    jobs=_sensor_jobs(),
    minimum_interval_seconds=REGISTRY_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Syncs the dynamic backbone partitions with the registry file and starts runs for new, "
                "changed or removed backbones (see pipelines/sensors.py).",
)
def registry_sensor(context: dg.SensorEvaluationContext, synergy: SynergyResource):
    ensure_pool_limits(context.instance)  # before this sensor's first runs reach the queue
    try:
        registry = synergy.registry()
    except SynergyError as exc:
        return dg.SkipReason(f"registry not readable, nothing changed: {exc}")
    plan = plan_sync(context.instance, registry, context.cursor)
    if plan.is_noop and plan.cursor == context.cursor:
        return dg.SkipReason(f"registry unchanged ({len(registry.backbones)} backbones)")
    context.log.info(f"{registry.path}: {plan.describe()}; {len(plan.run_requests)} run(s) requested")
    return dg.SensorResult(run_requests=plan.run_requests, dynamic_partitions_requests=plan.partition_requests,
                           cursor=plan.cursor)
