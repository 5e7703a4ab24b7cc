-- OpenLineage: the RunEvent of a run (START, COMPLETE, FAIL) with its
-- facets, the outbox filled by every run in order, acknowledgement,
-- retention, and an event that cannot be built never failing a run.
-- (test/t/007_openlineage.pl validates the events against the JSON Schemas.)
CALL number_ids_from(210000);
SET client_min_messages = warning;
SET pipeline.openlineage_namespace = 'postgres://db.example.com:5432';
CREATE SCHEMA ol;
SET search_path = ol, public;
CREATE TABLE raw_orders (id int, amount text, status text, op text);
CREATE TABLE "Dim Status" (status text, label text);
SELECT pipeline.create_pipeline('ol_silver', 'raw_orders', 'silver_orders', key => '{id}',
    delete_when => $$op = 'd'$$,
    columns => $${"amount": "amount::numeric", "op": null,
                  "label": "(SELECT d.label FROM ol.\"Dim Status\" d WHERE d.status = s.status)"}$$) > 0 AS created;
SELECT pipeline.add_check('ol_silver', 'positive', 'amount > 0', action => 'quarantine') > 0 AS added;
SELECT pipeline.add_check('ol_silver', 'has_status', kind => 'not_null', column_name => 'status',
                          action => 'warn') > 0 AS added;
SELECT pipeline.create_pipeline('ol_gold', 'silver_orders', 'gold_orders', key => '{id}') > 0 AS created;

INSERT INTO raw_orders VALUES (1, '10', 'new', NULL), (2, '-1', 'new', NULL), (3, '5', NULL, NULL);
CALL pipeline.run('ol_silver');
CALL pipeline.run('ol_gold');

-- The outbox: each run's START then its end, in order.
SELECT o.id, o.run_id, d.name AS pipeline, o.event_type, o.event->>'eventType' AS event_type_in_event,
       o.acknowledged_at IS NULL AS pending
  FROM pipeline.openlineage_outbox o JOIN pipeline.pipeline_defs d ON d.id = o.pipeline_id ORDER BY o.id;

-- The COMPLETE event of the silver run, with run ids and times masked.
SELECT jsonb_pretty(jsonb_set(jsonb_set(e, '{run,runId}', '"<runId>"'), '{eventTime}', '"<time>"'))
  FROM pipeline.openlineage_outbox o, LATERAL (SELECT o.event AS e) x
 WHERE o.run_id = 210001 AND o.event_type = 'COMPLETE';
-- runId is a UUID, the same in every event of a run, and differs between runs;
-- eventTime is the run's start or end, in UTC
SELECT o.run_id, o.event_type, (o.event#>>'{run,runId}')::uuid = l.run_uuid AS run_uuid,
       (o.event->>'eventTime')::timestamptz
         = CASE o.event_type WHEN 'START' THEN l.started_at ELSE l.finished_at END AS event_time
  FROM pipeline.openlineage_outbox o JOIN pipeline.run_log l USING (run_id) ORDER BY o.id;
SELECT count(DISTINCT event#>>'{run,runId}') AS run_ids FROM pipeline.openlineage_outbox;
-- the gold run reads silver through its change log: silver is its input,
-- and the silver run it went on from is its parent
SELECT event->'inputs'->0->>'name' AS input,
       event#>'{run,facets,parent,job}' AS parent_job,
       event#>>'{run,facets,parent,run,runId}' = (SELECT run_uuid::text FROM pipeline.run_log
                                                   WHERE run_id = 210001) AS parent_run
  FROM pipeline.openlineage_outbox WHERE run_id = 210002 AND event_type = 'COMPLETE';
-- START carries no statistics and no assertions
SELECT event->'outputs'->0 ? 'outputFacets' AS statistics, event->'inputs'->0 ? 'inputFacets' AS assertions
  FROM pipeline.openlineage_outbox WHERE run_id = 210001 AND event_type = 'START';

-- A failed run: FAIL with the error message.
SELECT pipeline.add_check('ol_silver', 'few_bad', 'amount < 100', error_if => '> 0') > 0 AS added;
INSERT INTO raw_orders VALUES (4, '500', 'new', NULL);
CALL pipeline.run('ol_silver');
SELECT event_type, (event#>'{run,facets,errorMessage}') - '_producer' AS error,
       event#>'{outputs,0,outputFacets,outputStatistics,rowCount}' AS row_count,
       jsonb_path_query_array(event, '$.inputs[0].inputFacets.dataQualityAssertions.assertions[*].success') AS successes
  FROM pipeline.openlineage_outbox WHERE run_id = 210003 ORDER BY id;
SELECT pipeline.openlineage_event(210003)->>'eventType' AS latest,
       pipeline.openlineage_event(210003, 'start')->>'eventType' AS start;

-- Acknowledgement: a shipper reads pending events in order and acknowledges
-- them by id; acknowledging twice counts once.
SELECT id FROM pipeline.openlineage_pending(3);
SELECT pipeline.openlineage_acknowledge(ARRAY(SELECT id FROM pipeline.openlineage_pending(3)));
SELECT pipeline.openlineage_acknowledge(ARRAY[210001, 210002]) AS again;
SELECT id FROM pipeline.openlineage_pending();

-- Retention, applied when a run records new events: acknowledged events
-- older than pipeline.openlineage_retention (7 days) go; those nobody
-- acknowledged stay until pipeline.openlineage_unshipped_retention (30
-- days), and the server log counts them when they go.
UPDATE pipeline.openlineage_outbox SET created_at = created_at - interval '8 days' WHERE run_id IN (210001, 210002);
UPDATE pipeline.openlineage_outbox SET created_at = created_at - interval '31 days' WHERE run_id = 210003;
SELECT run_id, event_type, acknowledged_at IS NOT NULL AS acknowledged FROM pipeline.openlineage_outbox
 WHERE run_id <= 210003 ORDER BY id;
CALL pipeline.run('ol_gold');
SELECT run_id, event_type, acknowledged_at IS NOT NULL AS acknowledged FROM pipeline.openlineage_outbox
 WHERE run_id <= 210003 ORDER BY id;

-- A run records only the facts of its events; their JSON is built when the
-- outbox is read.  An event that cannot be built does not concern the run:
-- reading it fails, loudly, until the cause is fixed; then it is there.
ALTER FUNCTION pipeline.openlineage_column_lineage(bigint) RENAME TO broken;
SET client_min_messages = warning;
CALL pipeline.run('ol_gold');
\set VERBOSITY terse
SELECT count(event) FROM pipeline.openlineage_outbox WHERE run_id = 210005;
\set VERBOSITY default
ALTER FUNCTION pipeline.broken(bigint) RENAME TO openlineage_column_lineage;
SELECT run_id, status FROM pipeline.runs WHERE run_id = 210005;
SELECT count(*) AS events_of_that_run FROM pipeline.openlineage_outbox WHERE run_id = 210005;

-- Turned off, runs record no events.
SET pipeline.openlineage_outbox = off;
CALL pipeline.run('ol_gold');
SELECT count(*) AS events_of_that_run FROM pipeline.openlineage_outbox WHERE run_id = 210006;
RESET pipeline.openlineage_outbox;

-- Another role sees neither the events nor the runs of pipelines it does
-- not manage, and cannot acknowledge them.
CREATE ROLE ol_other;
SET ROLE ol_other;
SELECT count(*) AS visible FROM pipeline.openlineage_outbox;
SELECT pipeline.openlineage_acknowledge(ARRAY[210003]) AS acknowledged;
\set VERBOSITY terse
SELECT pipeline.openlineage_event(210001);
\set VERBOSITY default
RESET ROLE;

-- Every event above, and every event openlineage_event builds for these
-- runs, is valid against the OpenLineage JSON Schemas (test/openlineage).
CREATE TEMP TABLE events AS
SELECT event FROM pipeline.openlineage_outbox
UNION ALL
SELECT pipeline.openlineage_event(l.run_id, k)
  FROM pipeline.run_log l
  JOIN pipeline.pipeline_defs d ON d.id = l.pipeline_id AND d.name LIKE 'ol\_%',
       LATERAL (VALUES ('START'), (NULL)) v(k);
SELECT count(*) AS events FROM events;
SELECT event FROM events \g (tuples_only=on format=unaligned) openlineage_events.jsonl
\! NODE_PATH=$(npm root -g 2>/dev/null) node test/openlineage/validate.js openlineage_events.jsonl 2>&1; rm -f openlineage_events.jsonl

-- Bad input.
SELECT pipeline.openlineage_event(1);
SELECT pipeline.openlineage_event(210001, 'FAIL');
SELECT pipeline.openlineage_event(210001, 'RUNNING');

DROP ROLE ol_other;
SELECT pipeline.drop_pipeline('ol_gold');
SELECT pipeline.drop_pipeline('ol_silver');
SELECT count(*) AS outbox_rows_left FROM pipeline.openlineage_outbox;
DROP SCHEMA ol CASCADE;
