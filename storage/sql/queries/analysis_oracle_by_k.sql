-- Best subset of each size k on one dataset.
SELECT k, backbones, subset, oracle_accuracy, method
FROM oracle_best_by_k WHERE dataset = $dataset ORDER BY k;
