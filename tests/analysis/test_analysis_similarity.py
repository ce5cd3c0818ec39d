"""Linear CKA and kNN overlap: known properties and a straightforward reference formula."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synergy.similarity import knn_indices, knn_overlap, linear_cka, pairwise_similarity


def reference_cka(x, y):
    """CKA via HSIC with explicit centring matrices: HSIC(K, L) = tr(K H L H) / (n - 1)^2."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h) / (n - 1) ** 2  # noqa: E731
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def _orthogonal(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def test_cka_of_a_representation_with_itself_is_one():
    x = np.random.default_rng(0).normal(size=(50, 8))
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_cka_matches_the_reference_formula_narrow_and_wide():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 9)) + 0.5 * rng.normal(size=(40, 9))
    assert linear_cka(x, y) == pytest.approx(reference_cka(x, y))
    wide_x, wide_y = rng.normal(size=(20, 60)), rng.normal(size=(20, 70))  # p, q > n: the Gram path
    assert linear_cka(wide_x, wide_y) == pytest.approx(reference_cka(wide_x, wide_y))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0), shift=st.floats(-10.0, 10.0))
def test_cka_is_invariant_to_rotation_isotropic_scaling_and_shift(seed, scale, shift):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 5))
    y = np.tanh(x @ rng.normal(size=(5, 7))) + 0.3 * rng.normal(size=(30, 7))
    base = linear_cka(x, y)
    transformed = scale * (y @ _orthogonal(rng, 7)) + shift
    assert linear_cka(x, transformed) == pytest.approx(base, rel=1e-7, abs=1e-9)
    assert linear_cka(transformed, x) == pytest.approx(base, rel=1e-7, abs=1e-9)


def test_cka_is_not_invariant_to_anisotropic_scaling():
    # the property the test above relies on must be able to fail
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 4))
    y = x @ rng.normal(size=(4, 4)) + 0.1 * rng.normal(size=(60, 4))
    assert abs(linear_cka(x, y * np.array([1, 10, 0.1, 1])) - linear_cka(x, y)) > 1e-3


def test_cka_of_independent_random_matrices_is_small():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    assert linear_cka(x, y) < 0.03  # expectation about sqrt(16 * 16) / 2000 = 0.008
    z = x @ rng.normal(size=(16, 16))  # a linear function of x instead: far from 0
    assert linear_cka(x, z) > 0.3


def test_cka_rejects_bad_input():
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(np.full((3, 2), np.nan), np.ones((3, 2)))
    assert np.isnan(linear_cka(np.ones((5, 2)), np.random.default_rng(0).normal(size=(5, 2))))


def test_knn_indices_by_hand():
    # points on a line (cosine on 2-D vectors at angles 0, 10, 20, 90 degrees)
    angles = np.deg2rad([0, 10, 20, 90])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert knn_indices(x, 2).tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]


def test_knn_overlap_properties():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 12))
    assert knn_overlap(x, x, k=10) == 1.0
    # cosine neighbourhoods ignore rotation and per-row scaling
    assert knn_overlap(x, (x @ _orthogonal(rng, 12)) * rng.uniform(0.5, 2, (200, 1)), k=10) == pytest.approx(1.0)
    unrelated = knn_overlap(x, rng.normal(size=(200, 12)), k=10)
    assert unrelated < 0.15  # chance is k / (n - 1) = 0.05


def test_knn_overlap_by_hand():
    # x: neighbours (k=1) 0->1, 1->0, 2->1(20° vs 70°), 3->2 ; y swaps which of 0, 1 is near 2
    ax = np.deg2rad([0, 10, 20, 90])
    ay = np.deg2rad([10, 0, 20, 90])
    x = np.stack([np.cos(ax), np.sin(ax)], axis=1)
    y = np.stack([np.cos(ay), np.sin(ay)], axis=1)
    # y neighbours: 0->1, 1->0, 2->0, 3->2: examples 0, 1, 3 agree, 2 does not -> 3/4
    assert knn_overlap(x, y, k=1) == 0.75


def test_pairwise_similarity_rows():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(30, 4))
    out = pairwise_similarity({"b": base @ _orthogonal(rng, 4), "a": base, "c": rng.normal(size=(30, 6))}, k=5)
    assert [(r["backbone_a"], r["backbone_b"]) for r in out] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert out[0]["cka"] == pytest.approx(1.0) and out[0]["knn_overlap"] == 1.0
    assert out[1]["cka"] < 0.9 and {r["n_sample"] for r in out} == {30} and {r["knn_k"] for r in out} == {5}
    with pytest.raises(ValueError, match="share their rows"):
        pairwise_similarity({"a": base, "b": base[:10]})
