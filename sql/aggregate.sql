-- Aggregate pipelines: groups kept incrementally, compared with the same
-- query computed from scratch.
SET client_min_messages = warning;
CREATE SCHEMA gold;

-- A source of order events: the latest event of an order (by updated_at)
-- is its state; status 'deleted' removes it.
CREATE TABLE order_events (order_id int, customer text, amount numeric(12,2),
                           status text, updated_at bigint);

SELECT pipeline.create_pipeline('revenue', 'order_events', 'gold.revenue',
    strategy => 'aggregate', key => ARRAY['customer'],
    source_key => ARRAY['order_id'], sequence_by => 'updated_at',
    delete_when => $$status = 'deleted'$$,
    columns => $${"orders": "count(*)",
                  "paid_revenue": "sum(amount) FILTER (WHERE status = 'paid')",
                  "avg_amount": "avg(amount)",
                  "smallest": "min(amount)",
                  "largest": "max(amount)",
                  "statuses": "count(DISTINCT status)",
                  "all_paid": "bool_and(status = 'paid')",
                  "any_refund": "bool_or(status = 'refunded')",
                  "with_amount": "count(amount)"}$$) > 0 AS created;

-- the target is the group key and the aggregates, nothing of the source
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'gold.revenue'::regclass AND attnum > 0 ORDER BY attnum;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'gold.revenue'::regclass;
SELECT strategy, key, source_key, group_state IS NOT NULL AS has_groups,
       row_state IS NOT NULL AS has_rows
  FROM pipeline.pipeline_defs WHERE name = 'revenue';

-- what the query gives from scratch over the orders' current state (of the
-- events the pipeline does not quarantine: a NULL order, a NULL customer
-- but in a delete)
CREATE VIEW revenue_from_scratch AS
WITH current_orders AS (
    SELECT DISTINCT ON (order_id) * FROM order_events
     WHERE order_id IS NOT NULL AND (customer IS NOT NULL OR status = 'deleted')
     ORDER BY order_id, updated_at DESC, _xid DESC, _seq DESC)
SELECT customer, count(*) AS orders,
       sum(amount) FILTER (WHERE status = 'paid') AS paid_revenue,
       avg(amount) AS avg_amount, min(amount) AS smallest, max(amount) AS largest,
       count(DISTINCT status) AS statuses, bool_and(status = 'paid') AS all_paid,
       bool_or(status = 'refunded') AS any_refund, count(amount) AS with_amount
  FROM current_orders WHERE status IS DISTINCT FROM 'deleted'
 GROUP BY customer;
CREATE FUNCTION revenue_differences() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        (SELECT customer, orders, paid_revenue, avg_amount, smallest, largest, statuses,
                all_paid, any_refund, with_amount FROM gold.revenue
         EXCEPT ALL SELECT * FROM revenue_from_scratch)
        UNION ALL
        (SELECT * FROM revenue_from_scratch
         EXCEPT ALL SELECT customer, orders, paid_revenue, avg_amount, smallest, largest,
                statuses, all_paid, any_refund, with_amount FROM gold.revenue)) d $$;

INSERT INTO order_events VALUES
    (1, 'ada', 10, 'paid', 1), (2, 'ada', 20, 'open', 1), (3, 'bob', 5, 'paid', 1),
    (4, 'bob', NULL, 'open', 1);
CALL pipeline.run('revenue');
SELECT * FROM gold.revenue ORDER BY customer;
SELECT revenue_differences();

-- an order moves from ada to bob; the smallest of bob's leaves; a late
-- event (older updated_at) is stale; an order is deleted
INSERT INTO order_events VALUES
    (1, 'bob', 12, 'paid', 2), (3, 'bob', 7, 'refunded', 2), (2, 'ada', 99, 'paid', 0),
    (4, 'bob', NULL, 'deleted', 3);
CALL pipeline.run('revenue');
SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale
  FROM pipeline.runs WHERE pipeline = 'revenue' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM gold.revenue ORDER BY customer;
SELECT revenue_differences();

-- a group left without rows disappears, from the target and the group state
INSERT INTO order_events VALUES (2, 'ada', 20, 'deleted', 4);
CALL pipeline.run('revenue');
SELECT customer FROM gold.revenue ORDER BY customer;
SELECT count(*) AS ada_groups FROM gold.revenue_groups WHERE customer = 'ada';
-- a late event cannot bring a deleted order back
INSERT INTO order_events VALUES (2, 'ada', 20, 'paid', 3);
CALL pipeline.run('revenue');
SELECT customer FROM gold.revenue ORDER BY customer;
SELECT revenue_differences();
-- deleted rows are remembered for tombstone_retention, then forgotten
SELECT __pl_k0 AS order_id, __pl_live, __pl_deleted_at IS NOT NULL AS deleted
  FROM gold.revenue_rows WHERE NOT __pl_live ORDER BY 1;
SELECT pipeline.alter_pipeline('revenue', tombstone_retention => '0 seconds');
CALL pipeline.run('revenue');
SELECT count(*) AS remembered_deletes FROM gold.revenue_rows WHERE NOT __pl_live;
SELECT pipeline.alter_pipeline('revenue', tombstone_retention => '7 days');

-- a NULL group key is quarantined (but a delete needs none); a NULL source_key too
INSERT INTO order_events VALUES (5, NULL, 1, 'paid', 5), (6, 'cy', 1, 'paid', 5),
    (NULL, 'cy', 1, 'paid', 5), (6, NULL, NULL, 'deleted', 6);
CALL pipeline.run('revenue');
SELECT reason FROM pipeline.quarantine WHERE pipeline = 'revenue' ORDER BY reason;
SELECT customer FROM gold.revenue ORDER BY customer;
SELECT revenue_differences();

-- A group that would break a constraint of the target: only the row that
-- tips it over is quarantined (found by bisection: no one row is to blame
-- for a group's value, least of all the batch's last row, of another group).
CREATE TABLE capped_src (g text, v int);
CREATE TABLE gold.capped (g text PRIMARY KEY, total bigint CHECK (total <= 100));
SELECT pipeline.create_pipeline('capped', 'capped_src', 'gold.capped', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"total": "sum(v)"}') > 0 AS created;
INSERT INTO capped_src VALUES ('a', 60), ('a', 30), ('a', 20), ('b', 5), ('b', 6);
CALL pipeline.run('capped');
SELECT * FROM gold.capped ORDER BY g;
SELECT raw_row->>'g' AS g, raw_row->>'v' AS v, sqlstate, reason FROM pipeline.quarantine
 WHERE pipeline = 'capped';
SELECT pipeline.drop_pipeline('capped');

-- ---------------------------------------------------------------- property
-- Random rounds of new orders, updates (amount, status, customer: a move to
-- another group), deletes and late events, merged in small batches; after
-- every round the target must be the query computed from scratch.
SELECT pipeline.discard_quarantine('revenue');
SELECT pipeline.alter_pipeline('revenue', batch_size => 7);
SELECT setseed(0.14);
CREATE TABLE clock (t bigint);
INSERT INTO clock VALUES (100);
CREATE PROCEDURE random_round(n int) LANGUAGE plpgsql AS $$
DECLARE
    t bigint;
BEGIN
    FOR i IN 1..n LOOP
        UPDATE clock SET t = clock.t + 1 RETURNING clock.t INTO t;
        INSERT INTO order_events
        SELECT CASE WHEN random() < 0.3 THEN (SELECT coalesce(max(order_id), 0) + 1 FROM order_events)
                    ELSE 1 + floor(random() * 40)::int END,
               (ARRAY['ada', 'bob', 'cy', 'dee', 'eve'])[1 + floor(random() * 5)::int],
               CASE WHEN random() < 0.1 THEN NULL ELSE round((random() * 100)::numeric, 2) END,
               (ARRAY['paid', 'open', 'refunded', 'deleted', 'paid'])[1 + floor(random() * 5)::int],
               -- one event in ten is late: older than what the order has
               CASE WHEN random() < 0.1 THEN t - 50 ELSE t END;
    END LOOP;
END $$;
CREATE TABLE property_results (round int, differences bigint);
DO $$
BEGIN
    FOR r IN 1..30 LOOP
        CALL random_round(25);
        COMMIT;
        CALL run_quietly('revenue');
        INSERT INTO property_results SELECT r, revenue_differences();
        COMMIT;
    END LOOP;
END $$;
SELECT count(*) AS rounds, sum(differences) AS differences FROM property_results;
SELECT count(*) > 3 AS several_groups FROM gold.revenue;

-- ------------------------------------------------------- rows only arrive
-- Without a source_key every staged row is a new row of its group; a
-- distinct count keeps the rows it needs, min and max only grow.
CREATE TABLE page_views (day date, page text, visitor int, ms int);
SELECT pipeline.create_pipeline('views', 'page_views', 'gold.daily_views',
    strategy => 'aggregate', key => ARRAY['day', 'page'],
    columns => $${"views": "count(*)", "visitors": "count(DISTINCT visitor)",
                  "slowest": "max(ms)", "fastest": "min(ms)", "total_ms": "sum(ms)",
                  "mobile": "count(*) FILTER (WHERE visitor % 2 = 0)"}$$,
    filter => 'ms >= 0', group_filter => 'views >= 2') > 0 AS created;
SELECT row_state IS NOT NULL AS has_rows FROM pipeline.pipeline_defs WHERE name = 'views';
CREATE VIEW views_from_scratch AS
SELECT day, page, count(*) AS views, count(DISTINCT visitor) AS visitors, max(ms) AS slowest,
       min(ms) AS fastest, sum(ms) AS total_ms, count(*) FILTER (WHERE visitor % 2 = 0) AS mobile
  FROM page_views WHERE ms >= 0 GROUP BY day, page HAVING count(*) >= 2;
CREATE FUNCTION views_differences() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        (SELECT day, page, views, visitors, slowest, fastest, total_ms, mobile FROM gold.daily_views
         EXCEPT ALL SELECT * FROM views_from_scratch)
        UNION ALL
        (SELECT * FROM views_from_scratch
         EXCEPT ALL SELECT day, page, views, visitors, slowest, fastest, total_ms, mobile
           FROM gold.daily_views)) d $$;
INSERT INTO page_views VALUES ('2026-12-01', '/', 1, 30), ('2026-12-01', '/', 2, 50),
    ('2026-12-01', '/a', 1, 10), ('2026-12-01', '/', 1, -1);
CALL pipeline.run('views');
SELECT * FROM gold.daily_views ORDER BY day, page;
-- /a reaches two views and appears
INSERT INTO page_views VALUES ('2026-12-01', '/a', 3, 70);
CALL pipeline.run('views');
SELECT * FROM gold.daily_views ORDER BY day, page;
DO $$
BEGIN
    FOR r IN 1..20 LOOP
        INSERT INTO page_views
        SELECT DATE '2026-12-01' + floor(random() * 3)::int, (ARRAY['/', '/a', '/b'])[1 + floor(random() * 3)::int],
               floor(random() * 10)::int, floor(random() * 200)::int - 10
          FROM generate_series(1, 15);
        COMMIT;
        CALL run_quietly('views');
        INSERT INTO property_results SELECT 100 + r, views_differences();
        COMMIT;
    END LOOP;
END $$;
SELECT count(*) AS rounds, sum(differences) AS differences FROM property_results WHERE round > 100;
-- replaying would count rows again: refused
CALL pipeline.replay('views', first_run => 1);
-- counts, sums and extremes of rows that only arrive need no row state
CREATE TABLE clicks (button text, ms int);
SELECT pipeline.create_pipeline('clicks', 'clicks', 'gold.clicks', strategy => 'aggregate',
    key => ARRAY['button'],
    columns => '{"clicks": "count(*)", "total_ms": "sum(ms)", "slowest": "max(ms)", "fastest": "min(ms)"}') > 0 AS created;
SELECT row_state IS NULL AS no_rows FROM pipeline.pipeline_defs WHERE name = 'clicks';
INSERT INTO clicks VALUES ('ok', 10), ('ok', 30), ('cancel', 5), ('ok', NULL);
CALL pipeline.run('clicks');
INSERT INTO clicks VALUES ('ok', 1), ('cancel', 50);
CALL pipeline.run('clicks');
SELECT * FROM gold.clicks ORDER BY button;

-- ------------------------------------------------------ silver into gold
-- A gold aggregate over a silver merge target reads its change log: the
-- silver table's primary key is the source_key, and an update retracts the
-- row's old version from its group; a row that stops passing the filter
-- leaves its group.
CREATE TABLE customer_events (id int, region text, tier text, credit numeric, seen bigint);
SELECT pipeline.create_pipeline('customers', 'customer_events', 'silver_customers',
    key => ARRAY['id'], sequence_by => 'seen') > 0 AS created;
SELECT pipeline.create_pipeline('regions', 'silver_customers', 'gold.regions',
    strategy => 'aggregate', key => ARRAY['region'],
    columns => '{"customers": "count(*)", "credit": "sum(credit)", "top_credit": "max(credit)", "tiers": "count(DISTINCT tier)"}',
    filter => 'credit < 900') > 0 AS created;
SELECT source_key FROM pipeline.pipeline_defs WHERE name = 'regions';
SELECT upstream, downstream FROM pipeline.dependencies;
CREATE FUNCTION regions_differences() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        (SELECT region, customers, credit, top_credit, tiers FROM gold.regions
         EXCEPT ALL SELECT region, count(*), sum(credit), max(credit), count(DISTINCT tier)
                      FROM silver_customers WHERE credit < 900 GROUP BY region)
        UNION ALL
        (SELECT region, count(*), sum(credit), max(credit), count(DISTINCT tier)
           FROM silver_customers WHERE credit < 900 GROUP BY region
         EXCEPT ALL SELECT region, customers, credit, top_credit, tiers FROM gold.regions)) d $$;
DO $$
BEGIN
    FOR r IN 1..20 LOOP
        INSERT INTO customer_events
        SELECT 1 + floor(random() * 30)::int, (ARRAY['eu', 'us', 'apac'])[1 + floor(random() * 3)::int],
               (ARRAY['gold', 'silver'])[1 + floor(random() * 2)::int],
               round((random() * 1000)::numeric, 2), r * 100 + g
          FROM generate_series(1, 10) g;
        COMMIT;
        CALL run_quietly('customers');
        CALL run_quietly('regions');
        INSERT INTO property_results SELECT 200 + r, regions_differences();
        COMMIT;
    END LOOP;
END $$;
SELECT count(*) AS rounds, sum(differences) AS differences FROM property_results WHERE round > 200;
SELECT count(*) AS regions FROM gold.regions;

-- ------------------------------------------------ names that need quoting
CREATE TABLE "Order Items" ("Order Id" int, "Select" text, "Qty" int,
    "a_sixty_three_byte_column_name_that_fills_the_whole_identifier_" int);
SELECT pipeline.create_pipeline('Quoted Items', '"Order Items"', 'gold."Item Totals"',
    strategy => 'aggregate', key => ARRAY['Select'], source_key => ARRAY['Order Id'],
    columns => '{"Total Qty": "sum(\"Qty\")", "a_sixty_three_byte_column_name_that_fills_the_whole_identifier_": "max(\"a_sixty_three_byte_column_name_that_fills_the_whole_identifier_\")"}') > 0 AS created;
INSERT INTO "Order Items" VALUES (1, 'x', 2, 7), (2, 'x', 3, 9), (1, 'y', 4, 1);
CALL pipeline.run('Quoted Items');
SELECT * FROM gold."Item Totals" ORDER BY 1;

-- ------------------------------------------------------------ bad input
\set VERBOSITY default
CREATE TABLE bad_src (id int, g text, v int, j json);
-- a column neither in the key nor aggregated
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"v": "v + 1"}');
-- an aggregate it cannot maintain, an expression around one, DISTINCT, ORDER BY
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"vs": "string_agg(v::text, '','')"}');
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"total": "coalesce(sum(v), 0)"}');
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"total": "sum(DISTINCT v)"}');
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"n": "count(v ORDER BY v)"}');
-- an aggregate in the key
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['n'], columns => '{"n": "count(*)"}');
-- deletes and versions need a source_key; aggregate options on a merge
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"n": "count(*)"}', delete_when => 'v < 0');
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', key => ARRAY['id'],
    source_key => ARRAY['id']);
-- a source_key or sequence_by that is not a comparable source column
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"n": "count(*)"}', source_key => ARRAY['nope']);
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"n": "count(*)"}', source_key => ARRAY['id'],
    sequence_by => 'j');
-- a group_filter over something the target does not have
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"n": "count(*)"}', group_filter => 'v > 1');
-- on_schema_change cannot add source columns to groups
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_t', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"n": "count(*)"}', on_schema_change => 'append_new_columns');
-- an existing target needs a unique index on the group key
CREATE TABLE bad_existing (g text, n bigint);
SELECT pipeline.create_pipeline('bad', 'bad_src', 'bad_existing', strategy => 'aggregate',
    key => ARRAY['g'], columns => '{"n": "count(*)"}');
SELECT count(*) AS bad_pipelines FROM pipeline.pipelines WHERE name = 'bad';
-- the shape of an aggregate pipeline cannot change; its schedule can
SELECT pipeline.alter_pipeline('views', columns => '{"views": "count(*)"}');
SELECT pipeline.alter_pipeline('views', schedule => '1 hour');

-- ------------------------------------------------------------ lineage, drop
-- column edges AGGREGATION (and FILTER for an aggregate's FILTER); the group
-- key and the filter bear on every column (GROUP_BY, FILTER); a source_key
-- pipeline's sequence_by decides which event counts (SORT)
SELECT source, source_column, target_column, lineage_type, subtype FROM pipeline.lineage
 WHERE pipeline IN ('views', 'Quoted Items') AND level = 'column'
 ORDER BY pipeline, target_column NULLS FIRST, source_column, subtype;
SELECT source_column, subtype FROM pipeline.lineage
 WHERE pipeline = 'revenue' AND level = 'column' AND target_column IS NULL ORDER BY 1, 2;
-- the state tables go with the pipeline
SELECT pipeline.drop_pipeline('views');
SELECT to_regclass('gold.daily_views_groups') IS NULL AS groups_dropped,
       to_regclass('gold.daily_views_rows') IS NULL AS rows_dropped,
       to_regclass('gold.daily_views') IS NOT NULL AS target_kept;
-- dropping a state table takes CASCADE, and the pipeline with it
DROP TABLE gold.revenue_rows;
DROP TABLE gold.revenue_rows CASCADE;
SELECT count(*) AS revenue_pipelines FROM pipeline.pipelines WHERE name = 'revenue';

-- clean up for the tests that follow
SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines
 WHERE name IN ('regions', 'customers', 'Quoted Items', 'clicks') ORDER BY name = 'customers';
DROP SCHEMA gold CASCADE;
DROP TABLE order_events, page_views, customer_events, silver_customers, "Order Items",
    bad_src, bad_existing, clock, property_results, clicks, capped_src CASCADE;
DROP PROCEDURE random_round(int);
SELECT count(*) AS pipelines_left FROM pipeline.pipelines;
