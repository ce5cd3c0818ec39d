"""Stage 3: per-backbone × per-dataset embeddings, zero-shot logits and predictions, streamed to Parquet."""


import time
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets.datasets import dataset_examples
from assets.zoo import backbone_weights
from pipelines.instance import EXTRACTION_POOL
from pipelines.partitions import backbone_dataset_key, backbone_dataset_partitions, by_backbone, by_dataset
from pipelines.resources import SynergyResource
from storage.atomic import atomic_parquet, write_table
from storage.schemas import REJECTS_SCHEMA, class_embeddings_schema, embeddings_schema
from synergy.backbones import load_backbone
from synergy.datasets import ExampleImages
from synergy.errors import DatasetError, StoreError
from synergy.extract import extract
from synergy.zeroshot import LOGIT_SCALE, class_embeddings

# Bump when the extraction's output for the same inputs changes; part of every partition's fingerprint.
EXTRACTION_CODE_VERSION = "extract-v1"
DEFAULT_MAX_REJECT_SHARE = 0.01


def _fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def run_extraction(context, synergy: SynergyResource, backbone: str, dataset: str) -> dict:
    """Extract one partition; return its metadata. Shared by the asset and nothing else."""
    registry, store = synergy.registry(), synergy.store()
    b_spec, d_spec = registry.backbone(backbone), registry.dataset(dataset)
    examples_path = store.examples(dataset)
    if not examples_path.exists():
        raise StoreError(f"no example table for {dataset!r} at {examples_path}: materialize dataset_examples first")
    examples = pq.read_table(str(examples_path))
    examples = examples.filter(pc.is_in(examples["split"], pa.array(list(d_spec.extract_splits))))
    loaded = load_backbone(b_spec, checkpoint=store.checkpoint(backbone).path if b_spec.is_trained_here else None,
                           device=synergy.device)
    class_emb = class_embeddings(loaded, d_spec.classes, d_spec.templates)
    base_meta = {"backbone": backbone, "dataset": dataset, "model": b_spec.model,
                 "pretrained": b_spec.pretrained or "trained-here", "weights_sha256": loaded.weights_sha256,
                 "preprocess": loaded.preprocess_repr, "embed_dim": loaded.embed_dim,
                 "n_classes": d_spec.n_classes, "logit_scale": LOGIT_SCALE, "code_version": EXTRACTION_CODE_VERSION,
                 "device": loaded.device}
    write_table(store.class_embeddings(backbone, dataset), pa.table({
        "class_index": pa.array(np.arange(d_spec.n_classes), pa.int32()),
        "class_name": list(d_spec.classes), "embedding": _fixed_list(class_emb)},
        schema=class_embeddings_schema(loaded.embed_dim)), base_meta)

    ids = examples["example_id"].to_numpy(zero_copy_only=False)
    splits = examples["split"].to_numpy(zero_copy_only=False)
    labels = examples["label"].to_numpy()
    refs = examples["ref"].to_pylist()
    images = ExampleImages(d_spec, refs, list(ids), loaded.preprocess)
    schema = embeddings_schema(loaded.embed_dim, d_spec.n_classes)
    rejects: list[dict] = []
    n_total, start, next_log = len(ids), time.perf_counter(), 0.1
    with atomic_parquet(store.embeddings(backbone, dataset), schema, base_meta) as writer:
        for batch in extract(loaded, class_emb, images, synergy.batch_size, synergy.num_workers):
            rejects += [{"example_id": ids[i], "split": splits[i], "path": reject_path(d_spec, refs[i]), "reason": r}
                        for i, r in batch.rejects]
            if len(batch.rows):
                rows = batch.rows
                writer.write(pa.table({
                    "example_id": ids[rows], "split": splits[rows], "label": labels[rows].astype(np.int32),
                    "pred": batch.preds, "correct": batch.preds == labels[rows], "confidence": batch.confidence,
                    "embedding": _fixed_list(batch.embeddings), "logits": _fixed_list(batch.logits)}))
            done = (writer.rows + len(rejects)) / max(n_total, 1)
            if done >= next_log:
                context.log.info(f"{backbone} × {dataset}: {writer.rows + len(rejects)}/{n_total} images "
                                 f"({writer.rows / (time.perf_counter() - start):.0f} img/s)")
                next_log += 0.1
        check_rejects(rejects, n_total, synergy)
        seconds = time.perf_counter() - start
        writer.metadata.update({"rows": writer.rows, "rejects": len(rejects), "seconds": round(seconds, 2),
                                "images_per_s": round(writer.rows / max(seconds, 1e-9), 1),
                                "rows_by_split": {s: int((splits == s).sum()) for s in d_spec.extract_splits}})
        meta = dict(writer.metadata)
    write_table(store.rejects(backbone, dataset), pa.Table.from_pylist(rejects, schema=REJECTS_SCHEMA), base_meta)
    return meta


def reject_path(d_spec, ref: str) -> str:
    """Where a user finds a rejected image: the file for an image folder, the source's reference otherwise."""
    ref = ref.split("|", 1)[0]  # drop the `|kind|severity` of a shifted variant
    kind, _, root = d_spec.source.partition(":")
    if kind == "image-folder":
        return str(Path(root).expanduser() / ref)
    return ref


def check_rejects(rejects: list[dict], n_total: int, synergy: SynergyResource) -> None:
    """Too many unreadable images means a broken dataset, not a few bad files: stop before anything is written.

    Called inside the atomic write, so a failure leaves the previous version of the partition (or none).
    """
    limit = float(synergy.max_reject_share)
    if not 0.0 <= limit <= 1.0:
        raise DatasetError(f"max_reject_share must lie between 0 and 1, got {limit}")
    if n_total == 0:
        raise DatasetError("the splits to extract hold no examples: check the dataset's `extract` splits and sizes")
    if len(rejects) / n_total > limit:
        first = "; ".join(f"{r['path']} ({r['reason']})" for r in rejects[:5])
        raise DatasetError(
            f"{len(rejects)} of {n_total} images ({len(rejects) / n_total:.1%}) could not be read, above the limit "
            f"of {limit:.1%} (max_reject_share); nothing was written. First {min(len(rejects), 5)}: {first}. "
            "Fix or remove those files, or raise max_reject_share in the `synergy` resource config.")


@dg.asset(
    partitions_def=backbone_dataset_partitions,
    deps=[dg.AssetDep(backbone_weights, partition_mapping=by_backbone),
          dg.AssetDep(dataset_examples, partition_mapping=by_dataset)],
    group_name="features", kinds={"parquet", "pytorch"}, code_version=EXTRACTION_CODE_VERSION,
    pool=EXTRACTION_POOL,
)
def embeddings(context: dg.AssetExecutionContext, synergy: SynergyResource) -> dg.MaterializeResult:
    """L2-normalised image embeddings, zero-shot logits (scale 100) and predictions of one backbone on one dataset."""
    synergy.setup_torch()
    backbone, dataset = backbone_dataset_key(context)
    meta = run_extraction(context, synergy, backbone, dataset)
    return dg.MaterializeResult(metadata={
        "rows": meta["rows"], "rejects": meta["rejects"], "images_per_s": meta["images_per_s"],
        "model": meta["model"], "pretrained": meta["pretrained"], "weights_sha256": meta["weights_sha256"] or "",
        "embed_dim": meta["embed_dim"], "n_classes": meta["n_classes"], "preprocess": meta["preprocess"],
        "device": meta["device"],
        "path": dg.MetadataValue.path(str(synergy.store().embeddings(backbone, dataset).path)),
    })
