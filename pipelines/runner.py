"""Materialize the whole pipeline in dependency order, through the same Definitions the UI loads.

Each partition runs as its own Dagster run on the project's instance, so every run the CLI makes
is visible in the UI afterwards, with its logs and metadata.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import dagster as dg

from pipelines import settings
from pipelines.jobs import DATASET_REPORT_JOBS
from pipelines.partitions import sync_backbone_partitions
from storage.layout import FeatureStore
from synergy.errors import SynergyError
from synergy.registry import Registry


@dataclass
class RunReport:
    runs: int = 0
    skipped: int = 0
    seconds_by_stage: dict = field(default_factory=dict)


def _failure_message(result) -> str:
    """The message of our own error in the failed step's cause chain, without Dagster's wrapping."""
    ours = {cls.__name__ for cls in _subclasses(SynergyError)}
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            chain, error = [], event.step_failure_data.error
            while error is not None:
                chain.append(error)
                error = error.cause
            mine = [e for e in chain if e.cls_name in ours]
            chosen = mine[-1] if mine else chain[-1]
            return chosen.message.strip() if mine else f"{chosen.cls_name}: {chosen.message.strip()}"
    return "run failed (see the run's logs in the Dagster UI)"


def _subclasses(cls) -> set:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def stages(registry: Registry) -> list[tuple[str, str, list]]:
    """(stage, job name, partition keys) in dependency order; None means an unpartitioned job."""
    pairs = [dg.MultiPartitionKey({"backbone": b, "dataset": d})
             for b in registry.backbone_keys for d in registry.dataset_keys]
    out = [
        ("examples", "examples_job", registry.dataset_keys),
        ("weights", "weights_job", registry.backbone_keys),
        ("extract", "extract_job", pairs),
    ]
    out += [(name, job, registry.dataset_keys) for name, job in DATASET_REPORT_JOBS]
    out.append(("warehouse", "warehouse_job", [None]))
    return out


def _output_exists(store: FeatureStore, stage: str, key) -> bool:
    """A partition is reusable only if the instance saw it materialize AND its file is still in the store."""
    if stage == "examples":
        return store.examples(key).exists()
    if stage == "weights":
        return store.backbone_info(key).exists()
    dims = key.keys_by_dimension
    return store.embeddings(dims["backbone"], dims["dataset"]).exists()


def materialize_all(defs: dg.Definitions, instance: dg.DagsterInstance, registry: Registry, force: bool = False,
                    log: Callable[[str], None] = print) -> RunReport:
    """Run every stage; feature partitions already materialized are skipped unless `force`."""
    report = RunReport()
    store = FeatureStore(settings.store_root())
    added, removed = sync_backbone_partitions(instance, registry.backbone_keys)
    if added or removed:
        log(f"backbone partitions: +{added} -{removed}")
    reusable = {"examples", "weights", "extract"}
    for stage, job_name, keys in stages(registry):
        job = defs.resolve_job_def(job_name)
        asset_key = next(iter(job.asset_layer.executable_asset_keys))
        done = set(instance.get_materialized_partitions(asset_key)) if stage in reusable and not force else set()
        start = time.perf_counter()
        for key in keys:
            if key is not None and str(key) in done and _output_exists(store, stage, key):
                report.skipped += 1
                continue
            label = f"{stage} {key}" if key is not None else stage
            log(f"→ {label}")
            t0 = time.perf_counter()
            result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
            report.runs += 1
            if not result.success:
                raise SynergyError(f"{label} failed: {_failure_message(result)}")
            log(f"  done in {time.perf_counter() - t0:.1f}s")
        report.seconds_by_stage[stage] = round(time.perf_counter() - start, 1)
    return report
