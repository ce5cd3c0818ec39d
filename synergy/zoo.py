"""The offline demo zoo: train small open_clip CLIP models on one dataset, identically for every tower.

No registry package ships pretrained CLIP weights, so the demo trains its own. Every backbone gets
the same images, the same objective (cross-entropy of logit_scale·cos(image, class prompt) over
the class prompts, with open_clip's learnable logit scale) and the same budget, with fixed seeds.
These are CLIP-objective models trained on the classes they are later evaluated on: a stand-in
for pretrained weights, not zero-shot transfer.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from synergy.datasets import ExampleImages, collate_images
from synergy.registry import BackboneSpec, DatasetSpec, TrainSpec

Progress = Callable[[str], None]

TRAIN_TEMPLATES_MAX = 4  # prompts per class per step; enough variety, cheap text tower


def _loader(images, batch_size: int, shuffle: bool, seed: int, num_workers: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=shuffle, generator=generator,
                                       num_workers=num_workers, collate_fn=collate_images,
                                       persistent_workers=False, drop_last=shuffle)


def preprocess_all(images: ExampleImages, num_workers: int = 2):
    """Run the eval preprocessing once over the training images into one tensor.

    The demo's images are tiny, so holding them preprocessed in memory (50k x 3x32x32 floats,
    ~600 MB) is cheaper than decoding every image again in every epoch.
    """
    import torch

    xs, rows = [], []
    for r, x, rejects in _loader(images, 1024, shuffle=False, seed=0, num_workers=num_workers):
        if rejects:
            raise ValueError(f"{len(rejects)} training images could not be read, e.g. {rejects[0]}")
        xs.append(x)
        rows.append(r)
    return torch.cat(xs), torch.cat(rows)


def init_tower(spec: BackboneSpec, device: str = "auto"):
    """A randomly initialised model for a backbone trained here, seeded by its recipe (`train.seed`).

    The initial weights are part of the recipe. Seeding only inside `train_clip` left them to torch's
    global generator as whatever ran earlier in the process had left it, so the first tower of a
    `make demo` came out different from run to run (rn-xs: 0.7833 to 0.8006 test accuracy).
    """
    import torch

    from synergy.backbones import load_backbone

    torch.manual_seed(spec.train.seed if spec.train else 0)
    return load_backbone(spec, weights="random", device=device)


def train_clip(loaded, dataset: DatasetSpec, images: ExampleImages, labels: np.ndarray, train: TrainSpec,
               num_workers: int = 2, progress: Progress = print) -> dict:
    """Train `loaded.model` in place; return training stats. Re-estimates BatchNorm statistics at the end."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(train.seed)
    model, device = loaded.model, loaded.device
    model.train()
    labels_t = torch.as_tensor(np.array(labels), dtype=torch.long)
    templates = dataset.templates[:TRAIN_TEMPLATES_MAX]
    prompts = loaded.tokenizer([t.format(c=c) for c in dataset.classes for t in templates]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    pixels, _ = preprocess_all(images, num_workers)
    progress(f"preprocessed {len(pixels)} training images")
    generator = torch.Generator().manual_seed(train.seed)
    batches_per_epoch = len(pixels) // train.batch_size
    steps_total = train.epochs * batches_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=train.lr, total_steps=steps_total,
                                                    pct_start=0.1)
    start, step, seen, running = time.perf_counter(), 0, 0, []
    for epoch in range(train.epochs):
        order = torch.randperm(len(pixels), generator=generator)
        for b in range(batches_per_epoch):
            rows = order[b * train.batch_size:(b + 1) * train.batch_size]
            x, y = pixels[rows].to(device), labels_t[rows].to(device)
            img = F.normalize(model.encode_image(x), dim=-1)
            txt = F.normalize(model.encode_text(prompts), dim=-1)
            cls = F.normalize(txt.view(len(dataset.classes), len(templates), -1).mean(1), dim=-1)
            logits = model.logit_scale.exp() * img @ cls.T
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():  # CLIP's clamp keeps the scale from exploding
                model.logit_scale.clamp_(0, np.log(100))
            step, seen = step + 1, seen + len(y)
            running.append(loss.item())
            if step % max(1, steps_total // 10) == 0 or step == steps_total:
                progress(f"epoch {epoch + 1}/{train.epochs} step {step}/{steps_total} "
                         f"loss {np.mean(running[-20:]):.3f} ({seen / (time.perf_counter() - start):.0f} img/s)")
    seconds = time.perf_counter() - start
    recalibrated = recalibrate_batchnorm(loaded, pixels, seed=train.seed)
    if recalibrated:
        progress(f"re-estimated BatchNorm statistics of {recalibrated} layers")
    model.eval()
    return {"train_steps": step, "train_images": seen, "train_seconds": round(seconds, 2),
            "final_loss": float(np.mean(running[-20:])), "logit_scale": float(model.logit_scale.exp().item()),
            "batchnorm_layers_recalibrated": recalibrated}


def recalibrate_batchnorm(loaded, pixels, n_images: int = 10_000, seed: int = 0) -> int:
    """Recompute BatchNorm running statistics with the final weights (train mode, no gradient).

    After a short training run the running averages lag far behind the weights; left stale they
    cost ResNets several points and fake "diversity" between families.
    """
    import torch

    bns = [m for m in loaded.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the whole pass
    loaded.model.train()
    rng = np.random.default_rng(seed)
    subset = torch.as_tensor(np.sort(rng.choice(len(pixels), min(n_images, len(pixels)), replace=False)))
    with torch.no_grad():
        for chunk in subset.split(256):
            loaded.model.encode_image(pixels[chunk].to(loaded.device))
    loaded.model.eval()
    return len(bns)
