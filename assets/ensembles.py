"""Stage 5: backbone ensembles fitted on k labeled examples per class (the paper's claims 4-8).

For one dataset this asset reads every backbone's stored embeddings and zero-shot logits, fits every
method of `synergy.ensembles` on seeded draws from the `fewshot` split and scores it on the whole
`test` split. No backbone runs; the fitting pool and the test set never share an example id
(`synergy.ensembles.protocol.evaluate` refuses to run otherwise).

This module holds only the Dagster side: the run config (`EnsemblesConfig`, `resolve_config`), the
asset, and the storage paths and metadata of `run_ensembles`. The experiment itself is Dagster-free
and usable from a notebook: loading, the protocol, the constants (`PAPER_KS`, `NLC_VARIANTS`, ...)
and the output tables are in `synergy.ensembles.experiment`, the figures in `synergy.ensembles.plots`.

Protocol (docs/ensembles.md):
- kshot: k labeled examples per class, k in `config.ks`, seeds 0..R-1; every method of a (k, seed)
  sees the identical draw. NLC variants (form x positivity, and the prototype's variant) are fitted
  on the same draws at `config.ablation_ks`.
- fraction: a stratified `config.fraction` (10%) of the fewshot pool.
- linear_probe: per-backbone logistic-regression heads on 90% of the pool, ensembles on the other 10%.
- efficiency: NLC on every subset of backbones at the largest k, against the subset's cost (GFLOPs
  and ms per image measured at extraction), and a Cascade accuracy-vs-cost curve.

Outputs for dataset d (views in storage/sql/views/30_ensembles.sql):
- `<store>/ensemble_results/dataset=<d>/data.parquet`   mean +- std over seeds per method x variant x mode x k
- `<store>/ensemble_runs/dataset=<d>/data.parquet`      one row per (draw, method): the raw records
- `<store>/ensemble_by_group/dataset=<d>/data.parquet`  the same per (perturbation, severity) of the test set
- `<store>/nlc_weights/dataset=<d>/data.parquet`        NLC's per-example backbone weights on the test split
- `<store>/ensemble_efficiency/dataset=<d>/data.parquet` NLC per backbone subset and the cascade curve
- `<store>/plots/dataset=<d>/ensembles_*.png`
"""


import time
from typing import Optional

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.analysis import analysis
from assets.extraction import embeddings
from assets.metadata import image_metadata, markdown_table
from pipelines.partitions import by_dataset, dataset_partitions
from pipelines.resources import SynergyResource
from storage.atomic import write_bytes, write_table
from synergy.ensembles.experiment import (
    DEFAULT_NLC_VARIANT, EFFICIENCY_SCHEMA, FIT_SPLIT, MODES, PAPER_KS, PAPER_SEEDS, TEST_SPLIT, WEIGHTS_SCHEMA,
    mean_std_text, backbone_costs, check_config, cheapest_beating, efficiency_rows, group_table, groups_of_test,
    headline_rows, load_ensemble_data, nlc_weights, results_table, run_protocol, runs_table,
)
from synergy.ensembles.plots import plot_ablation, plot_accuracy_vs_k, plot_efficiency, plot_trust

ENSEMBLES_CODE_VERSION = "ensembles-v1"


class EnsemblesConfig(dg.Config):
    """Run config of the ensembles stage (docs/ensembles.md, "Defaults and run time").

    `ks` and `seeds` left unset come from the registry's `settings: {ensembles: {ks, seeds}}`, and
    without that from the paper's grid (PAPER_KS, PAPER_SEEDS). The demo registry asks for
    ks [1, 4, 16] and 3 seeds so that `make demo` fits its 10-minute budget on 2 cores.
    """

    ks: Optional[list[int]] = None
    seeds: Optional[int] = None
    modes: list[str] = list(MODES)
    fraction: float = 0.1
    nlc_variants: bool = True
    ablation_ks: Optional[list[int]] = None  # None: the smallest and the largest of `ks`
    subsets: bool = True
    subset_seeds: int = 1
    max_subset_backbones: int = 8
    cascade_thresholds: list[float] = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
    cascade_threshold: float = 0.8
    nlc_steps: int = 300
    prototype_steps: int = 1000
    moe_steps: int = 300
    batch_size: int = 256
    probe_max_iter: int = 1000
    torch_threads: int = 1


# ------------------------------------------------------------------------------------------ config
def resolve_config(config: EnsemblesConfig, registry_settings: dict) -> EnsemblesConfig:
    """Fill `ks` / `seeds` left unset: the run config wins, then the registry, then the paper.
    The NLC ablation runs at the smallest and largest k unless `ablation_ks` is given."""
    block = registry_settings.get("ensembles") or {}  # validated by synergy.registry
    ks = config.ks if config.ks is not None else block.get("ks", PAPER_KS)
    seeds = config.seeds if config.seeds is not None else block.get("seeds", PAPER_SEEDS)
    ablation = config.ablation_ks if config.ablation_ks is not None else sorted({min(ks), max(ks)})
    return config.model_copy(update={"ks": list(ks), "seeds": int(seeds), "ablation_ks": list(ablation)})


# ------------------------------------------------------------------------------------------- asset
def run_ensembles(context, synergy: SynergyResource, dataset: str, config: EnsemblesConfig) -> dict:
    """Fit, score, store and plot the ensembles of one dataset; return the asset's metadata."""
    import torch

    from synergy import plots

    log = context.log.info
    start = time.perf_counter()
    registry, store = synergy.registry(), synergy.store()
    spec = registry.dataset(dataset)
    config = resolve_config(config, registry.settings)
    threads = torch.get_num_threads()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    try:
        data = load_ensemble_data(store, dataset, sorted(registry.backbone_keys), log)
        fit_pool, test = data[FIT_SPLIT], data[TEST_SPLIT]
        check_config(config, fit_pool)
        backbones = list(test.backbones)
        costs = backbone_costs(store, registry, backbones)
        log(f"{dataset}: {len(backbones)} backbones, fit pool {fit_pool.n_examples}, test {test.n_examples}; "
            f"config ks={config.ks} seeds={config.seeds} modes={config.modes}")
        fit_start = time.perf_counter()
        records = run_protocol(config, data, costs, log)
        eff = efficiency_rows(config, dataset, data, records, costs, log) if config.subsets else []
        weights = nlc_weights(records, test)
        fit_seconds = time.perf_counter() - fit_start
    finally:
        torch.set_num_threads(threads)
    group_of, groups = groups_of_test(store, dataset, test.example_ids)

    # ------------------------------------------------------------------------------------ store
    results = results_table(dataset, records, len(backbones))
    footer = {"dataset": dataset, "code_version": ENSEMBLES_CODE_VERSION, "fit_split": FIT_SPLIT,
              "test_split": TEST_SPLIT, "backbones": backbones, "n_fit_pool": fit_pool.n_examples,
              "n_test": test.n_examples, "config": config.model_dump() if hasattr(config, "model_dump") else dict(config),
              "fit_seconds": round(fit_seconds, 1)}
    write_table(store.dataset_dir("ensemble_results", dataset) / "data.parquet", results, footer)
    write_table(store.dataset_dir("ensemble_runs", dataset) / "data.parquet", runs_table(dataset, records), footer)
    write_table(store.dataset_dir("ensemble_by_group", dataset) / "data.parquet",
                group_table(dataset, records, test, group_of, groups), footer)
    write_table(store.dataset_dir("ensemble_efficiency", dataset) / "data.parquet",
                pa.Table.from_pylist(eff, schema=EFFICIENCY_SCHEMA), footer)
    if weights is not None:
        w, draw = weights
        b = len(backbones)
        write_table(store.dataset_dir("nlc_weights", dataset) / "data.parquet", pa.table({
            "dataset": [dataset] * (test.n_examples * b),
            "example_id": np.repeat(test.example_ids, b).tolist(),
            "backbone": backbones * test.n_examples,
            "weight": w.reshape(-1)}, schema=WEIGHTS_SCHEMA),
            {**footer, "variant": DEFAULT_NLC_VARIANT, "draw": draw})

    # ------------------------------------------------------------------------------------ plots
    rows = results.to_pylist()
    colors = plots.backbone_colors(registry.backbone_keys)
    figures = {"ensembles_accuracy_vs_k": plot_accuracy_vs_k(rows, dataset)} if any(
        r["mode"] == "kshot" for r in rows) else {}
    if eff:
        unit = "gflops" if costs["gflops"] is not None else "ms"
        if costs[unit] is not None:
            figures["ensembles_efficiency"] = plot_efficiency(eff, rows, colors, dataset, unit)
    if any(r["method"] == "nlc" and not r["is_default"] for r in rows):
        figures["ensembles_nlc_ablation"] = plot_ablation(rows, dataset)
    if weights is not None:
        figures["ensembles_nlc_trust"] = plot_trust(weights[0], test.labels, backbones, list(spec.classes), dataset)
    plot_meta = {}
    for name, fig in figures.items():
        full, small = plots.figure_pngs(fig)
        write_bytes(store.plots_dir(dataset) / f"{name}.png", full)
        plot_meta[f"plot_{name.removeprefix('ensembles_')}"] = image_metadata(small, f"{dataset} {name}")

    # ------------------------------------------------------------------------------------ metadata
    head = headline_rows(rows)
    ablation = [{"variant": r["variant"], "k": r["k"], "accuracy": mean_std_text(r), "gain": r["gain_over_best_single"]}
                for r in rows if r["method"] == "nlc" and r["mode"] == "kshot" and (
                    not r["is_default"] or r["k"] in config.ablation_ks)]
    other_modes = [{"mode": r["mode"], "method": r["method"], "accuracy": mean_std_text(r), "gain": r["gain_over_best_single"]}
                   for r in rows if r["mode"] != "kshot" and r["is_default"]]
    cheapest = cheapest_beating(eff, "gflops" if costs["gflops"] is not None else "ms")
    nlc_rows = [r for r in rows if r["method"] == "nlc" and r["is_default"]]
    below = [f"{r['mode']} k={r['k']}" if r["k"] else r["mode"] for r in nlc_rows
             if r["gain_over_best_single"] is not None and r["gain_over_best_single"] < 0]
    seconds = time.perf_counter() - start
    log(f"{dataset}: ensembles fitted in {fit_seconds:.1f}s ({seconds:.1f}s with I/O and plots)")
    meta = {
        "n_backbones": len(backbones), "n_fit_pool": fit_pool.n_examples, "n_test": test.n_examples,
        "n_records": len(records), "fit_seconds": round(fit_seconds, 1), "seconds": round(seconds, 1),
        "headline": dg.MetadataValue.md(markdown_table(head)),
        "nlc_ablation": dg.MetadataValue.md(markdown_table(ablation)),
        "other_modes": dg.MetadataValue.md(markdown_table(other_modes)),
        "ensemble_results": dg.MetadataValue.md(markdown_table(
            [{**r, "accuracy": mean_std_text(r)} for r in rows if r["is_default"]],
            ["mode", "k", "fraction", "method", "accuracy", "gain_over_best_single", "oracle_gap_closed",
             "cost_gflops", "n_fit"])),
        "efficiency": dg.MetadataValue.md(markdown_table(
            [{**r, "backbones": "+".join(r["backbones"])} for r in eff],
            ["kind", "backbones", "threshold", "cost_gflops", "cost_ms", "accuracy", "oracle_accuracy",
             "beats_best_single"])),
        "cheapest_subset_beating_best_single": "+".join(cheapest["backbones"]) if cheapest else "(none)",
        "nlc_below_best_single": ", ".join(below) or "never",
        "results_path": dg.MetadataValue.path(str(store.dataset_dir("ensemble_results", dataset))),
        "plots": dg.MetadataValue.path(str(store.plots_dir(dataset))),
        **plot_meta,
    }
    return meta


@dg.asset(
    partitions_def=dataset_partitions,
    deps=[dg.AssetDep(embeddings, partition_mapping=by_dataset),
          dg.AssetDep(analysis, partition_mapping=dg.IdentityPartitionMapping())],
    group_name="ensembles", kinds={"pytorch", "scikitlearn", "parquet"}, code_version=ENSEMBLES_CODE_VERSION,
)
def ensembles(context: dg.AssetExecutionContext, synergy: SynergyResource, config: EnsemblesConfig) -> dg.MaterializeResult:
    """Best single, static ensembles, Super Learner, stacking, MoE, NLC (and variants), probe, cascade and the
    oracle, fitted on k labeled `fewshot` examples per class and scored on `test` (mean ± std over seeds)."""
    return dg.MaterializeResult(metadata=run_ensembles(context, synergy, context.partition_key, config))
