-- Per-backbone accuracy and drop under each perturbation of one shifted dataset.
SELECT backbone, family, perturbation, severity, n, accuracy, clean_accuracy, drop
FROM robustness WHERE dataset = $dataset ORDER BY perturbation, severity, backbone;
