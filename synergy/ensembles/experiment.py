"""The ensembles experiment without Dagster: the protocol behind the `ensembles` asset (stage 5).

Everything here can run from a notebook: load a dataset's stored embeddings and zero-shot logits
from a FeatureStore (`load_ensemble_data`), fit and score every method of `synergy.ensembles` on
seeded draws of the `fewshot` split against the whole `test` split (`run_protocol`), and turn the
records into the tables the asset writes (`results_table`, `runs_table`, `group_table`,
`nlc_weights`, `efficiency_rows`). Plots are in `synergy.ensembles.plots`; the asset
(`assets/ensembles.py`) adds the run config, the storage paths and the Dagster metadata.
The protocol itself is described in docs/ensembles.md.

The functions taking a `config` only read its attributes (`ExperimentConfig`): the asset passes its
resolved `EnsemblesConfig`; a notebook can pass any object with those attributes, for instance a
`types.SimpleNamespace`.
"""


import itertools
import time
from collections import defaultdict
from functools import partial
from typing import Callable, Optional, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.layout import FeatureStore
from storage.warehouse import registry_tables
from synergy.ensembles import (
    METHODS, NLC, BestSingle, Cascade, EnsembleData, EnsembleError, LogRegProbe, MixtureOfExperts, evaluate,
    make_draws, oracle_correct, summarise,
)
from synergy.errors import StoreError

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
METHOD_ORDER = list(METHODS)  # the table's row order is the library registry's

# Which method, variant and protocol cell a row is about: shared by the results, runs and group tables.
METHOD_KEY_FIELDS = [
    pa.field("method", pa.string(), nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("is_default", pa.bool_(), nullable=False),
    pa.field("mode", pa.string(), nullable=False),
    pa.field("k", pa.int32()),
    pa.field("fraction", pa.float64()),
]

RESULTS_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    *METHOD_KEY_FIELDS,
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
    *METHOD_KEY_FIELDS,
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
    *METHOD_KEY_FIELDS,
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


class ExperimentConfig(Protocol):
    """What the protocol reads from its config (the asset's resolved `EnsemblesConfig`): by then `ks`,
    `seeds` and `ablation_ks` are set. See `EnsemblesConfig` in assets/ensembles.py for the defaults."""

    ks: Optional[list[int]]
    seeds: Optional[int]
    modes: list[str]
    fraction: float
    nlc_variants: bool
    ablation_ks: Optional[list[int]]
    subset_seeds: int
    max_subset_backbones: int
    cascade_thresholds: list[float]
    cascade_threshold: float
    nlc_steps: int
    prototype_steps: int
    moe_steps: int
    batch_size: int
    probe_max_iter: int


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


def nlc_factory(config: ExperimentConfig, variant: str = DEFAULT_NLC_VARIANT):
    params = dict(NLC_VARIANTS[variant])
    params["steps"] = config.prototype_steps if variant == "prototype" else config.nlc_steps
    return partial(NLC, batch_size=config.batch_size, **params)


def method_factories(config: ExperimentConfig, cascade_costs: np.ndarray | None) -> dict[str, Callable]:
    """Every method of the table, by record name, as zero-argument factories: the library's METHODS
    registry (its order is the table's), with the run config applied to the methods that take it."""
    return {
        **METHODS,
        "mixture_of_experts": partial(MixtureOfExperts, steps=config.moe_steps, batch_size=config.batch_size),
        "nlc": nlc_factory(config),
        "logreg_probe": partial(LogRegProbe, max_iter=config.probe_max_iter),
        "cascade": partial(Cascade, costs=None if cascade_costs is None else list(cascade_costs),
                           threshold=config.cascade_threshold),
    }


def variant_factories(config: ExperimentConfig) -> dict[str, Callable]:
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


def check_config(config: ExperimentConfig, fit_pool: EnsembleData) -> None:
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


def run_protocol(config: ExperimentConfig, data: dict[str, EnsembleData], costs: dict,
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


def efficiency_rows(config: ExperimentConfig, dataset: str, data: dict[str, EnsembleData], records: list[dict],
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


# ----------------------------------------------------------------------------------------- summary
def mean_std_text(r: dict) -> str:
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
            out.append({"method": m, f"k={lo}": mean_std_text(by_k[lo]), f"k={hi}": mean_std_text(by_k[hi]),
                        f"gain k={hi}": by_k[hi]["gain_over_best_single"]})
    return out
