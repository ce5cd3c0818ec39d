"""Shared fixtures: tiny registries and a way to load the real Definitions against them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")

TINY_REGISTRY = """
datasets:
  - key: fmnist-tiny
    source: fashion-mnist
    classes: [t-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot]
    templates: ["a photo of a {{c}}.", "a blurry photo of a {{c}}."]
    train_size: 256
    fewshot_size: 120
    test_size: 150
backbones:
  - key: tiny-vit
    model: synergy-tiny-test
    family: vit
    train: {{dataset: fmnist-tiny, epochs: 1, batch_size: 64, seed: 0}}
  - key: tiny-rn
    model: synergy-tiny-rn-test
    family: resnet
    train: {{dataset: fmnist-tiny, epochs: 1, batch_size: 64, seed: 0}}
"""


def _purge_pipeline_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in ("pipelines", "assets"):
            del sys.modules[name]


@pytest.fixture
def tiny_registry(tmp_path) -> Path:
    if not FASHION_MNIST.exists():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    path = tmp_path / "registry.yaml"
    path.write_text(TINY_REGISTRY.format())
    return path


@pytest.fixture
def load_defs(monkeypatch):
    """Import the real code location against a given registry and store (partitions are read at import)."""

    def load(registry: Path, store: Path):
        monkeypatch.setenv("SYNERGY_REGISTRY", str(registry))
        monkeypatch.setenv("SYNERGY_STORE", str(store))
        _purge_pipeline_modules()
        return importlib.import_module("pipelines.definitions").defs

    yield load
    _purge_pipeline_modules()


@pytest.fixture(autouse=True)
def _no_leaked_defs_state_storage():
    """Dagster 1.13's `DagsterInstance.__exit__` does not undo what `__enter__` set: after a
    `with instance_for_test()` block, a context variable still points at the dead instance's state
    storage, and the next Definitions load in this process fails with "undefined DagsterInstance
    weakref". Reset it around every test so tests do not depend on their order."""
    from dagster._core.storage.defs_state import base

    base._current_storage.set(None)
    yield
    base._current_storage.set(None)
