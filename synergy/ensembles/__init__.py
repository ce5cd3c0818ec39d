"""Backbone ensembles over precomputed CLIP features: the paper's NLC and every baseline.

Dagster-free: import it from a notebook. Every method is an estimator with
``fit(EnsembleData)``, ``predict_proba``, ``predict`` and ``backbone_weights``;
``METHODS`` maps a method name to its factory (the class; call it with keyword parameters).
The oracle is not fittable (it reads the labels): use :func:`oracle_correct`.
"""

from synergy.ensembles.base import (
    Ensemble, EnsembleData, EnsembleError, accuracy_per_backbone, oracle_correct,
)
from synergy.ensembles.cascade import Cascade, cascade_curve
from synergy.ensembles.learned import LogRegProbe, Stacking, SuperLearner
from synergy.ensembles.moe import MixtureOfExperts
from synergy.ensembles.nlc import NLC
from synergy.ensembles.protocol import (
    draw_fraction, draw_k_shot, evaluate, linear_probe_logits, make_draws, summarise,
)
from synergy.ensembles.static import (
    BestSingle, CalibratedMean, EntropyWeighted, MajorityVote, MaxConfidence, MeanLogits,
    MeanProbs, fit_temperature,
)

METHODS: dict[str, type[Ensemble]] = {
    "best_single": BestSingle,
    "mean_logits": MeanLogits,
    "mean_probs": MeanProbs,
    "majority_vote": MajorityVote,
    "calibrated_mean": CalibratedMean,
    "max_confidence": MaxConfidence,
    "entropy_weighted": EntropyWeighted,
    "super_learner": SuperLearner,
    "stacking": Stacking,
    "mixture_of_experts": MixtureOfExperts,
    "nlc": NLC,
    "logreg_probe": LogRegProbe,
    "cascade": Cascade,
}

__all__ = [
    "METHODS", "BestSingle", "CalibratedMean", "Cascade", "Ensemble", "EnsembleData",
    "EnsembleError", "EntropyWeighted", "LogRegProbe", "MajorityVote", "MaxConfidence",
    "MeanLogits", "MeanProbs", "MixtureOfExperts", "NLC", "Stacking", "SuperLearner",
    "accuracy_per_backbone", "cascade_curve", "draw_fraction", "draw_k_shot", "evaluate",
    "fit_temperature", "linear_probe_logits", "make_draws", "oracle_correct", "summarise",
]
