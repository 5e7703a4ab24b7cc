-- Lineage: table and column edges from parse analysis of definitions, kept
-- in step with create, alter, drop and schema changes; impact analysis
-- through views; DAGs with fan-out and fan-in; privileges; the DOT picture.
CALL number_ids_from(200000);
SET client_min_messages = warning;
CREATE SCHEMA lin;
CREATE SCHEMA "Lin Gold";
SET search_path = lin, public;
CREATE TABLE raw_orders (id int, customer_id int, status text, amount text, email text,
                         updated_at timestamptz, op text, "Order Items" int);
CREATE TABLE raw_customers (id int, name text, country text);
CREATE TABLE fx (currency text, rate numeric);
CREATE TABLE "select" ("from" int, "Mixed Case" text);

-- Expressions of every shape: a cast, functions around COALESCE, CASE
-- (its conditions decide, its results flow), a correlated subquery (its
-- output flows, its WHERE decides), an aggregate with FILTER, a whole row.
SELECT pipeline.create_pipeline('orders_silver', 'raw_orders', 'silver_orders', key => '{id}',
    sequence_by => 'updated_at', delete_when => $$op = 'd'$$, filter => $$status <> 'test'$$,
    columns => $${"amount": "amount::numeric(12,2)",
                  "email": "lower(coalesce(email, 'unknown'))",
                  "op": null,
                  "status": "CASE WHEN status = 'x' THEN 'cancelled' ELSE upper(status) END",
                  "customer_name": "(SELECT c.name FROM lin.raw_customers c WHERE c.id = s.customer_id)",
                  "eur": "amount::numeric * (SELECT max(rate) FILTER (WHERE currency = 'EUR') FROM lin.fx)",
                  "is_big": "EXISTS (SELECT 1 FROM lin.fx WHERE rate > 2)",
                  "raw": "row_to_json(s)::text"}$$) > 0 AS created;
SELECT level, source, source_column, target_column, lineage_type, subtype, origin, transformation
  FROM pipeline.lineage WHERE pipeline = 'orders_silver'
 ORDER BY level DESC, target_column NULLS LAST, source::text, source_column, lineage_type, origin;

-- Fan-out: two pipelines read the silver table (through its change log,
-- shown as the silver table itself); fan-in: gold reads both customers and
-- orders.  Quoted names and reserved words go through.
SELECT pipeline.create_pipeline('customers_silver', 'raw_customers', 'silver_customers', key => '{id}') > 0 AS created;
SELECT pipeline.create_pipeline('orders_gold', 'silver_orders', '"Lin Gold"."Orders Gold"', key => '{id}',
    columns => '{"total": "amount * 2", "Customer": "customer_name"}') > 0 AS created;
SELECT pipeline.create_pipeline('orders_audit', 'silver_orders', 'orders_audit', strategy => 'append',
    columns => '{"amount": null, "customer_name": null, "eur": null, "is_big": null, "raw": null, "email": null}') > 0 AS created;
SELECT pipeline.create_pipeline('customers_gold', 'silver_customers', '"Lin Gold"."Orders Gold"', key => '{id}',
    columns => '{"Customer": "name"}') > 0 AS created;
SELECT pipeline.create_pipeline('reserved', '"select"', '"Lin Gold"."where"', key => '{from}') > 0 AS created;
SELECT pipeline, source, target, lineage_type FROM pipeline.lineage
 WHERE level = 'table' AND pipeline IS NOT NULL ORDER BY 1, 2::text;
-- a change log's own columns (_op of the default delete_when) give no edge
SELECT count(*) AS op_edges FROM pipeline.lineage WHERE source_column LIKE '\_%';
-- a pipeline on a captured table: the table itself is the source
CREATE TABLE app_users (id int PRIMARY KEY, email text);
SELECT pipeline.capture('app_users');
SELECT pipeline.create_pipeline('users_silver', 'app_users', 'silver_users', key => '{id}',
    columns => '{"email": "lower(email)"}') > 0 AS created;
SELECT level, source, source_column, target_column, lineage_type FROM pipeline.lineage
 WHERE pipeline = 'users_silver' ORDER BY 1 DESC, 3;
SELECT pipeline.drop_pipeline('users_silver');
SELECT pipeline.uncapture('app_users');

-- Views and materialized views on targets (and views on those) are part of
-- the graph, from pg_depend.
CREATE VIEW "Lin Gold".big_orders AS SELECT * FROM "Lin Gold"."Orders Gold" WHERE total > 100;
CREATE MATERIALIZED VIEW "Lin Gold".order_count AS SELECT count(*) FROM "Lin Gold".big_orders;
CREATE VIEW unrelated AS SELECT 1 AS one;
SELECT source, target, origin FROM pipeline.lineage WHERE pipeline IS NULL ORDER BY 1::text, 2::text;

-- Impact analysis: what breaks if raw_orders changes, depth-limited too.
SELECT * FROM pipeline.downstream('raw_orders');
SELECT * FROM pipeline.downstream('raw_orders', 1);
SELECT * FROM pipeline.downstream('raw_customers');
SELECT * FROM pipeline.upstream('"Lin Gold".order_count');
SELECT * FROM pipeline.upstream('"Lin Gold".order_count', 2);
SELECT * FROM pipeline.downstream('unrelated');

-- Column lineage down to the staging columns.
SELECT depth, source, source_column, target, target_column, pipeline, lineage_type, subtype, origin
  FROM pipeline.column_lineage('"Lin Gold"."Orders Gold"', 'total');
SELECT depth, source, source_column, target, target_column, pipeline, lineage_type, subtype, origin
  FROM pipeline.column_lineage('"Lin Gold"."Orders Gold"', 'Customer');

-- Alter recomputes the edges; a schema change applied by a run too.
SELECT pipeline.alter_pipeline('orders_gold', columns => '{"total": "coalesce(eur, amount)", "Customer": "customer_name"}');
SELECT source_column, target_column, lineage_type, subtype, transformation FROM pipeline.lineage
 WHERE pipeline = 'orders_gold' AND target_column = 'total' ORDER BY 1;
SELECT pipeline.alter_pipeline('customers_silver', on_schema_change => 'append_new_columns');
ALTER TABLE raw_customers ADD COLUMN segment text;
CALL pipeline.run('customers_silver');
SELECT source_column, target_column FROM pipeline.lineage
 WHERE pipeline = 'customers_silver' AND level = 'column' ORDER BY 1;

-- Drop takes the pipeline's edges with it.
SELECT pipeline.drop_pipeline('orders_audit');
SELECT count(*) AS audit_edges FROM pipeline.lineage WHERE pipeline = 'orders_audit';
SELECT count(*) AS audit_catalog_rows FROM pipeline.lineage_edges e
 WHERE NOT EXISTS (SELECT 1 FROM pipeline.pipeline_defs d WHERE d.id = e.pipeline_id);
SELECT * FROM pipeline.downstream('silver_orders');

-- The picture: the whole graph, one relation's neighbourhood, with columns.
SELECT pipeline.lineage_dot();
SELECT pipeline.lineage_dot('"select"', columns => true);
SELECT pipeline.lineage_dot('unrelated');

-- Privileges: a role sees only edges whose both ends it may access.
CREATE ROLE lin_reader;
GRANT USAGE ON SCHEMA lin, "Lin Gold", pipeline TO lin_reader;
GRANT SELECT ON raw_customers, silver_customers TO lin_reader;
GRANT SELECT ("Customer") ON "Lin Gold"."Orders Gold" TO lin_reader;
SET ROLE lin_reader;
SELECT pipeline, level, source, source_column, target, target_column FROM pipeline.lineage
 ORDER BY 1, 2 DESC, 3::text, 4, 6;
SELECT * FROM pipeline.downstream('raw_customers');
SELECT count(*) AS hidden FROM pipeline.column_lineage('"Lin Gold"."Orders Gold"', 'total');
SELECT count(*) AS own_catalog_rows FROM pipeline.lineage_edges;
RESET ROLE;

-- A column renamed since the edges were computed: its stale edges are not
-- shown (the next alter_pipeline computes them anew).
ALTER TABLE silver_customers RENAME COLUMN country TO land;
SELECT source_column, target_column FROM pipeline.lineage
 WHERE pipeline = 'customers_silver' AND level = 'column' ORDER BY 1;

-- Bad input.
\set VERBOSITY terse
SELECT * FROM pipeline.downstream('no_such_table');
SELECT * FROM pipeline.column_lineage(NULL, 'x');
\set VERBOSITY default
SELECT * FROM pipeline.column_lineage('silver_orders', 'nope');

DROP OWNED BY lin_reader;
DROP ROLE lin_reader;
SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name IN
  ('orders_silver', 'customers_silver', 'orders_gold', 'customers_gold', 'reserved') ORDER BY id DESC;
DROP SCHEMA lin, "Lin Gold" CASCADE;
