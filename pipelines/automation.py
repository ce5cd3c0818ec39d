"""Declarative automation: which assets refresh on their own, and when.

Applied in `pipelines/definitions.py` to the loaded assets, so the asset modules stay free of it:

- `embeddings` (extraction): a partition that is new (a backbone the registry sensor just added)
  is extracted as soon as its inputs exist, and a partition is re-extracted when an input's *data
  version* changes: the weights' sha256 (`backbone_weights`) or the dataset fingerprint
  (`dataset_examples`). Re-running an input that produces the same data version does nothing.
  Code-version and preprocessing changes are the weekly schedule's job (pipelines/schedules.py).
- every asset downstream of `embeddings` (analysis, ensembles, warehouse, whatever is added later):
  `eager()`: refresh once any input updated, not while an input is missing or in progress, and
  not while a blocking asset check of an input has failed (a bad partition does not poison them).

`automation_sensor` evaluates these conditions; it is declared RUNNING, so `dagster dev` starts it
with the daemon, and the project's dagster.yaml keeps `auto_materialize.enabled: true`.
"""

from __future__ import annotations

import os
from typing import Iterable

import dagster as dg

AC = dg.AutomationCondition

EXTRACTION_ASSET = dg.AssetKey("embeddings")
AUTOMATION_SENSOR_NAME = "automation_sensor"


def no_failed_blocking_checks_upstream() -> dg.AutomationCondition:
    """True unless an input has a blocking check whose latest result failed (never-run checks don't block)."""
    return ~AC.any_deps_match(AC.any_checks_match(AC.check_failed(), blocking_only=True)).with_label(
        "no_failed_blocking_checks_upstream")


def extraction_condition() -> dg.AutomationCondition:
    """Missing-or-changed, requested once: a failed run is not retried on every tick (the schedule retries weekly).

    Unlike `since_last_handled()`, the first evaluation does not reset the trigger, so partitions
    already missing when the automation sensor first runs (a fresh instance) are extracted too.
    """
    trigger = (
        AC.newly_missing()
        | (AC.initial_evaluation() & AC.missing()).with_label("missing_at_first_evaluation")
        | AC.any_deps_match(AC.data_version_changed()).with_label("any_dep_data_version_changed")
    )
    return (
        trigger.since((AC.newly_requested() | AC.newly_updated()).with_label("requested_or_updated"))
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("new_partition_or_input_data_version_changed")


def downstream_condition() -> dg.AutomationCondition:
    return (AC.eager() & no_failed_blocking_checks_upstream()).with_label("eager_unless_upstream_check_failed")


def downstream_keys(assets: Iterable[dg.AssetsDefinition], root: dg.AssetKey = EXTRACTION_ASSET) -> set[dg.AssetKey]:
    """Every asset key that depends on `root`, directly or transitively, among `assets`."""
    assets = list(assets)
    parents: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for a in assets:
        for key in a.keys:
            parents[key] = set(a.asset_deps.get(key, ()))
    found: set[dg.AssetKey] = set()
    frontier = {root}
    while frontier:
        frontier = {k for k, ps in parents.items() if ps & frontier and k not in found}
        found |= frontier
    return found


def with_automation(assets: Iterable) -> list:
    """The same asset definitions with the project's automation conditions set (see module docstring)."""
    assets = list(assets)
    defs_only = [a for a in assets if isinstance(a, dg.AssetsDefinition)]
    downstream = downstream_keys(defs_only)

    def condition_for(key: dg.AssetKey) -> dg.AutomationCondition | None:
        if key == EXTRACTION_ASSET:
            return extraction_condition()
        if key in downstream:
            return downstream_condition()
        return None

    out = []
    for a in assets:
        if isinstance(a, dg.AssetsDefinition) and any(condition_for(k) is not None for k in a.keys):
            a = a.map_asset_specs(lambda spec: spec.replace_attributes(
                automation_condition=condition_for(spec.key) or spec.automation_condition))
        out.append(a)
    return out


automation_sensor = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR_NAME,
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(os.environ.get("SYNERGY_AUTOMATION_INTERVAL", "15")),
    description="Evaluates the automation conditions of pipelines/automation.py (extraction of new or changed "
                "partitions, then analysis / ensembles / warehouse refresh).",
)
