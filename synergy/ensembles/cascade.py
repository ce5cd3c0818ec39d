"""Cascade: run cheap backbones first and escalate only while the ensemble is unsure.

Backbones run in ascending cost (or an explicit ``order``). After each one, the running mean
of the probabilities seen so far is checked; the cascade stops once its max probability
reaches ``threshold`` (the last backbone always stops it). At logit scale 100 zero-shot
softmaxes are nearly one-hot, which would make any threshold below 1 stop at the first
backbone, so by default (``calibrate=True``) each backbone's logits are first
temperature-scaled with a temperature fitted on the fitting set (as in ``calibrated_mean``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score

from synergy.ensembles.base import Ensemble, EnsembleData, EnsembleError, softmax
from synergy.ensembles.static import fit_temperature


class Cascade(Ensemble):
    """Cheapest-first cascade over backbones with a confidence threshold."""

    def __init__(self, costs: Sequence[float] | None = None, order: Sequence[int] | None = None,
                 threshold: float = 0.8, calibrate: bool = True):
        self.costs = costs
        self.order = order
        self.threshold = threshold
        self.calibrate = calibrate

    @property
    def needs_labels(self) -> bool:  # labels are only used to fit temperatures
        return bool(self.calibrate)

    def _fit(self, data):
        b = data.n_backbones
        if self.order is not None:
            order = np.asarray(self.order, dtype=int)
            if sorted(order.tolist()) != list(range(b)):
                raise EnsembleError(f"order must be a permutation of 0..{b - 1}, got {order}")
        elif self.costs is not None:
            order = np.argsort(self._cost_vector(self.costs, b), kind="stable")
        else:
            order = np.arange(b)
        self.order_ = order
        self.temperatures_ = (np.array([fit_temperature(z, data.labels) for z in data.logits])
                              if self.calibrate else np.ones(b))

    @staticmethod
    def _cost_vector(costs, b: int) -> np.ndarray:
        c = np.asarray(costs, dtype=float)
        if c.shape != (b,) or (c < 0).any():
            raise EnsembleError(f"costs must be {b} non-negative numbers, got {costs!r}")
        return c

    def _run(self, data: EnsembleData) -> tuple[np.ndarray, np.ndarray]:
        """(proba (n, C), n_used (n,)): the running-mean output and how many backbones ran."""
        n = data.n_examples
        total = np.zeros((n, data.n_classes))
        out = np.zeros_like(total)
        n_used = np.zeros(n, dtype=int)
        active = np.ones(n, dtype=bool)
        for step, b in enumerate(self.order_, start=1):
            total[active] += softmax(data.logits[b][active] / self.temperatures_[b])
            mean = total / step
            stop = active & ((mean.max(axis=1) >= self.threshold) | (step == len(self.order_)))
            out[stop], n_used[stop] = mean[stop], step
            active &= ~stop
        return out, n_used

    def _predict_proba(self, data):
        return self._run(data)[0]

    def backbone_weights(self, data):
        """(n, B): 1/m on each of the m backbones that ran for an example, 0 elsewhere."""
        self._check(data)
        n_used = self._run(data)[1]
        rank = np.empty(data.n_backbones, dtype=int)
        rank[self.order_] = np.arange(data.n_backbones)  # position of each backbone
        ran = rank[None, :] < n_used[:, None]
        return ran / n_used[:, None]

    def cost_per_example(self, data: EnsembleData, costs: Sequence[float] | None = None):
        """(n,) total cost of the backbones run per example (``costs`` defaults to self.costs)."""
        self._check(data)
        costs = self.costs if costs is None else costs
        if costs is None:
            raise EnsembleError("cost_per_example needs a cost vector")
        c = self._cost_vector(costs, data.n_backbones)
        cum = np.concatenate([[0.0], np.cumsum(c[self.order_])])
        return cum[self._run(data)[1]]


def cascade_curve(data_fit: EnsembleData, data_eval: EnsembleData, costs: Sequence[float],
                  thresholds: Sequence[float], calibrate: bool = True) -> list[dict]:
    """Accuracy and mean cost on `data_eval` of a cascade fitted on `data_fit`, per threshold."""
    if data_eval.labels is None:
        raise EnsembleError("cascade_curve needs labeled evaluation data")
    rows = []
    for t in thresholds:
        cas = Cascade(costs=costs, threshold=float(t), calibrate=calibrate).fit(data_fit)
        rows.append({"threshold": float(t),
                     "accuracy": float(accuracy_score(data_eval.labels, cas.predict(data_eval))),
                     "mean_cost": float(cas.cost_per_example(data_eval).mean())})
    return rows
