-- Ensembles (docs/ensembles.md): written by the `ensembles` asset, one folder per dataset. Fitting
-- always draws from the `fewshot` split and scoring uses the whole `test` split. This file is skipped
-- until the asset has run for at least one dataset. The Parquet files carry their own `dataset`
-- column, so hive partitioning is off.

-- ensemble_results: one row per dataset x method x variant x mode x k (or fraction): mean and std
-- (ddof 0) of test accuracy over the seeds, the gain over best_single on the same draws, the share
-- of the oracle gap closed, and the cost per test image (GFLOPs, ms) of the backbones the method runs.
-- variant: the NLC variant ('multiply-softplus' is the default); 'default' for every other method.
-- is_default: the row a summary should show (every non-NLC method and the default NLC).
-- mode: kshot (k per class) | fraction (share of the fewshot pool) | linear_probe (probe heads).
CREATE OR REPLACE VIEW ensemble_results AS
SELECT dataset, method, variant, is_default, mode, k, fraction, n_seeds, mean, std,
       gain_over_best_single, oracle_gap_closed, cost_gflops, cost_ms, n_backbones, n_fit, fit_seconds
FROM read_parquet({{store}} || '/ensemble_results/*/data.parquet', hive_partitioning = false)
WHERE dataset IN (SELECT dataset FROM datasets);

-- ensemble_runs: the raw records, one per (draw, method): accuracy per seed, the fitting draw's
-- digest (fit_ids, identical for every method of a draw) and the backbone best_single chose.
CREATE OR REPLACE VIEW ensemble_runs AS
SELECT dataset, method, variant, is_default, mode, k, fraction, seed, accuracy, n_fit, fit_ids,
       fit_seconds, cost_gflops, cost_ms, chosen_backbone
FROM read_parquet({{store}} || '/ensemble_runs/*/data.parquet', hive_partitioning = false)
WHERE dataset IN (SELECT dataset FROM datasets);

-- nlc_ablation: the NLC variants side by side (kshot), with the best single backbone of each k.
CREATE OR REPLACE VIEW nlc_ablation AS
SELECT r.dataset, r.k, r.variant, r.is_default, r.n_seeds, r.mean, r.std, r.gain_over_best_single,
       r.oracle_gap_closed
FROM ensemble_results r
WHERE r.method = 'nlc' AND r.mode = 'kshot'
  AND r.k IN (SELECT k FROM ensemble_results v WHERE v.dataset = r.dataset AND v.method = 'nlc'
              AND v.mode = 'kshot' AND NOT v.is_default);

-- ensemble_by_group: ensemble_results per (perturbation, severity) of the test split (shifted
-- datasets have 1 + kinds x severities groups; a clean dataset has the single group 'none', 0).
CREATE OR REPLACE VIEW ensemble_by_group AS
SELECT dataset, perturbation, severity, method, variant, is_default, mode, k, fraction, n_seeds,
       n_examples, mean, std, gain_over_best_single
FROM read_parquet({{store}} || '/ensemble_by_group/*/data.parquet', hive_partitioning = false)
WHERE dataset IN (SELECT dataset FROM datasets);

-- nlc_weights: the default NLC's factor on each backbone's logits for every test example (fitted on
-- the largest k's seed-0 draw from the fewshot split; see the Parquet footer for the draw).
CREATE OR REPLACE VIEW nlc_weights AS
SELECT dataset, example_id, backbone, weight
FROM read_parquet({{store}} || '/nlc_weights/*/data.parquet', hive_partitioning = false)
WHERE dataset IN (SELECT dataset FROM datasets) AND backbone IN (SELECT backbone FROM backbones);

-- nlc_trust_by_class: which backbone NLC trusts for which true class. mean_weight is the mean raw
-- factor; mean_share the mean of weight / (sum of the example's weights), comparable across
-- variants; trust_rank 1 = the most trusted backbone for that class. accuracy is the backbone's own
-- zero-shot accuracy on the class (test split), to compare trust with competence.
CREATE OR REPLACE VIEW nlc_trust_by_class AS
WITH w AS (
    SELECT nw.dataset, nw.example_id, nw.backbone, nw.weight,
           nw.weight / nullif(sum(nw.weight) OVER (PARTITION BY nw.dataset, nw.example_id), 0) AS share
    FROM nlc_weights nw
), per_class AS (
    SELECT w.dataset, e.label, w.backbone, count(*) AS n, avg(w.weight) AS mean_weight, avg(w.share) AS mean_share
    FROM w JOIN examples e ON e.dataset = w.dataset AND e.example_id = w.example_id
    GROUP BY ALL
), acc AS (
    SELECT dataset, backbone, label, avg(correct::DOUBLE) AS accuracy
    FROM predictions WHERE split = 'test' GROUP BY ALL
)
SELECT pc.dataset, pc.label, d.class_names[pc.label + 1] AS class_name, pc.backbone, pc.n,
       pc.mean_weight, pc.mean_share,
       rank() OVER (PARTITION BY pc.dataset, pc.label ORDER BY pc.mean_share DESC) AS trust_rank,
       acc.accuracy
FROM per_class pc
JOIN datasets d USING (dataset)
LEFT JOIN acc USING (dataset, backbone, label);

-- ensemble_efficiency: kind 'subset' = the default NLC on one subset of backbones (largest k; a
-- single backbone is its own zero-shot accuracy, since a positive factor cannot change its argmax),
-- kind 'cascade' = the cheapest-first cascade at one confidence threshold (cost = mean per image).
-- best_single_accuracy is the best single backbone's test accuracy (the strongest reference).
CREATE OR REPLACE VIEW ensemble_efficiency AS
SELECT dataset, kind, backbones, n_backbones, k, n_seeds, threshold, cost_gflops, cost_ms, accuracy,
       accuracy_std, oracle_accuracy, best_single_accuracy, beats_best_single
FROM read_parquet({{store}} || '/ensemble_efficiency/*/data.parquet', hive_partitioning = false)
WHERE dataset IN (SELECT dataset FROM datasets);

-- nlc_cheapest_subset: per dataset, the cheapest backbone subset (GFLOPs, then ms) whose NLC beats
-- the best single backbone; no row when none does.
CREATE OR REPLACE VIEW nlc_cheapest_subset AS
SELECT dataset, backbones, n_backbones, cost_gflops, cost_ms, accuracy, best_single_accuracy,
       accuracy - best_single_accuracy AS gain
FROM ensemble_efficiency
WHERE kind = 'subset' AND beats_best_single
QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY cost_gflops NULLS LAST, cost_ms NULLS LAST,
                                                         accuracy DESC) = 1;

-- group_diversity: the `diversity` measure (25_diversity.sql: mean over backbone pairs of the share
-- of examples exactly one of the two gets right) per (perturbation, severity) of the test split.
CREATE OR REPLACE VIEW group_diversity AS
WITH p AS (
    SELECT p.dataset, p.backbone, p.example_id, p.correct, e.perturbation, e.severity
    FROM predictions p JOIN examples e ON e.dataset = p.dataset AND e.example_id = p.example_id
    WHERE p.split = 'test'
), pairs AS (
    SELECT a.dataset, a.perturbation, a.severity, a.backbone AS backbone_a, b.backbone AS backbone_b,
           avg((a.correct <> b.correct)::DOUBLE) AS disagreement
    FROM p a JOIN p b ON a.dataset = b.dataset AND a.example_id = b.example_id AND a.backbone < b.backbone
    GROUP BY ALL
)
SELECT dataset, perturbation, severity, count(*)::INTEGER AS n_pairs, avg(disagreement) AS diversity
FROM pairs GROUP BY ALL;

-- ensemble_gain_vs_diversity: each ensemble's gain over best_single next to the diversity of the
-- backbones it combines. level 'dataset': one point per dataset (the `diversity` view);
-- level 'group': one point per (perturbation, severity) of every shifted dataset (group_diversity).
CREATE OR REPLACE VIEW ensemble_gain_vs_diversity AS
SELECT 'dataset' AS level, r.dataset, NULL::VARCHAR AS perturbation, NULL::INTEGER AS severity,
       r.method, r.variant, r.is_default, r.mode, r.k, r.fraction, r.mean AS accuracy,
       r.gain_over_best_single AS gain, d.diversity
FROM ensemble_results r JOIN diversity d USING (dataset)
WHERE r.method NOT IN ('best_single', 'oracle')
UNION ALL
SELECT 'group' AS level, g.dataset, g.perturbation, g.severity, g.method, g.variant, g.is_default, g.mode, g.k,
       g.fraction, g.mean AS accuracy, g.gain_over_best_single AS gain, gd.diversity
FROM ensemble_by_group g
JOIN group_diversity gd USING (dataset, perturbation, severity)
WHERE g.method NOT IN ('best_single', 'oracle')
  AND g.dataset IN (SELECT dataset FROM datasets WHERE n_perturbations > 0);

-- ensemble_gain_diversity_corr: Pearson correlation of gain with diversity per method, mode and k,
-- over the points of one level (n_points of them; NULL with fewer than 3 points or no spread).
CREATE OR REPLACE VIEW ensemble_gain_diversity_corr AS
SELECT level, method, variant, is_default, mode, k, fraction, count(*)::INTEGER AS n_points,
       CASE WHEN count(*) >= 3 THEN corr(gain, diversity) END AS correlation,
       avg(gain) AS mean_gain, avg(diversity) AS mean_diversity
FROM ensemble_gain_vs_diversity
WHERE gain IS NOT NULL AND diversity IS NOT NULL
GROUP BY ALL;
