"""Benchmark: the analysis SQL views at 1,000,000 test examples x 9 backbones.

Writes a synthetic store with the real layout and schemas (predictions are real-sized; embeddings
are 2 floats and logits zeros, which no analysis view reads), then runs each analysis view in its own
subprocess under a DuckDB memory limit and prints its wall time and the subprocess's peak RSS
(resource.getrusage). Memory must stay bounded: the views aggregate per example or per mask, and
DuckDB spills to `<root>/duckdb_tmp` beyond the limit.

    .venv/bin/python benchmarks/bench_analysis_sql.py                  # 1M x 9, about 3-5 min on 2 cores
    .venv/bin/python benchmarks/bench_analysis_sql.py --examples 20000 # a quick smoke run

Results go to stdout as a table and, with --json, as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASET = "fashion-mnist"  # any key; the registry below declares it
N_CLASSES = 10

# (name, SQL that forces the whole view to be computed)
QUERIES = [
    ("correct_masks", "SELECT count(*) AS rows, sum(n_correct) AS s FROM correct_masks"),
    ("pairwise_agreement", "SELECT * FROM pairwise_agreement"),
    ("who_solves_what", "SELECT * FROM who_solves_what"),
    ("oracle_subsets", "SELECT * FROM oracle_subsets"),
    ("oracle_best_by_k", "SELECT * FROM oracle_best_by_k"),
    ("oracle_summary", "SELECT * FROM oracle_summary"),
    ("solved_by_one", "SELECT backbone, count(*) AS n FROM solved_by_one GROUP BY backbone"),
    ("accuracy_per_class", "SELECT * FROM accuracy_per_class"),
    ("diversity", "SELECT * FROM diversity"),
]


def registry_text(backbones: list[str]) -> str:
    classes = ", ".join(f"c{i}" for i in range(N_CLASSES))
    lines = ["datasets:", f"  - key: {DATASET}", "    source: fashion-mnist", f"    classes: [{classes}]",
             "    templates: ['a photo of a {c}.']", "backbones:"]
    lines += [f"  - {{key: {b}, model: RN50, family: {'resnet' if i % 2 else 'vit'}, pretrained: openai}}"
              for i, b in enumerate(backbones)]
    return "\n".join(lines) + "\n"


def generate(root: Path, n: int, backbones: list[str], chunk: int = 250_000, seed: int = 0) -> float:
    """Stream the synthetic store in row groups of `chunk` rows; return seconds."""
    import pyarrow.parquet as pq

    from storage.layout import FeatureStore
    from storage.schemas import EXAMPLES_SCHEMA, embeddings_schema

    start = time.perf_counter()
    store = FeatureStore(str(root))
    schema = embeddings_schema(2, N_CLASSES)
    paths = {b: Path(store.embeddings(b, DATASET).path) for b in backbones}
    examples_path = Path(store.examples(DATASET).path)
    for p in [*paths.values(), examples_path]:
        p.parent.mkdir(parents=True, exist_ok=True)
    writers = {b: pq.ParquetWriter(str(p), schema, compression="zstd") for b, p in paths.items()}
    ex_writer = pq.ParquetWriter(str(examples_path), EXAMPLES_SCHEMA, compression="zstd")
    rng = np.random.default_rng(seed)
    skill = np.linspace(0.55, 0.85, len(backbones))
    try:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            ids = pa.array([f"test-{i:07d}" for i in range(lo, lo + m)])
            labels = rng.integers(0, N_CLASSES, m).astype(np.int32)
            difficulty = rng.random(m)  # shared across backbones: errors correlate, as real ones do
            split = pa.array(["test"] * m)
            ex_writer.write_table(pa.table({
                "example_id": ids, "split": split, "label": labels, "ref": ids,
                "perturbation": pa.array(["none"] * m), "severity": np.zeros(m, np.int32)}, schema=EXAMPLES_SCHEMA))
            zeros_emb = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2 * m, np.float32)), 2)
            zeros_log = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(N_CLASSES * m, np.float32)), N_CLASSES)
            for j, b in enumerate(backbones):
                right = 0.7 * difficulty + 0.3 * rng.random(m) < skill[j]
                wrong = (labels + rng.integers(1, N_CLASSES, m)) % N_CLASSES
                preds = np.where(right, labels, wrong).astype(np.int32)
                writers[b].write_table(pa.table({
                    "example_id": ids, "split": split, "label": labels, "pred": preds, "correct": preds == labels,
                    "confidence": rng.random(m).astype(np.float32), "embedding": zeros_emb, "logits": zeros_log},
                    schema=schema))
    finally:
        for w in writers.values():
            w.close()
        ex_writer.close()
    return time.perf_counter() - start


def run_one(root: Path, registry_path: Path, name: str, memory_limit: str, threads: int) -> dict:
    """Run one view in this process (called in a fresh subprocess) and report time and peak RSS."""
    import duckdb

    from storage.layout import FeatureStore
    from storage.warehouse import create_views
    from synergy.registry import load_registry

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET temp_directory = '{root / 'duckdb_tmp'}'")
    con.execute("SET preserve_insertion_order = false")
    create_views(con, FeatureStore(str(root)), load_registry(registry_path))
    sql = dict(QUERIES)[name]
    start = time.perf_counter()
    result = con.execute(sql).fetchall()
    seconds = time.perf_counter() - start
    return {"view": name, "seconds": round(seconds, 2), "result_rows": len(result),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_mb": round(rss_before, 1),
            "sample": [list(map(lambda v: round(v, 4) if isinstance(v, float) else v, r)) for r in result[:1]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--backbones", type=int, default=9)
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--root", help="store folder (default: a temporary folder, deleted afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the generated store")
    parser.add_argument("--reuse", action="store_true", help="with --root: query the store already there")
    parser.add_argument("--views", nargs="*", default=[q for q, _ in QUERIES])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._one:  # child process: one view
        root = Path(args.root)
        print(json.dumps(run_one(root, root / "registry.yaml", args._one, args.memory_limit, args.threads)))
        return 0

    root = Path(args.root or tempfile.mkdtemp(prefix="bench_analysis_"))
    backbones = [f"bb-{i:02d}" for i in range(args.backbones)]
    (root / "registry.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "registry.yaml").write_text(registry_text(backbones))
    try:
        reuse = args.reuse and args.root and any(root.glob("embeddings/*/*/data.parquet"))
        gen_seconds = 0.0 if reuse else generate(root, args.examples, backbones)
        size_mb = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2 ** 20
        print(f"store: {args.examples:,} examples x {args.backbones} backbones, {size_mb:.0f} MiB of Parquet, "
              f"generated in {gen_seconds:.1f}s; DuckDB memory_limit {args.memory_limit}, {args.threads} threads")
        results = []
        load_before = os.getloadavg()[0]
        for name in args.views:
            out = subprocess.run([sys.executable, __file__, "--root", str(root), "--_one", name,
                                  "--memory-limit", args.memory_limit, "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                raise SystemExit(f"{name} failed")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(f"  {name:<20} {r['seconds']:>8.2f} s   peak RSS {r['peak_rss_mb']:>7.0f} MiB   "
                  f"rows {r['result_rows']:>5}   first {r['sample'][0] if r['sample'] else ''}", flush=True)
        total = sum(r["seconds"] for r in results)
        peak = max(r["peak_rss_mb"] for r in results)
        print(f"total query time {total:.1f}s; highest peak RSS {peak:.0f} MiB; "
              f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work on the machine)")
        if args.json:
            print(json.dumps({"examples": args.examples, "backbones": args.backbones, "generate_s": round(gen_seconds, 1),
                              "parquet_mib": round(size_mb), "memory_limit": args.memory_limit,
                              "threads": args.threads, "load_before": load_before,
                              "load_after": os.getloadavg()[0], "views": results}))
    finally:
        if not args.keep and not args.root:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
