/* ------------------------------------------------------ operator's view */

CREATE FUNCTION pipeline.backlog(
    pipeline_name       text,
    exact               boolean DEFAULT false,
    quiet               boolean DEFAULT false,
    OUT pending_rows    bigint,
    OUT pending_exact   boolean,
    OUT oldest_pending_at timestamptz)
    RETURNS record
    AS 'MODULE_PATHNAME', 'pipeline_backlog'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.backlog(text, boolean, boolean) IS
    'staged rows waiting for a pipeline (counted up to 10000, estimated beyond, all counted with exact => true) and since when; quiet => true gives NULLs instead of an error';

/* Whether a run of the pipeline holds its run lock (see run.c) right now. */
CREATE FUNCTION pipeline.is_running(pipeline_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
      SELECT EXISTS (SELECT 1 FROM pg_locks k
                      WHERE k.locktype = 'advisory' AND k.granted
                        AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        AND k.classid = (pipeline_id >> 32)::oid
                        AND k.objid = (pipeline_id & 4294967295)::oid
                        AND k.objsubid = 20553)
    $$;
COMMENT ON FUNCTION pipeline.is_running(bigint) IS
    'true while a session runs the pipeline (it holds the pipeline''s run lock)';

/*
 * pipeline.status reads pg_locks once for every pipeline (is_running would
 * read it once per pipeline, and the lock table grows as backlog() opens
 * each source); the history is read by index per pipeline, a running run's
 * row only for a pipeline that runs (OFFSET 0 keeps the planner from
 * joining the whole of pipeline.runs instead).
 */
CREATE VIEW pipeline.status WITH (security_invoker = true) AS
WITH running AS MATERIALIZED (
    SELECT DISTINCT (k.classid::int8 << 32) | k.objid::int8 AS pipeline_id
      FROM pg_locks k
     WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 20553
       AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT d.name AS pipeline,
       CASE WHEN d.paused THEN 'paused'
            WHEN d.suspended_at IS NOT NULL THEN 'suspended'
            WHEN rn.pipeline_id IS NOT NULL THEN 'running'
            WHEN ss.waiting_since IS NOT NULL THEN 'waiting for a worker'
            WHEN coalesce(t.consecutive_failures, 0) > 0 AND d.schedule <> 'manual' THEN 'retrying'
            WHEN coalesce(t.consecutive_failures, 0) > 0 THEN 'failing'
            ELSE 'idle' END AS state,
       b.pending_rows, b.pending_exact, b.oldest_pending_at,
       CASE WHEN b.pending_rows = 0 THEN interval '0'
            ELSE date_trunc('milliseconds', clock_timestamp() - b.oldest_pending_at) END AS lag,
       cur.run_id AS running_run_id, cur.progress_pct, cur.duration AS running_for,
       date_trunc('milliseconds', cur.estimated_remaining) AS estimated_remaining,
       last.run_id AS last_run_id, last.status AS last_status, last.finished_at AS last_run_at,
       t.last_success_at, t.last_failure_at AS last_error_at,
       CASE WHEN d.archived_unconsumed IS NULL THEN err.error_sqlstate END AS last_error_sqlstate,
       coalesce(d.archived_unconsumed, err.error_message) AS last_error,
       coalesce(t.consecutive_failures, 0) AS consecutive_failures,
       thr.rows_per_second,
       d.schedule,
       CASE WHEN NOT d.paused AND d.suspended_at IS NULL THEN ss.next_run_at END AS next_run_at,
       CASE WHEN d.schedule NOT IN ('manual', 'continuous') THEN coalesce(ss.empty_ticks, 0) END AS empty_ticks,
       CASE WHEN d.schedule NOT IN ('manual', 'continuous') THEN ss.last_empty_tick_at END AS last_empty_tick_at,
       d.suspended_at, d.id
  FROM pipeline.pipeline_defs d
  LEFT JOIN running rn ON rn.pipeline_id = d.id
  LEFT JOIN pipeline.run_totals t ON t.pipeline_id = d.id
  LEFT JOIN pipeline.schedule_state ss ON ss.pipeline_id = d.id AND d.schedule <> 'manual'
  LEFT JOIN LATERAL pipeline.backlog(d.name, quiet => true) b ON true
  LEFT JOIN LATERAL (SELECT r.* FROM pipeline.runs r
                      WHERE rn.pipeline_id IS NOT NULL
                        AND r.run_id = (SELECT l.run_id FROM pipeline.run_log l
                                         WHERE l.pipeline_id = d.id AND l.status = 'running'
                                         ORDER BY l.run_id DESC LIMIT 1)
                     OFFSET 0) cur ON true
  LEFT JOIN LATERAL (SELECT l.* FROM pipeline.run_log l
                      WHERE l.pipeline_id = d.id AND l.status <> 'running'
                      ORDER BY l.run_id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT l.* FROM pipeline.run_log l
                      WHERE l.pipeline_id = d.id AND l.status = 'failed'
                      ORDER BY l.run_id DESC LIMIT 1) err ON true
  LEFT JOIN LATERAL (SELECT round((sum(l.rows_read)
                                   / nullif(sum(extract(epoch FROM l.finished_at - l.started_at)), 0))::numeric,
                                  1) AS rows_per_second
                       FROM (SELECT * FROM pipeline.run_log l
                              WHERE l.pipeline_id = d.id AND l.status = 'succeeded' AND l.rows_read > 0
                              ORDER BY l.run_id DESC LIMIT 10) l) thr ON true;
COMMENT ON VIEW pipeline.status IS
    'one row per pipeline: state (paused, suspended, running, waiting for a worker, retrying, failing, idle), backlog and lag, the running run''s progress, last run, last success and error, failures in a row, throughput, schedule and its empty ticks';

/*
 * pipeline.step_status: what each step is doing, as pipeline.status for
 * pipelines.  A step runs while a session holds its run lock (step_run.c,
 * class 0x5354 = 21332).
 */
CREATE VIEW pipeline.step_status WITH (security_invoker = true) AS
WITH running AS MATERIALIZED (
    SELECT DISTINCT (k.classid::int8 << 32) | k.objid::int8 AS step_id
      FROM pg_locks k
     WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 21332
       AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT s.name AS step,
       CASE WHEN s.paused THEN 'paused'
            WHEN s.suspended_at IS NOT NULL THEN 'suspended'
            WHEN rn.step_id IS NOT NULL THEN 'running'
            WHEN st.waiting_since IS NOT NULL THEN 'waiting for a worker'
            WHEN coalesce(st.consecutive_failures, 0) > 0 AND s.schedule <> 'manual' THEN 'retrying'
            WHEN coalesce(st.consecutive_failures, 0) > 0 THEN 'failing'
            ELSE 'idle' END AS state,
       s.schedule,
       last.run_id AS last_run_id, last.trigger AS last_trigger, last.status AS last_status,
       last.finished_at AS last_run_at,
       st.last_success_at, st.last_failure_at AS last_error_at,
       err.error_sqlstate AS last_error_sqlstate, err.error_message AS last_error,
       coalesce(st.consecutive_failures, 0) AS consecutive_failures,
       coalesce(st.runs_succeeded, 0) AS runs_succeeded,
       coalesce(st.runs_failed, 0) AS runs_failed,
       CASE WHEN NOT s.paused AND s.suspended_at IS NULL AND s.schedule <> 'manual'
            THEN st.next_run_at END AS next_run_at,
       s.suspended_at, s.id
  FROM pipeline.steps s
  LEFT JOIN running rn ON rn.step_id = s.id
  LEFT JOIN pipeline.step_state st ON st.step_id = s.id
  LEFT JOIN LATERAL (SELECT l.* FROM pipeline.step_run_log l
                      WHERE l.step_id = s.id AND l.status <> 'running'
                      ORDER BY l.run_id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT l.* FROM pipeline.step_run_log l
                      WHERE l.step_id = s.id AND l.status = 'failed'
                      ORDER BY l.run_id DESC LIMIT 1) err ON true;
COMMENT ON VIEW pipeline.step_status IS
    'one row per step: state (paused, suspended, running, waiting for a worker, retrying, failing, idle), schedule, last run and what started it, last success and error, failures in a row, runs succeeded and failed, next scheduled run';
GRANT SELECT ON pipeline.step_status TO PUBLIC;

/*
 * Prometheus text exposition format (version 0.0.4).  Label values are
 * escaped as the format requires; families come in a fixed order, each
 * with its HELP and TYPE lines.
 */
CREATE FUNCTION pipeline.prometheus_escape(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN replace(replace(replace(coalesce(value, ''), '\', '\\'), '"', '\"'), E'\n', '\n');
COMMENT ON FUNCTION pipeline.prometheus_escape(text) IS
    'internal: a label value escaped for the Prometheus text format';

CREATE FUNCTION pipeline.metrics() RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
WITH p AS (
    SELECT s.id, s.pipeline, s.state, s.pending_rows, s.lag, s.consecutive_failures,
           d.source, d.target, d.strategy, t.runs_succeeded, t.runs_failed, t.runs_cancelled,
           t.rows_read, t.rows_inserted, t.rows_updated, t.rows_deleted, t.rows_stale,
           t.rows_filtered, t.rows_quarantined, t.rows_dropped, t.rows_unchanged, t.duration_seconds_sum,
           t.duration_le,
           t.last_success_at, coalesce(q.n, 0) AS quarantined,
           /* its labels, escaped once: '{database="...",pipeline="..."' */
           '{database="' || pipeline.prometheus_escape(current_database()) || '",pipeline="'
           || pipeline.prometheus_escape(s.pipeline) || '"' AS lb
      FROM pipeline.status s
      JOIN pipeline.pipeline_defs d ON d.id = s.id
      LEFT JOIN pipeline.run_totals t ON t.pipeline_id = s.id
      LEFT JOIN (SELECT q.pipeline_id, count(*) AS n FROM pipeline.quarantine_log q
                  WHERE q.requeued_at IS NULL GROUP BY q.pipeline_id) q ON q.pipeline_id = s.id
),
f AS (
    SELECT c.id, c.state, c.lag, c.attainment_7d,
           '{database="' || pipeline.prometheus_escape(current_database()) || '",check_id="' || c.id
           || '",relation="' || pipeline.prometheus_escape(c.relation::text) || '",column="'
           || pipeline.prometheus_escape(c.column_name) || '"' AS lb
      FROM pipeline.freshness c
),
steps AS (
    SELECT s.step, s.state, s.consecutive_failures, s.runs_succeeded, s.runs_failed,
           s.last_success_at,
           '{database="' || pipeline.prometheus_escape(current_database()) || '",step="'
           || pipeline.prometheus_escape(s.step) || '"' AS lb
      FROM pipeline.step_status s
),
families (ord, name, type, help) AS (VALUES
    (1, 'pipeline_info', 'gauge', 'A defined pipeline, with its source, target and strategy; always 1.'),
    (2, 'pipeline_state', 'gauge', 'The pipeline''s state: 1 for its current state, 0 for the others.'),
    (3, 'pipeline_runs_total', 'counter', 'Finished runs, by status.'),
    (4, 'pipeline_rows_read_total', 'counter', 'Staged rows read by runs.'),
    (5, 'pipeline_rows_total', 'counter', 'Rows processed by runs, by outcome.'),
    (6, 'pipeline_run_duration_seconds', 'histogram', 'Duration of finished runs.'),
    (7, 'pipeline_consecutive_failures', 'gauge', 'Failed runs since the last successful run.'),
    (8, 'pipeline_pending_rows', 'gauge', 'Staged rows waiting for the pipeline (counted up to 10000, estimated beyond; exactly 0 when none wait).'),
    (9, 'pipeline_lag_seconds', 'gauge', 'Age of the oldest staged row waiting for the pipeline (0 when none wait).'),
    (10, 'pipeline_quarantined_rows', 'gauge', 'Rows waiting in quarantine.'),
    (11, 'pipeline_last_success_timestamp_seconds', 'gauge', 'Unix time of the end of the last successful run.'),
    (12, 'pipeline_freshness_state', 'gauge', 'A freshness check''s state: 1 for its current state, 0 for the others.'),
    (13, 'pipeline_freshness_lag_seconds', 'gauge', 'Age of the newest data a freshness check saw.'),
    (14, 'pipeline_freshness_attainment_ratio', 'gauge', 'Share of a freshness check''s results of the last 7 days that passed.'),
    (15, 'pipeline_step_state', 'gauge', 'A step''s state: 1 for its current state, 0 for the others.'),
    (16, 'pipeline_step_runs_total', 'counter', 'Finished runs of a step, by status (skipped runs are not counted).'),
    (17, 'pipeline_step_consecutive_failures', 'gauge', 'Failed runs of a step since its last successful run.'),
    (18, 'pipeline_step_last_success_timestamp_seconds', 'gauge', 'Unix time of the end of the step''s last successful run.')
),
samples (ord, grp, lines) AS (
    SELECT 1, p.pipeline,
           'pipeline_info' || p.lb || ',source="' || pipeline.prometheus_escape(p.source::text)
           || '",target="' || pipeline.prometheus_escape(p.target::text) || '",strategy="'
           || pipeline.prometheus_escape(p.strategy) || E'"} 1\n'
      FROM p
    UNION ALL
    SELECT 2, p.pipeline,
           (SELECT string_agg('pipeline_state' || p.lb || ',state="' || st.s || '"} '
                              || (p.state = st.s)::int || E'\n', '' ORDER BY st.i)
              FROM unnest(ARRAY['idle', 'running', 'paused', 'retrying', 'failing', 'suspended',
                                'waiting for a worker']) WITH ORDINALITY st(s, i))
      FROM p
    UNION ALL
    SELECT 3, p.pipeline,
           'pipeline_runs_total' || p.lb || ',status="succeeded"} ' || coalesce(p.runs_succeeded, 0) || E'\n'
           || 'pipeline_runs_total' || p.lb || ',status="failed"} ' || coalesce(p.runs_failed, 0) || E'\n'
           || 'pipeline_runs_total' || p.lb || ',status="cancelled"} ' || coalesce(p.runs_cancelled, 0) || E'\n'
      FROM p
    UNION ALL
    SELECT 4, p.pipeline,
           'pipeline_rows_read_total' || p.lb || '} ' || coalesce(p.rows_read, 0) || E'\n'
      FROM p
    UNION ALL
    SELECT 5, p.pipeline,
           (SELECT string_agg('pipeline_rows_total' || p.lb || ',outcome="' || r.s || '"} ' || r.n || E'\n',
                              '' ORDER BY r.i)
              FROM (VALUES (1, 'inserted', coalesce(p.rows_inserted, 0)),
                           (2, 'updated', coalesce(p.rows_updated, 0)),
                           (3, 'deleted', coalesce(p.rows_deleted, 0)),
                           (4, 'stale', coalesce(p.rows_stale, 0)),
                           (5, 'filtered', coalesce(p.rows_filtered, 0)),
                           (6, 'quarantined', coalesce(p.rows_quarantined, 0)),
                           (7, 'dropped', coalesce(p.rows_dropped, 0)),
                           (8, 'unchanged', coalesce(p.rows_unchanged, 0))) r(i, s, n))
      FROM p
    UNION ALL
    SELECT 6, p.pipeline,
           (SELECT string_agg('pipeline_run_duration_seconds_bucket' || p.lb || ',le="' || u.b || '"} '
                              || coalesce(p.duration_le[u.i], 0) || E'\n', '' ORDER BY u.i)
              FROM unnest(pipeline.run_duration_bounds()) WITH ORDINALITY u(b, i))
           || 'pipeline_run_duration_seconds_bucket' || p.lb || ',le="+Inf"} ' || h.n || E'\n'
           || 'pipeline_run_duration_seconds_sum' || p.lb || '} ' || coalesce(p.duration_seconds_sum, 0) || E'\n'
           || 'pipeline_run_duration_seconds_count' || p.lb || '} ' || h.n || E'\n'
      FROM p, LATERAL (SELECT coalesce(p.runs_succeeded + p.runs_failed + p.runs_cancelled, 0) AS n) h
    UNION ALL
    SELECT 7, p.pipeline,
           'pipeline_consecutive_failures' || p.lb || '} ' || p.consecutive_failures || E'\n'
      FROM p
    UNION ALL
    SELECT 8, p.pipeline,
           'pipeline_pending_rows' || p.lb || '} ' || p.pending_rows || E'\n'
      FROM p WHERE p.pending_rows IS NOT NULL
    UNION ALL
    SELECT 9, p.pipeline,
           'pipeline_lag_seconds' || p.lb || '} ' || extract(epoch FROM p.lag)::float8 || E'\n'
      FROM p WHERE p.lag IS NOT NULL
    UNION ALL
    SELECT 10, p.pipeline,
           'pipeline_quarantined_rows' || p.lb || '} ' || p.quarantined || E'\n'
      FROM p
    UNION ALL
    SELECT 11, p.pipeline,
           'pipeline_last_success_timestamp_seconds' || p.lb || '} '
           || extract(epoch FROM p.last_success_at)::float8 || E'\n'
      FROM p WHERE p.last_success_at IS NOT NULL
    UNION ALL
    SELECT 12, lpad(f.id::text, 20, '0'),
           (SELECT string_agg('pipeline_freshness_state' || f.lb || ',state="' || st.s || '"} '
                              || (f.state = st.s)::int || E'\n', '' ORDER BY st.i)
              FROM unnest(ARRAY['PASS', 'WARN', 'FAIL', 'UNKNOWN']) WITH ORDINALITY st(s, i))
      FROM f
    UNION ALL
    SELECT 13, lpad(f.id::text, 20, '0'),
           'pipeline_freshness_lag_seconds' || f.lb || '} ' || extract(epoch FROM f.lag)::float8 || E'\n'
      FROM f WHERE f.lag IS NOT NULL
    UNION ALL
    SELECT 14, lpad(f.id::text, 20, '0'),
           'pipeline_freshness_attainment_ratio' || f.lb || '} ' || f.attainment_7d::float8 || E'\n'
      FROM f WHERE f.attainment_7d IS NOT NULL
    UNION ALL
    SELECT 15, stp.step,
           (SELECT string_agg('pipeline_step_state' || stp.lb || ',state="' || x.s || '"} '
                              || (stp.state = x.s)::int || E'\n', '' ORDER BY x.i)
              FROM unnest(ARRAY['idle', 'running', 'paused', 'retrying', 'failing', 'suspended',
                                'waiting for a worker']) WITH ORDINALITY x(s, i))
      FROM steps stp
    UNION ALL
    SELECT 16, stp.step,
           'pipeline_step_runs_total' || stp.lb || ',status="succeeded"} ' || stp.runs_succeeded || E'\n'
           || 'pipeline_step_runs_total' || stp.lb || ',status="failed"} ' || stp.runs_failed || E'\n'
      FROM steps stp
    UNION ALL
    SELECT 17, stp.step,
           'pipeline_step_consecutive_failures' || stp.lb || '} ' || stp.consecutive_failures || E'\n'
      FROM steps stp
    UNION ALL
    SELECT 18, stp.step,
           'pipeline_step_last_success_timestamp_seconds' || stp.lb || '} '
           || extract(epoch FROM stp.last_success_at)::float8 || E'\n'
      FROM steps stp WHERE stp.last_success_at IS NOT NULL
)
SELECT coalesce(string_agg(block, '' ORDER BY ord), '')
  FROM (SELECT fa.ord,
               '# HELP ' || fa.name || ' ' || fa.help || E'\n'
               || '# TYPE ' || fa.name || ' ' || fa.type || E'\n'
               || string_agg(s.lines, '' ORDER BY s.grp) AS block
          FROM families fa JOIN samples s ON s.ord = fa.ord
         GROUP BY fa.ord, fa.name, fa.type, fa.help) b
$$;
COMMENT ON FUNCTION pipeline.metrics() IS
    'the pipelines, steps and freshness checks the current role may see, in the Prometheus text exposition format';
GRANT SELECT ON pipeline.status TO PUBLIC;
