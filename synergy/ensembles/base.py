"""Data model and estimator base class shared by every ensemble.

An ensemble sees, per example, one L2-normalised image embedding and one zero-shot logit
vector per frozen backbone. Features are precomputed, so every method here is a small model
over arrays: no backbone is ever run. Estimators follow scikit-learn conventions
(constructor parameters only, fitted state in attributes ending with ``_``) so
``sklearn.base.clone`` and ``get_params`` work, but ``fit`` takes an :class:`EnsembleData`
instead of ``(X, y)`` because the inputs are a list of per-backbone blocks of different widths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator

from synergy.errors import SynergyError


class EnsembleError(SynergyError, ValueError):
    """Inputs to an ensemble or to the evaluation protocol are inconsistent or insufficient."""


def _as_2d(name: str, b: int, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise EnsembleError(f"{name}[{b}] must be 2-D (n x width), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise EnsembleError(f"{name}[{b}] must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise EnsembleError(f"{name}[{b}] contains NaN or infinite values")
    return a


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class EnsembleData:
    """Precomputed per-backbone features for n examples.

    embeddings: one float32 (n x D_b) array per backbone, rows L2-normalised; widths may differ.
    logits: one (n x C) array per backbone, zero-shot logits at logit scale 100 (100 * cos).
    labels: int class ids in [0, C), or None for unlabeled data.
    example_ids: unique string ids (used by the protocol's leakage guard), or None.
    backbones: one name per backbone; defaults to "b0", "b1", ...
    """

    embeddings: list[np.ndarray]
    logits: list[np.ndarray]
    labels: np.ndarray | None = None
    example_ids: np.ndarray | None = None
    backbones: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise fields once, here
        emb = [_as_2d("embeddings", b, e) for b, e in enumerate(self.embeddings)]
        log = [_as_2d("logits", b, z) for b, z in enumerate(self.logits)]
        if not emb:
            raise EnsembleError("EnsembleData needs at least one backbone")
        if len(emb) != len(log):
            raise EnsembleError(f"{len(emb)} embedding blocks but {len(log)} logit blocks")
        n = emb[0].shape[0]
        for b, (e, z) in enumerate(zip(emb, log)):
            if e.shape[0] != n or z.shape[0] != n:
                raise EnsembleError(
                    f"backbone {b} has {e.shape[0]} embedding rows and {z.shape[0]} logit rows; "
                    f"expected {n} (backbone 0)"
                )
        n_classes = {z.shape[1] for z in log}
        if len(n_classes) != 1:
            raise EnsembleError(f"backbones disagree on the number of classes: {sorted(n_classes)}")
        names = tuple(self.backbones) or tuple(f"b{b}" for b in range(len(emb)))
        if len(names) != len(emb):
            raise EnsembleError(f"{len(names)} backbone names for {len(emb)} backbones")
        if len(set(names)) != len(names):
            raise EnsembleError(f"backbone names are not unique: {names}")
        labels = self.labels
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
                raise EnsembleError(f"labels must be an int array of shape ({n},), got "
                                    f"{labels.dtype} {labels.shape}")
            c = log[0].shape[1]
            if n and (labels.min() < 0 or labels.max() >= c):
                raise EnsembleError(
                    f"labels must lie in [0, {c}); got [{labels.min()}, {labels.max()}]")
            labels = labels.astype(np.int64, copy=False)
        ids = self.example_ids
        if ids is not None:
            ids = np.asarray(ids).astype(str)
            if ids.shape != (n,):
                raise EnsembleError(f"example_ids must have shape ({n},), got {ids.shape}")
            if len(np.unique(ids)) != n:
                raise EnsembleError("example_ids are not unique")
        set_(self, "embeddings", emb)
        set_(self, "logits", log)
        set_(self, "labels", labels)
        set_(self, "example_ids", ids)
        set_(self, "backbones", names)

    @property
    def n_examples(self) -> int:
        return self.embeddings[0].shape[0]

    @property
    def n_backbones(self) -> int:
        return len(self.embeddings)

    @property
    def n_classes(self) -> int:
        return self.logits[0].shape[1]

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(e.shape[1] for e in self.embeddings)

    def __len__(self) -> int:
        return self.n_examples

    def subset(self, rows: Sequence[int] | np.ndarray) -> EnsembleData:
        """The same backbones restricted to `rows` (int indices or a boolean mask)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (self.n_examples,):
                raise EnsembleError(f"boolean mask must have shape ({self.n_examples},)")
            rows = np.flatnonzero(rows)
        if rows.size and (rows.min() < -self.n_examples or rows.max() >= self.n_examples):
            raise EnsembleError(f"row index out of range for {self.n_examples} examples")
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return EnsembleData([e[rows] for e in self.embeddings], [z[rows] for z in self.logits],
                            pick(self.labels), pick(self.example_ids), self.backbones)

    def select_backbones(self, idx: Sequence[int | str]) -> EnsembleData:
        """A view over some backbones, by position or by name, in the order given."""
        pos = []
        for i in idx:
            if isinstance(i, str):
                if i not in self.backbones:
                    raise EnsembleError(f"unknown backbone {i!r}; have {self.backbones}")
                i = self.backbones.index(i)
            if not -self.n_backbones <= int(i) < self.n_backbones:
                raise EnsembleError(f"backbone index {i} out of range for {self.n_backbones}")
            pos.append(int(i) % self.n_backbones)
        if not pos:
            raise EnsembleError("select_backbones needs at least one backbone")
        return EnsembleData([self.embeddings[i] for i in pos], [self.logits[i] for i in pos],
                            self.labels, self.example_ids, tuple(self.backbones[i] for i in pos))

    def with_logits(self, logits: list[np.ndarray]) -> EnsembleData:
        """The same examples and embeddings with other logits (e.g. linear-probe heads)."""
        return EnsembleData(self.embeddings, logits, self.labels, self.example_ids, self.backbones)


# ---- numerics shared by the methods (float64, numerically stable) ----

def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.exp(log_softmax(z, axis=axis))


def stacked_logits(data: EnsembleData) -> np.ndarray:
    """(B, n, C) float64 logits."""
    return np.stack([z.astype(np.float64) for z in data.logits])


def stacked_probs(data: EnsembleData) -> np.ndarray:
    """(B, n, C) per-backbone softmax probabilities."""
    return softmax(stacked_logits(data))


def concat_embeddings(data: EnsembleData) -> np.ndarray:
    """(n, sum D_b) concatenation of per-backbone embeddings, each block re-L2-normalised.

    Re-normalising is a no-op for conforming data and protects input-conditioned methods from
    a backbone whose norms drifted (its block would otherwise dominate the gate's input).
    """
    blocks = []
    for e in data.embeddings:
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        blocks.append(e / np.maximum(norm, 1e-12))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def accuracy_per_backbone(data: EnsembleData) -> np.ndarray:
    """(B,) accuracy of each backbone's argmax on labeled data."""
    _require_labels(data, "accuracy_per_backbone")
    return np.array([(z.argmax(1) == data.labels).mean() for z in data.logits])


def _require_labels(data: EnsembleData, who: str) -> None:
    if data.labels is None:
        raise EnsembleError(f"{who} needs labeled data (labels is None)")
    if data.n_examples == 0:
        raise EnsembleError(f"{who} needs at least one example")


def oracle_correct(data: EnsembleData) -> np.ndarray:
    """(n,) bool: at least one backbone's argmax equals the label (the paper's oracle)."""
    _require_labels(data, "oracle_correct")
    return (stacked_logits(data).argmax(-1) == data.labels[None, :]).any(axis=0)


class Ensemble(BaseEstimator):
    """Base class: validate, delegate to ``_fit`` / ``_predict_proba``, check compatibility.

    Subclasses set ``needs_labels = False`` when fitting only records shapes, and
    ``uses_embeddings = True`` when the embedding widths of predict data must match fit data.
    """

    needs_labels = True
    uses_embeddings = False

    def fit(self, data: EnsembleData) -> Ensemble:
        if not isinstance(data, EnsembleData):
            raise EnsembleError(f"fit expects EnsembleData, got {type(data).__name__}")
        if self.needs_labels:
            _require_labels(data, f"{type(self).__name__}.fit")
        self.n_backbones_ = data.n_backbones
        self.n_classes_ = data.n_classes
        self.widths_ = data.widths
        self._fit(data)
        return self

    def _fit(self, data: EnsembleData) -> None:  # pragma: no cover - trivial default
        pass

    def _check(self, data: EnsembleData) -> None:
        if not hasattr(self, "n_backbones_"):
            raise EnsembleError(f"{type(self).__name__} is not fitted; call fit(data) first")
        if not isinstance(data, EnsembleData):
            raise EnsembleError(f"expected EnsembleData, got {type(data).__name__}")
        if (data.n_backbones, data.n_classes) != (self.n_backbones_, self.n_classes_):
            raise EnsembleError(
                f"fitted on {self.n_backbones_} backbones x {self.n_classes_} classes, got "
                f"{data.n_backbones} x {data.n_classes}")
        if self.uses_embeddings and data.widths != self.widths_:
            raise EnsembleError(f"embedding widths {data.widths} differ from fitted {self.widths_}")

    def predict_proba(self, data: EnsembleData) -> np.ndarray:
        """(n, C) class probabilities; rows sum to 1."""
        self._check(data)
        p = np.asarray(self._predict_proba(data), dtype=np.float64)
        return p / p.sum(axis=1, keepdims=True)

    def _predict_proba(self, data: EnsembleData) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def predict(self, data: EnsembleData) -> np.ndarray:
        return self.predict_proba(data).argmax(axis=1)

    def backbone_weights(self, data: EnsembleData) -> np.ndarray | None:
        """(n, B) per-example backbone weights, or None for methods without them."""
        self._check(data)
        return None
