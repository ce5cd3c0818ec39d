from pathlib import Path

import open_clip
import pytest

from synergy.backbones import register_model_configs
from synergy.errors import RegistryError
from synergy.registry import check_key, load_registry, parse_registry

ROOT = Path(__file__).resolve().parents[2]


def test_demo_registry_has_two_families_and_a_shifted_variant():
    reg = load_registry(ROOT / "registry" / "demo.yaml")
    assert len(reg.backbones) >= 4
    assert {b.family for b in reg.backbones} >= {"resnet", "vit"}
    assert all(b.train is not None and b.train == reg.backbones[0].train for b in reg.backbones), "same budget for all"
    shift = reg.dataset("fashion-mnist-shift")
    assert shift.base == "fashion-mnist" and len(shift.perturbations) == 7 * 3
    register_model_configs()
    assert all(b.model in open_clip.list_models() for b in reg.backbones)


def test_paper_registry_resolves_against_open_clip_metadata():
    reg = load_registry(ROOT / "registry" / "paper.yaml")
    pairs = {(b.model, b.pretrained) for b in reg.backbones}
    assert pairs == {(m, "openai") for m in ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B-32",
                                                 "ViT-B-16", "ViT-L-14", "ViT-L-14-336"]}
    available = set(open_clip.list_pretrained())
    assert pairs <= available, pairs - available
    for b in reg.backbones:
        assert open_clip.get_pretrained_cfg(b.model, b.pretrained), b.key


@pytest.mark.parametrize("key", ["a/b", "a|b", "..", "a..b", "Upper", "", "-lead"])
def test_bad_keys_are_refused(key):
    with pytest.raises(RegistryError):
        check_key(key)


def test_error_names_file_and_entry():
    text = "backbones:\n  - {key: ok, model: RN50, pretrained: openai, family: resnet}\n  - {key: x, model: RN50, family: resnet}\n"
    with pytest.raises(RegistryError) as err:
        parse_registry(text, "my.yaml")
    assert "my.yaml" in str(err.value) and "backbones[1]" in str(err.value) and "'x'" in str(err.value)


def test_open_clip_builtin_lists_resolve():
    text = """datasets:
  - {key: inet, source: "image-folder:/nowhere", classes: [a, b], templates: "open_clip:openai_imagenet"}
"""
    spec = parse_registry(text).dataset("inet")
    assert len(spec.templates) == 80 and all("{c}" in t for t in spec.templates)


@pytest.mark.parametrize("block, message", [
    ("{ks: [1, 0]}", "ks must be a non-empty list of positive integers"),
    ("{ks: []}", "ks must be a non-empty list of positive integers"),
    ("{ks: [1, two]}", "ks must be a non-empty list of positive integers"),
    ("{seeds: 0}", "seeds must be a positive integer"),
    ("{seeds: yes}", "must be an integer, got a boolean"),
    ("{k: [1]}", "unknown field(s) k"),
    ("[1, 2]", "must be a mapping"),
])
def test_bad_ensemble_settings_name_the_file_and_block(block, message):
    from synergy.errors import RegistryError
    from synergy.registry import parse_registry

    with pytest.raises(RegistryError) as err:
        parse_registry(f"settings:\n  ensembles: {block}\n", "zoo.yaml")
    assert str(err.value).startswith("zoo.yaml: settings.ensembles") and message in str(err.value), str(err.value)
