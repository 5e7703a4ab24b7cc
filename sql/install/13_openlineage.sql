/* ----------------------------------------------------------- OpenLineage */

/*
 * OpenLineage (spec 2-0-2): each run is a job run with a RunEvent at its
 * start and at its end.  runId is a random UUID kept with the run
 * (pipeline.run_log.run_uuid).
 */
CREATE FUNCTION pipeline.openlineage_namespace() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
      SELECT coalesce(nullif(current_setting('pipeline.openlineage_namespace', true), ''),
                      'postgres://localhost:' || current_setting('port'))
    $$;
COMMENT ON FUNCTION pipeline.openlineage_namespace() IS
    'the OpenLineage namespace of this server''s datasets and jobs: pipeline.openlineage_namespace, or postgres://localhost:<port>';

CREATE FUNCTION pipeline.openlineage_facet(schema_url text, body jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
      RETURN (
        SELECT jsonb_build_object('_producer', 'urn:postgresql:extension:pipeline:'
                                               || (SELECT e.extversion FROM pg_extension e
                                                    WHERE e.extname = 'pipeline'),
                                  '_schemaURL', schema_url) || body);
    END
    $$;
COMMENT ON FUNCTION pipeline.openlineage_facet(text, jsonb) IS
    'internal: an OpenLineage facet: the body with _producer and _schemaURL';

CREATE FUNCTION pipeline.openlineage_time(t timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
COMMENT ON FUNCTION pipeline.openlineage_time(timestamptz) IS
    'internal: a time in ISO 8601, UTC';

/* A dataset as the specification names PostgreSQL's, with its schema facet. */
CREATE FUNCTION pipeline.openlineage_dataset(relation regclass) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
      RETURN (
        SELECT jsonb_build_object(
                 'namespace', pipeline.openlineage_namespace(),
                 'name', current_database() || '.' || n.nspname || '.' || c.relname,
                 'facets', jsonb_build_object('schema', pipeline.openlineage_facet(
                     'https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
                     jsonb_build_object('fields', coalesce(
                         (SELECT jsonb_agg(jsonb_build_object('name', f.attname,
                                                              'type', format_type(f.atttypid, f.atttypmod),
                                                              'ordinal_position', f.position)
                                           ORDER BY f.position)
                            FROM (SELECT a.attname, a.atttypid, a.atttypmod,
                                         row_number() OVER (ORDER BY a.attnum) AS position
                                    FROM pg_attribute a
                                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                                     AND a.attname NOT IN ('_xid', '_seq')) f), '[]')))))
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = relation);
    END
    $$;
COMMENT ON FUNCTION pipeline.openlineage_dataset(regclass) IS
    'internal: an OpenLineage dataset (namespace postgres://host:port, name database.schema.table) with its schema facet';

/* The columnLineage facet of a pipeline's target, from its stored edges. */
CREATE FUNCTION pipeline.openlineage_column_lineage(pipeline_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
      RETURN (
        WITH f AS (
            SELECT e.target_column, e.source, e.source_column,
                   jsonb_agg(jsonb_build_object('type', e.lineage_type, 'subtype', e.subtype,
                                                'description', e.origin || ': ' || e.transformation)
                             ORDER BY e.lineage_type, e.subtype, e.origin) AS transformations
              FROM pipeline.lineage_edges e
             WHERE e.pipeline_id = $1 AND e.source_column IS NOT NULL
               AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = e.source)
             GROUP BY e.target_column, e.source, e.source_column),
        i AS (
            SELECT f.target_column,
                   jsonb_agg(jsonb_build_object('namespace', d.ds->>'namespace', 'name', d.ds->>'name',
                                                'field', f.source_column,
                                                'transformations', f.transformations)
                             ORDER BY d.ds->>'name', f.source_column) AS input_fields
              -- the dataset's name only: not its schema facet, built and dropped
              FROM f, LATERAL (SELECT jsonb_build_object('namespace', pipeline.openlineage_namespace(),
                                                         'name', current_database() || '.' || n.nspname
                                                                 || '.' || c.relname) AS ds
                                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE c.oid = f.source) d
             GROUP BY f.target_column)
        SELECT pipeline.openlineage_facet(
                 'https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet',
                 jsonb_build_object(
                   'fields', coalesce((SELECT jsonb_object_agg(i.target_column,
                                                               jsonb_build_object('inputFields', i.input_fields))
                                         FROM i WHERE i.target_column IS NOT NULL), '{}'),
                   'dataset', coalesce((SELECT i.input_fields FROM i WHERE i.target_column IS NULL), '[]'))));
    END
    $$;
COMMENT ON FUNCTION pipeline.openlineage_column_lineage(bigint) IS
    'internal: the OpenLineage columnLineage facet of a pipeline''s target (fields per column; dataset: the filter, delete_when and sequence_by)';

CREATE FUNCTION pipeline.openlineage_event(run_id bigint, event_type text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
      r record;
      d record;
      kind text;
      terminal text;
      ns text := pipeline.openlineage_namespace();
      run_facets jsonb := '{}';
      source_relation regclass;
      inputs jsonb;
      output jsonb;
      assertions jsonb;
      parent record;
    BEGIN
      SELECT l.* INTO r FROM pipeline.run_log l WHERE l.run_id = $1;
      IF NOT FOUND THEN
          RAISE EXCEPTION 'run % does not exist', $1
                USING ERRCODE = 'undefined_object',
                      DETAIL = 'There is no such run, or it is a run of a pipeline the current role may not manage.',
                      HINT = 'Find runs in pipeline.runs.';
      END IF;
      SELECT p.* INTO d FROM pipeline.pipeline_defs p WHERE p.id = r.pipeline_id;
      terminal := CASE r.status WHEN 'succeeded' THEN 'COMPLETE' WHEN 'failed' THEN 'FAIL'
                                WHEN 'cancelled' THEN 'ABORT' END;
      kind := upper(coalesce($2, coalesce(terminal, 'START')));
      IF kind NOT IN ('START', 'COMPLETE', 'FAIL', 'ABORT') OR (kind <> 'START' AND kind IS DISTINCT FROM terminal) THEN
          RAISE EXCEPTION 'run % has no % event', $1, kind
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The run''s status is %s; it has a START event%s.', r.status,
                                      coalesce(' and a ' || terminal || ' event', '')),
                      HINT = 'Pass START, the run''s end event (COMPLETE, FAIL or ABORT), or NULL for its latest.';
      END IF;

      IF kind = 'FAIL' THEN
          run_facets := run_facets || jsonb_build_object('errorMessage', pipeline.openlineage_facet(
              'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
              jsonb_build_object('message', coalesce(r.error_message, 'failed'),
                                 'programmingLanguage', 'SQL')
              || CASE WHEN r.error_sqlstate IS NOT NULL
                      THEN jsonb_build_object('stackTrace', 'SQLSTATE ' || r.error_sqlstate) ELSE '{}' END));
      END IF;
      /* in a DAG: the upstream run whose changes this run went on from */
      SELECT u.name, l.run_uuid INTO parent
        FROM pipeline.pipeline_defs u JOIN pipeline.run_log l ON l.pipeline_id = u.id
       WHERE u.change_log = d.source AND l.status = 'succeeded' AND l.finished_at <= r.started_at
       ORDER BY l.finished_at DESC LIMIT 1;
      IF FOUND THEN
          run_facets := run_facets || jsonb_build_object('parent', pipeline.openlineage_facet(
              'https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet',
              jsonb_build_object('run', jsonb_build_object('runId', parent.run_uuid),
                                 'job', jsonb_build_object('namespace', ns,
                                                           'name', current_database() || '.' || parent.name))));
      END IF;

      SELECT e.source INTO source_relation FROM pipeline.lineage_edges e
       WHERE e.pipeline_id = d.id AND e.origin = 'pipeline' AND e.lineage_type = 'DIRECT'
         AND e.source = coalesce((SELECT u.target FROM pipeline.pipeline_defs u
                                   WHERE u.change_log = d.source LIMIT 1),
                                 (SELECT c.relation FROM pipeline.captures c WHERE c.change_log = d.source),
                                 d.source);
      IF kind <> 'START' THEN
          SELECT jsonb_agg(jsonb_build_object(
                   'assertion', c.kind, 'success', cr.status = 'PASS',
                   'severity', CASE WHEN c.action = 'fail' OR cr.status = 'FAIL' THEN 'error' ELSE 'warn' END,
                   'name', cr.check_name,
                   'actual', cr.failing::text || ' of ' || cr.total::text || ' failing')
                   || CASE WHEN c.column_name IS NOT NULL THEN jsonb_build_object('column', c.column_name)
                           ELSE '{}' END
                   || CASE WHEN c.expression IS NOT NULL
                           THEN jsonb_build_object('content', c.expression, 'contentType', 'sql') ELSE '{}' END
                   ORDER BY cr.check_name)
            INTO assertions
            FROM pipeline.check_results cr
            LEFT JOIN pipeline.checks c ON c.id = cr.check_id
           WHERE cr.run_id = r.run_id;
      END IF;
      SELECT jsonb_agg(pipeline.openlineage_dataset(x.source)
                       || CASE WHEN x.source = source_relation AND assertions IS NOT NULL
                               THEN jsonb_build_object('inputFacets', jsonb_build_object(
                                      'dataQualityAssertions', pipeline.openlineage_facet(
                                        'https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet',
                                        jsonb_build_object('assertions', assertions))))
                               ELSE '{}' END
                       ORDER BY x.source = source_relation DESC, x.source::text)
        INTO inputs
        FROM (SELECT DISTINCT e.source FROM pipeline.lineage_edges e
               WHERE e.pipeline_id = d.id AND e.origin = 'pipeline'
                 AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = e.source)) x;

      output := pipeline.openlineage_dataset(d.target);
      output := jsonb_set(output, '{facets,columnLineage}', pipeline.openlineage_column_lineage(d.id));
      IF kind <> 'START' THEN
          output := output || jsonb_build_object('outputFacets', jsonb_build_object(
              'outputStatistics', pipeline.openlineage_facet(
                'https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet',
                jsonb_build_object('rowCount', r.rows_inserted + r.rows_updated + r.rows_deleted))));
      END IF;

      RETURN jsonb_build_object(
        'eventType', kind,
        'eventTime', pipeline.openlineage_time(CASE WHEN kind = 'START' THEN r.started_at
                                                    ELSE coalesce(r.finished_at, r.started_at) END),
        'producer', 'urn:postgresql:extension:pipeline:'
                    || (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'pipeline'),
        'schemaURL', 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent',
        'run', jsonb_build_object('runId', r.run_uuid, 'facets', run_facets),
        'job', jsonb_build_object(
                 'namespace', ns,
                 'name', current_database() || '.' || d.name,
                 'facets', jsonb_build_object('jobType', pipeline.openlineage_facet(
                     'https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
                     jsonb_build_object('processingType', 'BATCH', 'integration', 'PIPELINE',
                                        'jobType', 'JOB')))),
        'inputs', coalesce(inputs, '[]'),
        'outputs', jsonb_build_array(output));
    END
    $$;
COMMENT ON FUNCTION pipeline.openlineage_event(bigint, text) IS
    'the OpenLineage RunEvent (spec 2-0-2) of a run as jsonb: START, or its end (COMPLETE, FAIL, ABORT; NULL: the latest), with schema, columnLineage, outputStatistics, dataQualityAssertions, errorMessage and parent facets';

/*
 * The outbox: every run's events, in the order they happened, for a
 * shipper outside the database to read and acknowledge.  A trigger on the
 * run log records, in the run's own transaction, only the facts of each
 * event (which run, which event, when); the event's JSON is built from the
 * run log and the catalog when the outbox is read, so that a run does not
 * pay for it.
 */
CREATE TABLE pipeline.openlineage_run_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id     bigint NOT NULL,    -- the run's: dropping a pipeline drops its runs
    run_id          bigint NOT NULL
                    REFERENCES pipeline.run_log (run_id) ON DELETE CASCADE,
    event_type      text NOT NULL CHECK (event_type IN ('START', 'COMPLETE', 'FAIL', 'ABORT')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    acknowledged_at timestamptz,
    delivery_error  text,               -- why the shipper gave it up (acknowledged)
    UNIQUE (run_id, event_type)
);
CREATE INDEX ON pipeline.openlineage_run_events (id) WHERE acknowledged_at IS NULL;
CREATE INDEX ON pipeline.openlineage_run_events (created_at);
COMMENT ON TABLE pipeline.openlineage_run_events IS
    'the OpenLineage events of every run, in order, as facts (run and event type), kept pipeline.openlineage_retention once acknowledged and pipeline.openlineage_unshipped_retention until then; pipeline.openlineage_outbox adds each event''s JSON';
SELECT pg_catalog.pg_extension_config_dump('pipeline.openlineage_run_events', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.openlineage_run_events_id_seq', '');
ALTER TABLE pipeline.openlineage_run_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.openlineage_run_events
    USING (pipeline.may_manage(pipeline_id));
GRANT SELECT ON pipeline.openlineage_run_events TO PUBLIC;
GRANT UPDATE (acknowledged_at) ON pipeline.openlineage_run_events TO PUBLIC;

CREATE VIEW pipeline.openlineage_outbox WITH (security_invoker = true) AS
    SELECT e.id, e.pipeline_id, e.run_id, e.event_type,
           pipeline.openlineage_event(e.run_id, e.event_type) AS event,
           e.created_at, e.acknowledged_at, e.delivery_error
      FROM pipeline.openlineage_run_events e;
COMMENT ON VIEW pipeline.openlineage_outbox IS
    'OpenLineage events of every run, in order, each built when read; a shipper (the transport''s, or your own) reads the unacknowledged ones and acknowledges them (openlineage_acknowledge); delivery_error says why the transport gave one up';
GRANT SELECT ON pipeline.openlineage_outbox TO PUBLIC;
GRANT UPDATE (acknowledged_at) ON pipeline.openlineage_outbox TO PUBLIC;

CREATE FUNCTION pipeline.openlineage_on_run() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pipeline_openlineage_on_run'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.openlineage_on_run() IS
    'trigger: records the facts of a run''s OpenLineage events (its start and end) in the outbox, and applies its retention; fires only on pipeline.run_log';
REVOKE ALL ON FUNCTION pipeline.openlineage_on_run() FROM PUBLIC;
CREATE TRIGGER openlineage_on_run_start AFTER INSERT ON pipeline.run_log
    FOR EACH ROW EXECUTE FUNCTION pipeline.openlineage_on_run();
CREATE TRIGGER openlineage_on_run_end AFTER UPDATE OF status ON pipeline.run_log
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION pipeline.openlineage_on_run();

/* Only the events read are built: the oldest max_events first. */
CREATE FUNCTION pipeline.openlineage_pending(max_events integer DEFAULT 100)
    RETURNS TABLE (id bigint, event jsonb)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
      SELECT o.id, pipeline.openlineage_event(o.run_id, o.event_type)
        FROM (SELECT e.id, e.run_id, e.event_type FROM pipeline.openlineage_run_events e
               WHERE e.acknowledged_at IS NULL ORDER BY e.id LIMIT max_events) o
       ORDER BY o.id
    $$;
COMMENT ON FUNCTION pipeline.openlineage_pending(integer) IS
    'the oldest events not acknowledged yet, in order (of the pipelines the current role may manage)';

CREATE FUNCTION pipeline.openlineage_acknowledge(ids bigint[]) RETURNS bigint
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
      WITH a AS (
          UPDATE pipeline.openlineage_run_events o SET acknowledged_at = clock_timestamp()
           WHERE o.id = ANY (ids) AND o.acknowledged_at IS NULL
          RETURNING 1)
      SELECT count(*) FROM a
    $$;
COMMENT ON FUNCTION pipeline.openlineage_acknowledge(bigint[]) IS
    'marks events as shipped (those of pipelines the current role may manage); returns how many';
