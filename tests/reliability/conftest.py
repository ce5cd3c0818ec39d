"""Fixtures for the reliability tests: a tiny checkpoint, image folders with bad files, a small store."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_support import TINY_MODEL, FolderStore, registry_yaml, stop_started, write_good_images


@pytest.fixture(autouse=True)
def _no_helper_outlives_its_test():
    """Kill (by their own handles) any helper processes a failing test left running."""
    yield
    stop_started()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random synergy-tiny-test model saved as safetensors: a 'local checkpoint' backbone."""
    import torch
    from safetensors.torch import save_file

    from synergy.backbones import load_backbone
    from synergy.registry import BackboneSpec

    torch.manual_seed(0)
    loaded = load_backbone(BackboneSpec(key="tiny", model=TINY_MODEL, family="vit"), device="cpu", weights="random")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, str(path))
    return path


@pytest.fixture
def folder_store(tmp_path, tiny_checkpoint):
    """An image-folder dataset of 2 classes x 10 noise images, a tiny local-checkpoint backbone, an empty store."""
    images = tmp_path / "images"
    classes = ["cat", "dog"]
    write_good_images(images, classes, 10)
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_yaml(images, tiny_checkpoint, classes))
    return FolderStore(tmp_path, images, registry, tmp_path / "store")
