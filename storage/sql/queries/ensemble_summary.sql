-- The demo summary's ensemble table: every method (default variants) per dataset. k-shot at k = 1
-- and at the largest k as 'mean ± std' over seeds, the gain over the best single backbone and the
-- share of the oracle gap closed at the largest k, the other two modes (10% of the fewshot pool;
-- ensembles on linear-probe heads) as means, and the cost in GFLOPs per image.
WITH d AS (
    SELECT * FROM ensemble_results WHERE is_default
), bounds AS (
    SELECT dataset, max(k) AS k_hi FROM d WHERE mode = 'kshot' GROUP BY dataset
), picked AS (
    SELECT d.*, b.k_hi FROM d JOIN bounds b USING (dataset)
)
SELECT dataset, method,
       any_value(printf('%.4f ± %.4f', mean, std)) FILTER (WHERE mode = 'kshot' AND k = 1) AS "k=1",
       any_value(printf('%.4f ± %.4f', mean, std)) FILTER (WHERE mode = 'kshot' AND k = k_hi) AS "k=max",
       any_value(k_hi) AS k_max,
       any_value(round(gain_over_best_single, 4)) FILTER (WHERE mode = 'kshot' AND k = k_hi) AS gain_k_max,
       any_value(round(oracle_gap_closed, 3)) FILTER (WHERE mode = 'kshot' AND k = k_hi) AS gap_closed_k_max,
       any_value(round(mean, 4)) FILTER (WHERE mode = 'fraction') AS "10%_pool",
       any_value(round(mean, 4)) FILTER (WHERE mode = 'linear_probe') AS linear_probe,
       any_value(round(cost_gflops, 4)) FILTER (WHERE mode = 'kshot' AND k = k_hi) AS gflops
FROM picked
GROUP BY dataset, method
ORDER BY dataset,
         list_position(['best_single', 'mean_logits', 'mean_probs', 'majority_vote', 'calibrated_mean',
                        'max_confidence', 'entropy_weighted', 'super_learner', 'stacking',
                        'mixture_of_experts', 'nlc', 'logreg_probe', 'cascade', 'oracle'], method);
