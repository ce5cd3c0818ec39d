-- Building blocks of the analysis views (docs/sql.md, "Analysis views"). Test split only.
--
-- analysis_backbones: the backbones with test predictions on each dataset, each with a bit index =
-- its rank (0-based) in the sorted order of backbone keys within that dataset, and bit_mask = 2^bit.
-- Masks are UBIGINT, so a dataset can hold up to 64 backbones.
CREATE OR REPLACE VIEW analysis_backbones AS
WITH present AS (SELECT DISTINCT dataset, backbone FROM predictions WHERE split = 'test')
SELECT p.dataset, p.backbone, b.family,
       bit, (1::UBIGINT << bit::UBIGINT) AS bit_mask, n_backbones
FROM (SELECT dataset, backbone,
             (row_number() OVER (PARTITION BY dataset ORDER BY backbone) - 1)::INTEGER AS bit,
             (count(*) OVER (PARTITION BY dataset))::INTEGER AS n_backbones
      FROM present) p
JOIN backbones b USING (backbone);

-- correct_masks: one row per test example. mask = the backbones that get it right (bit i set <=> the
-- backbone with bit index i is right); present = the backbones that have a prediction for it (all of
-- them unless an image was rejected); n_votes = bit_count(present).
CREATE OR REPLACE VIEW correct_masks AS
SELECT p.dataset, p.example_id, any_value(p.label) AS label,
       bit_or(CASE WHEN p.correct THEN ab.bit_mask ELSE 0::UBIGINT END) AS mask,
       bit_count(bit_or(CASE WHEN p.correct THEN ab.bit_mask ELSE 0::UBIGINT END))::INTEGER AS n_correct,
       bit_or(ab.bit_mask) AS present, count(*)::INTEGER AS n_votes
FROM predictions p JOIN analysis_backbones ab USING (dataset, backbone)
WHERE p.split = 'test'
GROUP BY p.dataset, p.example_id;

-- class_votes: one row per (test example, predicted class): which backbones predicted that class
-- (pred_mask) and whether it is the label. The pairwise views are sums over this table grouped by
-- masks, so they never expand examples x pairs.
CREATE OR REPLACE VIEW class_votes AS
SELECT p.dataset, p.example_id, p.pred AS class, bool_or(p.correct) AS is_label, bit_or(ab.bit_mask) AS pred_mask
FROM predictions p JOIN analysis_backbones ab USING (dataset, backbone)
WHERE p.split = 'test'
GROUP BY p.dataset, p.example_id, p.pred;
