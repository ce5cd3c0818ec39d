"""Materialize one `embeddings` partition through the real Definitions, as a separate process.

    python extract_partition.py REGISTRY STORE BACKBONE DATASET [--batch-size N] [--torch-threads T]

Sets SYNERGY_REGISTRY / SYNERGY_STORE (read when the code location is imported: the dataset
partitions and the resource's defaults), imports `pipelines.definitions.defs` and runs the real
`extract_job` for BACKBONE|DATASET with `execute_in_process` on an ephemeral instance, with the
`synergy` resource configured for a small batch on the CPU, so the partition is streamed to its
temporary file as many row groups. This is the production code path (asset, resource, asset
checks); nothing in it is stubbed or slowed down.

Prints `started` (flushed) just before the run starts and `done` after it succeeded; exits 1 if
the run failed (the failure goes to stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("registry")
    parser.add_argument("store")
    parser.add_argument("backbone")
    parser.add_argument("dataset")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()

    os.environ["SYNERGY_REGISTRY"] = str(Path(args.registry).resolve())
    os.environ["SYNERGY_STORE"] = str(Path(args.store).resolve())

    import warnings

    import dagster as dg

    warnings.simplefilter("ignore", dg.BetaWarning)

    from pipelines.definitions import defs
    from pipelines.partitions import sync_backbone_partitions

    instance = dg.DagsterInstance.ephemeral()
    sync_backbone_partitions(instance, [args.backbone])
    key = dg.MultiPartitionKey({"backbone": args.backbone, "dataset": args.dataset})
    run_config = {"resources": {"synergy": {"config": {
        "registry_path": os.environ["SYNERGY_REGISTRY"], "store_root": os.environ["SYNERGY_STORE"],
        "device": "cpu", "batch_size": args.batch_size, "num_workers": 0, "torch_threads": args.torch_threads}}}}
    job = defs.resolve_job_def("extract_job")

    print("started", flush=True)
    result = job.execute_in_process(instance=instance, partition_key=key, run_config=run_config,
                                    raise_on_error=False)
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                print(f"{event.event_type_value}: {event.message}", file=sys.stderr)
        print("failed", flush=True)
        return 1
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
