"""Extraction throughput: images/s of the image towers through synergy.extract, random weights.

Real architectures (RN50, ViT-B-32) show what a real zoo costs on this machine; the demo towers
show what `make demo` spends. Weights do not change speed, so random weights are used.

    .venv/bin/python benchmarks/bench_extraction.py [--images 64] [--models RN50,ViT-B-32,...]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from PIL import Image

from synergy.backbones import load_backbone
from synergy.extract import extract
from synergy.registry import BackboneSpec, DatasetSpec


class _Synthetic:
    """Random RGB images as a Source, so the benchmark needs no dataset."""

    def __init__(self, size: int):
        self.size = size

    def load(self, ref: str) -> Image.Image:
        rng = np.random.default_rng(int(ref))
        return Image.fromarray(rng.integers(0, 255, (self.size, self.size, 3), dtype=np.uint8))


def bench(model: str, n_images: int, batch_size: int, num_workers: int) -> dict:
    from synergy.datasets import ExampleImages

    loaded = load_backbone(BackboneSpec("bench", model, "other", pretrained="random"), weights="random")
    spec = DatasetSpec("bench", "synthetic", ("a", "b"), ("{c}",))
    class_emb = np.eye(2, loaded.embed_dim, dtype=np.float32)
    images = ExampleImages(spec, [str(i) for i in range(n_images)], [str(i) for i in range(n_images)],
                           loaded.preprocess, source=_Synthetic(loaded.image_size))
    # warm-up batch, not timed
    next(iter(extract(loaded, class_emb, ExampleImages(spec, ["0"] * 2, ["0"] * 2, loaded.preprocess,
                                                       source=_Synthetic(loaded.image_size)), 2, 0)))
    start = time.perf_counter()
    rows = sum(len(b.rows) for b in extract(loaded, class_emb, images, batch_size, num_workers))
    seconds = time.perf_counter() - start
    return {"model": model, "device": loaded.device, "images": rows, "batch_size": batch_size,
            "images_per_s": round(rows / seconds, 1), "image_params_m": round(loaded.image_params / 1e6, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="synergy-rn-xs,synergy-rn-s,synergy-vit-p4,synergy-vit-p8,RN50,ViT-B-32")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--demo-images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for model in args.models.split(","):
        n = args.demo_images if model.startswith("synergy-") else args.images
        bs = 256 if model.startswith("synergy-") else args.batch_size
        print(json.dumps(bench(model, n, bs, args.workers)), flush=True)


if __name__ == "__main__":
    main()
