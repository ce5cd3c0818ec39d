"""Hand-computed answers for the static combiners, temperature recovery, a property test."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from synergy.ensembles import (
    BestSingle, CalibratedMean, EnsembleData, EnsembleError, EntropyWeighted, MajorityVote,
    MaxConfidence, MeanLogits, MeanProbs, fit_temperature,
)


def _data(logits, labels=None):
    n = len(logits[0])
    emb = [np.ones((n, 2), np.float32) / np.sqrt(2)] * len(logits)
    return EnsembleData(emb, [np.asarray(z, float) for z in logits],
                        None if labels is None else np.asarray(labels))


# Three backbones, two classes. Row 0: one backbone very sure of class 0, two mildly sure of
# class 1 -> mean of logits says 0, mean of probabilities and the vote say 1.
A = [[10, 0], [0, 1], [2, 0]]
B = [[0, 3], [0, 1], [0, 2]]
C = [[0, 3], [1, 0], [0, 3]]
LABELS = [1, 1, 0]


def test_mean_logits_hand_computed():
    p = MeanLogits().fit(_data([A, B, C])).predict_proba(_data([A, B, C]))
    # row 0: mean logits (10/3, 2) -> p0 = 1 / (1 + exp(-4/3)) = 0.7914
    assert p[0, 0] == pytest.approx(0.79139, abs=1e-4)
    assert MeanLogits().fit(_data([A, B, C])).predict(_data([A, B, C])).tolist() == [0, 1, 1]


def test_mean_probs_hand_computed():
    p = MeanProbs().fit(_data([A, B, C])).predict_proba(_data([A, B, C]))
    # row 0: (sigmoid(10) + 2 * sigmoid(-3)) / 3 = (0.9999546 + 2 * 0.0474259) / 3
    assert p[0, 0] == pytest.approx(0.364935, abs=1e-5)
    assert p.argmax(1).tolist() == [1, 1, 1]


def test_majority_vote_with_tie_broken_by_mean_probability():
    # Row 0: votes 0,1,1 -> 1. Row 1: two backbones vote 1 -> 1 even though backbone C is sure.
    d = _data([A, B, C])
    assert MajorityVote().fit(d).predict(d).tolist() == [1, 1, 1]
    # Two backbones, one vote each: mean probabilities decide.
    tie = _data([[[2.0, 0.0]], [[0.0, 0.5]]])  # p0 = (0.881 + 0.378) / 2 > 0.5
    p = MajorityVote().fit(tie).predict_proba(tie)
    assert p.argmax(1).tolist() == [0] and p.sum() == pytest.approx(1.0)
    flipped = _data([[[0.5, 0.0]], [[0.0, 2.0]]])
    assert MajorityVote().fit(flipped).predict(flipped).tolist() == [1]


def test_best_single_picks_most_accurate_and_lowest_index_on_ties():
    # Accuracies on LABELS [1, 1, 0]: A = 2/3 (rows 1,2), B = 2/3 (rows 0,1), C = 1/3.
    d = _data([A, B, C], LABELS)
    m = BestSingle().fit(d)
    assert m.accuracies_.tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert m.best_ == 0
    assert m.backbone_weights(d).tolist() == [[1, 0, 0]] * 3
    assert BestSingle().fit(_data([C, B, A], LABELS)).best_ == 1
    with pytest.raises(EnsembleError, match="labeled"):
        BestSingle().fit(_data([A, B, C]))


def test_max_confidence_and_entropy_weighted():
    d = _data([A, B, C])
    m = MaxConfidence().fit(d)
    # row 0: A (10 vs 0) is surest; row 1: C (1 vs 0) ties A and B -> lowest index A;
    # row 2: C (0 vs 3) is surest.
    assert m.backbone_weights(d).argmax(1).tolist() == [0, 0, 2]
    assert m.predict(d).tolist() == [0, 1, 1]
    w = EntropyWeighted().fit(d).backbone_weights(d)
    assert np.allclose(w.sum(1), 1) and w[0].argmax() == 0 and w[2].argmax() == 2


def test_fit_temperature_recovers_generating_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=4.0, size=(6000, 5))
    for t_true in (0.5, 2.5):
        p = np.exp(z / t_true)
        p /= p.sum(1, keepdims=True)
        y = np.array([rng.choice(5, p=row) for row in p])
        assert fit_temperature(z, y) == pytest.approx(t_true, rel=0.08)


def test_calibrated_mean_uses_per_backbone_temperatures():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(4000, 4))
    p = np.exp(z / 2.0)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    d = _data([z, 3.0 * z], y)  # same ranking, second backbone 3x overconfident
    m = CalibratedMean().fit(d)
    assert m.temperatures_ == pytest.approx([2.0, 6.0], rel=0.1)
    np.testing.assert_allclose(m.predict_proba(d), p, atol=0.03)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(2, 5), st.integers(1, 6), st.data())
def test_mean_probs_argmax_matches_numpy(b, c, n, data):
    logits = [data.draw(hnp.arrays(np.float32, (n, c),
                                   elements=st.floats(-50, 50, width=32))) for _ in range(b)]
    got = MeanProbs().fit(_data(logits)).predict_proba(_data(logits))
    ref = np.mean([np.exp(z - z.max(1, keepdims=True)) /
                   np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
                   for z in (np.asarray(z, np.float64) for z in logits)], axis=0)
    mine, theirs = got.argmax(1), ref.argmax(1)
    rows = np.arange(n)
    # Equal argmax, except where two classes tie to rounding (then both are maxima).
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-9
    assert (mine[clear] == theirs[clear]).all()
    assert np.allclose(ref[rows, mine], ref[rows, theirs], atol=1e-9)
