"""Bad registry files: every problem is one RegistryError naming the file and the entry; fuzzed with hypothesis."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synergy.errors import RegistryError
from synergy.registry import load_registry, parse_registry

GOOD_BACKBONE = "{key: rn, model: RN50, pretrained: openai, family: resnet}"
GOOD_DATASET = "{key: pets, source: 'image-folder:/x', classes: [cat, dog], templates: ['a {c}']}"


def _error(text: str, name: str = "zoo.yaml") -> str:
    with pytest.raises(RegistryError) as err:
        parse_registry(text, name)
    return str(err.value)


@pytest.mark.parametrize("text, where, what", [
    # YAML syntax errors: the line is named
    ("backbones:\n  - {key: rn, model: RN50\n", "zoo.yaml", "not valid YAML"),
    ("datasets: [\n", "zoo.yaml", "not valid YAML"),
    ("backbones:\n\t- x\n", "zoo.yaml", "not valid YAML"),
    # duplicate keys, at the top, inside an entry, and two entries with the same key
    (f"backbones: []\nbackbones: [{GOOD_BACKBONE}]\n", "line 2", "duplicate key 'backbones'"),
    ("backbones:\n  - key: rn\n    model: RN50\n    model: RN101\n    pretrained: openai\n    family: resnet\n",
     "line 4", "duplicate key 'model'"),
    (f"backbones: [{GOOD_BACKBONE}, {GOOD_BACKBONE}]\n", "zoo.yaml", "duplicate backbone key(s): rn"),
    # bad key characters
    ("backbones: [{key: 'a/b', model: RN50, pretrained: openai, family: resnet}]", "backbones[0] ('a/b')", "must match"),
    ("backbones: [{key: 'a|b', model: RN50, pretrained: openai, family: resnet}]", "backbones[0] ('a|b')", "must match"),
    ("backbones: [{key: 'a..b', model: RN50, pretrained: openai, family: resnet}]", "backbones[0] ('a..b')", "'..'"),
    ("datasets: [{key: '..', source: x, classes: [a], templates: ['{c}']}]", "datasets[0] ('..')", "must match"),
    ("datasets: [{key: 'a\\\\b', source: x, classes: [a], templates: ['{c}']}]", "datasets[0]", "must match"),
    # missing fields
    ("backbones: [{key: rn, model: RN50, family: resnet}]", "backbones[0] ('rn')", "exactly one of 'pretrained'"),
    ("backbones: [{key: rn, pretrained: openai, family: resnet}]", "backbones[0] ('rn')", "missing required field 'model'"),
    ("datasets: [{key: pets, source: x, templates: ['{c}']}]", "datasets[0] ('pets')", "missing required field 'classes'"),
    ("backbones: [{model: RN50, pretrained: openai, family: resnet}]", "backbones[0]", "missing required field 'key'"),
    # wrong types
    ("backbones: [{key: rn, model: 50, pretrained: openai, family: resnet}]", "backbones[0] ('rn')", "must be a string"),
    ("datasets: [{key: pets, source: x, classes: cat, templates: ['{c}']}]", "datasets[0] ('pets')", "not a list"),
    ("datasets: [{key: pets, source: x, classes: [cat], templates: ['{c}'], test_size: yes}]", "datasets[0] ('pets')",
     "must be an integer, got a boolean"),
    ("datasets: [{key: pets, source: x, classes: [cat], templates: ['{c}'], test_size: [1]}]", "datasets[0] ('pets')",
     "must be an integer"),
    ("backbones: {key: rn}", "top level", "must be a list"),
    ("backbones: [rn50]", "backbones[0]", "must be a mapping"),
    ("- 1\n- 2\n", "top level", "must be a mapping"),
    ("backbones: [{key: rn, model: RN50, family: resnet, train: {dataset: d, lr: .nan}}]", "backbones[0] ('rn').train",
     "finite"),
    ("backbones: [{key: rn, model: RN50, family: resnet, train: {dataset: d, lr: " + "9" * 400 + "}}]",
     "backbones[0] ('rn').train", "lr"),
    # templates that would only fail later, at extraction
    ("datasets: [{key: pets, source: x, classes: [cat], templates: ['a {c} {d}']}]", "datasets[0] ('pets')", "{c}"),
    ("datasets: [{key: pets, source: x, classes: [cat], templates: ['a {c']}]", "datasets[0] ('pets')", "{c}"),
    # YAML that constructs but would crash a naive loader
    ("datasets: [{key: pets, source: x, classes: [cat], templates: ['{c}'], split_seed: 2020-13-45}]", "zoo.yaml",
     "not valid YAML"),
    ("backbones: [{key: rn, model: !!python/object:os.system ls, pretrained: openai, family: resnet}]", "zoo.yaml",
     "not valid YAML"),
    ("{[1]: 2}", "zoo.yaml", "not valid YAML"),
    ("datasets: [{key: pets, source: x, classes: [cat], templates: ['{c}'], perturbations: {kinds: [[1]]}}]",
     "datasets[0] ('pets').perturbations", "unknown perturbation"),
])
def test_bad_registry_gives_one_error_naming_file_and_entry(text, where, what):
    message = _error(text)
    assert message.startswith("zoo.yaml"), message
    assert where in message and what in message, message
    assert "Traceback" not in message


def test_yaml_merge_keys_and_aliases_still_load():
    text = f"""
defaults: &d {{family: resnet, pretrained: openai}}
backbones:
  - {{<<: *d, key: rn, model: RN50}}
  - {{<<: *d, key: rn101, model: RN101, family: resnet}}
datasets: [{GOOD_DATASET}]
"""
    # `defaults` is not a known top-level field: it must be refused, but as a RegistryError
    assert "unknown field(s) defaults" in _error(text)
    reg = parse_registry(text.replace("defaults:", "settings:"))
    assert [b.key for b in reg.backbones] == ["rn", "rn101"] and reg.backbones[0].family == "resnet"


def test_unreadable_files(tmp_path):
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"backbones: [\xff\xfe]\n")
    with pytest.raises(RegistryError, match="latin1.yaml"):
        load_registry(bad)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(RegistryError, match="dir.yaml"):
        load_registry(folder)


# ---------------------------------------------------------------- fuzzing

# derandomized: the same examples every run, so CI is reproducible; raise max_examples locally to dig deeper
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)


def _loads_or_registry_error(text: str) -> None:
    try:
        parse_registry(text, "fuzz.yaml")
    except RegistryError as exc:
        assert str(exc).startswith("fuzz.yaml"), exc


@FUZZ
@given(st.lists(st.sampled_from(list("{}[]:-,'\"&*!|>#%@`?\\/. \n\t0123456789abkeyl<") + [
    "key", "backbones", "datasets", "\n  - ", "<<: ", "!!", "2020-13-45", "9" * 30]), max_size=60).map("".join))
def test_fuzz_yaml_punctuation(text):
    _loads_or_registry_error(text)


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    _loads_or_registry_error(text)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**400, max_value=10**400),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                     st.sampled_from(["openai", "RN50", "resnet", "vit", "fewshot", "test", "{c}", "a {c}", "..",
                                      "a/b", "open_clip:imagenet", "open_clip:nope", "noise", "blur"]))
_values = st.recursive(_scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                       max_leaves=12)
_backbone_fields = ["key", "model", "pretrained", "family", "train", "dataset", "epochs", "lr", "batch_size", "seed"]
_dataset_fields = ["key", "source", "classes", "templates", "train_size", "fewshot_size", "test_size", "split_seed",
                   "extract", "perturbations", "kinds", "severities"]


def _entries(fields):
    return st.lists(st.dictionaries(st.sampled_from(fields), _values, max_size=len(fields)), max_size=3)


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    "backbones": st.one_of(_entries(_backbone_fields), _values),
    "datasets": st.one_of(_entries(_dataset_fields), _values),
    "templates": st.one_of(st.dictionaries(st.text(max_size=5), _values, max_size=2), _values),
    "settings": _values,
    "other": _values,
}))
def test_fuzz_structured_registries(doc):
    _loads_or_registry_error(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.lists(st.fixed_dictionaries(
    {"key": st.sampled_from(["rn", "vit", "Bad", "a/b"]), "family": st.sampled_from(["resnet", "vit", "x"])},
    optional={"model": _scalars, "pretrained": _scalars,
              "train": st.dictionaries(st.sampled_from(["dataset", "epochs", "lr", "batch_size", "max_images"]),
                                       _scalars, max_size=5)}), max_size=3),
       st.lists(st.fixed_dictionaries(
           {"key": st.sampled_from(["pets", "pets-shift", "p..q"]), "source": _scalars},
           optional={"classes": st.one_of(st.lists(_scalars, max_size=3), _scalars),
                     "templates": st.one_of(st.lists(_scalars, max_size=2), _scalars),
                     "extract": st.lists(_scalars, max_size=3),
                     "perturbations": st.dictionaries(st.sampled_from(["kinds", "severities", "key", "test_size"]),
                                                      _values, max_size=4)}), max_size=3))
def test_fuzz_nearly_valid_entries(backbones, datasets):
    _loads_or_registry_error(yaml.safe_dump({"backbones": backbones, "datasets": datasets}, allow_unicode=True))
