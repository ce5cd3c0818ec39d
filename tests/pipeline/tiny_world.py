"""A tiny, training-free world for the pipeline and UI tests.

- an image-folder dataset of a few dozen generated 16x16 PNGs (train/ and test/ folders, 3 classes);
- random-weight safetensors checkpoints of the tiny test towers (`synergy-tiny-test`, a ViT, and
  `synergy-tiny-rn-test`, a ModifiedResNet), used as `pretrained:` files, so no backbone is trained;
- a registry that declares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLASSES = ("circle", "square", "cross")
TINY_MODELS = {"vit": "synergy-tiny-test", "resnet": "synergy-tiny-rn-test"}


def make_images(root: Path, train_per_class: int = 8, test_per_class: int = 4, seed: int = 0) -> Path:
    """root/{train,test}/<class>/<n>.png: a shape per class, with noise, so the pixels differ."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    masks = {"circle": (yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 25, "square": (abs(yy - 7.5) < 5) & (abs(xx - 7.5) < 5),
             "cross": (abs(yy - 7.5) < 2) | (abs(xx - 7.5) < 2)}
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c in CLASSES:
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.where(masks[c], 220, 30) + rng.integers(0, 30, size=(16, 16))
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").convert("RGB").save(folder / f"{i:03d}.png")
    return root


def make_checkpoint(model: str, path: Path, seed: int = 0) -> Path:
    """A random-weight checkpoint that open_clip loads with create_model_and_transforms(model, pretrained=path)."""
    import torch
    from safetensors.torch import save_file

    from synergy.backbones import register_model_configs
    import open_clip

    register_model_configs()
    torch.manual_seed(seed)
    net = open_clip.create_model(model, pretrained=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def registry_text(images: Path, backbones: dict[str, tuple[str, str]], datasets=("shapes",)) -> str:
    """`backbones`: key -> (open_clip model, pretrained checkpoint path)."""
    lines = ["# tiny test registry", "datasets:"]
    for d in datasets:
        lines += [f"  - key: {d}", f"    source: image-folder:{images}", f"    classes: [{', '.join(CLASSES)}]",
                  "    templates: ['a photo of a {c}.', 'a drawing of a {c}.']", "    train_size: 12",
                  "    extract: [fewshot, test]"]
    lines.append("backbones:")
    for key, (model, ckpt) in backbones.items():
        family = "resnet" if "rn" in model else "vit"
        lines += [f"  - key: {key}", f"    model: {model}", f"    family: {family}", f"    pretrained: {ckpt}"]
    return "\n".join(lines) + "\n"


@dataclass
class World:
    root: Path
    images: Path
    registry: Path
    store: Path
    checkpoints: dict[str, Path] = field(default_factory=dict)

    def write_registry(self, keys, datasets=("shapes",)) -> None:
        self.registry.write_text(registry_text(self.images, {k: (self.model(k), self.checkpoints[k]) for k in keys},
                                               datasets))

    def model(self, key: str) -> str:
        return TINY_MODELS["resnet"] if key.startswith("rn") else TINY_MODELS["vit"]


def build_world(root: Path, keys=("vit-a", "rn-b", "vit-c"), registered=("vit-a",), datasets=("shapes",)) -> World:
    world = World(root=root, images=make_images(root / "images"), registry=root / "registry.yaml",
                  store=root / "store")
    for i, key in enumerate(keys):
        world.checkpoints[key] = make_checkpoint(world.model(key), root / "ckpt" / f"{key}.safetensors", seed=i)
    world.write_registry(registered, datasets)
    return world
