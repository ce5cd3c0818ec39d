"""Analysis plots (matplotlib, Agg backend). Every plot colours a backbone the same way.

`backbone_colors(keys)` gives each backbone a fixed colour from its position in the *sorted* list
of all the registry's backbone keys, so a backbone has one colour in every plot of every dataset.
Heatmaps colour their tick labels with it; line and bar plots colour the backbone's line or bar.

Plot functions return a matplotlib Figure; `png(fig, dpi)` renders it, and `figure_pngs` renders the
full-size file once and shrinks it for the inline version, then closes the figure.
"""

from __future__ import annotations

import colorsys
import io
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# tab10 first, then the light tab20 shades: the first 10 backbones get the most distinct colours
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
            "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]
FULL_DPI, SMALL_FACTOR = 100, 0.5


def backbone_colors(keys: Iterable[str]) -> dict[str, str]:
    """A fixed colour per backbone key from its rank in sorted order (golden-angle hues past 20)."""
    colors = {}
    for i, key in enumerate(sorted(set(keys))):
        if i < len(_PALETTE):
            colors[key] = _PALETTE[i]
        else:
            r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.85)
            colors[key] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return colors


def png(fig: Figure, dpi: int = FULL_DPI) -> bytes:
    """Render once (each plot already ran tight_layout, so no second `bbox_inches='tight'` pass)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def shrink(payload: bytes, factor: float = SMALL_FACTOR) -> bytes:
    """A smaller copy of a PNG (for inline UI metadata) without drawing the figure again."""
    from PIL import Image

    with Image.open(io.BytesIO(payload)) as image:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        small = image.convert("RGBA").resize(size, Image.LANCZOS)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def figure_pngs(fig: Figure) -> tuple[bytes, bytes]:
    """(full-size PNG for the store, small PNG for the UI metadata); closes the figure."""
    try:
        full = png(fig, FULL_DPI)
    finally:
        plt.close(fig)
    return full, shrink(full)


def pair_matrix(backbones: Sequence[str], rows: Iterable[Mapping], value: str, diagonal: float = 1.0) -> np.ndarray:
    """Symmetric matrix from unordered pair rows (backbone_a, backbone_b, value); NaN where missing."""
    index = {b: i for i, b in enumerate(backbones)}
    m = np.full((len(backbones), len(backbones)), np.nan)
    np.fill_diagonal(m, diagonal)
    for r in rows:
        a, b = index.get(r["backbone_a"]), index.get(r["backbone_b"])
        if a is not None and b is not None and r.get(value) is not None:
            m[a, b] = m[b, a] = float(r[value])
    return m


def _color_ticks(ax, backbones: Sequence[str], colors: Mapping[str, str]) -> None:
    for label in ax.get_xticklabels() + ax.get_yticklabels():
        label.set_color(colors.get(label.get_text(), "black"))
        label.set_fontweight("bold")


def heatmap(ax, matrix: np.ndarray, backbones: Sequence[str], colors: Mapping[str, str], title: str,
            vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis") -> None:
    image = ax.imshow(np.ma.masked_invalid(matrix), vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(len(backbones)), backbones, rotation=45, ha="right")
    ax.set_yticks(range(len(backbones)), backbones)
    for i in range(len(backbones)):
        for j in range(len(backbones)):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] < (vmin + vmax) / 2 else "black")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    _color_ticks(ax, backbones, colors)


def agreement_heatmap(backbones: Sequence[str], pair_rows: Sequence[Mapping], colors: Mapping[str, str],
                      dataset: str) -> Figure:
    """Prediction agreement and Cohen's kappa, side by side."""
    size = 2.0 + 0.6 * len(backbones)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    heatmap(axes[0], pair_matrix(backbones, pair_rows, "agreement"), backbones, colors, f"{dataset}: agreement")
    heatmap(axes[1], pair_matrix(backbones, pair_rows, "kappa"), backbones, colors, f"{dataset}: Cohen's kappa",
            vmin=-1.0 if any((r.get("kappa") or 0) < 0 for r in pair_rows) else 0.0)
    fig.tight_layout()
    return fig


def similarity_heatmap(backbones: Sequence[str], sim_rows: Sequence[Mapping], colors: Mapping[str, str],
                       dataset: str) -> Figure:
    """Linear CKA and kNN overlap, side by side."""
    size = 2.0 + 0.6 * len(backbones)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    k = sim_rows[0]["knn_k"] if sim_rows else "k"
    heatmap(axes[0], pair_matrix(backbones, sim_rows, "cka"), backbones, colors, f"{dataset}: linear CKA")
    heatmap(axes[1], pair_matrix(backbones, sim_rows, "knn_overlap"), backbones, colors,
            f"{dataset}: {k}-NN overlap (cosine)")
    fig.tight_layout()
    return fig


def oracle_curve(best_by_k: Sequence[Mapping], single: Mapping[str, float], colors: Mapping[str, str],
                 dataset: str) -> Figure:
    """Oracle accuracy of the best subset of each size k; single backbones as coloured dots at k = 1."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    rows = sorted(best_by_k, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    ax.plot(ks, [r["oracle_accuracy"] for r in rows], "-o", color="black", label="best subset of size k")
    for r in rows:
        ax.annotate(" + ".join(r["backbones"]) if r["k"] <= 2 else f"{r['oracle_accuracy']:.3f}",
                    (r["k"], r["oracle_accuracy"]), textcoords="offset points", xytext=(4, -12), fontsize=7)
    for b, acc in sorted(single.items()):
        ax.scatter([1], [acc], color=colors.get(b, "gray"), s=40, zorder=3, label=b)
    ax.set_xticks(ks or [1])
    ax.set_xlabel("number of backbones k")
    ax.set_ylabel("oracle accuracy (test)")
    ax.set_title(f"{dataset}: oracle vs k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def accuracy_bars(accuracy: Mapping[str, float], colors: Mapping[str, str], dataset: str,
                  oracle: float | None = None) -> Figure:
    """Test accuracy per backbone (sorted by key), with the oracle as a dashed line."""
    names = sorted(accuracy)
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * max(len(names), 1), 3.6))
    values = [accuracy[b] for b in names]
    ax.bar(names, values, color=[colors.get(b, "gray") for b in names])
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    if oracle is not None:
        ax.axhline(oracle, color="black", linestyle="--", linewidth=1, label=f"oracle {oracle:.3f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (test)")
    ax.set_title(f"{dataset}: accuracy per backbone")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def robustness_curves(rows: Sequence[Mapping], colors: Mapping[str, str], dataset: str) -> Figure:
    """Accuracy against severity, one panel per perturbation, one line per backbone.

    `rows` are `robustness` view rows; severity 0 of each line is the clean accuracy of the same base
    images (the row's clean_accuracy).
    """
    kinds = sorted({r["perturbation"] for r in rows if r["perturbation"] != "none"})
    backbones = sorted({r["backbone"] for r in rows})
    cols = min(4, max(len(kinds), 1))
    n_rows = max(1, -(-len(kinds) // cols))
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.2 * cols, 2.8 * n_rows), squeeze=False, sharey=True)
    for ax, kind in zip(axes.flat, kinds):
        for b in backbones:
            points = sorted((r["severity"], r["accuracy"], r["clean_accuracy"]) for r in rows
                            if r["backbone"] == b and r["perturbation"] == kind)
            if not points:
                continue
            xs = [0] + [p[0] for p in points]
            ys = [float(np.mean([p[2] for p in points]))] + [p[1] for p in points]
            ax.plot(xs, ys, "-o", color=colors.get(b, "gray"), label=b, markersize=3)
        ax.set_title(kind)
        ax.set_xlabel("severity")
        ax.set_xticks(range(0, 4))
        ax.grid(alpha=0.3)
    spare = list(axes.flat)[len(kinds):]
    for ax in spare:
        ax.axis("off")
    axes[0, 0].set_ylabel("accuracy (test)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(f"{dataset}: accuracy under perturbation (severity 0 = clean)")
    if handles and spare:  # the legend takes an empty panel
        spare[0].legend(handles, labels, loc="center", fontsize=9, title="backbone")
        fig.tight_layout()
    elif handles:
        fig.tight_layout(rect=(0, 0, 0.86, 1))
        fig.legend(handles, labels, loc="center right", fontsize=8)
    else:
        fig.tight_layout()
    return fig
