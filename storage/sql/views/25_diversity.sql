-- diversity: one scalar per dataset that summarises how differently its backbones err (test split).
--   diversity = mean over backbone pairs of the disagreement measure (only_a_right + only_b_right) / n
--   (Kuncheva & Whitaker 2003): the share of examples where exactly one of the two is right, i.e.
--   where one backbone could fix the other's error. 0 with one backbone. Disagreements where both are
--   wrong do not count: they cannot help an ensemble.
-- Other summaries beside it, for comparison: the mean share of different predictions, the mean
-- Cohen's kappa, and the oracle gain normalised by the best single backbone's error rate.
CREATE OR REPLACE VIEW diversity AS
SELECT s.dataset,
       coalesce(avg((pa.only_a_right + pa.only_b_right) / pa.n), 0.0) AS diversity,
       'mean over backbone pairs of (only_a_right + only_b_right) / n on the test split '
           || '(Kuncheva-Whitaker disagreement measure); 0 with one backbone' AS definition,
       any_value(s.n_backbones) AS n_backbones,
       coalesce(avg(1 - pa.agreement), 0.0) AS mean_prediction_disagreement,
       avg(pa.kappa) AS mean_kappa,
       CASE WHEN any_value(s.best_single_accuracy) < 1
            THEN any_value(s.oracle_gain) / (1 - any_value(s.best_single_accuracy)) END AS normalized_oracle_gain
FROM oracle_summary s
LEFT JOIN pairwise_agreement pa USING (dataset)
GROUP BY s.dataset;
