-- Agreement and oracle under each perturbation of one shifted dataset.
SELECT perturbation, severity, n_examples, n_backbones, mean_pairwise_agreement, best_single_accuracy,
       oracle_accuracy, oracle_gain
FROM robustness_oracle WHERE dataset = $dataset ORDER BY perturbation, severity;
