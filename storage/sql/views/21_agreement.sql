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
-- How: class_votes says, per (example, class), which backbones predicted the class. Grouped by
-- (present, pred_mask, is_label, class) it shrinks to a few thousand rows, and every pair statistic is
-- a masked sum over those rows (a and b agree on an example <=> both bits are in one pred_mask).
CREATE OR REPLACE VIEW pairwise_agreement AS
WITH sizes AS (SELECT dataset, bit_or(bit_mask) AS all_bits FROM analysis_backbones GROUP BY dataset),
votes AS MATERIALIZED (SELECT * FROM class_votes),  -- read twice below, computed once
incomplete AS (  -- examples some backbone did not predict (rejected images); usually none
    SELECT v.dataset, v.example_id, bit_or(v.pred_mask) AS present
    FROM votes v JOIN sizes s USING (dataset)
    GROUP BY v.dataset, v.example_id, s.all_bits
    HAVING bit_or(v.pred_mask) <> s.all_bits
),
g AS (
    SELECT v.dataset, coalesce(i.present, s.all_bits) AS present, v.pred_mask, v.is_label, v.class, count(*) AS n
    FROM votes v JOIN sizes s USING (dataset) LEFT JOIN incomplete i USING (dataset, example_id)
    GROUP BY ALL
),
pairs AS (
    SELECT a.dataset, a.backbone AS backbone_a, b.backbone AS backbone_b, a.bit_mask AS ma, b.bit_mask AS mb,
           a.bit_mask | b.bit_mask AS mab
    FROM analysis_backbones a JOIN analysis_backbones b ON a.dataset = b.dataset AND a.bit < b.bit
),
pair_g AS (  -- g rows of examples both backbones predicted, with each one's vote
    SELECT p.dataset, p.backbone_a, p.backbone_b, g.class, g.is_label, g.n,
           (g.pred_mask & p.ma) <> 0 AS a_said, (g.pred_mask & p.mb) <> 0 AS b_said
    FROM g JOIN pairs p ON p.dataset = g.dataset AND (g.present & p.mab) = p.mab
),
totals AS (
    SELECT dataset, backbone_a, backbone_b,
           coalesce(sum(n) FILTER (WHERE a_said), 0)::BIGINT AS n,  -- a votes once per example
           coalesce(sum(n) FILTER (WHERE a_said AND b_said), 0)::BIGINT AS n_agree,
           coalesce(sum(n) FILTER (WHERE a_said AND b_said AND is_label), 0)::BIGINT AS both_right,
           coalesce(sum(n) FILTER (WHERE a_said AND is_label), 0)::BIGINT AS a_right,
           coalesce(sum(n) FILTER (WHERE b_said AND is_label), 0)::BIGINT AS b_right
    FROM pair_g GROUP BY ALL
),
chance AS (  -- pe * n^2 = sum over classes of (a's count of the class) x (b's count of the class)
    SELECT dataset, backbone_a, backbone_b, sum(na * nb) AS nn FROM (
        SELECT dataset, backbone_a, backbone_b, class,
               coalesce(sum(n) FILTER (WHERE a_said), 0)::DOUBLE AS na,
               coalesce(sum(n) FILTER (WHERE b_said), 0)::DOUBLE AS nb
        FROM pair_g GROUP BY ALL)
    GROUP BY ALL
),
scored AS (
    SELECT t.*, t.n_agree / t.n AS po, c.nn / (t.n::DOUBLE * t.n) AS pe
    FROM totals t JOIN chance c USING (dataset, backbone_a, backbone_b)
    WHERE t.n > 0
)
SELECT dataset, backbone_a, backbone_b, n, po AS agreement,
       CASE WHEN pe < 1 THEN (po - pe) / (1 - pe) END AS kappa,
       both_right, a_right - both_right AS only_a_right, b_right - both_right AS only_b_right,
       n_agree - both_right AS both_wrong_same,
       n - n_agree - (a_right - both_right) - (b_right - both_right) AS both_wrong_different
FROM scored;
