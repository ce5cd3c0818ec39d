"""The `analysis` asset materializes in-process on a tiny synthetic store; plots share colours."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from analysis_support import BASE, SHIFT, rows

import dagster as dg
from assets.analysis import analysis
from pipelines.resources import SynergyResource
from synergy import plots

KINDS = [("none", 0), ("noise", 1), ("noise", 2), ("blur", 1)]


def _materialize(store, dataset, run_config=None):
    resources = {"synergy": SynergyResource(registry_path=str(store.registry_path), store_root=store.store.root)}
    result = dg.materialize([analysis], partition_key=dataset, resources=resources, run_config=run_config)
    assert result.success
    (mat,) = result.asset_materializations_for_node("analysis")
    return mat.metadata


def test_analysis_asset_on_a_shifted_dataset(make_store):
    s = make_store({"bb-a": "resnet", "bb-b": "resnet", "bb-c": "vit"}, classes=("c0", "c1", "c2"),
                   shift={"kinds": ["noise", "blur"], "severities": [1, 2]})
    rng = np.random.default_rng(0)
    bases = [f"test-{i:03d}" for i in range(30)]
    base_labels = rng.integers(0, 3, len(bases))
    ids = [b if k == "none" else f"{b}@{k}-{sev}" for k, sev in KINDS for b in bases]
    labels = np.tile(base_labels, len(KINDS))
    shared = rng.normal(size=(len(ids), 4))
    for j, (b, dim) in enumerate([("bb-a", 4), ("bb-b", 6), ("bb-c", 8)]):
        preds = np.where(rng.random(len(ids)) < 0.6 + 0.1 * j, labels, rng.integers(0, 3, len(ids)))
        emb = np.hstack([shared, rng.normal(size=(len(ids), dim - 4))]) if j < 2 else rng.normal(size=(len(ids), dim))
        s.predictions(b, SHIFT, ids, labels, preds, embeddings=emb)

    meta = _materialize(s, SHIFT, {"ops": {"analysis": {"config": {"sample_size": 50, "seed": 1, "knn_k": 5}}}})

    root = s.store
    sim = pq.read_table(str(root.dataset_dir("analysis_similarity", SHIFT) / "data.parquet")).to_pylist()
    assert [(r["backbone_a"], r["backbone_b"]) for r in sim] == [("bb-a", "bb-b"), ("bb-a", "bb-c"), ("bb-b", "bb-c")]
    assert {(r["n_sample"], r["knn_k"], r["seed"]) for r in sim} == {(50, 5, 1)}
    by_pair = {(r["backbone_a"], r["backbone_b"]): r["cka"] for r in sim}
    assert by_pair[("bb-a", "bb-b")] > by_pair[("bb-a", "bb-c")]  # a and b share 4 of their dimensions
    for name in ("accuracy", "pairwise_agreement", "oracle_best_by_k", "oracle_summary", "who_solves_what",
                 "diversity", "accuracy_per_class", "robustness", "robustness_oracle", "robustness_by_family"):
        assert (root.dataset_dir("analysis", SHIFT) / f"{name}.parquet").exists(), name
    for plot in ("accuracy", "agreement", "similarity", "oracle_vs_k", "robustness"):
        png = root.plots_dir(SHIFT) / f"{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
        assert f"plot_{plot}" in meta and "data:image/png;base64," in meta[f"plot_{plot}"].value

    # metadata: the numbers equal the views', the tables are markdown
    con = s.connect()
    (summary,) = rows(con, "SELECT * FROM oracle_summary WHERE dataset = $d", {"d": SHIFT})
    assert meta["oracle_accuracy"].value == pytest.approx(summary["oracle_accuracy"])
    assert meta["oracle_gain"].value == pytest.approx(summary["oracle_gain"])
    for table in ("oracle_summary", "accuracy", "pairwise_agreement", "representation_similarity",
                  "oracle_best_by_k", "who_solves_what", "robustness_oracle", "robustness_by_family"):
        assert meta[table].value.startswith("| "), table
    assert "bb-a / bb-b" in meta["most_similar_pair"].value
    # the similarity view now reads what the asset stored
    view = rows(con, "SELECT * FROM representation_similarity WHERE dataset = $d ORDER BY ALL", {"d": SHIFT})
    assert [r["cka"] for r in view] == pytest.approx([r["cka"] for r in sim])


def test_analysis_asset_with_one_backbone(make_store):
    s = make_store({"bb-a": "vit"})
    s.predictions("bb-a", BASE, ["t0", "t1", "t2", "f0"], [0, 1, 2, 0], [0, 1, 0, 0],
                  splits=["test", "test", "test", "fewshot"])
    meta = _materialize(s, BASE)
    assert meta["oracle_gain"].value == 0 and meta["best_single_backbone"].value == "bb-a"
    assert meta["oracle_accuracy"].value == pytest.approx(2 / 3)
    assert pq.read_table(str(s.store.dataset_dir("analysis_similarity", BASE) / "data.parquet")).num_rows == 0
    assert meta["pairwise_agreement"].value == "_(no rows)_"
    assert "plot_robustness" not in meta and (s.store.plots_dir(BASE) / "agreement.png").exists()


def test_analysis_asset_fails_clearly_without_predictions(make_store):
    s = make_store({"bb-a": "vit"})
    s.examples(BASE, ["t0"], [0])
    resources = {"synergy": SynergyResource(registry_path=str(s.registry_path), store_root=s.store.root)}
    with pytest.raises(Exception, match="materialize `embeddings`"):
        dg.materialize([analysis], partition_key=BASE, resources=resources)


def test_backbone_colors_are_fixed_by_sorted_key():
    colors = plots.backbone_colors(["vit-b", "rn-a", "vit-a"])
    assert list(colors) == ["rn-a", "vit-a", "vit-b"]
    assert colors == plots.backbone_colors(["rn-a", "vit-a", "vit-b", "rn-a"])
    many = plots.backbone_colors([f"b{i:02d}" for i in range(30)])
    assert len(set(many.values())) == 30


def test_every_plot_uses_the_backbone_colour():
    import matplotlib.colors as mcolors

    colors = plots.backbone_colors(["a", "b", "c"])
    fig = plots.accuracy_bars({"c": 0.5, "a": 0.7, "b": 0.6}, colors, "d")
    bars = fig.axes[0].patches
    assert [mcolors.to_hex(p.get_facecolor()) for p in bars] == [colors["a"], colors["b"], colors["c"]]
    fig = plots.agreement_heatmap(["a", "b", "c"], [{"backbone_a": "a", "backbone_b": "b", "agreement": 0.5,
                                                     "kappa": 0.1}], colors, "d")
    ticks = fig.axes[0].get_yticklabels()
    assert [mcolors.to_hex(t.get_color()) for t in ticks] == [colors[t.get_text()] for t in ticks]
    fig = plots.robustness_curves([
        {"backbone": b, "perturbation": "noise", "severity": s_, "accuracy": 0.5, "clean_accuracy": 0.8}
        for b in ("a", "c") for s_ in (1, 2)], colors, "d")
    lines = fig.axes[0].get_lines()
    assert [mcolors.to_hex(line.get_color()) for line in lines] == [colors["a"], colors["c"]]
    assert list(lines[0].get_xdata()) == [0, 1, 2] and lines[0].get_ydata()[0] == 0.8
    import matplotlib.pyplot as plt

    plt.close("all")
