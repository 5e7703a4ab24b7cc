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
