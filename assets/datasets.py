"""Stage 1: each dataset's example table (splits with stable example ids) in the store."""


import dagster as dg

from pipelines.partitions import dataset_partitions
from pipelines.resources import SynergyResource
from storage.atomic import write_table
from synergy.datasets import build_examples, dataset_fingerprint


@dg.asset(partitions_def=dataset_partitions, group_name="features", kinds={"parquet"},
          code_version="examples-v1")
def dataset_examples(context: dg.AssetExecutionContext, synergy: SynergyResource) -> dg.MaterializeResult:
    """Seeded train / fewshot / test splits of one dataset, with a stable `example_id` per image."""
    spec = synergy.registry().dataset(context.partition_key)
    table = build_examples(spec)
    fingerprint = dataset_fingerprint(spec, table)
    write_table(synergy.store().examples(spec.key), table, {"dataset": spec.key, "fingerprint": fingerprint})
    counts = {s: table.column("split").to_pylist().count(s) for s in ("train", "fewshot", "test")}
    context.log.info(f"{spec.key}: {counts}")
    return dg.MaterializeResult(
        metadata={**{f"rows_{s}": n for s, n in counts.items()}, "n_classes": spec.n_classes,
                  "fingerprint": fingerprint},
        data_version=dg.DataVersion(fingerprint[:16]),
    )
