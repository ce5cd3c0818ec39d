"""Test-time image corruptions for the robustness suite.

Each perturbation maps (PIL image, severity 1..3, numpy Generator) to a PIL image. They run inside
the dataset loader, so perturbed variants go through exactly the same extraction path as clean data.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

Perturbation = Callable[[Image.Image, int, np.random.Generator], Image.Image]


def gaussian_noise(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    sigma = (0.08, 0.16, 0.28)[severity - 1] * 255
    arr = np.asarray(img, dtype=np.float32)
    return Image.fromarray(np.clip(arr + rng.normal(0.0, sigma, arr.shape), 0, 255).astype(np.uint8), img.mode)


def gaussian_blur(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    radius = (0.6, 1.0, 1.6)[severity - 1] * max(img.size) / 28
    return img.filter(ImageFilter.GaussianBlur(radius))


def jpeg(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=(30, 15, 6)[severity - 1])
    buffer.seek(0)
    return Image.open(buffer).convert(img.mode)


def contrast(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance((0.5, 0.3, 0.15)[severity - 1])


def brightness(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance((1.5, 2.0, 2.6)[severity - 1])


def rotation(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    angle = (15, 30, 60)[severity - 1] * rng.choice([-1, 1])
    return img.rotate(float(angle), resample=Image.BILINEAR)


def occlusion(img: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """A black square covering 10/25/40% of the image area at a random position."""
    w, h = img.size
    side = int(round(np.sqrt((0.10, 0.25, 0.40)[severity - 1]) * min(w, h)))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    out = img.copy()
    out.paste(0 if img.mode in ("L", "I", "F") else (0,) * len(img.getbands()), (x, y, x + side, y + side))
    return out


PERTURBATIONS: dict[str, Perturbation] = {
    "noise": gaussian_noise,
    "blur": gaussian_blur,
    "jpeg": jpeg,
    "contrast": contrast,
    "brightness": brightness,
    "rotation": rotation,
    "occlusion": occlusion,
}


def apply(kind: str, img: Image.Image, severity: int, seed: int) -> Image.Image:
    """Deterministic per (example, kind, severity): the same seed always gives the same corrupted image."""
    return PERTURBATIONS[kind](img, severity, np.random.default_rng(seed))
