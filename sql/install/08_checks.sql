/* ---------------------------------------------------- data quality checks */

/*
 * Data quality checks of a pipeline (checks.c).  Row checks are evaluated
 * on every mapped row inside the batch statement that merges it; batch
 * checks (row_count, and the thresholds of row checks) on the batch before
 * it commits.
 */
CREATE TABLE pipeline.checks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id     bigint NOT NULL
                    REFERENCES pipeline.pipeline_defs (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name <> '' AND length(name) <= 63),
    kind            text NOT NULL CHECK (kind IN ('expression', 'not_null', 'accepted_values',
                                                  'range', 'regex', 'unique', 'relationships',
                                                  'row_count')),
    action          text NOT NULL CHECK (action IN ('warn', 'drop', 'quarantine', 'fail')),
    column_name     text,
    expression      text,
    accepted_values text[],
    min_value       text,
    max_value       text,
    pattern         text,
    ref_table       regclass,
    ref_column      text,
    unique_scope    text CHECK (unique_scope IN ('batch', 'target', 'batch_and_target')),
    min_rows        bigint,
    max_rows        bigint,
    warn_if         text,
    error_if        text,
    mostly          float8 CHECK (mostly > 0 AND mostly <= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pipeline_id, name)
);
CREATE INDEX ON pipeline.checks (ref_table);
COMMENT ON TABLE pipeline.checks IS
    'data quality checks of pipelines; change them with add_check and drop_check';
COMMENT ON COLUMN pipeline.checks.action IS
    'what a failing row does: warn (kept, counted), drop (discarded, counted), quarantine (to the quarantine), fail (the run fails, its batch is not merged)';
COMMENT ON COLUMN pipeline.checks.warn_if IS
    'condition on the failing rows of a batch that makes the result WARN, such as ''> 0'' (the default) or ''>= 2%''';
COMMENT ON COLUMN pipeline.checks.error_if IS
    'condition on the failing rows of a batch that fails the run, such as ''> 100'' or ''> 5%''';
COMMENT ON COLUMN pipeline.checks.mostly IS
    'share of the rows checked (of the non-NULL values, for the kinds about values) that must pass; fewer fails the run (as in Great Expectations)';

/* The result of every check in every run, passes included. */
CREATE TABLE pipeline.check_results (
    run_id          bigint NOT NULL
                    REFERENCES pipeline.run_log (run_id) ON DELETE CASCADE,
    check_name      text NOT NULL,
    check_id        bigint REFERENCES pipeline.checks (id) ON DELETE SET NULL,
    pipeline_id     bigint NOT NULL
                    REFERENCES pipeline.pipeline_defs (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('PASS', 'WARN', 'FAIL')),
    failing         bigint NOT NULL,
    total           bigint NOT NULL,
    missing         bigint NOT NULL DEFAULT 0,
    observed        numeric,
    batches         integer NOT NULL,
    message         text,
    checked_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, check_name)
);
CREATE INDEX ON pipeline.check_results (check_id, checked_at);
COMMENT ON TABLE pipeline.check_results IS
    'each check''s result in each run: status (worst of its batches), failing and total rows, observed value';
COMMENT ON COLUMN pipeline.check_results.total IS
    'row checks: the rows checked (for accepted_values, range, regex, unique and relationships, those whose value is not NULL); row_count: the batches';
COMMENT ON COLUMN pipeline.check_results.missing IS
    'accepted_values, range, regex, unique and relationships: the rows left out because their value is NULL (Great Expectations'' missing_count); 0 for other kinds';
COMMENT ON COLUMN pipeline.check_results.observed IS
    'row checks: the failing share of the rows checked (0 to 1; NULL when none was checked); row_count: the last batch out of bounds, or the last batch''s row count';

SELECT pg_catalog.pg_extension_config_dump('pipeline.checks', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.checks_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.check_results', '');
ALTER TABLE pipeline.checks ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.check_results ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.checks
    USING (pipeline.may_manage(pipeline_id));
CREATE POLICY owner_only ON pipeline.check_results
    USING (pipeline.may_manage(pipeline_id));
GRANT SELECT ON pipeline.checks, pipeline.check_results TO PUBLIC;

CREATE FUNCTION pipeline.add_check(
    pipeline_name   text,
    check_name      text,
    expression      text DEFAULT NULL,
    kind            text DEFAULT NULL,
    column_name     text DEFAULT NULL,
    accepted_values text[] DEFAULT NULL,
    min_value       text DEFAULT NULL,
    max_value       text DEFAULT NULL,
    pattern         text DEFAULT NULL,
    ref_table       regclass DEFAULT NULL,
    ref_column      text DEFAULT NULL,
    unique_scope    text DEFAULT NULL,
    min_rows        bigint DEFAULT NULL,
    max_rows        bigint DEFAULT NULL,
    action          text DEFAULT NULL,
    warn_if         text DEFAULT NULL,
    error_if        text DEFAULT NULL,
    mostly          float8 DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pipeline_add_check'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.add_check(text, text, text, text, text, text[], text, text, text, regclass, text, text, bigint, bigint, text, text, text, float8) IS
    'adds a data quality check to a pipeline (a boolean expression over the mapped row, or a built-in kind); returns its id';

CREATE FUNCTION pipeline.drop_check(pipeline_name text, check_name text,
                                    if_exists boolean DEFAULT false)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_drop_check'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.drop_check(text, text, boolean) IS
    'removes a data quality check from a pipeline (its past results stay, without a check id)';

CREATE FUNCTION pipeline.check_row(xid8, bigint, VARIADIC boolean[]) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_check_row'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.check_row(xid8, bigint, boolean[]) IS
    'internal: inside a batch statement, applies the actions of the checks a row failed; returns whether the row is merged';

CREATE VIEW pipeline.check_pass_rates WITH (security_invoker = true) AS
SELECT d.name AS pipeline, c.name AS check_name, c.kind, c.action,
       last.status AS last_status, last.checked_at AS last_checked_at,
       w.runs AS runs_7d,
       w.passed AS passed_7d,
       round(w.passed::numeric / nullif(w.runs, 0), 4) AS pass_rate_7d,
       w.failing AS rows_failing_7d,
       w.total AS rows_checked_7d,
       round(1 - w.failing::numeric / nullif(w.total, 0), 4) AS row_pass_rate_7d
  FROM pipeline.checks c
  JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id
  LEFT JOIN LATERAL (SELECT r.status, r.checked_at FROM pipeline.check_results r
                      WHERE r.check_id = c.id ORDER BY r.checked_at DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT count(*) AS runs, count(*) FILTER (WHERE r.status = 'PASS') AS passed,
                            sum(r.failing) AS failing, sum(r.total) AS total
                       FROM pipeline.check_results r
                      WHERE r.check_id = c.id AND r.checked_at > now() - interval '7 days') w ON true;
COMMENT ON VIEW pipeline.check_pass_rates IS
    'each check''s last status and, over the last 7 days, the share of runs it passed and of rows that passed it';
GRANT SELECT ON pipeline.check_pass_rates TO PUBLIC;
