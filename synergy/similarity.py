"""Representation similarity between backbones: linear CKA and k-nearest-neighbour overlap.

Both compare two embeddings of the *same* examples (rows aligned), whatever their widths.

- Linear CKA (Kornblith et al. 2019): with column-centred X (n x p) and Y (n x q),
  CKA = ||Yᵀ X||_F² / (||Xᵀ X||_F · ||Yᵀ Y||_F). It is 1 for identical representations, invariant
  to orthogonal transforms and isotropic scaling of either side, and near 0 for unrelated ones
  (for independent Gaussian matrices it is about sqrt(p·q) / n: small when n is much larger than
  the widths, which is why the sample must not be tiny).
- kNN overlap: for every example, the k nearest other examples by cosine similarity in each space;
  the overlap is |N_X(i) ∩ N_Y(i)| / k, averaged over examples. 1 means the same neighbourhoods.
  Ties between equally similar neighbours are broken by a stable sort on the example index.

Everything is float64 numpy; no Dagster here.
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping

import numpy as np


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (examples x features), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return x


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two representations of the same n examples (rows aligned)."""
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError("linear CKA needs at least 2 examples")
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    if min(x.shape[1], y.shape[1]) > x.shape[0]:  # wide: the n x n Gram form is cheaper
        kx, ky = x @ x.T, y @ y.T
        num, den = float((kx * ky).sum()), float(np.linalg.norm(kx) * np.linalg.norm(ky))
    else:
        num = float(np.linalg.norm(y.T @ x) ** 2)
        den = float(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    if den == 0.0:  # a constant representation carries no information
        return float("nan")
    return num / den


def knn_indices(x: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k most cosine-similar other rows, most similar first."""
    x = _as_2d(x, "x")
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    xn = x / np.where(norms > 0, norms, 1.0)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    # stable sort on -sim: equal similarities keep index order, so ties break the same way every run
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def knn_overlap(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean share of each example's k cosine nearest neighbours that the two spaces have in common."""
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    return _overlap(knn_indices(x, k), knn_indices(y, k))


def _overlap(nx: np.ndarray, ny: np.ndarray) -> float:
    n, k = nx.shape
    member = np.zeros((n, n), dtype=bool)
    member[np.arange(n)[:, None], nx] = True
    return float(member[np.arange(n)[:, None], ny].sum(axis=1).mean() / k)


def pairwise_similarity(embeddings: Mapping[str, np.ndarray], k: int = 10) -> list[dict]:
    """CKA and kNN overlap for every pair (a < b by name) of equally long embedding matrices."""
    names = sorted(embeddings)
    n = {name: np.asarray(embeddings[name]).shape[0] for name in names}
    if len(set(n.values())) > 1:
        raise ValueError(f"embeddings must share their rows (examples); row counts: {n}")
    neighbours = {name: knn_indices(embeddings[name], k) for name in names}
    rows = []
    for a, b in combinations(names, 2):
        rows.append({"backbone_a": a, "backbone_b": b, "cka": linear_cka(embeddings[a], embeddings[b]),
                     "knn_overlap": _overlap(neighbours[a], neighbours[b]), "n_sample": n[a], "knn_k": k})
    return rows
