"""Every method's output contract, the input-conditioned methods on a known-answer task,
determinism, and the cascade."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from synergy.ensembles import (
    METHODS, NLC, Cascade, EnsembleError, MeanLogits, MixtureOfExperts, SuperLearner,
    cascade_curve, oracle_correct,
)
from synergy.ensembles.synthetic import make_class_data, make_switching_data

torch.set_num_threads(1)

# Shorter training keeps the contract tests fast; it does not change what is checked.
FAST = {"nlc": {"steps": 60}, "mixture_of_experts": {"steps": 60}}


@pytest.fixture(scope="module")
def class_data():
    return make_class_data(120, seed=1), make_class_data(60, seed=2, id_prefix="t")


@pytest.fixture(scope="module")
def switching():
    return make_switching_data(400, seed=1), make_switching_data(1000, seed=2, id_prefix="t")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_probabilities_and_weights_contract(name, class_data):
    fit, test = class_data
    m = METHODS[name](**FAST.get(name, {})).fit(fit)
    p = m.predict_proba(test)
    assert p.shape == (test.n_examples, test.n_classes)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(m.predict(test), p.argmax(1))
    w = m.backbone_weights(test)
    assert w is None or (w.shape == (test.n_examples, test.n_backbones) and np.isfinite(w).all()
                         and (w >= 0).all())
    assert clone(m).get_params() == m.get_params()  # sklearn-style params round-trip


@pytest.mark.parametrize("name", sorted(METHODS))
def test_rejects_unfitted_and_mismatched_data(name, class_data):
    fit, _ = class_data
    with pytest.raises(EnsembleError, match="not fitted"):
        METHODS[name]().predict_proba(fit)
    m = METHODS[name](**FAST.get(name, {})).fit(fit)
    with pytest.raises(EnsembleError, match="backbones"):
        m.predict_proba(fit.select_backbones([0, 1]))


def test_input_conditioned_methods_recover_the_oracle_gap(switching):
    fit, test = switching
    assert oracle_correct(test).mean() == 1.0
    acc = lambda m: (m.fit(fit).predict(test) == test.labels).mean()  # noqa: E731
    assert acc(MeanLogits()) <= 0.7
    assert acc(SuperLearner()) <= 0.7  # static weights cannot follow the feature
    assert acc(NLC()) >= 0.9  # paper defaults
    assert acc(MixtureOfExperts()) >= 0.9


def test_nlc_weights_follow_the_feature(switching):
    fit, test = switching
    w = NLC().fit(fit).backbone_weights(test)
    f_positive = test.embeddings[0][:, 0] > 0  # backbone A is right exactly there
    assert (w[f_positive, 0] > w[f_positive, 1]).mean() > 0.9
    assert (w[~f_positive, 1] > w[~f_positive, 0]).mean() > 0.9


@pytest.mark.parametrize("kw", [
    {"form": "divide"}, {"positivity": "exp"}, {"positivity": "softmax"},
    {"logit_scale": 0.05, "weight_decay": 0.0, "positivity": "softmax", "lr": 1e-3},
])
def test_nlc_variants_learn_the_switch(kw, switching):
    fit, test = switching
    assert (NLC(**kw).fit(fit).predict(test) == test.labels).mean() >= 0.9


def test_nlc_starts_at_mean_of_logits(switching):
    fit, test = switching
    for kw in ({}, {"positivity": "exp"}, {"positivity": "softmax"}):
        m = NLC(steps=0, **kw).fit(fit)
        np.testing.assert_allclose(m.backbone_weights(test), 0.5, atol=0.05)
    divide = NLC(steps=0, form="divide").fit(fit).backbone_weights(test)
    np.testing.assert_allclose(divide, 0.5, atol=0.05)  # 1/t with t = B


def test_nlc_rejects_unknown_variant(switching):
    with pytest.raises(EnsembleError, match="positivity"):
        NLC(positivity="relu").fit(switching[0])


@pytest.mark.parametrize("factory", [
    lambda s: NLC(steps=50, random_state=s),
    lambda s: MixtureOfExperts(steps=50, random_state=s),
    lambda s: SuperLearner(random_state=s),
    lambda s: NLC(steps=50, batch_size=64, random_state=s),
])
def test_same_seed_same_predictions_regardless_of_global_seed(factory, switching):
    fit, test = switching
    torch.manual_seed(123)
    a = factory(7).fit(fit).predict_proba(test)
    torch.manual_seed(999)
    b = factory(7).fit(fit).predict_proba(test)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [NLC, MixtureOfExperts])
def test_different_seed_different_fit(cls, switching):
    fit, test = switching
    a = cls(steps=20, random_state=0).fit(fit).backbone_weights(test)
    b = cls(steps=20, random_state=1).fit(fit).backbone_weights(test)
    assert not np.allclose(a, b)


def test_cascade_costs_order_and_thresholds(class_data):
    fit, test = class_data
    costs = [3.0, 1.0, 2.0]  # run backbone 1, then 2, then 0
    cheap = Cascade(costs=costs, threshold=0.0).fit(fit)
    assert cheap.order_.tolist() == [1, 2, 0]
    assert (cheap.cost_per_example(test) == 1.0).all()
    np.testing.assert_allclose(cheap.predict_proba(test).argmax(1), test.logits[1].argmax(1))
    full = Cascade(costs=costs, threshold=1.01, calibrate=False).fit(fit)
    assert (full.cost_per_example(test) == 6.0).all()
    np.testing.assert_allclose(full.predict_proba(test),
                               METHODS["mean_probs"]().fit(fit).predict_proba(test))
    w = Cascade(costs=costs, threshold=0.7).fit(fit).backbone_weights(test)
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert (w[:, 1] > 0).all()  # the cheapest backbone always runs
    with pytest.raises(EnsembleError, match="permutation"):
        Cascade(order=[0, 0, 1]).fit(fit)


def test_cascade_curve_cost_grows_with_threshold(class_data):
    fit, test = class_data
    curve = cascade_curve(fit, test, costs=[3.0, 1.0, 2.0], thresholds=[0.0, 0.5, 0.8, 0.95, 1.01])
    costs = [row["mean_cost"] for row in curve]
    assert costs[0] == 1.0 and costs[-1] == 6.0
    assert all(a <= b for a, b in zip(costs, costs[1:]))
    assert set(curve[0]) == {"threshold", "accuracy", "mean_cost"}
