"""Seeded draws, the leakage guard, identical draws across methods, and the summaries."""

import numpy as np
import pytest
import torch

from synergy.ensembles import (
    BestSingle, EnsembleError, MeanLogits, draw_fraction, draw_k_shot, evaluate,
    linear_probe_logits, make_draws, summarise,
)
from synergy.ensembles.synthetic import make_class_data

torch.set_num_threads(1)
LABELS = np.repeat(np.arange(4), [5, 7, 3, 10])


@pytest.fixture(scope="module")
def pool_and_test():
    return make_class_data(300, seed=1), make_class_data(200, seed=2, id_prefix="t")


def test_draw_k_shot_exact_sorted_and_seeded():
    rows = draw_k_shot(LABELS, 3, seed=0)
    assert np.bincount(LABELS[rows]).tolist() == [3, 3, 3, 3]
    assert (np.diff(rows) > 0).all()  # sorted and without repeats
    np.testing.assert_array_equal(rows, draw_k_shot(LABELS, 3, seed=0))
    assert any(not np.array_equal(rows, draw_k_shot(LABELS, 3, seed=s)) for s in (1, 2))


def test_draw_k_shot_names_the_short_class():
    with pytest.raises(EnsembleError, match=r"class 2 has only 3 example\(s\).*4-shot"):
        draw_k_shot(LABELS, 4, seed=0)
    with pytest.raises(EnsembleError, match="class 4 has only 0"):
        draw_k_shot(LABELS, 1, seed=0, n_classes=5)
    with pytest.raises(EnsembleError, match="k must be"):
        draw_k_shot(LABELS, 0, seed=0)


def test_draw_fraction_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), 100)
    rows = draw_fraction(labels, 0.1, seed=3)
    assert np.bincount(labels[rows]).tolist() == [10, 10, 10]
    assert (np.diff(rows) > 0).all()
    assert not np.array_equal(rows, draw_fraction(labels, 0.1, seed=4))
    with pytest.raises(EnsembleError, match="fraction"):
        draw_fraction(labels, 0.0, seed=0)


def test_evaluate_refuses_leakage(pool_and_test):
    pool, _ = pool_and_test
    leaky_test = pool.subset(np.arange(10))
    with pytest.raises(EnsembleError, match="also in the test set"):
        evaluate(pool, leaky_test, {"mean_logits": MeanLogits}, ks=(1,), seeds=[0])


def test_every_method_sees_the_same_draw(pool_and_test):
    pool, test = pool_and_test
    seen: dict[tuple[str, int], list] = {}

    class Spy(MeanLogits):
        def _fit(self, data):
            self.ids_ = tuple(data.example_ids)

    def spy(name):
        def factory():
            s = Spy()
            spies.append((name, s))
            return s
        return factory

    spies: list = []
    records = evaluate(pool, test, {"a": spy("a"), "b": spy("b"), "best_single": BestSingle},
                       ks=(1, 2), seeds=[0, 1])
    for i, (name, s) in enumerate(spies):
        seen.setdefault(i // 2, []).append(s.ids_)  # a and b alternate within each draw
    for ids in seen.values():
        assert ids[0] == ids[1]
    assert len({v[0] for v in seen.values()}) == 4  # four distinct (k, seed) draws
    draws = make_draws(pool, "kshot", ks=(1, 2), seeds=[0, 1])
    assert [pool.subset(d["rows"]).example_ids.tolist() for d in draws] == \
        [list(v[0]) for v in seen.values()]
    by_draw: dict = {}
    for r in records:
        by_draw.setdefault((r["k"], r["seed"]), set()).add((r["fit_ids"], r["n_fit"]))
    assert all(len(v) == 1 for v in by_draw.values())
    assert {r["method"] for r in records} == {"a", "b", "best_single", "oracle"}
    assert {r["n_fit"] for r in records if r["k"] == 2} == {2 * pool.n_classes}


def test_evaluate_fraction_and_linear_probe_modes(pool_and_test):
    pool, test = pool_and_test
    frac = evaluate(pool, test, {"best_single": BestSingle}, seeds=[0], mode="fraction",
                    fractions=(0.2,))
    assert {r["n_fit"] for r in frac} == {60} and {r["fraction"] for r in frac} == {0.2}
    lp = evaluate(pool, test, {"best_single": BestSingle}, seeds=[0], mode="linear_probe")
    assert {r["n_fit"] for r in lp} == {30} and {r["k"] for r in lp} == {None}
    with pytest.raises(EnsembleError, match="mode"):
        evaluate(pool, test, {}, mode="zero")


def test_linear_probe_logits_shapes_scale_and_usefulness(pool_and_test):
    pool, test = pool_and_test
    fit10, test_lp = linear_probe_logits(pool, test, seed=0)
    assert fit10.n_examples == 30 and test_lp.n_examples == test.n_examples
    assert not set(fit10.example_ids) & set(test.example_ids)
    for z_lp, z_zs in zip(test_lp.logits, test.logits):
        assert z_lp.shape == z_zs.shape
        ratio = z_lp.std(1).mean() / z_zs.std(1).mean()
        assert 0.3 < ratio < 3  # rescaled to zero-shot magnitudes
        # a probe trained on 270 labeled rows beats the imperfect zero-shot head
        assert (z_lp.argmax(1) == test.labels).mean() > (z_zs.argmax(1) == test.labels).mean()
    again, _ = linear_probe_logits(pool, test, seed=0)
    np.testing.assert_array_equal(again.logits[0], fit10.logits[0])


def test_summarise_hand_computed():
    rec = lambda m, s, a: {"mode": "kshot", "k": 1, "fraction": None, "method": m,  # noqa: E731
                           "seed": s, "accuracy": a}
    records = [rec("oracle", 0, 0.9), rec("oracle", 1, 0.9),
               rec("best_single", 0, 0.6), rec("best_single", 1, 0.7),
               rec("nlc", 0, 0.7), rec("nlc", 1, 0.8)]
    out = {r["method"]: r for r in summarise(records)}
    assert out["nlc"]["mean"] == pytest.approx(0.75)
    assert out["nlc"]["std"] == pytest.approx(0.05)  # ddof=0
    assert out["nlc"]["gain_over_best_single"] == pytest.approx(0.1)
    assert out["nlc"]["oracle_gap_closed"] == pytest.approx(0.1 / 0.25)
    assert out["best_single"]["oracle_gap_closed"] == pytest.approx(0.0)
    flat = summarise([rec("oracle", 0, 0.6), rec("best_single", 0, 0.6), rec("x", 0, 0.6)])
    assert all(r["oracle_gap_closed"] is None for r in flat)
    assert summarise([rec("x", 0, 0.5)])[0]["gain_over_best_single"] is None


def test_evaluate_passes_the_seed_as_random_state(pool_and_test):
    pool, test = pool_and_test
    used = []

    class SeedSpy(MeanLogits):
        def __init__(self, random_state=None):
            self.random_state = random_state

        def _fit(self, data):
            used.append(self.random_state)

    evaluate(pool, test, {"spy": SeedSpy}, ks=(1,), seeds=[3, 5])
    assert used == [3, 5]
