"""The code location's Definitions: what `dagster dev`, `synergy demo` and the tests all load."""

from __future__ import annotations

import dagster as dg

from assets import datasets, extraction, warehouse, zoo
from pipelines.jobs import JOBS
from pipelines.resources import SynergyResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([datasets, zoo, extraction, warehouse]),
    jobs=JOBS,
    resources={"synergy": SynergyResource()},
)
