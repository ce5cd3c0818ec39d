-- Test accuracy per backbone of one dataset, with how many examples only that backbone solves.
SELECT a.backbone, b.family, a.n, a.accuracy,
       coalesce((SELECT sum(w.n_examples) FROM who_solves_what w
                 WHERE w.dataset = a.dataset AND w.n_solvers = 1 AND w.backbones[1] = a.backbone), 0)::BIGINT
           AS solved_only_by_this
FROM accuracy a JOIN backbones b USING (backbone)
WHERE a.dataset = $dataset AND a.split = 'test'
ORDER BY a.backbone;
