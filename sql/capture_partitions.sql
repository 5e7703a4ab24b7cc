-- Capture of partitioned tables: a pipeline reading a captured partitioned
-- table (two levels, a default partition) loses nothing, whichever way rows
-- reach it or leave it: through the parent, addressed to a partition at any
-- depth, moved between partitions by an UPDATE, truncated, in a partition
-- created, attached, detached or dropped after the capture.  After each
-- step a run, and the target compared with the table both ways.
CALL number_ids_from(330000);
SET client_min_messages = warning;
\set VERBOSITY terse
CREATE SCHEMA "Cap Parts";
CREATE TABLE "Cap Parts"."Order Items" (id int, "Region" text, qty int, note text,
    PRIMARY KEY (id, "Region")) PARTITION BY LIST ("Region");
CREATE TABLE "Cap Parts"."Items EU" PARTITION OF "Cap Parts"."Order Items"
    FOR VALUES IN ('de', 'fr') PARTITION BY RANGE (id);
CREATE TABLE "Cap Parts"."EU Low" PARTITION OF "Cap Parts"."Items EU" FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE "Cap Parts"."EU High" PARTITION OF "Cap Parts"."Items EU" FOR VALUES FROM (100) TO (2000);
CREATE TABLE "Cap Parts"."Items US" PARTITION OF "Cap Parts"."Order Items" FOR VALUES IN ('us');
CREATE TABLE "Cap Parts".items_other PARTITION OF "Cap Parts"."Order Items" DEFAULT;
INSERT INTO "Cap Parts"."Order Items" VALUES (1, 'de', 1, 'before'), (150, 'fr', 2, 'before'),
    (2, 'us', 3, 'before'), (3, 'jp', 4, 'before');

SELECT pipeline.capture('"Cap Parts"."Order Items"');
-- every partition, at every depth, has the capture triggers
SELECT c.relname, count(*) AS capture_triggers FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = '"Cap Parts"'::regnamespace AND t.tgname LIKE 'pipeline\_capture\_%'
 GROUP BY c.relname ORDER BY c.relname;

SELECT pipeline.create_pipeline('pc_copy', '"Cap Parts"."Order Items"', '"Cap Parts"."Items Copy"',
    key => ARRAY['id', 'Region']) > 0 AS created;
\set compare 'CALL pipeline.run(''pc_copy''); SELECT (SELECT count(*) FROM (SELECT id, "Region", qty, note FROM "Cap Parts"."Order Items" EXCEPT SELECT id, "Region", qty, note FROM "Cap Parts"."Items Copy") a) AS missing, (SELECT count(*) FROM (SELECT id, "Region", qty, note FROM "Cap Parts"."Items Copy" EXCEPT SELECT id, "Region", qty, note FROM "Cap Parts"."Order Items") b) AS extra, (SELECT count(*) FROM "Cap Parts"."Items Copy") AS copied;'
:compare

-- Inserts through the parent, and addressed to a partition, to a
-- sub-partition and to the partitioned partition.
INSERT INTO "Cap Parts"."Order Items" SELECT g, (ARRAY['de', 'fr', 'us', 'jp'])[g % 4 + 1], g, 'parent'
  FROM generate_series(10, 209) g;
INSERT INTO "Cap Parts"."Items US" VALUES (300, 'us', 1, 'to partition');
INSERT INTO "Cap Parts"."EU High" VALUES (301, 'de', 1, 'to sub-partition');
INSERT INTO "Cap Parts"."Items EU" VALUES (5, 'fr', 1, 'to partitioned partition'),
                                         (302, 'fr', 1, 'to partitioned partition');
INSERT INTO "Cap Parts".items_other VALUES (303, 'br', 1, 'to default');
:compare

-- Updates: in place, moving rows between partitions through the parent
-- (a key change: the partition key is in the key), between sub-partitions
-- through the partitioned partition, and addressed to a leaf.
UPDATE "Cap Parts"."Order Items" SET qty = qty + 100 WHERE id BETWEEN 10 AND 40;
UPDATE "Cap Parts"."Order Items" SET "Region" = 'us' WHERE "Region" = 'de' AND id BETWEEN 40 AND 90;
UPDATE "Cap Parts"."Order Items" SET "Region" = 'kr' WHERE id IN (2, 300);
UPDATE "Cap Parts"."Items EU" SET id = id + 1000 WHERE id < 30;
UPDATE "Cap Parts"."Items US" SET note = 'leaf update' WHERE id > 100;
INSERT INTO "Cap Parts"."Order Items" VALUES (1001, 'de', 7, 'upserted') ON CONFLICT (id, "Region")
    DO UPDATE SET note = 'upserted';
:compare

-- Deletes through the parent and addressed to partitions.
DELETE FROM "Cap Parts"."Order Items" WHERE id % 7 = 0;
DELETE FROM "Cap Parts"."EU Low" WHERE id % 5 = 0;
DELETE FROM "Cap Parts"."Items EU" WHERE id % 11 = 0;
:compare

-- TRUNCATE of one partition, and of a partitioned partition.
TRUNCATE "Cap Parts"."EU High";
:compare
TRUNCATE "Cap Parts"."Items EU";
SELECT count(*) AS eu_rows_left FROM "Cap Parts"."Items Copy" WHERE "Region" IN ('de', 'fr');
:compare

-- A partition created after the capture, a level below a partitioned one
-- too, gets the triggers; rows reach it through the parent and directly.
CREATE TABLE "Cap Parts"."Items UK" PARTITION OF "Cap Parts"."Order Items" FOR VALUES IN ('uk');
CREATE TABLE "Cap Parts"."EU Top" PARTITION OF "Cap Parts"."Items EU" FOR VALUES FROM (2000) TO (MAXVALUE);
INSERT INTO "Cap Parts"."Order Items" VALUES (400, 'uk', 1, 'new partition'), (2401, 'de', 1, 'new sub-partition');
INSERT INTO "Cap Parts"."Items UK" VALUES (402, 'uk', 1, 'new partition, directly');
INSERT INTO "Cap Parts"."EU Top" VALUES (2403, 'fr', 1, 'new sub-partition, directly');
:compare

-- ATTACH of a loaded table, itself partitioned: its rows arrive as
-- upserts, and its partitions get the triggers.
CREATE TABLE "Cap Parts"."Items CA" (id int, "Region" text, qty int, note text,
    PRIMARY KEY (id, "Region")) PARTITION BY RANGE (id);
CREATE TABLE "Cap Parts"."CA All" PARTITION OF "Cap Parts"."Items CA" FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
INSERT INTO "Cap Parts"."Items CA" SELECT g, 'ca', g, 'loaded before attach' FROM generate_series(500, 549) g;
ALTER TABLE "Cap Parts"."Order Items" ATTACH PARTITION "Cap Parts"."Items CA" FOR VALUES IN ('ca');
SELECT count(*) AS triggers_on_attached FROM pg_trigger
 WHERE tgrelid IN ('"Cap Parts"."Items CA"'::regclass, '"Cap Parts"."CA All"'::regclass);
INSERT INTO "Cap Parts"."CA All" VALUES (550, 'ca', 1, 'after attach, directly');
UPDATE "Cap Parts"."Order Items" SET "Region" = 'ca' WHERE id = 402;
:compare

-- DETACH: its rows leave the table as deletes; its later writes are not
-- the table's.
ALTER TABLE "Cap Parts"."Order Items" DETACH PARTITION "Cap Parts"."Items US";
SELECT count(*) AS triggers_on_detached FROM pg_trigger WHERE tgrelid = '"Cap Parts"."Items US"'::regclass;
INSERT INTO "Cap Parts"."Items US" VALUES (600, 'us', 1, 'detached');
:compare

-- DROP TABLE of a partition: its rows leave the table as deletes.
DROP TABLE "Cap Parts"."EU Top";
DROP TABLE "Cap Parts"."Items CA";
:compare

-- A role with no privilege but to write the table and one partition: its
-- writes, through the parent and to the partition, reach the log, which it
-- may not touch.
CREATE ROLE capture_partitions_app;
GRANT USAGE ON SCHEMA "Cap Parts" TO capture_partitions_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON "Cap Parts"."Order Items", "Cap Parts"."Items UK"
    TO capture_partitions_app;
SET ROLE capture_partitions_app;
INSERT INTO "Cap Parts"."Order Items" VALUES (700, 'uk', 1, 'app'), (701, 'fr', 1, 'app');
UPDATE "Cap Parts"."Items UK" SET qty = 2 WHERE id = 700;
DELETE FROM "Cap Parts"."Order Items" WHERE id = 400;
\x on
SELECT * FROM error_of($$SELECT pipeline.uncapture('"Cap Parts"."Order Items"')$$);
SELECT * FROM error_of($$ALTER TABLE "Cap Parts"."Order Items" DETACH PARTITION "Cap Parts"."Items UK"$$);
\x off
RESET ROLE;
SELECT has_table_privilege('capture_partitions_app', '"Cap Parts"."Order Items_changes"', 'INSERT')
    AS app_may_write_log;
:compare

-- TRUNCATE of the whole table: every row once, as a delete.
TRUNCATE "Cap Parts"."Order Items";
SELECT _op, count(*) FROM "Cap Parts"."Order Items_changes"
 WHERE _xid = (SELECT max(_xid) FROM "Cap Parts"."Order Items_changes") GROUP BY _op;
INSERT INTO "Cap Parts"."Order Items" VALUES (800, 'de', 1, 'after truncate'), (801, 'uk', 1, 'after truncate');
:compare

-- What cannot be followed exactly is refused.
\x on
-- a partition, on its own or in a table that is not captured
SELECT * FROM error_of($$SELECT pipeline.capture('"Cap Parts"."Items EU"')$$);
CREATE TABLE "Cap Parts".plain_parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE "Cap Parts".plain_part PARTITION OF "Cap Parts".plain_parted FOR VALUES FROM (0) TO (10);
SELECT * FROM error_of($$SELECT pipeline.capture('"Cap Parts".plain_part')$$);
-- a captured table attached as a partition, of a captured table or not
CREATE TABLE "Cap Parts".own_capture (id int, "Region" text, qty int, note text, PRIMARY KEY (id, "Region"));
SELECT pipeline.capture('"Cap Parts".own_capture') IS NOT NULL AS captured;
SELECT * FROM error_of($$ALTER TABLE "Cap Parts"."Order Items" ATTACH PARTITION "Cap Parts".own_capture FOR VALUES IN ('nl')$$);
CREATE TABLE "Cap Parts".other_parted (id int, "Region" text, qty int, note text, PRIMARY KEY (id, "Region"))
    PARTITION BY LIST ("Region");
SELECT * FROM error_of($$ALTER TABLE "Cap Parts".other_parted ATTACH PARTITION "Cap Parts".own_capture FOR VALUES IN ('nl')$$);
-- a partition another role owns
CREATE ROLE capture_partitions_other;
CREATE TABLE "Cap Parts".theirs (id int, "Region" text, qty int, note text, PRIMARY KEY (id, "Region"));
ALTER TABLE "Cap Parts".theirs OWNER TO capture_partitions_other;
SELECT * FROM error_of($$ALTER TABLE "Cap Parts"."Order Items" ATTACH PARTITION "Cap Parts".theirs FOR VALUES IN ('no')$$);
SELECT * FROM error_of($$ALTER TABLE "Cap Parts"."Items UK" OWNER TO capture_partitions_other$$);
-- a foreign table as a partition (PostgreSQL refuses it: the key is unique)
CREATE FOREIGN DATA WRAPPER capture_partitions_fdw;
CREATE SERVER capture_partitions_server FOREIGN DATA WRAPPER capture_partitions_fdw;
SELECT * FROM error_of($$CREATE FOREIGN TABLE "Cap Parts".remote PARTITION OF "Cap Parts"."Order Items"
                         FOR VALUES IN ('xx') SERVER capture_partitions_server$$);
-- a table with a trigger of its own under a capture trigger's name
CREATE TABLE "Cap Parts".lookalike (id int, "Region" text, qty int, note text, PRIMARY KEY (id, "Region"));
CREATE FUNCTION "Cap Parts".nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER pipeline_capture_insert AFTER INSERT ON "Cap Parts".lookalike
    FOR EACH STATEMENT EXECUTE FUNCTION "Cap Parts".nothing();
SELECT * FROM error_of($$ALTER TABLE "Cap Parts"."Order Items" ATTACH PARTITION "Cap Parts".lookalike FOR VALUES IN ('lk')$$);
-- a concurrent detach
SELECT * FROM error_of($$ALTER TABLE "Cap Parts"."Order Items" DETACH PARTITION "Cap Parts"."Items UK" CONCURRENTLY$$);
-- a drop that takes a partition without naming it
CREATE SCHEMA "Cap Parts Elsewhere";
CREATE TABLE "Cap Parts Elsewhere".se PARTITION OF "Cap Parts"."Order Items" FOR VALUES IN ('se');
SELECT * FROM error_of($$DROP SCHEMA "Cap Parts Elsewhere" CASCADE$$);
\x off
INSERT INTO "Cap Parts"."Order Items" VALUES (900, 'se', 1, 'elsewhere');
:compare

-- replicated writes (a subscription's apply worker, replica mode) fire the
-- row-level capture triggers every partition has, enabled REPLICA: through
-- the parent, addressed to a partition, a key change, a delete, a TRUNCATE
-- of one partition
SELECT count(*) FILTER (WHERE t.tgenabled = 'R') AS replica_enabled,
       count(*) FILTER (WHERE t.tgenabled <> 'R') AS other
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = '"Cap Parts"'::regnamespace AND t.tgname LIKE 'pipeline\_capture\_replica\_%';
SET session_replication_role = replica;
INSERT INTO "Cap Parts"."Order Items" VALUES (910, 'de', 1, 'replicated'), (911, 'us', 2, 'replicated');
INSERT INTO "Cap Parts"."EU Low" VALUES (12, 'fr', 3, 'replicated, addressed');
UPDATE "Cap Parts"."Order Items" SET "Region" = 'fr', note = 'replicated, moved' WHERE id = 910;
DELETE FROM "Cap Parts"."Order Items" WHERE id = 911;
TRUNCATE "Cap Parts"."Items US";
RESET session_replication_role;
:compare

-- uncapture removes every partition's triggers; a captured table dropped
-- with its schema takes its partitions without complaint.
SELECT pipeline.drop_pipeline('pc_copy');
SELECT pipeline.uncapture('"Cap Parts"."Order Items"');
SELECT count(*) AS capture_triggers_left FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace IN ('"Cap Parts"'::regnamespace, '"Cap Parts Elsewhere"'::regnamespace)
   AND t.tgname LIKE 'pipeline\_capture\_%' AND c.relname NOT IN ('own_capture', 'lookalike');
SELECT pipeline.capture('"Cap Parts"."Order Items"') IS NOT NULL AS captured_again;
SELECT pipeline.uncapture('"Cap Parts".own_capture');
-- one DROP naming a captured table and one of its partitions, after a
-- column was added that the log lacks yet (logging the partition's rows
-- adds it to the log first)
CREATE TABLE "Cap Parts".plain_part2 PARTITION OF "Cap Parts".plain_parted FOR VALUES FROM (10) TO (20);
SELECT pipeline.capture('"Cap Parts".plain_parted') IS NOT NULL AS captured;
ALTER TABLE "Cap Parts".plain_parted ADD COLUMN late text;
DROP TABLE "Cap Parts".plain_part, "Cap Parts".plain_parted;
DROP SCHEMA "Cap Parts" CASCADE;
DROP SCHEMA "Cap Parts Elsewhere";
SELECT count(*) AS captures_left FROM pipeline.captures;
DROP SERVER capture_partitions_server;
DROP FOREIGN DATA WRAPPER capture_partitions_fdw;
DROP OWNED BY capture_partitions_app;
DROP ROLE capture_partitions_app;
DROP ROLE capture_partitions_other;
