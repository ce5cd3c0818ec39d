"""The registry: one human-edited YAML file that declares backbones and datasets.

Modelled on open_clip's name registry: a backbone is a key, an open_clip model name and a
pretrained tag (or a local checkpoint path). Demo backbones instead carry a `train` block and
get their checkpoint from the zoo-training asset.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synergy.errors import RegistryError

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
FAMILIES = ("resnet", "vit", "convnext", "other")
SPLITS = ("train", "fewshot", "test")


@dataclass(frozen=True)
class TrainSpec:
    """How the demo zoo trains a backbone: same data, objective and budget for every entry."""

    dataset: str
    epochs: int = 1
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0
    max_images: int | None = None


@dataclass(frozen=True)
class BackboneSpec:
    key: str
    model: str
    family: str
    pretrained: str | None = None
    train: TrainSpec | None = None

    @property
    def is_trained_here(self) -> bool:
        return self.train is not None


@dataclass(frozen=True)
class PerturbationSpec:
    """A test-time corruption applied to a base dataset's images (see synergy.perturb)."""

    kind: str
    severity: int


@dataclass(frozen=True)
class DatasetSpec:
    key: str
    source: str
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    train_size: int | None = None
    fewshot_size: int | None = None
    test_size: int | None = None
    split_seed: int = 0
    extract_splits: tuple[str, ...] = ("fewshot", "test")
    # a shifted variant: every base example once clean and once per (kind, severity)
    perturbations: tuple[PerturbationSpec, ...] = ()
    base: str | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Registry:
    path: Path
    backbones: tuple[BackboneSpec, ...]
    datasets: tuple[DatasetSpec, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    def backbone(self, key: str) -> BackboneSpec:
        for spec in self.backbones:
            if spec.key == key:
                return spec
        raise RegistryError(f"{self.path}: no backbone {key!r}; known: {', '.join(self.backbone_keys) or 'none'}")

    def dataset(self, key: str) -> DatasetSpec:
        for spec in self.datasets:
            if spec.key == key:
                return spec
        raise RegistryError(f"{self.path}: no dataset {key!r}; known: {', '.join(self.dataset_keys) or 'none'}")

    @property
    def backbone_keys(self) -> list[str]:
        return [b.key for b in self.backbones]

    @property
    def dataset_keys(self) -> list[str]:
        return [d.key for d in self.datasets]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate mapping keys instead of silently keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` merges; explicit keys may override it
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}", key_node.start_mark)
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


class _Fields:
    """Reads typed fields out of one registry entry and names the entry in every error."""

    def __init__(self, path: Path, where: str, raw: Any):
        self.path, self.where = path, where
        if not isinstance(raw, dict):
            self.fail(f"must be a mapping, got {type(raw).__name__}")
        self.raw = raw

    def fail(self, message: str):
        raise RegistryError(f"{self.path}: {self.where}: {message}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, required: bool = False):
        if name not in self.raw or self.raw[name] is None:
            if required or default is ...:
                self.fail(f"missing required field {name!r}")
            return default
        value = self.raw[name]
        # bool is an int in Python; a YAML `yes` must not pass as a number
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.fail(f"field {name!r} must be {_kind_name(kind)}, got a boolean")
        if float in (kind if isinstance(kind, tuple) else (kind,)) and isinstance(value, (int, float)):
            try:
                value = float(value)
            except OverflowError:
                self.fail(f"field {name!r} is too large a number")
            if not math.isfinite(value):
                self.fail(f"field {name!r} must be a finite number, got {value!r}")
        if not isinstance(value, kind):
            self.fail(f"field {name!r} must be {_kind_name(kind)}, got {type(value).__name__} {value!r}")
        return value

    def key(self) -> str:
        key = self.get("key", str, required=True)
        check_key(key, lambda m: self.fail(m))
        return key

    def check_unknown(self, allowed: set[str]):
        unknown = sorted(set(map(str, self.raw)) - allowed)
        if unknown:
            self.fail(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({"str": "a string", "int": "an integer", "float": "a number", "list": "a list",
                        "dict": "a mapping", "bool": "a boolean"}.get(k.__name__, k.__name__) for k in kinds)


def check_key(key: str, fail=None) -> str:
    """Keys become partition keys and path segments, so only `[a-z0-9._-]` and no `..` are allowed."""
    problem = None
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        problem = f"key {key!r} must match [a-z0-9][a-z0-9._-]* (lower-case letters, digits, '.', '_', '-')"
    elif ".." in key:
        problem = f"key {key!r} must not contain '..'"
    elif len(key) > 64:
        problem = f"key {key!r} is longer than 64 characters"
    if problem:
        if fail is None:
            raise RegistryError(problem)
        fail(problem)
    return key


def _parse_train(path: Path, where: str, raw: Any) -> TrainSpec:
    f = _Fields(path, where + ".train", raw)
    f.check_unknown({"dataset", "epochs", "batch_size", "lr", "weight_decay", "seed", "max_images"})
    spec = TrainSpec(
        dataset=f.get("dataset", str, required=True),
        epochs=f.get("epochs", int, 1),
        batch_size=f.get("batch_size", int, 256),
        lr=f.get("lr", float, 1e-3),
        weight_decay=f.get("weight_decay", float, 0.05),
        seed=f.get("seed", int, 0),
        max_images=f.get("max_images", int, None),
    )
    if spec.epochs < 1 or spec.batch_size < 1 or spec.lr <= 0:
        f.fail("epochs, batch_size and lr must be positive")
    return spec


def _parse_backbone(path: Path, index: int, raw: Any) -> BackboneSpec:
    where = f"backbones[{index}]" + (f" ({raw.get('key')!r})" if isinstance(raw, dict) and "key" in raw else "")
    f = _Fields(path, where, raw)
    f.check_unknown({"key", "model", "pretrained", "family", "train"})
    key = f.key()
    family = f.get("family", str, required=True)
    if family not in FAMILIES:
        f.fail(f"family {family!r} must be one of {', '.join(FAMILIES)}")
    pretrained = f.get("pretrained", str, None)
    train = _parse_train(path, where, raw["train"]) if raw.get("train") is not None else None
    if (pretrained is None) == (train is None):
        f.fail("give exactly one of 'pretrained' (an open_clip tag or a checkpoint path) and 'train'")
    return BackboneSpec(key=key, model=f.get("model", str, required=True), family=family,
                        pretrained=pretrained, train=train)


# Lists that open_clip ships, usable as `classes: open_clip:imagenet` or `templates: open_clip:openai_imagenet`.
_OPEN_CLIP_LISTS = {
    "imagenet": "IMAGENET_CLASSNAMES",
    "openai_imagenet": "OPENAI_IMAGENET_TEMPLATES",
    "simple_imagenet": "SIMPLE_IMAGENET_TEMPLATES",
}


def _builtin_list(f: "_Fields", value):
    """Resolve `open_clip:<name>` to open_clip's class-name or template list; other values pass through."""
    if not isinstance(value, str):
        return value
    if not value.startswith("open_clip:") or value[len("open_clip:"):] not in _OPEN_CLIP_LISTS:
        f.fail(f"{value!r} is not a list; built-in lists are " + ", ".join(f"open_clip:{k}" for k in _OPEN_CLIP_LISTS))
    from open_clip import zero_shot_metadata

    items = getattr(zero_shot_metadata, _OPEN_CLIP_LISTS[value[len("open_clip:"):]])
    return [item("{c}") if callable(item) else item for item in items]


def _parse_dataset(path: Path, index: int, raw: Any, templates_by_name: dict[str, list[str]]) -> DatasetSpec:
    where = f"datasets[{index}]" + (f" ({raw.get('key')!r})" if isinstance(raw, dict) and "key" in raw else "")
    f = _Fields(path, where, raw)
    f.check_unknown({"key", "source", "classes", "templates", "train_size", "fewshot_size", "test_size",
                     "split_seed", "extract", "perturbations"})
    key = f.key()
    source = f.get("source", str, required=True)
    classes = f.get("classes", (list, str), required=True)
    classes = _builtin_list(f, classes)
    if not classes or not all(isinstance(c, str) and c.strip() for c in classes):
        f.fail("'classes' must be a non-empty list of non-empty strings")
    if len(set(classes)) != len(classes):
        f.fail("'classes' has duplicate names")
    classes = _builtin_list(f, classes)
    templates = f.get("templates", (list, str), required=True)
    if isinstance(templates, str) and templates.startswith("open_clip:"):
        templates = _builtin_list(f, templates)
    elif isinstance(templates, str):
        if templates not in templates_by_name:
            f.fail(f"unknown template set {templates!r}; define it under 'templates:' at the top level")
        templates = templates_by_name[templates]
    if not templates or not all(isinstance(t, str) and "{c}" in t for t in templates):
        f.fail("'templates' must be a non-empty list of strings that each contain '{c}'")
    for t in templates:  # a stray brace or another {name} would only fail at extraction time
        try:
            t.format(c="x")
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            f.fail(f"template {t!r} may use only the placeholder '{{c}}' (write a literal brace as '{{{{' or "
                   f"'}}}}'): {type(exc).__name__}: {exc}")
    extract = f.get("extract", list, ["fewshot", "test"])
    bad = [s for s in extract if s not in SPLITS]
    if bad:
        f.fail(f"'extract' has unknown split(s) {bad}; splits are {', '.join(SPLITS)}")
    sizes = {name: f.get(name, int, None) for name in ("train_size", "fewshot_size", "test_size")}
    for name, value in sizes.items():
        if value is not None and value < 1:
            f.fail(f"{name!r} must be positive")
    return DatasetSpec(key=key, source=source, classes=tuple(classes), templates=tuple(templates),
                       split_seed=f.get("split_seed", int, 0), extract_splits=tuple(extract), **sizes)


def _shifted_variant(path: Path, index: int, raw: dict, base: DatasetSpec) -> DatasetSpec | None:
    """`perturbations:` on a dataset declares a shifted variant, `<key>-shift`, extracted like any dataset.

    Its examples are a seeded subset of the base splits, each present clean and under every
    (kind, severity); mixing them in one set is where input-conditioned ensembling should matter.
    """
    from dataclasses import replace

    from synergy.perturb import PERTURBATIONS  # local: keeps the registry importable without PIL

    block = raw.get("perturbations")
    if block is None:
        return None
    f = _Fields(path, f"datasets[{index}] ({base.key!r}).perturbations", block)
    f.check_unknown({"key", "kinds", "severities", "test_size", "fewshot_size"})
    kinds = f.get("kinds", list, list(PERTURBATIONS))
    unknown = [k for k in kinds if not isinstance(k, str) or k not in PERTURBATIONS]
    if unknown:
        f.fail(f"unknown perturbation(s) {unknown}; known: {', '.join(PERTURBATIONS)}")
    severities = f.get("severities", list, [1, 2, 3])
    if not severities or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 3 for s in severities):
        f.fail("'severities' must be a non-empty list of integers from 1 to 3")
    key = f.get("key", str, f"{base.key}-shift")
    check_key(key, f.fail)
    sizes = {name: f.get(name, int, 500) for name in ("test_size", "fewshot_size")}
    if min(sizes.values()) < 1:
        f.fail("test_size and fewshot_size must be positive")
    return replace(base, key=key, base=base.key, **sizes,
                   perturbations=tuple(PerturbationSpec(k, s) for k in kinds for s in severities))


def parse_registry(text: str, path: Path | str = "<registry>") -> Registry:
    """Parse registry YAML text; every problem raises RegistryError naming the file and entry."""
    path = Path(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise RegistryError(f"{path}: YAML nested too deeply") from None
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, AttributeError) as exc:
        # the SafeLoader's constructors raise these for values like `2020-13-45` (not a date)
        raise RegistryError(f"{path}: not valid YAML: {type(exc).__name__}: {exc}") from None
    top = _Fields(path, "top level", raw if raw is not None else {})
    top.check_unknown({"backbones", "datasets", "templates", "settings"})
    templates_by_name = top.get("templates", dict, {})
    for name, value in templates_by_name.items():
        if not isinstance(value, list):
            top.fail(f"templates.{name} must be a list of strings")
    settings = top.get("settings", dict, {})
    _check_ensemble_settings(path, settings.get("ensembles"))
    backbones = [_parse_backbone(path, i, b) for i, b in enumerate(top.get("backbones", list, []))]
    datasets: list[DatasetSpec] = []
    for i, d in enumerate(top.get("datasets", list, [])):
        spec = _parse_dataset(path, i, d, templates_by_name)
        datasets.append(spec)
        shifted = _shifted_variant(path, i, d, spec)
        if shifted is not None:
            datasets.append(shifted)
    for kind, keys in (("backbone", [b.key for b in backbones]), ("dataset", [d.key for d in datasets])):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise RegistryError(f"{path}: duplicate {kind} key(s): {', '.join(dupes)}")
    dataset_keys = {d.key for d in datasets}
    for b in backbones:
        if b.train and b.train.dataset not in dataset_keys:
            raise RegistryError(f"{path}: backbone {b.key!r} trains on unknown dataset {b.train.dataset!r}")
    return Registry(path=path, backbones=tuple(backbones), datasets=tuple(datasets), settings=dict(settings))


def _check_ensemble_settings(path: Path, block: Any) -> None:
    """`settings: {ensembles: {ks: [...], seeds: N}}`: the k-shot grid a registry asks for by default.

    The ensembles asset falls back to the paper's grid (ks 1, 2, 4, 8, 16; 5 seeds) without it; the
    demo registry sets a smaller grid so that `make demo` stays within its time budget.
    """
    if block is None:
        return
    f = _Fields(path, "settings.ensembles", block)
    f.check_unknown({"ks", "seeds"})
    ks = f.get("ks", list, None)
    if ks is not None and (not ks or not all(type(k) is int and k >= 1 for k in ks)):
        f.fail(f"ks must be a non-empty list of positive integers, got {ks!r}")
    seeds = f.get("seeds", int, None)
    if seeds is not None and (type(seeds) is not int or seeds < 1):
        f.fail(f"seeds must be a positive integer, got {seeds!r}")


def load_registry(path: Path | str) -> Registry:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{path}: registry file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read registry file: {exc}") from None
    return parse_registry(text, path)
