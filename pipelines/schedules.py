"""The re-extraction schedule: weekly by default, it re-extracts only partitions whose fingerprint changed.

A partition's fingerprint covers everything its embeddings depend on:

| component            | recorded (last materialization of the partition)                  | current                                   |
|----------------------|-------------------------------------------------------------------|-------------------------------------------|
| weights sha256       | `weights_sha256` metadata                                         | sha256 of the checkpoint file for a local `pretrained:` path, else the `backbone_weights` info table (its data version) |
| preprocessing        | `preprocess` metadata                                             | open_clip's transforms for the model + tag, built from configs (no model, no download) |
| dataset content      | `fingerprint` of the `dataset_examples` materialization it read (Dagster's `dagster/input_event_pointer/dataset_examples` provenance tag) | `fingerprint` in the example table's Parquet footer |
| extraction code      | `dagster/code_version` provenance tag                              | `EXTRACTION_CODE_VERSION` (the asset's code_version) |

Equal fingerprints are skipped, so the UI keeps those partitions as they are (Dagster's own staleness,
from the same code and data versions, shows them up to date). A partition never extracted but whose
inputs exist is requested too. Partitions whose weights or examples are not materialized yet are left
to the registry sensor and automation.

Cron: `SYNERGY_REEXTRACT_CRON` (default `0 3 * * 1`, Mondays 03:00), timezone `SYNERGY_REEXTRACT_TZ` (UTC).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg

from pipelines.jobs import extract_job
from pipelines.partitions import BACKBONE_PARTITIONS_NAME
from pipelines.resources import SynergyResource
from storage.atomic import read_metadata
from storage.layout import FeatureStore
from synergy.registry import BackboneSpec, Registry

REEXTRACT_CRON_ENV = "SYNERGY_REEXTRACT_CRON"
DEFAULT_REEXTRACT_CRON = "0 3 * * 1"
COMPONENTS = ("weights_sha256", "preprocess", "dataset_fingerprint", "code_version")
EXAMPLES_POINTER_TAG = "dagster/input_event_pointer/dataset_examples"


def reextract_cron() -> str:
    return os.environ.get(REEXTRACT_CRON_ENV, DEFAULT_REEXTRACT_CRON).strip() or DEFAULT_REEXTRACT_CRON


def fingerprint(components: dict) -> str:
    """sha256 over the four components; a missing component makes the fingerprint differ from any other."""
    return hashlib.sha256(json.dumps({k: components.get(k) for k in COMPONENTS}, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------ current values

_SHA_CACHE: dict[tuple, str] = {}


def _file_sha256(path: Path) -> str:
    from synergy.backbones import sha256_file

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def current_weights_sha(store: FeatureStore, spec: BackboneSpec) -> str | None:
    from assets.zoo import weights_sha
    from synergy.backbones import looks_like_path

    if not spec.is_trained_here and spec.pretrained and looks_like_path(spec.pretrained):
        path = Path(spec.pretrained).expanduser()
        return _file_sha256(path) if path.is_file() else None
    return weights_sha(store, spec.key)


def current_preprocess(spec: BackboneSpec) -> str | None:
    """The eval transforms' description exactly as `LoadedBackbone.preprocess_repr` gives it, from configs only.

    Mirrors open_clip's create_model_and_transforms: defaults, merged with the pretrained tag's config
    (tags only), with the size of the image tower. None for hf-hub / local-dir models (read remotely).
    """
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    from synergy.backbones import looks_like_path, register_model_configs

    if spec.model.startswith(("hf-hub:", "local-dir:")):
        return None
    register_model_configs()
    cfg = open_clip.get_model_config(spec.model)
    if not cfg:
        return None
    pp = asdict(PreprocessCfg())
    if spec.pretrained and not spec.is_trained_here and not looks_like_path(spec.pretrained):
        tag_cfg = open_clip.get_pretrained_cfg(spec.model, spec.pretrained)
        if tag_cfg:
            pp = merge_preprocess_dict(pp, tag_cfg)
    vision = cfg.get("vision_cfg", {})
    size = vision.get("image_size", 224)
    # ModifiedResNet (layers given per stage) keeps an int; ViT and timm towers store a 2-tuple
    if not isinstance(vision.get("layers"), (list, tuple)) and isinstance(size, int):
        size = (size, size)
    pp["size"] = size
    transform = image_transform_v2(PreprocessCfg(**pp), is_train=False)
    return " | ".join(str(t).replace("\n", "") for t in getattr(transform, "transforms", [transform]))


def current_dataset_fingerprint(store: FeatureStore, dataset: str) -> str | None:
    path = store.examples(dataset)
    return read_metadata(path).get("fingerprint") if path.exists() else None


def current_code_version() -> str:
    from assets import extraction

    return extraction.EXTRACTION_CODE_VERSION


# ------------------------------------------------------------------ recorded values

def _latest(instance: dg.DagsterInstance, key: str, partition: str | None = None, storage_id: int | None = None):
    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None,
        storage_ids=[storage_id] if storage_id is not None else None), limit=1).records
    return records[0].event_log_entry.asset_materialization if records else None


def _meta_value(metadata: dict, name: str):
    value = metadata.get(name)
    return getattr(value, "value", value)


def recorded_components(instance: dg.DagsterInstance, backbone: str, dataset: str) -> dict | None:
    """The fingerprint components of a partition's latest materialization; None when never materialized."""
    partition = str(dg.MultiPartitionKey({"backbone": backbone, "dataset": dataset}))
    mat = _latest(instance, "embeddings", partition)
    if mat is None:
        return None
    tags = mat.tags or {}
    dataset_fp = None
    pointer = tags.get(EXAMPLES_POINTER_TAG)
    if pointer and pointer.isdigit():
        examples = _latest(instance, "dataset_examples", storage_id=int(pointer))
        if examples is not None:
            dataset_fp = _meta_value(examples.metadata, "fingerprint")
    return {"weights_sha256": _meta_value(mat.metadata, "weights_sha256") or None,
            "preprocess": _meta_value(mat.metadata, "preprocess"),
            "dataset_fingerprint": dataset_fp,
            "code_version": tags.get("dagster/code_version")}


# ------------------------------------------------------------------ the decision

@dataclass
class Decision:
    backbone: str
    dataset: str
    run: bool
    reason: str
    fingerprint: str | None = None

    @property
    def partition_key(self) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({"backbone": self.backbone, "dataset": self.dataset})


def decide(instance: dg.DagsterInstance, store: FeatureStore, spec: BackboneSpec, dataset: str,
           code_version: str, preprocess_cache: dict) -> Decision:
    weights = current_weights_sha(store, spec)
    dataset_fp = current_dataset_fingerprint(store, dataset)
    if weights is None or dataset_fp is None:
        missing = "weights" if weights is None else "example table"
        return Decision(spec.key, dataset, False, f"{missing} not materialized yet (left to the registry sensor)")
    recorded = recorded_components(instance, spec.key, dataset)
    if spec.key not in preprocess_cache:
        preprocess_cache[spec.key] = current_preprocess(spec)
    preprocess = preprocess_cache[spec.key]
    if preprocess is None:  # cannot be derived offline: trust the recorded one
        preprocess = (recorded or {}).get("preprocess")
    current = {"weights_sha256": weights, "preprocess": preprocess, "dataset_fingerprint": dataset_fp,
               "code_version": code_version}
    fp = fingerprint(current)
    if recorded is None:
        return Decision(spec.key, dataset, True, "never extracted", fp)
    changed = [k for k in COMPONENTS if recorded.get(k) != current[k]]
    if changed:
        return Decision(spec.key, dataset, True, "changed: " + ", ".join(changed), fp)
    return Decision(spec.key, dataset, False, "fingerprint unchanged", fp)


def plan_reextraction(instance: dg.DagsterInstance, store: FeatureStore, registry: Registry) -> list[Decision]:
    """One decision per (backbone in the instance's partitions and the registry) × dataset."""
    partitions = set(instance.get_dynamic_partitions(BACKBONE_PARTITIONS_NAME))
    code_version = current_code_version()
    cache: dict = {}
    return [decide(instance, store, spec, d, code_version, cache)
            for spec in registry.backbones if spec.key in partitions for d in registry.dataset_keys]


@dg.schedule(
    name="reextract_schedule",
    cron_schedule=reextract_cron(),
    execution_timezone=os.environ.get("SYNERGY_REEXTRACT_TZ", "UTC"),
    job=extract_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-extracts the embeddings partitions whose fingerprint (weights sha256, preprocessing, dataset "
                "fingerprint, extraction code version) changed; unchanged partitions are skipped.",
)
def reextract_schedule(context: dg.ScheduleEvaluationContext, synergy: SynergyResource):
    decisions = plan_reextraction(context.instance, synergy.store(), synergy.registry())
    chosen = [d for d in decisions if d.run]
    for d in decisions:
        context.log.info(f"{d.backbone} × {d.dataset}: {'re-extract' if d.run else 'skip'} ({d.reason})")
    if not chosen:
        return dg.SkipReason(f"all {len(decisions)} partitions up to date (fingerprints unchanged)")
    return [dg.RunRequest(partition_key=d.partition_key,
                          tags={"synergy/trigger": "reextract_schedule", "synergy/reason": d.reason[:200],
                                "synergy/fingerprint": d.fingerprint or ""})
            for d in chosen]
