"""Where the code location finds its registry and store. Environment variables override the defaults."""

from __future__ import annotations

import os

from synergy.registry import Registry, load_registry

DEFAULT_REGISTRY = "registry/demo.yaml"
DEFAULT_STORE = "data"


def registry_path() -> str:
    return os.environ.get("SYNERGY_REGISTRY", DEFAULT_REGISTRY)


def store_root() -> str:
    return os.environ.get("SYNERGY_STORE", DEFAULT_STORE)


def current_registry() -> Registry:
    return load_registry(registry_path())
