"""The analysis SQL against independent numpy / scikit-learn implementations, on random stores
(a few thousand rows, 4 backbones) and on the demo store when it has been built."""

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from analysis_support import BASE, SHIFT, rows
from sklearn.metrics import cohen_kappa_score

N_CLASSES = 5
KEYS = ["rn-a", "rn-b", "vit-a", "vit-b"]
FAMILIES = {"rn-a": "resnet", "rn-b": "resnet", "vit-a": "vit", "vit-b": "vit"}


def _random_preds(rng, labels, skill):
    """Right with probability `skill`, otherwise a random class (possibly right by chance)."""
    right = rng.random(len(labels)) < skill
    return np.where(right, labels, rng.integers(0, N_CLASSES, len(labels)))


@pytest.fixture(scope="module")
def random_store(tmp_path_factory):
    from analysis_support import SynthStore

    s = SynthStore(tmp_path_factory.mktemp("random"), FAMILIES, tuple(f"c{i}" for i in range(N_CLASSES)),
                   shift={"kinds": ["noise", "blur"], "severities": [1, 2]})
    rng = np.random.default_rng(42)
    n = 3000
    ids = np.array([f"test-{i:05d}" for i in range(n)])
    labels = rng.integers(0, N_CLASSES, n)
    preds = {}
    for j, key in enumerate(KEYS):
        preds[key] = _random_preds(rng, labels, (0.55, 0.6, 0.4, 0.7)[j])
    # vit-b lost 30 examples (rejected images): pairs and oracle must cope
    keep = np.ones(n, bool)
    keep[rng.choice(n, 30, replace=False)] = False
    have = {k: np.ones(n, bool) for k in KEYS}
    have["vit-b"] = keep
    for key in KEYS:
        m = have[key]
        s.predictions(key, BASE, ids[m], labels[m], preds[key][m])
    # shifted dataset: 150 bases x (clean + 2 kinds x 2 severities)
    bases = [f"test-{i:05d}" for i in range(150)]
    shift_ids, shift_labels, kinds = [], [], []
    base_labels = rng.integers(0, N_CLASSES, len(bases))
    for kind, sev in [("none", 0), ("noise", 1), ("noise", 2), ("blur", 1), ("blur", 2)]:
        for b, lab in zip(bases, base_labels):
            shift_ids.append(b if kind == "none" else f"{b}@{kind}-{sev}")
            shift_labels.append(lab)
            kinds.append((kind, sev))
    shift_labels = np.array(shift_labels)
    shift_preds = {}
    for j, key in enumerate(KEYS):
        skill = np.array([(0.8 - 0.15 * sev) * (1 if kind != "blur" or key.startswith("rn") else 0.7)
                          for kind, sev in kinds])
        right = rng.random(len(shift_ids)) < skill
        shift_preds[key] = np.where(right, shift_labels, rng.integers(0, N_CLASSES, len(shift_ids)))
        s.predictions(key, SHIFT, shift_ids, shift_labels, shift_preds[key])
    truth = {"ids": ids, "labels": labels, "preds": preds, "have": have,
             "shift": {"ids": np.array(shift_ids), "labels": shift_labels, "preds": shift_preds, "kinds": kinds}}
    return s, s.connect(), truth


def test_pairwise_agreement_matches_sklearn(random_store):
    _, con, t = random_store
    got = {(r["backbone_a"], r["backbone_b"]): r
           for r in rows(con, "SELECT * FROM pairwise_agreement WHERE dataset = $d", {"d": BASE})}
    assert set(got) == set(combinations(KEYS, 2))
    for a, b in combinations(KEYS, 2):
        m = t["have"][a] & t["have"][b]
        pa_, pb, y = t["preds"][a][m], t["preds"][b][m], t["labels"][m]
        r = got[(a, b)]
        assert r["n"] == m.sum()
        assert r["agreement"] == pytest.approx((pa_ == pb).mean())
        assert r["kappa"] == pytest.approx(cohen_kappa_score(pa_, pb))
        ra, rb = pa_ == y, pb == y
        assert r["both_right"] == (ra & rb).sum()
        assert r["only_a_right"] == (ra & ~rb).sum() and r["only_b_right"] == (~ra & rb).sum()
        assert r["both_wrong_same"] == (~ra & ~rb & (pa_ == pb)).sum()
        assert r["both_wrong_different"] == (~ra & ~rb & (pa_ != pb)).sum()


def _correct_matrix(t):
    return np.stack([(t["preds"][k] == t["labels"]) & t["have"][k] for k in KEYS], axis=1)


def test_oracle_views_match_numpy(random_store):
    _, con, t = random_store
    correct = _correct_matrix(t)
    subsets = {tuple(r["backbones"]): r for r in rows(con, "SELECT * FROM oracle_subsets WHERE dataset = $d", {"d": BASE})}
    assert len(subsets) == 2 ** len(KEYS) - 1
    expect_best = {}
    for k in range(1, len(KEYS) + 1):
        for combo in combinations(range(len(KEYS)), k):
            acc = correct[:, list(combo)].any(axis=1).mean()
            assert subsets[tuple(KEYS[i] for i in combo)]["oracle_accuracy"] == pytest.approx(acc)
            expect_best[k] = max(expect_best.get(k, 0), acc)
    best = rows(con, "SELECT * FROM oracle_best_by_k WHERE dataset = $d ORDER BY k", {"d": BASE})
    assert [r["oracle_accuracy"] for r in best] == pytest.approx([expect_best[k] for k in range(1, 5)])
    (s,) = rows(con, "SELECT * FROM oracle_summary WHERE dataset = $d", {"d": BASE})
    singles = correct.mean(axis=0)
    assert s["best_single_backbone"] == KEYS[int(singles.argmax())]
    assert s["best_single_accuracy"] == pytest.approx(singles.max())
    assert s["oracle_accuracy"] == pytest.approx(correct.any(axis=1).mean())
    assert s["oracle_gain"] == pytest.approx(correct.any(axis=1).mean() - singles.max())
    # who solves what: one row per distinct set of solvers
    masks = (correct * (1 << np.arange(len(KEYS)))).sum(axis=1)
    venn = {r["mask"]: r for r in rows(con, "SELECT * FROM who_solves_what WHERE dataset = $d", {"d": BASE})}
    values, counts = np.unique(masks, return_counts=True)
    assert {int(v): int(c) for v, c in zip(values, counts)} == {m: r["n_examples"] for m, r in venn.items()}
    for m, r in venn.items():
        assert r["backbones"] == [KEYS[i] for i in range(len(KEYS)) if m >> i & 1]
    # solved by exactly one backbone
    solo = rows(con, "SELECT backbone, count(*) AS n FROM solved_by_one WHERE dataset = $d GROUP BY ALL", {"d": BASE})
    only = correct & (correct.sum(axis=1) == 1)[:, None]
    assert {r["backbone"]: r["n"] for r in solo} == {KEYS[j]: int(only[:, j].sum()) for j in range(4) if only[:, j].any()}


def test_per_class_accuracy_and_diversity_match_numpy(random_store):
    _, con, t = random_store
    got = {(r["backbone"], r["label"]): r
           for r in rows(con, "SELECT * FROM accuracy_per_class WHERE dataset = $d", {"d": BASE})}
    for key in KEYS:
        m = t["have"][key]
        for c in range(N_CLASSES):
            sel = m & (t["labels"] == c)
            assert got[(key, c)]["n"] == sel.sum()
            assert got[(key, c)]["accuracy"] == pytest.approx((t["preds"][key][sel] == c).mean())
    measures = []
    for a, b in combinations(KEYS, 2):
        m = t["have"][a] & t["have"][b]
        ra, rb = t["preds"][a][m] == t["labels"][m], t["preds"][b][m] == t["labels"][m]
        measures.append((ra != rb).mean())
    (d,) = rows(con, "SELECT * FROM diversity WHERE dataset = $d", {"d": BASE})
    assert d["diversity"] == pytest.approx(np.mean(measures))


def test_robustness_matches_numpy(random_store):
    _, con, t = random_store
    sh = t["shift"]
    kinds = np.array([f"{k}-{s}" for k, s in sh["kinds"]])
    clean = kinds == "none-0"
    got = {(r["backbone"], r["perturbation"], r["severity"]): r
           for r in rows(con, "SELECT * FROM robustness WHERE dataset = $d", {"d": SHIFT})}
    oracle = {(r["perturbation"], r["severity"]): r
              for r in rows(con, "SELECT * FROM robustness_oracle WHERE dataset = $d", {"d": SHIFT})}
    for kind, sev in [("none", 0), ("noise", 1), ("noise", 2), ("blur", 1), ("blur", 2)]:
        sel = kinds == f"{kind}-{sev}"  # bases are in the same order in every block
        right = {k: sh["preds"][k][sel] == sh["labels"][sel] for k in KEYS}
        for k in KEYS:
            clean_right = sh["preds"][k][clean] == sh["labels"][clean]
            r = got[(k, kind, sev)]
            assert r["accuracy"] == pytest.approx(right[k].mean())
            assert r["drop"] == pytest.approx(clean_right.mean() - right[k].mean())
        stacked = np.stack([sh["preds"][k][sel] for k in KEYS], axis=1)
        agree = np.mean([(stacked[:, i] == stacked[:, j]).mean() for i, j in combinations(range(4), 2)])
        o = oracle[(kind, sev)]
        assert o["mean_pairwise_agreement"] == pytest.approx(agree)
        assert o["oracle_accuracy"] == pytest.approx(np.stack(list(right.values())).any(axis=0).mean())
        assert o["best_single_accuracy"] == pytest.approx(max(v.mean() for v in right.values()))
    fam = {(r["family"], r["perturbation"]): r["mean_drop"] for r in
           rows(con, "SELECT * FROM robustness_by_family WHERE dataset = $d AND severity IS NULL", {"d": SHIFT})}
    for family, members in (("resnet", ["rn-a", "rn-b"]), ("vit", ["vit-a", "vit-b"])):
        for kind in ("noise", "blur"):
            drops = [got[(k, kind, s)]["drop"] for k in members for s in (1, 2)]
            assert fam[(family, kind)] == pytest.approx(np.mean(drops))


# ---------------------------------------------------------------- the demo store, when it exists
DEMO_STORE = Path(__file__).resolve().parents[2] / "data"


def test_demo_store_matches_numpy():
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from storage.layout import FeatureStore
    from storage.warehouse import connect_memory
    from synergy.registry import load_registry

    registry = load_registry(Path(__file__).resolve().parents[2] / "registry" / "demo.yaml")
    store = FeatureStore(str(DEMO_STORE))
    dataset = registry.dataset_keys[0]
    files = {b: store.embeddings(b, dataset) for b in registry.backbone_keys}
    if not all(p.exists() for p in files.values()):
        pytest.skip("the demo store has no predictions yet (run `make demo`)")
    tables = {}
    for b, path in files.items():
        t = pq.read_table(str(path), columns=["example_id", "split", "pred", "correct"])
        t = t.filter(pc.equal(t["split"], "test")).sort_by("example_id")
        tables[b] = {c: t[c].to_numpy() for c in ("example_id", "pred", "correct")}
    keys = sorted(tables)
    if not all(np.array_equal(tables[k]["example_id"], tables[keys[0]]["example_id"]) for k in keys):
        pytest.skip("demo backbones do not share their test examples")
    correct = np.stack([tables[k]["correct"] for k in keys], axis=1)
    con = connect_memory(store, registry)
    (s,) = rows(con, "SELECT * FROM oracle_summary WHERE dataset = $d", {"d": dataset})
    assert s["oracle_accuracy"] == pytest.approx(correct.any(axis=1).mean())
    assert s["best_single_accuracy"] == pytest.approx(correct.mean(axis=0).max())
    got = {(r["backbone_a"], r["backbone_b"]): r["kappa"]
           for r in rows(con, "SELECT * FROM pairwise_agreement WHERE dataset = $d", {"d": dataset})}
    for a, b in combinations(keys, 2):
        assert got[(a, b)] == pytest.approx(cohen_kappa_score(tables[a]["pred"], tables[b]["pred"]))
    best = rows(con, "SELECT k, oracle_accuracy FROM oracle_best_by_k WHERE dataset = $d ORDER BY k", {"d": dataset})
    for r in best:
        expect = max(correct[:, list(c)].any(axis=1).mean() for c in combinations(range(len(keys)), r["k"]))
        assert r["oracle_accuracy"] == pytest.approx(expect)
