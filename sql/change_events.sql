--
-- Change events: Debezium's (format => 'debezium'), sequence_by as
-- expressions kept in the row state rather than in the target, and
-- partial updates (ignore_null_updates, except_columns).
--
-- The events are Debezium's own: the PostgreSQL connector's documentation
-- (debezium/debezium, documentation/modules/ROOT/pages/connectors/
-- postgresql.adoc: the create event with its schema, and the payloads of
-- the update, delete, truncate and message events; the update with the
-- create's schema, as the page says they share it), the timezone converter
-- page's create event with a created_at column, the event flattening
-- page's rewritten delete and added fields (transformations/
-- event-flattening.adoc), and the snapshot read of the debezium-examples
-- camel-kafka-connect README.  JSON whitespace removed; the documentation's
-- update and delete blocks lose a trailing comma.
--
CALL number_ids_from(150000);
CREATE SCHEMA dbz;
CREATE TABLE dbz.samples (name text PRIMARY KEY, event jsonb NOT NULL);
INSERT INTO dbz.samples VALUES
    ('create_full', $ev${"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"int64","optional":false,"field":"ts_us"},{"type":"int64","optional":false,"field":"ts_ns"},{"type":"boolean","optional":true,"default":false,"field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"optional":false,"name":"PostgreSQL_server.inventory.customers.Envelope"},"payload":{"before":null,"after":{"id":1,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"},"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863123,"ts_ns":1559033904863123000,"snapshot":true,"db":"postgres","sequence":"[\"24023119\",\"24023128\"]","schema":"public","table":"customers","txId":555,"lsn":24023128,"xmin":null},"op":"c","ts_ms":1559033904863,"ts_us":1559033904863841,"ts_ns":1559033904863841257}}$ev$),
    ('create', $ev${"before":null,"after":{"id":1,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"},"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863123,"ts_ns":1559033904863123000,"snapshot":true,"db":"postgres","sequence":"[\"24023119\",\"24023128\"]","schema":"public","table":"customers","txId":555,"lsn":24023128,"xmin":null},"op":"c","ts_ms":1559033904863,"ts_us":1559033904863841,"ts_ns":1559033904863841257}$ev$),
    ('update', $ev${"before":{"id":1},"after":{"id":1,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"},"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863769,"ts_ns":1559033904863769000,"snapshot":false,"db":"postgres","schema":"public","table":"customers","txId":556,"lsn":24023128,"xmin":null},"op":"u","ts_ms":1465584025523,"ts_us":1465584025523514,"ts_ns":1465584025523514964}$ev$),
    ('delete', $ev${"before":{"id":1},"after":null,"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863852,"ts_ns":1559033904863852000,"snapshot":false,"db":"postgres","schema":"public","table":"customers","txId":556,"lsn":46523128,"xmin":null},"op":"d","ts_ms":1465581902461,"ts_us":1465581902461496,"ts_ns":1465581902461496187}$ev$),
    ('truncate', $ev${"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863112,"ts_ns":1559033904863112000,"snapshot":false,"db":"postgres","schema":"public","table":"customers","txId":556,"lsn":46523128,"xmin":null},"op":"t","ts_ms":1559033904961,"ts_us":1559033904961654,"ts_ns":1559033904961654789}$ev$),
    ('snapshot_read', $ev${"before":null,"after":{"id":1001,"first_name":"Sally","last_name":"Thomas","email":"sally.thomas@acme.com"},"source":{"version":"2.1.3.Final","connector":"postgresql","name":"dbserver1","ts_ms":1582540780807,"snapshot":"true","db":"postgres","schema":"inventory","table":"customers","txId":596,"lsn":33816576,"xmin":null},"op":"r","ts_ms":1582540780809}$ev$),
    ('message', $ev${"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863762,"ts_ns":1559033904863762000,"snapshot":false,"db":"postgres","schema":"","table":"","lsn":46523128,"xmin":null},"op":"m","ts_ms":1559033904961,"ts_us":1559033904961741,"ts_ns":1559033904961741698,"message":{"prefix":"foo","content":"Ymfy"}}$ev$),
    ('create_with_created_at', $ev${"before":null,"after":{"id":1,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org","created_at":"2011-01-11T16:40:30.123456789+00:00"},"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863000,"ts_ns":1559033904863000000,"snapshot":true,"db":"postgres","sequence":"[\"24023119\",\"24023128\"]","schema":"public","table":"customers","txId":555,"lsn":24023128,"xmin":null},"op":"c","ts_ms":1559033904863,"ts_us":1559033904863875,"ts_ns":1559033904863875124}$ev$),
    ('update_full', $ev${"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"int64","optional":false,"field":"ts_us"},{"type":"int64","optional":false,"field":"ts_ns"},{"type":"boolean","optional":true,"default":false,"field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"optional":false,"name":"PostgreSQL_server.inventory.customers.Envelope"},"payload":{"before":{"id":1},"after":{"id":1,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"},"source":{"version":"{debezium-version}","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"ts_us":1559033904863769,"ts_ns":1559033904863769000,"snapshot":false,"db":"postgres","schema":"public","table":"customers","txId":556,"lsn":24023128,"xmin":null},"op":"u","ts_ms":1465584025523,"ts_us":1465584025523514,"ts_ns":1465584025523514964}}$ev$),
    ('flat_delete', $ev${"pk":2,"cola":null,"__deleted":"true"}$ev$),
    ('flat_added_fields', $ev${"__op":"c","__table":"MY_TABLE","__lsn":"123456789","__source_ts_ms":"123456789"}$ev$);

-- The customers table of the documentation, and a staging table of events
-- as a Kafka consumer writes them: the record value in a jsonb column.
CREATE TABLE dbz.customers (id int PRIMARY KEY, first_name text, last_name text, email text);
CREATE TABLE dbz.customer_events (topic text, "offset" bigint, value jsonb);
SELECT pipeline.create_pipeline('dbz_customers', 'dbz.customer_events', 'dbz.customers',
                                key => ARRAY['id'], format => 'debezium') > 0 AS created;
-- a delete event deletes; events are ordered by source.lsn, kept beside the target
SELECT sequence_by, delete_when, format FROM pipeline.pipelines WHERE name = 'dbz_customers';
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'dbz' AND table_name = 'customers_rows' ORDER BY ordinal_position;
CREATE FUNCTION dbz.stage(VARIADIC names text[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO dbz.customer_events (topic, "offset", value)
    SELECT 'PostgreSQL_server.public.customers', o, s.event
      FROM unnest(names) WITH ORDINALITY AS n(name, o) JOIN dbz.samples s USING (name)
     ORDER BY o $$;
CREATE FUNCTION dbz.run(name text) RETURNS TABLE (read bigint, inserted bigint, updated bigint,
    unchanged bigint, deleted bigint, stale bigint, skipped bigint, quarantined bigint)
    LANGUAGE plpgsql AS $$
BEGIN
    CALL run_quietly(name);
    RETURN QUERY SELECT r.rows_read, r.rows_inserted, r.rows_updated, r.rows_unchanged,
        r.rows_deleted, r.rows_stale, r.rows_filtered, r.rows_quarantined
      FROM pipeline.runs r WHERE r.pipeline = name ORDER BY r.run_id DESC LIMIT 1;
END $$;

-- c, with the schema part (JsonConverter with schemas.enable)
SELECT dbz.stage('create_full');
SELECT * FROM dbz.run('dbz_customers');
TABLE dbz.customers;
-- redelivered (Kafka Connect delivers at least once): unchanged, not written
SELECT dbz.stage('create_full', 'create');
SELECT xmin AS before_xmin FROM dbz.customers WHERE id = 1 \gset
SELECT * FROM dbz.run('dbz_customers');
SELECT xmin = :'before_xmin'::xid AS not_rewritten FROM dbz.customers WHERE id = 1;
-- u (REPLICA IDENTITY DEFAULT: before holds the key only), and r from a snapshot
SELECT dbz.stage('update', 'snapshot_read');
SELECT * FROM dbz.run('dbz_customers');
TABLE dbz.customers ORDER BY id;
-- d, then the tombstone Kafka sends after it (a NULL value), and a logical
-- decoding message: the tombstone and the message change no row, skipped
SELECT dbz.stage('delete');
INSERT INTO dbz.customer_events (topic, value) VALUES ('PostgreSQL_server.public.customers', NULL);
SELECT dbz.stage('message');
SELECT * FROM dbz.run('dbz_customers');
TABLE dbz.customers ORDER BY id;
-- out of order: the create and the update arrive again after the delete,
-- older by source.lsn: stale, the row stays deleted
SELECT dbz.stage('create', 'update_full');
SELECT * FROM dbz.run('dbz_customers');
TABLE dbz.customers ORDER BY id;
SELECT __pl_k0 AS id, __pl_sq AS lsn, __pl_live AS live FROM dbz.customers_rows ORDER BY 1;

-- t: a truncate is not applied by itself; it is quarantined with the reason
-- and the raw event, as are events that cannot be followed exactly
SELECT dbz.stage('truncate');
INSERT INTO dbz.customer_events (topic, value) VALUES
    ('json null', 'null'),
    ('array', '[1, 2]'),
    ('unknown op', '{"op": "x", "source": {"lsn": 1}, "after": {"id": 9}}'),
    ('delete without before', '{"op": "d", "before": null, "after": null, "source": {"lsn": 2}}'),
    ('create without after', '{"op": "c", "before": null, "source": {"lsn": 3}}'),
    ('flattened without __deleted or __op', '{"id": 9, "first_name": "X"}'),
    ('unavailable value', '{"op": "u", "before": null, "after": {"id": 1001, "first_name": "Sally", "last_name": "Thomas", "email": "__debezium_unavailable_value"}, "source": {"lsn": 40000000}}'),
    ('no lsn', '{"op": "c", "before": null, "after": {"id": 9}, "source": {"connector": "mysql"}}'),
    ('wrong type', '{"op": "c", "before": null, "after": {"id": "nine"}, "source": {"lsn": 50000000}}');
SELECT * FROM dbz.run('dbz_customers');
SELECT q.raw_row ->> 'topic' AS event, q.sqlstate, q.reason
  FROM pipeline.quarantine q WHERE q.pipeline = 'dbz_customers' ORDER BY q.id;
-- nothing was lost: the raw events are in the quarantine
SELECT count(*) AS raw_events_kept FROM pipeline.quarantine q
 WHERE q.pipeline = 'dbz_customers' AND q.raw_row ? 'value';
TABLE dbz.customers ORDER BY id;

-- A schema change in the envelope: the timezone converter page's create
-- event has a created_at column the target lacks.  With on_schema_change
-- 'ignore' (the default) it is left out; with 'fail' the event is
-- quarantined until the target has the column, then requeued.
CREATE TABLE dbz.customers2 (id int PRIMARY KEY, first_name text, last_name text, email text);
CREATE TABLE dbz.customer_events2 (value text);
SELECT pipeline.create_pipeline('dbz_strict', 'dbz.customer_events2', 'dbz.customers2',
                                key => ARRAY['id'], format => 'debezium',
                                on_schema_change => 'fail') > 0 AS created;
INSERT INTO dbz.customer_events2 SELECT event::text FROM dbz.samples WHERE name = 'create_with_created_at';
INSERT INTO dbz.customer_events2 VALUES ('{"op": "c", not json');
SELECT * FROM dbz.run('dbz_strict');
SELECT q.sqlstate, q.reason FROM pipeline.quarantine q WHERE q.pipeline = 'dbz_strict' ORDER BY q.id;
ALTER TABLE dbz.customers2 ADD COLUMN created_at timestamptz;
SELECT array_agg(q.id) AS schema_changed FROM pipeline.quarantine q
 WHERE q.pipeline = 'dbz_strict' AND q.sqlstate = '22000' \gset
CALL pipeline.requeue_quarantine('dbz_strict', :'schema_changed');
SELECT * FROM dbz.run('dbz_strict');
SELECT id, first_name, created_at AT TIME ZONE 'UTC' AS created_at_utc FROM dbz.customers2;
-- (as a later event than the delete of id 1 above: source.lsn moved on)
INSERT INTO dbz.customer_events
SELECT 'tz', 1, jsonb_set(event, '{source,lsn}', '50000000') FROM dbz.samples WHERE name = 'create_with_created_at';
SELECT * FROM dbz.run('dbz_customers');
SELECT * FROM dbz.customers WHERE id = 1;

-- Logical types, with the schema: dates and times as epoch counts,
-- decimals as two's-complement bytes in base64 (fixed and variable
-- scale), bytes in base64, JSON as text.  Encodings as the PostgreSQL
-- connector's data type mappings document them.
CREATE TABLE dbz.typed (id int PRIMARY KEY, d date, ts timestamp, ts3 timestamp(3), t time,
                        amount numeric(10,2), neg numeric, vs numeric, raw bytea, doc jsonb,
                        zts timestamptz);
CREATE TABLE dbz.typed_events (value json);
SELECT pipeline.create_pipeline('dbz_typed', 'dbz.typed_events', 'dbz.typed',
                                key => ARRAY['id'], format => 'debezium') > 0 AS created;
INSERT INTO dbz.typed_events VALUES ($ev${"schema": {"type": "struct", "optional": false, "fields": [
  {"type": "struct", "optional": true, "field": "before", "fields": []},
  {"type": "struct", "optional": true, "field": "after", "fields": [
    {"type": "int32", "optional": false, "field": "id"},
    {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "field": "d"},
    {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "field": "ts"},
    {"type": "int64", "optional": true, "name": "io.debezium.time.Timestamp", "field": "ts3"},
    {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTime", "field": "t"},
    {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "amount"},
    {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}, "field": "neg"},
    {"type": "struct", "optional": true, "name": "io.debezium.data.VariableScaleDecimal", "field": "vs", "fields": []},
    {"type": "bytes", "optional": true, "field": "raw"},
    {"type": "string", "optional": true, "name": "io.debezium.data.Json", "field": "doc"},
    {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "field": "zts"}]},
  {"type": "struct", "optional": false, "field": "source", "fields": []},
  {"type": "string", "optional": false, "field": "op"}]},
 "payload": {"before": null, "after": {"id": 7, "d": 19000, "ts": 1641559033904863, "ts3": 1641559033904,
   "t": 45296789000, "amount": "AeJA", "neg": "/w==", "vs": {"scale": 3, "value": "MDk="}, "raw": "AQID",
   "doc": "{\"a\": [1, 2]}", "zts": "2022-01-07T12:37:13.904863Z"},
  "source": {"connector": "postgresql", "lsn": 100}, "op": "c"}}$ev$);
SELECT * FROM dbz.run('dbz_typed');
SELECT id, d, ts, ts3, t, amount, neg, vs, raw, doc, zts AT TIME ZONE 'UTC' AS zts_utc FROM dbz.typed;
-- logical values out of range are quarantined, never stored wrong nor
-- failing the run: a date past 32 bits, a timestamp whose microseconds
-- overflow, a time before midnight, a decimal scale of 2e9, bytes not base64
INSERT INTO dbz.typed_events
SELECT jsonb_build_object('schema', jsonb_build_object('type', 'struct', 'fields', jsonb_build_array(
           jsonb_build_object('type', 'struct', 'field', 'after', 'fields', jsonb_build_array(f)))),
       'payload', jsonb_build_object('op', 'c', 'after', jsonb_build_object('id', i) || a,
                                     'source', '{"lsn": 200}'::jsonb))::json
  FROM (VALUES
    (8, '{"type": "int32", "name": "io.debezium.time.Date", "field": "d"}'::jsonb, '{"d": 4294967297}'::jsonb),
    (9, '{"type": "int64", "name": "io.debezium.time.Timestamp", "field": "ts"}', '{"ts": 9223372036854776}'),
    (10, '{"type": "int64", "name": "io.debezium.time.MicroTime", "field": "t"}', '{"t": -5}'),
    (11, '{"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2000000000"}, "field": "amount"}', '{"amount": "AQ=="}'),
    (12, '{"type": "bytes", "field": "raw"}', '{"raw": "!!"}')) v(i, f, a);
SELECT * FROM dbz.run('dbz_typed');
SELECT reason FROM pipeline.quarantine WHERE pipeline = 'dbz_typed' ORDER BY id;
SELECT count(*) AS still_one FROM dbz.typed;

-- The flattened record of ExtractNewRecordState, as JSON (the flattening
-- page's rewritten delete) and as the columns a JDBC sink writes, with
-- __deleted and the added fields; other connectors order by _ts_ms.
CREATE TABLE dbz.flat (pk int PRIMARY KEY, cola text);
CREATE TABLE dbz.flat_events (value jsonb);
SELECT pipeline.create_pipeline('dbz_flat', 'dbz.flat_events', 'dbz.flat', key => ARRAY['pk'],
                                format => 'debezium', sequence_by => '_ts_ms') > 0 AS created;
INSERT INTO dbz.flat_events VALUES
    ('{"pk": 1, "cola": "one", "__deleted": "false", "__source_ts_ms": 10}'),
    ('{"pk": 2, "cola": "two", "__deleted": "false", "__source_ts_ms": 10}');
SELECT * FROM dbz.run('dbz_flat');
INSERT INTO dbz.flat_events SELECT event || '{"__source_ts_ms": 20}' FROM dbz.samples WHERE name = 'flat_delete';
INSERT INTO dbz.flat_events SELECT event || '{"pk": 1, "cola": "uno"}' FROM dbz.samples WHERE name = 'flat_added_fields';
SELECT * FROM dbz.run('dbz_flat');
TABLE dbz.flat ORDER BY pk;
SELECT (pipeline.debezium_event(event)).* FROM dbz.samples WHERE name = 'flat_added_fields';

CREATE TABLE dbz.sunk (pk int, cola text, __deleted text, __lsn bigint);
CREATE TABLE dbz.sunk_target (pk int PRIMARY KEY, cola text);
SELECT pipeline.create_pipeline('dbz_sunk', 'dbz.sunk', 'dbz.sunk_target', key => ARRAY['pk'],
                                format => 'debezium') > 0 AS created;
INSERT INTO dbz.sunk VALUES (1, 'a', 'false', 5), (2, 'b', 'false', 6), (1, 'a2', 'false', 9),
                            (2, NULL, 'true', 10), (2, 'b-late', 'false', 7);
SELECT * FROM dbz.run('dbz_sunk');
TABLE dbz.sunk_target ORDER BY pk;

-- Names that need quoting, a mapping over the event's own columns, and a
-- filter: loaded_at from the event's time, a column left to its default.
CREATE SCHEMA "Dbz Land";
CREATE TABLE "Dbz Land"."Order Items" ("Item Id" int PRIMARY KEY, "select" text, "Qty" int,
    loaded_at timestamptz, note text DEFAULT 'kept');
CREATE TABLE "Dbz Land"."Item Events" ("Value" jsonb);
SELECT pipeline.create_pipeline('dbz quoted', '"Dbz Land"."Item Events"', '"Dbz Land"."Order Items"',
    key => ARRAY['Item Id'], format => 'debezium',
    columns => '{"loaded_at": "to_timestamp(_ts_ms / 1000.0)", "note": null}',
    filter => $$_source ->> 'table' = 'order_items'$$) > 0 AS created;
INSERT INTO "Dbz Land"."Item Events" VALUES
    ('{"op": "c", "before": null, "after": {"Item Id": 1, "select": "x", "Qty": 2}, "source": {"table": "order_items", "lsn": 1, "ts_ms": 1000}}'),
    ('{"op": "c", "before": null, "after": {"Item Id": 2, "select": "y", "Qty": 3}, "source": {"table": "other", "lsn": 2, "ts_ms": 2000}}');
SELECT * FROM dbz.run('dbz quoted');
SELECT "Item Id", "select", "Qty", loaded_at AT TIME ZONE 'UTC' AS loaded_at_utc, note FROM "Dbz Land"."Order Items";

-- Refused at definition, each with its reason.
CREATE TABLE dbz.two_json (a jsonb, b json);
CREATE TABLE dbz.no_json (a int);
CREATE TABLE dbz.op_target (id int PRIMARY KEY, _op text);
SELECT pipeline.create_pipeline('bad', 'dbz.customer_events', 'dbz.missing', key => ARRAY['id'], format => 'debezium');
SELECT pipeline.create_pipeline('bad', 'dbz.customer_events', 'dbz.customers', key => ARRAY['id'], format => 'avro');
SELECT pipeline.create_pipeline('bad', 'dbz.two_json', 'dbz.customers', key => ARRAY['id'], format => 'debezium');
SELECT pipeline.create_pipeline('bad', 'dbz.no_json', 'dbz.customers', key => ARRAY['id'], format => 'debezium');
SELECT pipeline.create_pipeline('bad', 'dbz.customer_events', 'dbz.op_target', key => ARRAY['id'], format => 'debezium');
SELECT pipeline.create_pipeline('bad', 'dbz.customer_events', 'dbz.customers', key => ARRAY['id'], format => 'debezium',
                                on_schema_change => 'append_new_columns');
CREATE TABLE dbz.agg (id int PRIMARY KEY, n bigint);
SELECT pipeline.create_pipeline('bad', 'dbz.customer_events', 'dbz.agg', key => ARRAY['id'], format => 'debezium',
                                strategy => 'aggregate', columns => '{"n": "count(*)"}');
SELECT pipeline.create_pipeline('bad', 'dbz.customers', 'dbz.customers2', key => ARRAY['id'], format => 'debezium');
SELECT pipeline.create_pipeline('bad', 'dbz.customer_events', 'dbz.customers', key => ARRAY['id'], format => 'debezium',
                                sequence_by => 'ROW(_lsn, _ts_ms)');

-- sequence_by as several expressions over the source row, ordered
-- lexicographically, without a column in the target; deletes remembered
-- in the row state.
CREATE TABLE dbz.versions (id int, v text, epoch int, n int);
CREATE TABLE dbz.latest (id int PRIMARY KEY, v text);
SELECT pipeline.create_pipeline('by_two', 'dbz.versions', 'dbz.latest', key => ARRAY['id'],
                                sequence_by => 'epoch, n * 10', delete_when => 'v IS NULL') > 0 AS created;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'dbz' AND table_name = 'latest_rows' ORDER BY ordinal_position;
INSERT INTO dbz.versions VALUES (1, 'a', 1, 5), (1, 'b', 2, 1), (2, 'x', 1, 1);
SELECT * FROM dbz.run('by_two');
INSERT INTO dbz.versions VALUES (1, 'old', 1, 9), (1, 'newer', 2, 2), (2, NULL, 1, 2), (3, 'c', NULL, 1);
SELECT * FROM dbz.run('by_two');
INSERT INTO dbz.versions VALUES (2, 'back', 1, 1), (2, 'again', 3, 0);
SELECT * FROM dbz.run('by_two');
TABLE dbz.latest ORDER BY id;
SELECT reason FROM pipeline.quarantine WHERE pipeline = 'by_two';
SELECT source_column, subtype, origin, transformation FROM pipeline.lineage
 WHERE pipeline = 'by_two' AND origin = 'sequence_by' ORDER BY 1;
SELECT pipeline.alter_pipeline('by_two', sequence_by => 'n');
SELECT pipeline.alter_pipeline('by_two', batch_size => 10);
SELECT pipeline.create_pipeline('bad', 'dbz.versions', 'dbz.latest2', key => ARRAY['id'], sequence_by => 'point(epoch, n)');
SELECT pipeline.create_pipeline('bad', 'dbz.versions', 'dbz.latest2', key => ARRAY['id'], sequence_by => 'epoch, nosuch');

-- Partial updates: an update's NULL keeps the stored value in the columns
-- of ignore_null_updates ('*': all but the key), as APPLY CHANGES does; an
-- insert writes it.  except_columns are source columns left out.
CREATE TABLE dbz.partial_events (value jsonb);
CREATE TABLE dbz.partial (id int PRIMARY KEY, name text, email text, phone text);
SELECT pipeline.create_pipeline('partial', 'dbz.partial_events', 'dbz.partial', key => ARRAY['id'],
                                format => 'debezium', ignore_null_updates => ARRAY['email', 'phone']) > 0 AS created;
INSERT INTO dbz.partial_events VALUES
    ('{"op": "c", "after": {"id": 1, "name": "Ann", "email": "ann@x", "phone": "1"}, "source": {"lsn": 1}}'),
    ('{"op": "c", "after": {"id": 2, "name": "Bo", "email": null, "phone": "2"}, "source": {"lsn": 2}}');
SELECT * FROM dbz.run('partial');
INSERT INTO dbz.partial_events VALUES
    ('{"op": "u", "after": {"id": 1, "name": null, "email": null, "phone": "11"}, "source": {"lsn": 3}}'),
    ('{"op": "u", "after": {"id": 2, "name": "Bob", "email": null, "phone": null}, "source": {"lsn": 4}}'),
    ('{"op": "u", "after": {"id": 2, "name": "Bob"}, "source": {"lsn": 5}}');
SELECT * FROM dbz.run('partial');
TABLE dbz.partial ORDER BY id;
SELECT ignore_null_updates FROM pipeline.pipelines WHERE name = 'partial';

CREATE TABLE dbz.people_staged (id int, name text, email text, ssn text, updated int);
SELECT pipeline.create_pipeline('people', 'dbz.people_staged', 'dbz.people', key => ARRAY['id'],
                                sequence_by => 'updated', ignore_null_updates => ARRAY['*'],
                                except_columns => ARRAY['ssn']) > 0 AS created;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'dbz' AND table_name = 'people' ORDER BY ordinal_position;
INSERT INTO dbz.people_staged VALUES (1, 'Cy', 'cy@x', '123', 1), (1, NULL, 'cy@y', '123', 2);
SELECT * FROM dbz.run('people');
INSERT INTO dbz.people_staged VALUES (1, NULL, NULL, '123', 3);
SELECT * FROM dbz.run('people');
TABLE dbz.people;
SELECT columns FROM pipeline.pipelines WHERE name = 'people';
SELECT pipeline.create_pipeline('bad', 'dbz.people_staged', 'dbz.people2', key => ARRAY['id'], except_columns => ARRAY['id']);
SELECT pipeline.create_pipeline('bad', 'dbz.people_staged', 'dbz.people2', key => ARRAY['id'], except_columns => ARRAY['nope']);
SELECT pipeline.create_pipeline('bad', 'dbz.people_staged', 'dbz.people2', key => ARRAY['id'], except_columns => ARRAY['ssn'],
                                columns => '{"ssn": "left(ssn, 3)"}');
SELECT pipeline.create_pipeline('bad', 'dbz.people_staged', 'dbz.people2', key => ARRAY['id'], ignore_null_updates => ARRAY['nope']);
SELECT pipeline.create_pipeline('bad', 'dbz.people_staged', 'dbz.people2', key => ARRAY['id'], ignore_null_updates => ARRAY['id']);
SELECT pipeline.create_pipeline('bad', 'dbz.people_staged', 'dbz.people2', key => ARRAY['id'], strategy => 'scd2',
                                sequence_by => 'updated', ignore_null_updates => ARRAY['*']);
SELECT pipeline.create_pipeline('bad', 'dbz.people_staged', 'dbz.people2', strategy => 'append', ignore_null_updates => ARRAY['*']);

-- t with on_truncate => 'apply': the target follows a truncate.  The
-- documentation's events, moved to other rows and positions (lsn).  A
-- truncate deletes every row whose latest event came before it; an event
-- after it applies whatever order it arrived in; an event from before it
-- that arrives later is stale, in this batch or any later one.
CREATE TABLE dbz.mirror (id int PRIMARY KEY, first_name text, last_name text, email text);
CREATE TABLE dbz.mirror_events (value jsonb);
SELECT pipeline.create_pipeline('dbz_mirror', 'dbz.mirror_events', 'dbz.mirror', key => ARRAY['id'],
                                format => 'debezium', on_truncate => 'apply') > 0 AS created;
SELECT name, on_truncate FROM pipeline.pipelines WHERE name IN ('dbz_mirror', 'dbz_customers') ORDER BY 1;
CREATE FUNCTION dbz.moved(sample text, id int, lsn bigint) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_set(CASE sample WHEN 'create' THEN jsonb_set(event, '{after,id}', to_jsonb(id))
                                 WHEN 'delete' THEN jsonb_set(event, '{before,id}', to_jsonb(id))
                                 ELSE event END, '{source,lsn}', to_jsonb(lsn))
      FROM dbz.samples WHERE name = sample $$;
INSERT INTO dbz.mirror_events VALUES
    (dbz.moved('create', 1, 100)), (dbz.moved('create', 2, 200)), (dbz.moved('create', 3, 400));
SELECT * FROM dbz.run('dbz_mirror');
-- the truncate at 300 arrives after the create of 3 at 400, and before a
-- create at 250 that came before it
INSERT INTO dbz.mirror_events VALUES
    (dbz.moved('truncate', NULL, 300)), (dbz.moved('create', 4, 350)), (dbz.moved('create', 5, 250));
SELECT * FROM dbz.run('dbz_mirror');
SELECT id FROM dbz.mirror ORDER BY id;
SELECT truncated_at FROM pipeline.pipeline_defs WHERE name = 'dbz_mirror';
SELECT __pl_k0 AS id, __pl_sq AS lsn FROM dbz.mirror_rows ORDER BY 1;
-- later: the update of 1 at 150 is before the truncate, 3 at 390 before
-- its stored create; 4 at 500 and a delete of 3 at 600 apply
INSERT INTO dbz.mirror_events VALUES
    (dbz.moved('create', 1, 150)), (dbz.moved('create', 3, 390)), (dbz.moved('create', 6, 500)),
    (dbz.moved('delete', 3, 600));
SELECT * FROM dbz.run('dbz_mirror');
SELECT id FROM dbz.mirror ORDER BY id;
-- a truncate and its neighbours in one batch; a redelivered older truncate
-- moves nothing back
INSERT INTO dbz.mirror_events VALUES
    (dbz.moved('create', 7, 800)), (dbz.moved('truncate', NULL, 700)), (dbz.moved('create', 8, 650)),
    (dbz.moved('truncate', NULL, 300));
SELECT * FROM dbz.run('dbz_mirror');
SELECT id FROM dbz.mirror ORDER BY id;
SELECT truncated_at FROM pipeline.pipeline_defs WHERE name = 'dbz_mirror';
-- a reader of the target sees the truncate's deletes in its change log
CREATE TABLE dbz.mirror_copy (id int PRIMARY KEY, first_name text);
SELECT pipeline.create_pipeline('dbz_mirror_copy', 'dbz.mirror', 'dbz.mirror_copy', key => ARRAY['id'],
                                columns => '{"id": "id", "first_name": "first_name"}') > 0 AS created;
CALL run_quietly('dbz_mirror_copy');
INSERT INTO dbz.mirror_events VALUES (dbz.moved('create', 9, 950)), (dbz.moved('truncate', NULL, 900));
SELECT * FROM dbz.run('dbz_mirror');
CALL run_quietly('dbz_mirror_copy');
SELECT (SELECT array_agg(id ORDER BY id) FROM dbz.mirror) AS mirror,
       (SELECT array_agg(id ORDER BY id) FROM dbz.mirror_copy) AS copy;
-- on_truncate is refused where it cannot be followed exactly
SELECT pipeline.create_pipeline('bad', 'dbz.mirror_events', 'dbz.mirror', key => ARRAY['id'], on_truncate => 'apply');
SELECT pipeline.create_pipeline('bad', 'dbz.mirror_events', 'dbz.mirror', key => ARRAY['id'],
                                format => 'debezium', on_truncate => 'always');
SELECT pipeline.create_pipeline('bad', 'dbz.mirror_events', 'dbz.mirror', key => ARRAY['id'],
                                format => 'debezium', on_truncate => 'apply', ignore_null_updates => ARRAY['*']);
SELECT pipeline.create_pipeline('bad', 'dbz.mirror_events', 'dbz.mirror', key => ARRAY['id'],
                                format => 'debezium', on_truncate => 'apply', sequence_by => 'id');
CREATE TABLE dbz.mirror_history (id int, first_name text, last_name text, email text, lsn bigint,
                                  __start_at bigint, __end_at bigint);
CREATE UNIQUE INDEX ON dbz.mirror_history (id) WHERE __end_at IS NULL;
CREATE UNIQUE INDEX ON dbz.mirror_history (id, __start_at);
SELECT pipeline.create_pipeline('bad', 'dbz.mirror_events', 'dbz.mirror_history', key => ARRAY['id'],
                                format => 'debezium', on_truncate => 'apply', strategy => 'scd2',
                                sequence_by => 'lsn', columns => '{"lsn": "_lsn"}');

-- Property: with truncates, the target holds each key whose latest event
-- (by lsn) is after the latest truncate and not a delete -- whatever the
-- arrival order and the batches.  Random creates, deletes and truncates
-- at shuffled positions go through merges of batch_size 1, 3 and whole.
CREATE TABLE dbz.tev (arrival serial, op text, id int, lsn bigint);
CREATE TABLE dbz.tev_staged (value jsonb);
CREATE TABLE dbz.tt_1 (id int PRIMARY KEY, first_name text, last_name text, email text);
CREATE TABLE dbz.tt_3 (LIKE dbz.tt_1 INCLUDING ALL);
CREATE TABLE dbz.tt_all (LIKE dbz.tt_1 INCLUDING ALL);
SELECT count(*) AS created FROM (VALUES ('tt_1', 1), ('tt_3', 3), ('tt_all', 100000)) p(t, size),
    LATERAL pipeline.create_pipeline(t, 'dbz.tev_staged', 'dbz.' || t, key => ARRAY['id'], format => 'debezium',
                                     on_truncate => 'apply', batch_size => size);
CREATE TABLE dbz.tdiff (pipeline text PRIMARY KEY, differences bigint DEFAULT 0);
INSERT INTO dbz.tdiff (pipeline) VALUES ('tt_1'), ('tt_3'), ('tt_all');
CREATE PROCEDURE dbz.truncate_rounds(n int) LANGUAGE plpgsql AS $$
DECLARE
    expected int[];
BEGIN
    PERFORM setseed(0.17);
    FOR r IN 1..n LOOP
        INSERT INTO dbz.tev (op, id, lsn)
        SELECT CASE WHEN random() < 0.08 THEN 'truncate' WHEN random() < 0.2 THEN 'delete' ELSE 'create' END,
               1 + (random() * 6)::int, (r * 10 + random() * 40)::bigint * 1000 + g
          FROM generate_series(1, 1 + (random() * 6)::int) g;
        INSERT INTO dbz.tev_staged
        SELECT dbz.moved(op, id, lsn) FROM dbz.tev WHERE arrival > (SELECT count(*) FROM dbz.tev_staged)
         ORDER BY arrival;
        COMMIT;
        CALL run_quietly('tt_1'); CALL run_quietly('tt_3'); CALL run_quietly('tt_all');
        COMMIT;
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO expected FROM (
            SELECT DISTINCT ON (id) id, op FROM dbz.tev
             WHERE op <> 'truncate'
               AND lsn > coalesce((SELECT max(lsn) FROM dbz.tev WHERE op = 'truncate'), 0)
             ORDER BY id, lsn DESC, arrival DESC) latest
         WHERE op = 'create';
        UPDATE dbz.tdiff SET differences = differences + CASE pipeline
            WHEN 'tt_1' THEN (SELECT count(*) FROM (SELECT unnest(expected) EXCEPT SELECT id FROM dbz.tt_1
                                                    UNION ALL (SELECT id FROM dbz.tt_1 EXCEPT SELECT unnest(expected))) d)
            WHEN 'tt_3' THEN (SELECT count(*) FROM (SELECT unnest(expected) EXCEPT SELECT id FROM dbz.tt_3
                                                    UNION ALL (SELECT id FROM dbz.tt_3 EXCEPT SELECT unnest(expected))) d)
            ELSE (SELECT count(*) FROM (SELECT unnest(expected) EXCEPT SELECT id FROM dbz.tt_all
                                        UNION ALL (SELECT id FROM dbz.tt_all EXCEPT SELECT unnest(expected))) d) END;
        COMMIT;
    END LOOP;
END $$;
CALL dbz.truncate_rounds(40);
TABLE dbz.tdiff ORDER BY pipeline;
SELECT count(*) FILTER (WHERE op = 'truncate') > 5 AS some_truncates,
       count(*) FILTER (WHERE op = 'delete') > 10 AS some_deletes FROM dbz.tev;
SELECT sum(rows_stale) > 10 AS some_stale, sum(rows_quarantined) AS quarantined
  FROM pipeline.runs WHERE pipeline = 'tt_all';

-- Property: partial updates do not depend on how events fall into batches.
-- Random events (NULLs, deletes, late and equal sequences) go through four
-- merges of one source: batch_size 1, 3 and whole, with sequence_by in the
-- target, and batch_size 2 with it kept in the row state.  Each target must
-- equal the events applied one by one as they arrived (a stale event,
-- older than the key's latest so far, is discarded whole).
CREATE TABLE dbz.pev (id int, a text, b text, seq int, del boolean);
CREATE TABLE dbz.pt_1 (id int PRIMARY KEY, a text, b text, seq int);
CREATE TABLE dbz.pt_3 (LIKE dbz.pt_1 INCLUDING ALL);
CREATE TABLE dbz.pt_all (LIKE dbz.pt_1 INCLUDING ALL);
CREATE TABLE dbz.pt_kept (id int PRIMARY KEY, a text, b text);
SELECT count(*) AS created FROM (VALUES ('pt_1', 1), ('pt_3', 3), ('pt_all', 100000)) p(t, size),
    LATERAL pipeline.create_pipeline(t, 'dbz.pev', 'dbz.' || t, key => ARRAY['id'], sequence_by => 'seq',
                                     delete_when => 'del', except_columns => ARRAY['del'],
                                     ignore_null_updates => ARRAY['*'], batch_size => size);
SELECT pipeline.create_pipeline('pt_kept', 'dbz.pev', 'dbz.pt_kept', key => ARRAY['id'], sequence_by => 'seq, 0',
                                delete_when => 'del', except_columns => ARRAY['del', 'seq'],
                                ignore_null_updates => ARRAY['a', 'b'], batch_size => 2) > 0 AS created;
CREATE TABLE dbz.pref (id int PRIMARY KEY, a text, b text, seq int, deleted boolean);
CREATE FUNCTION dbz.apply_one_by_one() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e record;
    s dbz.pref;
BEGIN
    FOR e IN SELECT * FROM dbz.pev ORDER BY _xid, _seq LOOP
        SELECT * INTO s FROM dbz.pref WHERE id = e.id;
        CONTINUE WHEN FOUND AND s.seq > e.seq;
        IF e.del THEN
            INSERT INTO dbz.pref VALUES (e.id, NULL, NULL, e.seq, true)
                ON CONFLICT (id) DO UPDATE SET a = NULL, b = NULL, seq = e.seq, deleted = true;
        ELSIF FOUND AND NOT s.deleted THEN
            UPDATE dbz.pref SET a = coalesce(e.a, s.a), b = coalesce(e.b, s.b), seq = e.seq WHERE id = e.id;
        ELSE
            INSERT INTO dbz.pref VALUES (e.id, e.a, e.b, e.seq, false)
                ON CONFLICT (id) DO UPDATE SET a = e.a, b = e.b, seq = e.seq, deleted = false;
        END IF;
    END LOOP;
END $$;
CREATE TABLE dbz.differences (pipeline text PRIMARY KEY, differences bigint DEFAULT 0);
INSERT INTO dbz.differences (pipeline) VALUES ('pt_1'), ('pt_3'), ('pt_all'), ('pt_kept');
CREATE FUNCTION dbz.differ(t regclass, columns text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT %1$s FROM dbz.pref WHERE NOT deleted EXCEPT ALL '
                   'SELECT %1$s FROM %2$s) UNION ALL (SELECT %1$s FROM %2$s EXCEPT ALL '
                   'SELECT %1$s FROM dbz.pref WHERE NOT deleted)) x', columns, t) INTO n;
    RETURN n;
END $$;
CREATE PROCEDURE dbz.rounds(n int) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM setseed(0.42);
    FOR r IN 1..n LOOP
        INSERT INTO dbz.pev
        SELECT 1 + (random() * 3)::int,
               CASE WHEN random() < 0.5 THEN NULL ELSE 'a' || r || '.' || g END,
               CASE WHEN random() < 0.5 THEN NULL ELSE 'b' || r || '.' || g END,
               r * 3 + (random() * 4)::int - 2, random() < 0.25
          FROM generate_series(1, 1 + (random() * 10)::int) g;
        COMMIT;
        CALL run_quietly('pt_1'); CALL run_quietly('pt_3'); CALL run_quietly('pt_all'); CALL run_quietly('pt_kept');
        COMMIT;
        TRUNCATE dbz.pref;
        PERFORM dbz.apply_one_by_one();
        UPDATE dbz.differences SET differences = differences +
            dbz.differ(('dbz.' || pipeline)::regclass, CASE pipeline WHEN 'pt_kept' THEN 'id, a, b' ELSE 'id, a, b, seq' END);
        COMMIT;
    END LOOP;
END $$;
CALL dbz.rounds(40);
TABLE dbz.differences;
SELECT count(*) > 100 AS many_events, count(*) FILTER (WHERE del) > 10 AS some_deletes,
       count(*) FILTER (WHERE a IS NULL) > 50 AS many_nulls FROM dbz.pev;
SELECT sum(rows_stale) > 10 AS some_stale FROM pipeline.runs WHERE pipeline = 'pt_all';

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines
 WHERE name IN ('dbz_customers', 'dbz_strict', 'dbz_typed', 'dbz_flat', 'dbz_sunk', 'dbz quoted', 'by_two',
                'partial', 'people', 'pt_1', 'pt_3', 'pt_all', 'pt_kept', 'dbz_mirror', 'dbz_mirror_copy',
                'tt_1', 'tt_3', 'tt_all');
DROP SCHEMA dbz, "Dbz Land" CASCADE;
