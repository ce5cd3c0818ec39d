"""Arrow schemas of the feature store's tables. Widths are fixed per partition (FixedSizeList)."""

from __future__ import annotations

import pyarrow as pa

from synergy.datasets import EXAMPLES_SCHEMA

__all__ = ["EXAMPLES_SCHEMA", "embeddings_schema", "class_embeddings_schema", "BACKBONE_INFO_SCHEMA",
           "REJECTS_SCHEMA"]


def embeddings_schema(dim: int, n_classes: int) -> pa.Schema:
    """One row per (example, backbone, dataset): L2-normalised embedding, zero-shot logits at scale 100."""
    return pa.schema([
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("pred", pa.int32(), nullable=False),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),  # max softmax probability of the logits
        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        pa.field("logits", pa.list_(pa.float32(), n_classes), nullable=False),
    ])


def class_embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("class_index", pa.int32(), nullable=False),
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
    ])


BACKBONE_INFO_SCHEMA = pa.schema([
    pa.field("model", pa.string()),
    pa.field("pretrained", pa.string()),
    pa.field("family", pa.string()),
    pa.field("weights_path", pa.string()),
    pa.field("weights_sha256", pa.string()),
    pa.field("embed_dim", pa.int32()),
    pa.field("image_size", pa.int32()),
    pa.field("image_params", pa.int64()),
    pa.field("image_gflops", pa.float64()),
    pa.field("ms_per_image", pa.float64()),
])

REJECTS_SCHEMA = pa.schema([
    pa.field("example_id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
])
