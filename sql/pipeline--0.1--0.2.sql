/* pipeline--0.1--0.2.sql: upgrades the pipeline extension from 0.1 to 0.2 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit

/*
 * pipeline.run_log.run_uuid is declared with its table in 0.2: the status
 * view, whose subqueries read run_log.*, is made again to list it too, as
 * a fresh install's does.
 */
CREATE OR REPLACE VIEW pipeline.status WITH (security_invoker = true) AS
SELECT d.name AS pipeline,
       CASE WHEN d.paused THEN 'paused'
            WHEN d.suspended_at IS NOT NULL THEN 'suspended'
            WHEN pipeline.is_running(d.id) THEN 'running'
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
  LEFT JOIN pipeline.run_totals t ON t.pipeline_id = d.id
  LEFT JOIN pipeline.schedule_state ss ON ss.pipeline_id = d.id AND d.schedule <> 'manual'
  LEFT JOIN LATERAL pipeline.backlog(d.name, quiet => true) b ON true
  LEFT JOIN LATERAL (SELECT r.* FROM pipeline.runs r
                      WHERE r.run_id = (SELECT max(l.run_id) FROM pipeline.run_log l
                                         WHERE l.pipeline_id = d.id AND l.status = 'running')
                        AND pipeline.is_running(d.id)) cur ON true
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
