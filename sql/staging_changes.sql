-- Staging tables that change: UPDATE and DELETE refused while pipelines read
-- the table, TRUNCATE allowed only when it loses nothing, retention still
-- working, replicated writes refused, and partitioned staging tables losing
-- nothing whichever way rows reach them (through the parent, addressed to a
-- partition, by ATTACH, DETACH or DROP).
CALL number_ids_from(330000);
SET client_min_messages = warning;
CREATE SCHEMA "Stag Ing";
SET search_path = "Stag Ing", public;
CREATE TABLE "Order Items" (id int, qty int);
CREATE TABLE items_cur (id int PRIMARY KEY, qty int);
SELECT pipeline.create_pipeline('sc_items', '"Stag Ing"."Order Items"', '"Stag Ing".items_cur',
                                key => ARRAY['id']) > 0 AS created;
-- the table got its guards: no INSERT trigger, so writers pay nothing
SELECT tgname, tgenabled, tgtype & 1 = 1 AS per_row, tgtype & 4 = 4 AS on_insert
  FROM pg_trigger WHERE tgrelid = '"Order Items"'::regclass ORDER BY tgname;
INSERT INTO "Order Items" VALUES (1, 10), (2, 20);
CALL pipeline.run('sc_items');

-- UPDATE and DELETE are refused, even of no row: corrections are new rows.
UPDATE "Order Items" SET qty = 11 WHERE id = 1;
DELETE FROM "Order Items" WHERE id = 2;
DELETE FROM "Order Items" WHERE false;
INSERT INTO "Order Items" VALUES (1, 11);
CALL pipeline.run('sc_items');
SELECT * FROM items_cur ORDER BY id;

-- TRUNCATE is refused while a pipeline has not consumed every row...
INSERT INTO "Order Items" VALUES (3, 30);
TRUNCATE "Order Items";
-- ...even rows the truncating transaction wrote itself...
CALL pipeline.run('sc_items');
BEGIN;
INSERT INTO "Order Items" VALUES (4, 40);
TRUNCATE "Order Items";
ROLLBACK;
-- ...and allowed once every row is consumed (truncate after load).
TRUNCATE "Order Items";
SELECT count(*) AS staged FROM "Order Items";
INSERT INTO "Order Items" VALUES (5, 50);
CALL pipeline.run('sc_items');
SELECT * FROM items_cur ORDER BY id;

-- A second reader holds rows back until it consumed them too.
CREATE TABLE items_copy (id int PRIMARY KEY, qty int);
SELECT pipeline.create_pipeline('sc_items_copy', '"Stag Ing"."Order Items"',
                                '"Stag Ing".items_copy', key => ARRAY['id']) > 0 AS created;
CALL pipeline.run('sc_items');
TRUNCATE "Order Items";
CALL pipeline.run('sc_items_copy');
TRUNCATE "Order Items";

-- Retention keeps working: the archive pass deletes consumed rows...
SELECT pipeline.set_retention('"Stag Ing"."Order Items"', keep => '0');
INSERT INTO "Order Items" VALUES (6, 60), (7, 70);
CALL pipeline.run('sc_items');
CALL pipeline.run('sc_items_copy');
-- ...and while it archives, rows it has not archived yet stay
TRUNCATE "Order Items";
SELECT rows_archived FROM pipeline.archive('"Stag Ing"."Order Items"');
SELECT count(*) AS staged FROM "Order Items";
TRUNCATE "Order Items";
-- retention without the archive deletes, and then TRUNCATE loses nothing
SELECT pipeline.set_retention('"Stag Ing"."Order Items"', keep => '0', archive => false);
INSERT INTO "Order Items" VALUES (8, 80);
CALL pipeline.run('sc_items');
CALL pipeline.run('sc_items_copy');
SELECT rows_removed FROM pipeline.archive('"Stag Ing"."Order Items"');
INSERT INTO "Order Items" VALUES (9, 90);
CALL pipeline.run('sc_items');
CALL pipeline.run('sc_items_copy');
TRUNCATE "Order Items";
SELECT pipeline.drop_retention('"Stag Ing"."Order Items"');

-- Writes in replica mode, as a subscription's apply worker makes them,
-- fire the row guard: refused, and so is a replicated TRUNCATE.
INSERT INTO "Order Items" VALUES (10, 100);
CALL pipeline.run('sc_items');
CALL pipeline.run('sc_items_copy');
SET session_replication_role = replica;
UPDATE "Order Items" SET qty = 101;
DELETE FROM "Order Items";
TRUNCATE "Order Items";
RESET session_replication_role;
SELECT count(*) AS staged FROM "Order Items";

-- A role that may write the table is refused the same way; one that may
-- not gets PostgreSQL's own error; a trigger of one's own cannot use the
-- guard function.
CREATE ROLE staging_changes_writer;
CREATE ROLE staging_changes_nobody;
GRANT USAGE ON SCHEMA "Stag Ing" TO staging_changes_writer, staging_changes_nobody;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON "Order Items" TO staging_changes_writer;
GRANT USAGE ON SEQUENCE "Order Items__seq_seq" TO staging_changes_writer;
SET ROLE staging_changes_writer;
INSERT INTO "Order Items" VALUES (11, 110);
UPDATE "Order Items" SET qty = 111 WHERE id = 11;
TRUNCATE "Order Items";
RESET ROLE;
SET ROLE staging_changes_nobody;
DELETE FROM "Order Items";
RESET ROLE;
CREATE TABLE own (id int);
CREATE TRIGGER pipeline_staging_guard BEFORE DELETE ON own FOR EACH ROW
    EXECUTE FUNCTION pipeline.guard_staging();
INSERT INTO own VALUES (1);
DELETE FROM own;
DROP TABLE own;

-- With no pipeline reading it any more, the table is the user's again.
SELECT pipeline.drop_pipeline('sc_items');
UPDATE "Order Items" SET qty = 0 WHERE id = 11;
SELECT pipeline.drop_pipeline('sc_items_copy');
UPDATE "Order Items" SET qty = 0 WHERE id = 11;
DELETE FROM "Order Items";
TRUNCATE "Order Items";
-- a guard disabled by hand is enabled again by the next prepare_source
ALTER TABLE "Order Items" DISABLE TRIGGER pipeline_staging_guard;
SELECT pipeline.prepare_source('"Stag Ing"."Order Items"');
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = '"Order Items"'::regclass ORDER BY tgname;

-- A table with a 63-byte name, prepared ahead with prepare_source.
CREATE TABLE t234567890123456789012345678901234567890123456789012345678901 (id int);
SELECT pipeline.prepare_source('t234567890123456789012345678901234567890123456789012345678901');
CREATE TABLE long_cur (id int PRIMARY KEY);
SELECT pipeline.create_pipeline('sc_long', '"Stag Ing".t234567890123456789012345678901234567890123456789012345678901',
                                '"Stag Ing".long_cur', key => ARRAY['id']) > 0 AS created;
INSERT INTO t234567890123456789012345678901234567890123456789012345678901 VALUES (1);
DELETE FROM t234567890123456789012345678901234567890123456789012345678901;
-- an upsert is an update; ON CONFLICT DO NOTHING an insert
CREATE UNIQUE INDEX long_id ON t234567890123456789012345678901234567890123456789012345678901 (id);
INSERT INTO t234567890123456789012345678901234567890123456789012345678901 VALUES (1)
    ON CONFLICT (id) DO UPDATE SET id = excluded.id;
INSERT INTO t234567890123456789012345678901234567890123456789012345678901 VALUES (1), (2)
    ON CONFLICT DO NOTHING;
SELECT count(*) AS staged FROM t234567890123456789012345678901234567890123456789012345678901;
-- a merge or scd2 pipeline writing into a staging table would update its
-- rows: refused when defined, not at every run; appending is allowed
CREATE TABLE long_raw (id int);
SELECT pipeline.create_pipeline('sc_into_staging', '"Stag Ing".long_raw',
    '"Stag Ing".t234567890123456789012345678901234567890123456789012345678901', key => ARRAY['id']);
SELECT pipeline.create_pipeline('sc_into_staging', '"Stag Ing".long_raw',
    '"Stag Ing".t234567890123456789012345678901234567890123456789012345678901', strategy => 'append') > 0 AS created;
INSERT INTO long_raw VALUES (5);
CALL pipeline.run('sc_into_staging');
CALL pipeline.run('sc_long');
SELECT * FROM long_cur ORDER BY id;
SELECT pipeline.drop_pipeline('sc_into_staging');
DROP TABLE long_raw;
SELECT pipeline.drop_pipeline('sc_long');

-- Partitioned staging: partitions present, created later and attached.
CREATE TABLE ev (id int, day date, amount int) PARTITION BY RANGE (day);
CREATE TABLE ev_jan PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE ev_cur (id int PRIMARY KEY, day date, amount int);
SELECT pipeline.create_pipeline('sc_ev', '"Stag Ing".ev', '"Stag Ing".ev_cur',
                                key => ARRAY['id']) > 0 AS created;
CREATE TABLE ev_feb PARTITION OF ev FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE SCHEMA sc_later
    CREATE TABLE ev_jul PARTITION OF "Stag Ing".ev FOR VALUES FROM ('2026-07-01') TO ('2026-08-01');
SELECT tgrelid::regclass AS "table", tgname, tgenabled FROM pg_trigger
 WHERE tgrelid IN ('ev'::regclass, 'ev_jan'::regclass, 'ev_feb'::regclass, 'sc_later.ev_jul'::regclass)
 ORDER BY 1, 2;
DROP SCHEMA sc_later CASCADE;
-- rows through the parent and addressed to a partition
INSERT INTO ev VALUES (1, '2026-01-05', 10), (2, '2026-02-05', 20);
INSERT INTO ev_feb VALUES (3, '2026-02-06', 30);
CALL pipeline.run('sc_ev');
-- statements addressed to a partition, old or new, are refused too
UPDATE ev_jan SET amount = 0;
DELETE FROM ev_feb WHERE id = 3;
DELETE FROM ev WHERE id = 1;
SET session_replication_role = replica;
UPDATE ev_feb SET amount = 0;
RESET session_replication_role;

-- A partition loaded on its own, after the pipelines' cursors moved past
-- its rows' transaction, then attached: merged, exactly once.
CREATE TABLE ev_mar (LIKE ev INCLUDING DEFAULTS);
INSERT INTO ev_mar (id, day, amount) VALUES (4, '2026-03-02', 40), (5, '2026-03-03', 50);
INSERT INTO ev VALUES (6, '2026-01-06', 60);
CALL pipeline.run('sc_ev');
ALTER TABLE ev ATTACH PARTITION ev_mar FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
SELECT pending_rows FROM pipeline.status WHERE pipeline = 'sc_ev';
CALL pipeline.run('sc_ev');
CALL pipeline.run('sc_ev');
SELECT * FROM ev_cur ORDER BY id;
DELETE FROM ev_mar;
-- a table attached without the stamping defaults gets them: rows addressed
-- to it later are stamped as through the parent
CREATE TABLE ev_jun (id int, day date, amount int, _xid xid8 NOT NULL, _seq bigint NOT NULL);
ALTER TABLE ev ATTACH PARTITION ev_jun FOR VALUES FROM ('2026-06-01') TO ('2026-07-01');
INSERT INTO ev_jun (id, day, amount) VALUES (10, '2026-06-01', 100);
CALL pipeline.run('sc_ev');
DROP TABLE ev_jun;

-- DETACH and DROP of a partition with rows not consumed are refused...
INSERT INTO ev_jan VALUES (7, '2026-01-07', 70);
ALTER TABLE ev DETACH PARTITION ev_jan;
DROP TABLE ev_jan;
TRUNCATE ev_jan;
ALTER TABLE ev DETACH PARTITION ev_jan CONCURRENTLY;
-- (a partition in another schema, or of another role, goes with DROP
-- SCHEMA ... CASCADE or DROP OWNED)
CREATE SCHEMA sc_parts;
CREATE TABLE sc_parts.ev_apr PARTITION OF ev FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
CREATE ROLE staging_changes_owner;
CREATE TABLE ev_may PARTITION OF ev FOR VALUES FROM ('2026-05-01') TO ('2026-06-01');
ALTER TABLE ev_may OWNER TO staging_changes_owner;
INSERT INTO ev VALUES (8, '2026-04-02', 80), (9, '2026-05-02', 90);
DROP SCHEMA sc_parts CASCADE;
DROP OWNED BY staging_changes_owner;
-- ...and allowed once consumed: dropping old partitions is retention.
CALL pipeline.run('sc_ev');
ALTER TABLE ev DETACH PARTITION ev_jan;
DROP TABLE ev_jan;
DROP TABLE ev_feb;
DROP SCHEMA sc_parts CASCADE;
DROP OWNED BY staging_changes_owner;
SELECT relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
 WHERE i.inhparent = 'ev'::regclass ORDER BY 1;
SELECT * FROM ev_cur ORDER BY id;
-- With a retention that archives, a partition leaves once the archive took
-- its rows; the pass deletes them from the partitions despite the guards.
SELECT pipeline.set_retention('"Stag Ing".ev', keep => '0');
ALTER TABLE ev DETACH PARTITION ev_mar;
SELECT rows_archived FROM pipeline.archive('"Stag Ing".ev');
ALTER TABLE ev DETACH PARTITION ev_mar;

SELECT pipeline.drop_pipeline('sc_ev');
RESET search_path;
DROP SCHEMA "Stag Ing" CASCADE;
DROP ROLE staging_changes_writer;
DROP ROLE staging_changes_nobody;
DROP ROLE staging_changes_owner;
