-- representation_similarity: linear CKA and k-nearest-neighbour overlap between the image embeddings
-- of every pair of backbones (backbone_a < backbone_b), on the same seeded sample of n_sample test
-- examples. Computed in numpy by the `analysis` asset (synergy/similarity.py) and stored at
-- <store>/analysis_similarity/dataset=<d>/data.parquet; this view is skipped until one such file exists.
CREATE OR REPLACE VIEW representation_similarity AS
SELECT dataset, backbone_a, backbone_b, cka, knn_overlap, n_sample, knn_k, seed
FROM read_parquet({{store}} || '/analysis_similarity/*/data.parquet', hive_partitioning = true,
                  hive_types = {'dataset': VARCHAR})
WHERE backbone_a IN (SELECT backbone FROM backbones) AND backbone_b IN (SELECT backbone FROM backbones)
  AND dataset IN (SELECT dataset FROM datasets);
