"""Jobs: one per partitioning, so the CLI and the UI launch the same asset selections."""

from __future__ import annotations

import dagster as dg

examples_job = dg.define_asset_job("examples_job", selection=["dataset_examples"])
weights_job = dg.define_asset_job("weights_job", selection=["backbone_weights"])
extract_job = dg.define_asset_job("extract_job", selection=["embeddings"])
warehouse_job = dg.define_asset_job("warehouse_job", selection=["warehouse"])
analysis_job = dg.define_asset_job("analysis_job", selection=["analysis"])
ensembles_job = dg.define_asset_job("ensembles_job", selection=["ensembles"])

JOBS = [examples_job, weights_job, extract_job, warehouse_job, analysis_job, ensembles_job]

# Per-dataset downstream stages, run by `synergy demo` after extraction: (stage name, job name).
DATASET_REPORT_JOBS: list[tuple[str, str]] = [("analysis", "analysis_job"), ("ensembles", "ensembles_job")]
