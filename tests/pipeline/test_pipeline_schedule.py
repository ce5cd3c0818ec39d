"""The re-extraction schedule: only partitions whose fingerprint changed are requested.

Real in-process materializations on the tiny world give real provenance (code version, input event
pointers) and real metadata (weights sha256, preprocessing); then one fingerprint component at a
time is changed.
"""

from __future__ import annotations

import dagster as dg
import pytest

from tiny_world import build_world, make_checkpoint, make_images

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::dagster.BetaWarning")]


def _mk(b, d="shapes"):
    return dg.MultiPartitionKey({"backbone": b, "dataset": d})


@pytest.fixture
def persistent_instance(tmp_path):
    """A schedule context needs a persistent instance (it reopens it from its ref)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def test_schedule_reextracts_only_changed_partitions(tmp_path, load_defs, monkeypatch, persistent_instance):
    world = build_world(tmp_path, keys=("vit-a", "rn-b"), registered=("vit-a", "rn-b"))
    defs = load_defs(world.registry, world.store)
    from pipelines.partitions import sync_backbone_partitions
    from pipelines.resources import SynergyResource
    from pipelines.schedules import plan_reextraction, reextract_schedule

    instance = persistent_instance
    sync_backbone_partitions(instance, ["vit-a", "rn-b"])

    def run(job, key=None):
        assert defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=key).success

    def tick():
        ctx = dg.build_schedule_context(instance=instance, resources={
            "synergy": SynergyResource(registry_path=str(world.registry), store_root=str(world.store))})
        result = reextract_schedule(ctx)
        if isinstance(result, dg.SkipReason):
            return result
        return {str(r.partition_key): r.tags["synergy/reason"] for r in result}

    run("examples_job", "shapes")
    # never-extracted partitions whose inputs exist (examples; a `pretrained:` file) are picked up too
    assert tick() == {"vit-a|shapes": "never extracted", "rn-b|shapes": "never extracted"}
    run("weights_job", "vit-a")
    run("weights_job", "rn-b")
    for b in ("vit-a", "rn-b"):
        run("extract_job", _mk(b))

    # nothing changed: skipped (this also proves the offline preprocessing equals the recorded one)
    skipped = tick()
    assert isinstance(skipped, dg.SkipReason) and "2 partitions up to date" in skipped.skip_message
    decisions = plan_reextraction(instance, SynergyResource(registry_path=str(world.registry),
                                                            store_root=str(world.store)).store(),
                                  SynergyResource(registry_path=str(world.registry)).registry())
    assert [d.reason for d in decisions] == ["fingerprint unchanged"] * 2

    # new weights in rn-b's checkpoint file: only rn-b x shapes
    make_checkpoint(world.model("rn-b"), world.checkpoints["rn-b"], seed=99)
    assert tick() == {"rn-b|shapes": "changed: weights_sha256"}
    run("extract_job", _mk("rn-b"))
    assert isinstance(tick(), dg.SkipReason)

    # a new extraction code version: every partition
    from assets import extraction

    monkeypatch.setattr(extraction, "EXTRACTION_CODE_VERSION", "extract-v999")
    assert tick() == {"vit-a|shapes": "changed: code_version", "rn-b|shapes": "changed: code_version"}
    monkeypatch.undo()

    # the dataset's content changed (more images), examples re-materialized: every partition of it
    make_images(world.images, train_per_class=9)
    run("examples_job", "shapes")
    assert tick() == {"vit-a|shapes": "changed: dataset_fingerprint", "rn-b|shapes": "changed: dataset_fingerprint"}


def test_offline_preprocessing_matches_open_clip():
    from pipelines.schedules import current_preprocess
    from synergy.backbones import load_backbone
    from synergy.registry import BackboneSpec, TrainSpec

    for model, family in (("synergy-tiny-test", "vit"), ("synergy-tiny-rn-test", "resnet"),
                          ("synergy-rn-xs", "resnet"), ("synergy-vit-p4", "vit")):
        spec = BackboneSpec(key="x", model=model, family=family, train=TrainSpec(dataset="d"))
        assert current_preprocess(spec) == load_backbone(spec, weights="random", device="cpu").preprocess_repr


def test_cron_is_weekly_by_default_and_configurable(tmp_path, load_defs, monkeypatch):
    registry = tmp_path / "registry.yaml"
    from tiny_world import registry_text

    registry.write_text(registry_text(tmp_path, {"vit-a": ("synergy-tiny-test", tmp_path / "a.pt")}))
    defs = load_defs(registry, tmp_path / "store")
    schedule = defs.resolve_schedule_def("reextract_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    monkeypatch.setenv("SYNERGY_REEXTRACT_CRON", "30 4 * * *")
    defs = load_defs(registry, tmp_path / "store")
    assert defs.resolve_schedule_def("reextract_schedule").cron_schedule == "30 4 * * *"
