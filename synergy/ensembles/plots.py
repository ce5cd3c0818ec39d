"""Plots of the ensembles experiment (matplotlib; each returns a Figure).

They read the rows of `synergy.ensembles.experiment`'s tables (`results_table(...).to_pylist()`,
`efficiency_rows`, `nlc_weights`). matplotlib is imported inside each function; pick a backend
first where it matters (importing `synergy.plots` selects Agg, as the asset does).
"""


import numpy as np

from synergy.ensembles.experiment import METHOD_ORDER, NLC_VARIANTS


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
