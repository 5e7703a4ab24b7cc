/* ---------------------------------------------------------------- views */

CREATE VIEW pipeline.pipelines WITH (security_invoker = true) AS
SELECT d.name, d.owner, d.source, d.target, d.change_log, d.strategy, d.key, d.sequence_by,
       d.track_history, d.delete_when, d.columns, d.filter, d.on_schema_change, d.batch_size,
       d.schedule, d.tombstone_retention, d.statement_timeout, d.paused, d.suspended_at,
       c.consumed, c.updated_at AS cursor_updated_at,
       d.created_at, d.altered_at, d.id, d.source_key, d.group_filter,
       (SELECT jsonb_agg(jsonb_build_object('table', j.dimension::text, 'as', j.alias,
                                            'type', j.kind, 'on', o.pairs) ORDER BY j.position)
          FROM pipeline.pipeline_joins j
          CROSS JOIN LATERAL (SELECT jsonb_object_agg(u.s, u.d) AS pairs
                                FROM unnest(j.source_columns, j.dimension_columns) u(s, d)) o
         WHERE j.pipeline_id = d.id) AS joins,
       d.format, d.ignore_null_updates, d.hard_deletes, d.max_delete_share, d.on_truncate,
       d.extract_id
  FROM pipeline.pipeline_defs d
  LEFT JOIN pipeline.cursors c ON c.pipeline_id = d.id;
COMMENT ON VIEW pipeline.pipelines IS
    'the definitions of the pipelines the current role may manage (pipeline.status shows what they are doing)';

CREATE VIEW pipeline.dependencies WITH (security_invoker = true) AS
SELECT u.name AS upstream, u.target AS relation, r.source AS change_log,
       r.name AS downstream, r.target AS downstream_target,
       'pipeline' AS upstream_kind, 'pipeline' AS downstream_kind
  FROM pipeline.pipeline_defs r
  JOIN pipeline.pipeline_defs u ON u.change_log = r.source
UNION ALL
SELECT u.name, u.target, j.change_log, r.name, r.target, 'pipeline', 'pipeline'
  FROM pipeline.pipeline_joins j
  JOIN pipeline.pipeline_defs r ON r.id = j.pipeline_id
  JOIN pipeline.pipeline_defs u ON u.change_log = j.change_log
UNION ALL
SELECT coalesce(p.name, us.name), p.target, NULL, s.name, NULL,
       CASE WHEN su.upstream_pipeline IS NULL THEN 'step' ELSE 'pipeline' END, 'step'
  FROM pipeline.step_upstreams su
  JOIN pipeline.steps s ON s.id = su.step_id
  LEFT JOIN pipeline.pipeline_defs p ON p.id = su.upstream_pipeline
  LEFT JOIN pipeline.steps us ON us.id = su.upstream_step;
COMMENT ON VIEW pipeline.dependencies IS
    'the DAG: one row per pipeline reading another pipeline''s target (through the target''s change log), as its source or as a dimension it joins, and per step running after a pipeline or a step';

CREATE VIEW pipeline.runs WITH (security_invoker = true) AS
SELECT l.run_id, d.name AS pipeline, l.kind, l.status, l.started_at, l.finished_at,
       e.elapsed AS duration,
       l.rows_pending, l.rows_read, l.rows_inserted, l.rows_updated, l.rows_deleted,
       l.rows_stale, l.rows_filtered, l.rows_quarantined, l.rows_dropped, l.batches,
       CASE WHEN l.rows_pending > 0
            THEN round(100.0 * l.rows_read / l.rows_pending, 1) END AS progress_pct,
       CASE WHEN e.secs > 0 THEN round((l.rows_read / e.secs)::numeric, 1) END AS rows_per_second,
       CASE WHEN l.status = 'running' AND l.rows_read > 0
            THEN e.elapsed * (greatest(l.rows_pending - l.rows_read, 0)::float8 / l.rows_read)
       END AS estimated_remaining,
       l.error_sqlstate, l.error_message, l.backend_pid, l.run_as,
       l.replayed_from_run, l.replayed_to_run, l.rows_unchanged
  FROM pipeline.run_log l
  JOIN pipeline.pipeline_defs d ON d.id = l.pipeline_id,
  LATERAL (SELECT coalesce(l.finished_at, clock_timestamp()) - l.started_at AS elapsed) e0,
  LATERAL (SELECT e0.elapsed, extract(epoch FROM e0.elapsed)::float8 AS secs) e;
COMMENT ON VIEW pipeline.runs IS
    'run history (kind run, requeue or replay); a running run''s row is updated after every committed batch (rows_read of rows_pending, estimated_remaining at the rate so far)';

CREATE VIEW pipeline.quarantine WITH (security_invoker = true) AS
SELECT q.id,
       (SELECT d.name FROM pipeline.pipeline_defs d WHERE d.id = q.pipeline_id) AS pipeline,
       q.run_id, q.reason, q.sqlstate, q.raw_row, q.source_xid, q.source_seq, q.quarantined_at
  FROM pipeline.quarantine_log q
 WHERE q.requeued_at IS NULL;
COMMENT ON VIEW pipeline.quarantine IS
    'rows waiting in quarantine; UPDATE raw_row to fix one, then requeue_quarantine';
CREATE VIEW pipeline.step_runs WITH (security_invoker = true) AS
SELECT r.run_id, s.name AS step, r.trigger, r.status, r.started_at, r.finished_at,
       coalesce(r.finished_at, clock_timestamp()) - r.started_at AS duration,
       r.rows_affected, r.error_sqlstate, r.error_message, r.backend_pid, r.run_as
  FROM pipeline.step_run_log r
  JOIN pipeline.steps s ON s.id = r.step_id;
COMMENT ON VIEW pipeline.step_runs IS
    'history of the runs of the steps the current role may manage: what started each (manual: run_step), status, rows its command affected, error; a skipped run says why in error_message';

GRANT SELECT ON pipeline.pipelines, pipeline.dependencies, pipeline.runs, pipeline.quarantine,
    pipeline.step_runs TO PUBLIC;
GRANT UPDATE (raw_row) ON pipeline.quarantine TO PUBLIC;
