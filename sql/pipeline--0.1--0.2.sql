/* pipeline--0.1--0.2.sql: upgrades the pipeline extension from 0.1 to 0.2 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit

/*
 * Each change of 0.2 to the catalog and the SQL API, in the order of the
 * install script's pieces (sql/install/); a fresh install of 0.2 and a
 * database updated from 0.1 end with the same objects (test/t/012_upgrade.pl).
 */

/* ---------------------------------------------------------------- catalog */

/*
 * Joins to dimension tables (definition/joins.c), with the cursor of their
 * changes.  Before anything else: the DDL guards read pipeline_joins at the
 * first drop of any object, a constraint's included.
 */
ALTER TABLE pipeline.cursors ADD COLUMN dimensions_consumed pg_snapshot;
COMMENT ON COLUMN pipeline.cursors.dimensions_consumed IS
    'a pipeline with joins: the changes of its dimensions whose _xid is visible in this snapshot have reached its target (NULL: no joins)';
CREATE TABLE pipeline.pipeline_joins (
    pipeline_id       bigint NOT NULL
                      REFERENCES pipeline.pipeline_defs (id) ON DELETE CASCADE,
    position          integer NOT NULL CHECK (position >= 0),
    dimension         regclass NOT NULL,
    change_log        regclass NOT NULL,
    alias             name NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('inner', 'left')),
    source_columns    text[] NOT NULL CHECK (source_columns <> '{}'),
    dimension_columns text[] NOT NULL
                      CHECK (cardinality(dimension_columns) = cardinality(source_columns)),
    PRIMARY KEY (pipeline_id, position)
);
CREATE INDEX ON pipeline.pipeline_joins (change_log);
COMMENT ON TABLE pipeline.pipeline_joins IS
    'each dimension a pipeline joins its source rows to, on the dimension''s primary key, and the change log it follows the dimension''s changes through';
COMMENT ON COLUMN pipeline.pipeline_joins.source_columns IS
    'the source columns matched, in order, to dimension_columns (the dimension''s primary key)';
SELECT pg_catalog.pg_extension_config_dump('pipeline.pipeline_joins', '');
ALTER TABLE pipeline.pipeline_joins ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.pipeline_joins
    USING (pipeline.may_manage(pipeline_id));
GRANT SELECT ON pipeline.pipeline_joins TO PUBLIC;

/*
 * Aggregate pipelines (strategies/aggregate.c).  First: every later
 * statement may load definitions (the DDL guards do), which read these
 * columns.
 */
ALTER TABLE pipeline.pipeline_defs
    DROP CONSTRAINT pipeline_defs_strategy_check,
    ADD CONSTRAINT pipeline_defs_strategy_check
        CHECK (strategy IN ('append', 'merge', 'scd2', 'aggregate')),
    ADD COLUMN source_key text[] CHECK (source_key <> '{}'),
    ADD COLUMN group_filter text,
    ADD COLUMN group_state regclass,
    ADD COLUMN row_state regclass;
COMMENT ON COLUMN pipeline.pipeline_defs.source_key IS
    'aggregate: the source columns that identify a source row, whose latest event replaces its earlier one in the groups (NULL: every staged row is a new row)';
COMMENT ON COLUMN pipeline.pipeline_defs.group_filter IS
    'aggregate: a condition over the target''s columns a group must meet to be in the target';
COMMENT ON COLUMN pipeline.pipeline_defs.group_state IS
    'aggregate: table next to the target with each group''s running state (row counts, sums, extremes)';
COMMENT ON COLUMN pipeline.pipeline_defs.row_state IS
    'aggregate: table next to the target with each source row''s current contribution, to retract it when the row changes (NULL when rows never change and no aggregate needs it)';

/* Debezium events, and sequence_by as expressions kept in the row state. */
ALTER TABLE pipeline.pipeline_defs
    ADD COLUMN format text CHECK (format IN ('debezium', 'snapshot')),
    ADD COLUMN sequence_kept boolean,
    ADD COLUMN ignore_null_updates text[] CHECK (ignore_null_updates <> '{}'),
    ADD COLUMN hard_deletes text CHECK (hard_deletes IN ('delete', 'ignore', 'invalidate', 'new_record')),
    ADD COLUMN max_delete_share real CHECK (max_delete_share > 0 AND max_delete_share <= 1),
    ADD COLUMN on_truncate text CHECK (on_truncate IN ('quarantine', 'apply')),
    ADD COLUMN truncated_at jsonb,
    ADD COLUMN extract_id text,
    ADD COLUMN extract_applied jsonb,
    ADD COLUMN extract_closed jsonb,
    ADD COLUMN sharded boolean;
UPDATE pipeline.pipeline_defs SET sequence_kept = false, sharded = false;
ALTER TABLE pipeline.pipeline_defs ALTER COLUMN sequence_kept SET DEFAULT false,
    ALTER COLUMN sequence_kept SET NOT NULL,
    ALTER COLUMN sharded SET DEFAULT false,
    ALTER COLUMN sharded SET NOT NULL;
COMMENT ON COLUMN pipeline.pipeline_defs.format IS
    'how a staged row holds its change: NULL, as the row itself; ''debezium'', as a Debezium change event (envelope or flattened record); ''snapshot'', as a row of a full extract (one source transaction''s rows)';
COMMENT ON COLUMN pipeline.pipeline_defs.hard_deletes IS
    'format snapshot: what a key missing from a complete extract does: delete (merge), invalidate (scd2: closes its current version), new_record (scd2: closes it and starts a version marked __deleted) or ignore';
COMMENT ON COLUMN pipeline.pipeline_defs.max_delete_share IS
    'format snapshot: the largest share of the target an extract may delete or close; a larger one is refused unless allowed (pipeline.allow_extract)';
COMMENT ON COLUMN pipeline.pipeline_defs.ignore_null_updates IS
    'merge: the columns (* for every column but the key) whose NULL in an event that updates a stored row keeps the stored value';
COMMENT ON COLUMN pipeline.pipeline_defs.on_truncate IS
    'format debezium: what a truncate event does: quarantine (kept in the quarantine, the default) or apply (the target follows the truncate)';
COMMENT ON COLUMN pipeline.pipeline_defs.truncated_at IS
    'format debezium with on_truncate apply: the sequence_by values of the latest truncate applied, as a JSON array; an event at or before it is stale';
COMMENT ON COLUMN pipeline.pipeline_defs.extract_id IS
    'format snapshot: the source column naming each row''s extract, when an extract spans several transactions (NULL: an extract is one transaction''s rows)';
COMMENT ON COLUMN pipeline.pipeline_defs.extract_applied IS
    'format snapshot with extract_id: the latest extract applied; a row of it or of an earlier one staged later is quarantined';
COMMENT ON COLUMN pipeline.pipeline_defs.sharded IS
    'whether the staging table was hash-distributed by Citus when the pipeline was defined: its runs then merge shard by shard';
COMMENT ON COLUMN pipeline.pipeline_defs.extract_closed IS
    'format snapshot with extract_id: the latest extract its loader closed (pipeline.close_extract): it and earlier ones are complete';
COMMENT ON COLUMN pipeline.pipeline_defs.sequence_kept IS
    'merge: sequence_by is one or more expressions over the source row, kept in the row state rather than in a target column';

/*
 * Extracts of a format snapshot pipeline its owner decided about: allowed
 * to delete more than max_delete_share of the target, or skipped.
 */
CREATE TABLE pipeline.extract_decisions (
    pipeline_id bigint NOT NULL REFERENCES pipeline.pipeline_defs (id) ON DELETE CASCADE,
    extract_xid xid8 NOT NULL,
    decision    text NOT NULL CHECK (decision IN ('allow', 'skip')),
    decided_at  timestamptz NOT NULL DEFAULT now(),
    decided_by  regrole NOT NULL,
    PRIMARY KEY (pipeline_id, extract_xid)
);
COMMENT ON TABLE pipeline.extract_decisions IS
    'extracts of format snapshot pipelines their owners allowed to delete beyond max_delete_share, or skipped (pipeline.allow_extract, pipeline.skip_extract)';

SELECT pg_catalog.pg_extension_config_dump('pipeline.extract_decisions', '');
ALTER TABLE pipeline.extract_decisions ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.extract_decisions
    USING (pipeline.may_manage(pipeline_id));
GRANT SELECT ON pipeline.extract_decisions TO PUBLIC;

/* Events equal to the stored row are not written again: counted apart. */
/* (added without a default, then filled: a fresh install stores no "missing value") */
ALTER TABLE pipeline.run_log ADD COLUMN rows_unchanged bigint;
UPDATE pipeline.run_log SET rows_unchanged = 0;
ALTER TABLE pipeline.run_log ALTER COLUMN rows_unchanged SET DEFAULT 0,
    ALTER COLUMN rows_unchanged SET NOT NULL;
COMMENT ON COLUMN pipeline.run_log.rows_unchanged IS
    'events equal to the row the target holds, which the run did not write again (merge)';
ALTER TABLE pipeline.run_totals ADD COLUMN rows_unchanged bigint;
UPDATE pipeline.run_totals SET rows_unchanged = 0;
ALTER TABLE pipeline.run_totals ALTER COLUMN rows_unchanged SET DEFAULT 0,
    ALTER COLUMN rows_unchanged SET NOT NULL;
CREATE FUNCTION pipeline.changes_row(boolean, boolean) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_changes_row'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.changes_row(boolean, boolean) IS
    'internal: whether an upsert writes over a stored row: it may (first) and would change it (second); counts the rows it may but would not change';

/* Lineage of joins: the columns a join matches on (JOIN, origin joins). */
ALTER TABLE pipeline.lineage_edges
    DROP CONSTRAINT lineage_edges_subtype_check,
    ADD CONSTRAINT lineage_edges_subtype_check
        CHECK (subtype IN ('IDENTITY', 'TRANSFORMATION', 'AGGREGATION', 'FILTER', 'CONDITIONAL',
                           'SORT', 'GROUP_BY', 'JOIN')),
    DROP CONSTRAINT lineage_edges_origin_check,
    ADD CONSTRAINT lineage_edges_origin_check
        CHECK (origin IN ('pipeline', 'mapping', 'filter', 'delete_when', 'sequence_by', 'joins'));

/* A test's run (pipeline.test), recorded only inside the test it rolls back. */
ALTER TABLE pipeline.run_log
    DROP CONSTRAINT run_log_kind_check,
    ADD CONSTRAINT run_log_kind_check CHECK (kind IN ('run', 'requeue', 'replay', 'test'));

-- steps catalog begin
/*
 * Orchestration steps (steps/): a statement -- REFRESH MATERIALIZED VIEW, a
 * procedure call, a cleanup -- run as its owner after the pipelines and
 * steps it follows succeeded.
 */
CREATE TABLE pipeline.steps (
    id                  bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE
                        CHECK (name <> '' AND length(name) <= 63),
    owner               regrole NOT NULL,
    command             text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('refresh', 'call', 'statement')),
    search_path         text NOT NULL,
    statement_timeout   interval CHECK (statement_timeout > interval '0'),
    reads               regclass[],
    writes              regclass[],
    paused              boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    schedule            text NOT NULL DEFAULT 'manual',
    suspended_at        timestamptz,
    -- pipeline.set_failure_policy; NULL: the settings'
    retry_base_ms       integer CHECK (retry_base_ms > 0),
    retry_max_ms        integer CHECK (retry_max_ms > 0),
    suspend_after_failures integer CHECK (suspend_after_failures >= 0)
);
COMMENT ON TABLE pipeline.steps IS
    'orchestration steps: a statement run as its owner once the pipelines and steps it runs after succeeded; change them with create_step, alter_step and drop_step';
COMMENT ON COLUMN pipeline.steps.kind IS
    'refresh (REFRESH MATERIALIZED VIEW), call (CALL of a procedure) or statement (INSERT, UPDATE, DELETE, MERGE, SELECT, TRUNCATE)';
COMMENT ON COLUMN pipeline.steps.reads IS
    'relations the step reads beyond what parse analysis of its command finds (a procedure''s), as declared';
COMMENT ON COLUMN pipeline.steps.writes IS
    'relations the step writes beyond what parse analysis of its command finds (a procedure''s), as declared';
COMMENT ON COLUMN pipeline.steps.search_path IS
    'the search_path the command runs with: the creating session''s';
COMMENT ON COLUMN pipeline.steps.schedule IS
    'who starts its runs besides run_step: manual (nobody), on_upstream (the scheduler, when an upstream did new work and every upstream''s last run succeeded), an interval or cron text (the scheduler, at its times)';
COMMENT ON COLUMN pipeline.steps.suspended_at IS
    'set when pipeline.suspend_after_failures (or its own failure policy) consecutive runs failed; resume_step clears it';

CREATE TABLE pipeline.step_upstreams (
    step_id             bigint NOT NULL REFERENCES pipeline.steps (id) ON DELETE CASCADE,
    position            integer NOT NULL CHECK (position >= 0),
    upstream_pipeline   bigint REFERENCES pipeline.pipeline_defs (id),
    upstream_step       bigint REFERENCES pipeline.steps (id),
    CHECK ((upstream_pipeline IS NULL) <> (upstream_step IS NULL)),
    PRIMARY KEY (step_id, position)
);
CREATE INDEX ON pipeline.step_upstreams (upstream_pipeline);
CREATE INDEX ON pipeline.step_upstreams (upstream_step);
COMMENT ON TABLE pipeline.step_upstreams IS
    'the pipelines and steps a step runs after (a pipeline or step others follow cannot be dropped)';

CREATE TABLE pipeline.step_run_log (
    run_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id             bigint NOT NULL REFERENCES pipeline.steps (id) ON DELETE CASCADE,
    trigger             text NOT NULL CHECK (trigger IN ('manual', 'schedule', 'upstream', 'retry')),
    status              text NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    started_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at         timestamptz,
    backend_pid         integer NOT NULL DEFAULT pg_backend_pid(),
    run_as              regrole NOT NULL,
    rows_affected       bigint,
    error_sqlstate      text,
    error_message       text,
    upstream_marks      jsonb
);
CREATE INDEX ON pipeline.step_run_log (step_id, run_id);
CREATE INDEX ON pipeline.step_run_log (step_id, finished_at);
COMMENT ON TABLE pipeline.step_run_log IS
    'history of step runs: what started them, status, rows the command affected, error';
COMMENT ON COLUMN pipeline.step_run_log.upstream_marks IS
    'the last finished run of each upstream the run''s start saw ({"p<pipeline id>": run_id, "s<step id>": run_id}): an upstream''s later runs are new work for on_upstream (runs of one pipeline or step never overlap, so a later id ends later)';

/*
 * Totals of every step run ever finished (pipeline.metrics, the failure
 * streak that retries and suspends a step), and when the scheduler runs a
 * scheduled step next.
 */
CREATE TABLE pipeline.step_state (
    step_id             bigint PRIMARY KEY REFERENCES pipeline.steps (id) ON DELETE CASCADE,
    runs_succeeded      bigint NOT NULL DEFAULT 0,
    runs_failed         bigint NOT NULL DEFAULT 0,
    duration_seconds_sum float8 NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_success_at     timestamptz,
    last_failure_at     timestamptz,
    next_run_at         timestamptz,
    waiting_since       timestamptz
);
COMMENT ON TABLE pipeline.step_state IS
    'counters over every run of a step that succeeded or failed (kept whatever the history retention deletes), its streak of failures, and when its scheduler runs it next';
COMMENT ON COLUMN pipeline.step_state.consecutive_failures IS
    'failed runs since the last successful one (skipped runs neither break nor extend the streak)';
COMMENT ON COLUMN pipeline.step_state.next_run_at IS
    'when the scheduler runs the step next: a retry after failures, or its schedule''s next time (NULL: not by a time)';
COMMENT ON COLUMN pipeline.step_state.waiting_since IS
    'since when the step is due and every run worker (pipeline.max_workers) is busy; NULL when it is not waiting';

CREATE TABLE pipeline.step_relations (
    step_id             bigint NOT NULL REFERENCES pipeline.steps (id) ON DELETE CASCADE,
    relation            regclass NOT NULL,
    access              text NOT NULL CHECK (access IN ('read', 'write')),
    origin              text NOT NULL CHECK (origin IN ('command', 'declared')),
    PRIMARY KEY (step_id, relation, access)
);
CREATE INDEX ON pipeline.step_relations (relation);
COMMENT ON TABLE pipeline.step_relations IS
    'the relations a step reads and writes: from parse analysis of its command (origin command), or as create_step declared them (reads, writes; origin declared); its lineage, and what a DROP of them must take with it';

SELECT pg_catalog.pg_extension_config_dump('pipeline.steps', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.steps_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.step_upstreams', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.step_run_log', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.step_run_log_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.step_relations', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.step_state', '');

/* Steps: a role sees the steps it is a member of the owner of, and their runs. */
CREATE FUNCTION pipeline.may_manage_step(step_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM pipeline.steps s WHERE s.id = step_id) $$;
COMMENT ON FUNCTION pipeline.may_manage_step(bigint) IS
    'true when the current role may see the step (row-level security of steps applies inside)';
ALTER TABLE pipeline.steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.step_upstreams ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.step_run_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.step_relations ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.step_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.steps
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY owner_only ON pipeline.step_upstreams
    USING (pipeline.may_manage_step(step_id));
CREATE POLICY owner_only ON pipeline.step_run_log
    USING (pipeline.may_manage_step(step_id));
CREATE POLICY owner_only ON pipeline.step_relations
    USING (pipeline.may_manage_step(step_id));
CREATE POLICY owner_only ON pipeline.step_state
    USING (pipeline.may_manage_step(step_id));
GRANT SELECT ON pipeline.steps, pipeline.step_upstreams, pipeline.step_run_log, pipeline.step_relations,
    pipeline.step_state TO PUBLIC;
-- steps catalog end

/* the scheduler reads every scheduled pipeline's last start at each pass */
CREATE INDEX ON pipeline.run_log (pipeline_id, started_at);
/* every run looks for the runs of its pipeline left running: not through its history */
CREATE INDEX ON pipeline.run_log (pipeline_id) WHERE status = 'running';

ALTER TABLE pipeline.schedule_state ADD COLUMN waiting_since timestamptz;
COMMENT ON COLUMN pipeline.schedule_state.waiting_since IS
    'since when the pipeline is due, with rows to read, and every run worker (pipeline.max_workers) is busy; NULL when it is not waiting';

/* ------------------------------------------------------ operator's view */

/*
 * The status view reads the running pipelines once, says which wait for a
 * worker, and (as 0.2 declares run_log.run_uuid with its table) lists it
 * among the run_log columns its subqueries read, as a fresh install's does.
 */
/* Runs: the events a merge did not write again, equal to the stored row (before status, which reads runs.*). */
CREATE OR REPLACE VIEW pipeline.runs WITH (security_invoker = true) AS
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

CREATE OR REPLACE VIEW pipeline.status WITH (security_invoker = true) AS
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
 * Label values are escaped by an inlinable function (a metrics scrape
 * escapes two for every pipeline), which replaces prometheus_labels.
 */
CREATE FUNCTION pipeline.prometheus_escape(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN replace(replace(replace(coalesce(value, ''), '\', '\\'), '"', '\"'), E'\n', '\n');
COMMENT ON FUNCTION pipeline.prometheus_escape(text) IS
    'internal: a label value escaped for the Prometheus text format';

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

CREATE OR REPLACE FUNCTION pipeline.metrics() RETURNS text
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
DROP FUNCTION pipeline.prometheus_labels(text[]);

/* -------------------------------------------------------------- lineage */

CREATE OR REPLACE VIEW pipeline.lineage WITH (security_barrier = true) AS
WITH RECURSIVE stored AS (
    SELECT d.name AS pipeline, e.*, sa.attnum AS source_attnum, ta.attnum AS target_attnum
      FROM pipeline.lineage_edges e
      JOIN pipeline.pipeline_defs d ON d.id = e.pipeline_id
      LEFT JOIN pg_attribute sa ON sa.attrelid = e.source AND sa.attname = e.source_column
                               AND NOT sa.attisdropped
      LEFT JOIN pg_attribute ta ON ta.attrelid = e.target AND ta.attname = e.target_column
                               AND NOT ta.attisdropped
     WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = e.source)
),
views (source, target) AS (
    SELECT dep.refobjid, rw.ev_class
      FROM pg_depend dep
      JOIN pg_rewrite rw ON rw.oid = dep.objid
     WHERE dep.classid = 'pg_rewrite'::regclass AND dep.refclassid = 'pg_class'::regclass
       AND dep.refobjid <> rw.ev_class
       AND (EXISTS (SELECT 1 FROM pipeline.lineage_edges e WHERE e.source = dep.refobjid)
            OR EXISTS (SELECT 1 FROM pipeline.lineage_edges e WHERE e.target = dep.refobjid)
            OR EXISTS (SELECT 1 FROM pipeline.step_relations e WHERE e.relation = dep.refobjid))
    UNION
    SELECT dep.refobjid, rw.ev_class
      FROM views v
      JOIN pg_depend dep ON dep.refobjid = v.target AND dep.refclassid = 'pg_class'::regclass
                        AND dep.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite rw ON rw.oid = dep.objid AND rw.ev_class <> v.target
)
SELECT s.pipeline,
       CASE WHEN s.source_column IS NULL THEN 'table' ELSE 'column' END AS level,
       s.source, s.source_column, s.target, s.target_column,
       s.lineage_type, s.subtype, s.origin, s.transformation, NULL::text AS step
  FROM stored s
 WHERE pipeline.may_see(s.source) AND pipeline.may_see(s.target)
   AND (s.source_column IS NULL OR pipeline.may_see_column(s.source, s.source_attnum))
   AND (s.target_column IS NULL OR pipeline.may_see_column(s.target, s.target_attnum))
UNION ALL
SELECT NULL, 'table', v.source::regclass, NULL, v.target::regclass, NULL, 'DIRECT', NULL,
       CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, NULL, NULL
  FROM views v
  JOIN pg_class c ON c.oid = v.target
 WHERE pipeline.may_see(v.source::regclass) AND pipeline.may_see(v.target::regclass)
UNION ALL
SELECT DISTINCT NULL, 'table', r.relation, NULL, w.relation, NULL, 'DIRECT', NULL, 'step', st.kind, st.name
  FROM pipeline.step_relations r
  JOIN pipeline.step_relations w ON w.step_id = r.step_id AND w.access = 'write' AND w.relation <> r.relation
  JOIN pipeline.steps st ON st.id = r.step_id
 WHERE r.access = 'read'
   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relation)
   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = w.relation)
   AND pipeline.may_see(r.relation) AND pipeline.may_see(w.relation);
COMMENT ON VIEW pipeline.lineage IS
    'one row per lineage edge (table: relation to relation through a pipeline, a view or a step; column: source column to target column), of the relations and columns the current role may see';

/* its arguments are renamed: made again */
DROP FUNCTION pipeline.lineage_walk(regclass, integer, boolean);
CREATE FUNCTION pipeline.lineage_walk(start regclass, max_depth integer, down boolean)
    RETURNS TABLE (relation regclass, depth integer, relation_kind text, via text[])
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
      /* PL/pgSQL keeps the plan: a SQL function would plan the lineage view at every call */
      RETURN QUERY
      WITH RECURSIVE walk (depth, relation, via) AS (
          SELECT 0, start, NULL::text
          UNION
          SELECT w.depth + 1, e.next, e.via
            FROM walk w
           CROSS JOIN LATERAL (SELECT l.target AS next, coalesce(l.pipeline, l.step, l.origin) AS via
                                 FROM pipeline.lineage l
                                WHERE down AND l.level = 'table' AND l.source = w.relation
                               UNION ALL
                               SELECT l.source, coalesce(l.pipeline, l.step, l.origin)
                                 FROM pipeline.lineage l
                                WHERE NOT down AND l.level = 'table' AND l.target = w.relation) e
           WHERE w.depth < coalesce(max_depth, 1000)),
      nearest AS (SELECT w.relation, min(w.depth) AS depth FROM walk w GROUP BY w.relation)
      SELECT n.relation, n.depth, pipeline.relation_kind(n.relation),
             array_agg(DISTINCT w.via ORDER BY w.via)
        FROM nearest n JOIN walk w ON w.relation = n.relation AND w.depth = n.depth
       WHERE n.depth > 0
       GROUP BY n.relation, n.depth
       ORDER BY n.depth, n.relation::text;
    END
    $$;
COMMENT ON FUNCTION pipeline.lineage_walk(regclass, integer, boolean) IS
    'internal: the walk of downstream (down) and upstream';

/* steps: hexagons between the relations they read and write */
CREATE OR REPLACE FUNCTION pipeline.lineage_dot(relation regclass DEFAULT NULL, columns boolean DEFAULT false)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
      WITH l AS MATERIALIZED (SELECT * FROM pipeline.lineage),
      near AS (
          SELECT $1 AS relation WHERE $1 IS NOT NULL
          UNION SELECT u.relation FROM pipeline.upstream($1) u WHERE $1 IS NOT NULL
          UNION SELECT d.relation FROM pipeline.downstream($1) d WHERE $1 IS NOT NULL),
      t AS (SELECT * FROM l WHERE l.level = 'table'
              AND ($1 IS NULL OR (l.source IN (SELECT relation FROM near)
                                  AND l.target IN (SELECT relation FROM near)))),
      rels AS (SELECT t.source AS relation FROM t UNION SELECT t.target FROM t
               UNION SELECT $1 WHERE $1 IS NOT NULL),
      cols AS (SELECT DISTINCT c.relation, a.attnum, a.attname::text AS name
                 FROM (SELECT l.source AS relation, l.source_column AS name FROM l
                        WHERE l.level = 'column'
                       UNION
                       SELECT l.target, l.target_column FROM l
                        WHERE l.level = 'column' AND l.target_column IS NOT NULL) c
                 JOIN pg_attribute a ON a.attrelid = c.relation AND a.attname = c.name
                WHERE $2 AND c.relation IN (SELECT r.relation FROM rels r)),
      fields AS (SELECT c.relation, string_agg('|<c' || c.attnum || '> ' || pipeline.dot_record_field(c.name),
                                               '' ORDER BY c.attnum) AS list
                   FROM cols c GROUP BY c.relation),
      /* with columns, a table edge joins a relation's title field (port t) */
      p AS (SELECT CASE WHEN $2 THEN ':t' ELSE '' END AS title),
      nodes (ord, line) AS (
          SELECT 1, '  ' || pipeline.dot_quote('rel:' || r.relation::text) || ' [shape='
                 || CASE WHEN $2 THEN 'record' ELSE 'box' END
                 || CASE pipeline.relation_kind(r.relation)
                         WHEN 'view' THEN ', style=dashed'
                         WHEN 'materialized view' THEN ', style=rounded' ELSE '' END
                 || ', label='
                 || CASE WHEN $2
                         THEN '"<t> ' || pipeline.dot_record_field(r.relation::text)
                              || coalesce(f.list, '') || '"'
                         ELSE pipeline.dot_quote(r.relation::text) END
                 || '];'
            FROM rels r LEFT JOIN fields f ON f.relation = r.relation
          UNION ALL
          SELECT 2, '  ' || pipeline.dot_quote('pipeline:' || p.pipeline)
                 || ' [shape=ellipse, style=filled, fillcolor="#dde8f7", label='
                 || pipeline.dot_quote(p.pipeline) || '];'
            FROM (SELECT DISTINCT t.pipeline FROM t WHERE t.pipeline IS NOT NULL) p
          UNION ALL
          SELECT 2, '  ' || pipeline.dot_quote('step:' || s.step)
                 || ' [shape=hexagon, style=filled, fillcolor="#e8f0dd", label='
                 || pipeline.dot_quote(s.step) || '];'
            FROM (SELECT DISTINCT t.step FROM t WHERE t.step IS NOT NULL) s),
      edges (ord, line) AS (
          SELECT 3, '  ' || pipeline.dot_quote('rel:' || t.source::text) || p.title || ' -> '
                 || pipeline.dot_quote('pipeline:' || t.pipeline)
                 || CASE WHEN t.lineage_type = 'INDIRECT' THEN ' [style=dashed];' ELSE ';' END
            FROM t, p WHERE t.pipeline IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('pipeline:' || t.pipeline) || ' -> '
                 || pipeline.dot_quote('rel:' || t.target::text) || p.title || ';'
            FROM t, p WHERE t.pipeline IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('rel:' || t.source::text) || p.title || ' -> '
                 || pipeline.dot_quote('step:' || t.step) || ';'
            FROM t, p WHERE t.step IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('step:' || t.step) || ' -> '
                 || pipeline.dot_quote('rel:' || t.target::text) || p.title || ';'
            FROM t, p WHERE t.step IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('rel:' || t.source::text) || p.title || ' -> '
                 || pipeline.dot_quote('rel:' || t.target::text) || p.title || ' [style=dotted];'
            FROM t, p WHERE t.pipeline IS NULL AND t.step IS NULL
          UNION
          SELECT 4, '  ' || pipeline.dot_quote('rel:' || c.source::text) || ':c' || sa.attnum || ':e -> '
                 || pipeline.dot_quote('rel:' || c.target::text)
                 || coalesce(':c' || ta.attnum, ':t') || ':w'
                 || ' [color=gray40' || CASE WHEN c.lineage_type = 'INDIRECT' THEN ', style=dashed' ELSE '' END
                 || ', tooltip=' || pipeline.dot_quote(c.pipeline || ': ' || c.transformation) || '];'
            FROM l c
            JOIN pg_attribute sa ON sa.attrelid = c.source AND sa.attname = c.source_column
            LEFT JOIN pg_attribute ta ON ta.attrelid = c.target AND ta.attname = c.target_column
           WHERE $2 AND c.level = 'column'
             AND c.source IN (SELECT relation FROM rels) AND c.target IN (SELECT relation FROM rels))
      SELECT 'digraph lineage {' || E'\n'
             || '  rankdir=LR;' || E'\n'
             || '  node [fontname="Helvetica", fontsize=10];' || E'\n'
             || '  edge [color=gray20];' || E'\n'
             || coalesce((SELECT string_agg(x.line, E'\n' ORDER BY x.ord, x.line)
                            FROM (SELECT * FROM nodes UNION ALL SELECT * FROM edges) x) || E'\n', '')
             || '}' || E'\n'
    $$;
COMMENT ON FUNCTION pipeline.lineage_dot(regclass, boolean) IS
    'Graphviz DOT of the lineage the current role may see (of one relation: its upstream and downstream), with column edges when columns is true';

CREATE OR REPLACE FUNCTION pipeline.column_lineage(relation regclass, column_name text)
    RETURNS TABLE (depth integer, source regclass, source_column text, target regclass,
                   target_column text, pipeline text, lineage_type text, subtype text,
                   origin text, transformation text)
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2
                        AND a.attnum > 0 AND NOT a.attisdropped) THEN
          RAISE EXCEPTION 'column "%" of relation % does not exist', $2, $1
                USING ERRCODE = 'undefined_column',
                      DETAIL = 'column_lineage follows the lineage of one column of a relation.',
                      HINT = 'Name a column as it is spelled in the catalog, without SQL quoting.';
      END IF;
      /*
       * each step reads only the edges into one column, by index through
       * the lineage filter (OFFSET 0 keeps the planner from joining the
       * whole view instead)
       */
      RETURN QUERY
      WITH RECURSIVE walk (depth, relation, column_name) AS (
          SELECT 0, $1, $2
          UNION
          SELECT w.depth + 1, e.source, e.source_column
            FROM walk w
           CROSS JOIN LATERAL (SELECT l.source, l.source_column FROM pipeline.lineage l
                                WHERE l.level = 'column' AND l.target = w.relation
                                  AND (l.target_column = w.column_name OR l.target_column IS NULL)
                               OFFSET 0) e
           WHERE w.depth < 1000),
      nearest AS (SELECT w.relation, w.column_name, min(w.depth) AS depth
                    FROM walk w GROUP BY w.relation, w.column_name)
      SELECT min(n.depth)::integer + 1, e.source, e.source_column, e.target, e.target_column, e.pipeline,
             e.lineage_type, e.subtype, e.origin, e.transformation
        FROM nearest n
       CROSS JOIN LATERAL (SELECT * FROM pipeline.lineage l
                            WHERE l.level = 'column' AND l.target = n.relation
                              AND (l.target_column = n.column_name OR l.target_column IS NULL)
                           OFFSET 0) e
       GROUP BY e.source, e.source_column, e.target, e.target_column, e.pipeline,
                e.lineage_type, e.subtype, e.origin, e.transformation
       ORDER BY 1, e.target::text, e.target_column NULLS LAST, e.source::text, e.source_column,
                e.origin, e.lineage_type;
    END
    $$;
COMMENT ON FUNCTION pipeline.column_lineage(regclass, text) IS
    'where a column comes from: every column edge on the way back to the staging columns, DIRECT (the value flows) or INDIRECT (it decides), with its expression';

/* ----------------------------------------------------------- OpenLineage */

CREATE OR REPLACE FUNCTION pipeline.openlineage_facet(schema_url text, body jsonb) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION pipeline.openlineage_dataset(relation regclass) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION pipeline.openlineage_column_lineage(pipeline_id bigint) RETURNS jsonb
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

/*
 * The outbox becomes a view over the events' facts (run, event type, when,
 * acknowledged), their JSON built when read.  The events recorded under
 * 0.1 keep their id, time and acknowledgement, and the ids go on from the
 * old sequence's position; an event whose run the history no longer holds
 * cannot be built again and is left out.  The old table leaves the
 * extension's configuration tables before it is dropped.
 */
CREATE TABLE pipeline.openlineage_run_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id     bigint NOT NULL,    -- the run's: dropping a pipeline drops its runs
    run_id          bigint NOT NULL
                    REFERENCES pipeline.run_log (run_id) ON DELETE CASCADE,
    event_type      text NOT NULL CHECK (event_type IN ('START', 'COMPLETE', 'FAIL', 'ABORT')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    acknowledged_at timestamptz,
    UNIQUE (run_id, event_type)
);
CREATE INDEX ON pipeline.openlineage_run_events (id) WHERE acknowledged_at IS NULL;
CREATE INDEX ON pipeline.openlineage_run_events (created_at);
COMMENT ON TABLE pipeline.openlineage_run_events IS
    'the OpenLineage events of every run, in order, as facts (run and event type), until pipeline.openlineage_retention; pipeline.openlineage_outbox adds each event''s JSON';
INSERT INTO pipeline.openlineage_run_events
            (id, pipeline_id, run_id, event_type, created_at, acknowledged_at) OVERRIDING SYSTEM VALUE
SELECT o.id, o.pipeline_id, o.run_id, o.event_type, o.created_at, o.acknowledged_at
  FROM pipeline.openlineage_outbox o
 WHERE EXISTS (SELECT 1 FROM pipeline.run_log l WHERE l.run_id = o.run_id);
SELECT pg_catalog.setval('pipeline.openlineage_run_events_id_seq', s.last_value, s.is_called)
  FROM pipeline.openlineage_outbox_id_seq s;
SELECT pg_catalog.pg_extension_config_dump('pipeline.openlineage_run_events', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.openlineage_run_events_id_seq', '');
ALTER TABLE pipeline.openlineage_run_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.openlineage_run_events
    USING (pipeline.may_manage(pipeline_id));
GRANT SELECT ON pipeline.openlineage_run_events TO PUBLIC;
GRANT UPDATE (acknowledged_at) ON pipeline.openlineage_run_events TO PUBLIC;

ALTER EXTENSION pipeline DROP SEQUENCE pipeline.openlineage_outbox_id_seq;
ALTER EXTENSION pipeline DROP TABLE pipeline.openlineage_outbox;
DROP TABLE pipeline.openlineage_outbox;

CREATE VIEW pipeline.openlineage_outbox WITH (security_invoker = true) AS
    SELECT e.id, e.pipeline_id, e.run_id, e.event_type,
           pipeline.openlineage_event(e.run_id, e.event_type) AS event,
           e.created_at, e.acknowledged_at
      FROM pipeline.openlineage_run_events e;
COMMENT ON VIEW pipeline.openlineage_outbox IS
    'OpenLineage events of every run, in order, until pipeline.openlineage_retention, each built when read; a shipper reads the unacknowledged ones and acknowledges them with openlineage_acknowledge';
GRANT SELECT ON pipeline.openlineage_outbox TO PUBLIC;
GRANT UPDATE (acknowledged_at) ON pipeline.openlineage_outbox TO PUBLIC;

CREATE OR REPLACE FUNCTION pipeline.openlineage_on_run() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pipeline_openlineage_on_run'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.openlineage_on_run() IS
    'trigger: records the facts of a run''s OpenLineage events (its start and end) in the outbox, and applies its retention; fires only on pipeline.run_log';

CREATE OR REPLACE FUNCTION pipeline.openlineage_pending(max_events integer DEFAULT 100)
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

CREATE OR REPLACE FUNCTION pipeline.openlineage_acknowledge(ids bigint[]) RETURNS bigint
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

/* ---------------------------------------------------- row-level provenance */

CREATE FUNCTION pipeline.cursor_rule_between(row_alias text, before text, before_xid text,
                                             before_seq text, after text, after_xid text,
                                             after_seq text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pipeline_cursor_rule_between'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.cursor_rule_between(text, text, text, text, text, text, text) IS
    'internal: the SQL condition on the staged row row_alias that the cursor after (snapshot, partial position) has consumed and the cursor before has not; its arguments are SQL expressions';

CREATE OR REPLACE FUNCTION pipeline.run_staged_rows(run_id bigint)
    RETURNS TABLE (_xid xid8, _seq bigint, staged_row jsonb)
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
      l pipeline.run_log;
      src regclass;
    BEGIN
      SELECT r.* INTO l FROM pipeline.run_log r WHERE r.run_id = $1;
      SELECT d.source INTO src FROM pipeline.pipeline_defs d WHERE d.id = l.pipeline_id;
      IF NOT FOUND OR l.kind <> 'run' OR l.cursor_before IS NULL OR l.cursor_after IS NULL THEN
          RAISE EXCEPTION 'run % has no recorded staged rows', $1
                USING ERRCODE = 'undefined_object',
                      DETAIL = 'Staged rows are recorded for finished runs of kind run of pipelines the current role may manage; requeue runs read the quarantine.',
                      HINT = 'Find runs in pipeline.runs; the rows a requeue run read are in pipeline.quarantine_log (requeue_run_id).';
      END IF;
      /* the archive holds every row and column: refused rather than filtered */
      PERFORM pipeline.may_read_every_row(src, quiet => false);
      /* consumed at the end, pending at the start: the cursor rule (cursor_rule.c) */
      RETURN QUERY EXECUTE format(
          'SELECT s._xid, s._seq, to_jsonb(s) - ''_xid'' - ''_seq'' FROM ('
          'SELECT * FROM %1$s UNION ALL SELECT a.* FROM pipeline.archive_batches b '
          'LEFT JOIN pipeline.archive_dictionaries d ON d.id = b.dictionary_id '
          'CROSS JOIN LATERAL pipeline.archive_unpack(b, d.dictionary, NULL::%1$s) a '
          'WHERE b.source = %2$L::regclass AND b.last_xid >= pg_snapshot_xmin($4)) s '
          'WHERE %3$s ORDER BY s._xid, s._seq', src, src::text,
          pipeline.cursor_rule_between('s', '$4', '$5', '$6', '$1', '$2', '$3'))
        USING l.cursor_after, l.cursor_after_xid, l.cursor_after_seq,
              l.cursor_before, l.cursor_before_xid, l.cursor_before_seq;
    END
    $$;
COMMENT ON FUNCTION pipeline.run_staged_rows(bigint) IS
    'the staged rows a run consumed (merged, filtered, quarantined or dropped), in order, from its source (a change log for a pipeline on a pipeline)';

/* Aggregate pipelines: source_key, group_filter and joins. */
DROP FUNCTION pipeline.create_pipeline(text, regclass, text, text[], text, text, text, jsonb, text, text, bigint, text, interval, interval, text[]);
CREATE FUNCTION pipeline.create_pipeline(
    name                text,
    source              regclass,
    target              text,
    key                 text[] DEFAULT NULL,
    strategy            text DEFAULT 'merge',
    sequence_by         text DEFAULT NULL,
    delete_when         text DEFAULT NULL,
    columns             jsonb DEFAULT '{}',
    filter              text DEFAULT NULL,
    on_schema_change    text DEFAULT 'ignore',
    batch_size          bigint DEFAULT 100000,
    schedule            text DEFAULT 'manual',
    tombstone_retention interval DEFAULT '7 days',
    statement_timeout   interval DEFAULT NULL,
    track_history       text[] DEFAULT NULL,
    source_key          text[] DEFAULT NULL,
    group_filter        text DEFAULT NULL,
    joins               jsonb DEFAULT NULL,
    format              text DEFAULT NULL,
    ignore_null_updates text[] DEFAULT NULL,
    except_columns      text[] DEFAULT NULL,
    hard_deletes        text DEFAULT NULL,
    max_delete_share    real DEFAULT NULL,
    on_truncate         text DEFAULT NULL,
    extract_id          text DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pipeline_create_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.create_pipeline(text, regclass, text, text[], text, text, text, jsonb, text, text, bigint, text, interval, interval, text[], text[], text, jsonb, text, text[], text[], text, real, text, text) IS
    'defines a pipeline from a staging table to a curated table (created from the mapping when missing); returns its id';

CREATE OR REPLACE VIEW pipeline.pipelines WITH (security_invoker = true) AS
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

CREATE OR REPLACE VIEW pipeline.dependencies WITH (security_invoker = true) AS
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

CREATE VIEW pipeline.step_runs WITH (security_invoker = true) AS
SELECT r.run_id, s.name AS step, r.trigger, r.status, r.started_at, r.finished_at,
       coalesce(r.finished_at, clock_timestamp()) - r.started_at AS duration,
       r.rows_affected, r.error_sqlstate, r.error_message, r.backend_pid, r.run_as
  FROM pipeline.step_run_log r
  JOIN pipeline.steps s ON s.id = r.step_id;
COMMENT ON VIEW pipeline.step_runs IS
    'history of the runs of the steps the current role may manage: what started each (manual: run_step), status, rows its command affected, error; a skipped run says why in error_message';

GRANT SELECT ON pipeline.step_runs TO PUBLIC;

CREATE TYPE pipeline.debezium_event AS (
    op      text,
    record  jsonb,
    lsn     bigint,
    ts_ms   bigint,
    source  jsonb,
    before  jsonb,
    after   jsonb);
COMMENT ON TYPE pipeline.debezium_event IS
    'a Debezium change event as a pipeline with format => ''debezium'' reads it';
CREATE FUNCTION pipeline.debezium_event(event jsonb, known_columns text[] DEFAULT NULL,
                                        apply_truncates boolean DEFAULT false)
    RETURNS pipeline.debezium_event
    AS 'MODULE_PATHNAME', 'pipeline_debezium_event'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.debezium_event(jsonb, text[], boolean) IS
    'reads a Debezium change event (envelope, with or without schema, or flattened record; NULL: a tombstone): its op, its row (after, or before for a delete; {} for a truncate, an error unless apply_truncates) with logical types decoded, lsn, ts_ms, source and images; errors for an event it cannot follow exactly';

CREATE FUNCTION pipeline.allow_extract(pipeline_name text, extract_xid xid8) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_allow_extract'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.allow_extract(text, xid8) IS
    'lets an extract of a format snapshot pipeline (the source transaction that staged it) delete more than max_delete_share of the target';
CREATE FUNCTION pipeline.skip_extract(pipeline_name text, extract_xid xid8) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_skip_extract'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.skip_extract(text, xid8) IS
    'makes a format snapshot pipeline pass over an extract (the source transaction that staged it) without applying it';
CREATE FUNCTION pipeline.close_extract(pipeline_name text, extract_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_close_extract'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.close_extract(text, text) IS
    'says that an extract of a format snapshot pipeline with extract_id (and every earlier one) is staged whole: it is applied without waiting for the next';
CREATE FUNCTION pipeline.run_shard_statement(source_shard text, target_shard text, statement text,
                                             statement_search_path text, timeout_ms integer,
                                             skipped_shards text[], batch_size bigint)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pipeline_run_shard_statement'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.run_shard_statement(text, text, text, text, integer, text[], bigint) IS
    'internal: on a Citus worker, a sharded pipeline''s batch over one pair of co-located shards (none for a shard among skipped_shards), as the caller in a security-restricted operation; rows failing alone are left out and returned';
CREATE FUNCTION pipeline.refuse_extract_row(row_extract text, current_extract text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_refuse_extract_row'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.refuse_extract_row(text, text) IS
    'internal: the error of a row staged for an extract other than the one being applied (quarantined with it)';
CREATE FUNCTION pipeline.refuse_extract(pipeline_name text, extract_xid xid8, deleting bigint, live bigint,
                                        max_delete_share real)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_refuse_extract'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.refuse_extract(text, xid8, bigint, bigint, real) IS
    'internal: the error of an extract that would delete more than max_delete_share of the target';

/* The OpenLineage transport (issue 17): why the shipper gave an event up. */
ALTER TABLE pipeline.openlineage_run_events ADD COLUMN delivery_error text;
COMMENT ON TABLE pipeline.openlineage_run_events IS
    'the OpenLineage events of every run, in order, as facts (run and event type), kept pipeline.openlineage_retention once acknowledged and pipeline.openlineage_unshipped_retention until then; pipeline.openlineage_outbox adds each event''s JSON';
CREATE OR REPLACE VIEW pipeline.openlineage_outbox WITH (security_invoker = true) AS
    SELECT e.id, e.pipeline_id, e.run_id, e.event_type,
           pipeline.openlineage_event(e.run_id, e.event_type) AS event,
           e.created_at, e.acknowledged_at, e.delivery_error
      FROM pipeline.openlineage_run_events e;
COMMENT ON VIEW pipeline.openlineage_outbox IS
    'OpenLineage events of every run, in order, each built when read; a shipper (the transport''s, or your own) reads the unacknowledged ones and acknowledges them (openlineage_acknowledge); delivery_error says why the transport gave one up';

/* ------------------------------------------- OpenLineage HTTP transport */

/*
 * Where this database's OpenLineage events go (one row, or none: no
 * shipping), and how its shipper fares.  A background worker of the
 * database, the shipper (src/workers/shipper.c), POSTs each event of the
 * outbox, in order, to url/endpoint, as the HTTP transport of the
 * OpenLineage clients does, and acknowledges it once the endpoint answered
 * 2xx.  The API key is a credential: the table is the superuser's alone;
 * pipeline.openlineage_shipping shows the rest to monitoring roles.
 */
CREATE TABLE pipeline.openlineage_transport (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    url              text NOT NULL,
    endpoint         text NOT NULL,
    api_key          text,
    timeout_ms       integer NOT NULL,
    batch_size       integer NOT NULL,
    retry_base_ms    integer NOT NULL,
    retry_max_ms     integer NOT NULL,
    enabled          boolean NOT NULL,
    configured_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the shipper's state
    shipped_events   bigint NOT NULL DEFAULT 0,
    rejected_events  bigint NOT NULL DEFAULT 0,
    last_shipped_at  timestamptz,
    last_attempt_at  timestamptz,
    failures         integer NOT NULL DEFAULT 0,    -- in a row
    last_error       text,
    next_attempt_at  timestamptz
);
COMMENT ON TABLE pipeline.openlineage_transport IS
    'where this database''s OpenLineage events are shipped (pipeline.set_openlineage_transport), and the shipper''s state; the superuser''s alone (it holds the API key)';
SELECT pg_catalog.pg_extension_config_dump('pipeline.openlineage_transport', '');
REVOKE ALL ON pipeline.openlineage_transport FROM PUBLIC;

CREATE FUNCTION pipeline.set_openlineage_transport(
        url text,
        api_key text DEFAULT NULL,
        endpoint text DEFAULT 'api/v1/lineage',
        timeout interval DEFAULT '5 seconds',
        batch_size integer DEFAULT 100,
        retry_base interval DEFAULT '1 second',
        retry_max interval DEFAULT '5 minutes',
        enabled boolean DEFAULT true)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_set_openlineage_transport'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.set_openlineage_transport(text, text, text, interval, integer, interval, interval, boolean) IS
    'ships this database''s OpenLineage events to url/endpoint (POST, Authorization: Bearer api_key), batch_size at a time, retrying after retry_base doubling up to retry_max; replaces the transport set before';
REVOKE ALL ON FUNCTION pipeline.set_openlineage_transport(text, text, text, interval, integer, interval, interval, boolean)
    FROM PUBLIC;

CREATE FUNCTION pipeline.drop_openlineage_transport() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_drop_openlineage_transport'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.drop_openlineage_transport() IS
    'stops shipping this database''s OpenLineage events (the outbox keeps them); false when none was set';
REVOKE ALL ON FUNCTION pipeline.drop_openlineage_transport() FROM PUBLIC;

/*
 * The delivery state, for monitoring roles: never the API key, nor a
 * password, query or fragment written into the URL.
 */
CREATE VIEW pipeline.openlineage_shipping AS
    SELECT regexp_replace(t.url, '^([a-z][a-z0-9+.-]*://)(?:[^/?#@]*@)?([^?#]*).*$', '\1\2', 'i') AS url,
           t.endpoint,
           t.api_key IS NOT NULL AS has_api_key,
           t.enabled,
           (SELECT a.pid FROM pg_stat_activity a
             WHERE a.backend_type = 'pipeline shipper' AND a.datname = current_database()
             LIMIT 1) AS shipper_pid,
           o.pending_events,
           o.oldest_pending_at,
           t.shipped_events,
           t.rejected_events,
           t.last_shipped_at,
           t.last_attempt_at,
           t.failures,
           t.last_error,
           t.next_attempt_at,
           make_interval(secs => t.timeout_ms / 1000.0) AS timeout,
           t.batch_size,
           make_interval(secs => t.retry_base_ms / 1000.0) AS retry_base,
           make_interval(secs => t.retry_max_ms / 1000.0) AS retry_max,
           t.configured_at
      FROM pipeline.openlineage_transport t,
           LATERAL (SELECT count(*) AS pending_events, min(e.created_at) AS oldest_pending_at
                      FROM pipeline.openlineage_run_events e
                     WHERE e.acknowledged_at IS NULL) o;
COMMENT ON VIEW pipeline.openlineage_shipping IS
    'the OpenLineage transport of this database and how its shipper fares: events waiting, shipped, rejected, the last error and the next attempt';
REVOKE ALL ON pipeline.openlineage_shipping FROM PUBLIC;
GRANT SELECT ON pipeline.openlineage_shipping TO pg_monitor;

/* Alert delivery and failure policies (issue 17). */
ALTER TABLE pipeline.pipeline_defs
    ADD COLUMN retry_base_ms integer CHECK (retry_base_ms > 0),
    ADD COLUMN retry_max_ms integer CHECK (retry_max_ms > 0),
    ADD COLUMN suspend_after_failures integer CHECK (suspend_after_failures >= 0);
ALTER TABLE pipeline.alerts
    DROP CONSTRAINT alerts_kind_check,
    ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('freshness', 'pipeline', 'check', 'step')),
    ADD COLUMN severity text,
    ADD COLUMN relation regclass,
    ADD COLUMN step_id bigint REFERENCES pipeline.steps (id) ON DELETE CASCADE;
UPDATE pipeline.alerts
   SET severity = CASE WHEN state IN ('PASS', 'idle') THEN 'info' WHEN state = 'suspended' THEN 'critical'
                       WHEN state IN ('FAIL', 'failing') THEN 'error' ELSE 'warning' END,
       relation = coalesce((SELECT f.relation FROM pipeline.freshness_checks f WHERE f.id = check_id),
                           (SELECT d.target FROM pipeline.pipeline_defs d WHERE d.id = pipeline_id));
UPDATE pipeline.alerts SET payload = payload || jsonb_build_object('severity', severity);
ALTER TABLE pipeline.alerts
    ALTER COLUMN severity SET NOT NULL,
    ADD CONSTRAINT alerts_severity_check CHECK (severity IN ('info', 'warning', 'error', 'critical'));

/* ------------------------------------------------------- alert delivery */

/*
 * Webhooks that alerts are delivered to.  An alert raised (a row of
 * pipeline.alerts) gets a delivery for each enabled route it matches, in
 * the transaction that raised it; the database's shipper
 * (src/workers/shipper.c) posts each route's deliveries in order, as the
 * route's format says (a generic JSON payload, or Slack's), retrying a
 * route that fails after its own backoff.  A route carries only the alerts
 * its owner may see (those of the roles it is a member of).  Its URL is a
 * credential (a Slack webhook URL is): the table is the superuser's alone;
 * pipeline.alert_delivery shows the rest to monitoring roles.
 */
CREATE TABLE pipeline.alert_routes (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text NOT NULL UNIQUE,
    url               text NOT NULL,
    format            text NOT NULL CHECK (format IN ('json', 'slack')),
    owner             regrole NOT NULL,     -- it carries the alerts this role may see
    kinds             text[],               -- NULL: every kind
    pipelines         text[],               -- NULL: every pipeline and step (and the alerts of none)
    relations         regclass[],           -- NULL: every relation (and the alerts of none)
    min_severity      text NOT NULL CHECK (min_severity IN ('info', 'warning', 'error', 'critical')),
    timeout_ms        integer NOT NULL,
    retry_base_ms     integer NOT NULL,
    retry_max_ms      integer NOT NULL,
    enabled           boolean NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the shipper's state
    delivered_alerts  bigint NOT NULL DEFAULT 0,
    rejected_alerts   bigint NOT NULL DEFAULT 0,
    last_delivered_at timestamptz,
    last_attempt_at   timestamptz,
    failures          integer NOT NULL DEFAULT 0,   -- in a row
    last_error        text,
    next_attempt_at   timestamptz
);
COMMENT ON TABLE pipeline.alert_routes IS
    'webhooks alerts are delivered to (pipeline.add_alert_route): which alerts each carries, and how its deliveries fare; the superuser''s alone (a webhook URL is a credential)';
SELECT pg_catalog.pg_extension_config_dump('pipeline.alert_routes', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.alert_routes_id_seq', '');
REVOKE ALL ON pipeline.alert_routes FROM PUBLIC;

CREATE TABLE pipeline.alert_deliveries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id       bigint NOT NULL REFERENCES pipeline.alerts (id) ON DELETE CASCADE,
    route_id       bigint NOT NULL REFERENCES pipeline.alert_routes (id) ON DELETE CASCADE,
    delivered_at   timestamptz,
    delivery_error text                    -- why the shipper gave it up (delivered_at set)
);
CREATE INDEX ON pipeline.alert_deliveries (route_id, id) WHERE delivered_at IS NULL;
CREATE INDEX ON pipeline.alert_deliveries (alert_id);
COMMENT ON TABLE pipeline.alert_deliveries IS
    'each alert to deliver to each route it matched, in order; kept as long as its alert (pipeline.history_retention)';
REVOKE ALL ON pipeline.alert_deliveries FROM PUBLIC;

/* How much an alert matters, for min_severity. */
CREATE FUNCTION pipeline.severity_rank(severity text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT array_position(ARRAY['info', 'warning', 'error', 'critical'], severity) $$;
COMMENT ON FUNCTION pipeline.severity_rank(text) IS
    'internal: 1 for info, 2 warning, 3 error, 4 critical';

CREATE FUNCTION pipeline.add_alert_route(
        name text,
        url text,
        format text DEFAULT 'json',
        owner regrole DEFAULT NULL,
        kinds text[] DEFAULT NULL,
        pipelines text[] DEFAULT NULL,
        relations regclass[] DEFAULT NULL,
        min_severity text DEFAULT 'warning',
        timeout interval DEFAULT '5 seconds',
        retry_base interval DEFAULT '1 second',
        retry_max interval DEFAULT '5 minutes',
        enabled boolean DEFAULT true)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pipeline_add_alert_route'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.add_alert_route(text, text, text, regrole, text[], text[], regclass[], text, interval, interval, interval, boolean) IS
    'delivers the alerts owner may see (NULL: the caller''s; of those kinds, pipelines and relations, at least min_severity) to a webhook: format json (the alert) or slack; replaces the route of that name';
REVOKE ALL ON FUNCTION pipeline.add_alert_route(text, text, text, regrole, text[], text[], regclass[], text, interval, interval, interval, boolean)
    FROM PUBLIC;

CREATE FUNCTION pipeline.drop_alert_route(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_drop_alert_route'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.drop_alert_route(text) IS
    'stops delivering alerts to a route, its pending deliveries with it; false when there was none of that name';
REVOKE ALL ON FUNCTION pipeline.drop_alert_route(text) FROM PUBLIC;

/* Slack's escapes: a name or message holding <!channel> pings no one. */
CREATE FUNCTION pipeline.slack_escape(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT replace(replace(replace(value, '&', '&amp;'), '<', '&lt;'), '>', '&gt;') $$;
COMMENT ON FUNCTION pipeline.slack_escape(text) IS
    'internal: text escaped for a Slack message (&, <, >)';

/* The body posted for an alert: the alert itself, or Slack's message. */
CREATE FUNCTION pipeline.alert_webhook_body(alert_id bigint, format text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
      SELECT CASE format
             WHEN 'slack' THEN jsonb_build_object('text',
                 format('[%s] %s %s in database %s: %s → %s%s', upper(a.severity), a.kind,
                        pipeline.slack_escape(a.subject), pipeline.slack_escape(a.payload->>'database'),
                        coalesce(a.previous_state, 'none'), a.state,
                        coalesce(E'\n' || pipeline.slack_escape(a.message), '')))
             ELSE a.payload || jsonb_build_object('id', a.id)
             END
        FROM pipeline.alerts a WHERE a.id = alert_id
    $$;
COMMENT ON FUNCTION pipeline.alert_webhook_body(bigint, text) IS
    'internal: the body a route posts for an alert: the alert''s payload with its id (json), or a Slack message (slack)';
REVOKE ALL ON FUNCTION pipeline.alert_webhook_body(bigint, text) FROM PUBLIC;

/*
 * The delivery state of each route, for monitoring roles: the URL only up
 * to its host (a webhook's path is often its secret).
 */
CREATE VIEW pipeline.alert_delivery AS
    SELECT r.name AS route,
           regexp_replace(r.url, '^([a-z][a-z0-9+.-]*://)(?:[^/?#@]*@)?([^/?#]*).*$', '\1\2', 'i') AS url_host,
           r.format, r.owner, r.kinds, r.pipelines, r.relations, r.min_severity, r.enabled,
           d.pending_alerts, d.oldest_pending_at,
           r.delivered_alerts, r.rejected_alerts, r.last_delivered_at, r.last_attempt_at,
           r.failures, r.last_error, r.next_attempt_at,
           make_interval(secs => r.timeout_ms / 1000.0) AS timeout,
           make_interval(secs => r.retry_base_ms / 1000.0) AS retry_base,
           make_interval(secs => r.retry_max_ms / 1000.0) AS retry_max,
           r.created_at
      FROM pipeline.alert_routes r,
           LATERAL (SELECT count(*) AS pending_alerts, min(a.raised_at) AS oldest_pending_at
                      FROM pipeline.alert_deliveries x JOIN pipeline.alerts a ON a.id = x.alert_id
                     WHERE x.route_id = r.id AND x.delivered_at IS NULL) d;
COMMENT ON VIEW pipeline.alert_delivery IS
    'each alert route and how its deliveries fare: alerts waiting, delivered, given up, the last error and the next attempt';
REVOKE ALL ON pipeline.alert_delivery FROM PUBLIC;
GRANT SELECT ON pipeline.alert_delivery TO pg_monitor;

/* Each pipeline's retries and suspension, when not the settings'. */
CREATE FUNCTION pipeline.set_failure_policy(
        pipeline_name text,
        retry_base interval DEFAULT NULL,
        retry_max interval DEFAULT NULL,
        suspend_after_failures integer DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_set_failure_policy'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.set_failure_policy(text, interval, interval, integer) IS
    'a pipeline''s or a step''s own retry delays and suspension after failures in a row; NULL: pipeline.retry_base, pipeline.retry_max, pipeline.suspend_after_failures';

-- Definitions as code: pipeline.export() writes every definition the
-- calling role may see as one JSON document, in the terms of the calls that
-- make them (create_pipeline, add_check, set_failure_policy, create_step,
-- add_freshness_check, set_retention, add_alert_route), defaults left out;
-- pipeline.apply(document) makes the database match a document, through
-- those same calls, as the calling role (doc/reference.md, "Definitions as
-- code").  A document is made of items, each one call: export and apply
-- both flatten a document into items (definition_items), and apply diffs
-- the items by identity.

-- An object without its members whose value is JSON null (those nested
-- inside are kept: a columns object maps a left-out column to null).
CREATE FUNCTION pipeline.definition_strip(object jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') FROM jsonb_each(object) e WHERE jsonb_typeof(e.value) <> 'null'
$$;
COMMENT ON FUNCTION pipeline.definition_strip(jsonb) IS
    'an object without its members whose value is JSON null (nested ones kept)';

-- "a string", "an array": what a JSON value is, for error messages.
CREATE FUNCTION pipeline.definition_kind_of(given jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT CASE WHEN jsonb_typeof(given) IN ('array', 'object') THEN 'an ' ELSE 'a ' END || jsonb_typeof(given) $$;
COMMENT ON FUNCTION pipeline.definition_kind_of(jsonb) IS
    'what a JSON value is ("a string", "an array"), for the errors of pipeline.apply';

-- A member of a document's path, as jq writes it: .name, or ["any name"].
CREATE FUNCTION pipeline.definition_step(name text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT CASE WHEN name ~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN '.' || name ELSE '[' || to_jsonb(name)::text || ']' END $$;
COMMENT ON FUNCTION pipeline.definition_step(text) IS
    'a member of a pipeline document''s path as jq writes it: .name or ["any name"]';

-- The SQL a document value passes as an argument of type 'type', or an
-- error naming 'path' when the value is not of that type.
CREATE FUNCTION pipeline.definition_argument(path text, given jsonb, type regtype, made text[] DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    wanted text := CASE
        WHEN type IN ('bigint'::regtype, 'integer'::regtype, 'real'::regtype, 'double precision'::regtype) THEN 'number'
        WHEN type = 'boolean'::regtype THEN 'boolean'
        WHEN type IN ('text[]'::regtype, 'regclass[]'::regtype) THEN 'array'
        WHEN type = 'jsonb'::regtype THEN NULL
        ELSE 'string' END;
    refused text;
BEGIN
    IF pg_catalog.jsonb_typeof(given) = 'null' THEN
        RETURN 'NULL::' || type::text;
    END IF;
    IF wanted IS NOT NULL AND (pg_catalog.jsonb_typeof(given) <> wanted OR wanted = 'array' AND
           EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(given) = 'array' THEN given ELSE '[]' END) e
                    WHERE pg_catalog.jsonb_typeof(e) <> 'string')) THEN
        RAISE EXCEPTION 'invalid pipeline document at %', path
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('The value must be %s; it is %s.',
                                  CASE wanted WHEN 'array' THEN 'an array of strings' ELSE 'a ' || wanted END,
                                  CASE WHEN pg_catalog.jsonb_typeof(given) = 'array' THEN 'an array of ' ||
                                       (SELECT pg_catalog.string_agg(DISTINCT pg_catalog.jsonb_typeof(e) || 's', ' and ') FROM pg_catalog.jsonb_array_elements(given) e)
                                  ELSE pipeline.definition_kind_of(given) END),
                  HINT = pg_catalog.format('Write it as the argument of type %s of the function that makes it.', type);
    END IF;
    -- a value its type refuses (an interval, a fraction for an integer, a
    -- relation that does not exist but for one the document makes) is
    -- refused at its place
    IF wanted IN ('string', 'number') AND NOT (type = 'regclass'::regtype AND pipeline.definition_relation(given #>> '{}') = ANY (coalesce(made, '{}'))) THEN
        BEGIN
            EXECUTE pg_catalog.format('SELECT %L::%s', given #>> '{}', type);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS refused = MESSAGE_TEXT;
            RAISE EXCEPTION 'invalid pipeline document at %', path
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = pg_catalog.format('The value is not of type %s: %s.', type, refused),
                      HINT = CASE WHEN type = 'regclass'::regtype THEN 'Name a table that exists, schema-qualified.'
                                  ELSE pg_catalog.format('Write it as the argument of type %s of the function that makes it.', type) END;
        END;
    END IF;
    -- each relation of an array, at its place in it
    IF type = 'regclass[]'::regtype THEN
        PERFORM pipeline.definition_argument(path || '[' || (e.n - 1) || ']', e.v, 'regclass', made)
           FROM pg_catalog.jsonb_array_elements(given) WITH ORDINALITY e(v, n);
    END IF;
    RETURN CASE
        WHEN wanted = 'array' THEN pg_catalog.format('ARRAY(SELECT pg_catalog.jsonb_array_elements_text(%L::jsonb))::%s', given, type)
        WHEN wanted IS NULL THEN pg_catalog.format('%L::jsonb', given)
        ELSE pg_catalog.format('%L::%s', given #>> '{}', type) END;
END $$;
COMMENT ON FUNCTION pipeline.definition_argument(text, jsonb, regtype, text[]) IS
    'apply: the SQL passing a document value as an argument of a type, or an error naming its place';

-- "SELECT f(a => ..., b => ...)": a call of 'function' with the fixed
-- arguments 'fixed' and those of the document object 'args' at 'path'
-- (each checked against the function's parameters: an unknown key or a
-- value of the wrong type is an error naming its place).
CREATE FUNCTION pipeline.definition_call(path text, function regprocedure, fixed jsonb, args jsonb,
                                         made text[] DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
#variable_conflict use_column
DECLARE
    params text[];
    types oid[];
    list text[] := '{}';
    entry record;
    i integer;
    missing text;
BEGIN
    SELECT proargnames, ARRAY(SELECT pg_catalog.unnest(proargtypes)) INTO params, types FROM pg_catalog.pg_proc WHERE oid = function;
    -- an argument without a default is needed
    SELECT p INTO missing FROM pg_catalog.pg_proc f, pg_catalog.unnest(params[1:f.pronargs - f.pronargdefaults]) p
     WHERE f.oid = function AND NOT (fixed || args) ? p LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'invalid pipeline document at %', path
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('%s needs %s.', function::regproc, pg_catalog.quote_ident(missing)),
                  HINT = pg_catalog.format('Give it %s.', pg_catalog.quote_ident(missing));
    END IF;
    FOR entry IN SELECT key, value FROM pg_catalog.jsonb_each(fixed || args) ORDER BY key LOOP
        i := pg_catalog.array_position(params, entry.key);
        IF i IS NULL OR entry.key = ANY (ARRAY(SELECT pg_catalog.jsonb_object_keys(fixed))) AND args ? entry.key THEN
            RAISE EXCEPTION 'invalid pipeline document at %', path || pipeline.definition_step(entry.key)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = pg_catalog.format('%s takes no %s%s.', function::regproc,
                                      pg_catalog.quote_ident(entry.key),
                                      CASE WHEN i IS NOT NULL THEN ' here: the document says it elsewhere' END),
                      HINT = pg_catalog.format('Its keys are the arguments of %s: %s.', function::regproc,
                                    pg_catalog.array_to_string(ARRAY(SELECT p FROM pg_catalog.unnest(params) p
                                                          WHERE NOT fixed ? p ORDER BY p), ', '));
        END IF;
        list := list || pg_catalog.format('%I => %s', entry.key,
                               pipeline.definition_argument(path || pipeline.definition_step(entry.key), entry.value, types[i]::regtype,
                                                           made));
    END LOOP;
    RETURN pg_catalog.format('SELECT %I.%I(%s)', (SELECT n.nspname FROM pg_catalog.pg_proc f JOIN pg_catalog.pg_namespace n
                                                    ON n.oid = f.pronamespace WHERE f.oid = function),
                             (SELECT f.proname FROM pg_catalog.pg_proc f WHERE f.oid = function),
                             pg_catalog.array_to_string(list, ', '));
END $$;
COMMENT ON FUNCTION pipeline.definition_call(text, regprocedure, jsonb, jsonb, text[]) IS
    'apply: the call making a document item, its keys and values checked against the function''s parameters';

-- The object at 'path' of a document, or an error when it is not one.
CREATE FUNCTION pipeline.definition_object(path text, given jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF given IS NULL OR jsonb_typeof(given) = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(given) <> 'object' THEN
        RAISE EXCEPTION 'invalid pipeline document at %', path
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value must be an object; it is %s.', pipeline.definition_kind_of(given)),
                  HINT = 'See pipeline.export() for the shape of a document.';
    END IF;
    RETURN given;
END $$;
COMMENT ON FUNCTION pipeline.definition_object(text, jsonb) IS
    'apply: the JSON object at a place of a document, or an error naming it';

-- A document's items: one row per call that makes a definition -- its kind,
-- its identity (unique within the kind; a check's is [pipeline, check] as
-- JSON), where it is in the document, the pipeline it belongs to, and the
-- call's arguments as the document writes them.  Errors naming the place
-- of anything that is not where it may be.
CREATE FUNCTION pipeline.definition_items(document jsonb)
    RETURNS TABLE (kind text, identity text, path text, pipeline text, args jsonb)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    p record;
    c record;
    f record;
    section record;
    unknown text;
    fpath text;
BEGIN
    IF document IS NULL OR jsonb_typeof(document) <> 'object' THEN
        RAISE EXCEPTION 'invalid pipeline document'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('A document is a JSON object; this is %s.', coalesce(pipeline.definition_kind_of(document), 'NULL')),
                  HINT = 'See pipeline.export() for the shape of a document.';
    END IF;
    SELECT k INTO unknown FROM jsonb_object_keys(document) k
     WHERE k NOT IN ('version', 'pipelines', 'steps', 'freshness_checks', 'retention', 'alert_routes') ORDER BY k LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'invalid pipeline document at %', pipeline.definition_step(unknown)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('A document has no section %s.', quote_ident(unknown)),
                  HINT = 'Its sections are version, pipelines, steps, freshness_checks, retention and alert_routes.';
    END IF;
    IF document ? 'version' AND document->'version' <> '1' THEN
        RAISE EXCEPTION 'invalid pipeline document at .version'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('This extension reads documents of version 1; this one says %s.', document->'version'),
                  HINT = 'Export the document again with this version of the extension.';
    END IF;
    -- a section given is made whole: null is no empty section, but a mistake
    FOR unknown IN SELECT k FROM jsonb_object_keys(document) k WHERE k <> 'version' ORDER BY k LOOP
        IF jsonb_typeof(document->unknown) <> 'object' THEN
            RAISE EXCEPTION 'invalid pipeline document at %', pipeline.definition_step(unknown)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('A section must be an object; it is %s.', pipeline.definition_kind_of(document->unknown)),
                      HINT = 'Write {} to have none, or leave the section out to leave it alone.';
        END IF;
    END LOOP;
    FOR p IN SELECT key, value FROM jsonb_each(pipeline.definition_object('.pipelines', document->'pipelines')) ORDER BY key LOOP
        fpath := '.pipelines' || pipeline.definition_step(p.key);
        kind := 'pipeline'; identity := p.key; path := fpath; pipeline := p.key;
        args := pipeline.definition_object(fpath, p.value) - 'checks' - 'failure_policy';
        RETURN NEXT;
        FOR c IN SELECT key, value FROM jsonb_each(pipeline.definition_object(fpath || '.checks', p.value->'checks')) ORDER BY key LOOP
            kind := 'check'; identity := jsonb_build_array(p.key, c.key)::text; path := fpath || '.checks' || pipeline.definition_step(c.key);
            args := pipeline.definition_object(path, c.value);
            RETURN NEXT;
        END LOOP;
        IF p.value->'failure_policy' IS NOT NULL AND jsonb_typeof(p.value->'failure_policy') <> 'null' THEN
            kind := 'failure_policy'; identity := p.key; path := fpath || '.failure_policy';
            args := pipeline.definition_object(path, p.value->'failure_policy');
            RETURN NEXT;
        END IF;
    END LOOP;
    FOR p IN SELECT key, value FROM jsonb_each(pipeline.definition_object('.steps', document->'steps')) ORDER BY key LOOP
        fpath := '.steps' || pipeline.definition_step(p.key);
        kind := 'step'; identity := p.key; path := fpath; pipeline := p.key;
        args := pipeline.definition_object(fpath, p.value) - 'failure_policy';
        RETURN NEXT;
        IF p.value->'failure_policy' IS NOT NULL AND jsonb_typeof(p.value->'failure_policy') <> 'null' THEN
            kind := 'step_failure_policy'; identity := p.key; path := fpath || '.failure_policy';
            args := pipeline.definition_object(path, p.value->'failure_policy');
            RETURN NEXT;
        END IF;
    END LOOP;
    FOR section IN SELECT * FROM (VALUES ('freshness_checks', 'freshness_check'), ('retention', 'retention'),
                                         ('alert_routes', 'alert_route')) v(name, kind) LOOP
        FOR f IN SELECT key, value FROM jsonb_each(pipeline.definition_object('.' || section.name, document->section.name))
                  ORDER BY key LOOP
            kind := section.kind; identity := f.key; pipeline := NULL;
            path := '.' || section.name || pipeline.definition_step(f.key);
            args := pipeline.definition_object(path, f.value);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;
COMMENT ON FUNCTION pipeline.definition_items(jsonb) IS
    'a document''s items, one per call that makes a definition: kind, identity, place, pipeline, arguments';

-- The table a change log mirrors: the target of the pipelines writing it,
-- or the captured table (NULL for any other relation, or for the target of
-- pipelines row-level security hides from the caller: no function of the
-- extension is SECURITY DEFINER).
CREATE FUNCTION pipeline.change_log_relation(log regclass) RETURNS regclass
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT coalesce((SELECT u.target FROM pipeline.pipeline_defs u WHERE u.change_log = log ORDER BY u.id LIMIT 1),
                (SELECT c.relation FROM pipeline.captures c WHERE c.change_log = log))
$$;
COMMENT ON FUNCTION pipeline.change_log_relation(regclass) IS
    'the table a change log mirrors (a pipeline target, a captured table), or NULL';

-- The arguments of create_pipeline that made a pipeline, as a document
-- writes them: the source as given (a pipeline reading another's target,
-- or a captured table, is stored reading its change log), the defaults the
-- definition filled in left out (delete_when of a change log, an
-- aggregate's source_key from the mirrored table's primary key, the
-- defaults of a format, the __deleted column of hard_deletes
-- 'new_record'), except_columns as the columns object keeps them
-- ({"column": null}).  A change log's deletes turned off are written
-- "false": an empty delete_when would get the default again.
CREATE FUNCTION pipeline.pipeline_arguments(d pipeline.pipeline_defs) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'source', coalesce(up.target, d.source)::text,
    'owner', CASE WHEN d.owner::oid <> current_user::regrole::oid THEN d.owner::text END,
    'target', d.target::text,
    'key', to_jsonb(d.key),
    'strategy', nullif(d.strategy, 'merge'),
    'sequence_by', CASE WHEN d.format = 'debezium' AND d.strategy IN ('merge', 'aggregate')
                             AND d.sequence_by = '_lsn' THEN NULL ELSE d.sequence_by END,
    'delete_when', CASE WHEN up.target IS NOT NULL AND d.strategy <> 'append'
                        THEN CASE WHEN d.delete_when = '_op = ''delete''' THEN NULL
                                  ELSE coalesce(d.delete_when, 'false') END
                        WHEN d.format = 'debezium' AND d.strategy <> 'append' AND d.delete_when = '_op = ''d'''
                        THEN NULL
                        ELSE d.delete_when END,
    'columns', nullif(CASE WHEN d.hard_deletes = 'new_record' THEN d.columns - '__deleted' ELSE d.columns END,
                      '{}'),
    'filter', d.filter,
    'on_schema_change', nullif(d.on_schema_change, 'ignore'),
    'batch_size', nullif(d.batch_size, 100000),
    'schedule', nullif(d.schedule, 'manual'),
    'tombstone_retention', nullif(d.tombstone_retention, '7 days')::text,
    'statement_timeout', d.statement_timeout::text,
    'track_history', to_jsonb(d.track_history),
    'source_key', CASE WHEN up.target IS NOT NULL AND d.strategy = 'aggregate'
                            AND d.source_key = ARRAY(SELECT a.attname::text FROM pg_index i
                                                     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                                                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                                     WHERE i.indrelid = up.target AND i.indisprimary ORDER BY k.n)
                       THEN NULL ELSE to_jsonb(d.source_key) END,
    'group_filter', d.group_filter,
    'joins', (SELECT jsonb_agg(jsonb_build_object(
                  'table', j.dimension::text, 'as', j.alias, 'type', j.kind,
                  'on', (SELECT jsonb_object_agg(s, c) FROM unnest(j.source_columns, j.dimension_columns) u(s, c)))
                  ORDER BY j.position)
              FROM pipeline.pipeline_joins j WHERE j.pipeline_id = d.id),
    'format', d.format,
    'ignore_null_updates', to_jsonb(d.ignore_null_updates),
    'hard_deletes', CASE WHEN d.format = 'snapshot' AND d.hard_deletes = CASE d.strategy WHEN 'scd2' THEN 'invalidate'
                                                                           ELSE 'delete' END
                         THEN NULL ELSE d.hard_deletes END,
    'max_delete_share', CASE WHEN d.format = 'snapshot' AND d.max_delete_share = 0.5 THEN NULL ELSE d.max_delete_share END,
    'on_truncate', CASE WHEN d.format = 'debezium' AND d.on_truncate = 'quarantine' THEN NULL ELSE d.on_truncate END,
    'extract_id', d.extract_id))
FROM (SELECT pipeline.change_log_relation(d.source) AS target) up
$$;
COMMENT ON FUNCTION pipeline.pipeline_arguments(pipeline.pipeline_defs) IS
    'export: the create_pipeline arguments that made a pipeline, defaults left out';

-- The arguments of add_check that made a check (its kind but the default,
-- expression; its action but the default, quarantine).
CREATE FUNCTION pipeline.check_arguments(c pipeline.checks) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'kind', nullif(c.kind, 'expression'), 'expression', c.expression, 'column_name', c.column_name,
    'accepted_values', to_jsonb(c.accepted_values), 'min_value', c.min_value, 'max_value', c.max_value,
    'pattern', c.pattern, 'ref_table', c.ref_table::text, 'ref_column', c.ref_column,
    'unique_scope', c.unique_scope, 'min_rows', c.min_rows, 'max_rows', c.max_rows,
    'action', nullif(c.action, 'quarantine'), 'warn_if', c.warn_if, 'error_if', c.error_if, 'mostly', c.mostly))
$$;
COMMENT ON FUNCTION pipeline.check_arguments(pipeline.checks) IS
    'export: the add_check arguments that made a check, defaults left out';

-- The arguments of create_step that made a step: its upstreams in their
-- order, the relations it declares, its owner when not the caller, the
-- defaults left out.
CREATE FUNCTION pipeline.step_arguments(s pipeline.steps) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'command', s.command,
    'owner', CASE WHEN s.owner::oid <> current_user::regrole::oid THEN s.owner::text END,
    'after', (SELECT jsonb_agg(coalesce(d.name, o.name) ORDER BY u.position)
                FROM pipeline.step_upstreams u
                LEFT JOIN pipeline.pipeline_defs d ON d.id = u.upstream_pipeline
                LEFT JOIN pipeline.steps o ON o.id = u.upstream_step
               WHERE u.step_id = s.id),
    'statement_timeout', s.statement_timeout::text,
    'reads', (SELECT jsonb_agg(r::text) FROM unnest(s.reads) r),
    'writes', (SELECT jsonb_agg(w::text) FROM unnest(s.writes) w),
    'schedule', nullif(s.schedule, 'manual')))
$$;
COMMENT ON FUNCTION pipeline.step_arguments(pipeline.steps) IS
    'export: the create_step arguments that made a step, defaults left out';

-- A failure policy as a document writes it (NULL when it is the settings').
CREATE FUNCTION pipeline.failure_policy_arguments(retry_base_ms integer, retry_max_ms integer,
                                                  suspend_after_failures integer) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT nullif(pipeline.definition_strip(jsonb_build_object(
    'retry_base', (retry_base_ms * interval '1 ms')::text,
    'retry_max', (retry_max_ms * interval '1 ms')::text,
    'suspend_after_failures', suspend_after_failures)), '{}')
$$;
COMMENT ON FUNCTION pipeline.failure_policy_arguments(integer, integer, integer) IS
    'export: the set_failure_policy arguments of a pipeline''s or step''s own policy';

-- A freshness check's name in a document: its relation, then its column in
-- parentheses and its filter after "where", when it has them, and its
-- owner after "by" when that is not the caller.
CREATE FUNCTION pipeline.freshness_label(relation text, column_name text, filter text, owner text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT relation || coalesce(' (' || column_name || ')', '') || coalesce(' where ' || filter, '')
       || coalesce(' by ' || nullif(owner, current_user::regrole::text), '')
$$;
COMMENT ON FUNCTION pipeline.freshness_label(text, text, text, text) IS
    'a freshness check''s name in a document: relation, (column), where filter, by owner (another role)';

-- The arguments of add_alert_route that made each alert route (the
-- superuser's: a route's URL is a credential), by name.
CREATE FUNCTION pipeline.alert_route_arguments() RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT coalesce((
        SELECT jsonb_object_agg(a.name, pipeline.definition_strip(jsonb_build_object(
                   'url', a.url, 'format', nullif(a.format, 'json'), 'owner', CASE WHEN a.owner::oid <> current_user::regrole::oid THEN a.owner::text END,
                   'kinds', to_jsonb(a.kinds), 'pipelines', to_jsonb(a.pipelines),
                   'relations', to_jsonb(a.relations::text[]),
                   'min_severity', nullif(a.min_severity, 'warning'),
                   'timeout', nullif(a.timeout_ms * interval '1 ms', interval '5 s')::text,
                   'retry_base', nullif(a.retry_base_ms * interval '1 ms', interval '1 s')::text,
                   'retry_max', nullif(a.retry_max_ms * interval '1 ms', interval '5 min')::text,
                   'enabled', nullif(a.enabled, true))))
        FROM pipeline.alert_routes a), '{}')
$$;
COMMENT ON FUNCTION pipeline.alert_route_arguments() IS
    'export: the add_alert_route arguments that made each alert route, by name (superusers)';

CREATE FUNCTION pipeline.export() RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'version', 1,
    'pipelines', coalesce((
        SELECT jsonb_object_agg(d.name, pipeline.pipeline_arguments(d)
            || pipeline.definition_strip(jsonb_build_object(
                 'checks', (SELECT jsonb_object_agg(c.name, pipeline.check_arguments(c))
                            FROM pipeline.checks c WHERE c.pipeline_id = d.id),
                 'failure_policy', pipeline.failure_policy_arguments(d.retry_base_ms, d.retry_max_ms,
                                                                     d.suspend_after_failures))))
        FROM pipeline.pipeline_defs d), '{}'),
    'steps', coalesce((
        SELECT jsonb_object_agg(s.name, pipeline.step_arguments(s)
            || pipeline.definition_strip(jsonb_build_object(
                 'failure_policy', pipeline.failure_policy_arguments(s.retry_base_ms, s.retry_max_ms,
                                                                     s.suspend_after_failures))))
        FROM pipeline.steps s), '{}'),
    'freshness_checks', coalesce((
        SELECT jsonb_object_agg(pipeline.freshness_label(f.relation::text, f.column_name, f.filter, f.owner::text),
                                pipeline.definition_strip(jsonb_build_object(
                                    'relation', f.relation::text, 'column_name', f.column_name, 'filter', f.filter,
                                    'owner', CASE WHEN f.owner::oid <> current_user::regrole::oid THEN f.owner::text END,
                                    'warn_after', f.warn_after::text, 'error_after', f.error_after::text,
                                    'deadline', f.deadline::text, 'timezone', nullif(f.timezone, 'UTC'),
                                    'schedule', f.schedule)))
        FROM pipeline.freshness_checks f WHERE pg_has_role(f.owner, 'USAGE')), '{}'),
    'retention', coalesce((
        SELECT jsonb_object_agg(r.source::text, pipeline.definition_strip(jsonb_build_object(
                   'keep', r.keep::text, 'archive', nullif(r.archive, true),
                   'compression_level', nullif(r.compression_level, 3),
                   'dictionary_size', nullif(r.dictionary_size, 0), 'batch_rows', nullif(r.batch_rows, 10000),
                   'archive_keep', r.archive_keep::text)))
        FROM pipeline.retention r JOIN pg_class s ON s.oid = r.source
        WHERE pg_has_role(s.relowner, 'USAGE')), '{}'),
    'alert_routes', CASE WHEN has_table_privilege('pipeline.alert_routes', 'SELECT')
                         THEN pipeline.alert_route_arguments() END))
$$;
COMMENT ON FUNCTION pipeline.export() IS
    'every definition the current role may see -- pipelines with their checks and failure policies, steps with theirs, freshness checks, retention, and (superusers) alert routes -- as one JSON document for pipeline.apply';

-- The function that makes an item of each kind, and the values it fills in
-- itself when given none (beside its parameters' defaults), which a
-- document may leave out.
CREATE FUNCTION pipeline.definition_function(kind text, OUT function regprocedure, OUT filled jsonb)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT CASE kind
         WHEN 'pipeline' THEN 'pipeline.create_pipeline(text, regclass, text, text[], text, text, text, jsonb, text, text, bigint, text, interval, interval, text[], text[], text, jsonb, text, text[], text[], text, real, text, text)'
         WHEN 'check' THEN 'pipeline.add_check(text, text, text, text, text, text[], text, text, text, regclass, text, text, bigint, bigint, text, text, text, double precision)'
         WHEN 'failure_policy' THEN 'pipeline.set_failure_policy(text, interval, interval, integer)'
         WHEN 'step' THEN 'pipeline.create_step(text, text, text[], interval, regclass[], regclass[], text)'
         WHEN 'step_failure_policy' THEN 'pipeline.set_failure_policy(text, interval, interval, integer)'
         WHEN 'freshness_check' THEN 'pipeline.add_freshness_check(regclass, text, interval, interval, text, text, time without time zone, text)'
         WHEN 'retention' THEN 'pipeline.set_retention(regclass, interval, boolean, integer, integer, integer, interval)'
         WHEN 'alert_route' THEN 'pipeline.add_alert_route(text, text, text, regrole, text[], text[], regclass[], text, interval, interval, interval, boolean)'
       END::regprocedure,
       CASE kind WHEN 'check' THEN '{"kind": "expression", "action": "quarantine"}'::jsonb
                 WHEN 'pipeline' THEN jsonb_build_object('owner', current_user::regrole::text)
                 WHEN 'step' THEN jsonb_build_object('owner', current_user::regrole::text)
                 WHEN 'freshness_check' THEN jsonb_build_object('owner', current_user::regrole::text)
                 WHEN 'alert_route' THEN jsonb_build_object('owner', current_user::regrole::text)
                 ELSE '{}' END
$$;
COMMENT ON FUNCTION pipeline.definition_function(text) IS
    'apply: the function making a document item of a kind, and what it fills in by default';

-- A relation's name as export writes it (schema-qualified, quoted where
-- needed), resolved with the caller's search_path; the name as given when
-- there is no such relation (yet: a target that apply creates).
CREATE FUNCTION pipeline.definition_relation(name text) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN coalesce((SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = pg_catalog.to_regclass(name)), name);
EXCEPTION WHEN invalid_name THEN
    -- (not a name: the function given it says so, at its place)
    RETURN name;
END $$;
COMMENT ON FUNCTION pipeline.definition_relation(text) IS
    'apply: a relation''s name as export writes it, resolved with the caller''s search_path';

-- An item's arguments as export writes them, to compare: relations
-- qualified, intervals and times as PostgreSQL prints them, and what
-- changes nothing left out -- JSON nulls, a parameter's default, a value
-- the function fills in by itself.
CREATE FUNCTION pipeline.definition_normal(kind text, args jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET intervalstyle = postgres
    AS $$
#variable_conflict use_column
DECLARE
    f record;
    entry record;
    i integer;
    type regtype;
    normal jsonb;
    fallback jsonb;
    result jsonb := '{}';
    params text[];
    types oid[];
BEGIN
    f := pipeline.definition_function(kind);
    SELECT proargnames, ARRAY(SELECT pg_catalog.unnest(proargtypes)) INTO params, types FROM pg_catalog.pg_proc WHERE oid = f.function;
    FOR entry IN SELECT key, value FROM pg_catalog.jsonb_each(args) LOOP
        i := pg_catalog.array_position(params, entry.key);
        -- (a pipeline's, a step's and a freshness check's owner is the document's own key)
        CONTINUE WHEN i IS NULL AND entry.key <> 'owner' OR pg_catalog.jsonb_typeof(entry.value) = 'null';
        type := CASE WHEN i IS NULL THEN 'regrole'::regtype ELSE types[i] END;
        normal := CASE
            WHEN type = 'regrole'::regtype THEN pg_catalog.to_jsonb((entry.value #>> '{}')::regrole::text)
            WHEN type = 'interval'::regtype THEN pg_catalog.to_jsonb((entry.value #>> '{}')::interval)
            WHEN type = 'time'::regtype THEN pg_catalog.to_jsonb((entry.value #>> '{}')::time)
            WHEN type = 'regclass'::regtype OR entry.key = 'target' THEN
                pg_catalog.to_jsonb(pipeline.definition_relation(entry.value #>> '{}'))
            WHEN type = 'regclass[]'::regtype THEN
                (SELECT pg_catalog.jsonb_agg(pipeline.definition_relation(r))
                   FROM pg_catalog.jsonb_array_elements_text(entry.value) r)
            ELSE entry.value END;
        EXECUTE 'SELECT pg_catalog.to_jsonb(' || coalesce(pg_catalog.pg_get_function_arg_default(f.function, i), 'NULL::text') || ')'
            INTO fallback;
        IF normal IS DISTINCT FROM fallback AND normal IS DISTINCT FROM f.filled->entry.key THEN
            result := result || pg_catalog.jsonb_build_object(entry.key, normal);
        END IF;
    END LOOP;
    RETURN result;
END $$;
COMMENT ON FUNCTION pipeline.definition_normal(text, jsonb) IS
    'apply: an item''s arguments as export writes them, to compare';

-- The call dropping an item of a kind (NULL: none; setting it again
-- replaces it, and a failure policy is dropped by setting its defaults).
CREATE FUNCTION pipeline.definition_drop(kind text, identity text, pipeline text, args jsonb) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT CASE kind
    WHEN 'pipeline' THEN format('SELECT pipeline.drop_pipeline(%L)', identity)
    WHEN 'check' THEN format('SELECT pipeline.drop_check(%L, %L)', pipeline, identity::jsonb->>1)
    WHEN 'failure_policy' THEN format('SELECT pipeline.set_failure_policy(%L)', identity)
    WHEN 'step' THEN format('SELECT pipeline.drop_step(%L)', identity)
    WHEN 'step_failure_policy' THEN format('SELECT pipeline.set_failure_policy(%L)', identity)
    WHEN 'freshness_check' THEN format('SELECT pipeline.drop_freshness_check(f.id) FROM pipeline.freshness_checks f '
                                       'WHERE f.relation = %L::regclass AND f.column_name IS NOT DISTINCT FROM %L '
                                       'AND f.filter IS NOT DISTINCT FROM %L AND f.owner = %L::regrole',
                                       args->>'relation', args->>'column_name', args->>'filter',
                                       coalesce(args->>'owner', current_user::text))
    WHEN 'retention' THEN format('SELECT pipeline.drop_retention(%L)', identity)
    WHEN 'alert_route' THEN format('SELECT pipeline.drop_alert_route(%L)', identity)
END
$$;
COMMENT ON FUNCTION pipeline.definition_drop(text, text, text, jsonb) IS
    'apply: the call dropping a definition';

-- What makes the database match 'document': one row per item of the
-- document's sections and of the database's in those sections (a section
-- the document leaves out is left alone), in the order apply makes them,
-- with the call dropping the old item (drop_sql: apply runs every drop
-- first, in drop_order) and the call making the new one (make_sql, as the
-- role run_as when the document names an owner).
CREATE FUNCTION pipeline.definition_plan(document jsonb)
    RETURNS TABLE (step integer, action text, kind text, object text, detail text, data_loss boolean,
                   drop_order integer, drop_sql text, make_sql text, run_as text)
    LANGUAGE plpgsql VOLATILE
    AS $$
#variable_conflict use_column
DECLARE
    sections text[] := ARRAY(SELECT pg_catalog.jsonb_object_keys(document)
                             WHERE pg_catalog.jsonb_typeof(document) = 'object');
    kept_reader record;
BEGIN
    CREATE TEMP TABLE pg_temp.pipeline_plan ON COMMIT DROP AS
    WITH items AS MATERIALIZED (SELECT * FROM pipeline.definition_items(document)),
    made AS MATERIALIZED (SELECT coalesce(pg_catalog.array_agg(pipeline.definition_relation(i.args->>'target')), '{}') AS targets
                            FROM items i WHERE i.kind = 'pipeline'),
    called AS MATERIALIZED (
        SELECT w.*, w.args->>'owner' AS run_as,
               pipeline.definition_call(w.path, (pipeline.definition_function(w.kind)).function,
                   CASE w.kind WHEN 'pipeline' THEN pg_catalog.jsonb_build_object('name', w.identity)
                               WHEN 'check' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline, 'check_name',
                                   w.identity::jsonb->>1)
                               WHEN 'failure_policy' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline)
                               WHEN 'step' THEN pg_catalog.jsonb_build_object('step_name', w.identity)
                               WHEN 'step_failure_policy' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline)
                               WHEN 'retention' THEN pg_catalog.jsonb_build_object('source', w.identity)
                               WHEN 'alert_route' THEN pg_catalog.jsonb_build_object('name', w.identity)
                               ELSE '{}' END,
                   CASE WHEN w.kind IN ('pipeline', 'step', 'freshness_check') THEN w.args - 'owner' ELSE w.args END,
                   (SELECT m.targets FROM made m)) AS make_sql,
               -- an owner the document names is a role (checked here, before anything changes)
               CASE WHEN w.kind IN ('pipeline', 'step', 'freshness_check') AND w.args ? 'owner'
                    THEN pipeline.definition_argument(w.path || '.owner', w.args->'owner', 'regrole') END AS owner_checked
          FROM items w),
    wanted AS (SELECT w.*, pipeline.definition_normal(w.kind, w.args) AS normal FROM called w),
    wanted_keyed AS (
        SELECT w.*, CASE w.kind
                      WHEN 'freshness_check' THEN pipeline.freshness_label(w.normal->>'relation', w.normal->>'column_name',
                                                                           w.normal->>'filter', w.normal->>'owner')
                      WHEN 'retention' THEN pipeline.definition_relation(w.identity)
                      ELSE w.identity END AS key
          FROM wanted w),
    current AS (
        SELECT c.*, c.identity AS key,
               d.strategy = 'aggregate' OR d.row_state IS NOT NULL OR d.group_state IS NOT NULL
                   OR EXISTS (SELECT 1 FROM pipeline.pipeline_joins j WHERE j.pipeline_id = d.id) AS unshapable,
               d.tombstones IS NOT NULL AS has_tombstones
          FROM pipeline.definition_items(pipeline.export()) c
          LEFT JOIN pipeline.pipeline_defs d ON c.kind = 'pipeline' AND d.name = c.identity
         WHERE CASE c.kind WHEN 'pipeline' THEN 'pipelines' WHEN 'check' THEN 'pipelines'
                           WHEN 'failure_policy' THEN 'pipelines' WHEN 'freshness_check' THEN 'freshness_checks'
                           WHEN 'step' THEN 'steps' WHEN 'step_failure_policy' THEN 'steps'
                           WHEN 'retention' THEN 'retention' ELSE 'alert_routes' END = ANY (sections)),
    compared AS (
        SELECT w.kind AS w_kind, c.kind AS c_kind, coalesce(w.kind, c.kind) AS kind, coalesce(w.key, c.key) AS key,
               coalesce(w.path, c.path) AS object, coalesce(w.pipeline, c.pipeline) AS pipeline,
               w.normal, c.args AS current_args, w.make_sql, w.run_as, c.unshapable, c.has_tombstones,
               pipeline.definition_drop(c.kind, c.identity, c.pipeline, c.args) AS drop_sql,
               ARRAY(SELECT e.key FROM pg_catalog.jsonb_each(coalesce(w.normal, '{}') || coalesce(c.args, '{}')) e
                      WHERE (w.normal->e.key) IS DISTINCT FROM (c.args->e.key) ORDER BY e.key) AS changed
          FROM wanted_keyed w FULL JOIN current c ON c.kind = w.kind AND c.key = w.key)
    SELECT x.*,
           CASE WHEN x.c_kind IS NULL THEN 'create' WHEN x.w_kind IS NULL THEN 'drop'
                WHEN x.changed = '{}' THEN 'unchanged'
                -- what alter_pipeline changes in place (not the settings that
                -- shaped the state an aggregate, joins or a row state keep)
                WHEN x.kind = 'pipeline' AND x.changed <@ ARRAY['batch_size', 'schedule', 'tombstone_retention',
                                                                 'statement_timeout', 'track_history', 'on_schema_change',
                                                                 'key', 'sequence_by', 'delete_when', 'columns', 'filter']
                     AND NOT (x.unshapable AND x.changed && ARRAY['key', 'sequence_by', 'delete_when', 'columns', 'filter'])
                     AND (x.normal ? 'key' OR NOT 'key' = ANY (x.changed))
                     THEN 'alter'
                WHEN x.kind IN ('failure_policy', 'step_failure_policy', 'retention') THEN 'alter'
                -- alter_step changes all but who owns it
                WHEN x.kind = 'step' AND NOT 'owner' = ANY (x.changed) THEN 'alter'
                WHEN x.kind = 'alert_route' THEN 'alter'
                ELSE 'replace' END AS action
      FROM compared x;

    -- a pipeline (or step) dropped or replaced takes its checks and policy
    -- with it: those of the document are made again
    UPDATE pg_temp.pipeline_plan p SET action = 'create', drop_sql = NULL
     WHERE p.kind IN ('check', 'failure_policy', 'step_failure_policy') AND p.make_sql IS NOT NULL
       AND p.pipeline IN (SELECT r.key FROM pg_temp.pipeline_plan r
                           WHERE r.kind IN ('pipeline', 'step') AND r.action IN ('drop', 'replace'));
    UPDATE pg_temp.pipeline_plan p SET drop_sql = NULL
     WHERE p.kind IN ('check', 'failure_policy', 'step_failure_policy') AND p.action = 'drop'
       AND p.pipeline IN (SELECT r.key FROM pg_temp.pipeline_plan r
                           WHERE r.kind IN ('pipeline', 'step') AND r.action IN ('drop', 'replace'));

    -- a pipeline replaced while another that stays reads its target cannot
    -- be dropped: refused here, before anything changes
    SELECT r.object, pg_catalog.string_agg(d2.name, ', ' ORDER BY d2.name) AS readers INTO kept_reader
      FROM pg_temp.pipeline_plan r
      JOIN pipeline.pipeline_defs d ON d.name = r.key
      JOIN pipeline.pipeline_defs d2 ON d2.source = d.change_log AND d2.id <> d.id
     WHERE r.kind = 'pipeline' AND r.action = 'replace'
       AND NOT EXISTS (SELECT 1 FROM pg_temp.pipeline_plan o
                        WHERE o.kind = 'pipeline' AND o.key = d2.name AND o.action IN ('drop', 'replace'))
     GROUP BY r.object ORDER BY r.object LIMIT 1;
    IF kept_reader.object IS NULL THEN
        -- nor one that steps of the document still run after
        SELECT r.object, pg_catalog.string_agg(o.key, ', ' ORDER BY o.key) AS readers INTO kept_reader
          FROM pg_temp.pipeline_plan r
          JOIN pg_temp.pipeline_plan o ON o.kind = 'step' AND o.action NOT IN ('drop', 'replace')
                                      AND o.normal->'after' ? r.key
         WHERE r.kind = 'pipeline' AND r.action = 'drop'
         GROUP BY r.object ORDER BY r.object LIMIT 1;
        IF kept_reader.object IS NOT NULL THEN
            RAISE EXCEPTION 'cannot apply % of the pipeline document: the pipeline would be dropped, and steps % run after it',
                            kept_reader.object, kept_reader.readers
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = 'The document drops the pipeline, and its steps section still names it in their after.',
                      HINT = 'Keep the pipeline, or take it out of those steps'' after.';
        END IF;
    END IF;
    IF kept_reader.object IS NOT NULL THEN
        RAISE EXCEPTION 'cannot apply % of the pipeline document: the pipeline would be dropped and made again, and % read its target',
                        kept_reader.object, kept_reader.readers
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'A pipeline other pipelines read cannot be dropped; what changed is a setting alter_pipeline does not change.',
                  HINT = 'Change only the settings alter_pipeline changes, or make the readers again too (take them out of the document, apply, put them back).';
    END IF;

    -- a step that stays but stops running after a pipeline or step, or runs
    -- after one the plan drops or makes again, would hold the drop back:
    -- before the drops, its upstreams are cut to those that stay (and an
    -- on_upstream step left with none made manual meanwhile); after the
    -- makes, its alter sets them as the document says
    ALTER TABLE pg_temp.pipeline_plan ADD COLUMN pre_sql text;
    WITH gone AS (SELECT r.key FROM pg_temp.pipeline_plan r
                   WHERE r.kind IN ('pipeline', 'step') AND r.action IN ('drop', 'replace')),
    kept AS (
        SELECT p.key, ARRAY(SELECT e.a FROM pg_catalog.jsonb_array_elements_text(p.current_args->'after')
                                            WITH ORDINALITY e(a, n)
                             WHERE coalesce(p.normal->'after', '[]') ? e.a AND e.a NOT IN (SELECT g.key FROM gone g)
                             ORDER BY e.n) AS after
          FROM pg_temp.pipeline_plan p
         WHERE p.kind = 'step' AND p.action IN ('alter', 'unchanged')
           AND EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements_text(coalesce(p.current_args->'after', '[]')) e(a)
                        WHERE NOT coalesce(p.normal->'after', '[]') ? e.a OR e.a IN (SELECT g.key FROM gone g))),
    cut AS (SELECT k.key, k.after,
                   k.after = '{}' AND p.current_args->>'schedule' = 'on_upstream' AS made_manual
              FROM kept k JOIN pg_temp.pipeline_plan p ON p.kind = 'step' AND p.key = k.key)
    UPDATE pg_temp.pipeline_plan p
       SET pre_sql = pg_catalog.format('SELECT pipeline.alter_step(step_name => %L, after => %L::text[]%s)', c.key, c.after,
                                       CASE WHEN c.made_manual THEN ', schedule => ''manual''' ELSE '' END),
           current_args = pipeline.definition_strip(p.current_args || pg_catalog.jsonb_build_object(
                              'after', CASE WHEN c.after <> '{}' THEN pg_catalog.to_jsonb(c.after) END,
                              'schedule', CASE WHEN NOT c.made_manual THEN p.current_args->'schedule' END)),
           action = 'alter'
      FROM cut c WHERE p.kind = 'step' AND p.key = c.key;
    UPDATE pg_temp.pipeline_plan p SET changed = ARRAY['after'] WHERE p.pre_sql IS NOT NULL AND p.changed = '{}';

    RETURN QUERY
    WITH RECURSIVE
    -- pipelines made, after the pipelines whose targets they read or join
    making AS (SELECT p.key, pipeline.definition_relation(p.normal->>'target') AS target,
                      ARRAY[pipeline.definition_relation(p.normal->>'source')]
                        || ARRAY(SELECT pipeline.definition_relation(j->>'table')
                                   FROM pg_catalog.jsonb_array_elements(coalesce(p.normal->'joins', '[]')) j) AS reads
                 FROM pg_temp.pipeline_plan p WHERE p.kind = 'pipeline' AND p.action IN ('create', 'replace', 'alter')),
    depth AS (SELECT m.key, m.target, 0 AS depth FROM making m
               WHERE NOT EXISTS (SELECT 1 FROM making u WHERE u.target = ANY (m.reads) AND u.key <> m.key)
              UNION ALL
              SELECT m.key, m.target, d.depth + 1 FROM making m JOIN depth d ON d.target = ANY (m.reads) AND d.key <> m.key
               WHERE d.depth < 1000),
    made_depth AS (SELECT d.key, pg_catalog.max(d.depth) AS depth FROM depth d GROUP BY d.key),
    -- steps made, after the steps they run after
    making_steps AS (SELECT p.key, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(coalesce(p.normal->'after', '[]')))
                                   AS after
                       FROM pg_temp.pipeline_plan p WHERE p.kind = 'step' AND p.action IN ('create', 'replace', 'alter')),
    step_depth AS (SELECT m.key, 0 AS depth FROM making_steps m
                    WHERE NOT EXISTS (SELECT 1 FROM making_steps u WHERE u.key = ANY (m.after) AND u.key <> m.key)
                   UNION ALL
                   SELECT m.key, d.depth + 1 FROM making_steps m JOIN step_depth d ON d.key = ANY (m.after) AND d.key <> m.key
                    WHERE d.depth < 1000),
    made_step_depth AS (SELECT d.key, pg_catalog.max(d.depth) AS depth FROM step_depth d GROUP BY d.key),
    -- steps dropped, after the steps running after them
    defined_steps AS (SELECT s.id, s.name, 0 AS depth FROM pipeline.steps s
                       WHERE NOT EXISTS (SELECT 1 FROM pipeline.step_upstreams u
                                          WHERE u.step_id = s.id AND u.upstream_step IS NOT NULL)
                      UNION ALL
                      SELECT s.id, s.name, g.depth + 1 FROM pipeline.steps s
                        JOIN pipeline.step_upstreams u ON u.step_id = s.id JOIN defined_steps g ON g.id = u.upstream_step
                       WHERE g.depth < 1000),
    defined_step_depth AS (SELECT g.name, pg_catalog.max(g.depth) AS depth FROM defined_steps g GROUP BY g.name),
    -- pipelines dropped, after the pipelines reading their targets
    defined AS (SELECT d.name, 0 AS depth FROM pipeline.pipeline_defs d
                 WHERE NOT EXISTS (SELECT 1 FROM pipeline.pipeline_defs u WHERE u.change_log = d.source)
                UNION ALL
                SELECT d.name, g.depth + 1 FROM pipeline.pipeline_defs d
                  JOIN pipeline.pipeline_defs u ON u.change_log = d.source JOIN defined g ON g.name = u.name
                 WHERE g.depth < 1000),
    defined_depth AS (SELECT g.name, pg_catalog.max(g.depth) AS depth FROM defined g GROUP BY g.name),
    ordered AS (
        SELECT p.*,
               CASE p.kind WHEN 'pipeline' THEN 1 WHEN 'step' THEN 3 WHEN 'step_failure_policy' THEN 4 ELSE 2 END
                   AS phase,
               coalesce(md.depth, sd.depth) AS make_depth, coalesce(dd.depth, ds.depth) AS drop_depth,
               CASE WHEN p.kind = 'pipeline' AND p.action IN ('drop', 'replace') THEN
                   (SELECT b.pending_rows FROM pipeline.backlog(p.key, quiet => true) b) END AS pending,
               CASE WHEN p.kind = 'pipeline' AND p.action IN ('drop', 'replace') THEN
                   (SELECT pg_catalog.count(*) FROM pipeline.quarantine q WHERE q.pipeline = p.key) END AS quarantined
          FROM pg_temp.pipeline_plan p
          LEFT JOIN made_depth md ON md.key = p.key AND p.kind = 'pipeline'
          LEFT JOIN defined_depth dd ON dd.name = p.key AND p.kind = 'pipeline'
          LEFT JOIN made_step_depth sd ON sd.key = p.key AND p.kind = 'step'
          LEFT JOIN defined_step_depth ds ON ds.name = p.key AND p.kind = 'step')
    SELECT (pg_catalog.row_number() OVER (ORDER BY o.phase, o.make_depth, o.kind, o.object))::integer,
           o.action, o.kind, o.object,
           CASE WHEN o.action IN ('create', 'unchanged') THEN NULL
                ELSE pg_catalog.concat_ws('; ',
                    CASE WHEN o.action <> 'drop' THEN 'changes ' || pg_catalog.array_to_string(o.changed, ', ') END,
                    CASE WHEN o.kind = 'pipeline' AND o.action = 'replace'
                         THEN 'dropped and made again: its cursor, history and quarantine go, and the staged rows it has not archived are read again' END,
                    CASE WHEN o.kind = 'pipeline' AND o.action = 'alter' AND 'key' = ANY (o.changed)
                         THEN 'a new key, by which the target''s rows no longer match the events' END,
                    CASE WHEN o.kind = 'pipeline' AND o.action = 'alter' AND o.has_tombstones
                         THEN 'the deletes it remembers are forgotten (an older event may bring a deleted row back)' END,
                    CASE WHEN o.pending IS NULL AND o.kind = 'pipeline' AND o.action IN ('drop', 'replace')
                         THEN 'its staged rows could not be counted' END,
                    CASE WHEN o.pending = 1 THEN 'a staged row not merged yet is left behind'
                         WHEN o.pending > 1 THEN pg_catalog.format('%s staged rows not merged yet are left behind', o.pending) END,
                    CASE WHEN o.quarantined = 1 THEN 'a quarantined row goes with it'
                         WHEN o.quarantined > 1 THEN pg_catalog.format('%s quarantined rows go with it', o.quarantined) END,
                    CASE WHEN o.kind = 'freshness_check' AND o.action = 'replace' THEN 'its results and alerts go with it' END)
           END,
           o.kind = 'pipeline' AND (o.action = 'replace'
               OR o.action = 'alter' AND ('key' = ANY (o.changed) OR o.has_tombstones)
               OR o.action = 'drop' AND (o.pending IS DISTINCT FROM 0 OR o.quarantined > 0)),
           (pg_catalog.row_number() OVER (ORDER BY CASE WHEN o.pre_sql IS NOT NULL THEN 0
                                                        WHEN o.kind = 'pipeline' THEN 2 ELSE 1 END,
                                                   -o.drop_depth, o.kind, o.object))::integer,
           CASE WHEN o.action IN ('drop', 'replace') THEN o.drop_sql ELSE o.pre_sql END,
           CASE WHEN o.action IN ('create', 'replace') OR o.action = 'alter' AND o.kind NOT IN ('pipeline', 'step')
                THEN o.make_sql
                WHEN o.action = 'alter' AND o.kind = 'pipeline' THEN
                    pipeline.definition_alter('pipeline.alter_pipeline(text, text[], text, text, jsonb, text, text, bigint, text, interval, text, interval, text[])',
                        o.key, o.normal, o.current_args,
                        '{"columns": "{}", "on_schema_change": "ignore", "batch_size": "100000", "schedule": "manual",
                          "tombstone_retention": "7 days", "statement_timeout": "0", "track_history": "{}"}')
                WHEN o.action = 'alter' THEN
                    pipeline.definition_alter('pipeline.alter_step(text, text, text[], interval, regclass[], regclass[], text)',
                        o.key, o.normal, o.current_args,
                        '{"after": "{}", "statement_timeout": "0", "reads": "{}", "writes": "{}", "schedule": "manual"}')
           END,
           o.run_as
      FROM ordered o;
    DROP TABLE pg_temp.pipeline_plan;
END $$;
COMMENT ON FUNCTION pipeline.definition_plan(jsonb) IS
    'apply: the plan making the database match a document, in order, with the calls';

-- "SELECT pipeline.alter_pipeline(...)" (or alter_step): the settings of
-- the pipeline (or step) 'name' that differ between its arguments
-- 'current' and 'wanted' (both normalised), a setting the document leaves
-- out set back to what 'defaults' says.
CREATE FUNCTION pipeline.definition_alter(alter regprocedure, name text, wanted jsonb, current jsonb, defaults jsonb)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT format('SELECT %s(%I => %L%s)', alter::regproc, p.proargnames[1], name,
              string_agg(format(', %I => %s', e.key,
                  CASE WHEN wanted ? e.key THEN pipeline.definition_argument('', wanted->e.key, t.type)
                       ELSE format('%L::%s', coalesce(defaults->>e.key, ''), t.type) END), '' ORDER BY e.key))
  FROM pg_proc p
  CROSS JOIN jsonb_each(wanted || current) e
  CROSS JOIN LATERAL (SELECT p.proargtypes[array_position(p.proargnames, e.key) - 1]::regtype AS type) t
 WHERE p.oid = alter AND wanted->e.key IS DISTINCT FROM current->e.key
 GROUP BY p.proargnames
$$;
COMMENT ON FUNCTION pipeline.definition_alter(regprocedure, text, jsonb, jsonb, jsonb) IS
    'apply: the alter_pipeline (or alter_step) call changing a definition''s settings to a document''s';

-- Runs a step of apply, as role 'run_as' when the document names an owner
-- (the caller must be a member of it), back as 'caller_role' after; an
-- error is the step's, prefixed with its place in the document.
CREATE FUNCTION pipeline.definition_execute(object text, sql text, run_as text, caller_role text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    message text;
    err_detail text;
    err_hint text;
    state text;
BEGIN
    -- (SET ROLE asks only the session's user: a role the session set
    -- itself to must be a member of the owner too)
    IF run_as IS NOT NULL AND NOT pg_catalog.pg_has_role(current_user, run_as, 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" is not a member of role "%"', current_user, run_as
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The document names it the owner of this definition, which apply makes as that role.',
                  HINT = 'Apply the document as a member of that role, or leave the owner out to own the definition yourself.';
    END IF;
    IF run_as IS NOT NULL THEN
        PERFORM pg_catalog.set_config('role', run_as, true);
    END IF;
    EXECUTE sql;
    IF run_as IS NOT NULL THEN
        PERFORM pg_catalog.set_config('role', caller_role, true);
    END IF;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, err_detail = PG_EXCEPTION_DETAIL,
                            err_hint = PG_EXCEPTION_HINT, state = RETURNED_SQLSTATE;
    RAISE EXCEPTION 'cannot apply % of the pipeline document: %', object, message
        USING ERRCODE = state,
              DETAIL = coalesce(nullif(err_detail, '') || ' ', '') || 'Nothing of the document was applied.',
              HINT = coalesce(nullif(err_hint, ''), 'Mend the document at that place.');
END $$;
COMMENT ON FUNCTION pipeline.definition_execute(text, text, text, text) IS
    'apply: runs one step of the plan (as the owner the document names), its error prefixed with its place';

CREATE FUNCTION pipeline.apply(document jsonb, dry_run boolean DEFAULT true, allow_data_loss boolean DEFAULT false)
    RETURNS TABLE (step integer, action text, kind text, object text, detail text, data_loss boolean)
    LANGUAGE plpgsql VOLATILE
    AS $$
#variable_conflict use_column
DECLARE
    plan record;
    losses text;
    caller_role text := pg_catalog.current_setting('role');
BEGIN
    IF dry_run IS NULL OR allow_data_loss IS NULL THEN
        RAISE EXCEPTION 'dry_run and allow_data_loss of pipeline.apply must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  DETAIL = 'They say whether to change anything, and whether a change may lose data.',
                  HINT = 'Pass true or false.';
    END IF;
    -- one apply at a time: each plans against what the one before did
    -- (whose changes a READ COMMITTED statement sees once it has the lock)
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.apply'));
    CREATE TEMP TABLE pg_temp.pipeline_apply_plan ON COMMIT DROP AS SELECT * FROM pipeline.definition_plan(document);
    SELECT pg_catalog.string_agg(p.object, ', ' ORDER BY p.step) INTO losses
      FROM pg_temp.pipeline_apply_plan p WHERE p.data_loss;
    IF losses IS NOT NULL AND dry_run THEN
        RAISE WARNING 'applying this pipeline document would lose data: %', losses
            USING DETAIL = 'The plan''s rows with data_loss say how.',
                  HINT = 'Apply it with allow_data_loss => true once that is what you want.';
    ELSIF losses IS NOT NULL AND NOT allow_data_loss THEN
        RAISE EXCEPTION 'applying this pipeline document would lose data: %', losses
            USING ERRCODE = 'object_in_use',
                  DETAIL = 'Nothing was changed. pipeline.apply(document) (a dry run) lists the plan and says how.',
                  HINT = 'Apply it with allow_data_loss => true once that is what you want.';
    END IF;
    IF NOT dry_run THEN
        -- every drop first (the readers of a pipeline's target before it),
        -- then every make in step order
        FOR plan IN SELECT p.object, p.drop_sql AS sql, NULL::text AS run_as FROM pg_temp.pipeline_apply_plan p
                     WHERE p.drop_sql IS NOT NULL ORDER BY p.drop_order LOOP
            PERFORM pipeline.definition_execute(plan.object, plan.sql, plan.run_as, caller_role);
        END LOOP;
        FOR plan IN SELECT p.object, p.make_sql AS sql, p.run_as FROM pg_temp.pipeline_apply_plan p
                     WHERE p.make_sql IS NOT NULL ORDER BY p.step LOOP
            PERFORM pipeline.definition_execute(plan.object, plan.sql, plan.run_as, caller_role);
        END LOOP;
    END IF;
    RETURN QUERY SELECT p.step, p.action, p.kind, p.object, p.detail, p.data_loss
                   FROM pg_temp.pipeline_apply_plan p ORDER BY p.step;
    DROP TABLE pg_temp.pipeline_apply_plan;
END $$;
COMMENT ON FUNCTION pipeline.apply(jsonb, boolean, boolean) IS
    'makes the definitions of the document''s sections match it (create, alter, replace, drop), as the current role, in one transaction; returns the plan, and with dry_run (the default) only the plan; a change that would lose data needs allow_data_loss';

-- Tests of pipelines: pipeline.test(name, rows) runs a pipeline's logic
-- over fixture rows given as JSON, in a subtransaction it rolls back, and
-- returns what would land (test_run.c; doc/reference.md, "pipeline.test").

CREATE FUNCTION pipeline.test(pipeline_name text, rows jsonb, against text DEFAULT 'current')
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pipeline_test'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.test(text, jsonb, text) IS
    'runs the pipeline over the rows given (a JSON array of staging rows) against its current target or an empty one, rolls everything back, and returns what would land: status, error, counts, target rows written, quarantined rows with reasons, check results';

-- The rows of the test under way, read by its batch statements.
CREATE FUNCTION pipeline.test_rows() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pipeline_test_rows'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION pipeline.test_rows() IS
    'internal: the rows of the pipeline.test under way in this session (NULL outside a test), which its batch statements read';

-- Orchestration steps (steps/): a statement -- REFRESH MATERIALIZED VIEW,
-- a procedure call, a cleanup -- run as its owner after the pipelines and
-- steps it follows succeeded, or by hand (doc/reference.md, "Steps").

CREATE FUNCTION pipeline.create_step(
    step_name           text,
    command             text,
    after               text[] DEFAULT NULL,
    statement_timeout   interval DEFAULT NULL,
    reads               regclass[] DEFAULT NULL,
    writes              regclass[] DEFAULT NULL,
    schedule            text DEFAULT 'manual')
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pipeline_create_step'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.create_step(text, text, text[], interval, regclass[], regclass[], text) IS
    'defines a step: one statement (REFRESH MATERIALIZED VIEW, CALL, INSERT, UPDATE, DELETE, MERGE, SELECT, TRUNCATE) run as the caller after the pipelines and steps after names succeeded; reads and writes declare lineage its command does not show (a procedure''s); schedule: manual (run_step only), on_upstream (whenever an upstream did new work), an interval or cron text; returns its id';

CREATE FUNCTION pipeline.alter_step(
    step_name           text,
    command             text DEFAULT NULL,
    after               text[] DEFAULT NULL,
    statement_timeout   interval DEFAULT NULL,
    reads               regclass[] DEFAULT NULL,
    writes              regclass[] DEFAULT NULL,
    schedule            text DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_alter_step'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.alter_step(text, text, text[], interval, regclass[], regclass[], text) IS
    'changes what is given of a step (after => ''{}'': after nothing; statement_timeout 0: no limit); its command is checked again as its owner';

CREATE FUNCTION pipeline.drop_step(step_name text, cascade boolean DEFAULT false)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_drop_step'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.drop_step(text, boolean) IS
    'drops a step and its history; refused while steps run after it, unless cascade, which drops them too';

CREATE FUNCTION pipeline.pause_step(step_name text) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_pause_step'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.pause_step(text) IS
    'pauses a step: its runs are skipped, and its scheduler starts none, until resume_step';

CREATE FUNCTION pipeline.resume_step(step_name text) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_resume_step'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.resume_step(text) IS
    'resumes a paused or suspended step';

CREATE PROCEDURE pipeline.run_step(
    step_name           text,
    force               boolean DEFAULT false,
    INOUT run_id        bigint DEFAULT NULL,
    INOUT status        text DEFAULT NULL,
    INOUT rows_affected bigint DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'pipeline_run_step'
    LANGUAGE C;
COMMENT ON PROCEDURE pipeline.run_step(text, boolean, bigint, text, bigint) IS
    'runs a step''s command once, as its owner, when every pipeline and step it runs after ended its last run successfully (force: anyway); records the run; returns its id, status (succeeded or skipped; a failure is an error) and the rows its command affected';
