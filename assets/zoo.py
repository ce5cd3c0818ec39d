"""Stage 2: every backbone's weights. Demo entries are trained here; pretrained entries are resolved.

Either way the result is a weights file open_clip loads with create_model_and_transforms, and a
one-row info table (sha256, size, cost) that the warehouse joins in.
"""


import time

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.partitions import backbone_partitions
from pipelines.resources import SynergyResource
from storage.atomic import atomic_path, write_table
from storage.schemas import BACKBONE_INFO_SCHEMA
from synergy.backbones import image_gflops, load_backbone, resolve_weights, sha256_file
from synergy.datasets import ExampleImages, build_examples


def _time_forward(loaded, n: int = 64, repeats: int = 3) -> float:
    """Milliseconds per image of the image tower on this machine (batch of n, best of `repeats`)."""
    import torch

    x = torch.zeros(n, 3, loaded.image_size, loaded.image_size, device=loaded.device)
    best = float("inf")
    with torch.no_grad():
        loaded.model.encode_image(x[:2])
        for _ in range(repeats):
            start = time.perf_counter()
            loaded.model.encode_image(x)
            if loaded.device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return 1000 * best / n


def train_demo_backbone(context, synergy: SynergyResource, spec) -> tuple[str, dict]:
    """Train one demo tower with the shared budget and save it as a safetensors checkpoint."""
    from safetensors.torch import save_file

    from synergy.zoo import init_tower, train_clip

    registry, store = synergy.registry(), synergy.store()
    dataset = registry.dataset(spec.train.dataset)
    examples_path = store.examples(dataset.key)
    examples = pq.read_table(str(examples_path)) if examples_path.exists() else build_examples(dataset)
    train = examples.filter(pc.equal(examples["split"], "train"))
    if spec.train.max_images:
        train = train.slice(0, spec.train.max_images)
    loaded = init_tower(spec, device=synergy.device)
    images = ExampleImages(dataset, train["ref"].to_pylist(), train["example_id"].to_pylist(), loaded.preprocess)
    context.log.info(f"training {spec.key} ({spec.model}) on {train.num_rows} images of {dataset.key}")
    stats = train_clip(loaded, dataset, images, train["label"].to_numpy(), spec.train,
                       num_workers=synergy.num_workers, progress=context.log.info)
    target = store.checkpoint(spec.key)
    with atomic_path(target) as tmp:
        save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, str(tmp))
    return str(target.path), stats


@dg.asset(partitions_def=backbone_partitions, group_name="features", kinds={"pytorch"},
          code_version="weights-v1")
def backbone_weights(context: dg.AssetExecutionContext, synergy: SynergyResource) -> dg.MaterializeResult:
    """Weights of one backbone: trained by the demo zoo, or an open_clip pretrained tag / local file."""
    synergy.setup_torch()
    spec = synergy.registry().backbone(context.partition_key)
    stats: dict = {}
    if spec.is_trained_here:
        path, stats = train_demo_backbone(context, synergy, spec)
    else:
        path = resolve_weights(spec)
    loaded = load_backbone(spec, checkpoint=path if spec.is_trained_here else None, device=synergy.device)
    info = {"model": spec.model, "pretrained": spec.pretrained or "trained-here", "family": spec.family,
            "weights_path": path, "weights_sha256": loaded.weights_sha256, "embed_dim": loaded.embed_dim,
            "image_size": loaded.image_size, "image_params": loaded.image_params,
            "image_gflops": image_gflops(loaded), "ms_per_image": _time_forward(loaded)}
    write_table(synergy.store().backbone_info(spec.key),
                pa.Table.from_pylist([info], schema=BACKBONE_INFO_SCHEMA), {**info, **stats})
    context.log.info(f"{spec.key}: sha256 {info['weights_sha256'][:12]}…, {info['image_params']:,} image params")
    return dg.MaterializeResult(
        metadata={**{k: v for k, v in info.items() if v is not None},
                  **{k: v for k, v in stats.items() if isinstance(v, (int, float))}},
        data_version=dg.DataVersion(info["weights_sha256"][:16]),
    )


def weights_sha(store, backbone: str) -> str | None:
    path = store.backbone_info(backbone)
    if not path.exists():
        return None
    return pq.read_table(str(path)).column("weights_sha256")[0].as_py()


__all__ = ["backbone_weights", "weights_sha"]
