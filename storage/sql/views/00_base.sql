-- Base views over the Parquet feature store. {{store}} is the store root, filled in at build time.
-- Every view keeps only backbones and datasets that the registry lists now.

CREATE OR REPLACE VIEW examples AS
SELECT dataset, example_id, split, label, ref, perturbation, severity
FROM read_parquet({{store}} || '/datasets/*/data.parquet', hive_partitioning = true)
WHERE dataset IN (SELECT dataset FROM datasets);

CREATE OR REPLACE VIEW embeddings AS
SELECT backbone, dataset, example_id, split, label, embedding
FROM read_parquet({{store}} || '/embeddings/*/*/data.parquet', hive_partitioning = true, union_by_name = true)
WHERE backbone IN (SELECT backbone FROM backbones) AND dataset IN (SELECT dataset FROM datasets);

CREATE OR REPLACE VIEW predictions AS
SELECT backbone, dataset, example_id, split, label, pred, correct, confidence, logits
FROM read_parquet({{store}} || '/embeddings/*/*/data.parquet', hive_partitioning = true, union_by_name = true)
WHERE backbone IN (SELECT backbone FROM backbones) AND dataset IN (SELECT dataset FROM datasets);

CREATE OR REPLACE VIEW class_embeddings AS
SELECT backbone, dataset, class_index, class_name, embedding
FROM read_parquet({{store}} || '/class_embeddings/*/*/data.parquet', hive_partitioning = true, union_by_name = true)
WHERE backbone IN (SELECT backbone FROM backbones) AND dataset IN (SELECT dataset FROM datasets);
