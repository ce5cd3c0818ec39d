-- Per-class test accuracy of every backbone on one dataset (n = 0 rows: class absent from test).
SELECT backbone, family, label, class_name, n, n_correct, accuracy
FROM accuracy_per_class WHERE dataset = $dataset ORDER BY backbone, label;
