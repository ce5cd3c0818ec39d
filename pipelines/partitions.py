"""Partitions: backbones are dynamic (the registry can grow at run time), datasets are static.

Multi-partition dimensions are ordered alphabetically by Dagster: `backbone|dataset`.
"""

from __future__ import annotations

import warnings

import dagster as dg

from pipelines.settings import current_registry

BACKBONE_PARTITIONS_NAME = "backbone"

backbone_partitions = dg.DynamicPartitionsDefinition(name=BACKBONE_PARTITIONS_NAME)
dataset_partitions = dg.StaticPartitionsDefinition(current_registry().dataset_keys)
backbone_dataset_partitions = dg.MultiPartitionsDefinition(
    {"backbone": backbone_partitions, "dataset": dataset_partitions}
)

with warnings.catch_warnings():  # the mapping is marked beta in 1.13; it is the documented way to do this
    warnings.simplefilter("ignore", dg.BetaWarning)
    by_backbone = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="backbone")
    by_dataset = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="dataset")


def backbone_dataset_key(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(backbone, dataset) of a multi-partitioned run; the key may arrive as a plain string."""
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):
        key = backbone_dataset_partitions.get_partition_key_from_str(str(key))
    dims = key.keys_by_dimension
    return dims["backbone"], dims["dataset"]


def sync_backbone_partitions(instance: dg.DagsterInstance, keys: list[str]) -> tuple[list[str], list[str]]:
    """Make the instance's backbone partitions equal to the registry's; return (added, removed)."""
    existing = set(instance.get_dynamic_partitions(BACKBONE_PARTITIONS_NAME))
    added = [k for k in keys if k not in existing]
    removed = sorted(existing - set(keys))
    if added:
        instance.add_dynamic_partitions(BACKBONE_PARTITIONS_NAME, added)
    for key in removed:
        instance.delete_dynamic_partition(BACKBONE_PARTITIONS_NAME, key)
    return added, removed
