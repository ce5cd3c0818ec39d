"""Learned static combiners and the scikit-learn baselines.

``super_learner`` learns one non-negative weight per backbone (the same for every input);
``stacking`` and ``logreg_probe`` are multinomial logistic regressions, on logits and on
embeddings respectively. None of them is input-conditioned in the paper's sense, which is
what makes them the right foils for NLC.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from synergy.ensembles._torch import to_tensor
from synergy.ensembles.base import (
    Ensemble, EnsembleData, concat_embeddings, log_softmax, softmax, stacked_logits,
)


def inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class SuperLearner(Ensemble):
    """Static weights w_b = softplus(theta_b) >= 0 on the backbones' log-probabilities.

    Combined logits are sum_b w_b * log_softmax(z_b), trained with cross-entropy by L-BFGS
    from w_b = 1/B. Log-probabilities rather than raw logits make each term invariant to the
    per-row shift of its logits, so w_b acts purely as backbone b's temperature in a weighted
    product of experts. The problem has B parameters and is solved full batch, so the fit is
    deterministic; ``random_state`` is accepted for a uniform interface and is unused.
    """

    def __init__(self, max_iter: int = 200, random_state: int | None = 0):
        self.max_iter = max_iter
        self.random_state = random_state

    def _fit(self, data):
        logp = to_tensor(log_softmax(stacked_logits(data)), torch.float64)  # (B, n, C)
        y = torch.as_tensor(data.labels)
        b = data.n_backbones
        theta = torch.full((b,), inverse_softplus(1.0 / b), dtype=torch.float64,
                           requires_grad=True)
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=self.max_iter,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                                tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            w = torch.nn.functional.softplus(theta)
            loss = torch.nn.functional.cross_entropy(torch.einsum("b,bnc->nc", w, logp), y)
            loss.backward()
            return loss

        opt.step(closure)
        self.weights_ = torch.nn.functional.softplus(theta).detach().numpy()

    def _predict_proba(self, data):
        return softmax(np.einsum("b,bnc->nc", self.weights_, log_softmax(stacked_logits(data))))

    def backbone_weights(self, data):
        self._check(data)
        return np.tile(self.weights_, (data.n_examples, 1))


def _full_proba(clf, x: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba over all C classes; classes absent from the fitting set get 0."""
    p = np.zeros((len(x), n_classes))
    p[:, clf.classes_] = clf.predict_proba(x)
    return p


def _logreg(c: float, max_iter: int):
    # lbfgs fits the multinomial (softmax) model for more than two classes.
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))


class _SklearnOnFeatures(Ensemble):
    def _features(self, data: EnsembleData) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _fit(self, data):
        self.classes_ = np.unique(data.labels)
        self.model_ = None  # a single seen class cannot be fitted: predict it with certainty
        if len(self.classes_) > 1:
            self.model_ = _logreg(self.C, self.max_iter).fit(self._features(data), data.labels)

    def _predict_proba(self, data):
        if self.model_ is None:
            p = np.zeros((data.n_examples, data.n_classes))
            p[:, self.classes_[0]] = 1.0
            return p
        return _full_proba(self.model_, self._features(data), data.n_classes)


class Stacking(_SklearnOnFeatures):
    """Multinomial logistic regression on the standardised concatenation of all logits."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C = C
        self.max_iter = max_iter

    def _features(self, data):
        return np.concatenate(data.logits, axis=1)


class LogRegProbe(_SklearnOnFeatures):
    """Multinomial logistic regression on the standardised concatenated embeddings.

    Not an ensemble of the zero-shot heads but a new head on all features; the prototype
    found it beats every ensemble from 16 shots per class upward, so it is kept as a baseline.
    """

    uses_embeddings = True

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C = C
        self.max_iter = max_iter

    def _features(self, data):
        return concat_embeddings(data)
