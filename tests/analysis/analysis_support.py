"""A synthetic feature store for the analysis tests (imported by name: `conftest` is ambiguous across test folders): small Parquet files written with pyarrow in the
store's real schemas, and a tiny registry parsed from YAML text.

Dataset keys are the demo's (`fashion-mnist`, `fashion-mnist-shift`) so that the `analysis` asset's
static dataset partitions accept them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from storage.atomic import write_table
from storage.layout import FeatureStore
from storage.schemas import EXAMPLES_SCHEMA, embeddings_schema
from storage.warehouse import connect_memory
from synergy.registry import Registry, load_registry

BASE = "fashion-mnist"
SHIFT = "fashion-mnist-shift"


def registry_yaml(backbones: dict[str, str], classes: Sequence[str], shift: dict | None = None) -> str:
    """Registry text: `backbones` maps key -> family; `shift` = {'kinds': [...], 'severities': [...]}."""
    lines = ["datasets:", f"  - key: {BASE}", "    source: fashion-mnist",
             f"    classes: [{', '.join(classes)}]", "    templates: ['a photo of a {c}.']"]
    if shift:
        lines += ["    perturbations:", f"      kinds: [{', '.join(shift['kinds'])}]",
                  f"      severities: [{', '.join(map(str, shift['severities']))}]",
                  "      test_size: 10", "      fewshot_size: 10"]
    lines.append("backbones:")
    for key, family in backbones.items():
        lines.append(f"  - {{key: {key}, model: RN50, family: {family}, pretrained: openai}}")
    return "\n".join(lines) + "\n"


def _perturbation_of(example_id: str) -> tuple[str, int]:
    if "@" not in example_id:
        return "none", 0
    kind, severity = example_id.split("@", 1)[1].rsplit("-", 1)
    return kind, int(severity)


@dataclass
class SynthStore:
    root: Path
    backbones: dict[str, str]
    classes: tuple[str, ...]
    shift: dict | None = None
    written: set = field(default_factory=set)

    def __post_init__(self):
        self.registry_path = self.root / "registry.yaml"
        self.registry_path.write_text(registry_yaml(self.backbones, self.classes, self.shift))
        self.store = FeatureStore(str(self.root / "store"))

    @property
    def registry(self) -> Registry:
        return load_registry(self.registry_path)

    def examples(self, dataset: str, ids: Sequence[str], labels: Sequence[int], splits: Sequence[str] | str = "test"):
        splits = [splits] * len(ids) if isinstance(splits, str) else list(splits)
        kinds = [_perturbation_of(i) for i in ids]
        write_table(self.store.examples(dataset), pa.table({
            "example_id": list(ids), "split": splits, "label": pa.array(labels, pa.int32()),
            "ref": [f"ref:{i}" for i in ids], "perturbation": [k for k, _ in kinds],
            "severity": pa.array([s for _, s in kinds], pa.int32())}, schema=EXAMPLES_SCHEMA))

    def predictions(self, backbone: str, dataset: str, ids: Sequence[str], labels: Sequence[int],
                    preds: Sequence[int], splits: Sequence[str] | str = "test", embeddings: np.ndarray | None = None,
                    dim: int = 4, seed: int = 0):
        """One backbone x dataset partition. Writes the example table too on first use of `dataset`."""
        n, c = len(ids), len(self.classes)
        splits = [splits] * n if isinstance(splits, str) else list(splits)
        if dataset not in self.written:
            self.examples(dataset, ids, labels, splits)
            self.written.add(dataset)
        if embeddings is None:
            embeddings = np.random.default_rng(seed).normal(size=(n, dim))
        embeddings = np.asarray(embeddings, np.float32)
        preds = np.asarray(preds, np.int32)
        labels = np.asarray(labels, np.int32)
        logits = np.zeros((n, c), np.float32)
        logits[np.arange(n), preds] = 10.0
        schema = embeddings_schema(embeddings.shape[1], c)
        write_table(self.store.embeddings(backbone, dataset), pa.table({
            "example_id": list(ids), "split": splits, "label": labels, "pred": preds, "correct": preds == labels,
            "confidence": np.full(n, 0.9, np.float32),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), embeddings.shape[1]),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), c)}, schema=schema))

    def connect(self):
        return connect_memory(self.store, self.registry)


def rows(con, sql: str, params: dict | None = None) -> list[dict]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


# ---------------------------------------------------------------- the hand-worked example
# 3 backbones x 6 test examples, 4 classes (class 3 has no test example).
#   id      e0 e1 e2 e3 e4 e5
#   label    0  1  2  0  1  2
#   bb-a     0  1  2  1  1  0    right: e0 e1 e2 e4      (4/6)
#   bb-b     0  2  2  0  0  0    right: e0 e2 e3         (3/6)
#   bb-c     1  1  0  0  2  1    right: e1 e3            (2/6)
HAND_IDS = ["e0", "e1", "e2", "e3", "e4", "e5"]
HAND_LABELS = [0, 1, 2, 0, 1, 2]
HAND_PREDS = {"bb-a": [0, 1, 2, 1, 1, 0], "bb-b": [0, 2, 2, 0, 0, 0], "bb-c": [1, 1, 0, 0, 2, 1]}
HAND_FAMILIES = {"bb-a": "resnet", "bb-b": "resnet", "bb-c": "vit"}

