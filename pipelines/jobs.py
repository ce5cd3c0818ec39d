"""Jobs: one per partitioning, so the CLI and the UI launch the same asset selections."""

from __future__ import annotations

import dagster as dg

from pipelines.partitions import backbone_dataset_partitions, backbone_partitions, dataset_partitions

examples_job = dg.define_asset_job("examples_job", selection=["dataset_examples"], partitions_def=dataset_partitions)
weights_job = dg.define_asset_job("weights_job", selection=["backbone_weights"], partitions_def=backbone_partitions)
extract_job = dg.define_asset_job("extract_job", selection=["embeddings"], partitions_def=backbone_dataset_partitions)
warehouse_job = dg.define_asset_job("warehouse_job", selection=["warehouse"])

JOBS = [examples_job, weights_job, extract_job, warehouse_job]

# Per-dataset downstream stages, run by `synergy demo` after extraction: (stage name, job name).
DATASET_REPORT_JOBS: list[tuple[str, str]] = []
