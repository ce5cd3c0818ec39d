"""Materialize the `ensembles` asset in-process on a tiny synthetic store and check what it wrote.

One materialization (module fixture) feeds every test; a spy on Ensemble.fit and on the linear-probe
heads records every example id any model was fitted on, so leakage from the test split is checked
on what really happened, not on what the records claim.
"""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

import synergy.ensembles.protocol as protocol
from assets.ensembles import ensembles
from pipelines.resources import SynergyResource
from storage.warehouse import connect_memory, query_sql
from synergy.ensembles.base import Ensemble
from synergy.ensembles.experiment import METHOD_ORDER, MODES, NLC_VARIANTS
from synergy.registry import load_registry

from ensembles_asset_store import DATASET, FAST_CONFIG, build_store


def _materialize(s, config: dict, raise_on_error: bool = True):
    return dg.materialize(
        [ensembles], partition_key=DATASET, raise_on_error=raise_on_error,
        resources={"synergy": SynergyResource(registry_path=str(s.registry_path), store_root=s.store.root)},
        run_config={"ops": {"ensembles": {"config": config}}})


@pytest.fixture(scope="module")
def ensemble_store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("ensembles_store"))


@pytest.fixture(scope="module")
def run(ensemble_store):
    fitted_ids: list[set] = []
    fit, probe = Ensemble.fit, protocol.linear_probe_logits

    def spy_fit(self, data):
        fitted_ids.append(set(data.example_ids.tolist()))
        return fit(self, data)

    def spy_probe(fit_data, eval_data, seed, **kw):
        fitted_ids.append(set(fit_data.example_ids.tolist()))
        return probe(fit_data, eval_data, seed, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Ensemble, "fit", spy_fit)
        mp.setattr(protocol, "linear_probe_logits", spy_probe)
        result = _materialize(ensemble_store, FAST_CONFIG)
    assert result.success
    store = ensemble_store.store

    def read(table):
        return pq.read_table(str(store.dataset_dir(table, DATASET) / "data.parquet")).to_pylist()

    return {"store": ensemble_store, "fitted_ids": fitted_ids, "results": read("ensemble_results"),
            "runs": read("ensemble_runs"), "weights": read("nlc_weights"), "efficiency": read("ensemble_efficiency"),
            "groups": read("ensemble_by_group"), "result": result}


def test_every_method_in_every_mode_with_valid_accuracies(run):
    rows = run["results"]
    for mode in MODES:
        keys = {(r["k"], r["fraction"]) for r in rows if r["mode"] == mode}
        assert keys, mode
        for key in keys:
            methods = {r["method"] for r in rows if r["mode"] == mode and (r["k"], r["fraction"]) == key
                       and r["is_default"]}
            assert methods == set(METHOD_ORDER) | {"oracle"}, (mode, key)
    assert {r["k"] for r in rows if r["mode"] == "kshot"} == {1, 2}
    assert {r["fraction"] for r in rows if r["mode"] == "fraction"} == {0.2}
    for r in rows:
        assert 0.0 <= r["mean"] <= 1.0 and r["std"] >= 0.0
        assert r["n_seeds"] == 2 and r["dataset"] == DATASET
        assert r["cost_gflops"] is not None and r["cost_gflops"] > 0


def test_oracle_bounds_best_single_and_gains_are_relative_to_it(run):
    by = {(r["mode"], r["k"], r["method"], r["variant"]): r for r in run["results"]}
    for (mode, k, method, variant), r in by.items():
        best = by[(mode, k, "best_single", "default")]
        assert by[(mode, k, "oracle", "default")]["mean"] >= best["mean"]
        assert r["gain_over_best_single"] == pytest.approx(r["mean"] - best["mean"])
    # costs: best_single runs one backbone, the cascade at most all of them, the others all
    total = 0.02 + 0.01 + 0.03
    for r in run["results"]:
        if r["method"] == "best_single":
            # the chosen backbone may differ between seeds: the cost is a mean over seeds of one backbone's cost
            assert 0.01 - 1e-9 <= r["cost_gflops"] <= 0.03 + 1e-9 and r["n_backbones"] == 1
        elif r["method"] == "cascade":
            assert 0.01 - 1e-9 <= r["cost_gflops"] <= total + 1e-9
        else:
            assert r["cost_gflops"] == pytest.approx(total)


def test_nlc_ablation_has_every_variant_at_the_ablation_ks(run):
    nlc = [r for r in run["results"] if r["method"] == "nlc" and r["mode"] == "kshot"]
    for k in FAST_CONFIG["ablation_ks"]:
        assert {r["variant"] for r in nlc if r["k"] == k} == set(NLC_VARIANTS)
    assert sum(r["is_default"] for r in nlc) == 2  # one default NLC per k


def test_no_test_example_is_ever_used_for_fitting(run):
    s = run["store"]
    test_ids = set(s.test_ids)
    assert len(run["fitted_ids"]) > 50  # the spy saw the fits
    assert all(ids and not ids & test_ids for ids in run["fitted_ids"])
    assert set().union(*run["fitted_ids"]) <= set(s.fit_ids)


def test_identical_draws_across_methods(run):
    draws: dict = {}
    for r in run["runs"]:
        draws.setdefault((r["mode"], r["k"], r["fraction"], r["seed"]), set()).add((r["fit_ids"], r["n_fit"]))
    assert all(len(v) == 1 for v in draws.values())
    kshot = {(k, seed): next(iter(v))[0] for (m, k, _, seed), v in draws.items() if m == "kshot"}
    assert len(set(kshot.values())) == len(kshot) == 4  # distinct draws per (k, seed)
    assert {r["n_fit"] for r in run["runs"] if r["mode"] == "kshot" and r["k"] == 2} == {2 * 5}


def test_nlc_weights_cover_the_test_split(run):
    s, w = run["store"], run["weights"]
    assert len(w) == len(s.test_ids) * len(s.backbones)
    assert {r["example_id"] for r in w} == set(s.test_ids)
    assert {r["backbone"] for r in w} == set(s.backbones)
    assert all(np.isfinite(r["weight"]) and r["weight"] > 0 for r in w)
    footer = json.loads(pq.read_metadata(str(s.store.dataset_dir("nlc_weights", DATASET) / "data.parquet"))
                        .metadata[b"synergy"])
    assert footer["draw"]["k"] == 2 and footer["draw"]["seed"] == 0 and footer["variant"] == "multiply-softplus"


def test_efficiency_subsets_and_cascade_curve(run):
    eff = run["efficiency"]
    subsets = [r for r in eff if r["kind"] == "subset"]
    assert len(subsets) == 2 ** 3 - 1
    assert {tuple(r["backbones"]) for r in subsets if r["n_backbones"] == 1} == {("bb-a",), ("bb-b",), ("bb-c",)}
    for r in subsets:
        assert r["cost_gflops"] == pytest.approx(sum({"bb-a": 0.02, "bb-b": 0.01, "bb-c": 0.03}[b]
                                                     for b in r["backbones"]))
        if r["n_backbones"] == 1:
            assert r["oracle_accuracy"] == pytest.approx(r["accuracy"])
        assert r["beats_best_single"] == (r["accuracy"] > r["best_single_accuracy"])
    singles = [r["accuracy"] for r in subsets if r["n_backbones"] == 1]
    assert max(singles) == pytest.approx(subsets[0]["best_single_accuracy"])
    cascade = sorted((r for r in eff if r["kind"] == "cascade"), key=lambda r: r["threshold"])
    assert [r["threshold"] for r in cascade] == FAST_CONFIG["cascade_thresholds"]
    assert cascade[0]["cost_gflops"] == pytest.approx(0.01)  # threshold 0: the cheapest backbone alone
    assert all(a["cost_gflops"] <= b["cost_gflops"] + 1e-12 for a, b in zip(cascade, cascade[1:]))


def test_groups_split_clean_and_perturbed(run):
    g = [r for r in run["groups"] if r["method"] == "nlc" and r["is_default"] and r["mode"] == "kshot" and r["k"] == 1]
    assert {(r["perturbation"], r["severity"]) for r in g} == {("none", 0), ("noise", 1)}
    assert sum(r["n_examples"] for r in g) == len(run["store"].test_ids)


def test_plots_and_metadata(run):
    s = run["store"]
    for name in ("accuracy_vs_k", "efficiency", "nlc_ablation", "nlc_trust"):
        assert (s.store.plots_dir(DATASET) / f"ensembles_{name}.png").exists(), name
    md = run["result"].asset_materializations_for_node("ensembles")[0].metadata
    assert "nlc" in md["headline"].value and md["fit_seconds"].value > 0


def test_views_and_summary_query(run):
    s = run["store"]
    con = connect_memory(s.store, load_registry(s.registry_path))
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        assert q("SELECT count(*) FROM ensemble_results")[0][0] == len(run["results"])
        assert q("SELECT count(*) FROM nlc_weights")[0][0] == len(run["weights"])
        trust = q("SELECT class_name, backbone, mean_share, trust_rank FROM nlc_trust_by_class")
        assert len(trust) == 5 * 3
        by_class: dict = {}
        for cls, _, share, _ in trust:
            by_class[cls] = by_class.get(cls, 0.0) + share
        assert all(v == pytest.approx(1.0) for v in by_class.values())
        assert q("SELECT count(*) FROM nlc_ablation WHERE k = 1")[0][0] == len(NLC_VARIANTS)
        gain = q("SELECT DISTINCT level FROM ensemble_gain_vs_diversity")
        assert {g[0] for g in gain} == {"dataset", "group"}
        corr = q("SELECT level, n_points FROM ensemble_gain_diversity_corr WHERE method = 'nlc' AND is_default "
                 "AND mode = 'kshot' AND k = 1 ORDER BY level")
        assert corr == [("dataset", 1), ("group", 2)]
        assert q("SELECT count(*) FROM group_diversity")[0][0] == 2
        cheapest = q("SELECT count(*) FROM nlc_cheapest_subset")[0][0]
        assert cheapest == int(any(r["beats_best_single"] for r in run["efficiency"] if r["kind"] == "subset"))
        summary = con.execute(query_sql("ensemble_summary"))
        cols = [d[0] for d in summary.description]
        rows = summary.fetchall()
        assert cols[:4] == ["dataset", "method", "k=1", "k=max"]
        # every default method once, in the documented order, oracle last
        assert [r[1] for r in rows] == [m for m in METHOD_ORDER if m in {x["method"] for x in run["results"]}] + ["oracle"]
        assert all("±" in r[2] and "±" in r[3] and r[4] == 2 for r in rows)
        best = next(r for r in rows if r[1] == "best_single")
        oracle = next(r for r in rows if r[1] == "oracle")
        assert best[cols.index("gain_k_max")] == 0 and oracle[cols.index("gap_closed_k_max")] == 1
    finally:
        con.close()


def test_k_larger_than_the_pool_fails_clearly(ensemble_store):
    result = _materialize(ensemble_store, {**FAST_CONFIG, "ks": [1, 500]}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.step_failure_data.error)
    assert "k=500" in message and "fewshot" in message
