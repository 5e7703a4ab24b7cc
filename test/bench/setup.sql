-- Data and helpers of the benchmark (run once per benchmark, by run.sh).
--
-- Everything is generated deterministically (no random()): the same data on
-- every run and every machine.

CREATE EXTENSION pipeline;
CREATE EXTENSION pg_prewarm;
CREATE SCHEMA bench;

-- bench.orders(lo, hi): orders lo..hi as first written: an inlinable SQL
-- function, so that generating 10M rows streams instead of materialising.
CREATE FUNCTION bench.orders(lo bigint, hi bigint)
    RETURNS TABLE (order_id bigint, customer_id int, amount numeric(12,2), status text,
                   updated_at timestamptz, payload text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT g, (g % 50000)::int, ((g % 100000) / 100.0)::numeric(12,2), 'new'::text,
       timestamptz '2026-01-01' + g * interval '1 second',
       md5(g::text) || md5((-g)::text)
  FROM generate_series(lo, hi) g $$;

-- The 1M-row target every contender of the merge benchmark starts from.
CREATE TABLE bench.base AS SELECT * FROM bench.orders(1, 1000000);

-- bench.events: the 500,000 staged events, in arrival order (arrival_no).
--   * 225,000 distinct existing orders get an update (each first event is a
--     day newer than the target's row, except 1 in 10, a day OLDER: stale
--     against the target, to be discarded);
--   * 225,000 new orders (keys 1,000,001..1,225,000);
--   * 50,000 more events for keys already in the batch (10% duplicates):
--     45,000 keys get a second event, an hour newer than the first, except
--     1 in 5 of them an hour OLDER (out of order inside the batch), and
--     5,000 of those keys a third event, two hours newer than the first;
--   * arrival order is a hash of (key, event), so events of one key arrive
--     in any order.
-- No two events of a key, and no event and the target's row, share an
-- updated_at: the expected result is unique, whatever breaks ties.
CREATE TABLE bench.events AS
WITH firsts AS (
    SELECT ((g::bigint * 7919) % 1000000) + 1 AS order_id, g AS n,
           CASE WHEN g % 10 = 3 THEN interval '-1 day' ELSE interval '1 day' END AS shift
      FROM generate_series(1, 225000) g),
first_events AS (
    SELECT f.order_id, f.n, b.customer_id, (b.amount + 1)::numeric(12,2) AS amount,
           'paid'::text AS status, b.updated_at + f.shift AS updated_at,
           md5('u' || f.n) || md5('v' || f.n) AS payload
      FROM firsts f JOIN bench.base b USING (order_id)
    UNION ALL
    SELECT 1000000 + g, 225000 + g, (g % 50000)::int, ((g % 7000) / 10.0)::numeric(12,2),
           'new', timestamptz '2026-06-01' + g * interval '1 second',
           md5('n' || g) || md5('m' || g)
      FROM generate_series(1, 225000) g),
all_events AS (
    SELECT order_id, 1 AS event_no, customer_id, amount, status, updated_at, payload
      FROM first_events
    UNION ALL   -- a second event for 1 in 10 keys, 1 in 5 of them older than the first
    SELECT order_id, 2, customer_id, amount + 2, 'shipped',
           updated_at + CASE WHEN n % 50 = 20 THEN interval '-1 hour' ELSE interval '1 hour' END,
           md5('s' || n) || md5('t' || n)
      FROM first_events WHERE n % 10 = 0
    UNION ALL   -- a third event for 1 in 90 keys
    SELECT order_id, 3, customer_id, amount + 3, 'delivered', updated_at + interval '2 hours',
           md5('d' || n) || md5('e' || n)
      FROM first_events WHERE n % 90 = 0)
SELECT row_number() OVER (ORDER BY hashint8(order_id * 4 + event_no), order_id, event_no) AS arrival_no,
       order_id, customer_id, amount, status, updated_at, payload
  FROM all_events;
CREATE UNIQUE INDEX ON bench.events (arrival_no);
ANALYZE bench.base, bench.events;

-- bench.load_staging(chunk): stages bench.events into bench.staging in
-- arrival order, one transaction per 'chunk' rows, as a sink connector
-- would.  CALL it outside a transaction block.
CREATE PROCEDURE bench.load_staging(chunk int) LANGUAGE plpgsql AS $$
DECLARE
    total bigint := (SELECT count(*) FROM bench.events);
BEGIN
    FOR i IN 0 .. (total - 1) / chunk LOOP
        INSERT INTO bench.staging (order_id, customer_id, amount, status, updated_at, payload)
        SELECT order_id, customer_id, amount, status, updated_at, payload
          FROM bench.events
         WHERE arrival_no > i * chunk AND arrival_no <= (i + 1) * chunk
         ORDER BY arrival_no;
        COMMIT;
    END LOOP;
END $$;

-- bench.reset(contender): a fresh copy of the target and of the staged
-- events for one contender of the merge benchmark.  CALL it outside a
-- transaction block.
CREATE PROCEDURE bench.reset(contender text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pipeline.drop_pipeline('bench', if_exists => true);
    DROP TABLE IF EXISTS bench.target, bench.staging, bench.watermark;
    CREATE TABLE bench.target AS SELECT * FROM bench.base;
    ALTER TABLE bench.target ADD PRIMARY KEY (order_id);
    CREATE TABLE bench.staging (order_id bigint, customer_id int, amount numeric(12,2),
                                status text, updated_at timestamptz, payload text);
    IF contender LIKE 'pipeline%' THEN
        -- adds _xid and _seq to the staging table, and their index
        PERFORM pipeline.create_pipeline('bench', 'bench.staging', 'bench.target',
            key => ARRAY['order_id'], sequence_by => 'updated_at',
            batch_size => CASE contender WHEN 'pipeline' THEN 1000000 ELSE 100000 END);
    ELSE
        -- the hand-written contenders' bookkeeping: an ingest id and a watermark
        ALTER TABLE bench.staging ADD COLUMN ingest_id bigserial;
        CREATE INDEX ON bench.staging (ingest_id);
        CREATE TABLE bench.watermark (last_id bigint NOT NULL);
        INSERT INTO bench.watermark VALUES (0);
    END IF;
    COMMIT;
    CALL bench.load_staging(5000);
END $$;

-- bench.digest(table): md5 over the table's rows in key order (an ordered
-- md5 of the rows' md5s, so that 10M rows stay under the 1GB text limit).
CREATE FUNCTION bench.digest(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE format('SELECT count(*) || '':'' || md5(string_agg(md5(x::text), '''' ORDER BY x.order_id)) FROM %s x', t)
        INTO d;
    RETURN d;
END $$;

-- bench.prewarm(table): the table and its indexes into shared_buffers, so
-- that every contender starts from the same (warm) cache.
CREATE FUNCTION bench.prewarm(t regclass) RETURNS bigint LANGUAGE sql AS $$
SELECT sum(pg_prewarm(c)) FROM (SELECT t AS c UNION ALL
    SELECT indexrelid FROM pg_index WHERE indrelid = t) s $$;

-- The incremental benchmark: two staging tables and two targets of the
-- same shape.  The targets are generated directly (primary key after the
-- load); the staging tables get the same rows as consumed history (see
-- run.sh).
CREATE TABLE bench.inc_small_src (order_id bigint, customer_id int, amount numeric(12,2),
                                  status text, updated_at timestamptz, payload text);
CREATE TABLE bench.inc_big_src (LIKE bench.inc_small_src);

-- bench.incremental_round(round, size, spread): the 10,000 events one round
-- stages: 5,000 updates of existing keys and 5,000 new keys, a day after
-- everything before.  Not spread: the updated keys are every 20th key of
-- 1..100,000, present in both targets, so that both targets get exactly
-- the same rows.  Spread: the updated keys are spread over the whole of a
-- target of 'size' rows.
CREATE FUNCTION bench.incremental_round(round int, size bigint, spread boolean)
    RETURNS TABLE (order_id bigint, customer_id int, amount numeric(12,2), status text,
                   updated_at timestamptz, payload text)
    LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN g % 2 = 0
            THEN CASE WHEN spread THEN (g / 2 - 1) * (size / 5000) + round ELSE g * 10 - 10 + round END
            ELSE 20000000 + round * 10000 + g END,
       (g % 50000)::int, ((g % 7000) / 10.0)::numeric(12,2), 'paid'::text,
       timestamptz '2030-01-01' + round * interval '1 day' + g * interval '1 second',
       md5('r' || round || '/' || g) || md5('i' || round || '/' || g)
  FROM generate_series(1, 10000) g $$;
