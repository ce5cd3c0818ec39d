"""Stage 5: backbone ensembles fitted on k labeled examples per class (the paper's claims 4-8).

For one dataset this asset reads every backbone's stored embeddings and zero-shot logits, fits every
method of `synergy.ensembles` on seeded draws from the `fewshot` split and scores it on the whole
`test` split. No backbone runs; the fitting pool and the test set never share an example id
(`synergy.ensembles.protocol.evaluate` refuses to run otherwise).

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


import itertools
import time
from collections import defaultdict
from functools import partial
from typing import Callable, Optional

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets.analysis import analysis
from assets.extraction import embeddings
from assets.metadata import image_metadata, markdown_table
from pipelines.partitions import by_dataset, dataset_partitions
from pipelines.resources import SynergyResource
from storage.atomic import write_bytes, write_table
from storage.layout import FeatureStore
from storage.warehouse import registry_tables
from synergy.ensembles import (
    NLC, BestSingle, CalibratedMean, Cascade, EnsembleData, EnsembleError, EntropyWeighted, LogRegProbe,
    MajorityVote, MaxConfidence, MeanLogits, MeanProbs, MixtureOfExperts, Stacking, SuperLearner, evaluate,
    make_draws, oracle_correct, summarise,
)
from synergy.errors import StoreError

ENSEMBLES_CODE_VERSION = "ensembles-v1"
FIT_SPLIT, TEST_SPLIT = "fewshot", "test"
MODES = ("kshot", "fraction", "linear_probe")

# NLC variants of the ablation: constructor overrides of synergy.ensembles.NLC. The default variant
# is the paper's specification (multiply by softplus weights, logit scale 1, Adam lr 2e-4, wd 0.01,
# 300 full-batch steps); "prototype" is the input-dependent variant measured on the prototype zoo.
DEFAULT_NLC_VARIANT = "multiply-softplus"
NLC_VARIANTS: dict[str, dict] = {
    f"{form}-{pos}": {"form": form, "positivity": pos}
    for form in ("multiply", "divide") for pos in ("softplus", "exp", "softmax")
}
NLC_VARIANTS["prototype"] = {"form": "multiply", "positivity": "softmax", "logit_scale": 0.05,
                             "weight_decay": 0.0}
METHOD_ORDER = ["best_single", "mean_logits", "mean_probs", "majority_vote", "calibrated_mean",
                "max_confidence", "entropy_weighted", "super_learner", "stacking", "mixture_of_experts",
                "nlc", "logreg_probe", "cascade"]

RESULTS_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("method", pa.string(), nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("is_default", pa.bool_(), nullable=False),
    pa.field("mode", pa.string(), nullable=False),
    pa.field("k", pa.int32()),
    pa.field("fraction", pa.float64()),
    pa.field("n_seeds", pa.int32(), nullable=False),
    pa.field("mean", pa.float64(), nullable=False),
    pa.field("std", pa.float64(), nullable=False),
    pa.field("gain_over_best_single", pa.float64()),
    pa.field("oracle_gap_closed", pa.float64()),
    pa.field("cost_gflops", pa.float64()),
    pa.field("cost_ms", pa.float64()),
    pa.field("n_backbones", pa.int32(), nullable=False),
    pa.field("n_fit", pa.float64(), nullable=False),
    pa.field("fit_seconds", pa.float64(), nullable=False),
])

RUNS_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("method", pa.string(), nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("is_default", pa.bool_(), nullable=False),
    pa.field("mode", pa.string(), nullable=False),
    pa.field("k", pa.int32()),
    pa.field("fraction", pa.float64()),
    pa.field("seed", pa.int32(), nullable=False),
    pa.field("accuracy", pa.float64(), nullable=False),
    pa.field("n_fit", pa.int32(), nullable=False),
    pa.field("fit_ids", pa.string(), nullable=False),
    pa.field("fit_seconds", pa.float64(), nullable=False),
    pa.field("cost_gflops", pa.float64()),
    pa.field("cost_ms", pa.float64()),
    pa.field("chosen_backbone", pa.string()),
])

GROUP_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("perturbation", pa.string(), nullable=False),
    pa.field("severity", pa.int32(), nullable=False),
    pa.field("method", pa.string(), nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("is_default", pa.bool_(), nullable=False),
    pa.field("mode", pa.string(), nullable=False),
    pa.field("k", pa.int32()),
    pa.field("fraction", pa.float64()),
    pa.field("n_seeds", pa.int32(), nullable=False),
    pa.field("n_examples", pa.int64(), nullable=False),
    pa.field("mean", pa.float64(), nullable=False),
    pa.field("std", pa.float64(), nullable=False),
    pa.field("gain_over_best_single", pa.float64()),
])

WEIGHTS_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("example_id", pa.string(), nullable=False),
    pa.field("backbone", pa.string(), nullable=False),
    pa.field("weight", pa.float64(), nullable=False),
])

EFFICIENCY_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),          # 'subset' (NLC on a subset) | 'cascade'
    pa.field("backbones", pa.list_(pa.string()), nullable=False),
    pa.field("n_backbones", pa.int32(), nullable=False),
    pa.field("k", pa.int32(), nullable=False),
    pa.field("n_seeds", pa.int32(), nullable=False),
    pa.field("threshold", pa.float64()),
    pa.field("cost_gflops", pa.float64()),
    pa.field("cost_ms", pa.float64()),
    pa.field("accuracy", pa.float64(), nullable=False),
    pa.field("accuracy_std", pa.float64(), nullable=False),
    pa.field("oracle_accuracy", pa.float64()),
    pa.field("best_single_accuracy", pa.float64(), nullable=False),
    pa.field("beats_best_single", pa.bool_(), nullable=False),
])


# The paper's protocol: k in {1, 2, 4, 8, 16} labeled examples per class, 5 seeds.
PAPER_KS, PAPER_SEEDS = [1, 2, 4, 8, 16], 5


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


# --------------------------------------------------------------------------------------------- data
def _fixed_list_numpy(column: pa.ChunkedArray, n: int) -> np.ndarray:
    flat = column.combine_chunks()
    if isinstance(flat, pa.ChunkedArray):  # pragma: no cover - old pyarrow
        flat = flat.chunk(0)
    values = flat.values if flat.offset == 0 else pc.list_flatten(flat)
    return values.to_numpy(zero_copy_only=False).reshape(n, -1).astype(np.float32, copy=False)


def load_ensemble_data(store: FeatureStore, dataset: str, backbones: list[str],
                       log: Callable[[str], None] = print) -> dict[str, EnsembleData]:
    """{'fewshot': ..., 'test': ...}: every backbone's embeddings and logits, rows aligned by example id.

    Backbones without stored features for the dataset are left out (with a log line); an example
    missing for any included backbone (a rejected image) is dropped from that split.
    """
    tables, present = {}, []
    for b in backbones:
        path = store.embeddings(b, dataset)
        if not path.exists():
            log(f"{b} has no features for {dataset} yet: left out of the ensembles")
            continue
        t = pq.read_table(str(path), columns=["example_id", "split", "label", "embedding", "logits"])
        tables[b] = t.filter(pc.is_in(t["split"], pa.array([FIT_SPLIT, TEST_SPLIT])))
        present.append(b)
    if not present:
        raise StoreError(f"no stored features for dataset {dataset!r} at {store.root}: materialize `embeddings` first")
    out = {}
    for split in (FIT_SPLIT, TEST_SPLIT):
        parts = {b: t.filter(pc.equal(t["split"], split)) for b, t in tables.items()}
        ids = [p["example_id"].to_numpy(zero_copy_only=False).astype(str) for p in parts.values()]
        common = ids[0]
        for i in ids[1:]:
            common = np.intersect1d(common, i)
        common = np.unique(common)
        if len(common) == 0:
            raise StoreError(f"dataset {dataset!r} has no {split!r} examples shared by the backbones "
                             f"{present}: the ensembles fit on {FIT_SPLIT!r} and score on {TEST_SPLIT!r}")
        dropped = max(len(i) for i in ids) - len(common)
        if dropped:
            log(f"{dataset}/{split}: {dropped} example(s) lack a row for some backbone and are left out")
        embs, logits, labels = [], [], None
        for (b, part), pid in zip(parts.items(), ids):
            order = np.argsort(pid, kind="stable")
            rows = order[np.searchsorted(pid[order], common)]
            n = part.num_rows
            embs.append(_fixed_list_numpy(part["embedding"], n)[rows])
            logits.append(_fixed_list_numpy(part["logits"], n)[rows])
            lab = part["label"].to_numpy()[rows].astype(np.int64)
            if labels is not None and not np.array_equal(lab, labels):
                raise StoreError(f"backbones disagree on the labels of {dataset}/{split}")
            labels = lab
        out[split] = EnsembleData(embs, logits, labels, common, tuple(present))
    return out


def groups_of_test(store: FeatureStore, dataset: str, ids: np.ndarray) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """(group index per test id, [(perturbation, severity)...]); one group ('none', 0) without an example table."""
    path = store.examples(dataset)
    if not path.exists():
        return np.zeros(len(ids), dtype=int), [("none", 0)]
    ex = pq.read_table(str(path), columns=["example_id", "perturbation", "severity"])
    lookup = dict(zip(ex["example_id"].to_pylist(),
                      zip(ex["perturbation"].to_pylist(), ex["severity"].to_pylist())))
    keys = [lookup.get(i, ("none", 0)) for i in ids.tolist()]
    keys = [(p or "none", int(s or 0)) for p, s in keys]
    groups = sorted(set(keys), key=lambda g: (g[0] != "none", g))
    index = {g: i for i, g in enumerate(groups)}
    return np.array([index[g] for g in keys], dtype=int), groups


def backbone_costs(store: FeatureStore, registry, backbones: list[str]) -> dict[str, np.ndarray | None]:
    """Per-backbone image GFLOPs and ms per image as measured at extraction; None where any is unknown."""
    rows = {r["backbone"]: r for r in registry_tables(store, registry)["backbones"].to_pylist()}
    out = {}
    for name, column in (("gflops", "image_gflops"), ("ms", "ms_per_image")):
        values = [rows.get(b, {}).get(column) for b in backbones]
        out[name] = None if any(v is None for v in values) else np.array(values, dtype=float)
    return out


# ----------------------------------------------------------------------------------------- methods
def split_method(name: str) -> tuple[str, str, bool]:
    """Record name -> (method, variant, is_default): 'nlc[divide-exp]' -> ('nlc', 'divide-exp', False)."""
    if name.endswith("]") and "[" in name:
        method, variant = name[:-1].split("[", 1)
        return method, variant, variant == DEFAULT_NLC_VARIANT
    if name == "nlc":
        return "nlc", DEFAULT_NLC_VARIANT, True
    return name, "default", True


def nlc_factory(config: EnsemblesConfig, variant: str = DEFAULT_NLC_VARIANT):
    params = dict(NLC_VARIANTS[variant])
    params["steps"] = config.prototype_steps if variant == "prototype" else config.nlc_steps
    return partial(NLC, batch_size=config.batch_size, **params)


def method_factories(config: EnsemblesConfig, cascade_costs: np.ndarray | None) -> dict[str, Callable]:
    """Every method of the table, by record name, as zero-argument factories."""
    return {
        "best_single": BestSingle,
        "mean_logits": MeanLogits,
        "mean_probs": MeanProbs,
        "majority_vote": MajorityVote,
        "calibrated_mean": CalibratedMean,
        "max_confidence": MaxConfidence,
        "entropy_weighted": EntropyWeighted,
        "super_learner": SuperLearner,
        "stacking": Stacking,
        "mixture_of_experts": partial(MixtureOfExperts, steps=config.moe_steps, batch_size=config.batch_size),
        "nlc": nlc_factory(config),
        "logreg_probe": partial(LogRegProbe, max_iter=config.probe_max_iter),
        "cascade": partial(Cascade, costs=None if cascade_costs is None else list(cascade_costs),
                           threshold=config.cascade_threshold),
    }


def variant_factories(config: EnsemblesConfig) -> dict[str, Callable]:
    return {f"nlc[{v}]": nlc_factory(config, v) for v in NLC_VARIANTS if v != DEFAULT_NLC_VARIANT}


class PredictionRecorder:
    """Wraps method factories so every prediction evaluate makes is kept with its estimator and data.

    evaluate() emits, per draw, an oracle record and then one record per method in the order of the
    methods mapping, and calls each estimator's predict exactly once; `attach` pairs them back up.
    """

    def __init__(self):
        self.calls: list[tuple[str, object, EnsembleData, np.ndarray]] = []

    def wrap(self, methods: dict[str, Callable]) -> dict[str, Callable]:
        return {name: self._factory(name, make) for name, make in methods.items()}

    def _factory(self, name: str, make: Callable) -> Callable:
        def build():
            est = make()
            predict = est.predict

            def recorded(data):
                pred = predict(data)
                self.calls.append((name, est, data, pred))
                return pred

            est.predict = recorded  # instance attribute: get_params / set_params are unaffected
            return est
        return build

    def attach(self, records: list[dict]) -> list[dict]:
        fitted = [r for r in records if r["method"] != "oracle"]
        if len(fitted) != len(self.calls):
            raise EnsembleError(f"{len(self.calls)} predictions recorded for {len(fitted)} records")
        for r, (name, est, data, pred) in zip(fitted, self.calls):
            if r["method"] != name:
                raise EnsembleError(f"record {r['method']!r} paired with prediction of {name!r}")
            r["_est"], r["_data"], r["_correct"] = est, data, pred == data.labels
        self.calls = []
        return records


def record_cost(r: dict, backbones: list[str], costs: dict) -> None:
    """cost_gflops / cost_ms per test image of the record's method, and the backbone best_single chose."""
    est = r.get("_est")
    r["chosen_backbone"] = None
    for unit in ("gflops", "ms"):
        c = costs[unit]
        if c is None:
            r[f"cost_{unit}"] = None
        elif isinstance(est, BestSingle):
            r[f"cost_{unit}"] = float(c[est.best_])
        elif isinstance(est, Cascade):
            r[f"cost_{unit}"] = float(est.cost_per_example(r["_data"], costs=list(c)).mean())
        else:
            r[f"cost_{unit}"] = float(c.sum())
    if isinstance(est, BestSingle):
        r["chosen_backbone"] = backbones[est.best_]


# -------------------------------------------------------------------------------------- evaluation
def _seeds(n: int) -> list[int]:
    if n < 1:
        raise EnsembleError(f"seeds must be >= 1, got {n}")
    return list(range(n))


def resolve_config(config: EnsemblesConfig, registry_settings: dict) -> EnsemblesConfig:
    """Fill `ks` / `seeds` left unset: the run config wins, then the registry, then the paper.
    The NLC ablation runs at the smallest and largest k unless `ablation_ks` is given."""
    block = registry_settings.get("ensembles") or {}  # validated by synergy.registry
    ks = config.ks if config.ks is not None else block.get("ks", PAPER_KS)
    seeds = config.seeds if config.seeds is not None else block.get("seeds", PAPER_SEEDS)
    ablation = config.ablation_ks if config.ablation_ks is not None else sorted({min(ks), max(ks)})
    return config.model_copy(update={"ks": list(ks), "seeds": int(seeds), "ablation_ks": list(ablation)})


def check_config(config: EnsemblesConfig, fit_pool: EnsembleData) -> None:
    """Fail before any fitting when the config asks for more than the fit pool holds."""
    bad = [m for m in config.modes if m not in MODES]
    if bad:
        raise EnsembleError(f"unknown mode(s) {bad}; choose from {list(MODES)}")
    if not config.modes:
        raise EnsembleError("modes is empty: nothing to evaluate")
    if "kshot" in config.modes:
        if not config.ks or min(config.ks) < 1:
            raise EnsembleError(f"ks must be positive integers, got {config.ks}")
        counts = np.bincount(fit_pool.labels, minlength=fit_pool.n_classes)
        need = max(config.ks + ((config.ablation_ks or []) if config.nlc_variants else []))
        if need > counts.min():
            c = int(counts.argmin())
            raise EnsembleError(f"k={need} needs {need} labeled examples of every class in the "
                                f"{FIT_SPLIT!r} split, but class {c} has only {counts[c]}: lower `ks` in the "
                                f"registry (`settings: {{ensembles: {{ks: [...]}}}}`) or `ks` / `ablation_ks` in "
                                f"the run config")


def run_protocol(config: EnsemblesConfig, data: dict[str, EnsembleData], costs: dict,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Every (mode, draw, method) record, with costs and per-example correctness attached."""
    fit_pool, test = data[FIT_SPLIT], data[TEST_SPLIT]
    seeds = _seeds(config.seeds)
    methods = method_factories(config, costs["gflops"] if costs["gflops"] is not None else costs["ms"])
    recorder = PredictionRecorder()
    records: list[dict] = []
    for mode in [m for m in MODES if m in config.modes]:
        t0 = time.perf_counter()
        if mode == "kshot":
            ablation = sorted(set(config.ablation_ks)) if config.nlc_variants else []
            rest = sorted(set(config.ks) - set(ablation))
            batches = [(ablation, {**methods, **variant_factories(config)})] if ablation else []
            batches += [(rest, methods)] if rest else []
            for ks, ms in batches:
                records += recorder.attach(evaluate(fit_pool, test, recorder.wrap(ms), ks=ks, seeds=seeds, mode=mode))
        else:
            records += recorder.attach(evaluate(fit_pool, test, recorder.wrap(methods), seeds=seeds, mode=mode,
                                                fractions=(config.fraction,)))
        log(f"{mode}: {time.perf_counter() - t0:.1f}s")
    for r in records:
        if r["method"] == "oracle":
            r["_correct"] = None
            r["chosen_backbone"] = None
            for unit in ("gflops", "ms"):
                r[f"cost_{unit}"] = None if costs[unit] is None else float(costs[unit].sum())
        else:
            record_cost(r, list(test.backbones), costs)
    return records


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def results_table(dataset: str, records: list[dict], n_backbones: int) -> pa.Table:
    """ensemble_results: summarise() per (mode, k, fraction, method), with costs and fit sizes."""
    extra = defaultdict(list)
    for r in records:
        extra[(r["mode"], r["k"], r["fraction"], r["method"])].append(r)
    rows = []
    for s in summarise(records):
        group = extra[(s["mode"], s["k"], s["fraction"], s["method"])]
        method, variant, is_default = split_method(s["method"])
        rows.append({
            "dataset": dataset, "method": method, "variant": variant, "is_default": is_default,
            "mode": s["mode"], "k": s["k"], "fraction": s["fraction"], "n_seeds": s["n_seeds"],
            "mean": s["mean"], "std": s["std"], "gain_over_best_single": s["gain_over_best_single"],
            "oracle_gap_closed": s["oracle_gap_closed"],
            "cost_gflops": _mean(r["cost_gflops"] for r in group), "cost_ms": _mean(r["cost_ms"] for r in group),
            "n_backbones": 1 if method == "best_single" else n_backbones,
            "n_fit": float(np.mean([r["n_fit"] for r in group])),
            "fit_seconds": float(np.mean([r["fit_seconds"] for r in group])),
        })
    order = {m: i for i, m in enumerate(["oracle"] + METHOD_ORDER)}
    rows.sort(key=lambda r: (MODES.index(r["mode"]), r["k"] or 0, r["fraction"] or 0,
                             order.get(r["method"], 99), not r["is_default"], r["variant"]))
    return pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)


def runs_table(dataset: str, records: list[dict]) -> pa.Table:
    rows = []
    for r in records:
        method, variant, is_default = split_method(r["method"])
        rows.append({"dataset": dataset, "method": method, "variant": variant, "is_default": is_default,
                     **{c: r[c] for c in ("mode", "k", "fraction", "seed", "accuracy", "n_fit", "fit_ids",
                                          "fit_seconds", "cost_gflops", "cost_ms", "chosen_backbone")}})
    return pa.Table.from_pylist(rows, schema=RUNS_SCHEMA)


def group_table(dataset: str, records: list[dict], test: EnsembleData, group_of: np.ndarray,
                groups: list[tuple[str, int]]) -> pa.Table:
    """Accuracy per (perturbation, severity) of the test split, mean +- std over seeds, and the gain
    over best_single on the same group and draws."""
    oracle = oracle_correct(test)
    n_per = np.bincount(group_of, minlength=len(groups))
    per = defaultdict(list)  # (mode, k, fraction, method) -> [per-group accuracy vectors]
    for r in records:
        correct = oracle if r["method"] == "oracle" else r["_correct"]
        acc = np.bincount(group_of, weights=correct.astype(float), minlength=len(groups)) / np.maximum(n_per, 1)
        per[(r["mode"], r["k"], r["fraction"], r["method"])].append(acc)
    rows = []
    for (mode, k, fraction, name), accs in per.items():
        accs = np.array(accs)
        best = per.get((mode, k, fraction, "best_single"))
        best_mean = None if best is None else np.mean(best, axis=0)
        method, variant, is_default = split_method(name)
        for g, (pert, sev) in enumerate(groups):
            if not n_per[g]:
                continue
            mean = float(accs[:, g].mean())
            rows.append({"dataset": dataset, "perturbation": pert, "severity": sev, "method": method,
                         "variant": variant, "is_default": is_default, "mode": mode, "k": k, "fraction": fraction,
                         "n_seeds": len(accs), "n_examples": int(n_per[g]), "mean": mean,
                         "std": float(accs[:, g].std()),
                         "gain_over_best_single": None if best_mean is None else mean - float(best_mean[g])})
    return pa.Table.from_pylist(rows, schema=GROUP_SCHEMA)


def nlc_weights(records: list[dict], test: EnsembleData) -> tuple[np.ndarray, dict] | None:
    """(n_test, B) weights of the default NLC fitted at the largest k, seed 0 (kshot), and its draw."""
    cands = [r for r in records if r["mode"] == "kshot" and r["method"] == "nlc" and r["seed"] == 0]
    if not cands:
        cands = [r for r in records if r["method"] == "nlc" and r["seed"] == 0 and r["mode"] != "linear_probe"]
    if not cands:
        return None
    r = max(cands, key=lambda r: (r["k"] or 0, r["n_fit"]))
    return r["_est"].backbone_weights(test), {k: r[k] for k in ("mode", "k", "fraction", "seed", "fit_ids")}


def efficiency_rows(config: EnsemblesConfig, dataset: str, data: dict[str, EnsembleData], records: list[dict],
                    costs: dict, log: Callable[[str], None] = print) -> list[dict]:
    """NLC on every backbone subset at the largest k, and the cascade curve, on the same draws."""
    fit_pool, test = data[FIT_SPLIT], data[TEST_SPLIT]
    names = list(test.backbones)
    b = len(names)
    single = np.array([(z.argmax(1) == test.labels).mean() for z in test.logits])
    best_single = float(single.max())
    k = max(config.ks) if "kshot" in config.modes else max(config.ablation_ks)
    seeds = _seeds(config.subset_seeds)

    def cost(idx, unit):
        c = costs[unit]
        return None if c is None else float(c[list(idx)].sum())

    rows = []
    if b <= config.max_subset_backbones:
        subsets = [s for n in range(1, b + 1) for s in itertools.combinations(range(b), n)]
    else:  # singletons, the full set and nested cheapest-first subsets
        order = np.argsort(costs["gflops"] if costs["gflops"] is not None else np.arange(b), kind="stable")
        subsets = [(i,) for i in range(b)] + [tuple(sorted(order[:n])) for n in range(2, b + 1)]
    full = [r for r in records if r["mode"] == "kshot" and r["method"] == "nlc" and r["k"] == k
            and r["seed"] in seeds]
    t0 = time.perf_counter()
    for idx in subsets:
        sub_test = test.select_backbones(list(idx))
        oracle = float(oracle_correct(sub_test).mean())
        if len(idx) == 1:
            # a positive factor never changes a single backbone's argmax: NLC on one backbone is that backbone
            accs = [float(single[idx[0]])]
        elif len(idx) == b and len(full) == len(seeds):
            accs = [r["accuracy"] for r in full]
        else:
            recs = evaluate(fit_pool.select_backbones(list(idx)), sub_test, {"nlc": nlc_factory(config)},
                            ks=[k], seeds=seeds, mode="kshot")
            accs = [r["accuracy"] for r in recs if r["method"] == "nlc"]
        acc = float(np.mean(accs))
        rows.append({"dataset": dataset, "kind": "subset", "backbones": [names[i] for i in idx],
                     "n_backbones": len(idx), "k": k, "n_seeds": len(seeds), "threshold": None,
                     "cost_gflops": cost(idx, "gflops"), "cost_ms": cost(idx, "ms"), "accuracy": acc,
                     "accuracy_std": float(np.std(accs)), "oracle_accuracy": oracle,
                     "best_single_accuracy": best_single, "beats_best_single": acc > best_single})
    log(f"NLC on {len(subsets)} backbone subsets: {time.perf_counter() - t0:.1f}s")

    order_costs = costs["gflops"] if costs["gflops"] is not None else costs["ms"]
    if order_costs is not None and b > 1:
        draws = make_draws(fit_pool, "kshot", ks=[k], seeds=seeds)
        for t in config.cascade_thresholds:
            accs, spent = [], defaultdict(list)
            for d in draws:
                cas = Cascade(costs=list(order_costs), threshold=float(t)).fit(fit_pool.subset(d["rows"]))
                accs.append(float((cas.predict(test) == test.labels).mean()))
                for unit in ("gflops", "ms"):
                    if costs[unit] is not None:
                        spent[unit].append(float(cas.cost_per_example(test, costs=list(costs[unit])).mean()))
            acc = float(np.mean(accs))
            rows.append({"dataset": dataset, "kind": "cascade", "backbones": names, "n_backbones": b, "k": k,
                         "n_seeds": len(seeds), "threshold": float(t),
                         "cost_gflops": _mean(spent["gflops"]) if spent["gflops"] else None,
                         "cost_ms": _mean(spent["ms"]) if spent["ms"] else None, "accuracy": acc,
                         "accuracy_std": float(np.std(accs)), "oracle_accuracy": None,
                         "best_single_accuracy": best_single, "beats_best_single": acc > best_single})
    return rows


def cheapest_beating(rows: list[dict], unit: str = "gflops") -> dict | None:
    cands = [r for r in rows if r["kind"] == "subset" and r["beats_best_single"] and r[f"cost_{unit}"] is not None]
    return min(cands, key=lambda r: (r[f"cost_{unit}"], -r["accuracy"])) if cands else None


# ------------------------------------------------------------------------------------------- plots
def _method_colors(methods: list[str]) -> dict[str, str]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {m: cmap(i % 20) for i, m in enumerate(methods)}


def plot_accuracy_vs_k(results: list[dict], dataset: str):
    import matplotlib.pyplot as plt

    rows = [r for r in results if r["mode"] == "kshot" and r["is_default"]]
    methods = [m for m in ["oracle"] + METHOD_ORDER if any(r["method"] == m for r in rows)]
    colors = _method_colors(methods)
    fig, ax = plt.subplots(figsize=(8, 5))
    for m in methods:
        pts = sorted((r["k"], r["mean"], r["std"]) for r in rows if r["method"] == m)
        ks, means, stds = zip(*pts)
        style = {"oracle": dict(color="black", linestyle=":", linewidth=2),
                 "best_single": dict(color="black", linestyle="--", linewidth=1.5),
                 "nlc": dict(color="#d62728", linewidth=3)}.get(m, dict(color=colors[m], linewidth=1.2))
        ax.errorbar(ks, means, yerr=stds, marker="o", markersize=3, capsize=2, label=m, **style)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k labeled examples per class (fewshot split)")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(f"{dataset}: ensembles vs k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return fig


def plot_efficiency(eff: list[dict], results: list[dict], colors: dict[str, str], dataset: str, unit: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    subsets = [r for r in eff if r["kind"] == "subset" and r[f"cost_{unit}"] is not None]
    for r in subsets:
        if r["n_backbones"] == 1:
            b = r["backbones"][0]
            ax.scatter(r[f"cost_{unit}"], r["accuracy"], s=70, color=colors.get(b, "grey"), zorder=3, label=b)
        else:
            ax.scatter(r[f"cost_{unit}"], r["accuracy"], s=25, color="grey", zorder=2)
            ax.annotate("+".join(r["backbones"]), (r[f"cost_{unit}"], r["accuracy"]), fontsize=6, alpha=0.7)
    pts = sorted((r[f"cost_{unit}"], r["accuracy"]) for r in subsets)
    front, best = [], -1.0
    for c, a in pts:
        if a > best:
            front.append((c, a))
            best = a
    if front:
        ax.plot(*zip(*front), color="grey", linewidth=1, label="NLC on subsets: frontier")
    cascade = sorted((r[f"cost_{unit}"], r["accuracy"]) for r in eff if r["kind"] == "cascade"
                     and r[f"cost_{unit}"] is not None)
    if cascade:
        ax.plot(*zip(*cascade), marker="s", markersize=4, color="#9467bd", label="cascade (thresholds)")
    if eff:
        ax.axhline(eff[0]["best_single_accuracy"], color="black", linestyle="--", linewidth=1,
                   label="best single backbone (test)")
    k = eff[0]["k"] if eff else None
    oracle = [r["mean"] for r in results if r["method"] == "oracle" and r["mode"] == "kshot" and r["k"] == k]
    if oracle:
        ax.axhline(oracle[0], color="black", linestyle=":", linewidth=1.5, label="oracle")
    ax.set_xlabel("GFLOPs per image" if unit == "gflops" else "ms per image")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: accuracy vs cost (NLC per subset, k={k})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_ablation(results: list[dict], dataset: str):
    import matplotlib.pyplot as plt

    rows = [r for r in results if r["method"] == "nlc" and r["mode"] == "kshot"]
    ks = sorted({r["k"] for r in rows if not r["is_default"]} or {r["k"] for r in rows})
    variants = [v for v in NLC_VARIANTS if any(r["variant"] == v for r in rows)]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(ks), 1)
    for j, k in enumerate(ks):
        vals = {r["variant"]: r for r in rows if r["k"] == k}
        xs = np.arange(len(variants)) + j * width
        ax.bar(xs, [vals[v]["mean"] if v in vals else np.nan for v in variants], width,
               yerr=[vals[v]["std"] if v in vals else 0 for v in variants], capsize=2, label=f"k={k}")
        best = [r["mean"] for r in results if r["method"] == "best_single" and r["mode"] == "kshot" and r["k"] == k]
        if best:
            ax.hlines(best[0], xs[0] - width / 2, xs[-1] + width / 2, colors="black", linestyles="--", linewidth=1)
    ax.set_xticks(np.arange(len(variants)) + width * (len(ks) - 1) / 2, variants, rotation=30, ha="right")
    lo = min((r["mean"] - r["std"] for r in rows), default=0.0)
    ax.set_ylim(max(0.0, lo - 0.05), None)
    ax.set_ylabel("test accuracy (dashed: best single)")
    ax.set_title(f"{dataset}: NLC variants")
    ax.legend(fontsize=8)
    return fig


def plot_trust(weights: np.ndarray, labels: np.ndarray, backbones: list[str], class_names: list[str], dataset: str):
    import matplotlib.pyplot as plt

    share = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    c = len(class_names)
    m = np.full((c, len(backbones)), np.nan)
    for y in range(c):
        if (labels == y).any():
            m[y] = share[labels == y].mean(axis=0)
    fig, ax = plt.subplots(figsize=(1.2 * len(backbones) + 3, 0.35 * c + 1.5))
    im = ax.imshow(m, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(backbones)), backbones, rotation=30, ha="right")
    ax.set_yticks(range(c), class_names)
    for i in range(c):
        for j in range(len(backbones)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(im, ax=ax, label="mean share of NLC weight")
    ax.set_title(f"{dataset}: which backbone NLC trusts, per true class")
    return fig


# ------------------------------------------------------------------------------------------- asset
def _fmt(r: dict) -> str:
    return f"{r['mean']:.4f} ± {r['std']:.4f}"


def headline_rows(results: list[dict]) -> list[dict]:
    """k=1 and the largest k (kshot, default variants) for the methods the demo summary shows."""
    rows = [r for r in results if r["mode"] == "kshot" and r["is_default"]]
    ks = sorted({r["k"] for r in rows})
    if not ks:
        return []
    lo, hi = ks[0], ks[-1]
    out = []
    for m in ["best_single", "mean_logits", "super_learner", "nlc", "mixture_of_experts", "logreg_probe", "oracle"]:
        by_k = {r["k"]: r for r in rows if r["method"] == m}
        if lo in by_k:
            out.append({"method": m, f"k={lo}": _fmt(by_k[lo]), f"k={hi}": _fmt(by_k[hi]),
                        f"gain k={hi}": by_k[hi]["gain_over_best_single"]})
    return out


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
    ablation = [{"variant": r["variant"], "k": r["k"], "accuracy": _fmt(r), "gain": r["gain_over_best_single"]}
                for r in rows if r["method"] == "nlc" and r["mode"] == "kshot" and (
                    not r["is_default"] or r["k"] in config.ablation_ks)]
    other_modes = [{"mode": r["mode"], "method": r["method"], "accuracy": _fmt(r), "gain": r["gain_over_best_single"]}
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
            [{**r, "accuracy": _fmt(r)} for r in rows if r["is_default"]],
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
