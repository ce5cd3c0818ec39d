-- Accuracy of every backbone on every split of every dataset.
CREATE OR REPLACE VIEW accuracy AS
SELECT backbone, dataset, split, count(*) AS n, avg(correct::DOUBLE) AS accuracy
FROM predictions
GROUP BY ALL;
