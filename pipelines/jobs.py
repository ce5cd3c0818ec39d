"""Jobs: one per partitioning, so the CLI and the UI launch the same asset selections."""

from __future__ import annotations

import dagster as dg

examples_job = dg.define_asset_job("examples_job", selection=["dataset_examples"])
weights_job = dg.define_asset_job("weights_job", selection=["backbone_weights"])
extract_job = dg.define_asset_job("extract_job", selection=["embeddings"])
warehouse_job = dg.define_asset_job("warehouse_job", selection=["warehouse"])

JOBS = [examples_job, weights_job, extract_job, warehouse_job]

# Per-dataset downstream stages, run by `synergy demo` after extraction: (stage name, job name).
DATASET_REPORT_JOBS: list[tuple[str, str]] = []
