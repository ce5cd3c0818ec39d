-- Images that could not be read during extraction (truncated, empty, not an image, too large),
-- one row per (backbone, dataset, example). Extraction fails instead when their share passes
-- the resource's max_reject_share (default 1%), so a partition's rejects are always a small tail.
CREATE OR REPLACE VIEW rejects AS
SELECT backbone, dataset, example_id, split, path, reason
FROM read_parquet({{store}} || '/rejects/*/*/data.parquet', hive_partitioning = true, union_by_name = true)
WHERE backbone IN (SELECT backbone FROM backbones) AND dataset IN (SELECT dataset FROM datasets);
