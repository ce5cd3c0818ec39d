"""Evaluation protocol: seeded fitting draws shared by every method, a leakage guard, and
mean +- std over seeds (what reviewers asked the paper for).

Fitting data always comes from a fit pool (a training split), never from the test set;
``evaluate`` refuses to run when any fit-pool example id also appears in the test set.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from synergy.ensembles.base import EnsembleData, EnsembleError, oracle_correct

MODES = ("kshot", "fraction", "linear_probe")


def draw_k_shot(labels: np.ndarray, k: int, seed: int, n_classes: int | None = None) -> np.ndarray:
    """Sorted row indices with exactly k rows of every class, drawn without replacement.

    Classes are those in `labels`, or 0..n_classes-1 when given (an absent class then fails
    with 0 available). Raises EnsembleError naming the first class with fewer than k rows.
    """
    labels = np.asarray(labels)
    if k < 1:
        raise EnsembleError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels) if n_classes is None else np.arange(n_classes)
    picks = []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        if len(rows) < k:
            raise EnsembleError(f"class {c} has only {len(rows)} example(s) in the fit pool; "
                                f"{k}-shot needs {k}")
        picks.append(rng.choice(rows, size=k, replace=False))
    return np.sort(np.concatenate(picks)) if picks else np.array([], dtype=int)


def draw_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices of a stratified `fraction` of the rows (sklearn train_test_split)."""
    labels = np.asarray(labels)
    if not 0.0 < fraction <= 1.0:
        raise EnsembleError(f"fraction must lie in (0, 1], got {fraction}")
    rows = np.arange(len(labels))
    if fraction == 1.0:
        return rows
    try:
        picked, _ = train_test_split(rows, train_size=fraction, stratify=labels,
                                     random_state=seed)
    except ValueError as exc:  # e.g. a class with one row, or fewer rows than classes
        raise EnsembleError(f"cannot draw a stratified {fraction:.3g} of {len(rows)} rows: {exc}")
    return np.sort(picked)


def linear_probe_logits(fit_data: EnsembleData, eval_data: EnsembleData, seed: int, *,
                        probe_fraction: float = 0.9, C: float = 1.0,
                        max_iter: int = 1000) -> tuple[EnsembleData, EnsembleData]:
    """Swap zero-shot logits for per-backbone linear-probe logits (the paper's claim 8).

    Per backbone, a multinomial LogisticRegression is trained on its embeddings for a
    stratified, seeded `probe_fraction` (90%) of `fit_data`. Returns the remaining 10% of
    `fit_data` and all of `eval_data`, with logits replaced by the probes' decision_function.
    Scaling: each probe's logits are multiplied by one factor per backbone so that their mean
    per-row standard deviation on the probe's own training rows equals that of the backbone's
    zero-shot logits there. Probe logits then have zero-shot magnitudes, so ensemble settings
    (e.g. NLC's logit_scale) keep their meaning across modes; the factor is fitted on probe
    rows only, so the 10% left for the ensemble stays untouched.
    """
    if fit_data.labels is None:
        raise EnsembleError("linear_probe_logits needs labeled fit data")
    rows = np.arange(fit_data.n_examples)
    try:
        probe_rows, ens_rows = train_test_split(rows, train_size=probe_fraction,
                                                stratify=fit_data.labels, random_state=seed)
    except ValueError as exc:
        raise EnsembleError(f"cannot split {len(rows)} rows {probe_fraction:.0%}/rest: {exc}")
    probe_rows, ens_rows = np.sort(probe_rows), np.sort(ens_rows)
    c = fit_data.n_classes
    fit_logits, eval_logits = [], []
    for emb, eval_emb, zs in zip(fit_data.embeddings, eval_data.embeddings, fit_data.logits):
        clf = LogisticRegression(C=C, max_iter=max_iter)
        clf.fit(emb[probe_rows], fit_data.labels[probe_rows])

        def decision(x):  # full C columns; classes unseen by the probe get a very low logit
            out = np.full((len(x), c), -1e4 if len(clf.classes_) < c else 0.0)
            d = clf.decision_function(x)
            if d.ndim == 1:  # binary problem: sklearn returns the positive-class margin
                d = np.stack([-d / 2, d / 2], axis=1)
            out[:, clf.classes_] = d
            return out

        train_d = decision(emb[probe_rows])[:, clf.classes_]
        scale = zs[probe_rows].std(axis=1).mean() / max(train_d.std(axis=1).mean(), 1e-12)
        fit_logits.append((decision(emb[ens_rows]) * scale).astype(np.float32))
        eval_logits.append((decision(eval_emb) * scale).astype(np.float32))
    return fit_data.subset(ens_rows).with_logits(fit_logits), eval_data.with_logits(eval_logits)


def _check_leakage(fit_pool: EnsembleData, test: EnsembleData) -> None:
    if fit_pool.example_ids is None or test.example_ids is None:
        raise EnsembleError("evaluate needs example_ids on both fit pool and test set "
                            "to guard against leakage")
    overlap = np.intersect1d(fit_pool.example_ids, test.example_ids)
    if overlap.size:
        raise EnsembleError(f"{overlap.size} fit-pool example(s) also in the test set, "
                            f"e.g. {overlap[:3].tolist()}: fitting data must not come from test")


def make_draws(fit_pool: EnsembleData, mode: str, ks: Iterable[int] = (1, 2, 4, 8, 16),
               seeds: Iterable[int] = range(5),
               fractions: Iterable[float] = (0.1,)) -> list[dict]:
    """The fitting draws evaluate uses: dicts with k, fraction, seed and rows (into fit_pool).

    linear_probe mode draws the whole pool per seed; its 90/10 split happens inside
    linear_probe_logits, seeded by the same seed.
    """
    if mode not in MODES:
        raise EnsembleError(f"mode must be one of {MODES}, got {mode!r}")
    if fit_pool.labels is None:
        raise EnsembleError("the fit pool must be labeled")
    seeds = list(seeds)
    if mode == "kshot":
        return [{"k": int(k), "fraction": None, "seed": s,
                 "rows": draw_k_shot(fit_pool.labels, k, s, fit_pool.n_classes)}
                for k in ks for s in seeds]
    if mode == "fraction":
        return [{"k": None, "fraction": float(f), "seed": s,
                 "rows": draw_fraction(fit_pool.labels, f, s)} for f in fractions for s in seeds]
    return [{"k": None, "fraction": None, "seed": s, "rows": np.arange(fit_pool.n_examples)}
            for s in seeds]


def _digest(ids: np.ndarray) -> str:
    return hashlib.sha1("\n".join(map(str, ids)).encode()).hexdigest()[:12]


def evaluate(fit_pool: EnsembleData, test: EnsembleData,
             methods: Mapping[str, Callable[[], object]], ks: Sequence[int] = (1, 2, 4, 8, 16),
             seeds: Iterable[int] = range(5), mode: str = "kshot",
             fractions: Sequence[float] = (0.1,)) -> list[dict]:
    """Fit every method on the same draws and score it on `test`.

    One record per (draw, method) with keys method, mode, k, fraction, seed, accuracy, n_fit,
    fit_ids (a digest of the fitting example ids, equal across methods of one draw) and
    fit_seconds, plus an "oracle" record per draw. Methods with a ``random_state`` parameter
    get ``random_state=seed``, so training randomness is part of the spread over seeds.
    """
    _check_leakage(fit_pool, test)
    if test.labels is None:
        raise EnsembleError("the test set must be labeled")
    records = []
    for draw in make_draws(fit_pool, mode, ks, seeds, fractions):
        fit, test_d = fit_pool.subset(draw["rows"]), test
        if mode == "linear_probe":
            fit, test_d = linear_probe_logits(fit, test, draw["seed"])
        _check_leakage(fit, test_d)
        base = {"mode": mode, "k": draw["k"], "fraction": draw["fraction"], "seed": draw["seed"],
                "n_fit": fit.n_examples, "fit_ids": _digest(fit.example_ids)}
        records.append({**base, "method": "oracle", "fit_seconds": 0.0,
                        "accuracy": float(oracle_correct(test_d).mean())})
        for name, factory in methods.items():
            est = factory()
            if hasattr(est, "get_params") and "random_state" in est.get_params():
                est.set_params(random_state=draw["seed"])
            t0 = time.perf_counter()
            est.fit(fit)
            seconds = time.perf_counter() - t0
            acc = accuracy_score(test_d.labels, est.predict(test_d))
            records.append({**base, "method": name, "fit_seconds": seconds,
                            "accuracy": float(acc)})
    return records


def summarise(records: Iterable[dict]) -> list[dict]:
    """Mean and std over seeds per (mode, k, fraction, method), with gains.

    std uses ddof=0: it describes the spread of the seeds actually run, not an estimate for
    unseen seeds. gain_over_best_single = mean - mean(best_single); oracle_gap_closed =
    (mean - best_single) / (oracle - best_single) on means, None when that gap is 0 or a
    reference method is missing from the records.
    """
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        groups[(r["mode"], r["k"], r.get("fraction"), r["method"])].append(r["accuracy"])
    means = {key: float(np.mean(v)) for key, v in groups.items()}
    out = []
    for (mode, k, fraction, method), accs in groups.items():
        mean = means[(mode, k, fraction, method)]
        best = means.get((mode, k, fraction, "best_single"))
        oracle = means.get((mode, k, fraction, "oracle"))
        gain = None if best is None else mean - best
        closed = None
        if best is not None and oracle is not None and abs(oracle - best) > 1e-12:
            closed = (mean - best) / (oracle - best)
        out.append({"mode": mode, "k": k, "fraction": fraction, "method": method,
                    "n_seeds": len(accs), "mean": mean, "std": float(np.std(accs, ddof=0)),
                    "gain_over_best_single": gain, "oracle_gap_closed": closed})
    return out
