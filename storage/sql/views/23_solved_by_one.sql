-- Examples solved by exactly one backbone (test split): what a user looks at to see claim 3.
-- Its own file because it needs the `examples` view (for `ref`, where the image comes from).

-- solved_by_one: test examples that exactly one backbone gets right, with what the others said.
CREATE OR REPLACE VIEW solved_by_one AS
WITH solo AS (
    SELECT cm.dataset, cm.example_id, cm.label, ab.backbone, ab.family
    FROM correct_masks cm JOIN analysis_backbones ab ON ab.dataset = cm.dataset AND cm.mask = ab.bit_mask
), others AS (  -- the predictions of the solo examples only (a semi join: the solo set is the small side)
    SELECT p.dataset, p.example_id, p.backbone, p.pred FROM predictions p
    WHERE p.split = 'test' AND EXISTS (SELECT 1 FROM solo s WHERE s.dataset = p.dataset AND s.example_id = p.example_id)
), refs AS (
    SELECT e.dataset, e.example_id, e.ref FROM examples e
    WHERE EXISTS (SELECT 1 FROM solo s WHERE s.dataset = e.dataset AND s.example_id = e.example_id)
)
SELECT s.dataset, s.backbone, s.family, s.example_id, s.label, d.class_names[s.label + 1] AS class_name,
       any_value(r.ref) AS ref,
       coalesce(list({'backbone': o.backbone, 'pred': o.pred} ORDER BY o.backbone)
                FILTER (WHERE o.backbone IS NOT NULL), []) AS other_preds
FROM solo s
JOIN datasets d USING (dataset)
LEFT JOIN refs r ON r.dataset = s.dataset AND r.example_id = s.example_id
LEFT JOIN others o ON o.dataset = s.dataset AND o.example_id = s.example_id AND o.backbone <> s.backbone
GROUP BY s.dataset, s.backbone, s.family, s.example_id, s.label, d.class_names;
