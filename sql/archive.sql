-- Retention and the archive: which consumed rows leave a staging table and
-- when, byte-for-byte round trips of every kind of column through a batch,
-- batches of bounded size, retention without archive, archive retention,
-- dictionaries, read-back after a schema change, corrupt batches,
-- privileges, the pass at the end of a run, a dropped staging table, and
-- bad arguments.
CALL number_ids_from(180000);
SET client_min_messages = warning;
-- passes run when this file asks, except where it tests the automatic one
SET pipeline.archive_interval = -1;
CREATE SCHEMA ar;
SET search_path = ar, public;

-- A staging table with quoted names and columns of many types.
CREATE SCHEMA "Arch Ive";
CREATE TYPE "Arch Ive".mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE "Arch Ive".pair AS (a int, b text);
CREATE DOMAIN "Arch Ive".positive AS numeric(10, 3) CHECK (VALUE > 0);
CREATE TABLE "Arch Ive"."Odd Events" (
    id int,
    "Mixed Case" text,
    "select" text,
    aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff123 text,
    n numeric,
    n2 numeric(12, 2),
    f float8,
    r real,
    ts timestamptz,
    tl timestamp,
    d date,
    iv interval,
    j jsonb,
    js json,
    arr text[],
    ints int[],
    b bytea,
    c "Arch Ive".pair,
    dom "Arch Ive".positive,
    e "Arch Ive".mood,
    u uuid,
    ip inet,
    flag boolean,
    m money,
    bits varbit,
    rng int4range,
    vc varchar(5),
    ch char(3),
    tv tsvector);
SELECT pipeline.create_pipeline('odd', '"Arch Ive"."Odd Events"', '"Arch Ive".odd_copy',
                                key => ARRAY['id']) > 0 AS created;

-- Archived under settings that change how values print; read back under others.
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Asia/Tokyo';
SET extra_float_digits = -3;
SET bytea_output = 'escape';
SET IntervalStyle = 'sql_standard';
INSERT INTO "Arch Ive"."Odd Events" (id, "Mixed Case", "select",
    aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff123, n, n2, f, r, ts, tl, d, iv,
    j, js, arr, ints, b, c, dom, e, u, ip, flag, m, bits, rng, vc, ch, tv)
VALUES
  (1, E'tab\there\nnewline \\ backslash '' quote " dq', '', 'é ü 漢字 🎉', 'NaN', 12.30,
   'NaN', 'Infinity', 'infinity', '-infinity', '4713-01-01 BC', '-1 year 2 months 3 days 04:05:06.789',
   '{"a": [1, 2.50, null], "b": {"c": "\u00e9"}}', '{"dup": 1, "dup": 2,   "ws" : true}',
   ARRAY['', NULL, 'with,comma', 'with "quote"', 'NULL'], '{{1,2},{3,4}}',
   '\x000102037f80feff'::bytea, ROW(1, 'a,b')::"Arch Ive".pair, 0.001, 'happy',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', true, 1234.56, B'10101',
   '[1,5)', 'abc', 'x', 'a fat cat'),
  (2, 'second', 'select', 'x', 123456789012345678901234567890.123456789012345678901234567890, -0.00,
   '-0', '1e-38', '2026-03-29 01:59:59.999999+01', '2026-03-29 02:30:00', '2026-02-28', '1 microsecond',
   '[]', 'null', '{}', '{}', '\x'::bytea, ROW(NULL, NULL)::"Arch Ive".pair, 9999999.999, 'sad',
   '00000000-0000-0000-0000-000000000000', '::1', false, -0.01, B'', 'empty', '', '', ''),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO "Arch Ive"."Odd Events" (id, f, b, "Mixed Case")
SELECT g, 1.0 / g, decode(lpad(to_hex(g % 256), 2, '0'), 'hex'), repeat(chr(65 + g % 26), g)
  FROM generate_series(4, 40) g;
CALL pipeline.run('odd');
CREATE TABLE odd_before AS SELECT * FROM "Arch Ive"."Odd Events";

-- batches of at most 7 rows
SELECT pipeline.set_retention('"Arch Ive"."Odd Events"', keep => '0', batch_rows => 7);
SELECT batches_written, rows_archived, rows_removed, raw_bytes > compressed_bytes AS compressed,
       batches_dropped
  FROM pipeline.archive('"Arch Ive"."Odd Events"');
SELECT count(*) AS still_staged FROM "Arch Ive"."Odd Events";
SELECT row_count, first_seq, last_seq, compressed_bytes = octet_length(payload) AS sizes_match,
       compression_level, dictionary_id
  FROM pipeline.archive_batches WHERE source = '"Arch Ive"."Odd Events"'::regclass ORDER BY id;
SELECT jsonb_path_query_array(columns, '$[*].name') AS archived_columns
  FROM pipeline.archive_batches WHERE source = '"Arch Ive"."Odd Events"'::regclass ORDER BY id LIMIT 1;

RESET DateStyle;
SET TimeZone = 'America/St_Johns';
SET extra_float_digits = 0;
RESET bytea_output;
SET IntervalStyle = 'iso_8601';
CREATE TEMP VIEW odd_archived AS
SELECT a.* FROM pipeline.archive_batches b,
       LATERAL pipeline.archived_rows(b.id, NULL::"Arch Ive"."Odd Events") a
 WHERE b.source = '"Arch Ive"."Odd Events"'::regclass;
-- every row back, each column's bytes identical (*= compares binary images)
SELECT (SELECT count(*) FROM odd_before) AS archived_rows,
       (SELECT count(*) FROM odd_archived) AS read_back,
       (SELECT count(*) FROM odd_before o WHERE NOT EXISTS
           (SELECT 1 FROM odd_archived a WHERE a *= o)) AS not_identical,
       (SELECT count(*) FROM odd_archived a WHERE NOT EXISTS
           (SELECT 1 FROM odd_before o WHERE a *= o)) AS not_original;
-- and in (_xid, _seq) order
SELECT array_agg(id) = (SELECT array_agg(id ORDER BY _xid, _seq) FROM odd_before) AS in_order
  FROM odd_archived;
RESET TimeZone;
RESET extra_float_digits;
RESET IntervalStyle;
-- the jsonb form: numbers, booleans and JSON as such, the rest as text
SELECT _seq, raw_row - 'aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff123' AS raw_row
  FROM pipeline.archive_batches b, LATERAL pipeline.archived_rows_jsonb(b.id) a
 WHERE b.source = '"Arch Ive"."Odd Events"'::regclass AND a._seq <= 3 ORDER BY _seq;
-- it populates rows of the table again: identically but for what JSON cannot
-- carry (row 1's json column keeps duplicate keys, row 2's float is -0)
SELECT count(*) AS populated_identically
  FROM pipeline.archive_batches b, LATERAL pipeline.archived_rows_jsonb(b.id) a,
       LATERAL jsonb_populate_record(NULL::"Arch Ive"."Odd Events",
                                     a.raw_row || jsonb_build_object('_xid', a._xid, '_seq', a._seq)) p
  JOIN odd_before o ON (o.id, o._seq) = (p.id, p._seq)
 WHERE b.source = '"Arch Ive"."Odd Events"'::regclass AND (o.*)::text = (p.*)::text;

-- Eligibility.  Two pipelines read ev; rows leave only once both consumed them.
CREATE TABLE ev (id int, payload text);
SELECT pipeline.create_pipeline('ev_a', 'ev', 'ev_a', strategy => 'append') > 0 AS a,
       pipeline.create_pipeline('ev_b', 'ev', 'ev_b', strategy => 'append') > 0 AS b;
SELECT pipeline.set_retention('ev', keep => '0');
INSERT INTO ev SELECT g, 'first ' || g FROM generate_series(1, 5) g;
CALL pipeline.run('ev_a');
-- ev_b has consumed nothing: nothing leaves
SELECT rows_archived FROM pipeline.archive('ev');
CALL pipeline.run('ev_b');
INSERT INTO ev SELECT g, 'second ' || g FROM generate_series(6, 8) g;
CALL pipeline.run('ev_a');
-- rows 1-5 leave; 6-8, which ev_b has not consumed, stay
SELECT rows_archived FROM pipeline.archive('ev');
SELECT array_agg(id ORDER BY id) AS staged FROM ev;
-- a paused pipeline holds rows back too
SELECT pipeline.pause('ev_b');
CALL pipeline.run('ev_a');
SELECT rows_archived FROM pipeline.archive('ev');
SELECT pipeline.resume('ev_b');
CALL pipeline.run('ev_b');
SELECT rows_archived FROM pipeline.archive('ev');
SELECT count(*) AS staged FROM ev;

-- A minimum age: keep => '1 hour'.  A pass records a mark of what every
-- reader has consumed; rows leave once a mark that saw them is an hour old.
INSERT INTO ev SELECT g, 'third ' || g FROM generate_series(9, 12) g;
CALL pipeline.run('ev_a');
CALL pipeline.run('ev_b');
SELECT pipeline.set_retention('ev', keep => '1 hour');
SELECT rows_archived FROM pipeline.archive('ev');
SELECT count(*) AS marks FROM pipeline.archive_marks WHERE source = 'ev'::regclass;
-- rows consumed after the mark
INSERT INTO ev SELECT g, 'fourth ' || g FROM generate_series(13, 14) g;
CALL pipeline.run('ev_a');
CALL pipeline.run('ev_b');
-- a second pass within keep / 10 of the mark records none
SELECT rows_archived FROM pipeline.archive('ev');
SELECT count(*) AS marks FROM pipeline.archive_marks WHERE source = 'ev'::regclass;
-- an hour later (the mark made older by hand): only the rows the mark saw leave
UPDATE pipeline.archive_marks SET taken_at = taken_at - interval '61 minutes'
 WHERE source = 'ev'::regclass;
SELECT rows_archived FROM pipeline.archive('ev');
SELECT array_agg(id ORDER BY id) AS staged FROM ev;
-- the pass recorded a new mark, which sees rows 13 and 14, and kept the old one
SELECT count(*) AS marks FROM pipeline.archive_marks WHERE source = 'ev'::regclass;
-- a new pipeline on the table drops the marks, which did not account for it
SELECT pipeline.create_pipeline('ev_c', 'ev', 'ev_c', strategy => 'append') > 0 AS c;
SELECT count(*) AS marks FROM pipeline.archive_marks WHERE source = 'ev'::regclass;
SELECT pipeline.drop_pipeline('ev_c');
DROP TABLE ev_c;

-- Without archive: consumed rows are deleted, no batch is written.
CREATE TABLE gone (id int);
SELECT pipeline.create_pipeline('gone', 'gone', 'gone_copy', strategy => 'append') > 0 AS created;
INSERT INTO gone SELECT generate_series(1, 10);
CALL pipeline.run('gone');
SELECT pipeline.set_retention('gone', keep => '0', archive => false);
SELECT batches_written, rows_archived, rows_removed FROM pipeline.archive('gone');
SELECT count(*) AS staged, (SELECT count(*) FROM gone_copy) AS merged FROM gone;
SELECT count(*) AS batches FROM pipeline.archive_batches WHERE source = 'gone'::regclass;

-- A table no pipeline reads archives nothing.
CREATE TABLE unread (id int);
SELECT pipeline.prepare_source('unread');
INSERT INTO unread VALUES (1);
SELECT pipeline.set_retention('unread', keep => '0');
SELECT rows_archived FROM pipeline.archive('unread');

-- A partitioned staging table: rows leave every partition.
CREATE TABLE parts (id int, day date) PARTITION BY RANGE (day);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
SELECT pipeline.create_pipeline('parts', 'parts', 'parts_copy', strategy => 'append') > 0 AS created;
-- rows alternate between partitions, so that a batch holds rows of both
INSERT INTO parts SELECT g, CASE WHEN g % 2 = 0 THEN date '2026-01-15' ELSE date '2026-02-15' END
  FROM generate_series(1, 9) g;
CALL pipeline.run('parts');
CREATE TABLE parts_before AS SELECT * FROM parts;
SELECT pipeline.set_retention('parts', keep => '0', batch_rows => 4);
SELECT batches_written, rows_archived FROM pipeline.archive('parts');
SELECT (SELECT count(*) FROM parts) AS staged,
       (SELECT count(*) FROM parts_before p WHERE NOT EXISTS
           (SELECT 1 FROM pipeline.archive_batches b, pipeline.archived_rows(b.id, NULL::parts) a
             WHERE b.source = 'parts'::regclass AND a *= p)) AS missing;

-- Archive retention: batches older than archive_keep are dropped by a pass.
SELECT pipeline.set_retention('parts', keep => '0', batch_rows => 4, archive_keep => '30 days');
SELECT batches_dropped FROM pipeline.archive('parts');
UPDATE pipeline.archive_batches SET created_at = created_at - interval '31 days'
 WHERE source = 'parts'::regclass AND first_seq = 1;
SELECT batches_written, batches_dropped FROM pipeline.archive('parts');
SELECT count(*) AS batches_left FROM pipeline.archive_batches WHERE source = 'parts'::regclass;

-- Dictionaries: trained on the table's newest rows, used by its batches,
-- kept while a batch uses them.
CREATE TABLE small (id int, at timestamptz, payload jsonb);
SELECT pipeline.create_pipeline('small', 'small', 'small_copy', strategy => 'append') > 0 AS created;
SELECT pipeline.set_retention('small', keep => '0', batch_rows => 50, dictionary_size => 4096,
                              compression_level => 9);
INSERT INTO small
SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
       jsonb_build_object('event', (ARRAY['click', 'view', 'buy'])[g % 3 + 1], 'user', g % 97,
                          'page', '/products/' || (g % 13), 'agent', 'Mozilla/5.0 (X11; Linux x86_64)')
  FROM generate_series(1, 3000) g;
CALL pipeline.run('small');
CREATE TABLE small_before AS SELECT * FROM small;
SELECT batches_written, rows_archived FROM pipeline.archive('small');
SELECT count(*) AS dictionaries, min(sample_rows) > 0 AS sampled,
       max(octet_length(dictionary)) <= 4096 AS within_size
  FROM pipeline.archive_dictionaries WHERE source = 'small'::regclass;
SELECT count(*) FILTER (WHERE dictionary_id IS NOT NULL) AS with_dictionary, count(*) AS batches
  FROM pipeline.archive_batches WHERE source = 'small'::regclass;
SELECT count(*) AS missing FROM small_before s WHERE NOT EXISTS
  (SELECT 1 FROM pipeline.archive_batches b, pipeline.archived_rows(b.id, NULL::small) a
    WHERE b.source = 'small'::regclass AND a *= s);
-- a new dictionary for the next batches; the old one stays while batches use it
INSERT INTO small SELECT g, now(), '{"event": "view"}' FROM generate_series(3001, 3100) g;
CALL pipeline.run('small');
SELECT pipeline.train_archive_dictionary('small') > 0 AS trained;
SELECT batches_written FROM pipeline.archive('small');
SELECT count(DISTINCT dictionary_id) AS dictionaries_in_use
  FROM pipeline.archive_batches WHERE source = 'small'::regclass;
SELECT count(*) AS dictionaries FROM pipeline.archive_dictionaries WHERE source = 'small'::regclass;
-- once no batch uses the old one, a pass drops it
DELETE FROM pipeline.archive_batches WHERE source = 'small'::regclass
   AND dictionary_id = (SELECT min(id) FROM pipeline.archive_dictionaries WHERE source = 'small'::regclass);
SELECT batches_written FROM pipeline.archive('small');
SELECT count(*) AS dictionaries FROM pipeline.archive_dictionaries WHERE source = 'small'::regclass;
-- too few rows to train one: an error from train_archive_dictionary, batches
-- without one from a pass
CREATE TABLE tiny (id int);
SELECT pipeline.create_pipeline('tiny', 'tiny', 'tiny_copy', strategy => 'append') > 0 AS created;
SELECT pipeline.set_retention('tiny', keep => '0', dictionary_size => 1024);
INSERT INTO tiny VALUES (1), (2);
CALL pipeline.run('tiny');
SELECT * FROM error_of($$SELECT pipeline.train_archive_dictionary('tiny')$$);
SELECT batches_written, rows_archived FROM pipeline.archive('tiny');
SELECT dictionary_id FROM pipeline.archive_batches WHERE source = 'tiny'::regclass;

-- The table's columns changed: typed read-back is refused, jsonb works, and
-- the table's next batches have the new columns.
ALTER TABLE ev ADD COLUMN extra int;
SELECT * FROM error_of($$SELECT * FROM pipeline.archived_rows(
    (SELECT min(id) FROM pipeline.archive_batches WHERE source = 'ev'::regclass), NULL::ev)$$);
SELECT a._seq, a.raw_row FROM pipeline.archived_rows_jsonb(
    (SELECT min(id) FROM pipeline.archive_batches WHERE source = 'ev'::regclass)) a ORDER BY 1 LIMIT 2;

-- Corrupt batches raise data_corrupted, never other rows.  (Checksums and
-- byte counts in the details depend on the rows' _xid, masked here.)
CREATE TABLE corrupt_copy AS
SELECT * FROM pipeline.archive_batches WHERE source = 'parts'::regclass ORDER BY id LIMIT 1;
CREATE FUNCTION pg_temp.read_damaged(damage text) RETURNS TABLE (code text, message text, detail text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pipeline.archive_batches b SET payload = c.payload, checksum = c.checksum,
           raw_bytes = c.raw_bytes, row_count = c.row_count, columns = c.columns,
           dictionary_id = c.dictionary_id
      FROM corrupt_copy c WHERE b.id = c.id;
    EXECUTE format('UPDATE pipeline.archive_batches b SET %s FROM corrupt_copy c WHERE b.id = c.id', damage);
    RETURN QUERY SELECT e.code, e.message, regexp_replace(e.detail, '\m([0-9A-F]{8}|[0-9]{3,})\M', 'n', 'g'),
                        e.hint
                   FROM error_of(format('SELECT count(*) FROM pipeline.archived_rows(%s, NULL::parts)',
                                        (SELECT id FROM corrupt_copy))) e;
END $$;
-- intact
SELECT * FROM pg_temp.read_damaged('row_count = c.row_count');
-- a flipped bit in the zstd frame's content checksum, and in its first block
SELECT * FROM pg_temp.read_damaged(
    'payload = set_byte(c.payload, octet_length(c.payload) - 1, get_byte(c.payload, octet_length(c.payload) - 1) # 1)');
SELECT code, message FROM pg_temp.read_damaged(
    'payload = set_byte(c.payload, 12, get_byte(c.payload, 12) # 16)');
-- not zstd at all
SELECT * FROM pg_temp.read_damaged($$payload = '\xdeadbeef'$$);
-- a payload that decompresses but whose checksum does not match
SELECT * FROM pg_temp.read_damaged('checksum = c.checksum # 1');
SELECT * FROM pg_temp.read_damaged('raw_bytes = c.raw_bytes + 1');
-- the payload of a batch with another number of rows
SELECT * FROM pg_temp.read_damaged('row_count = c.row_count + 1');
SELECT * FROM pg_temp.read_damaged('row_count = c.row_count - 1');
SELECT * FROM pg_temp.read_damaged($$columns = '{"not": "a list"}'$$);
SELECT * FROM pg_temp.read_damaged($$columns = c.columns - 0$$);
-- compressed with a dictionary it no longer names
UPDATE corrupt_copy c SET payload = b.payload, checksum = b.checksum, raw_bytes = b.raw_bytes,
       row_count = b.row_count, columns = b.columns, dictionary_id = b.dictionary_id, id = b.id
  FROM (SELECT * FROM pipeline.archive_batches WHERE source = 'small'::regclass
         AND dictionary_id IS NOT NULL ORDER BY id LIMIT 1) b;
UPDATE pipeline.archive_batches SET dictionary_id = NULL WHERE id = (SELECT id FROM corrupt_copy);
SELECT code, message, detail FROM error_of(format(
    'SELECT count(*) FROM pipeline.archived_rows(%s, NULL::small)', (SELECT id FROM corrupt_copy)));
-- the jsonb form checks as much
UPDATE pipeline.archive_batches SET dictionary_id = c.dictionary_id, checksum = c.checksum # 1
  FROM corrupt_copy c WHERE archive_batches.id = c.id;
SELECT code, message FROM error_of(format(
    'SELECT count(*) FROM pipeline.archived_rows_jsonb(%s)', (SELECT id FROM corrupt_copy)));

-- Privileges: a role reads the archives of the tables it may SELECT, and
-- only the table's owner sets its retention or runs a pass.
CREATE ROLE arch_owner;
CREATE ROLE arch_other;
GRANT USAGE ON SCHEMA ar TO arch_owner, arch_other;
GRANT CREATE ON SCHEMA ar TO arch_owner;
SET ROLE arch_owner;
CREATE TABLE owned (id int, secret text);
SELECT pipeline.create_pipeline('owned', 'owned', 'owned_copy', strategy => 'append') > 0 AS created;
INSERT INTO owned VALUES (1, 'only for arch_owner');
CALL pipeline.run('owned');
SELECT pipeline.set_retention('owned', keep => '0');
SELECT rows_archived FROM pipeline.archive('owned');
SELECT count(*) AS visible_batches FROM pipeline.archive_batches;
SELECT count(*) AS visible_settings FROM pipeline.retention;
SELECT max(id) AS owned_batch FROM pipeline.archive_batches \gset
SELECT secret FROM pipeline.archived_rows(:owned_batch, NULL::owned);
RESET ROLE;
SET ROLE arch_other;
SELECT count(*) AS visible_batches FROM pipeline.archive_batches;
SELECT count(*) AS visible_settings FROM pipeline.retention;
SELECT * FROM error_of('SELECT * FROM pipeline.archived_rows_jsonb(' || :owned_batch || ')');
SELECT * FROM error_of($$SELECT pipeline.set_retention('owned', keep => '0')$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.archive('owned')$$);
SELECT * FROM error_of($$SELECT pipeline.drop_retention('owned')$$);
SELECT * FROM error_of($$DELETE FROM pipeline.archive_batches$$);
RESET ROLE;
GRANT SELECT ON owned TO arch_other;
SET ROLE arch_other;
SELECT count(*) AS visible_batches, (SELECT count(*) FROM pipeline.archives) AS visible_archives
  FROM pipeline.archive_batches;
RESET ROLE;

-- The pass at the end of a run, when the last pass is older than
-- pipeline.archive_interval.
SET pipeline.archive_interval = 0;
SELECT pipeline.set_retention('ev', keep => '0');
INSERT INTO ev (id, payload) VALUES (100, 'archived by the run');
SELECT count(*) AS batches_before FROM pipeline.archive_batches WHERE source = 'ev'::regclass;
CALL pipeline.run('ev_a');
CALL pipeline.run('ev_b');
SELECT count(*) AS batches_after, (SELECT count(*) FROM ev WHERE id = 100) AS still_staged
  FROM pipeline.archive_batches WHERE source = 'ev'::regclass;
-- with an interval, the next run finds the pass not due
SET pipeline.archive_interval = 3600;
INSERT INTO ev (id, payload) VALUES (102, 'staged until a pass is due');
CALL pipeline.run('ev_a');
CALL pipeline.run('ev_b');
SELECT count(*) AS still_staged FROM ev WHERE id = 102;
SET pipeline.archive_interval = 0;
-- a failing pass is a warning; the run succeeded
CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no deletes today' USING ERRCODE = 'P0001'; END $$;
CREATE TRIGGER refuse_delete BEFORE DELETE ON ev FOR EACH ROW EXECUTE FUNCTION refuse_delete();
INSERT INTO ev (id, payload) VALUES (101, 'stays');
CALL pipeline.run('ev_a');
CALL pipeline.run('ev_b');
SELECT status FROM pipeline.runs WHERE pipeline = 'ev_b' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS still_staged FROM ev WHERE id = 101;
DROP TRIGGER refuse_delete ON ev;
SET pipeline.archive_interval = -1;

-- A dropped staging table takes its retention setting; its batches stay,
-- tied to no table, readable by superusers as jsonb.
SELECT pipeline.drop_pipeline('tiny');
DROP TABLE tiny;
SELECT count(*) AS settings FROM pipeline.retention WHERE source::text = 'tiny';
SELECT source, source_name, row_count FROM pipeline.archive_batches WHERE source_name = 'ar.tiny';
SELECT * FROM error_of(format('SELECT * FROM pipeline.archived_rows(%s, NULL::parts)',
    (SELECT id FROM pipeline.archive_batches WHERE source_name = 'ar.tiny')));
SELECT raw_row FROM pipeline.archived_rows_jsonb(
    (SELECT id FROM pipeline.archive_batches WHERE source_name = 'ar.tiny')) ORDER BY _seq;

-- drop_retention: rows stay staged from now on; the archive stays.
SELECT pipeline.drop_retention('parts');
SELECT * FROM error_of($$SELECT * FROM pipeline.archive('parts')$$);
SELECT pipeline.drop_retention('parts', if_exists => true);
SELECT count(*) > 0 AS archive_kept FROM pipeline.archive_batches WHERE source = 'parts'::regclass;

-- The overview.
SELECT source, keep, archive, batches, rows
  FROM pipeline.archives ORDER BY source::text;

-- Bad arguments.
\set VERBOSITY default
SELECT * FROM error_of($$SELECT pipeline.set_retention(NULL, '1 day')$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', NULL)$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', '-1 day')$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', '1 day', compression_level => 0)$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', '1 day', compression_level => 23)$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', '1 day', dictionary_size => 100)$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', '1 day', batch_rows => 0)$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', '1 day', archive_keep => '0')$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev', '1 day', archive => false, archive_keep => '1 day')$$);
SELECT * FROM error_of($$SELECT pipeline.set_retention('no_such_table', '1 day')$$);
CREATE VIEW ev_view AS SELECT * FROM ev;
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev_view', '1 day')$$);
CREATE TABLE plain (id int);
SELECT * FROM error_of($$SELECT pipeline.set_retention('plain', '1 day')$$);
-- a change log: its readers trim it
SELECT pipeline.create_pipeline('ev_gold', 'ev_a', 'ev_gold', strategy => 'append') > 0 AS created;
SELECT * FROM error_of($$SELECT pipeline.set_retention('ev_a_changes', '1 day')$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.archive('plain')$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.archive(NULL)$$);
SELECT * FROM error_of($$SELECT pipeline.drop_retention('plain')$$);
SELECT * FROM error_of($$SELECT pipeline.train_archive_dictionary('ev')$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.archived_rows(NULL, NULL::ev)$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.archived_rows(-1, NULL::ev)$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.archived_rows_jsonb(NULL)$$);
SELECT * FROM error_of(format('SELECT * FROM pipeline.archived_rows(%s, NULL::ev)',
    (SELECT min(id) FROM pipeline.archive_batches WHERE source = 'parts'::regclass)));
SELECT * FROM error_of(format('SELECT * FROM pipeline.archived_rows(%s, NULL::int)',
    (SELECT min(id) FROM pipeline.archive_batches WHERE source = 'parts'::regclass)));
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM pipeline.archive('ev');
ROLLBACK;

-- Dropping the tables drops their pipelines and retention settings.
RESET search_path;
DROP SCHEMA ar CASCADE;
DROP SCHEMA "Arch Ive" CASCADE;
DROP ROLE arch_owner;
DROP ROLE arch_other;
