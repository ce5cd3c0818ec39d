-- Oracle accuracy and gain over the best single backbone on one dataset.
SELECT dataset, n_backbones, best_single_backbone, best_single_accuracy, oracle_accuracy, oracle_gain
FROM oracle_summary WHERE dataset = $dataset;
