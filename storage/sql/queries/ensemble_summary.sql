-- The demo summary's ensemble table: per dataset, k = 1 and the largest k of the kshot runs
-- (default variants), for the methods the paper's claims are about, as 'mean ± std' over seeds,
-- with the gain over the best single backbone at the largest k. Six rows per dataset.
WITH kshot AS (
    SELECT * FROM ensemble_results WHERE mode = 'kshot' AND is_default
), bounds AS (
    SELECT dataset, 1 AS k_lo, max(k) AS k_hi FROM kshot GROUP BY dataset
), picked AS (
    SELECT r.*, b.k_lo, b.k_hi FROM kshot r JOIN bounds b USING (dataset)
    WHERE r.method IN ('best_single', 'mean_logits', 'super_learner', 'nlc', 'logreg_probe', 'oracle')
      AND r.k IN (b.k_lo, b.k_hi)
)
SELECT dataset, method,
       any_value(printf('%.4f ± %.4f', mean, std)) FILTER (WHERE k = k_lo) AS "k=1",
       any_value(printf('%.4f ± %.4f', mean, std)) FILTER (WHERE k = k_hi) AS "k=max",
       any_value(k_hi) AS k_max,
       any_value(gain_over_best_single) FILTER (WHERE k = k_hi) AS gain_k_max,
       any_value(n_seeds) AS n_seeds
FROM picked
GROUP BY dataset, method
ORDER BY dataset, list_position(['best_single', 'mean_logits', 'super_learner', 'nlc', 'logreg_probe', 'oracle'],
                                method);
