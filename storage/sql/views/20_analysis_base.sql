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

-- example_votes: one row per test example, with every backbone's prediction. `bits` and `preds` are
-- aligned lists ordered by bit; a backbone with no row for the example (a rejected image) is absent
-- from both, so look predictions up with preds[list_position(bits, bit)].
CREATE OR REPLACE VIEW example_votes AS
SELECT p.dataset, p.example_id, any_value(p.label) AS label,
       count(*)::INTEGER AS n_votes,
       bit_or(CASE WHEN p.correct THEN ab.bit_mask ELSE 0::UBIGINT END) AS mask,
       list(ab.bit ORDER BY ab.bit) AS bits,
       list(p.pred ORDER BY ab.bit) AS preds
FROM predictions p JOIN analysis_backbones ab USING (dataset, backbone)
WHERE p.split = 'test'
GROUP BY p.dataset, p.example_id;

-- correct_masks: per test example, the bitmask of the backbones that get it right
-- (bit i set <=> the backbone with bit index i in analysis_backbones is right).
CREATE OR REPLACE VIEW correct_masks AS
SELECT dataset, example_id, label, mask, bit_count(mask)::INTEGER AS n_correct, n_votes
FROM example_votes;
