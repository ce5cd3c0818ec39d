"""Asset checks on `embeddings`: run with every materialization of a partition, shown in the UI.

One `multi_asset_check` op reads the partition's Parquet file once (streamed by row group) and
reports six checks for that backbone × dataset partition. The checks are partitioned like the
asset (per-partition results in the UI and for the automation conditions). Every check whose
failure would poison what is computed from the embeddings (analysis, ensembles, warehouse) is
blocking: a failure fails the run and the automation conditions of the downstream assets
(pipelines/automation.py) hold them back. Accuracy above chance is only a warning.

The logic is a pure function, `evaluate_partition`, so tests call it on a synthetic store.
"""


import warnings
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets.extraction import embeddings
from pipelines.partitions import backbone_dataset_key, backbone_dataset_partitions
from pipelines.resources import SynergyResource
from storage.layout import FeatureStore
from synergy.errors import SynergyError
from synergy.registry import Registry

NORM_TOLERANCE = 1e-3  # float32 L2-normalised vectors are within ~1e-6 of unit norm; fp16 autocast within 1e-3

# name -> (blocking, description)
CHECKS: dict[str, tuple[bool, str]] = {
    "finite_unit_norm": (True, "every embedding and logit is finite and every embedding has unit L2 norm"),
    "row_counts": (True, "rows (plus rejected images) per split equal the split sizes of the example table"),
    "embedding_width": (True, "embedding width equals the model's embed_dim (and the class embeddings' width)"),
    "logits_width": (True, "logits width equals the dataset's number of classes"),
    "unique_example_ids": (True, "no example id appears twice, and every id is in the dataset's example table"),
    "accuracy_above_chance": (False, "zero-shot test accuracy is above chance (1 / number of classes); a warning"),
}


@dataclass
class Outcome:
    name: str
    passed: bool
    message: str
    metadata: dict = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return CHECKS[self.name][0]


def expected_embed_dim(store: FeatureStore, model: str, backbone: str) -> int | None:
    """embed_dim from open_clip's model config; for hf-hub / local-dir models, the backbone info table."""
    try:
        import open_clip

        from synergy.backbones import register_model_configs

        register_model_configs()
        cfg = open_clip.get_model_config(model)
        if cfg and "embed_dim" in cfg:
            return int(cfg["embed_dim"])
    except Exception:  # an unknown name is the weights asset's error to report, not ours
        pass
    info = store.backbone_info(backbone)
    if info.exists():
        value = pq.read_table(str(info), columns=["embed_dim"]).column("embed_dim")[0].as_py()
        return int(value) if value is not None else None
    return None


def _list_width(field_type) -> int | None:
    return getattr(field_type, "list_size", None)


def evaluate_partition(store: FeatureStore, registry: Registry, backbone: str, dataset: str,
                       batch_rows: int = 65536) -> list[Outcome]:
    """All six checks of one partition; never raises for bad data, only reports it."""
    path = store.embeddings(backbone, dataset)
    if not path.exists():
        return [Outcome(name, False, f"no embeddings file at {path}") for name in CHECKS]
    try:
        b_spec, d_spec = registry.backbone(backbone), registry.dataset(dataset)
    except SynergyError as exc:
        return [Outcome(name, False, str(exc)) for name in CHECKS]

    pf = pq.ParquetFile(str(path))
    schema = pf.schema_arrow
    dim = _list_width(schema.field("embedding").type)
    n_logits = _list_width(schema.field("logits").type)

    examples_path = store.examples(dataset)
    examples = pq.read_table(str(examples_path), columns=["example_id", "split"]) if examples_path.exists() else None
    known_ids = None
    expected_by_split: dict[str, int] = {}
    if examples is not None:
        wanted = examples.filter(pc.is_in(examples["split"], pc.cast(list(d_spec.extract_splits), "string")))
        known_ids = dict(zip(wanted["example_id"].to_pylist(), wanted["split"].to_pylist()))
        for s in d_spec.extract_splits:
            expected_by_split[s] = int(pc.sum(pc.equal(wanted["split"], s)).as_py() or 0)
    rejects_by_split: dict[str, int] = {}
    rejects_path = store.rejects(backbone, dataset)
    if rejects_path.exists():
        for s in pq.read_table(str(rejects_path), columns=["split"])["split"].to_pylist():
            rejects_by_split[s] = rejects_by_split.get(s, 0) + 1

    rows_by_split: dict[str, int] = {}
    seen: set[str] = set()
    duplicates: list[str] = []
    unknown: list[str] = []
    non_finite = bad_norm = 0
    worst_norm_error = 0.0
    test_rows = test_correct = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=["example_id", "split", "correct", "embedding",
                                                                  "logits"]):
        ids = batch.column("example_id").to_pylist()
        splits = batch.column("split").to_pylist()
        for i, s in zip(ids, splits):
            rows_by_split[s] = rows_by_split.get(s, 0) + 1
            if i in seen:
                if len(duplicates) < 5:
                    duplicates.append(i)
            seen.add(i)
            if known_ids is not None and known_ids.get(i) != s and len(unknown) < 5:
                unknown.append(i)
        n = batch.num_rows
        if n == 0:
            continue
        emb = batch.column("embedding").values.to_numpy(zero_copy_only=False).reshape(n, -1)
        logits = batch.column("logits").values.to_numpy(zero_copy_only=False).reshape(n, -1)
        finite_rows = np.isfinite(emb).all(axis=1) & np.isfinite(logits).all(axis=1)
        non_finite += int((~finite_rows).sum())
        norm_error = np.abs(np.linalg.norm(emb.astype(np.float64), axis=1) - 1.0)
        norm_error = np.where(np.isfinite(norm_error), norm_error, np.inf)
        bad_norm += int((norm_error > NORM_TOLERANCE).sum())
        worst_norm_error = max(worst_norm_error, float(norm_error.max()))
        is_test = np.array([s == "test" for s in splits])
        correct = batch.column("correct").to_numpy(zero_copy_only=False)
        test_rows += int(is_test.sum())
        test_correct += int(correct[is_test].sum())
    n_rows = sum(rows_by_split.values())
    n_duplicates = n_rows - len(seen)

    out = [Outcome("finite_unit_norm", non_finite == 0 and bad_norm == 0,
                   f"{non_finite} rows with non-finite values, {bad_norm} embeddings off unit norm by more than "
                   f"{NORM_TOLERANCE:g}" if non_finite or bad_norm else f"{n_rows} rows finite and unit-norm",
                   {"rows": n_rows, "non_finite_rows": non_finite, "off_unit_norm_rows": bad_norm,
                    "max_norm_error": worst_norm_error if np.isfinite(worst_norm_error) else -1.0})]

    if examples is None:
        out.append(Outcome("row_counts", False, f"no example table for {dataset!r} at {examples_path}"))
    else:
        problems = [f"{s}: {rows_by_split.get(s, 0)} rows + {rejects_by_split.get(s, 0)} rejects != {n}"
                    for s, n in expected_by_split.items() if rows_by_split.get(s, 0) + rejects_by_split.get(s, 0) != n]
        extra = sorted(set(rows_by_split) - set(expected_by_split))
        if extra:
            problems.append(f"rows of splits that are not extracted: {extra}")
        out.append(Outcome("row_counts", not problems, "; ".join(problems) or
                           ", ".join(f"{s}: {n}" for s, n in expected_by_split.items()),
                           {**{f"rows_{s}": rows_by_split.get(s, 0) for s in expected_by_split},
                            **{f"expected_{s}": n for s, n in expected_by_split.items()},
                            "rejects": sum(rejects_by_split.values())}))

    expected_dim = expected_embed_dim(store, b_spec.model, backbone)
    class_dim = None
    class_path = store.class_embeddings(backbone, dataset)
    if class_path.exists():
        class_dim = _list_width(pq.read_schema(str(class_path)).field("embedding").type)
    width_problems = []
    if expected_dim is None:
        width_problems.append(f"cannot tell {b_spec.model}'s embed_dim (no model config, no backbone info)")
    elif dim != expected_dim:
        width_problems.append(f"embedding width {dim} != {b_spec.model} embed_dim {expected_dim}")
    if class_dim is not None and class_dim != dim:
        width_problems.append(f"class embeddings width {class_dim} != embedding width {dim}")
    out.append(Outcome("embedding_width", not width_problems, "; ".join(width_problems) or f"width {dim}",
                       {"width": dim or -1, "expected": expected_dim or -1}))

    out.append(Outcome("logits_width", n_logits == d_spec.n_classes,
                       f"logits width {n_logits}, {d_spec.n_classes} classes",
                       {"width": n_logits or -1, "n_classes": d_spec.n_classes}))

    id_problems = []
    if n_duplicates:
        id_problems.append(f"{n_duplicates} duplicate example ids (e.g. {', '.join(duplicates)})")
    if unknown:
        id_problems.append(f"ids not in the example table's extracted splits (or in another split): "
                           f"{', '.join(unknown)}")
    out.append(Outcome("unique_example_ids", not id_problems, "; ".join(id_problems) or f"{len(seen)} unique ids",
                       {"duplicates": n_duplicates}))

    chance = 1.0 / d_spec.n_classes
    accuracy = test_correct / test_rows if test_rows else None
    out.append(Outcome("accuracy_above_chance", accuracy is not None and accuracy > chance,
                       f"test accuracy {accuracy:.4f} vs chance {chance:.4f}" if accuracy is not None
                       else "no test rows", {"accuracy": accuracy if accuracy is not None else -1.0,
                                             "chance": chance, "test_rows": test_rows}))
    return out


def to_check_result(outcome: Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=embeddings.key, check_name=outcome.name, passed=bool(outcome.passed),
        severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.message, metadata={"summary": outcome.message, **outcome.metadata},
    )


with warnings.catch_warnings():  # partitioned check specs are a Dagster preview feature: per-partition results
    warnings.simplefilter("ignore", category=dg.PreviewWarning)
    EMBEDDING_CHECK_SPECS = [
        dg.AssetCheckSpec(name, asset=embeddings, blocking=blocking, description=description,
                          partitions_def=backbone_dataset_partitions)
        for name, (blocking, description) in CHECKS.items()
    ]


@dg.multi_asset_check(specs=EMBEDDING_CHECK_SPECS, name="embeddings_checks", compute_kind="pyarrow")
def embeddings_checks(context: dg.AssetCheckExecutionContext, synergy: SynergyResource):
    """Reads the partition just written and reports the six checks (see `CHECKS`)."""
    backbone, dataset = backbone_dataset_key(context)
    outcomes = evaluate_partition(synergy.store(), synergy.registry(), backbone, dataset)
    for outcome in outcomes:
        (context.log.info if outcome.passed else context.log.warning)(
            f"{outcome.name}: {'passed' if outcome.passed else 'FAILED'} ({outcome.message})")
        yield to_check_result(outcome)
