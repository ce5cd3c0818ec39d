"""The ensembles asset's helpers without Dagster: loading and aligning the store, record bookkeeping,
and the config guard."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.ensembles import EnsemblesConfig
from synergy.ensembles.experiment import (
    DEFAULT_NLC_VARIANT, PredictionRecorder, check_config, groups_of_test, headline_rows, load_ensemble_data,
    results_table, split_method,
)
from storage.atomic import write_table
from synergy.ensembles import BestSingle, EnsembleError, MeanLogits, evaluate
from synergy.ensembles.synthetic import make_class_data

from ensembles_asset_store import DATASET, build_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("units"), n_fit=60, n_test=40)


def test_load_aligns_backbones_by_example_id(store):
    data = load_ensemble_data(store.store, DATASET, store.backbones, log=lambda m: None)
    fit, test = data["fewshot"], data["test"]
    assert fit.backbones == test.backbones == tuple(store.backbones)
    assert sorted(fit.example_ids.tolist()) == sorted(store.fit_ids)
    assert sorted(test.example_ids.tolist()) == sorted(store.test_ids)
    assert fit.n_classes == 5 and fit.widths == (12, 8, 16)
    assert not set(fit.example_ids) & set(test.example_ids)
    # rows are aligned: each backbone's stored prediction is the argmax of the logits we loaded
    for j, b in enumerate(store.backbones):
        t = pq.read_table(str(store.store.embeddings(b, DATASET))).to_pylist()
        pred = {r["example_id"]: r["pred"] for r in t}
        assert [pred[i] for i in test.example_ids] == test.logits[j].argmax(1).tolist()


def test_load_drops_examples_a_backbone_rejected(tmp_path):
    s = build_store(tmp_path, n_fit=60, n_test=40)
    path = s.store.embeddings("bb-b", DATASET)
    t = pq.read_table(str(path))
    keep = [i for i in range(t.num_rows) if t["example_id"][i].as_py() not in ("test-3", "train-7")]
    write_table(path, t.take(pa.array(keep)))
    logs = []
    data = load_ensemble_data(s.store, DATASET, s.backbones + ["not-extracted"], log=logs.append)
    assert "test-3" not in data["test"].example_ids and len(data["test"]) == 39
    assert "train-7" not in data["fewshot"].example_ids and len(data["fewshot"]) == 59
    assert any("not-extracted" in m for m in logs) and any("left out" in m for m in logs)
    assert data["test"].backbones == tuple(s.backbones)


def test_groups_of_test(store):
    data = load_ensemble_data(store.store, DATASET, store.backbones, log=lambda m: None)
    group_of, groups = groups_of_test(store.store, DATASET, data["test"].example_ids)
    assert groups == [("none", 0), ("noise", 1)]
    noisy = np.array(["@" in i for i in data["test"].example_ids])
    np.testing.assert_array_equal(group_of == 1, noisy)


def test_split_method_names():
    assert split_method("nlc") == ("nlc", DEFAULT_NLC_VARIANT, True)
    assert split_method("nlc[divide-exp]") == ("nlc", "divide-exp", False)
    assert split_method(f"nlc[{DEFAULT_NLC_VARIANT}]") == ("nlc", DEFAULT_NLC_VARIANT, True)
    assert split_method("super_learner") == ("super_learner", "default", True)


def test_recorder_pairs_each_record_with_its_prediction():
    pool = make_class_data(100, seed=1)
    test = make_class_data(60, seed=2, id_prefix="t")
    rec = PredictionRecorder()
    records = rec.attach(evaluate(pool, test, rec.wrap({"best_single": BestSingle, "mean_logits": MeanLogits}),
                                  ks=(1, 2), seeds=[0, 1]))
    assert len(records) == 4 * 3 and not rec.calls
    for r in records:
        if r["method"] == "oracle":
            assert "_est" not in r
            continue
        assert r["_correct"].mean() == pytest.approx(r["accuracy"])
        assert r["_data"] is test
        assert type(r["_est"]).__name__ == {"best_single": "BestSingle", "mean_logits": "MeanLogits"}[r["method"]]
    table = results_table("d", [{**r, "cost_gflops": None, "cost_ms": None} for r in records], n_backbones=3)
    rows = table.to_pylist()
    assert {(r["method"], r["k"]) for r in rows} == {(m, k) for m in ("oracle", "best_single", "mean_logits")
                                                     for k in (1, 2)}
    assert all(r["n_seeds"] == 2 for r in rows)
    head = headline_rows(rows)
    assert [h["method"] for h in head] == ["best_single", "mean_logits", "oracle"]
    assert set(head[0]) == {"method", "k=1", "k=2", "gain k=2"}


def test_check_config_names_the_short_class():
    pool = make_class_data(40, n_classes=4, seed=0)
    counts = np.bincount(pool.labels)
    check_config(EnsemblesConfig(ks=[1, 2], ablation_ks=[1]), pool)
    with pytest.raises(EnsembleError, match=rf"k={counts.min() + 1} .* class {counts.argmin()} has only"):
        check_config(EnsemblesConfig(ks=[1], ablation_ks=[int(counts.min()) + 1]), pool)
    check_config(EnsemblesConfig(ks=[1], ablation_ks=[500], nlc_variants=False), pool)
    with pytest.raises(EnsembleError, match="unknown mode"):
        check_config(EnsemblesConfig(modes=["zero-shot"]), pool)


def test_unset_grid_comes_from_the_registry_then_the_paper():
    from assets.ensembles import resolve_config
    from synergy.ensembles.experiment import PAPER_KS, PAPER_SEEDS

    assert (PAPER_KS, PAPER_SEEDS) == ([1, 2, 4, 8, 16], 5)
    paper = resolve_config(EnsemblesConfig(), {})
    assert (paper.ks, paper.seeds) == ([1, 2, 4, 8, 16], 5)
    registry = {"ensembles": {"ks": [1, 4, 16], "seeds": 3}}
    demo = resolve_config(EnsemblesConfig(), registry)
    assert (demo.ks, demo.seeds) == ([1, 4, 16], 3)
    run = resolve_config(EnsemblesConfig(ks=[2], seeds=7, moe_steps=5), registry)
    assert (run.ks, run.seeds, run.moe_steps) == ([2], 7, 5)
    partial = resolve_config(EnsemblesConfig(seeds=1), {"ensembles": {"ks": [8]}})
    assert (partial.ks, partial.seeds) == ([8], 1)
    # the NLC ablation follows the grid (smallest and largest k) unless it is given
    assert paper.ablation_ks == [1, 16] and demo.ablation_ks == [1, 16] and partial.ablation_ks == [8]
    assert resolve_config(EnsemblesConfig(ablation_ks=[2]), registry).ablation_ks == [2]


def test_the_demo_registry_asks_for_the_small_grid():
    from synergy.registry import load_registry

    from pathlib import Path

    settings = load_registry(Path(__file__).resolve().parents[2] / "registry" / "demo.yaml").settings
    assert settings["ensembles"] == {"ks": [1, 4, 16], "seeds": 3}
