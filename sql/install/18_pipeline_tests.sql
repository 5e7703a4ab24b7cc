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
