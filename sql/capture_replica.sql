-- Capture with no reader, and writes in replica mode.  The capture
-- triggers log every write from the capture on, whether or not a pipeline
-- reads the log (it can be published to another database); a reader
-- joining later starts from the table's rows, each once, and never from
-- the log rows written before it joined.  Writes in replica mode (a
-- subscription's apply worker, session_replication_role = replica) fire
-- the REPLICA-enabled row-level triggers instead of the statement-level
-- ones: every write is logged once, in either mode.  The trigger function
-- refuses a capture trigger enabled for other sessions than capture
-- enables it for, and one not made by capture.
CALL number_ids_from(412000);
SET client_min_messages = warning;
CREATE SCHEMA caprep;
CREATE TABLE caprep.accounts (id int PRIMARY KEY, balance int, note text);
INSERT INTO caprep.accounts VALUES (1, 10, 'before the capture');
SELECT pipeline.capture('caprep.accounts');

-- The triggers: statement-level ones for ordinary writes (enabled O, the
-- default), row-level ones and a second TRUNCATE trigger for replicated
-- writes (enabled R).
SELECT tgname, CASE WHEN tgtype & 1 = 1 THEN 'row' ELSE 'statement' END AS level, tgenabled,
       tgoldtable, tgnewtable
  FROM pg_trigger WHERE tgrelid = 'caprep.accounts'::regclass ORDER BY tgenabled, tgname;

-- No pipeline reads the log, and still every write is in it.
INSERT INTO caprep.accounts VALUES (2, 20, 'new'), (3, 30, 'new');
UPDATE caprep.accounts SET balance = 11 WHERE id = 1;
UPDATE caprep.accounts SET id = 4 WHERE id = 3;
DELETE FROM caprep.accounts WHERE id = 2;
SELECT _op, id, balance, note, _for FROM caprep.accounts_changes ORDER BY _xid, _seq;

-- A reader joining now starts from the table's rows, each once; none of
-- the log rows written before it joined reaches it (an append target
-- shows every event it merged).
SELECT pipeline.create_pipeline('caprep_events', 'caprep.accounts', 'caprep.events',
    strategy => 'append', columns => '{"op": "_op"}') > 0 AS created;
SELECT pipeline.create_pipeline('caprep_copy', 'caprep.accounts', 'caprep.copy',
    key => ARRAY['id']) > 0 AS created;
CALL pipeline.run('caprep_events');
CALL pipeline.run('caprep_copy');
SELECT op, id, balance, note FROM caprep.events ORDER BY id;
SELECT id, balance, note FROM caprep.copy ORDER BY id;

-- Writes after the join reach the readers once; what every reader
-- consumed is trimmed from the log at their next runs.
INSERT INTO caprep.accounts VALUES (5, 50, 'after the join');
UPDATE caprep.accounts SET note = 'updated' WHERE id = 1;
CALL pipeline.run('caprep_events');
CALL pipeline.run('caprep_copy');
SELECT op, id, balance, note FROM caprep.events ORDER BY id, note;
CALL pipeline.run('caprep_events');
SELECT count(*) AS log_rows_left FROM caprep.accounts_changes;

-- Replica mode: the row-level triggers log each row once, and a key
-- change as the delete of the old key; the statement-level ones stay
-- silent.  TRUNCATE logs every row as a delete in both modes, once.
SET session_replication_role = replica;
INSERT INTO caprep.accounts VALUES (6, 60, 'replica'), (7, 70, 'replica');
UPDATE caprep.accounts SET balance = balance + 1 WHERE id IN (6, 7);
UPDATE caprep.accounts SET id = 8 WHERE id = 7;
UPDATE caprep.accounts SET note = 'same key' WHERE id = 8;
DELETE FROM caprep.accounts WHERE id = 6;
RESET session_replication_role;
SELECT _op, id, balance, note FROM caprep.accounts_changes WHERE id >= 6 ORDER BY _xid, _seq;
-- local mode is an ordinary session's: statement-level triggers
SET session_replication_role = local;
UPDATE caprep.accounts SET balance = 0 WHERE id = 8;
RESET session_replication_role;
SELECT count(*) AS logged_once FROM caprep.accounts_changes WHERE id = 8 AND balance = 0;
BEGIN;
SET LOCAL session_replication_role = replica;
TRUNCATE caprep.accounts;
INSERT INTO caprep.accounts VALUES (9, 90, 'after the truncate');
COMMIT;
SELECT _op, count(*) FROM caprep.accounts_changes
 WHERE _xid = (SELECT max(_xid) FROM caprep.accounts_changes) GROUP BY _op ORDER BY _op;
CALL pipeline.run('caprep_copy');
SELECT (SELECT count(*) FROM (TABLE caprep.accounts EXCEPT TABLE caprep.copy) a)
     + (SELECT count(*) FROM (TABLE caprep.copy EXCEPT TABLE caprep.accounts) b) AS differences,
       (SELECT count(*) FROM caprep.copy) AS rows;

-- A capture trigger enabled for other sessions would log a write twice,
-- or not at all: refused, naming the way back.
\x on
ALTER TABLE caprep.accounts ENABLE ALWAYS TRIGGER pipeline_capture_insert;
SELECT * FROM error_of($$INSERT INTO caprep.accounts VALUES (10, 100, 'twice?')$$);
ALTER TABLE caprep.accounts ENABLE TRIGGER pipeline_capture_insert;
ALTER TABLE caprep.accounts ENABLE TRIGGER pipeline_capture_replica_update;
SELECT * FROM error_of($$UPDATE caprep.accounts SET balance = 1 WHERE id = 9$$);
ALTER TABLE caprep.accounts ENABLE REPLICA TRIGGER pipeline_capture_replica_update;
ALTER TABLE caprep.accounts ENABLE REPLICA TRIGGER pipeline_capture_truncate;
SET session_replication_role = replica;
SELECT * FROM error_of($$TRUNCATE caprep.accounts$$);
RESET session_replication_role;
ALTER TABLE caprep.accounts ENABLE TRIGGER pipeline_capture_truncate;
-- a trigger under a capture trigger's name but not as capture made it
DROP TRIGGER pipeline_capture_replica_delete ON caprep.accounts;
CREATE TRIGGER pipeline_capture_replica_delete AFTER DELETE ON caprep.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline.capture_changes();
ALTER TABLE caprep.accounts ENABLE REPLICA TRIGGER pipeline_capture_replica_delete;
SET session_replication_role = replica;
SELECT * FROM error_of($$DELETE FROM caprep.accounts WHERE id = 9$$);
RESET session_replication_role;
\x off
DROP TRIGGER pipeline_capture_replica_delete ON caprep.accounts;
CREATE TRIGGER pipeline_capture_replica_delete AFTER DELETE ON caprep.accounts
    FOR EACH ROW EXECUTE FUNCTION pipeline.capture_changes();
ALTER TABLE caprep.accounts ENABLE REPLICA TRIGGER pipeline_capture_replica_delete;
-- nothing was logged by the refused writes, which rolled back
INSERT INTO caprep.accounts VALUES (10, 100, 'once');
SET session_replication_role = replica;
DELETE FROM caprep.accounts WHERE id = 9;
RESET session_replication_role;
CALL pipeline.run('caprep_copy');
SELECT id, balance, note FROM caprep.copy ORDER BY id;

-- A TRUNCATE is logged by reading the table as the log's owner: rows that
-- row-level security hides from that role would go unlogged, so the
-- TRUNCATE is refused instead.
CREATE ROLE caprep_rls;
GRANT USAGE, CREATE ON SCHEMA caprep TO caprep_rls;
SET ROLE caprep_rls;
CREATE TABLE caprep.hidden (id int PRIMARY KEY, v int);
INSERT INTO caprep.hidden VALUES (1, 1), (9, 9);
SELECT pipeline.capture('caprep.hidden') IS NOT NULL AS captured;
ALTER TABLE caprep.hidden ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY hide_some ON caprep.hidden USING (id < 5);
TRUNCATE caprep.hidden;
RESET ROLE;
SELECT count(*) AS rows_kept FROM caprep.hidden;
SELECT pipeline.uncapture('caprep.hidden');
DROP TABLE caprep.hidden;
REVOKE ALL ON SCHEMA caprep FROM caprep_rls;
DROP ROLE caprep_rls;

-- Uncapture drops all eight triggers; the log goes, writes go on.
SELECT pipeline.drop_pipeline('caprep_events');
SELECT pipeline.drop_pipeline('caprep_copy');
SELECT pipeline.uncapture('caprep.accounts');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'caprep.accounts'::regclass;
SET session_replication_role = replica;
INSERT INTO caprep.accounts VALUES (11, 110, 'not captured');
RESET session_replication_role;

DROP SCHEMA caprep CASCADE;
