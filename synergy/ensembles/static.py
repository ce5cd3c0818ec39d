"""Static and heuristic combiners: the baselines the paper reports as bringing little.

None of these looks at the embeddings. ``best_single`` and ``calibrated_mean`` learn a
handful of numbers from labels; the rest have nothing to learn (``fit`` only records shapes).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from synergy.ensembles.base import (
    Ensemble, EnsembleData, accuracy_per_backbone, log_softmax, softmax, stacked_logits,
    stacked_probs,
)


class BestSingle(Ensemble):
    """The backbone with the best accuracy on the fitting set (ties -> lowest index)."""

    def _fit(self, data: EnsembleData) -> None:
        self.accuracies_ = accuracy_per_backbone(data)
        self.best_ = int(np.argmax(self.accuracies_))  # argmax returns the first maximum

    def _predict_proba(self, data):
        return softmax(data.logits[self.best_])

    def backbone_weights(self, data):
        self._check(data)
        w = np.zeros((data.n_examples, data.n_backbones))
        w[:, self.best_] = 1.0
        return w


class MeanLogits(Ensemble):
    """softmax of the unweighted mean of the backbones' logits."""

    needs_labels = False

    def _predict_proba(self, data):
        return softmax(stacked_logits(data).mean(axis=0))


class MeanProbs(Ensemble):
    """Unweighted mean of the backbones' softmax probabilities."""

    needs_labels = False

    def _predict_proba(self, data):
        return stacked_probs(data).mean(axis=0)


class MajorityVote(Ensemble):
    """Plurality vote of the backbones' argmax, ties broken by the mean probability.

    predict_proba returns (votes + 0.5 * mean_probs) / (B + 0.5): a distribution whose argmax
    is the plurality class, because the mean-probability term differs by less than 0.5
    between classes and so can only reorder classes with equal vote counts.
    """

    needs_labels = False

    def _predict_proba(self, data):
        probs = stacked_probs(data)
        votes = np.zeros(probs.shape[1:])
        rows = np.arange(probs.shape[1])
        for p in probs:
            np.add.at(votes, (rows, p.argmax(axis=1)), 1.0)
        return (votes + 0.5 * probs.mean(axis=0)) / (len(probs) + 0.5)


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    bounds: tuple[float, float] = (1e-3, 1e4)) -> float:
    """The T minimising the NLL of softmax(logits / T) on (logits, labels).

    The NLL is convex in beta = 1/T, hence unimodal in log beta, so a bounded Brent search
    over log beta finds the global minimum. A perfectly separated set has no finite optimum;
    the search then stops at the lower temperature bound.
    """
    z = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(z))

    def nll(log_beta: float) -> float:
        return -log_softmax(z * np.exp(log_beta))[rows, labels].mean()

    lo, hi = np.log(1.0 / bounds[1]), np.log(1.0 / bounds[0])
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(1.0 / np.exp(res.x))


class CalibratedMean(Ensemble):
    """Per-backbone temperature scaling (NLL on the fitting set), then mean of probabilities."""

    def _fit(self, data):
        self.temperatures_ = np.array([fit_temperature(z, data.labels) for z in data.logits])

    def _predict_proba(self, data):
        t = self.temperatures_[:, None, None]
        return softmax(stacked_logits(data) / t).mean(axis=0)


class MaxConfidence(Ensemble):
    """Per example, the backbone with the highest max-softmax (ties -> lowest index)."""

    needs_labels = False

    def _choice(self, data):
        return stacked_probs(data).max(axis=-1).argmax(axis=0)

    def _predict_proba(self, data):
        probs = stacked_probs(data)
        return probs[self._choice(data), np.arange(data.n_examples)]

    def backbone_weights(self, data):
        self._check(data)
        return np.eye(data.n_backbones)[self._choice(data)]


class EntropyWeighted(Ensemble):
    """Weighted mean of probabilities with weights proportional to exp(-entropy).

    exp(-H) (rather than 1/H) stays finite when a backbone is certain (H = 0) and maps the
    entropy range [0, log C] to weights in [1/C, 1], so no single backbone can take all weight.
    """

    needs_labels = False

    def backbone_weights(self, data):
        self._check(data)
        z = stacked_logits(data)
        logp = log_softmax(z)
        entropy = -(np.exp(logp) * logp).sum(axis=-1)  # (B, n)
        w = np.exp(-entropy).T
        return w / w.sum(axis=1, keepdims=True)

    def _predict_proba(self, data):
        w = self.backbone_weights(data)
        return np.einsum("nb,bnc->nc", w, stacked_probs(data))
