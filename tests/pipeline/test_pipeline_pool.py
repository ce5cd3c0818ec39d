"""The extraction pool exists, with dagster.yaml's default limit, before the first extraction run is queued."""

import dagster as dg

from pipelines.instance import EXTRACTION_POOL, ensure_pool_limits

POOLS = {"concurrency": {"pools": {"default_limit": 1, "granularity": "run"}}}


def test_fresh_instance_gets_the_pool_at_its_default_limit(tmp_path):
    with dg.instance_for_test(overrides=POOLS, temp_dir=str(tmp_path)) as instance:
        assert EXTRACTION_POOL not in instance.event_log_storage.get_concurrency_keys()
        ensure_pool_limits(instance)
        assert EXTRACTION_POOL in instance.event_log_storage.get_concurrency_keys()
        info = instance.event_log_storage.get_concurrency_info(EXTRACTION_POOL)
        assert info.slot_count == 1


def test_a_limit_set_by_hand_is_kept(tmp_path):
    with dg.instance_for_test(overrides=POOLS, temp_dir=str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots(EXTRACTION_POOL, 3)
        ensure_pool_limits(instance)
        assert instance.event_log_storage.get_concurrency_info(EXTRACTION_POOL).slot_count == 3


def test_the_embeddings_asset_is_in_the_pool(load_defs, tiny_registry, tmp_path):
    defs = load_defs(tiny_registry, tmp_path / "store")
    node = defs.resolve_assets_def("embeddings").node_def
    assert node.pool == EXTRACTION_POOL
