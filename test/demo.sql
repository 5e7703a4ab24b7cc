-- A demo pipeline, end to end: e-commerce order events land in a staging
-- table and are merged, exactly once, into a curated table.
\pset footer off
\echo
\echo '== 1. A staging table, as Kafka Connect or an application would write it'
CREATE SCHEMA raw;
CREATE SCHEMA silver;
CREATE TABLE raw.orders (
    order_id    bigint,
    customer    text,
    email       text,
    amount      text,          -- arrives as text; the pipeline casts it
    status      text,
    op          text,          -- 'u' upsert, 'd' delete (CDC style)
    updated_at  timestamptz
);

\echo '== 2. The pipeline: merge by order_id, latest updated_at wins, deletes, a mapping, a filter'
SELECT pipeline.create_pipeline(
    name        => 'orders_silver',
    source      => 'raw.orders',
    target      => 'silver.orders',
    key         => ARRAY['order_id'],
    strategy    => 'merge',
    sequence_by => 'updated_at',
    delete_when => $$op = 'd'$$,
    columns     => '{"amount": "amount::numeric(12,2)", "email": "lower(email)", "op": null}',
    filter      => $$status IS DISTINCT FROM 'test'$$) AS pipeline_id;
\d silver.orders
-- data quality checks, evaluated inside each merge: an unknown status is
-- let through and counted, a negative amount or a malformed email is
-- quarantined
SELECT pipeline.add_check('orders_silver', 'known_status', kind => 'accepted_values', column_name => 'status',
                          accepted_values => '{new,paid,shipped,delivered}', action => 'warn') AS check_id;
SELECT pipeline.add_check('orders_silver', 'amount_not_negative', 'amount >= 0') AS check_id;
SELECT pipeline.add_check('orders_silver', 'email_format', kind => 'regex', column_name => 'email',
                          pattern => '^[^@ ]+@[^@ ]+\.[a-z]+$') AS check_id;

\echo '== 3. First load: 5000 new orders'
INSERT INTO raw.orders
SELECT g, 'customer_' || (g % 700), 'Customer_' || (g % 700) || '@Example.com',
       to_char(10 + (g * 37) % 490 + (g % 100) / 100.0, 'FM9999990.00'), 'new', 'u',
       timestamptz '2026-11-01 08:00' + g * interval '1 second'
  FROM generate_series(1, 5000) g;
CALL pipeline.run('orders_silver');

\echo '== 4. Second wave: payments, late (out-of-order) events, cancellations, duplicates, test orders, bad rows'
BEGIN;
-- 1500 orders paid, one hour later
INSERT INTO raw.orders
SELECT g, 'customer_' || (g % 700), 'customer_' || (g % 700) || '@example.com',
       to_char(10 + (g * 37) % 490 + (g % 100) / 100.0, 'FM9999990.00'), 'paid', 'u',
       timestamptz '2026-11-01 09:00' + g * interval '1 second'
  FROM generate_series(1, 1500) g;
-- 300 late events older than what the target already holds: discarded as stale
INSERT INTO raw.orders
SELECT g, 'customer_' || (g % 700), 'old@example.com', '1.00', 'draft', 'u',
       timestamptz '2026-10-31 00:00' + g * interval '1 second'
  FROM generate_series(2001, 2300) g;
-- 100 cancellations (deletes)
INSERT INTO raw.orders (order_id, op, updated_at)
SELECT g, 'd', timestamptz '2026-11-01 10:00' FROM generate_series(4901, 5000) g;
-- three events for order 42 in one batch: the latest wins
INSERT INTO raw.orders VALUES
    (42, 'customer_42', 'c42@example.com', '99.00', 'shipped',   'u', '2026-11-01 12:00'),
    (42, 'customer_42', 'c42@example.com', '99.00', 'delivered', 'u', '2026-11-01 15:00'),
    (42, 'customer_42', 'c42@example.com', '99.00', 'paid',      'u', '2026-11-01 11:00');
-- 20 test orders: filtered out
INSERT INTO raw.orders
SELECT 900000 + g, 'qa', 'qa@example.com', '0.01', 'test', 'u', now() FROM generate_series(1, 20) g;
-- bad rows: an amount that is not a number, and orders without id
INSERT INTO raw.orders VALUES
    (6001, 'customer_1', 'c1@example.com', 'n/a',   'new', 'u', '2026-11-01 13:00'),
    (6002, 'customer_2', 'c2@example.com', '12,50', 'new', 'u', '2026-11-01 13:00'),
    (NULL, 'customer_3', 'c3@example.com', '5.00',  'new', 'u', '2026-11-01 13:00');
COMMIT;
-- a late cancellation of an order already deleted, older than the delete: stale
INSERT INTO raw.orders (order_id, customer, amount, status, op, updated_at)
VALUES (4950, 'customer_1', '5.00', 'new', 'u', '2026-11-01 09:30');
CALL pipeline.run('orders_silver');

\echo '== 5. The curated table'
SELECT count(*) AS orders, sum(amount) AS revenue,
       count(*) FILTER (WHERE status = 'paid') AS paid,
       count(*) FILTER (WHERE status = 'new') AS still_new
  FROM silver.orders;
SELECT order_id, status, amount, updated_at FROM silver.orders WHERE order_id IN (42, 2001, 4950);

\echo '== 6. Run history'
SELECT run_id, kind, status, rows_read AS read, rows_inserted AS inserted, rows_updated AS updated,
       rows_deleted AS deleted, rows_stale AS stale, rows_filtered AS filtered,
       rows_quarantined AS quarantined, batches
  FROM pipeline.runs ORDER BY run_id;
-- the data quality checks of the second wave: 300 late 'draft' events warned about
SELECT check_name, status, failing, total, message FROM pipeline.check_results
 WHERE run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline = 'orders_silver')
 ORDER BY check_name;

\echo '== 7. The quarantine: every row that could not be merged, with the reason'
SELECT id, reason, sqlstate, raw_row->>'order_id' AS order_id, raw_row->>'amount' AS amount
  FROM pipeline.quarantine ORDER BY id;

\echo '== 8. Fix the bad amounts, requeue them; drop the row without an id'
UPDATE pipeline.quarantine
   SET raw_row = jsonb_set(raw_row, '{amount}', to_jsonb(replace(replace(raw_row->>'amount', 'n/a', '0'), ',', '.')))
 WHERE sqlstate = '22P02';
CALL pipeline.requeue_quarantine('orders_silver');
SELECT pipeline.discard_quarantine('orders_silver') AS discarded;
SELECT order_id, amount, status FROM silver.orders WHERE order_id IN (6001, 6002) ORDER BY 1;

\echo '== 9. Nothing pending: a run now reads nothing'
CALL pipeline.run('orders_silver');

\echo '== 10. Continuous: the background workers merge every commit to raw.orders, within milliseconds'
SELECT pipeline.alter_pipeline('orders_silver', schedule => 'continuous');
INSERT INTO raw.orders (order_id, customer, amount, status, updated_at)
VALUES (7001, 'dora', '12.50', 'placed', now()), (42, 'customer_42', '99.00', 'refunded', now());
-- no CALL: wait (at most 10 s) until the worker has merged them
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        EXIT WHEN (SELECT count(*) FROM silver.orders
                    WHERE order_id = 7001 OR (order_id = 42 AND status = 'refunded')) = 2;
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
SELECT order_id, customer, amount, status FROM silver.orders WHERE order_id IN (42, 7001) ORDER BY 1;
SELECT run_id, status, rows_read, rows_inserted, rows_updated, run_as
  FROM pipeline.runs WHERE rows_read > 0 ORDER BY run_id DESC LIMIT 1;
SELECT backend_type, application_name FROM pg_stat_activity
 WHERE backend_type LIKE 'pipeline%' ORDER BY backend_type;
SELECT name, strategy, key, sequence_by, schedule FROM pipeline.pipelines;

\echo '== 11. A DAG: gold.last_order (each customer''s latest order) and gold.revenue_by_tier read the changes of silver.orders'
CREATE SCHEMA gold;
SELECT pipeline.create_pipeline('last_order_gold', 'silver.orders', 'gold.last_order',
    key => ARRAY['customer'], sequence_by => 'updated_at', filter => $$_op = 'upsert'$$,
    schedule => 'continuous') > 0 AS created;
SELECT upstream, relation, change_log, downstream FROM pipeline.dependencies;
-- a new order at the raw end flows raw -> silver -> gold with no CALL
INSERT INTO raw.orders (order_id, customer, amount, status, updated_at)
VALUES (7002, 'dora', '30.00', 'placed', now() + interval '1 second');
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        EXIT WHEN EXISTS (SELECT FROM gold.last_order WHERE customer = 'dora' AND order_id = 7002);
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
SELECT customer, order_id, amount, status FROM gold.last_order WHERE customer = 'dora';
SELECT count(*) AS customers FROM gold.last_order;
-- the gold layer: revenue per customer tier, silver.orders joined to a
-- captured table of customers; a customer moving to another tier moves
-- its revenue there at the next run
CREATE TABLE silver.customers (customer text PRIMARY KEY, tier text NOT NULL);
INSERT INTO silver.customers
SELECT DISTINCT customer, CASE WHEN customer ~ '[05]$' THEN 'gold' ELSE 'standard' END FROM silver.orders;
SELECT pipeline.capture('silver.customers') IS NOT NULL AS captured;
SELECT pipeline.create_pipeline('revenue_by_tier', 'silver.orders', 'gold.revenue_by_tier',
    strategy => 'aggregate', key => ARRAY['tier'],
    columns => $${"tier": "c.tier", "orders": "count(*)", "revenue": "sum(amount)",
                  "largest": "max(amount)"}$$,
    joins => $$[{"table": "silver.customers", "as": "c", "on": {"customer": "customer"}}]$$) > 0 AS created;
CALL pipeline.run('revenue_by_tier');
SELECT * FROM gold.revenue_by_tier ORDER BY tier;
UPDATE silver.customers SET tier = 'gold' WHERE customer IN ('customer_1', 'customer_2');
CALL pipeline.run('revenue_by_tier');
SELECT * FROM gold.revenue_by_tier ORDER BY tier;

\echo '== 12. History (SCD type 2): every status each order went through, late events slotted in'
SELECT pipeline.create_pipeline('order_history', 'raw.orders', 'silver.order_history',
    key => ARRAY['order_id'], strategy => 'scd2', sequence_by => 'updated_at',
    delete_when => $$op = 'd'$$, filter => $$status IS DISTINCT FROM 'test'$$,
    columns => '{"amount": "amount::numeric(12,2)", "email": "lower(email)", "op": null}',
    track_history => ARRAY['status']) > 0 AS created;
CALL pipeline.run('order_history');
-- a late event: order 42 was packed at 13:00, between shipped (12:00) and delivered (15:00)
INSERT INTO raw.orders VALUES (42, 'customer_42', 'c42@example.com', '99.00', 'packed', 'u', '2026-11-01 13:00');
CALL pipeline.run('order_history');
SELECT order_id, status, updated_at, __start_at, __end_at FROM silver.order_history
 WHERE order_id = 42 ORDER BY __start_at;
SELECT count(*) AS versions, count(*) FILTER (WHERE __end_at IS NULL) AS current_orders
  FROM silver.order_history;

\echo '== 13. A test of a pipeline, and a step after one: what a few rows would do (rolled back), then a report refreshed by itself whenever the gold pipeline writes'
-- an update, a delete, a new order and one with a malformed email, as
-- orders_silver would merge them now; nothing of it stays
SELECT t->'status' AS status, (t->'counts') - 'stale' - 'dropped' - 'unchanged' - 'read' AS counts,
       t->'deleted'->0->>'order_id' AS deleted_order,
       t->'quarantined'->0->>'reason' AS quarantined_because
  FROM pipeline.test('orders_silver', $$[
    {"order_id": 1, "customer": "customer_1", "email": "c1@example.com", "amount": "10.00", "status": "paid", "op": "u", "updated_at": "2026-11-03 09:00"},
    {"order_id": 2, "op": "d", "updated_at": "2026-11-03 09:00"},
    {"order_id": 9001, "customer": "zoe", "email": "Zoe@Example.com", "amount": "12.50", "status": "new", "op": "u", "updated_at": "2026-11-03 09:00"},
    {"order_id": 9002, "customer": "yann", "email": "not an email", "amount": "5.00", "status": "new", "op": "u", "updated_at": "2026-11-03 09:00"}
  ]$$) t;
SELECT count(*) FILTER (WHERE order_id = 9001) AS zoe_is_not_there FROM silver.orders;
-- a materialized view over the gold table, refreshed by a step that the
-- scheduler runs, as its owner, whenever revenue_by_tier wrote rows and
-- succeeded (schedule on_upstream): no call, no cron job
CREATE MATERIALIZED VIEW gold.tier_report AS
SELECT tier, revenue, round(100 * revenue / sum(revenue) OVER (), 1) AS share_pct FROM gold.revenue_by_tier;
CREATE UNIQUE INDEX ON gold.tier_report (tier);
SELECT pipeline.create_step('refresh tier report', 'REFRESH MATERIALIZED VIEW CONCURRENTLY gold.tier_report',
    after => ARRAY['revenue_by_tier'], schedule => 'on_upstream') > 0 AS created;
UPDATE silver.customers SET tier = 'gold' WHERE customer = 'customer_3';
CALL pipeline.run('revenue_by_tier');
-- no CALL of the step: wait (at most 10 s) until the scheduler has run it
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        EXIT WHEN EXISTS (SELECT FROM pipeline.step_runs WHERE status = 'succeeded');
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
SELECT * FROM gold.tier_report ORDER BY tier;
SELECT step, trigger, status, duration < interval '10 seconds' AS quick FROM pipeline.step_runs;
SELECT step, state, schedule, last_status, consecutive_failures FROM pipeline.step_status;
SELECT upstream, downstream, upstream_kind, downstream_kind FROM pipeline.dependencies ORDER BY downstream;

\echo '== 14. Freshness: silver.orders must have been merged into within 15 minutes, checked every 5 by pg_cron'
SELECT pipeline.add_freshness_check('silver.orders', warn_after => '15 minutes', error_after => '1 hour',
                                    schedule => '*/5 * * * *') AS check_id \gset
SELECT check_id, relation, status, lag < interval '1 minute' AS merged_within_a_minute
  FROM pipeline.check_freshness(:check_id);
SELECT id, relation, state, schedule, attainment_7d FROM pipeline.freshness;
SELECT jobname, schedule, command FROM cron.job ORDER BY jobid;

\echo '== 15. The operator''s view: what each pipeline is doing, and the same for Prometheus'
SELECT pipeline, state, schedule, pending_rows, lag, last_status, consecutive_failures,
       rows_per_second > 0 AS has_throughput
  FROM pipeline.status;
SELECT line FROM regexp_split_to_table(pipeline.metrics(), E'\n') line
 WHERE line ~ '^pipeline_(state|runs_total|rows_total|pending_rows|quarantined_rows)\{' AND line !~ '} 0$';

\echo '== 16. Lineage: where a gold column comes from, what a change to raw.orders reaches, the run as OpenLineage'
CREATE VIEW gold.big_spenders AS SELECT customer, amount FROM gold.last_order WHERE amount >= 100;
SELECT depth, source, source_column, target, target_column, lineage_type, subtype, origin
  FROM pipeline.column_lineage('gold.last_order', 'amount');
SELECT relation, depth, relation_kind, via FROM pipeline.downstream('raw.orders');
-- each pipeline's last run that wrote rows, as its OpenLineage COMPLETE event
SELECT DISTINCT ON (e#>>'{job,name}') e->>'eventType' AS event, e#>>'{job,name}' AS job,
       e#>>'{inputs,0,name}' AS input, e#>>'{outputs,0,name}' AS output,
       e#>>'{outputs,0,outputFacets,outputStatistics,rowCount}' AS rows_written
  FROM pipeline.openlineage_outbox o, LATERAL (SELECT o.event AS e) x
 WHERE o.event_type = 'COMPLETE' AND (e#>>'{outputs,0,outputFacets,outputStatistics,rowCount}')::bigint > 0
 ORDER BY e#>>'{job,name}', o.id DESC;
-- the README's picture: pipeline.lineage_dot() | dot -Tsvg
SELECT pipeline.lineage_dot();
