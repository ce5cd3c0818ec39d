"""The code location's Definitions: what `dagster dev`, `synergy demo` and the tests all load.

Automation conditions are set here, on the loaded assets (pipelines/automation.py), so the asset
modules stay plain; the asset checks on `embeddings` come from assets/checks.py.
"""

from __future__ import annotations

import dagster as dg

from assets import analysis, checks, datasets, ensembles, extraction, warehouse, zoo
from pipelines.automation import automation_sensor, with_automation
from pipelines.jobs import JOBS
from pipelines.resources import SynergyResource
from pipelines.schedules import reextract_schedule
from pipelines.sensors import registry_sensor

defs = dg.Definitions(
    assets=with_automation(dg.load_assets_from_modules([datasets, zoo, extraction, analysis, ensembles, warehouse])),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=JOBS,
    schedules=[reextract_schedule],
    sensors=[registry_sensor, automation_sensor],
    resources={"synergy": SynergyResource()},
)
