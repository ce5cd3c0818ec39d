"""Write one embeddings partition through storage.atomic.atomic_parquet, slowly, as a separate process.

    python write_partition.py STORE BACKBONE DATASET TAG [--batches N] [--rows R] [--sleep S] [--barrier F]

The rows are a pure function of (TAG, batch, row), so two runs with the same TAG write the same
table. After each row group it prints `batch <i>` (flushed), so a test can kill it mid-write.
No torch import: the process starts in about a second.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root

from storage.atomic import atomic_parquet  # noqa: E402
from storage.layout import FeatureStore  # noqa: E402
from storage.schemas import embeddings_schema  # noqa: E402

DIM, N_CLASSES = 8, 3


def batch_table(tag: str, batch: int, rows: int) -> pa.Table:
    rng = np.random.default_rng([zlib.crc32(tag.encode()), batch])
    emb = rng.standard_normal((rows, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    logits = (rng.standard_normal((rows, N_CLASSES)) * 10).astype(np.float32)
    labels = (np.arange(rows) + batch) % N_CLASSES
    preds = logits.argmax(axis=1)
    ids = [f"ex-{batch:04d}-{i:05d}" for i in range(rows)]
    return pa.table({
        "example_id": ids, "split": ["test"] * rows, "label": labels.astype(np.int32), "pred": preds.astype(np.int32),
        "correct": preds == labels, "confidence": np.full(rows, 0.5, np.float32),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), DIM),
        "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), N_CLASSES),
    }, schema=embeddings_schema(DIM, N_CLASSES))


def expected_table(tag: str, batches: int, rows: int) -> pa.Table:
    return pa.concat_tables([batch_table(tag, b, rows) for b in range(batches)])


def write(store: str, backbone: str, dataset: str, tag: str, batches: int, rows: int, sleep: float,
          report=None) -> None:
    final = FeatureStore(store).embeddings(backbone, dataset)
    with atomic_parquet(final, embeddings_schema(DIM, N_CLASSES), {"writer": tag}) as writer:
        for b in range(batches):
            writer.write(batch_table(tag, b, rows))
            if report:
                report(b)
            time.sleep(sleep)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("backbone")
    parser.add_argument("dataset")
    parser.add_argument("tag")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--barrier", help="wait until this file exists before writing (to start writers together)")
    args = parser.parse_args()
    print("started", flush=True)
    while args.barrier and not Path(args.barrier).exists():
        time.sleep(0.01)
    write(args.store, args.backbone, args.dataset, args.tag, args.batches, args.rows, args.sleep,
          report=lambda b: print(f"batch {b}", flush=True))
    print("done", flush=True)


if __name__ == "__main__":
    main()
