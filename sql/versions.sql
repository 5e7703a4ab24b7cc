-- The library refuses to run pipelines against a catalog of another version
-- (between a new package's restart and ALTER EXTENSION pipeline UPDATE, or
-- after an update the running library predates), with a hint for each
-- case; staging goes on.  The installed version is changed by hand inside
-- a transaction that rolls back.
CALL number_ids_from(356000);
SET client_min_messages = warning;
CREATE SCHEMA versions;
CREATE TABLE versions.src (id int, v int);
SELECT pipeline.create_pipeline('versions_p', 'versions.src', 'versions.tgt', key => ARRAY['id']) > 0 AS created;
INSERT INTO versions.src VALUES (1, 1);
-- the error of a statement, the library's version read <library>
SELECT set_config('versions.library', extversion, false) IS NOT NULL AS noted
  FROM pg_extension WHERE extname = 'pipeline';
CREATE FUNCTION versions.refusal(statement text) RETURNS TABLE (code text, message text, detail text, hint text)
    LANGUAGE sql AS $$
      SELECT e.code, replace(e.message, current_setting('versions.library'), '<library>'),
             replace(e.detail, current_setting('versions.library'), '<library>'),
             replace(e.hint, current_setting('versions.library'), '<library>')
        FROM error_of(statement) e
    $$;

-- An older catalog: run ALTER EXTENSION pipeline UPDATE.
BEGIN;
UPDATE pg_extension SET extversion = '0.0' WHERE extname = 'pipeline';
\x on
SELECT * FROM versions.refusal($$CALL pipeline.run('versions_p')$$);
\x off
SELECT code, hint FROM versions.refusal($$SELECT pipeline.pause('versions_p')$$);
SELECT code, hint FROM versions.refusal($$SELECT pipeline.create_pipeline('versions_q', 'versions.src', 'versions.q', key => ARRAY['id'])$$);
SELECT code, hint FROM versions.refusal($$SELECT * FROM pipeline.backlog('versions_p')$$);
SELECT code, hint FROM versions.refusal($$SELECT pipeline.add_freshness_check('versions.src', 'v', warn_after => '1 hour')$$);
-- staging tables take rows, stamped by the clock
INSERT INTO versions.src VALUES (2, 2);
SELECT count(*) AS staged, count(_xid) AS stamped FROM versions.src;
ROLLBACK;

-- A newer catalog than the library: restart the server.
BEGIN;
UPDATE pg_extension SET extversion = '99.0' WHERE extname = 'pipeline';
\x on
SELECT * FROM versions.refusal($$CALL pipeline.run('versions_p')$$);
\x off
ROLLBACK;

-- The same version: the pipeline runs.
CALL pipeline.run('versions_p');
SELECT id, v FROM versions.tgt ORDER BY id;

SELECT pipeline.drop_pipeline('versions_p');
DROP SCHEMA versions CASCADE;
