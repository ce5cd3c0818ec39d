-- Examples solved by exactly one backbone (test split): what a user looks at to see claim 3.
-- Its own file because it needs the `examples` view (for `ref`, where the image comes from).

-- solved_by_one: test examples that exactly one backbone gets right, with what the others said.
CREATE OR REPLACE VIEW solved_by_one AS
WITH solo AS (
    SELECT cm.dataset, cm.example_id, cm.label, ab.backbone, ab.family
    FROM correct_masks cm JOIN analysis_backbones ab ON ab.dataset = cm.dataset AND cm.mask = ab.bit_mask
)
SELECT s.dataset, s.backbone, s.family, s.example_id, s.label, d.class_names[s.label + 1] AS class_name,
       e.ref,
       coalesce(list({'backbone': p.backbone, 'pred': p.pred} ORDER BY p.backbone)
                FILTER (WHERE p.backbone IS NOT NULL), []) AS other_preds
FROM solo s
JOIN datasets d USING (dataset)
LEFT JOIN examples e ON e.dataset = s.dataset AND e.example_id = s.example_id
LEFT JOIN predictions p ON p.dataset = s.dataset AND p.example_id = s.example_id AND p.split = 'test'
                         AND p.backbone <> s.backbone
GROUP BY s.dataset, s.backbone, s.family, s.example_id, s.label, d.class_names, e.ref;
