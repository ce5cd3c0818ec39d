"""Extraction: stream images through a frozen backbone into embeddings, logits and predictions.

Yields one batch at a time so the caller can write row groups as they come: memory stays at one
batch whatever the dataset size. A DataLoader with workers decodes and preprocesses the next
batches while the model runs on the current one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from synergy.datasets import ExampleImages, collate_images
from synergy.zeroshot import softmax_max, zero_shot_logits


@dataclass
class ExtractedBatch:
    rows: np.ndarray  # indices into the ExampleImages rows
    embeddings: np.ndarray  # (n, dim) float32, L2-normalised
    logits: np.ndarray  # (n, n_classes) float32 at scale 100
    preds: np.ndarray
    confidence: np.ndarray
    rejects: list[tuple[int, str]]  # (row, reason) of unreadable images
    seconds: float


def extract(loaded, class_emb: np.ndarray, images: ExampleImages, batch_size: int = 256,
            num_workers: int = 2) -> Iterator[ExtractedBatch]:
    import torch
    import torch.nn.functional as F

    loader = torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=collate_images, pin_memory=loaded.device == "cuda",
                                         prefetch_factor=4 if num_workers else None)
    use_amp = loaded.device == "cuda"
    for rows, x, rejects in loader:
        start = time.perf_counter()
        if len(rows) == 0:
            yield ExtractedBatch(rows.numpy(), np.empty((0, class_emb.shape[1]), np.float32),
                                 np.empty((0, class_emb.shape[0]), np.float32), np.empty(0, np.int32),
                                 np.empty(0, np.float32), rejects, 0.0)
            continue
        with torch.no_grad(), torch.autocast("cuda", enabled=use_amp):
            emb = loaded.model.encode_image(x.to(loaded.device, non_blocking=True))
        emb = F.normalize(emb.float(), dim=-1).cpu().numpy().astype(np.float32)
        logits = zero_shot_logits(emb, class_emb)
        yield ExtractedBatch(rows=rows.numpy(), embeddings=emb, logits=logits,
                             preds=logits.argmax(axis=1).astype(np.int32), confidence=softmax_max(logits),
                             rejects=rejects, seconds=time.perf_counter() - start)
