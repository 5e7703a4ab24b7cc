/* Row-level security: a role sees the pipelines it is a member of the owner of. */
CREATE FUNCTION pipeline.may_manage(pipeline_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM pipeline.pipeline_defs d WHERE d.id = pipeline_id) $$;
COMMENT ON FUNCTION pipeline.may_manage(bigint) IS
    'true when the current role may see the pipeline (row-level security of pipeline_defs applies inside)';

ALTER TABLE pipeline.pipeline_defs ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.pipeline_joins ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.extract_decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.run_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.run_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.schedule_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.quarantine_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.pipeline_defs
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY owner_only ON pipeline.cursors
    USING (pipeline.may_manage(pipeline_id));
CREATE POLICY owner_only ON pipeline.pipeline_joins
    USING (pipeline.may_manage(pipeline_id));
CREATE POLICY owner_only ON pipeline.extract_decisions
    USING (pipeline.may_manage(pipeline_id));
CREATE POLICY owner_only ON pipeline.run_log
    USING (pipeline.may_manage(pipeline_id));
CREATE POLICY owner_only ON pipeline.run_totals
    USING (pipeline.may_manage(pipeline_id));
CREATE POLICY owner_only ON pipeline.schedule_state
    USING (pipeline.may_manage(pipeline_id));
CREATE POLICY owner_only ON pipeline.quarantine_log
    USING (pipeline.may_manage(pipeline_id));

GRANT USAGE ON SCHEMA pipeline TO PUBLIC;
GRANT SELECT ON pipeline.pipeline_defs, pipeline.cursors, pipeline.pipeline_joins, pipeline.run_log,
    pipeline.run_totals, pipeline.schedule_state, pipeline.quarantine_log,
    pipeline.extract_decisions TO PUBLIC;
/* A run's batch statement executes as the pipeline's owner and writes quarantine rows itself. */
GRANT INSERT ON pipeline.quarantine_log TO PUBLIC;
GRANT UPDATE (raw_row) ON pipeline.quarantine_log TO PUBLIC;
REVOKE ALL ON pipeline.clock FROM PUBLIC;
GRANT SELECT ON pipeline.clock TO PUBLIC;

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
