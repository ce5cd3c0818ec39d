"""A tiny synthetic feature store for the `ensembles` asset: 3 backbones, 5 classes, a `fewshot`
pool and a `test` split of the shifted dataset `fashion-mnist-shift` (a key of the demo registry,
so the asset's static partitions accept it), with clean and 'noise-1' test examples.

Features come from synergy.ensembles.synthetic.make_class_data (clustered embeddings, imperfect
zero-shot heads), so every method has something to learn; backbone costs are written as the
extraction asset writes them (the footer of `backbones/backbone=<b>/data.parquet`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from storage.atomic import write_table
from storage.layout import FeatureStore
from storage.schemas import EXAMPLES_SCHEMA, embeddings_schema
from synergy.ensembles.synthetic import make_class_data

DATASET = "fashion-mnist-shift"
CLASSES = ("c0", "c1", "c2", "c3", "c4")
BACKBONES = {"bb-a": ("resnet", 0.02, 1.0), "bb-b": ("resnet", 0.01, 0.5), "bb-c": ("vit", 0.03, 2.0)}
WIDTHS = (12, 8, 16)

# Small enough for seconds: two ks, two seeds, short NLC / MoE fits.
FAST_CONFIG = {
    "ks": [1, 2], "seeds": 2, "ablation_ks": [1, 2], "nlc_steps": 15, "prototype_steps": 15, "moe_steps": 15,
    "probe_max_iter": 200, "fraction": 0.2, "subset_seeds": 1, "cascade_thresholds": [0.0, 0.9, 1.0],
}

REGISTRY = """datasets:
  - key: fashion-mnist
    source: fashion-mnist
    classes: [{classes}]
    templates: ['a photo of a {{c}}.']
    perturbations:
      kinds: [noise]
      severities: [1]
      test_size: 10
      fewshot_size: 10
backbones:
{backbones}
"""


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1).astype(np.float32)), values.shape[1])


@dataclass
class EnsembleStore:
    root: Path
    registry_path: Path
    store: FeatureStore
    fit_ids: list[str]
    test_ids: list[str]
    n_classes: int = len(CLASSES)

    @property
    def backbones(self) -> list[str]:
        return sorted(BACKBONES)


def build_store(root: Path, n_fit: int = 200, n_test: int = 150) -> EnsembleStore:
    registry_path = root / "registry.yaml"
    registry_path.write_text(REGISTRY.format(
        classes=", ".join(CLASSES),
        backbones="\n".join(f"  - {{key: {b}, model: RN50, family: {f}, pretrained: openai}}"
                            for b, (f, _, _) in BACKBONES.items())))
    store = FeatureStore(str(root / "store"))
    widths = dict(zip(BACKBONES, WIDTHS))
    fit = make_class_data(n_fit, n_classes=len(CLASSES), widths=WIDTHS, seed=1, id_prefix="train-")
    test = make_class_data(n_test, n_classes=len(CLASSES), widths=WIDTHS, seed=2, id_prefix="test-")
    # the second half of the test split plays the perturbed twins of the first half
    half = n_test // 2
    test_ids = [f"test-{i}" if i < half else f"test-{i - half}@noise-1" for i in range(n_test)]
    fit_ids = [f"train-{i}" for i in range(n_fit)]
    ids = fit_ids + test_ids
    splits = ["fewshot"] * n_fit + ["test"] * n_test
    labels = np.concatenate([fit.labels, test.labels]).astype(np.int32)
    write_table(store.examples(DATASET), pa.table({
        "example_id": ids, "split": splits, "label": labels, "ref": [f"ref:{i}" for i in ids],
        "perturbation": ["noise" if "@" in i else "none" for i in ids],
        "severity": pa.array([1 if "@" in i else 0 for i in ids], pa.int32())}, schema=EXAMPLES_SCHEMA))
    for j, (b, (_, gflops, ms)) in enumerate(BACKBONES.items()):
        emb = np.concatenate([fit.embeddings[j], test.embeddings[j]])
        logits = np.concatenate([fit.logits[j], test.logits[j]])
        preds = logits.argmax(1).astype(np.int32)
        z = logits - logits.max(1, keepdims=True)
        conf = (1.0 / np.exp(z).sum(1)).astype(np.float32)
        write_table(store.embeddings(b, DATASET), pa.table({
            "example_id": ids, "split": splits, "label": labels, "pred": preds, "correct": preds == labels,
            "confidence": conf, "embedding": _fixed(emb), "logits": _fixed(logits)},
            schema=embeddings_schema(widths[b], len(CLASSES))))
        write_table(store.backbone_info(b), pa.table({"model": ["RN50"]}),
                    {"image_gflops": gflops, "ms_per_image": ms, "embed_dim": widths[b]})
    return EnsembleStore(root, registry_path, store, fit_ids, test_ids)
