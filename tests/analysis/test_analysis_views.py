"""Every analysis view on hand-worked synthetic stores (answers computed by hand in the comments)."""

import math

import numpy as np
import pytest
from analysis_support import BASE, HAND_IDS, HAND_LABELS, HAND_PREDS, SHIFT, rows

from storage.atomic import write_table
from storage.warehouse import create_views

ANALYSIS_FILES = ["20_analysis_base", "21_agreement", "22_oracle", "23_solved_by_one", "24_robustness",
                  "25_diversity"]


def test_every_analysis_view_file_is_created_and_similarity_waits_for_its_files(hand_store):
    import duckdb

    con = duckdb.connect()
    result = create_views(con, hand_store.store, hand_store.registry)
    assert set(ANALYSIS_FILES) <= set(result["created"])
    assert "28_representation_similarity" in result["skipped"]  # no analysis_similarity file yet


def test_analysis_backbones_bits_follow_sorted_keys(hand_store):
    got = rows(hand_store.con, "SELECT backbone, bit, bit_mask, n_backbones FROM analysis_backbones ORDER BY bit")
    assert [(r["backbone"], r["bit"], r["bit_mask"], r["n_backbones"]) for r in got] == [
        ("bb-a", 0, 1, 3), ("bb-b", 1, 2, 3), ("bb-c", 2, 4, 3)]


def test_correct_masks_by_hand(hand_store):
    # right:  e0 a,b -> 0b011=3 | e1 a,c -> 0b101=5 | e2 a,b -> 3 | e3 b,c -> 0b110=6 | e4 a -> 1 | e5 none -> 0
    got = rows(hand_store.con, "SELECT example_id, mask, n_correct, n_votes FROM correct_masks ORDER BY example_id")
    assert [r["mask"] for r in got] == [3, 5, 3, 6, 1, 0]
    assert [r["n_correct"] for r in got] == [2, 2, 2, 2, 1, 0]
    assert {r["n_votes"] for r in got} == {3}


def test_accuracy_per_class_by_hand_and_class_without_test_examples(hand_store):
    got = {(r["backbone"], r["label"]): r for r in rows(hand_store.con, "SELECT * FROM accuracy_per_class")}
    # class 0 = e0, e3: a right on e0 only -> 1/2; b right on both -> 1; c right on e3 -> 1/2
    assert got[("bb-a", 0)]["accuracy"] == 0.5 and got[("bb-b", 0)]["accuracy"] == 1.0
    # class 1 = e1, e4: a 2/2, b 0/2, c 1/2 ; class 2 = e2, e5: a 1/2, b 1/2, c 0/2
    assert [got[(b, 1)]["accuracy"] for b in ("bb-a", "bb-b", "bb-c")] == [1.0, 0.0, 0.5]
    assert [got[(b, 2)]["accuracy"] for b in ("bb-a", "bb-b", "bb-c")] == [0.5, 0.5, 0.0]
    # class 3 ('c3') has no test example: a row with n = 0 and NULL accuracy, for every backbone
    for b in ("bb-a", "bb-b", "bb-c"):
        assert (got[(b, 3)]["n"], got[(b, 3)]["accuracy"], got[(b, 3)]["class_name"]) == (0, None, "c3")
    assert len(got) == 12


def test_pairwise_agreement_by_hand(hand_store):
    got = {(r["backbone_a"], r["backbone_b"]): r for r in rows(hand_store.con, "SELECT * FROM pairwise_agreement")}
    assert set(got) == {("bb-a", "bb-b"), ("bb-a", "bb-c"), ("bb-b", "bb-c")}  # unordered, a < b
    # a=[0,1,2,1,1,0] b=[0,2,2,0,0,0]: same on e0,e2,e5 -> 3/6. Marginals a (2,3,1,0), b (4,0,2,0):
    # pe = (2*4 + 3*0 + 1*2)/36 = 10/36, kappa = (18/36 - 10/36) / (26/36) = 4/13.
    # both right e0,e2; only a e1,e4; only b e3; both wrong e5 with the same answer 0.
    ab = got[("bb-a", "bb-b")]
    assert (ab["n"], ab["agreement"]) == (6, 0.5)
    assert ab["kappa"] == pytest.approx(4 / 13)
    assert (ab["both_right"], ab["only_a_right"], ab["only_b_right"], ab["both_wrong_same"],
            ab["both_wrong_different"]) == (2, 2, 1, 1, 0)
    # a vs c=[1,1,0,0,2,1]: same on e1 only -> 1/6; c marginals (2,3,1): pe = (4+9+1)/36 = 14/36,
    # kappa = (6-14)/(36-14) = -4/11. both right e1; only a e0,e2,e4; only c e3; e5: a 0, c 1 -> different.
    ac = got[("bb-a", "bb-c")]
    assert ac["agreement"] == pytest.approx(1 / 6) and ac["kappa"] == pytest.approx(-4 / 11)
    assert (ac["both_right"], ac["only_a_right"], ac["only_b_right"], ac["both_wrong_same"],
            ac["both_wrong_different"]) == (1, 3, 1, 0, 1)
    # b vs c: same on e3 -> 1/6; pe = (4*2 + 0*3 + 2*1)/36 = 10/36, kappa = (6-10)/26 = -2/13.
    # both right e3; only b e0,e2; only c e1; e4 (0 vs 2) and e5 (0 vs 1) both wrong, different.
    bc = got[("bb-b", "bb-c")]
    assert bc["kappa"] == pytest.approx(-2 / 13)
    assert (bc["both_right"], bc["only_a_right"], bc["only_b_right"], bc["both_wrong_same"],
            bc["both_wrong_different"]) == (1, 2, 1, 0, 2)


def test_who_solves_what_by_hand(hand_store):
    got = {tuple(r["backbones"]): (r["mask"], r["n_solvers"], r["n_examples"])
           for r in rows(hand_store.con, "SELECT * FROM who_solves_what")}
    assert got == {("bb-a", "bb-b"): (3, 2, 2), ("bb-a", "bb-c"): (5, 2, 1), ("bb-b", "bb-c"): (6, 2, 1),
                   ("bb-a",): (1, 1, 1), (): (0, 0, 1)}
    assert sum(r["share"] for r in rows(hand_store.con, "SELECT share FROM who_solves_what")) == pytest.approx(1)


def test_oracle_subsets_best_by_k_and_ties_by_hand(hand_store):
    con = hand_store.con
    subsets = {tuple(r["backbones"]): r["n_solved"] for r in rows(con, "SELECT * FROM oracle_subsets")}
    # {a} 4, {b} 3, {c} 2, {a,b} e0-e4 = 5, {a,c} e0-e4 = 5, {b,c} e0-e3 = 4, {a,b,c} 5 (e5 is nobody's)
    assert subsets == {("bb-a",): 4, ("bb-b",): 3, ("bb-c",): 2, ("bb-a", "bb-b"): 5, ("bb-a", "bb-c"): 5,
                       ("bb-b", "bb-c"): 4, ("bb-a", "bb-b", "bb-c"): 5}
    best = rows(con, "SELECT * FROM oracle_best_by_k ORDER BY k")
    # k = 2 is a tie between {a,b} (mask 3) and {a,c} (mask 5): the smaller mask wins
    assert [(r["k"], r["backbones"], r["method"]) for r in best] == [
        (1, ["bb-a"], "exhaustive"), (2, ["bb-a", "bb-b"], "exhaustive"), (3, ["bb-a", "bb-b", "bb-c"], "exhaustive")]
    assert [r["oracle_accuracy"] for r in best] == pytest.approx([4 / 6, 5 / 6, 5 / 6])


def test_oracle_summary_exact_columns_by_hand(hand_store):
    cur = hand_store.con.execute("SELECT * FROM oracle_summary")
    assert [d[0] for d in cur.description] == ["dataset", "n_backbones", "best_single_backbone",
                                               "best_single_accuracy", "oracle_accuracy", "oracle_gain"]
    (row,) = cur.fetchall()
    assert row[:3] == (BASE, 3, "bb-a")
    assert row[3:] == pytest.approx((4 / 6, 5 / 6, 1 / 6))


def test_solved_by_one_by_hand(hand_store):
    got = rows(hand_store.con, "SELECT * FROM solved_by_one")
    # only e4 (label 1) is solved by exactly one backbone, a; b said 0 and c said 2
    assert len(got) == 1
    r = got[0]
    assert (r["backbone"], r["example_id"], r["label"], r["class_name"], r["ref"]) == ("bb-a", "e4", 1, "c1", "ref:e4")
    assert r["other_preds"] == [{"backbone": "bb-b", "pred": 0}, {"backbone": "bb-c", "pred": 2}]


def test_diversity_by_hand(hand_store):
    (r,) = rows(hand_store.con, "SELECT * FROM diversity")
    # disagreement (only_a + only_b)/n: ab 3/6, ac 4/6, bc 3/6 -> mean 10/18
    assert r["diversity"] == pytest.approx(10 / 18)
    assert "only_a_right + only_b_right" in r["definition"]
    # prediction disagreement: 1 - (3/6, 1/6, 1/6) -> mean 13/18 ; normalised oracle gain (1/6) / (2/6)
    assert r["mean_prediction_disagreement"] == pytest.approx(13 / 18)
    assert r["normalized_oracle_gain"] == pytest.approx(0.5)
    assert r["mean_kappa"] == pytest.approx((4 / 13 - 4 / 11 - 2 / 13) / 3)


def test_one_backbone(make_store):
    s = make_store({"bb-a": "resnet"})
    s.predictions("bb-a", BASE, HAND_IDS, HAND_LABELS, HAND_PREDS["bb-a"])
    con = s.connect()
    assert rows(con, "SELECT * FROM pairwise_agreement") == []
    (summary,) = rows(con, "SELECT * FROM oracle_summary")
    assert (summary["n_backbones"], summary["best_single_backbone"]) == (1, "bb-a")
    assert summary["oracle_accuracy"] == summary["best_single_accuracy"] == pytest.approx(4 / 6)
    assert summary["oracle_gain"] == 0
    assert [(r["k"], r["backbones"]) for r in rows(con, "SELECT * FROM oracle_best_by_k")] == [(1, ["bb-a"])]
    assert {tuple(r["backbones"]): r["n_examples"] for r in rows(con, "SELECT * FROM who_solves_what")} == {
        ("bb-a",): 4, (): 2}
    # every example bb-a solves, it solves alone
    assert len(rows(con, "SELECT * FROM solved_by_one")) == 4
    (d,) = rows(con, "SELECT * FROM diversity")
    assert d["diversity"] == 0 and d["mean_kappa"] is None


def test_best_single_tie_takes_the_first_key(make_store):
    s = make_store({"bb-z": "vit", "bb-y": "resnet"})
    # both right on 2 of 3 examples, on different ones
    s.predictions("bb-z", BASE, ["x0", "x1", "x2"], [0, 1, 2], [0, 1, 0])
    s.predictions("bb-y", BASE, ["x0", "x1", "x2"], [0, 1, 2], [1, 1, 2])
    (r,) = rows(s.connect(), "SELECT * FROM oracle_summary")
    assert (r["best_single_backbone"], r["best_single_accuracy"], r["oracle_accuracy"]) == ("bb-y", 2 / 3, 1.0)
    best = rows(s.connect(), "SELECT * FROM oracle_best_by_k WHERE k = 1")
    assert best[0]["backbones"] == ["bb-y"]


def test_kappa_is_null_when_chance_agreement_is_one(make_store):
    s = make_store({"bb-a": "resnet", "bb-b": "resnet"})
    s.predictions("bb-a", BASE, ["x0", "x1"], [0, 1], [0, 0])
    s.predictions("bb-b", BASE, ["x0", "x1"], [0, 1], [0, 0])
    (r,) = rows(s.connect(), "SELECT * FROM pairwise_agreement")
    assert r["agreement"] == 1.0 and r["kappa"] is None
    assert (r["both_right"], r["both_wrong_same"]) == (1, 1)


def test_only_test_split_counts_and_missing_predictions(make_store):
    s = make_store({"bb-a": "resnet", "bb-b": "vit"})
    ids, labels = ["f0", "f1", "t0", "t1", "t2"], [0, 0, 0, 1, 2]
    splits = ["fewshot", "fewshot", "test", "test", "test"]
    s.predictions("bb-a", BASE, ids, labels, [1, 1, 0, 1, 0], splits=splits)
    # bb-b lost t2 (a rejected image): pairs use t0, t1 only; the oracle still counts t2 (bb-a is wrong on it)
    s.predictions("bb-b", BASE, ids[:4], labels[:4], [1, 1, 1, 1], splits=splits[:4])
    con = s.connect()
    (pa_,) = rows(con, "SELECT * FROM pairwise_agreement")
    assert (pa_["n"], pa_["agreement"], pa_["only_a_right"], pa_["both_right"]) == (2, 0.5, 1, 1)
    (o,) = rows(con, "SELECT * FROM oracle_summary")
    assert o["oracle_accuracy"] == pytest.approx(2 / 3) and o["best_single_accuracy"] == pytest.approx(2 / 3)
    assert rows(con, "SELECT sum(n_examples) AS n FROM who_solves_what")[0]["n"] == 3


def test_robustness_views_are_empty_without_a_shifted_dataset(hand_store):
    con = hand_store.con
    for view in ("shift_predictions", "robustness", "robustness_oracle", "robustness_by_family"):
        assert rows(con, f"SELECT * FROM {view}") == []


# ---------------------------------------------------------------- robustness, by hand
# shifted dataset, bases t0 (label 0) and t1 (label 1), clean + noise-1 + noise-2:
#            t0  t1  t0@noise-1  t1@noise-1  t0@noise-2  t1@noise-2
#   bb-a      0   1      0           2           2           2       (resnet)
#   bb-b      0   2      0           1           0           0       (resnet)
#   bb-c      1   1      1           1           2           1       (vit)
SHIFT_IDS = ["t0", "t1", "t0@noise-1", "t1@noise-1", "t0@noise-2", "t1@noise-2"]
SHIFT_LABELS = [0, 1, 0, 1, 0, 1]
SHIFT_PREDS = {"bb-a": [0, 1, 0, 2, 2, 2], "bb-b": [0, 2, 0, 1, 0, 0], "bb-c": [1, 1, 1, 1, 2, 1]}


@pytest.fixture(scope="module")
def shift_store(tmp_path_factory):
    from analysis_support import SynthStore

    s = SynthStore(tmp_path_factory.mktemp("shift"), {"bb-a": "resnet", "bb-b": "resnet", "bb-c": "vit"},
                   ("c0", "c1", "c2"), shift={"kinds": ["noise", "blur"], "severities": [1, 2]})
    for b, preds in SHIFT_PREDS.items():
        s.predictions(b, SHIFT, SHIFT_IDS, SHIFT_LABELS, preds)
    s.con = s.connect()
    return s


def test_robustness_by_hand(shift_store):
    got = {(r["backbone"], r["perturbation"], r["severity"]): r
           for r in rows(shift_store.con, "SELECT * FROM robustness")}
    expect = {  # (accuracy, clean accuracy of the same bases, drop)
        ("bb-a", "none", 0): (1.0, 1.0, 0.0), ("bb-a", "noise", 1): (0.5, 1.0, 0.5), ("bb-a", "noise", 2): (0.0, 1.0, 1.0),
        ("bb-b", "none", 0): (0.5, 0.5, 0.0), ("bb-b", "noise", 1): (1.0, 0.5, -0.5), ("bb-b", "noise", 2): (0.5, 0.5, 0.0),
        ("bb-c", "none", 0): (0.5, 0.5, 0.0), ("bb-c", "noise", 1): (0.5, 0.5, 0.0), ("bb-c", "noise", 2): (0.5, 0.5, 0.0),
    }
    assert set(got) == set(expect)
    for key, (acc, clean, drop) in expect.items():
        assert (got[key]["accuracy"], got[key]["clean_accuracy"], got[key]["drop"], got[key]["n"]) == (acc, clean, drop, 2)
    assert got[("bb-c", "noise", 1)]["family"] == "vit"


def test_robustness_oracle_by_hand(shift_store):
    got = {(r["perturbation"], r["severity"]): r for r in rows(shift_store.con, "SELECT * FROM robustness_oracle")}
    # none:    t0 (0,0,1) 1 agreeing pair of 3, t1 (1,2,1) 1 of 3 -> 2/6; oracle 2/2; best single a 1.0
    # noise-1: t0@ (0,0,1) 1 pair, t1@ (2,1,1) 1 pair -> 2/6; oracle 1.0; best b 1.0
    # noise-2: t0@ (2,0,2) 1 pair, t1@ (2,0,1) 0 -> 1/6; oracle 1.0 (b on t0@, c on t1@); best 0.5; gain 0.5
    assert got[("none", 0)]["mean_pairwise_agreement"] == pytest.approx(1 / 3)
    assert got[("noise", 1)]["mean_pairwise_agreement"] == pytest.approx(1 / 3)
    assert got[("noise", 2)]["mean_pairwise_agreement"] == pytest.approx(1 / 6)
    assert [got[k]["oracle_accuracy"] for k in [("none", 0), ("noise", 1), ("noise", 2)]] == [1.0, 1.0, 1.0]
    assert [got[k]["best_single_accuracy"] for k in [("none", 0), ("noise", 1), ("noise", 2)]] == [1.0, 1.0, 0.5]
    assert got[("noise", 2)]["oracle_gain"] == 0.5
    assert {(r["n_examples"], r["n_backbones"]) for r in got.values()} == {(2, 3)}


def test_robustness_by_family_by_hand(shift_store):
    got = {(r["family"], r["perturbation"], r["severity"]): r
           for r in rows(shift_store.con, "SELECT * FROM robustness_by_family")}
    # noise-1: resnet drops (0.5, -0.5) -> mean 0; vit 0 -> a tie, both rank 1
    assert got[("resnet", "noise", 1)]["mean_drop"] == 0 and got[("vit", "noise", 1)]["mean_drop"] == 0
    assert got[("resnet", "noise", 1)]["robustness_rank"] == got[("vit", "noise", 1)]["robustness_rank"] == 1
    assert got[("resnet", "noise", 1)]["mean_accuracy"] == 0.75
    # noise-2: resnet (1.0, 0.0) -> 0.5, rank 2; vit 0, rank 1
    assert (got[("resnet", "noise", 2)]["mean_drop"], got[("resnet", "noise", 2)]["robustness_rank"]) == (0.5, 2)
    # all severities (severity NULL): resnet (0.5 - 0.5 + 1 + 0)/4 = 0.25, vit 0
    assert got[("resnet", "noise", None)]["mean_drop"] == 0.25
    assert got[("vit", "noise", None)]["robustness_rank"] == 1 and got[("resnet", "noise", None)]["n_backbones"] == 2
    assert not any(k[1] == "none" for k in got)


def test_representation_similarity_view_reads_the_stored_table(make_store):
    import pyarrow as pa

    from assets.analysis import SIMILARITY_SCHEMA

    table = pa.Table.from_pylist([
        {"backbone_a": "bb-a", "backbone_b": "bb-b", "cka": 0.8, "knn_overlap": 0.5, "n_sample": 6, "knn_k": 2, "seed": 0},
        {"backbone_a": "bb-a", "backbone_b": "gone", "cka": 0.1, "knn_overlap": 0.1, "n_sample": 6, "knn_k": 2, "seed": 0},
    ], schema=SIMILARITY_SCHEMA)
    s = make_store({"bb-a": "resnet", "bb-b": "vit"})
    s.predictions("bb-a", BASE, ["x0"], [0], [0])
    write_table(s.store.dataset_dir("analysis_similarity", BASE) / "data.parquet", table)
    got = rows(s.connect(), "SELECT * FROM representation_similarity")
    # `gone` is not in the registry any more: filtered out like every other view does
    assert [(r["dataset"], r["backbone_a"], r["backbone_b"], r["cka"]) for r in got] == [(BASE, "bb-a", "bb-b", 0.8)]


def _numpy_greedy(correct: np.ndarray) -> list[tuple[int, ...]]:
    chosen, covered, out = [], np.zeros(correct.shape[0], bool), []
    for _ in range(correct.shape[1]):
        gains = [(-(covered | correct[:, j]).sum(), j) for j in range(correct.shape[1]) if j not in chosen]
        j = min(gains)[1]  # most solved, then the lowest index
        chosen.append(j)
        covered |= correct[:, j]
        out.append(tuple(sorted(chosen)))
    return out


def test_more_than_12_backbones_goes_greedy(make_store):
    n_bb, n = 13, 120
    keys = [f"m{i:02d}" for i in range(n_bb)]
    s = make_store({k: "vit" for k in keys})
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, n)
    ids = [f"x{i:03d}" for i in range(n)]
    correct = np.zeros((n, n_bb), bool)
    for j, k in enumerate(keys):
        right = rng.random(n) < rng.uniform(0.2, 0.6)
        preds = np.where(right, labels, (labels + 1) % 4)
        correct[:, j] = right
        s.predictions(k, BASE, ids, labels, preds)
    con = s.connect()
    best = rows(con, "SELECT * FROM oracle_best_by_k ORDER BY k")
    assert {r["method"] for r in best} == {"greedy"} and [r["k"] for r in best] == list(range(1, n_bb + 1))
    expect = _numpy_greedy(correct)
    assert [tuple(keys.index(b) for b in r["backbones"]) for r in best] == expect
    for r, subset in zip(best, expect):
        assert r["oracle_accuracy"] == pytest.approx(correct[:, list(subset)].any(axis=1).mean())
    subsets = rows(con, "SELECT k, count(*) AS c FROM oracle_subsets GROUP BY k ORDER BY k")
    assert [(r["k"], r["c"]) for r in subsets] == [(1, n_bb), (n_bb, 1)]
    (o,) = rows(con, "SELECT * FROM oracle_summary")
    assert o["oracle_accuracy"] == pytest.approx(correct.any(axis=1).mean())
    assert math.isclose(o["best_single_accuracy"], correct.mean(axis=0).max())
