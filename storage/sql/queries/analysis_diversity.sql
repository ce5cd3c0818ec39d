-- The dataset's diversity scalar and the other summaries beside it.
SELECT dataset, diversity, definition, n_backbones, mean_prediction_disagreement, mean_kappa, normalized_oracle_gain
FROM diversity WHERE dataset = $dataset;
