-- Queries over a mixbake bake's label manifest (OUT/labels.parquet: one row per sample, no pixels)
-- and OUT/manifest.json (class names). Works for every --format: labels.parquet is always written.
--
-- This file is for a DENSE soft label (a soft_label FLOAT[] column, K entries a row, smoothing
-- included: bakes of up to 1000 classes by default, --soft-label dense or both). A sparse bake
-- (soft_index/soft_value: more than 1000 classes, --soft-label sparse) has its own file,
-- duckdb_labels_sparse.sql; duckdb_query.py picks the file from labels.parquet's columns.
--
-- The variable `out` must hold the OUT directory. From Python: examples/duckdb_query.py OUT
-- (it runs `SET VARIABLE out = 'OUT'` first). With the DuckDB CLI (tried with 1.5.6):
--   duckdb -cmd "SET VARIABLE out = 'OUT'" < examples/duckdb_labels.sql
-- Needs SET VARIABLE / getvariable (DuckDB 1.1 and later). Statements end with ';' at the end of a line.

CREATE OR REPLACE TEMP VIEW labels AS
FROM read_parquet(getvariable('out') || '/labels.parquet');

CREATE OR REPLACE TEMP VIEW classes AS
SELECT generate_subscripts(classes, 1) - 1 AS class_id, unnest(classes) AS name
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

-- Soft-label mass per class (unnest the list with its positions) next to the hard-label count
WITH mass AS (
    SELECT generate_subscripts(soft_label, 1) - 1 AS class_id, unnest(soft_label) AS w
    FROM labels
), hard AS (
    SELECT label AS class_id, count(*) AS hard_rows FROM labels GROUP BY label
)
SELECT c.class_id, c.name, round(sum(m.w), 3) AS soft_mass, coalesce(any_value(h.hard_rows), 0) AS hard_rows
FROM classes c
LEFT JOIN mass m USING (class_id)
LEFT JOIN hard h USING (class_id)
GROUP BY c.class_id, c.name
ORDER BY c.class_id;

-- Sanity checks with list functions: every soft label sums to 1, has one entry per class,
-- and `label` is its argmax (first maximum)
SELECT count(*) AS rows,
       max(abs(list_sum(soft_label) - 1)) AS max_sum_error,
       count(*) FILTER (len(soft_label) <> (SELECT count(*) FROM classes)) AS wrong_length,
       count(*) FILTER (list_position(soft_label, list_max(soft_label)) - 1 <> label) AS label_not_argmax
FROM labels;

-- The class pairs mixed most often (mixup and cutmix rows)
SELECT ca.name AS class_a, cb.name AS class_b, count(*) AS rows, round(avg(l.lam), 3) AS mean_lam
FROM labels l
JOIN classes ca ON ca.class_id = l.label_a
JOIN classes cb ON cb.class_id = l.label_b
WHERE l.op IN ('mixup', 'cutmix')
GROUP BY ALL
ORDER BY rows DESC, class_a, class_b
LIMIT 5;
