-- Per-class accuracy and pairwise agreement between backbones (test split).

-- accuracy_per_class: one row per (dataset, backbone, class) of the registry's class list. A class
-- with no test example keeps its row with n = 0 and accuracy NULL.
CREATE OR REPLACE VIEW accuracy_per_class AS
WITH counts AS (
    SELECT dataset, backbone, label, count(*) AS n, count_if(correct) AS n_correct
    FROM predictions WHERE split = 'test' GROUP BY ALL
), classes AS (
    SELECT ab.dataset, ab.backbone, ab.family, c.label::INTEGER AS label, d.class_names[c.label + 1] AS class_name
    FROM analysis_backbones ab JOIN datasets d USING (dataset), range(d.n_classes) c(label)
)
SELECT cl.dataset, cl.backbone, cl.family, cl.label, cl.class_name,
       coalesce(c.n, 0)::BIGINT AS n, coalesce(c.n_correct, 0)::BIGINT AS n_correct,
       c.n_correct / c.n AS accuracy
FROM classes cl LEFT JOIN counts c USING (dataset, backbone, label);

-- pairwise_agreement: every unordered pair (backbone_a < backbone_b) on the test examples both predicted.
--   agreement = share of examples with the same prediction; kappa = Cohen's kappa of the two
--   prediction vectors (NULL when chance agreement is 1); both_right + only_a_right + only_b_right
--   + both_wrong_same + both_wrong_different = n. One backbone: no rows.
CREATE OR REPLACE VIEW pairwise_agreement AS
WITH pairs AS (
    SELECT a.dataset, a.backbone AS backbone_a, b.backbone AS backbone_b, a.bit AS bit_a, b.bit AS bit_b
    FROM analysis_backbones a JOIN analysis_backbones b ON a.dataset = b.dataset AND a.bit < b.bit
), joint AS (
    SELECT p.dataset, p.backbone_a, p.backbone_b, v.label,
           v.preds[list_position(v.bits, p.bit_a)] AS pred_a, v.preds[list_position(v.bits, p.bit_b)] AS pred_b
    FROM example_votes v JOIN pairs p USING (dataset)
), confusion AS (  -- pairs x classes^2 rows at most: everything below is small
    SELECT dataset, backbone_a, backbone_b, pred_a, pred_b, count(*) AS n,
           count_if(pred_a = label) AS a_right, count_if(pred_b = label) AS b_right
    FROM joint WHERE pred_a IS NOT NULL AND pred_b IS NOT NULL
    GROUP BY ALL
), totals AS (
    SELECT dataset, backbone_a, backbone_b, sum(n)::BIGINT AS n,
           coalesce(sum(n) FILTER (WHERE pred_a = pred_b), 0)::BIGINT AS n_agree,
           coalesce(sum(a_right) FILTER (WHERE pred_a = pred_b), 0)::BIGINT AS both_right,
           coalesce(sum(a_right) FILTER (WHERE pred_a <> pred_b), 0)::BIGINT AS only_a_right,
           coalesce(sum(b_right) FILTER (WHERE pred_a <> pred_b), 0)::BIGINT AS only_b_right,
           coalesce(sum(n - a_right) FILTER (WHERE pred_a = pred_b), 0)::BIGINT AS both_wrong_same,
           coalesce(sum(n - a_right - b_right) FILTER (WHERE pred_a <> pred_b), 0)::BIGINT AS both_wrong_different
    FROM confusion GROUP BY ALL
), marginal_a AS (
    SELECT dataset, backbone_a, backbone_b, pred_a AS class, sum(n)::DOUBLE AS n FROM confusion GROUP BY ALL
), marginal_b AS (
    SELECT dataset, backbone_a, backbone_b, pred_b AS class, sum(n)::DOUBLE AS n FROM confusion GROUP BY ALL
), chance AS (
    SELECT dataset, backbone_a, backbone_b, sum(ma.n * mb.n) AS nn
    FROM marginal_a ma JOIN marginal_b mb USING (dataset, backbone_a, backbone_b, class) GROUP BY ALL
)
SELECT t.dataset, t.backbone_a, t.backbone_b, t.n,
       t.n_agree / t.n AS agreement,
       CASE WHEN coalesce(c.nn, 0) / (t.n::DOUBLE * t.n) < 1
            THEN (t.n_agree / t.n - coalesce(c.nn, 0) / (t.n::DOUBLE * t.n)) / (1 - coalesce(c.nn, 0) / (t.n::DOUBLE * t.n))
       END AS kappa,
       t.both_right, t.only_a_right, t.only_b_right, t.both_wrong_same, t.both_wrong_different
FROM totals t LEFT JOIN chance c USING (dataset, backbone_a, backbone_b);
