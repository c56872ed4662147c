-- Queries over a mixbake bake's label manifest whose soft label is SPARSE: OUT/labels.parquet holds
-- soft_index (INTEGER[], ascending class ids) and soft_value (FLOAT[], their weights), the non-zeros
-- of lam*onehot(label_a) + (1-lam)*onehot(label_b) BEFORE label smoothing (at most 2 per row).
-- Smoothing is one scalar, manifest.json -> config.label_smoothing (eps); with K classes a row's
-- dense soft label is  (1 - eps) * sparse + eps / K  (so a class absent from soft_index has eps / K).
--
-- This is the file for bakes of more than 1000 classes (--soft-label auto) and for --soft-label
-- sparse or both. duckdb_labels.sql is the dense form's (a soft_label FLOAT[] column). duckdb_query.py
-- picks the file from labels.parquet's columns (sparse when soft_index is there).
--
-- The variable `out` must hold the OUT directory: examples/duckdb_query.py OUT, or with the CLI
--   duckdb -cmd "SET VARIABLE out = 'OUT'" < examples/duckdb_labels_sparse.sql
-- Needs SET VARIABLE / getvariable (DuckDB 1.1 and later). Statements end with ';' at the end of a line.

CREATE OR REPLACE TEMP VIEW labels AS
FROM read_parquet(getvariable('out') || '/labels.parquet');

CREATE OR REPLACE TEMP VIEW classes AS
SELECT generate_subscripts(classes, 1) - 1 AS class_id, unnest(classes) AS name
FROM read_json(getvariable('out') || '/manifest.json');

CREATE OR REPLACE TEMP VIEW smoothing AS
SELECT config.label_smoothing::DOUBLE AS eps, len(classes) AS k
FROM read_json(getvariable('out') || '/manifest.json');

-- Rows per op, with lam (the weight of source a) and how many pairs mix two different classes
SELECT op,
       count(*) AS rows,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct,
       round(avg(lam), 4) AS mean_lam,
       round(min(lam)::DOUBLE, 4) AS min_lam,
       round(max(lam)::DOUBLE, 4) AS max_lam,
       count(*) FILTER (label_b IS NOT NULL AND label_b <> label_a) AS cross_class
FROM labels
GROUP BY op
ORDER BY rows DESC, op;

-- Soft-label mass per class, smoothing included: unnest the two lists side by side (zipped), sum
-- each class's weights, then (1 - eps) * that + rows * eps / K; next to the hard-label count
WITH mass AS (
    SELECT unnest(soft_index) AS class_id, unnest(soft_value) AS w FROM labels
), per_class AS (
    SELECT class_id, sum(w) AS w FROM mass GROUP BY class_id
), hard AS (
    SELECT label AS class_id, count(*) AS hard_rows FROM labels GROUP BY label
)
SELECT c.class_id, c.name,
       round((1 - s.eps) * coalesce(p.w, 0) + (SELECT count(*) FROM labels) * s.eps / s.k, 3) AS soft_mass,
       coalesce(h.hard_rows, 0) AS hard_rows
FROM classes c
CROSS JOIN smoothing s
LEFT JOIN per_class p USING (class_id)
LEFT JOIN hard h USING (class_id)
ORDER BY c.class_id;

-- Sanity checks with list functions: every row's weights sum to 1 (so its dense form does too),
-- one value per index, indices ascending, distinct and in 0..K-1, at most 2 entries, no zero weight,
-- `label` the argmax (first maximum: the lower class, as indices ascend), and the weight on label_a
-- is lam (1 when there is no partner or it is of the same class)
SELECT count(*) AS rows,
       max(abs(list_sum(soft_value) - 1)) AS max_sum_error,
       count(*) FILTER (len(soft_index) <> len(soft_value)) AS unpaired,
       count(*) FILTER (soft_index <> list_sort(list_distinct(soft_index))
                        OR list_min(soft_index) < 0
                        OR list_max(soft_index) >= (SELECT k FROM smoothing)) AS bad_index,
       max(len(soft_index)) AS max_entries,
       count(*) FILTER (list_min(soft_value) <= 0) AS zero_weight,
       count(*) FILTER (soft_index[list_position(soft_value, list_max(soft_value))] <> label) AS label_not_argmax,
       count(*) FILTER (abs(coalesce(soft_value[list_position(soft_index, label_a::INTEGER)], 0)
                            - CASE WHEN label_b IS NULL OR label_b = label_a THEN 1 ELSE lam END) > 1e-6)
           AS weight_not_lam
FROM labels;

-- The 5 classes with the most soft-label mass before smoothing, and in how many rows they appear
-- (with tens of thousands of classes the per-class table above is long)
WITH mass AS (
    SELECT unnest(soft_index) AS class_id, unnest(soft_value) AS w FROM labels
)
SELECT c.name, round(sum(m.w), 3) AS sparse_mass, count(*) AS rows_with_class
FROM mass m
JOIN classes c USING (class_id)
GROUP BY c.name
ORDER BY sparse_mass DESC, c.name
LIMIT 5;

-- The class pairs mixed most often (mixup and cutmix rows)
SELECT ca.name AS class_a, cb.name AS class_b, count(*) AS rows, round(avg(l.lam), 3) AS mean_lam
FROM labels l
JOIN classes ca ON ca.class_id = l.label_a
JOIN classes cb ON cb.class_id = l.label_b
WHERE l.op IN ('mixup', 'cutmix')
GROUP BY ALL
ORDER BY rows DESC, class_a, class_b
LIMIT 5;
