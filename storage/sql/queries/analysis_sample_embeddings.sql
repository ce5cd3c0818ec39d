-- One backbone's test embeddings for the sampled examples (registered as `analysis_sample`), in id order.
SELECT example_id, embedding FROM embeddings
WHERE dataset = $dataset AND backbone = $backbone AND split = 'test'
  AND example_id IN (SELECT example_id FROM analysis_sample)
ORDER BY example_id;
