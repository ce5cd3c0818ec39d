-- Robustness on shifted datasets (registry `perturbations:`; test split). Every perturbed example
-- `<base_id>@<kind>-<severity>` is compared with its clean twin `<base_id>` (perturbation 'none').
-- Datasets without perturbations give no rows; if no shifted dataset exists the views are empty.

-- shift_predictions: test predictions on shifted datasets with their perturbation and base example.
CREATE OR REPLACE VIEW shift_predictions AS
SELECT p.dataset, p.backbone, e.perturbation, e.severity, split_part(p.example_id, '@', 1) AS base_id,
       p.example_id, p.label, p.pred, p.correct
FROM predictions p
JOIN examples e ON e.dataset = p.dataset AND e.example_id = p.example_id
WHERE p.split = 'test' AND p.dataset IN (SELECT dataset FROM datasets WHERE n_perturbations > 0);

-- robustness: per backbone and (perturbation, severity), accuracy on the perturbed images and on the
-- clean twins of the same base images; drop = clean_accuracy - accuracy. n counts perturbed examples
-- whose clean twin has a prediction. The row perturbation = 'none', severity = 0 is the clean reference.
CREATE OR REPLACE VIEW robustness AS
WITH clean AS (SELECT dataset, backbone, base_id, correct FROM shift_predictions WHERE perturbation = 'none')
SELECT s.dataset, s.backbone, b.family, s.perturbation, s.severity, count(*) AS n,
       avg(s.correct::DOUBLE) AS accuracy, avg(c.correct::DOUBLE) AS clean_accuracy,
       avg(c.correct::DOUBLE) - avg(s.correct::DOUBLE) AS drop
FROM shift_predictions s
JOIN clean c USING (dataset, backbone, base_id)
JOIN backbones b USING (backbone)
GROUP BY s.dataset, s.backbone, b.family, s.perturbation, s.severity;

-- robustness_oracle: per (perturbation, severity), how much the backbones agree and what an oracle
-- over all of them would reach. mean_pairwise_agreement pools every pair of backbones on every
-- example: sum over examples of agreeing pairs / sum of pairs (= the mean of the pairwise agreement
-- rates when every backbone predicted every example); NULL with one backbone.
CREATE OR REPLACE VIEW robustness_oracle AS
WITH by_class AS (
    SELECT dataset, perturbation, severity, example_id, pred, count(*) AS n_same
    FROM shift_predictions GROUP BY ALL
), per_example AS (
    SELECT dataset, perturbation, severity, example_id, sum(n_same) AS n_votes,
           sum(n_same * (n_same - 1) / 2) AS agreeing_pairs
    FROM by_class GROUP BY ALL
), solved AS (
    SELECT dataset, perturbation, severity, example_id, bool_or(correct) AS solved
    FROM shift_predictions GROUP BY ALL
), per_backbone AS (
    SELECT dataset, perturbation, severity, backbone, avg(correct::DOUBLE) AS accuracy
    FROM shift_predictions GROUP BY ALL
), best AS (
    SELECT dataset, perturbation, severity, max(accuracy) AS best_single_accuracy,
           count(*)::INTEGER AS n_backbones
    FROM per_backbone GROUP BY ALL
)
SELECT pe.dataset, pe.perturbation, pe.severity, count(*)::BIGINT AS n_examples, any_value(b.n_backbones) AS n_backbones,
       CASE WHEN sum(pe.n_votes * (pe.n_votes - 1) / 2) > 0
            THEN sum(pe.agreeing_pairs) / sum(pe.n_votes * (pe.n_votes - 1) / 2) END AS mean_pairwise_agreement,
       any_value(b.best_single_accuracy) AS best_single_accuracy,
       avg(s.solved::DOUBLE) AS oracle_accuracy,
       avg(s.solved::DOUBLE) - any_value(b.best_single_accuracy) AS oracle_gain
FROM per_example pe
JOIN solved s USING (dataset, perturbation, severity, example_id)
JOIN best b USING (dataset, perturbation, severity)
GROUP BY pe.dataset, pe.perturbation, pe.severity;

-- robustness_by_family: which family is more robust to what. Mean over the family's backbones of
-- accuracy, clean accuracy and drop; severity NULL = averaged over all severities of the
-- perturbation. robustness_rank = 1 for the family with the smallest mean drop (ties share a rank).
CREATE OR REPLACE VIEW robustness_by_family AS
SELECT dataset, family, perturbation, severity, count(DISTINCT backbone)::INTEGER AS n_backbones,
       avg(accuracy) AS mean_accuracy, avg(clean_accuracy) AS mean_clean_accuracy, avg(drop) AS mean_drop,
       rank() OVER (PARTITION BY dataset, perturbation, severity ORDER BY avg(drop)) AS robustness_rank
FROM robustness
WHERE perturbation <> 'none'
GROUP BY GROUPING SETS ((dataset, family, perturbation, severity), (dataset, family, perturbation));
