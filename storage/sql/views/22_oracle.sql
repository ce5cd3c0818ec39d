-- Oracle upper bounds and who solves what (test split). An example counts as solved by a set of
-- backbones when at least one of them predicts it correctly; the denominator is every test example
-- that has a prediction from at least one backbone of the dataset.

-- who_solves_what: the data behind Venn diagrams. One row per set of backbones that is exactly the
-- set getting an example right (mask 0 / backbones [] = nobody).
CREATE OR REPLACE VIEW who_solves_what AS
WITH counts AS (SELECT dataset, mask, count(*) AS n_examples FROM correct_masks GROUP BY ALL)
SELECT c.dataset, c.mask,
       coalesce(list(ab.backbone ORDER BY ab.bit) FILTER (WHERE ab.backbone IS NOT NULL), []) AS backbones,
       bit_count(c.mask)::INTEGER AS n_solvers, any_value(c.n_examples)::BIGINT AS n_examples,
       any_value(c.n_examples) / any_value(t.n_total) AS share
FROM counts c
JOIN (SELECT dataset, sum(n_examples) AS n_total FROM counts GROUP BY dataset) t USING (dataset)
LEFT JOIN analysis_backbones ab ON ab.dataset = c.dataset AND (c.mask & ab.bit_mask) <> 0
GROUP BY c.dataset, c.mask;

-- oracle_subset_masks: the subsets the oracle views score (no data read): every non-empty subset of
-- a dataset's backbones up to 12 backbones (4,095 subsets); with more, the singletons and the full set.
CREATE OR REPLACE VIEW oracle_subset_masks AS
WITH sizes AS (
    SELECT dataset, any_value(n_backbones) AS n_backbones, bit_or(bit_mask) AS all_bits
    FROM analysis_backbones GROUP BY dataset
)
SELECT s.dataset, r.subset::UBIGINT AS subset
FROM sizes s JOIN range(1, 4096) r(subset) ON s.n_backbones <= 12 AND r.subset < (1 << s.n_backbones)
UNION ALL
SELECT s.dataset, ab.bit_mask FROM sizes s JOIN analysis_backbones ab USING (dataset) WHERE s.n_backbones > 12
UNION ALL
SELECT dataset, all_bits FROM sizes WHERE n_backbones > 12;

-- oracle_subsets: oracle accuracy of every subset in oracle_subset_masks, each scored against the
-- distinct masks of correct_masks (at most 2^n of them), not against the examples.
CREATE OR REPLACE VIEW oracle_subsets AS
WITH counts AS (SELECT dataset, mask, count(*) AS n_examples FROM correct_masks GROUP BY ALL),
scored AS (
    SELECT sub.dataset, sub.subset,
           coalesce(sum(c.n_examples) FILTER (WHERE (c.mask & sub.subset) <> 0), 0)::BIGINT AS n_solved,
           sum(c.n_examples)::BIGINT AS n
    FROM oracle_subset_masks sub JOIN counts c USING (dataset)
    GROUP BY sub.dataset, sub.subset
)
SELECT s.dataset, s.subset, list(ab.backbone ORDER BY ab.bit) AS backbones, bit_count(s.subset)::INTEGER AS k,
       any_value(s.n_solved) AS n_solved, any_value(s.n) AS n, any_value(s.n_solved) / any_value(s.n) AS oracle_accuracy
FROM scored s JOIN analysis_backbones ab ON ab.dataset = s.dataset AND (s.subset & ab.bit_mask) <> 0
GROUP BY s.dataset, s.subset;

-- oracle_best_by_k: the best subset of each size k. Up to 12 backbones it is the exact best over all
-- subsets (ties: the smallest subset mask, i.e. the alphabetically earliest backbones); beyond 12,
-- greedy forward selection (each step adds the backbone that solves the most examples; ties: the
-- lowest bit), computed by a recursive query over the distinct masks.
CREATE OR REPLACE VIEW oracle_best_by_k AS
WITH RECURSIVE counts AS MATERIALIZED (SELECT dataset, mask, count(*) AS n_examples FROM correct_masks GROUP BY ALL),
totals AS (SELECT dataset, sum(n_examples)::BIGINT AS n FROM counts GROUP BY dataset),
sizes AS (SELECT dataset, any_value(n_backbones) AS n_backbones FROM analysis_backbones GROUP BY dataset),
exhaustive AS (
    SELECT sub.dataset, bit_count(sub.subset)::INTEGER AS k, sub.subset,
           coalesce(sum(c.n_examples) FILTER (WHERE (c.mask & sub.subset) <> 0), 0)::BIGINT AS n_solved
    FROM oracle_subset_masks sub JOIN counts c USING (dataset)
    WHERE sub.dataset IN (SELECT dataset FROM sizes WHERE n_backbones <= 12)
    GROUP BY sub.dataset, sub.subset
),
greedy(dataset, k, subset, n_solved, n_backbones) AS (
    SELECT dataset, 0, 0::UBIGINT, 0::BIGINT, n_backbones FROM sizes WHERE n_backbones > 12
    UNION ALL
    SELECT dataset, k, subset, n_solved, n_backbones FROM (
        SELECT g.dataset, g.k + 1 AS k, g.subset | ab.bit_mask AS subset, g.n_backbones, ab.bit,
               coalesce(sum(c.n_examples) FILTER (WHERE (c.mask & (g.subset | ab.bit_mask)) <> 0), 0)::BIGINT
                   AS n_solved
        FROM greedy g
        JOIN analysis_backbones ab ON ab.dataset = g.dataset AND (g.subset & ab.bit_mask) = 0
        JOIN counts c ON c.dataset = g.dataset
        WHERE g.k < g.n_backbones
        GROUP BY g.dataset, g.k, g.subset, g.n_backbones, ab.bit, ab.bit_mask
    ) candidates
    QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY n_solved DESC, bit) = 1
),
best AS (
    SELECT dataset, k, subset, n_solved, 'exhaustive' AS method FROM exhaustive
    QUALIFY row_number() OVER (PARTITION BY dataset, k ORDER BY n_solved DESC, subset) = 1
    UNION ALL
    SELECT dataset, k, subset, n_solved, 'greedy' AS method FROM greedy WHERE k > 0
)
SELECT b.dataset, b.k, list(ab.backbone ORDER BY ab.bit) AS backbones, b.subset,
       any_value(b.n_solved / t.n) AS oracle_accuracy, any_value(b.method) AS method
FROM best b
JOIN totals t USING (dataset)
JOIN analysis_backbones ab ON ab.dataset = b.dataset AND (b.subset & ab.bit_mask) <> 0
GROUP BY b.dataset, b.k, b.subset;

-- oracle_summary: the headline. THE CLI DEMO SUMMARY QUERIES THESE EXACT COLUMNS.
-- best_single_* is the best single backbone on the same examples (ties: alphabetically first key);
-- oracle_gain = oracle_accuracy - best_single_accuracy.
CREATE OR REPLACE VIEW oracle_summary AS
WITH counts AS (SELECT dataset, mask, count(*) AS n FROM correct_masks GROUP BY ALL),
per_backbone AS (
    SELECT c.dataset, ab.backbone, ab.n_backbones,
           coalesce(sum(c.n) FILTER (WHERE (c.mask & ab.bit_mask) <> 0), 0) / sum(c.n) AS accuracy
    FROM counts c JOIN analysis_backbones ab USING (dataset)
    GROUP BY c.dataset, ab.backbone, ab.n_backbones
), best AS (
    SELECT * FROM per_backbone QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY accuracy DESC, backbone) = 1
), oracle AS (
    SELECT dataset, coalesce(sum(n) FILTER (WHERE mask <> 0), 0) / sum(n) AS oracle_accuracy FROM counts GROUP BY dataset
)
SELECT b.dataset, b.n_backbones, b.backbone AS best_single_backbone, b.accuracy AS best_single_accuracy,
       o.oracle_accuracy, o.oracle_accuracy - b.accuracy AS oracle_gain
FROM best b JOIN oracle o USING (dataset);
