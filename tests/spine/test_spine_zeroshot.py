import numpy as np
import torch
import torch.nn.functional as F

from synergy.backbones import load_backbone
from synergy.registry import BackboneSpec
from synergy.zeroshot import class_embeddings, zero_shot_logits


def test_class_embeddings_equal_renormalised_mean_of_prompt_embeddings():
    torch.manual_seed(0)
    loaded = load_backbone(BackboneSpec("t", "synergy-tiny-test", "vit", pretrained="random"), weights="random",
                           device="cpu")
    classes, templates = ("cat", "dog", "car"), ("a photo of a {c}.", "a drawing of a {c}.")
    got = class_embeddings(loaded, classes, templates)
    with torch.no_grad():
        expected = []
        for c in classes:
            txt = F.normalize(loaded.model.encode_text(loaded.tokenizer([t.format(c=c) for t in templates])), dim=-1)
            expected.append(F.normalize(txt.mean(0), dim=-1).numpy())
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)
    assert got.shape == (3, loaded.embed_dim)


def test_logits_are_cosine_times_100():
    img = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    cls = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(zero_shot_logits(img, cls), [[100, 0], [60, 80]], atol=1e-4)
