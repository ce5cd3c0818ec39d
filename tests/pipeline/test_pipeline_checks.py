"""The asset checks on `embeddings`, on a tiny synthetic store written with pyarrow (no model runs)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from assets.checks import CHECKS, evaluate_partition, to_check_result
from storage.atomic import write_table
from storage.layout import FeatureStore
from storage.schemas import REJECTS_SCHEMA, class_embeddings_schema, embeddings_schema
from synergy.datasets import EXAMPLES_SCHEMA
from synergy.registry import parse_registry

import dagster as dg

N_CLASSES, DIM = 3, 16  # synergy-tiny-test: embed_dim 16
REGISTRY = """
datasets:
  - {key: shapes, source: "image-folder:/nowhere", classes: [a, b, c], templates: ["{c}"], extract: [fewshot, test]}
backbones:
  - {key: tiny, model: synergy-tiny-test, family: vit, pretrained: /nowhere/tiny.safetensors}
"""


class Synth:
    def __init__(self, root):
        self.store = FeatureStore(str(root))
        self.registry = parse_registry(REGISTRY)
        rng = np.random.default_rng(0)
        self.ids = [f"ex{i:03d}" for i in range(30)]
        self.splits = ["fewshot"] * 10 + ["test"] * 20
        self.labels = rng.integers(0, N_CLASSES, 30)
        ids = self.ids + ["tr0", "tr1"]
        write_table(self.store.examples("shapes"), pa.table({
            "example_id": ids, "split": self.splits + ["train", "train"],
            "label": pa.array(list(self.labels) + [0, 1], pa.int32()), "ref": ids,
            "perturbation": ["none"] * 32, "severity": pa.array([0] * 32, pa.int32())}, schema=EXAMPLES_SCHEMA))
        emb = rng.normal(size=(30, DIM)).astype(np.float32)
        self.emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        self.logits = np.eye(N_CLASSES, dtype=np.float32)[self.labels] * 10  # perfectly accurate

    def write(self, ids=None, splits=None, emb=None, logits=None, rejects=(), class_dim=DIM):
        ids = self.ids if ids is None else ids
        splits = self.splits if splits is None else splits
        emb = self.emb if emb is None else emb
        logits = self.logits if logits is None else logits
        n = len(ids)
        labels = np.resize(self.labels, n).astype(np.int32)
        preds = logits.argmax(1).astype(np.int32)
        fl = lambda a: pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1), pa.float32()), a.shape[1])  # noqa: E731
        write_table(self.store.embeddings("tiny", "shapes"), pa.table({
            "example_id": ids, "split": splits, "label": labels, "pred": preds, "correct": preds == labels,
            "confidence": np.ones(n, np.float32), "embedding": fl(emb), "logits": fl(logits)},
            schema=embeddings_schema(emb.shape[1], logits.shape[1])))
        write_table(self.store.class_embeddings("tiny", "shapes"), pa.table({
            "class_index": pa.array(range(N_CLASSES), pa.int32()), "class_name": ["a", "b", "c"],
            "embedding": fl(np.ones((N_CLASSES, class_dim), np.float32))}, schema=class_embeddings_schema(class_dim)))
        write_table(self.store.rejects("tiny", "shapes"), pa.Table.from_pylist(
            [{"example_id": i, "split": s, "path": i, "reason": "broken"} for i, s in rejects], schema=REJECTS_SCHEMA))

    def outcomes(self) -> dict:
        return {o.name: o for o in evaluate_partition(self.store, self.registry, "tiny", "shapes", batch_rows=7)}


@pytest.fixture
def synth(tmp_path):
    return Synth(tmp_path / "store")


def test_a_good_partition_passes_every_check(synth):
    synth.write()
    out = synth.outcomes()
    assert set(out) == set(CHECKS)
    assert all(o.passed for o in out.values()), {k: o.message for k, o in out.items() if not o.passed}
    assert out["row_counts"].metadata["rows_test"] == 20 and out["accuracy_above_chance"].metadata["accuracy"] == 1.0


def test_rejected_images_count_towards_the_split_sizes(synth):
    synth.write(ids=synth.ids[1:], splits=synth.splits[1:], emb=synth.emb[1:], logits=synth.logits[1:],
                rejects=[(synth.ids[0], "fewshot")])
    assert synth.outcomes()["row_counts"].passed


@pytest.mark.parametrize("defect, failing", [
    ("nan", {"finite_unit_norm"}),
    ("not_normalised", {"finite_unit_norm"}),
    ("missing_rows", {"row_counts"}),
    ("duplicate_id", {"unique_example_ids"}),  # same row count: only the id check sees it
    ("unknown_id", {"unique_example_ids"}),
    ("wide_embedding", {"embedding_width"}),
    ("class_width", {"embedding_width"}),
    ("logits_width", {"logits_width"}),
    ("chance_accuracy", {"accuracy_above_chance"}),
])
def test_each_defect_fails_its_check(synth, defect, failing):
    emb, logits, ids, splits, class_dim = synth.emb.copy(), synth.logits.copy(), list(synth.ids), list(synth.splits), DIM
    if defect == "nan":
        emb[3, 0] = np.nan
    elif defect == "not_normalised":
        emb[4] *= 1.5
    elif defect == "missing_rows":
        ids, splits, emb, logits = ids[:-2], splits[:-2], emb[:-2], logits[:-2]
    elif defect == "duplicate_id":
        ids[5] = ids[6]
    elif defect == "unknown_id":
        ids[7] = "not-in-the-examples"
    elif defect == "wide_embedding":
        emb = np.hstack([emb, np.zeros((30, 4), np.float32)])
        class_dim = 20
    elif defect == "class_width":
        class_dim = 8
    elif defect == "logits_width":
        logits = np.hstack([logits, np.zeros((30, 1), np.float32)])
    elif defect == "chance_accuracy":
        logits = np.roll(synth.logits, 1, axis=1)  # always wrong
    synth.write(ids=ids, splits=splits, emb=emb, logits=logits, class_dim=class_dim)
    out = synth.outcomes()
    assert {name for name, o in out.items() if not o.passed} == failing, {k: o.message for k, o in out.items()}


def test_missing_partition_fails_everything(synth):
    assert not any(o.passed for o in synth.outcomes().values())


def test_blocking_and_severity():
    blocking = {name for name, (b, _) in CHECKS.items() if b}
    assert blocking == {"finite_unit_norm", "row_counts", "embedding_width", "logits_width", "unique_example_ids"}
    from assets.checks import EMBEDDING_CHECK_SPECS, Outcome

    assert {s.name for s in EMBEDDING_CHECK_SPECS if s.blocking} == blocking
    assert to_check_result(Outcome("accuracy_above_chance", False, "x")).severity == dg.AssetCheckSeverity.WARN
    assert to_check_result(Outcome("row_counts", False, "x")).severity == dg.AssetCheckSeverity.ERROR
