-- Data exposure (issue 11): every read path honours the privileges and
-- row-level security of the relation it reads.  An owner keeps secrets (a
-- staging table and a captured table with row-level security, a secret
-- mapping expression); a hostile role tries NOTIFY payloads, the lineage
-- view with a leaky function, archived rows, run_staged_rows, replay,
-- change logs, the extension's trigger functions and freshness checks.
-- The word TOPSECRET must appear only in the owner's own statements.
CALL number_ids_from(970000);
CREATE ROLE security_exposure_owner;
CREATE ROLE security_exposure_hostile;
CREATE ROLE security_exposure_watcher;
CREATE SCHEMA secx_owner AUTHORIZATION security_exposure_owner;
CREATE SCHEMA secx_hostile AUTHORIZATION security_exposure_hostile;
GRANT USAGE ON SCHEMA secx_owner TO security_exposure_hostile, security_exposure_watcher;

-- The owner's staging table: the hostile role may read its public rows only.
SET ROLE security_exposure_owner;
CREATE TABLE secx_owner.raw (id int, v text, secret text);
ALTER TABLE secx_owner.raw ENABLE ROW LEVEL SECURITY;
CREATE POLICY public_rows ON secx_owner.raw FOR SELECT USING (v = 'public');
GRANT SELECT ON secx_owner.raw TO security_exposure_hostile;
SELECT pipeline.create_pipeline('secx_silver', 'secx_owner.raw', 'secx_owner.silver', key => '{id}',
    columns => $${"flag": "secret = 'TOPSECRET-MAPPING'"}$$) > 0 AS created;
INSERT INTO secx_owner.raw VALUES (1, 'public', 'nothing'), (2, 'private', 'TOPSECRET-ROW');
CALL pipeline.run('secx_silver');
RESET ROLE;

-- 10. The lineage view is a security barrier: a cheap leaky function in a
-- query on it sees no other role's sources and mapping expressions.
SET ROLE security_exposure_hostile;
CREATE FUNCTION secx_hostile.leak(a text, b text) RETURNS boolean
    LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN
    RAISE NOTICE 'leaked: % %', a, b;
    RETURN true;
END $$;
SELECT count(*) AS edges_seen FROM pipeline.lineage
 WHERE secx_hostile.leak(source::text, transformation);
SELECT count(*) AS upstream_seen FROM pipeline.upstream('secx_owner.silver');
RESET ROLE;
SELECT reloptions FROM pg_class WHERE oid = 'pipeline.lineage'::regclass;

-- 6. NOTIFY pipeline_alerts carries the alert's id alone.  A listener
-- (here the hostile role) hears that some alert was raised; the alert
-- itself it reads through pipeline.alerts, whose row-level security shows
-- it nothing of the owner's.  The owner's pipeline fails and its freshness
-- check fails with a secret in the error.  psql prints the notifications
-- (with the listening backend's PID) into a file read back below.
SET ROLE security_exposure_owner;
CREATE TABLE secx_owner.feed (id int, at timestamptz);
SELECT pipeline.create_pipeline('secx_fragile', 'secx_owner.feed', 'secx_owner.feed_copy', key => '{id}',
    on_schema_change => 'fail') > 0 AS created;
CREATE FUNCTION secx_owner.boom() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'TOPSECRET-ALERT';
END $$;
SELECT pipeline.add_freshness_check('secx_owner.feed', 'at', warn_after => '1 hour',
                                    filter => 'secx_owner.boom()') AS boom \gset
ALTER TABLE secx_owner.feed ADD COLUMN note text;
INSERT INTO secx_owner.feed (id, at) VALUES (1, now());
RESET ROLE;
SET ROLE security_exposure_hostile;
LISTEN pipeline_alerts;
RESET ROLE;
\getenv abs_builddir PG_ABS_BUILDDIR
\set notify_file :abs_builddir '/results/security_exposure_notify.txt'
\o :notify_file
SET ROLE security_exposure_owner;
CALL pipeline.run('secx_fragile');
SELECT status FROM pipeline.check_freshness(:boom);
RESET ROLE;
SELECT 1;
\o
SELECT regexp_replace(line, 'PID [0-9]+', 'PID N') AS notification
  FROM regexp_split_to_table(pg_read_file(:'notify_file'), E'\n') line
 WHERE line LIKE 'Asynchronous notification%' ORDER BY 1;
SELECT pg_read_file(:'notify_file') ~ 'TOPSECRET|secx_' AS notified_secrets;
SET ROLE security_exposure_hostile;
UNLISTEN pipeline_alerts;
SELECT count(*) AS alerts_seen FROM pipeline.alerts;
RESET ROLE;
SET ROLE security_exposure_owner;
SELECT id, kind, subject, state, message ~ 'TOPSECRET' AS secret_message
  FROM pipeline.alerts ORDER BY id;
SELECT pipeline.drop_freshness_check(:boom);
SELECT pipeline.drop_pipeline('secx_fragile');
RESET ROLE;

-- 7. Archived rows, run_staged_rows and replay.  The hostile role reads the
-- staging table through its row-level security, but may own no pipeline on
-- it: the cursor would pass over the rows the policies hide, silently.
SET ROLE security_exposure_hostile;
SELECT id, v, secret FROM secx_owner.raw ORDER BY id;
SELECT pipeline.create_pipeline('secx_spy', 'secx_owner.raw', 'secx_hostile.copy', key => '{id}') > 0 AS created;
RESET ROLE;
-- Made while the table had no row-level security (merging its public rows
-- by a filter), its runs stop once the table has some: nothing merged,
-- nothing consumed, the new row still pending.
ALTER TABLE secx_owner.raw DISABLE ROW LEVEL SECURITY;
SET ROLE security_exposure_hostile;
SELECT pipeline.create_pipeline('secx_spy', 'secx_owner.raw', 'secx_hostile.copy', key => '{id}',
                                filter => $$v = 'public'$$) > 0 AS created;
CALL pipeline.run('secx_spy');
SELECT max(run_id) AS spy_run FROM pipeline.runs WHERE pipeline = 'secx_spy' \gset
RESET ROLE;
ALTER TABLE secx_owner.raw ENABLE ROW LEVEL SECURITY;
INSERT INTO secx_owner.raw VALUES (4, 'public', 'later');
SET ROLE security_exposure_hostile;
CALL pipeline.run('secx_spy');
SELECT id, v, secret FROM secx_hostile.copy ORDER BY id;
SELECT status, rows_read FROM pipeline.runs WHERE pipeline = 'secx_spy' ORDER BY run_id;
SELECT pending_rows FROM pipeline.status WHERE pipeline = 'secx_spy';
RESET ROLE;
-- ... and once the owner archived the consumed rows, the archive (which
-- holds every row and column) is refused to it, as are the paths reading it.
SET ROLE security_exposure_owner;
SELECT pipeline.set_retention('secx_owner.raw', keep => '0');
SELECT rows_archived FROM pipeline.archive('secx_owner.raw');
SELECT min(id) AS batch FROM pipeline.archive_batches WHERE source = 'secx_owner.raw'::regclass \gset
SELECT count(*) AS owner_reads_rows FROM pipeline.archived_rows_jsonb(:batch);
RESET ROLE;
SET ROLE security_exposure_hostile;
SELECT count(*) AS batches_seen,
       count(*) FILTER (WHERE position('TOPSECRET'::bytea IN pipeline.zstd_decompress(payload)) > 0)
       AS secret_payloads
  FROM pipeline.archive_batches WHERE source = 'secx_owner.raw'::regclass;
SELECT count(*) AS dictionaries_seen FROM pipeline.archive_dictionaries;
SELECT raw_row ->> 'secret' AS secret FROM pipeline.archived_rows_jsonb(:batch);
SELECT secret FROM pipeline.archived_rows(:batch, NULL::secx_owner.raw);
SELECT staged_row ->> 'secret' AS secret FROM pipeline.run_staged_rows(:spy_run);
CALL pipeline.replay('secx_spy', first_run => :spy_run);
SELECT id, v, secret FROM secx_hostile.copy ORDER BY id;
RESET ROLE;
-- Without row-level security, USAGE on the schema and SELECT on every
-- column are needed too.
ALTER TABLE secx_owner.raw DISABLE ROW LEVEL SECURITY;
REVOKE USAGE ON SCHEMA secx_owner FROM security_exposure_hostile;
SET ROLE security_exposure_hostile;
SELECT raw_row ->> 'secret' AS secret FROM pipeline.archived_rows_jsonb(:batch);
RESET ROLE;
GRANT USAGE ON SCHEMA secx_owner TO security_exposure_hostile;
REVOKE SELECT ON secx_owner.raw FROM security_exposure_hostile;
GRANT SELECT (id, v) ON secx_owner.raw TO security_exposure_hostile;
SET ROLE security_exposure_hostile;
SELECT raw_row ->> 'secret' AS secret FROM pipeline.archived_rows_jsonb(:batch);
RESET ROLE;
GRANT SELECT ON secx_owner.raw TO security_exposure_hostile;
-- A role that may read the whole table reads the archive.
SET ROLE security_exposure_hostile;
SELECT count(*) AS rows_read FROM pipeline.archived_rows_jsonb(:batch);
RESET ROLE;
ALTER TABLE secx_owner.raw ENABLE ROW LEVEL SECURITY;

-- 8. A captured table's change log holds every row: a role under the
-- table's row-level security may not join it, nor a target's log.
SET ROLE security_exposure_owner;
CREATE TABLE secx_owner.accounts (id int PRIMARY KEY, holder text, note text);
INSERT INTO secx_owner.accounts VALUES (1, 'security_exposure_hostile', 'yours'),
                                       (2, 'security_exposure_owner', 'TOPSECRET-ACCOUNT');
ALTER TABLE secx_owner.accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON secx_owner.accounts FOR SELECT USING (holder = current_user);
GRANT SELECT ON secx_owner.accounts TO security_exposure_hostile;
SELECT pipeline.capture('secx_owner.accounts')::text AS change_log;
RESET ROLE;
SET ROLE security_exposure_hostile;
SELECT id, note FROM secx_owner.accounts ORDER BY id;
SELECT pipeline.create_pipeline('secx_tap', 'secx_owner.accounts', 'secx_hostile.accounts', key => '{id}');
SELECT pipeline.create_pipeline('secx_tap', 'secx_owner.accounts_changes', 'secx_hostile.accounts', key => '{id}');
SELECT count(*) FROM secx_owner.accounts_changes;
SELECT count(*) AS pipelines_made FROM pipeline.pipelines WHERE name = 'secx_tap';
RESET ROLE;
-- A target: the watcher joins the log of silver while it has no row-level
-- security; once it gains some, the watcher's runs stop reading the log.
GRANT SELECT ON secx_owner.silver TO security_exposure_hostile, security_exposure_watcher;
-- (Only the target's owner may be the first reader of its changes.)
SET ROLE security_exposure_owner;
SELECT pipeline.create_pipeline('secx_mirror', 'secx_owner.silver', 'secx_owner.mirror', key => '{id}') > 0 AS created;
RESET ROLE;
CREATE SCHEMA secx_watcher AUTHORIZATION security_exposure_watcher;
SET ROLE security_exposure_watcher;
SELECT pipeline.create_pipeline('secx_gold', 'secx_owner.silver', 'secx_watcher.gold', key => '{id}') > 0 AS created;
CALL pipeline.run('secx_gold');
SELECT id, v FROM secx_watcher.gold ORDER BY id;
RESET ROLE;
SET ROLE security_exposure_owner;
ALTER TABLE secx_owner.silver ENABLE ROW LEVEL SECURITY;
CREATE POLICY public_rows ON secx_owner.silver FOR SELECT USING (v = 'public');
INSERT INTO secx_owner.raw VALUES (3, 'private', 'TOPSECRET-LATER');
CALL pipeline.run('secx_silver');
RESET ROLE;
SET ROLE security_exposure_watcher;
CALL pipeline.run('secx_gold');
SELECT id, v FROM secx_watcher.gold ORDER BY id;
RESET ROLE;
SET ROLE security_exposure_hostile;
SELECT pipeline.create_pipeline('secx_tap', 'secx_owner.silver', 'secx_hostile.silver', key => '{id}');
RESET ROLE;
-- Errors name no other role's pipeline: the owner's pipeline that would
-- close a cycle through the watcher's, and the drop of the owner's writer
-- that the watcher's pipeline reads, say "a pipeline of another role".
GRANT USAGE ON SCHEMA secx_watcher TO security_exposure_owner;
GRANT SELECT ON secx_watcher.gold TO security_exposure_owner;
SET ROLE security_exposure_owner;
SELECT pipeline.create_pipeline('secx_loop', 'secx_watcher.gold', 'secx_owner.raw', strategy => 'append');
SELECT pipeline.drop_pipeline('secx_silver');
RESET ROLE;

-- 9. The extension's trigger functions run with its rights: nobody may
-- attach them to a table of their own, and attached anyway (by a
-- superuser) they refuse to run anywhere but on their own table.
SET ROLE security_exposure_hostile;
CREATE TABLE secx_hostile.fake_runs (run_id bigint, pipeline_id bigint, status text);
CREATE TABLE secx_hostile.fake_checks (id bigint);
CREATE TRIGGER steal AFTER INSERT ON secx_hostile.fake_runs
    FOR EACH ROW EXECUTE FUNCTION pipeline.openlineage_on_run();
CREATE TRIGGER resync AFTER INSERT ON secx_hostile.fake_checks
    FOR EACH ROW EXECUTE FUNCTION pipeline.sync_freshness_job();
RESET ROLE;
CREATE TRIGGER steal AFTER INSERT ON secx_hostile.fake_runs
    FOR EACH ROW EXECUTE FUNCTION pipeline.openlineage_on_run();
CREATE TRIGGER resync AFTER INSERT ON secx_hostile.fake_checks
    FOR EACH ROW EXECUTE FUNCTION pipeline.sync_freshness_job();
SELECT min(run_id) AS owner_run, min(pipeline_id) AS owner_pipeline FROM pipeline.run_log
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'secx_silver') \gset
SET ROLE security_exposure_hostile;
INSERT INTO secx_hostile.fake_runs VALUES (:owner_run, :owner_pipeline, 'running');
INSERT INTO secx_hostile.fake_checks VALUES (1);
RESET ROLE;
SELECT p.proname, p.prosecdef, has_function_privilege('security_exposure_hostile', p.oid, 'EXECUTE') AS hostile_may_execute
  FROM pg_proc p WHERE p.pronamespace = 'pipeline'::regnamespace
   AND p.proname IN ('openlineage_on_run', 'sync_freshness_job') ORDER BY 1;
-- Every SECURITY DEFINER function of the extension.
SELECT p.oid::regprocedure AS security_definer
  FROM pg_proc p WHERE p.pronamespace = 'pipeline'::regnamespace AND p.prosecdef ORDER BY 1;

-- 11. A freshness check reads the relation: without a column too, it needs
-- SELECT on it, and a check whose owner lost it is UNKNOWN, saying why.
REVOKE SELECT ON secx_owner.silver FROM security_exposure_hostile;
SET ROLE security_exposure_hostile;
SELECT pipeline.add_freshness_check('secx_owner.silver', warn_after => '1 hour');
RESET ROLE;
SET ROLE security_exposure_watcher;
SELECT pipeline.add_freshness_check('secx_owner.silver', warn_after => '1 hour') AS watch \gset
SELECT status, latest IS NOT NULL AS has_latest, message FROM pipeline.check_freshness(:watch);
RESET ROLE;
REVOKE SELECT ON secx_owner.silver FROM security_exposure_watcher;
SET ROLE security_exposure_watcher;
SELECT status, latest IS NOT NULL AS has_latest, message FROM pipeline.check_freshness(:watch);
SELECT status, latest, message, sqlstate FROM pipeline.freshness_results
 WHERE check_id = :watch ORDER BY id DESC LIMIT 1;
SELECT pipeline.alter_freshness_check(:watch, warn_after => '2 hours');
SELECT pipeline.drop_freshness_check(:watch);
RESET ROLE;

-- status and metrics show a role its own pipelines only.
SET ROLE security_exposure_hostile;
SELECT pipeline FROM pipeline.status ORDER BY 1;
SELECT pipeline.metrics() ~ 'secx_silver|secx_gold|TOPSECRET' AS metrics_show_others;
RESET ROLE;

SET ROLE security_exposure_watcher;
SELECT pipeline.drop_pipeline('secx_gold');
RESET ROLE;
SET ROLE security_exposure_hostile;
SELECT pipeline.drop_pipeline('secx_spy');
RESET ROLE;
SET ROLE security_exposure_owner;
SELECT pipeline.uncapture('secx_owner.accounts');
SELECT pipeline.drop_retention('secx_owner.raw');
SELECT pipeline.drop_pipeline('secx_mirror');
SELECT pipeline.drop_pipeline('secx_silver');
RESET ROLE;
SET client_min_messages = warning;
DROP SCHEMA secx_owner, secx_hostile, secx_watcher CASCADE;
RESET client_min_messages;
DROP ROLE security_exposure_owner, security_exposure_hostile, security_exposure_watcher;
