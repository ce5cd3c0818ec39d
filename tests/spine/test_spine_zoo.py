"""A demo tower's initial weights depend on its recipe's seed only, not on what ran before it."""

from dataclasses import replace

import torch

from synergy.registry import BackboneSpec, TrainSpec
from synergy.zoo import init_tower

SPEC = BackboneSpec(key="t", model="synergy-tiny-test", family="vit", train=TrainSpec(dataset="d", seed=3))


def _state(loaded) -> dict:
    return {k: v.clone() for k, v in loaded.model.state_dict().items()}


def test_initial_weights_ignore_earlier_use_of_the_global_generator():
    first = _state(init_tower(SPEC, "cpu"))
    torch.rand(12345)  # a DataLoader, another tower's training, ... draw from the same generator
    second = _state(init_tower(SPEC, "cpu"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_the_seed_is_what_sets_them():
    other = _state(init_tower(replace(SPEC, train=replace(SPEC.train, seed=4)), "cpu"))
    base = _state(init_tower(SPEC, "cpu"))
    assert any(not torch.equal(base[k], other[k]) for k in base if base[k].is_floating_point())
