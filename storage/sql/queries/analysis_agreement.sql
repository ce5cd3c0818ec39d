-- Pairwise agreement, kappa and error overlap on one dataset.
SELECT backbone_a, backbone_b, n, agreement, kappa, both_right, only_a_right, only_b_right,
       both_wrong_same, both_wrong_different
FROM pairwise_agreement WHERE dataset = $dataset ORDER BY backbone_a, backbone_b;
