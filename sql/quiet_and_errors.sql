-- Quiet schedules: an interval or cron schedule whose tick finds nothing
-- staged runs nothing and records no run, only counts the tick.  Errors
-- that leaked internals: expressions that cannot map one staged row to one
-- target row are refused when the pipeline is defined, and a failing batch
-- names the pipeline and the batch instead of quoting its statement.
CALL number_ids_from(120000);
SET client_min_messages = warning;
CREATE SCHEMA qe;

-- Waits (polling, at most a minute) until a condition holds.
CREATE FUNCTION qe.wait_for(condition text) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1 .. 600 LOOP
        EXECUTE 'SELECT ' || condition INTO ok;
        IF ok THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN false;
END $$;

-- The context an error of a statement carries.
CREATE FUNCTION qe.context_of(statement text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    context text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS context = PG_EXCEPTION_CONTEXT;
    RETURN context;
END $$;

-- A '1 second' schedule over an idle source: the scheduler's ticks find
-- nothing, run nothing and record no run; status shows they happen.
CREATE TABLE qe.ticks (id int);
SELECT pipeline.create_pipeline('qe_ticks', 'qe.ticks', 'qe.ticks_out', strategy => 'append',
                                schedule => '1 second') > 0 AS created;
-- (a bounded wait first: absence cannot be polled for)
SELECT pg_sleep(3);
SELECT qe.wait_for($$(SELECT empty_ticks >= 3 FROM pipeline.status WHERE pipeline = 'qe_ticks')$$) AS ticked;
SELECT count(*) AS runs FROM pipeline.runs WHERE pipeline = 'qe_ticks';
SELECT state, last_run_id IS NULL AS never_ran,
       last_empty_tick_at > now() - interval '1 minute' AS ticked_lately,
       next_run_at > last_empty_tick_at AS next_after_tick
  FROM pipeline.status WHERE pipeline = 'qe_ticks';

-- Rows arrive: the next tick runs, once; then the ticks are empty again.
INSERT INTO qe.ticks VALUES (1), (2), (3);
SELECT qe.wait_for($$(SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline = 'qe_ticks' AND status = 'succeeded')$$) AS ran;
SELECT empty_ticks AS ticks_after_run FROM pipeline.status WHERE pipeline = 'qe_ticks' \gset
SELECT qe.wait_for(format($$(SELECT empty_ticks >= %s + 2 FROM pipeline.status WHERE pipeline = 'qe_ticks')$$,
                          :ticks_after_run)) AS ticking_again;
SELECT status, rows_read, rows_inserted FROM pipeline.runs WHERE pipeline = 'qe_ticks';
SELECT count(*) AS merged FROM qe.ticks_out;

-- A run a user asks for is recorded even when it reads nothing.
CALL pipeline.run('qe_ticks');
SELECT status, rows_read FROM pipeline.runs WHERE pipeline = 'qe_ticks' ORDER BY run_id;
-- A manual or continuous pipeline has no ticks to count.
SELECT pipeline.alter_pipeline('qe_ticks', schedule => 'manual');
SELECT schedule, empty_ticks, last_empty_tick_at FROM pipeline.status WHERE pipeline = 'qe_ticks';
SELECT pipeline.drop_pipeline('qe_ticks');

-- Expressions that do not keep to their row, and types no target column
-- or key can have, are refused up front (error_of: see 00_install).
CREATE TABLE qe.src (id int, v text, ts timestamptz, doc json, amount int);
\x on
-- sequence_by mapped to a row value (a pseudo-type, ordered or not)
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    sequence_by => 'ts', columns => '{"ts": "ROW(id, v)"}')$sql$);
-- another column mapped to a row value
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    columns => '{"v": "ROW(id, v)"}')$sql$);
-- an aggregate: in a mapping, over the row in a subquery, in a filter
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    columns => '{"amount": "sum(amount)"}')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    columns => '{"amount": "(SELECT sum(amount))"}')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    filter => 'count(*) > 1')$sql$);
-- a window function
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    columns => '{"amount": "rank() OVER (ORDER BY id)"}')$sql$);
-- a set-returning function: in a mapping (it merged several rows of one),
-- in delete_when
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    columns => '{"amount": "generate_series(1, amount)"}')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['id'],
    delete_when => 'generate_series(1, 2) > 1')$sql$);
-- a key of a type with no equality for the new target's unique index
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('qe_bad', 'qe.src', 'qe.bad', key => ARRAY['doc'])$sql$);
-- alter_pipeline checks the same way
SELECT pipeline.create_pipeline('qe_ok', 'qe.src', 'qe.ok', key => ARRAY['id']) > 0 AS created;
SELECT * FROM error_of($sql$SELECT pipeline.alter_pipeline('qe_ok', columns => '{"amount": "max(amount)"}')$sql$);
\x off
SELECT name FROM pipeline.pipelines WHERE name LIKE 'qe%' ORDER BY name;
SELECT relname FROM pg_class WHERE relnamespace = 'qe'::regnamespace AND relkind = 'r' ORDER BY 1;
-- What stays allowed: aggregates and set-returning functions in a subquery
-- of their own, a row value cast to a composite type, a key mapped to jsonb.
CREATE TYPE qe.pair AS (id int, v text);
SELECT pipeline.create_pipeline('qe_sub', 'qe.src', 'qe.sub', key => ARRAY['doc'],
    columns => '{"doc": "doc::jsonb", "amount": "(SELECT count(*) FROM generate_series(1, amount))::int",
                 "v": "ROW(id, v)::qe.pair"}') > 0 AS created;
INSERT INTO qe.src VALUES (1, 'a', now(), '{"k": 1}', 3);
CALL pipeline.run('qe_sub');
SELECT doc, amount, v FROM qe.sub;

-- A failing batch names the pipeline and the batch; the kilobytes of its
-- generated statement stay out of the error, and the user's own lines
-- (the function that raised) stay in it.
CREATE FUNCTION qe.boom(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF i = 2 THEN
        RAISE EXCEPTION 'boom %', i USING ERRCODE = '55000';
    END IF;
    RETURN i;
END $$;
CREATE TABLE qe.staged (id int, v text);
SELECT pipeline.create_pipeline('qe_fail', 'qe.staged', 'qe.failed', key => ARRAY['id'],
    columns => '{"v": "qe.boom(id)::text"}') > 0 AS created;
INSERT INTO qe.staged VALUES (1, 'a'), (2, 'b');
CALL pipeline.run('qe_fail');
-- the same inside a function (an atomic run)
SELECT c NOT LIKE '%INSERT INTO%' AND c NOT LIKE '%WITH %' AS no_statement,
       c LIKE '%pipeline "qe_fail", batch 1 of run %' AS names_the_batch,
       c LIKE 'PL/pgSQL function qe.boom(integer) line 4 at RAISE%' AS keeps_the_users_line
  FROM qe.context_of($$CALL pipeline.run('qe_fail')$$) c;
-- an error while the statement is planned again (the function is gone)
DROP FUNCTION qe.boom(int);
CALL pipeline.run('qe_fail');
SELECT status, error_sqlstate, error_message FROM pipeline.runs WHERE pipeline = 'qe_fail' ORDER BY run_id;
-- A row error still isolates the row: the run quarantines it and goes on.
SELECT pipeline.alter_pipeline('qe_fail', columns => '{"v": "(10 / (id - 2))::text"}');
CALL pipeline.run('qe_fail');
SELECT reason, sqlstate FROM pipeline.quarantine WHERE pipeline = 'qe_fail';

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'qe%' ORDER BY name;
DROP SCHEMA qe CASCADE;
