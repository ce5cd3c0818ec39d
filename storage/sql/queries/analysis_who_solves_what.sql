-- Venn-diagram counts on one dataset, largest first.
SELECT mask, backbones, n_solvers, n_examples, share
FROM who_solves_what WHERE dataset = $dataset ORDER BY n_examples DESC, mask;
