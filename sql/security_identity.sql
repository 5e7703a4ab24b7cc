-- Whose privileges: whatever the extension does to a table a role owns, it
-- does as that role, in a security-restricted operation; settings the
-- role's code changes do not survive into the caller's session.
--
-- si_evil is a plain role with nothing but its own schema.  It plants code
-- everywhere the extension touches its tables -- triggers on its change
-- log, staging table and tombstones, a domain whose CHECK calls its
-- function -- that tries to make it a superuser and to write a table only
-- superusers may write.  Then a superuser drives every path.  After each,
-- si_priv.breach() must say that nothing happened, and the hostile code
-- must have run as si_evil (si.seen records who ran it).
CALL number_ids_from(230000);
SET client_min_messages = warning;
CREATE ROLE si_evil;
CREATE ROLE si_app;
CREATE SCHEMA si AUTHORIZATION si_evil;
GRANT USAGE ON SCHEMA si TO si_app;
CREATE SCHEMA si_priv;
CREATE TABLE si_priv.audit (what text);
CREATE FUNCTION si_priv.breach() RETURNS text LANGUAGE sql
    SET search_path = pg_catalog, pg_temp AS $$
      SELECT format('si_evil superuser: %s, audit rows: %s',
                    (SELECT rolsuper FROM pg_roles WHERE rolname = 'si_evil'),
                    (SELECT count(*) FROM si_priv.audit))
    $$;

SET ROLE si_evil;
CREATE TABLE si.seen (what text, who name);
GRANT INSERT ON si.seen TO PUBLIC;
CREATE FUNCTION si.pwn(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO si.seen VALUES (what, current_user);
    BEGIN
        EXECUTE 'ALTER ROLE si_evil SUPERUSER';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    BEGIN
        INSERT INTO si_priv.audit VALUES (what);
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    RETURN true;
END $$;
CREATE FUNCTION si.pwn_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM si.pwn(TG_ARGV[0] || ' ' || lower(TG_OP));
    RETURN NULL;
END $$;
CREATE DOMAIN si.evil_int AS int CHECK (si.pwn('domain'));

-- a staging table with retention, a pipeline with tombstones, a target read
-- by a second pipeline (so it has a change log), a captured table
CREATE TABLE si.src (id int, v int, seq int, del boolean);
SELECT pipeline.create_pipeline('si_p', 'si.src', 'si.tgt', key => ARRAY['id'],
    sequence_by => 'seq', delete_when => 'del', columns => '{"del": null}') > 0 AS created;
SELECT pipeline.set_retention('si.src', keep => '0');
SELECT pipeline.create_pipeline('si_r1', 'si.tgt', 'si.r1', key => ARRAY['id']) > 0 AS created;
CREATE TABLE si.cap (id int PRIMARY KEY, v int);
GRANT INSERT ON si.cap TO si_app;
SELECT pipeline.capture('si.cap')::text AS change_log;
SELECT pipeline.create_pipeline('si_r3', 'si.cap', 'si.r3', key => ARRAY['id']) > 0 AS created;

-- the traps
CREATE TRIGGER trap AFTER INSERT OR UPDATE OR DELETE ON si.tgt_changes
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('change log');
CREATE TRIGGER trap AFTER INSERT OR UPDATE OR DELETE ON si.cap_changes
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('capture log');
CREATE TRIGGER trap AFTER DELETE ON si.src
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('staging');
CREATE TRIGGER trap AFTER INSERT OR DELETE ON si.tgt_tombstones
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('tombstones');
INSERT INTO si.src VALUES (1, 10, 1, false), (2, 20, 1, false), (3, 30, 1, false);
RESET ROLE;

SELECT si_priv.breach();

-- a run writing the target and its change log, with deletes (tombstones)
CALL pipeline.run('si_p');
SELECT si_priv.breach();
SET ROLE si_evil;
INSERT INTO si.src VALUES (3, NULL, 2, true);
RESET ROLE;
CALL pipeline.run('si_p');
SELECT si_priv.breach();
CALL pipeline.run('si_r1');

-- a reader created by the superuser: the log is seeded with the target
SELECT pipeline.create_pipeline('si_r2', 'si.tgt', 'si_priv.r2', key => ARRAY['id']) > 0 AS created;
SELECT si_priv.breach();

-- the next run of a reader trims what both readers consumed
CALL pipeline.run('si_r2');
SELECT si_priv.breach();

-- a column of the hostile domain added to the target: the writer's run adds
-- it to the change log, whose rows then take the domain's CHECK
SET ROLE si_evil;
ALTER TABLE si.tgt ADD COLUMN w si.evil_int;
INSERT INTO si.src VALUES (4, 40, 1, false);
RESET ROLE;
CALL pipeline.run('si_p');
SELECT si_priv.breach();
SELECT attname, atttypid::regtype FROM pg_attribute
 WHERE attrelid = 'si.tgt_changes'::regclass AND attname = 'w';
CALL pipeline.run('si_r2');
SELECT si_priv.breach();

-- captured writes, by an application role; then a domain column on the
-- captured table, which the next write adds to the log
SET ROLE si_app;
INSERT INTO si.cap VALUES (1, 1);
RESET ROLE;
SELECT si_priv.breach();
SET ROLE si_evil;
ALTER TABLE si.cap ADD COLUMN w si.evil_int;
RESET ROLE;
SET ROLE si_app;
INSERT INTO si.cap (id, v) VALUES (2, 2);
RESET ROLE;
SELECT si_priv.breach();
SELECT attname, atttypid::regtype FROM pg_attribute
 WHERE attrelid = 'si.cap_changes'::regclass AND attname = 'w';
-- the capture trigger function attached again, under another name
SET ROLE si_evil;
CREATE TRIGGER again AFTER INSERT ON si.cap REFERENCING NEW TABLE AS pl_new
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline.capture_changes();
\x on
SELECT * FROM error_of('INSERT INTO si.cap (id, v) VALUES (3, 3)');
\x off
DROP TRIGGER again ON si.cap;
RESET ROLE;

-- requeue, replay, an archive pass
CALL pipeline.requeue_quarantine('si_p');
SELECT si_priv.breach();
CALL pipeline.replay('si_p');
SELECT si_priv.breach();
SELECT rows_removed > 0 AS removed FROM pipeline.archive('si.src');
SELECT si_priv.breach();

-- provenance: the column is added as the target's owner
SELECT pipeline.enable_provenance('si_p');
SELECT si_priv.breach();
SELECT attname FROM pg_attribute WHERE attrelid = 'si.tgt'::regclass AND attname = '__run_id';
SELECT pipeline.disable_provenance('si_p');
-- the internal function behind it adds a column only to a table the caller
-- owns: si_evil cannot alter the superuser's audit table through it
GRANT USAGE ON SCHEMA si_priv TO si_evil;
SET ROLE si_evil;
\set VERBOSITY terse
SELECT pipeline.add_provenance_column('si_priv.audit', '__run_id');
\set VERBOSITY default
RESET ROLE;
REVOKE USAGE ON SCHEMA si_priv FROM si_evil;
SELECT count(*) AS audit_columns FROM pg_attribute WHERE attrelid = 'si_priv.audit'::regclass AND attnum > 0;

-- a superuser makes another role's table a source: it stays the owner's,
-- sequence included
SET ROLE si_evil;
CREATE TABLE si.raw (id int, v int);
RESET ROLE;
SELECT pipeline.prepare_source('si.raw');
SELECT c.relname, c.relowner::regrole FROM pg_class c
 WHERE c.relnamespace = 'si'::regnamespace AND c.relname LIKE 'raw%' ORDER BY 1;

-- an aggregate: its FILTER and group_filter, and triggers on its group and
-- row state, when a superuser runs it (a delete, an extreme computed again
-- from the row state, a remembered delete forgotten at the next run) and
-- drops it
SET ROLE si_evil;
CREATE TABLE si.asrc (id int, g int, v int, seq int, del boolean);
SELECT pipeline.create_pipeline('si_a', 'si.asrc', 'si.agg', strategy => 'aggregate',
    key => ARRAY['g'], source_key => ARRAY['id'], sequence_by => 'seq', delete_when => 'del',
    columns => $${"n": "count(*) FILTER (WHERE si.pwn('aggregate filter'))", "top": "max(v)"}$$,
    group_filter => $$si.pwn('group_filter')$$, tombstone_retention => '0') > 0 AS created;
CREATE TRIGGER trap AFTER INSERT OR UPDATE OR DELETE ON si.agg_groups
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('group state');
CREATE TRIGGER trap AFTER INSERT OR UPDATE OR DELETE ON si.agg_rows
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('row state');
INSERT INTO si.asrc VALUES (1, 1, 10, 1, false), (2, 1, 20, 1, false);
RESET ROLE;
CALL pipeline.run('si_a');
SELECT si_priv.breach();
SET ROLE si_evil;
INSERT INTO si.asrc VALUES (2, 1, NULL, 2, true);
RESET ROLE;
CALL pipeline.run('si_a');
CALL pipeline.run('si_a');
SELECT si_priv.breach();
SELECT g, n, top FROM si.agg;
SELECT count(*) AS remembered_deletes FROM si.agg_rows WHERE NOT __pl_live;

-- a merge joining a captured dimension: an expression over the dimension,
-- triggers on the dimension's change log (trimmed as the pipeline follows
-- it) and on the kept rows, when a superuser runs it, the dimension's change
-- sending the kept row again
SET ROLE si_evil;
CREATE TABLE si.dim (id int PRIMARY KEY, name text);
INSERT INTO si.dim VALUES (1, 'a');
SELECT pipeline.capture('si.dim') IS NOT NULL AS captured;
CREATE TRIGGER trap AFTER INSERT OR UPDATE OR DELETE ON si.dim_changes
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('dimension log');
CREATE TABLE si.jsrc (id int, dim_id int);
SELECT pipeline.create_pipeline('si_j', 'si.jsrc', 'si.joined', key => ARRAY['id'],
    columns => $${"dim_id": null, "name": "d.name || si.pwn('join mapping')::text"}$$,
    joins => '[{"table": "si.dim", "as": "d", "on": {"dim_id": "id"}}]') > 0 AS created;
CREATE TRIGGER trap AFTER INSERT OR UPDATE OR DELETE ON si.joined_rows
    FOR EACH STATEMENT EXECUTE FUNCTION si.pwn_trigger('kept rows');
INSERT INTO si.jsrc VALUES (1, 1);
RESET ROLE;
CALL pipeline.run('si_j');
SET ROLE si_evil;
UPDATE si.dim SET name = 'b' WHERE id = 1;
RESET ROLE;
CALL pipeline.run('si_j');
CALL pipeline.run('si_j');
SELECT si_priv.breach();
SELECT id, name FROM si.joined;

-- drops: the superuser's reader, then the last reader (the log goes), the
-- writer (its tombstones go), the aggregate (its state goes), the capture's
-- reader and the capture
SELECT pipeline.drop_pipeline('si_r2');
SELECT pipeline.drop_pipeline('si_r1');
SELECT to_regclass('si.tgt_changes') AS change_log;
SELECT pipeline.drop_pipeline('si_p');
SELECT to_regclass('si.tgt_tombstones') AS tombstones;
SELECT pipeline.drop_pipeline('si_a');
SELECT to_regclass('si.agg_groups') AS group_state, to_regclass('si.agg_rows') AS row_state;
SELECT pipeline.drop_pipeline('si_j');
SELECT to_regclass('si.joined_rows') AS kept_rows;
SELECT pipeline.uncapture('si.dim');
SELECT pipeline.drop_pipeline('si_r3');
SELECT pipeline.uncapture('si.cap');
SELECT si_priv.breach();

-- the hostile code ran on every path, as si_evil (the domain check also as
-- si_app, in its own INSERT into the captured table)
SELECT what, who FROM si.seen GROUP BY what, who ORDER BY what, who;

-- pipeline.capture_changes writes a log only as the capture trigger of a
-- captured table
SET ROLE si_evil;
CREATE TABLE si.fake (id int PRIMARY KEY, v int);
CREATE TRIGGER pipeline_capture_insert AFTER INSERT ON si.fake REFERENCING NEW TABLE AS pl_new
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline.capture_changes();
\x on
SELECT * FROM error_of('INSERT INTO si.fake VALUES (1, 1)');
\x off
RESET ROLE;

-- Settings.  si_evil's mapping, filter, delete_when, check and freshness
-- filter change session settings with set_config(..., false); none of it
-- survives a superuser's run, a failed one included.
SET ROLE si_evil;
CREATE TABLE si.gsrc (id int, v int, at timestamptz DEFAULT now());
SELECT pipeline.create_pipeline('si_g', 'si.gsrc', 'si.gtgt', key => ARRAY['id'],
    columns => $${"v": "v + length(set_config('search_path', 'si', false)) * 0"}$$,
    filter => $$set_config('statement_timeout', '4321', false) IS NOT NULL$$,
    delete_when => $$set_config('standard_conforming_strings', 'off', false) = 'x'$$) > 0 AS created;
SELECT pipeline.add_check('si_g', 'read_only',
    $$set_config('default_transaction_read_only', 'on', false) = 'on'$$) > 0 AS added;
SELECT pipeline.add_freshness_check('si.gtgt', 'at', warn_after => '1 hour', error_after => '2 hours',
    filter => $$set_config('search_path', 'si', false) IS NOT NULL$$) > 0 AS added;
SELECT pipeline.create_pipeline('si_gf', 'si.gsrc', 'si.gftgt', key => ARRAY['id'],
    columns => $${"v": "v + length(set_config('search_path', 'si', false)) * 0"}$$) > 0 AS created;
SELECT pipeline.add_check('si_gf', 'never',
    $$set_config('statement_timeout', '4321', false) IS NULL$$, action => 'fail') > 0 AS added;
INSERT INTO si.gsrc VALUES (1, 1), (2, 2);
RESET ROLE;
RESET ALL;
SET client_min_messages = warning;
CREATE FUNCTION si_priv.settings() RETURNS text LANGUAGE sql AS $$
  SELECT format('search_path=%s statement_timeout=%s standard_conforming_strings=%s default_transaction_read_only=%s',
                current_setting('search_path'), current_setting('statement_timeout'),
                current_setting('standard_conforming_strings'),
                current_setting('default_transaction_read_only'))
$$;
SELECT si_priv.settings();
CALL pipeline.run('si_g');
SELECT si_priv.settings();
SELECT count(*) AS merged FROM si.gtgt;
RESET ALL;
SET client_min_messages = warning;
SELECT status FROM pipeline.check_freshness((SELECT id FROM pipeline.freshness_checks
                                              WHERE relation = 'si.gtgt'::regclass));
SELECT si_priv.settings();
RESET ALL;
SET client_min_messages = warning;
\set VERBOSITY terse
CALL pipeline.run('si_gf');
\set VERBOSITY default
SELECT si_priv.settings();
INSERT INTO si.gsrc VALUES (3, 3);
RESET ALL;
SET client_min_messages = warning;
BEGIN;
CALL pipeline.run('si_g');
SELECT si_priv.settings();
COMMIT;
SELECT status FROM pipeline.runs WHERE pipeline IN ('si_g', 'si_gf') ORDER BY run_id;

-- clean up
SELECT pipeline.drop_pipeline('si_g');
SELECT pipeline.drop_pipeline('si_gf');
DROP SCHEMA si CASCADE;
DROP SCHEMA si_priv CASCADE;
DROP OWNED BY si_evil, si_app;
DROP ROLE si_evil;
DROP ROLE si_app;
