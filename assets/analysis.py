"""Stage 4: per-dataset analysis of the backbones: agreement, oracle, similarity, robustness, plots.

Everything countable (accuracy, agreement, kappa, error overlap, oracle, subsets, who-solves-what,
robustness, diversity) is SQL in `storage/sql/views/2*.sql`; this asset only runs it, snapshots the
results to Parquet, draws the plots and fills the UI metadata. The one numeric computation is
representation similarity (linear CKA and kNN overlap, synergy/similarity.py) on a seeded sample of
test examples, stored at `<store>/analysis_similarity/dataset=<d>/data.parquet` for the
`representation_similarity` view.

Outputs for dataset d:
- `<store>/analysis_similarity/dataset=<d>/data.parquet`  (CKA / kNN overlap, read by a view)
- `<store>/analysis/dataset=<d>/<view>.parquet`            (snapshots of the SQL views used here)
- `<store>/plots/dataset=<d>/*.png`                          (full-size plots; small ones inline in the UI)
"""


import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.extraction import embeddings
from assets.metadata import image_metadata, markdown_table
from pipelines.partitions import by_dataset, dataset_partitions
from pipelines.resources import SynergyResource
from storage.atomic import write_bytes, write_table
from storage.warehouse import connect_memory, query_sql
from synergy import plots
from synergy.errors import StoreError
from synergy.similarity import pairwise_similarity

ANALYSIS_CODE_VERSION = "analysis-v1"
DEFAULT_SAMPLE_SIZE = 2000
DEFAULT_KNN_K = 10

# query file analysis_<name>.sql -> snapshot file name (the view it reads)
SNAPSHOT_NAMES = {"agreement": "pairwise_agreement", "oracle_by_k": "oracle_best_by_k"}

SIMILARITY_SCHEMA = pa.schema([
    pa.field("backbone_a", pa.string(), nullable=False),
    pa.field("backbone_b", pa.string(), nullable=False),
    pa.field("cka", pa.float64()),
    pa.field("knn_overlap", pa.float64()),
    pa.field("n_sample", pa.int64(), nullable=False),
    pa.field("knn_k", pa.int32(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
])


class AnalysisConfig(dg.Config):
    """Run config of the analysis: the CKA / kNN sample (seeded, drawn from the test split)."""

    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0
    knn_k: int = DEFAULT_KNN_K


def _arrow(con, sql: str, params: dict | None = None) -> pa.Table:
    # duckdb 2 warns that Arrow output through the DB-API cursor copies the rows; the relation API does not
    return con.sql(sql, params=params or {}).to_arrow_table()


def _views(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def sample_ids(con, dataset: str, size: int, seed: int) -> list[str]:
    """A seeded sample of the test examples that every backbone predicted, in id order."""
    ids = [r[0] for r in con.execute(query_sql("analysis_sample_ids"), {"dataset": dataset}).fetchall()]
    if len(ids) <= size:
        return ids
    chosen = np.sort(np.random.default_rng(seed).choice(len(ids), size=size, replace=False))
    return [ids[i] for i in chosen]


def sample_embeddings(con, dataset: str, backbones: list[str], ids: list[str]) -> dict[str, np.ndarray]:
    """Each backbone's embeddings of the sampled ids, rows aligned (sorted by example id)."""
    con.register("analysis_sample", pa.table({"example_id": pa.array(ids, pa.string())}))
    try:
        out = {}
        for b in backbones:
            table = _arrow(con, query_sql("analysis_sample_embeddings"), {"dataset": dataset, "backbone": b})
            if table["example_id"].to_pylist() != ids:
                raise StoreError(f"embeddings of {b} on {dataset} do not cover the CKA sample")
            column = table["embedding"].combine_chunks()
            flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
            out[b] = flat.reshape(len(ids), -1).astype(np.float64)
        return out
    finally:
        con.unregister("analysis_sample")


def similarity_table(con, dataset: str, backbones: list[str], config: AnalysisConfig) -> pa.Table:
    """CKA and kNN overlap for every pair of backbones, on one seeded sample (empty with < 2 backbones)."""
    ids = sample_ids(con, dataset, config.sample_size, config.seed) if len(backbones) > 1 else []
    rows = []
    if len(ids) >= 3:
        k = min(config.knn_k, len(ids) - 1)
        rows = pairwise_similarity(sample_embeddings(con, dataset, backbones, ids), k=k)
        for r in rows:
            r["seed"] = config.seed
    return pa.Table.from_pylist(rows, schema=SIMILARITY_SCHEMA)


def _md(rows: list[dict], columns: list[str] | None = None) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(rows, columns))


def _similarity_extremes(rows: list[dict]) -> tuple[str, str]:
    ranked = sorted((r for r in rows if r["cka"] is not None and np.isfinite(r["cka"])), key=lambda r: r["cka"])
    if not ranked:
        return "", ""
    fmt = lambda r: f"{r['backbone_a']} / {r['backbone_b']} (CKA {r['cka']:.3f}, kNN {r['knn_overlap']:.3f})"  # noqa: E731
    return fmt(ranked[-1]), fmt(ranked[0])


def run_analysis(context, synergy: SynergyResource, dataset: str, config: AnalysisConfig) -> dict:
    """Compute, store and plot the analysis of one dataset; return the asset's metadata."""
    registry, store = synergy.registry(), synergy.store()
    spec = registry.dataset(dataset)
    colors = plots.backbone_colors(registry.backbone_keys)
    con = connect_memory(store, registry)
    try:
        if "oracle_summary" not in _views(con):
            raise StoreError(f"no predictions in the store at {store.root}: materialize `embeddings` first")
        p = {"dataset": dataset}
        tables = {name: _arrow(con, query_sql(f"analysis_{name}"), p) for name in (
            "accuracy", "accuracy_per_class", "agreement", "who_solves_what", "oracle_by_k", "oracle_summary",
            "diversity")}
        if not tables["oracle_summary"].num_rows:
            raise StoreError(f"no test predictions for dataset {dataset!r}: materialize `embeddings` for it first")
        shifted = bool(spec.perturbations)
        if shifted:
            tables.update({name: _arrow(con, query_sql(f"analysis_{name}"), p)
                           for name in ("robustness", "robustness_oracle", "robustness_by_family")})
        backbones = sorted(tables["accuracy"]["backbone"].to_pylist())
        start = time.perf_counter()
        similarity = similarity_table(con, dataset, backbones, config)
        similarity_seconds = time.perf_counter() - start
    finally:
        con.close()

    # ---------------------------------------------------------------- store
    write_table(store.dataset_dir("analysis_similarity", dataset) / "data.parquet", similarity,
                {"dataset": dataset, "sample_size": config.sample_size, "seed": config.seed, "knn_k": config.knn_k,
                 "code_version": ANALYSIS_CODE_VERSION})
    snapshot_dir = store.dataset_dir("analysis", dataset)
    for name, table in tables.items():
        write_table(snapshot_dir / f"{SNAPSHOT_NAMES.get(name, name)}.parquet", table,
                    {"dataset": dataset, "code_version": ANALYSIS_CODE_VERSION})

    rows = {name: t.to_pylist() for name, t in tables.items()}
    sim_rows = similarity.to_pylist()
    summary = rows["oracle_summary"][0]
    diversity = rows["diversity"][0]
    accuracy = {r["backbone"]: r["accuracy"] for r in rows["accuracy"]}

    # ---------------------------------------------------------------- plots
    figures = {
        "accuracy": plots.accuracy_bars(accuracy, colors, dataset, oracle=summary["oracle_accuracy"]),
        "agreement": plots.agreement_heatmap(backbones, rows["agreement"], colors, dataset),
        "similarity": plots.similarity_heatmap(backbones, sim_rows, colors, dataset),
        "oracle_vs_k": plots.oracle_curve(rows["oracle_by_k"], accuracy, colors, dataset),
    }
    if shifted and rows["robustness"]:
        figures["robustness"] = plots.robustness_curves(rows["robustness"], colors, dataset)
    plot_meta = {}
    for name, fig in figures.items():
        full, small = plots.figure_pngs(fig)
        path = store.plots_dir(dataset) / f"{name}.png"
        write_bytes(path, full)
        plot_meta[f"plot_{name}"] = image_metadata(small, f"{dataset} {name}")

    # ---------------------------------------------------------------- metadata
    most, least = _similarity_extremes(sim_rows)
    context.log.info(f"{dataset}: oracle {summary['oracle_accuracy']:.4f} vs best single "
                     f"{summary['best_single_backbone']} {summary['best_single_accuracy']:.4f} "
                     f"(gain {summary['oracle_gain']:+.4f}); CKA on {similarity.num_rows} pairs in "
                     f"{similarity_seconds:.1f}s")
    meta = {
        "oracle_accuracy": float(summary["oracle_accuracy"]),
        "best_single_backbone": summary["best_single_backbone"],
        "best_single_accuracy": float(summary["best_single_accuracy"]),
        "oracle_gain": float(summary["oracle_gain"]),
        "diversity": float(diversity["diversity"]),
        "diversity_definition": diversity["definition"],
        "most_similar_pair": most,
        "least_similar_pair": least,
        "oracle_summary": _md(rows["oracle_summary"]),
        "accuracy": _md(rows["accuracy"]),
        "pairwise_agreement": _md(rows["agreement"]),
        "representation_similarity": _md(sim_rows, ["backbone_a", "backbone_b", "cka", "knn_overlap", "n_sample"]),
        "oracle_best_by_k": _md([{**r, "backbones": ", ".join(r["backbones"])} for r in rows["oracle_by_k"]],
                                ["k", "backbones", "oracle_accuracy", "method"]),
        "who_solves_what": _md([{**r, "backbones": ", ".join(r["backbones"]) or "(none)"}
                                for r in rows["who_solves_what"][:20]],
                               ["backbones", "n_solvers", "n_examples", "share"]),
        "similarity_sample": sim_rows[0]["n_sample"] if sim_rows else 0,
        "snapshots": dg.MetadataValue.path(str(snapshot_dir)),
        "plots": dg.MetadataValue.path(str(store.plots_dir(dataset))),
        **plot_meta,
    }
    if shifted:
        meta["robustness_oracle"] = _md(rows["robustness_oracle"])
        meta["robustness_by_family"] = _md(rows["robustness_by_family"])
    return meta


@dg.asset(
    partitions_def=dataset_partitions,
    deps=[dg.AssetDep(embeddings, partition_mapping=by_dataset)],
    group_name="analysis", kinds={"duckdb", "parquet"}, code_version=ANALYSIS_CODE_VERSION,
)
def analysis(context: dg.AssetExecutionContext, synergy: SynergyResource, config: AnalysisConfig) -> dg.MaterializeResult:
    """Agreement, oracle, who-solves-what, CKA / kNN similarity, diversity and robustness of one dataset's backbones."""
    return dg.MaterializeResult(metadata=run_analysis(context, synergy, context.partition_key, config))
