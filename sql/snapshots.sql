--
-- Full extracts (format => 'snapshot'): each source transaction's rows are
-- the whole table; a merge keeps the latest extract, an scd2 the history
-- of every extract.  Compared with the expected tables of the APPLY CHANGES
-- FROM SNAPSHOT documentation (Databricks, "periodic" and "historical"
-- snapshot examples) and of dbt's snapshot documentation (check strategy,
-- hard_deletes), then the guard, the owner's decisions and partial extracts.
--
CALL number_ids_from(160000);
CREATE SCHEMA snap;
CREATE FUNCTION snap.run(name text) RETURNS TABLE (status text, read bigint, inserted bigint,
    updated bigint, unchanged bigint, deleted bigint, skipped bigint, quarantined bigint, batches int)
    LANGUAGE plpgsql AS $$
BEGIN
    CALL run_quietly(name);
    RETURN QUERY SELECT r.status, r.rows_read, r.rows_inserted, r.rows_updated, r.rows_unchanged,
        r.rows_deleted, r.rows_filtered, r.rows_quarantined, r.batches
      FROM pipeline.runs r WHERE r.pipeline = name ORDER BY r.run_id DESC LIMIT 1;
END $$;
-- a run that fails: its error, the extract's transaction id written X
CREATE PROCEDURE snap.run_refused(name text) LANGUAGE plpgsql AS $$
DECLARE
    state text; message text; detail text; hint text;
BEGIN
    CALL run_quietly(name);
    RAISE NOTICE 'the run succeeded';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE E'%: %\nDETAIL: %\nHINT: %', state,
        regexp_replace(message, 'extract [0-9]+', 'extract X'), detail,
        regexp_replace(hint, '''[0-9]+''', '''X''', 'g');
END $$;

-- APPLY CHANGES FROM SNAPSHOT, periodic snapshots: {1: a1, 2: a2}, then
-- {2: b2, 3: a3}.  SCD type 1 keeps the latest; SCD type 2 every version,
-- from the snapshot version that opened it to the one that closed it.
CREATE TABLE snap.mytable (key int, value text, version int);
CREATE TABLE snap.target_scd1 (key int PRIMARY KEY, value text);
SELECT pipeline.create_pipeline('periodic_scd1', 'snap.mytable', 'snap.target_scd1', key => ARRAY['key'],
                                format => 'snapshot', except_columns => ARRAY['version']) > 0 AS created;
SELECT pipeline.create_pipeline('periodic_scd2', 'snap.mytable', 'snap.target_scd2', key => ARRAY['key'],
                                strategy => 'scd2', sequence_by => 'version', format => 'snapshot') > 0 AS created;
SELECT name, format, hard_deletes, max_delete_share FROM pipeline.pipelines
 WHERE name LIKE 'periodic%' ORDER BY name;
INSERT INTO snap.mytable VALUES (1, 'a1', 1), (2, 'a2', 1);
SELECT * FROM snap.run('periodic_scd1');
SELECT * FROM snap.run('periodic_scd2');
INSERT INTO snap.mytable VALUES (2, 'b2', 2), (3, 'a3', 2);
-- (the extract deletes half of the target: at the default max_delete_share)
SELECT * FROM snap.run('periodic_scd1');
SELECT * FROM snap.run('periodic_scd2');
TABLE snap.target_scd1 ORDER BY key;
SELECT key, value, __start_at, __end_at FROM snap.target_scd2 ORDER BY key, __start_at;

-- APPLY CHANGES FROM SNAPSHOT, historical snapshots, history tracked on
-- TrackingColumn only: NonTrackingColumn is updated in place (key 4).
CREATE TABLE snap.history_source ("Key" int, "TrackingColumn" text, "NonTrackingColumn" text, version int);
SELECT pipeline.create_pipeline('historical', 'snap.history_source', 'snap.history_target', key => ARRAY['Key'],
                                strategy => 'scd2', sequence_by => 'version', format => 'snapshot',
                                track_history => ARRAY['TrackingColumn']) > 0 AS created;
INSERT INTO snap.history_source VALUES (1, 'a1', 'b1', 1), (2, 'a2', 'b2', 1), (4, 'a4', 'b4', 1);
INSERT INTO snap.history_source VALUES (2, 'a2_new', 'b2', 2), (3, 'a3', 'b3', 2), (4, 'a4', 'b4_new', 2);
SELECT * FROM snap.run('historical');
SELECT "Key", "TrackingColumn", "NonTrackingColumn", __start_at, __end_at
  FROM snap.history_target ORDER BY 1, __start_at;

-- dbt snapshots, check strategy on every column: an order pending, then
-- shipped; then gone from the source (hard_deletes invalidate closes its
-- version, ignore keeps it current), then back.
CREATE TABLE snap.orders (id int, status text, run int);
SELECT pipeline.create_pipeline('orders_invalidate', 'snap.orders', 'snap.orders_invalidate', key => ARRAY['id'],
                                strategy => 'scd2', sequence_by => 'run', format => 'snapshot',
                                hard_deletes => 'invalidate', max_delete_share => 1) > 0 AS created;
SELECT pipeline.create_pipeline('orders_ignore', 'snap.orders', 'snap.orders_ignore', key => ARRAY['id'],
                                strategy => 'scd2', sequence_by => 'run', format => 'snapshot',
                                hard_deletes => 'ignore') > 0 AS created;
INSERT INTO snap.orders VALUES (1, 'pending', 1), (2, 'active', 1);
INSERT INTO snap.orders VALUES (1, 'shipped', 2), (2, 'active', 2);
INSERT INTO snap.orders VALUES (2, 'active', 3);
INSERT INTO snap.orders VALUES (1, 'restored', 4), (2, 'active', 4);
SELECT * FROM snap.run('orders_invalidate');
SELECT * FROM snap.run('orders_ignore');
SELECT id, status, __start_at AS valid_from, __end_at AS valid_to FROM snap.orders_invalidate ORDER BY id, __start_at;
SELECT id, status, __start_at AS valid_from, __end_at AS valid_to FROM snap.orders_ignore ORDER BY id, __start_at;
-- hard_deletes new_record (dbt's): the missing order's version is closed
-- and a version marked __deleted, with its last values, starts there; when
-- it comes back, that one closes.  A key already deleted is not deleted
-- again, and the guard counts only the live current versions.
SELECT pipeline.create_pipeline('orders_new_record', 'snap.orders', 'snap.orders_new_record', key => ARRAY['id'],
                                strategy => 'scd2', sequence_by => 'run', format => 'snapshot',
                                hard_deletes => 'new_record', max_delete_share => 1) > 0 AS created;
SELECT * FROM snap.run('orders_new_record');
SELECT id, status, __start_at AS valid_from, __end_at AS valid_to, __deleted
  FROM snap.orders_new_record ORDER BY id, __start_at;
INSERT INTO snap.orders VALUES (2, 'active', 5);
INSERT INTO snap.orders VALUES (2, 'active', 6);
INSERT INTO snap.orders VALUES (1, 'shipped', 7), (2, 'active', 7);
SELECT * FROM snap.run('orders_new_record');
SELECT id, status, __start_at AS valid_from, __end_at AS valid_to, __deleted
  FROM snap.orders_new_record ORDER BY id, __start_at;
-- with track_history too, and into an existing target, which must have
-- the column
CREATE TABLE snap.orders_tracked (id int, status text, run int, note text, __start_at int NOT NULL,
                                  __end_at int, PRIMARY KEY (id, __start_at));
CREATE UNIQUE INDEX ON snap.orders_tracked (id) WHERE __end_at IS NULL;
SELECT pipeline.create_pipeline('orders_tracked', 'snap.orders', 'snap.orders_tracked', key => ARRAY['id'],
                                strategy => 'scd2', sequence_by => 'run', format => 'snapshot',
                                hard_deletes => 'new_record', track_history => ARRAY['status']);
ALTER TABLE snap.orders_tracked ADD COLUMN __deleted boolean NOT NULL DEFAULT false;
SELECT pipeline.create_pipeline('orders_tracked', 'snap.orders', 'snap.orders_tracked', key => ARRAY['id'],
                                strategy => 'scd2', sequence_by => 'run', format => 'snapshot',
                                hard_deletes => 'new_record', track_history => ARRAY['status'],
                                max_delete_share => 1, columns => '{"note": "null::text"}') > 0 AS created;
SELECT * FROM snap.run('orders_tracked');
SELECT id, status, __start_at AS valid_from, __end_at AS valid_to, __deleted
  FROM snap.orders_tracked ORDER BY id, __start_at;

-- The guard: an extract missing more than max_delete_share of the
-- target's rows (a truncated file) is refused, the run fails, the extract
-- stays pending, nothing of it is applied.
CREATE TABLE snap.accounts_extract (id int, name text);
CREATE TABLE snap.accounts (id int PRIMARY KEY, name text);
SELECT pipeline.create_pipeline('accounts', 'snap.accounts_extract', 'snap.accounts', key => ARRAY['id'],
                                format => 'snapshot', max_delete_share => 0.2) > 0 AS created;
INSERT INTO snap.accounts_extract SELECT g, 'n' || g FROM generate_series(1, 10) g;
SELECT * FROM snap.run('accounts');
-- 8 of 10 gone, one changed
INSERT INTO snap.accounts_extract VALUES (1, 'n1'), (2, 'two');
SELECT _xid AS truncated FROM snap.accounts_extract WHERE name = 'two' \gset
CALL snap.run_refused('accounts');
SELECT count(*) AS still_ten, count(*) FILTER (WHERE name = 'two') AS none_applied FROM snap.accounts;
SELECT pending_rows FROM pipeline.status WHERE pipeline = 'accounts';
-- the owner looks and skips it: passed over, counted as filtered
SELECT pipeline.skip_extract('accounts', :'truncated');
SELECT * FROM snap.run('accounts');
SELECT count(*) AS still_ten FROM snap.accounts;
-- a later extract that is right to delete 3 of 10 is allowed by its owner
INSERT INTO snap.accounts_extract SELECT g, 'n' || g FROM generate_series(1, 7) g;
SELECT _xid AS big_delete FROM snap.accounts_extract ORDER BY _xid DESC LIMIT 1 \gset
CALL snap.run_refused('accounts');
SELECT pipeline.allow_extract('accounts', :'big_delete');
SELECT * FROM snap.run('accounts');
SELECT count(*) AS seven FROM snap.accounts;
-- its deletes are of keys the extract lacks, not of rows it read: no stale row
SELECT rows_read, rows_unchanged, rows_deleted, rows_stale FROM pipeline.runs
 WHERE pipeline = 'accounts' ORDER BY run_id DESC LIMIT 1;
SELECT decision, decided_by FROM pipeline.extract_decisions ORDER BY extract_xid;

-- Another role neither decides about the owner's extracts nor writes the
-- decisions, nor reads them.
CREATE ROLE snap_evil;
SET ROLE snap_evil;
SELECT pipeline.allow_extract('accounts', '1');
SELECT pipeline.skip_extract('accounts', '1');
INSERT INTO pipeline.extract_decisions (pipeline_id, extract_xid, decision, decided_by)
VALUES (1, '1', 'allow', 'snap_evil');
SELECT count(*) AS decisions_seen FROM pipeline.extract_decisions;
RESET ROLE;
DROP ROLE snap_evil;

-- A partial extract applies its rows and deletes nothing: a row
-- quarantined (NULL key) leaves its key unknown.
INSERT INTO snap.accounts_extract VALUES (1, 'one'), (NULL, 'no key'), (8, 'n8');
SELECT * FROM snap.run('accounts');
SELECT id, name FROM snap.accounts ORDER BY id;
-- requeued, the row is an upsert, never a complete extract
UPDATE pipeline.quarantine_log SET raw_row = jsonb_set(raw_row, '{id}', '9')
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'accounts');
CALL pipeline.requeue_quarantine('accounts');
SELECT count(*) AS nine_rows FROM snap.accounts;

-- Duplicate keys in one extract: the row staged last wins.
INSERT INTO snap.accounts_extract SELECT g, 'n' || g FROM generate_series(1, 9) g
UNION ALL SELECT 3, 'three, again' UNION ALL SELECT 4, 'n4';
SELECT * FROM snap.run('accounts');
SELECT id, name FROM snap.accounts WHERE id IN (3, 4) ORDER BY id;

-- Many extracts pending: one batch each, in the order they were staged.
INSERT INTO snap.accounts_extract SELECT g, 'x' || g FROM generate_series(1, 9) g;
INSERT INTO snap.accounts_extract SELECT g, 'y' || g FROM generate_series(1, 9) g;
INSERT INTO snap.accounts_extract SELECT g, 'z' || g FROM generate_series(2, 9) g;
SELECT * FROM snap.run('accounts');
SELECT string_agg(name, ' ' ORDER BY id) FROM snap.accounts;

-- A filter leaves rows out of the extract: their keys are gone.
CREATE TABLE snap.regions_extract (id int, region text);
SELECT pipeline.create_pipeline('eu_accounts', 'snap.regions_extract', 'snap.eu_accounts', key => ARRAY['id'],
                                format => 'snapshot', filter => $$region = 'eu'$$, max_delete_share => 1) > 0 AS created;
INSERT INTO snap.regions_extract VALUES (1, 'eu'), (2, 'eu'), (3, 'us');
INSERT INTO snap.regions_extract VALUES (1, 'eu'), (2, 'us'), (3, 'us');
SELECT * FROM snap.run('eu_accounts');
TABLE snap.eu_accounts;

-- A target of key columns only: a row in both is never a change.
CREATE TABLE snap.members_extract (id int);
SELECT pipeline.create_pipeline('members', 'snap.members_extract', 'snap.members', key => ARRAY['id'],
                                format => 'snapshot', max_delete_share => 1) > 0 AS created;
INSERT INTO snap.members_extract VALUES (1), (2);
INSERT INTO snap.members_extract VALUES (2), (3);
SELECT * FROM snap.run('members');
TABLE snap.members ORDER BY id;

-- Names that need quoting.
CREATE TABLE snap."Extract ""Items""" ("Item Id" int, "select" text);
SELECT pipeline.create_pipeline('quoted extract', 'snap."Extract ""Items"""', 'snap."Current Items"',
                                key => ARRAY['Item Id'], format => 'snapshot', max_delete_share => 1) > 0 AS created;
INSERT INTO snap."Extract ""Items""" VALUES (1, 'a'), (2, 'b');
INSERT INTO snap."Extract ""Items""" VALUES (2, 'B');
SELECT * FROM snap.run('quoted extract');
TABLE snap."Current Items";

-- An extract over several transactions (a loader committing in chunks):
-- extract_id names the column saying which extract a row belongs to.  An
-- extract is complete once the next one begins, or once its loader closes
-- it; until then it waits.
CREATE TABLE snap.chunks (id int, v text, extract_no int);
SELECT pipeline.create_pipeline('chunked', 'snap.chunks', 'snap.chunked', key => ARRAY['id'], format => 'snapshot',
                                extract_id => 'extract_no', except_columns => ARRAY['extract_no'],
                                max_delete_share => 1) > 0 AS created;
SELECT pipeline.create_pipeline('chunked_history', 'snap.chunks', 'snap.chunked_history', key => ARRAY['id'],
                                format => 'snapshot', strategy => 'scd2', sequence_by => 'extract_no',
                                extract_id => 'extract_no', max_delete_share => 1) > 0 AS created;
SELECT name, extract_id FROM pipeline.pipelines WHERE name LIKE 'chunked%' ORDER BY 1;
INSERT INTO snap.chunks VALUES (1, 'a', 1), (2, 'b', 1);
INSERT INTO snap.chunks VALUES (3, 'c', 1);
CREATE FUNCTION snap.last_message(name text) RETURNS text LANGUAGE sql AS $$
    SELECT error_message FROM pipeline.runs WHERE pipeline = name ORDER BY run_id DESC LIMIT 1 $$;
SELECT * FROM snap.run('chunked');
SELECT snap.last_message('chunked');
SELECT pending_rows FROM pipeline.status WHERE pipeline = 'chunked';
-- its loader says it is whole
SELECT pipeline.close_extract('chunked', '1');
SELECT * FROM snap.run('chunked');
SELECT id, v FROM snap.chunked ORDER BY id;
-- extract 2 in three transactions, then extract 3 begins: 2 is complete
-- (2 is gone from it, 4 new), 3 waits
INSERT INTO snap.chunks VALUES (1, 'a2', 2);
INSERT INTO snap.chunks VALUES (3, 'c', 2);
INSERT INTO snap.chunks VALUES (4, 'd', 2);
INSERT INTO snap.chunks VALUES (1, 'a3', 3);
SELECT * FROM snap.run('chunked');
SELECT snap.last_message('chunked');
SELECT id, v FROM snap.chunked ORDER BY id;
-- a row of extract 2 staged after extract 3 began, and one without an
-- extract: quarantined with their reason, extract 3 still whole
INSERT INTO snap.chunks VALUES (9, 'late', 2), (8, 'none', NULL);
INSERT INTO snap.chunks VALUES (4, 'd', 3);
SELECT pipeline.close_extract('chunked', '3');
SELECT * FROM snap.run('chunked');
SELECT id, v FROM snap.chunked ORDER BY id;
SELECT q.raw_row ->> 'id' AS id, q.sqlstate, q.reason FROM pipeline.quarantine q
 WHERE q.pipeline = 'chunked' ORDER BY q.id;
-- a closed extract stays closed; the value is read as the column's type
SELECT pipeline.close_extract('chunked', '2');
SELECT extract_applied, extract_closed FROM pipeline.pipeline_defs WHERE name = 'chunked';
SELECT pipeline.close_extract('chunked', 'three');
-- the history, which ran late: it saw the late row beyond extract 2, and
-- closed 2 all the same; extract 3 is open for it
SELECT * FROM snap.run('chunked_history');
SELECT id, v, __start_at, __end_at FROM snap.chunked_history ORDER BY id, __start_at;
-- a partial extract over transactions: a row of it quarantined (NULL key)
-- leaves it partial, it deletes nothing
INSERT INTO snap.chunks VALUES (1, 'a5', 5);
INSERT INTO snap.chunks VALUES (NULL, 'no key', 5);
SELECT pipeline.close_extract('chunked', '5');
SELECT * FROM snap.run('chunked');
SELECT id, v FROM snap.chunked ORDER BY id;
-- only the owner closes its extracts
CREATE ROLE snap_other;
SET ROLE snap_other;
SELECT pipeline.close_extract('chunked', '6');
RESET ROLE;
DROP ROLE snap_other;
SELECT pipeline.close_extract('accounts', '1');
SELECT pipeline.close_extract('chunked', NULL);
-- the extract_id column renamed: said, not an internal error
ALTER TABLE snap.chunks RENAME COLUMN extract_no TO load_no;
SELECT pipeline.close_extract('chunked', '6');
CALL pipeline.run('chunked');
ALTER TABLE snap.chunks RENAME COLUMN load_no TO extract_no;
-- The value is read as the column's type, whose checks are the owner's
-- code: a superuser closing the owner's extract runs them as the owner,
-- in a security-restricted operation.
CREATE ROLE snap_loader;
CREATE SCHEMA loads AUTHORIZATION snap_loader;
SET ROLE snap_loader;
CREATE TABLE loads.seen (who text);
CREATE FUNCTION loads.spy(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO loads.seen VALUES (current_user);
    RETURN true;
END $$;
CREATE DOMAIN loads.load_no AS int CHECK (loads.spy(VALUE));
CREATE TABLE loads.staged (id int, load loads.load_no);
SELECT pipeline.create_pipeline('loads', 'loads.staged', 'loads.target', key => ARRAY['id'], format => 'snapshot',
                                extract_id => 'load', except_columns => ARRAY['load']) > 0 AS created;
TRUNCATE loads.seen;
RESET ROLE;
SELECT pipeline.close_extract('loads', '1');
SELECT DISTINCT who FROM loads.seen;
SELECT pipeline.drop_pipeline('loads');
DROP SCHEMA loads CASCADE;
DROP ROLE snap_loader;

-- Refused, each with its reason.
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', strategy => 'append', format => 'snapshot');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                delete_when => $$status = 'gone'$$);
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                sequence_by => 'run');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                hard_deletes => 'invalidate');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                hard_deletes => 'new_record');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], extract_id => 'run');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                extract_id => 'load');
CREATE TABLE snap.pointed (id int, at point);
SELECT pipeline.create_pipeline('bad', 'snap.pointed', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                extract_id => 'at');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                strategy => 'scd2', sequence_by => 'run', hard_deletes => 'new_record',
                                columns => '{"__deleted": "status = ''gone''"}');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                max_delete_share => 0);
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                max_delete_share => 1.5);
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], hard_deletes => 'delete');
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], max_delete_share => 0.1);
SELECT pipeline.create_pipeline('bad', 'snap.orders', 'snap.bad', key => ARRAY['id'], format => 'snapshot',
                                ignore_null_updates => ARRAY['status']);
SELECT pipeline.allow_extract('orders_ignore_missing', '1');
SELECT pipeline.allow_extract('periodic_scd1', NULL);
CREATE TABLE snap.plain (id int, v text);
SELECT pipeline.create_pipeline('plain', 'snap.plain', 'snap.plain_target', key => ARRAY['id']) > 0 AS created;
SELECT pipeline.allow_extract('plain', '1');
CALL pipeline.replay('accounts');

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines ORDER BY name;
DROP SCHEMA snap CASCADE;
