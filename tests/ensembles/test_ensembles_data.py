"""EnsembleData validation and slicing."""

import numpy as np
import pytest

from synergy.ensembles import EnsembleData, EnsembleError, oracle_correct
from synergy.errors import SynergyError


def _data(n=4, widths=(3, 5), c=3):
    rng = np.random.default_rng(0)
    emb = [rng.normal(size=(n, w)).astype(np.float32) for w in widths]
    log = [rng.normal(size=(n, c)).astype(np.float32) for _ in widths]
    return EnsembleData(emb, log, np.arange(n) % c, np.array([f"i{i}" for i in range(n)]),
                        ("a", "b"))


def test_properties_and_default_names():
    d = _data()
    assert (d.n_examples, d.n_backbones, d.n_classes, d.widths) == (4, 2, 3, (3, 5))
    unnamed = EnsembleData(d.embeddings, d.logits)
    assert unnamed.backbones == ("b0", "b1")
    assert unnamed.labels is None and unnamed.example_ids is None


def test_error_is_value_error_and_synergy_error():
    assert issubclass(EnsembleError, ValueError) and issubclass(EnsembleError, SynergyError)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: dict(embeddings=[d.embeddings[0], d.embeddings[1][:3]]), "rows"),
    (lambda d: dict(logits=[d.logits[0], d.logits[1][:, :2]]), "number of classes"),
    (lambda d: dict(logits=d.logits[:1]), "logit blocks"),
    (lambda d: dict(labels=np.array([0, 1, 2, 3])), r"\[0, 3\)"),
    (lambda d: dict(labels=np.array([0.0, 1, 2, 0])), "int array"),
    (lambda d: dict(example_ids=np.array(["x", "x", "y", "z"])), "not unique"),
    (lambda d: dict(backbones=("a",)), "names"),
    (lambda d: dict(embeddings=[d.embeddings[0][0], d.embeddings[1]]), "2-D"),
    (lambda d: dict(logits=[d.logits[0] * np.nan, d.logits[1]]), "NaN"),
])
def test_validation_errors(mutate, message):
    d = _data()
    fields = dict(embeddings=d.embeddings, logits=d.logits, labels=d.labels,
                  example_ids=d.example_ids, backbones=d.backbones)
    fields.update(mutate(d))
    with pytest.raises(EnsembleError, match=message):
        EnsembleData(**fields)


def test_subset_and_select_backbones():
    d = _data()
    s = d.subset([2, 0])
    assert s.labels.tolist() == [2, 0] and s.example_ids.tolist() == ["i2", "i0"]
    np.testing.assert_array_equal(s.logits[1], d.logits[1][[2, 0]])
    m = d.subset(np.array([True, False, False, True]))
    assert m.example_ids.tolist() == ["i0", "i3"]
    b = d.select_backbones(["b"])
    assert b.backbones == ("b",) and b.widths == (5,)
    assert d.select_backbones([1, 0]).backbones == ("b", "a")
    with pytest.raises(EnsembleError, match="unknown backbone"):
        d.select_backbones(["zz"])
    with pytest.raises(EnsembleError, match="out of range"):
        d.subset([9])


def test_oracle_correct_hand_example():
    a = np.array([[1.0, 0], [1, 0], [0, 1]])
    b = np.array([[0.0, 1], [1, 0], [0, 1]])
    emb = [np.ones((3, 2), np.float32)] * 2
    d = EnsembleData(emb, [a, b], np.array([1, 1, 0]))
    assert oracle_correct(d).tolist() == [True, False, False]
