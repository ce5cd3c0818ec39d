"""Zero-shot heads: class embeddings from prompt ensembles, and logits at OpenAI's scale of 100."""

from __future__ import annotations

import numpy as np

LOGIT_SCALE = 100.0


def class_embeddings(loaded, classes: tuple[str, ...], templates: tuple[str, ...]) -> np.ndarray:
    """(n_classes, dim) float32: per class, the renormalised mean of normalised prompt embeddings.

    Uses open_clip's build_zero_shot_classifier, which does exactly that averaging.
    """
    import torch
    from open_clip import build_zero_shot_classifier

    formatters = [(lambda c, t=t: t.format(c=c)) for t in templates]
    with torch.no_grad():
        weights = build_zero_shot_classifier(loaded.model, tokenizer=loaded.tokenizer, classnames=list(classes),
                                             templates=formatters, num_classes_per_batch=10,
                                             device=loaded.device, use_tqdm=False)
    return weights.T.float().cpu().numpy().astype(np.float32)


def zero_shot_logits(image_embeddings: np.ndarray, class_emb: np.ndarray) -> np.ndarray:
    return (LOGIT_SCALE * image_embeddings @ class_emb.T).astype(np.float32)


def softmax_max(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    return (probs.max(axis=1) / probs.sum(axis=1)).astype(np.float32)
