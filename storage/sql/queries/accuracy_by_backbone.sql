-- Per-backbone accuracy on one dataset's splits, widest first.
SELECT a.backbone, b.family, a.split, a.n, round(a.accuracy, 4) AS accuracy
FROM accuracy a JOIN backbones b USING (backbone)
WHERE a.dataset = $dataset
ORDER BY a.split DESC, a.accuracy DESC;
