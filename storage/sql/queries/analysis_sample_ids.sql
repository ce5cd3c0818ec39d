-- Test examples of one dataset that every backbone predicted: the population the CKA sample is drawn from.
SELECT example_id FROM correct_masks
WHERE dataset = $dataset AND n_votes = (SELECT max(n_backbones) FROM analysis_backbones WHERE dataset = $dataset)
ORDER BY example_id;
