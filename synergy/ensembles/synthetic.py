"""Synthetic ensemble data with a known, input-predictable oracle gap (for tests and demos).

Every backbone's embedding carries one shared scalar feature f in its first coordinate.
With two backbones, backbone 0 is right exactly when f > 0 and backbone 1 exactly when
f <= 0; a wrong backbone is confidently wrong (a random wrong class gets the margin). So the
oracle is 1.0, static averaging sits near chance between the two candidate classes (about
0.5), and only a method that reads f from the embeddings can recover the gap.
"""

from __future__ import annotations

import numpy as np

from synergy.ensembles.base import EnsembleData


def make_switching_data(n: int, n_classes: int = 4, widths: tuple[int, int] = (16, 8),
                        margin: float = 10.0, base: float = 20.0, noise: float = 1.0,
                        embed_noise: float = 0.3, seed: int = 0,
                        id_prefix: str = "ex") -> EnsembleData:
    """n examples, two backbones of the given embedding widths, zero-shot-like logits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    f = rng.normal(size=n)
    right = [f > 0, f <= 0]
    embeddings, logits = [], []
    for width, is_right in zip(widths, right):
        e = rng.normal(scale=embed_noise, size=(n, width))
        e[:, 0] = f
        embeddings.append((e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32))
        z = base + noise * rng.normal(size=(n, n_classes))
        wrong = (labels + rng.integers(1, n_classes, size=n)) % n_classes
        z[np.arange(n), np.where(is_right, labels, wrong)] += margin
        logits.append(z.astype(np.float32))
    ids = np.array([f"{id_prefix}{i}" for i in range(n)])
    return EnsembleData(embeddings, logits, labels, ids, ("A", "B"))


def make_class_data(n: int, n_classes: int = 5, widths: tuple[int, ...] = (12, 8, 16),
                    noise: tuple[float, ...] = (2.0, 2.5, 3.0), text_noise: float = 1.0,
                    world_seed: int = 0, seed: int = 0, id_prefix: str = "ex") -> EnsembleData:
    """Clustered embeddings with imperfect zero-shot heads, one backbone per width.

    Backbone b embeds class c near a unit centroid mu_bc (isotropic noise of scale noise[b]
    before L2-normalisation) and its "text" class embedding is mu_bc perturbed by
    `text_noise`; logits are 100 * cos. `world_seed` fixes centroids and text heads, so draws
    with different `seed` (e.g. a fit pool and a test set) come from the same backbones.
    """
    world = np.random.default_rng(world_seed)
    rng = np.random.default_rng(seed)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    labels = rng.integers(0, n_classes, size=n)
    embeddings, logits = [], []
    for width, sigma in zip(widths, noise):
        mu = unit(world.normal(size=(n_classes, width)))
        text = unit(mu + text_noise * world.normal(size=mu.shape) / np.sqrt(width))
        e = unit(mu[labels] + sigma * rng.normal(size=(n, width)) / np.sqrt(width))
        embeddings.append(e.astype(np.float32))
        logits.append((100.0 * e @ text.T).astype(np.float32))
    ids = np.array([f"{id_prefix}{i}" for i in range(n)])
    return EnsembleData(embeddings, logits, labels, ids, tuple(f"w{w}" for w in widths))
