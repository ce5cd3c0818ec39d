-- Family-level robustness of one shifted dataset, averaged over severities (severity NULL rows).
SELECT family, perturbation, n_backbones, mean_accuracy, mean_clean_accuracy, mean_drop, robustness_rank
FROM robustness_by_family WHERE dataset = $dataset AND severity IS NULL ORDER BY perturbation, robustness_rank, family;
