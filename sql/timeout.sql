-- statement_timeout per pipeline: a batch statement that takes longer is
-- cancelled and the run fails (the workers retry it); without a limit the
-- same batch goes through; the caller's own, shorter statement_timeout is
-- kept.
CALL number_ids_from(130000);
SET client_min_messages = warning;
\set VERBOSITY terse
CREATE SCHEMA tm;
CREATE TABLE tm.src (id int);
SELECT pipeline.create_pipeline('tm_slow', 'tm.src', 'tm.dst', strategy => 'append',
    statement_timeout => '100 milliseconds') > 0 AS created;
CREATE FUNCTION tm.slow() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$;
CREATE TRIGGER slow AFTER INSERT ON tm.dst FOR EACH STATEMENT EXECUTE FUNCTION tm.slow();
INSERT INTO tm.src SELECT g FROM generate_series(1, 10) g;
SELECT statement_timeout FROM pipeline.pipelines WHERE name = 'tm_slow';

CALL pipeline.run('tm_slow');
SELECT status, error_sqlstate, error_message FROM pipeline.runs WHERE pipeline = 'tm_slow';
SELECT count(*) AS merged FROM tm.dst;

-- 0 removes the limit: the slow batch is merged.
SELECT pipeline.alter_pipeline('tm_slow', statement_timeout => '0');
SELECT statement_timeout FROM pipeline.pipelines WHERE name = 'tm_slow';
CALL pipeline.run('tm_slow');
SELECT count(*) AS merged FROM tm.dst;

-- A generous limit does not lift the caller's shorter one.
SELECT pipeline.alter_pipeline('tm_slow', statement_timeout => '1 minute');
INSERT INTO tm.src SELECT g FROM generate_series(11, 20) g;
SET statement_timeout = '200ms';
CALL pipeline.run('tm_slow');
RESET statement_timeout;
SELECT count(*) AS merged FROM tm.dst;

-- A negative limit is refused.
\set VERBOSITY default
SELECT pipeline.alter_pipeline('tm_slow', statement_timeout => '-1 second');

SELECT pipeline.drop_pipeline('tm_slow');
DROP SCHEMA tm CASCADE;
