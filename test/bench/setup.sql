-- Data of the merge benchmark, generated once: a 1M-row orders table and
-- 500k order events (half updates of existing orders, half new orders, about
-- 10% more events for keys already in the batch, about 10% of events older
-- than what they update), in shuffled arrival order.
CREATE EXTENSION pipeline;
SET check_function_bodies = off;   -- bench.target exists only after bench.reset
CREATE SCHEMA bench;
SELECT setseed(0.42) \gset
CREATE TABLE bench.base AS
SELECT g::bigint AS order_id, (g % 50000)::int AS customer_id,
       round((g % 10000) / 7.0, 2)::numeric(12,2) AS amount, 'new'::text AS status,
       timestamptz '2026-01-01' + g * interval '1 second' AS updated_at,
       md5(g::text) AS note
  FROM generate_series(1, 1000000) g;
CREATE TABLE bench.events AS
WITH updates AS (
    SELECT ((g::bigint * 7919) % 1000000) + 1 AS order_id, g
      FROM generate_series(1, 225000) g),
news AS (
    SELECT 1000000 + g::bigint AS order_id, g FROM generate_series(1, 225000) g),
firsts AS (
    SELECT u.order_id, (u.order_id % 50000)::int AS customer_id,
           (random() * 500)::numeric(12,2) AS amount, 'paid' AS status,
           b.updated_at + CASE WHEN u.g % 10 = 0 THEN interval '-1 day' ELSE interval '1 day' END AS updated_at,
           md5('u' || u.g) AS note
      FROM updates u JOIN bench.base b USING (order_id)
    UNION ALL
    SELECT n.order_id, (n.order_id % 50000)::int, (random() * 500)::numeric(12,2), 'new',
           timestamptz '2026-06-01' + n.g * interval '1 second', md5('n' || n.g)
      FROM news n),
numbered AS (SELECT f.*, row_number() OVER () AS n FROM firsts f),
extras AS (   -- more events for every 9th key of the batch, some older than the first
    SELECT order_id, customer_id, amount + 1, 'shipped',
           updated_at + CASE WHEN n % 45 = 0 THEN interval '-1 hour' ELSE interval '1 hour' END,
           note
      FROM numbered WHERE n % 9 = 0)
SELECT * FROM firsts UNION ALL SELECT * FROM extras;
-- 450,000 first events + 50,000 extra events = 500,000
ALTER TABLE bench.events ADD COLUMN arrival double precision;
UPDATE bench.events SET arrival = random();

-- label: how each job appears in the results.
CREATE FUNCTION bench.label(job text) RETURNS text LANGUAGE sql AS $$
SELECT CASE job
    WHEN 'pipeline' THEN 'CALL pipeline.run (one batch, batch_size 1000000)'
    WHEN 'pipeline_default_batch' THEN 'CALL pipeline.run (batch_size 100000, 5 commits)'
    WHEN 'handwritten' THEN 'hand-written INSERT ... ON CONFLICT + watermark'
    WHEN 'dbt' THEN 'dbt-postgres delete+insert via temp table + watermark'
END $$;

-- reset: a fresh copy of the target and the staged events for one job.
CREATE PROCEDURE bench.reset(job text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pipeline.drop_pipeline('bench', if_exists => true);
    DROP TABLE IF EXISTS bench.target, bench.staging, bench.watermark CASCADE;
    CREATE TABLE bench.target AS SELECT * FROM bench.base;
    ALTER TABLE bench.target ADD PRIMARY KEY (order_id);
    CREATE TABLE bench.staging (order_id bigint, customer_id int, amount numeric(12,2),
                                status text, updated_at timestamptz, note text);
    IF job LIKE 'pipeline%' THEN
        PERFORM pipeline.create_pipeline('bench', 'bench.staging', 'bench.target',
            key => ARRAY['order_id'], sequence_by => 'updated_at',
            batch_size => CASE job WHEN 'pipeline' THEN 1000000 ELSE 100000 END);
    ELSE
        -- the hand-written jobs' incremental bookkeeping: an ingest id and a watermark
        ALTER TABLE bench.staging ADD COLUMN ingest_id bigserial;
        CREATE INDEX ON bench.staging (ingest_id);
        CREATE TABLE bench.watermark (last_id bigint NOT NULL);
        INSERT INTO bench.watermark VALUES (0);
    END IF;
    INSERT INTO bench.staging (order_id, customer_id, amount, status, updated_at, note)
    SELECT order_id, customer_id, amount, status, updated_at, note FROM bench.events ORDER BY arrival;
END $$;

CREATE FUNCTION bench.target_digest() RETURNS text LANGUAGE sql AS $$
SELECT md5(string_agg(t::text, ',' ORDER BY order_id)) FROM bench.target t $$;

-- Incremental cost: a small and a big target, each built by its pipeline
-- from a staging table that keeps the consumed history.
CREATE TABLE bench.inc_small_src (order_id bigint, amount numeric(12,2), updated_at timestamptz);
CREATE TABLE bench.inc_big_src (LIKE bench.inc_small_src);
SELECT pipeline.create_pipeline('inc_small', 'bench.inc_small_src', 'bench.inc_small',
    key => ARRAY['order_id'], sequence_by => 'updated_at', batch_size => 2000000) > 0;
SELECT pipeline.create_pipeline('inc_big', 'bench.inc_big_src', 'bench.inc_big',
    key => ARRAY['order_id'], sequence_by => 'updated_at', batch_size => 2000000) > 0;

-- incremental_stage: 10k new events for each: 5k updates of existing keys, 5k new keys.
CREATE PROCEDURE bench.incremental_stage(round int, small bigint, big bigint) LANGUAGE sql AS $$
INSERT INTO bench.inc_small_src (order_id, amount, updated_at)
SELECT CASE WHEN g % 2 = 0 THEN (g::bigint * 7919 + round) % small + 1 ELSE small + round * 10000 + g END,
       g % 1000, timestamptz '2030-01-01' + round * interval '1 day'
  FROM generate_series(1, 10000) g;
INSERT INTO bench.inc_big_src (order_id, amount, updated_at)
SELECT CASE WHEN g % 2 = 0 THEN (g::bigint * 7919 + round) % big + 1 ELSE big + round * 10000 + g END,
       g % 1000, timestamptz '2030-01-01' + round * interval '1 day'
  FROM generate_series(1, 10000) g;
$$;
