/*
 * A restored cursor carries the generation of the cluster it was taken on.
 * Moving the clock past that cluster's ids keeps every restored cursor exact.
 */
CREATE FUNCTION pipeline.adopt_restored_cursor() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pipeline_adopt_restored_cursor'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.adopt_restored_cursor() IS
    'trigger: a cursor restored from another installation moves the logical clock past it';
CREATE TRIGGER adopt_restored_cursor BEFORE INSERT ON pipeline.cursors
    FOR EACH ROW EXECUTE FUNCTION pipeline.adopt_restored_cursor();
/* Firing a trigger needs no EXECUTE privilege, attaching it to a table does. */
REVOKE EXECUTE ON FUNCTION pipeline.adopt_restored_cursor() FROM PUBLIC;

/*
 * A pipeline depends on its source, target and tombstone tables: dropping one
 * fails, or with CASCADE drops the pipeline too.
 */
CREATE FUNCTION pipeline.on_sql_drop() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pipeline_on_sql_drop'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.on_sql_drop() IS
    'event trigger: refuses to drop a table a pipeline uses unless the DROP cascades, then drops the pipeline too';
CREATE EVENT TRIGGER pipeline_on_sql_drop ON sql_drop
    EXECUTE FUNCTION pipeline.on_sql_drop();
REVOKE EXECUTE ON FUNCTION pipeline.on_sql_drop() FROM PUBLIC;
COMMENT ON EVENT TRIGGER pipeline_on_sql_drop IS
    'keeps pipelines consistent with the tables they use (see pipeline.on_sql_drop)';

/*
 * A captured partitioned table follows its partitions: new and attached
 * ones get the capture triggers, the rows of attached, detached and
 * dropped ones are logged (capture_partitions.c).
 */
CREATE FUNCTION pipeline.on_ddl_command_start() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pipeline_on_ddl_command_start'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.on_ddl_command_start() IS
    'event trigger: refuses DETACH ... CONCURRENTLY from a captured table; logs the rows of a captured table''s partition a DROP TABLE removes';
CREATE EVENT TRIGGER pipeline_on_ddl_command_start ON ddl_command_start
    EXECUTE FUNCTION pipeline.on_ddl_command_start();
REVOKE EXECUTE ON FUNCTION pipeline.on_ddl_command_start() FROM PUBLIC;
COMMENT ON EVENT TRIGGER pipeline_on_ddl_command_start IS
    'keeps the change log of a captured partitioned table exact before DDL on its partitions (see pipeline.on_ddl_command_start)';
CREATE FUNCTION pipeline.on_ddl_command_end() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pipeline_on_ddl_command_end'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.on_ddl_command_end() IS
    'event trigger: gives new and attached partitions of a captured table its capture triggers and logs the rows of attached and detached ones';
CREATE EVENT TRIGGER pipeline_on_ddl_command_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE SCHEMA', 'ALTER TABLE')
    EXECUTE FUNCTION pipeline.on_ddl_command_end();
REVOKE EXECUTE ON FUNCTION pipeline.on_ddl_command_end() FROM PUBLIC;
COMMENT ON EVENT TRIGGER pipeline_on_ddl_command_end IS
    'keeps the change log of a captured partitioned table exact after DDL on its partitions (see pipeline.on_ddl_command_end)';

/*
 * Staging tables stay append-only while pipelines read them (staging.c):
 * guard triggers refuse UPDATE and DELETE, and a TRUNCATE that would lose
 * rows; partitions created, attached, detached or dropped later keep it so.
 */
CREATE FUNCTION pipeline.guard_staging() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pipeline_guard_staging'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.guard_staging() IS
    'trigger: refuses UPDATE and DELETE on a staging table pipelines read, and a TRUNCATE of rows not all consumed';
CREATE FUNCTION pipeline.staging_ddl_start() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pipeline_staging_ddl_start'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.staging_ddl_start() IS
    'event trigger: refuses a DETACH or DROP of a staging table''s partition whose rows are not all consumed, and DETACH ... CONCURRENTLY';
CREATE EVENT TRIGGER pipeline_staging_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION pipeline.staging_ddl_start();
REVOKE EXECUTE ON FUNCTION pipeline.staging_ddl_start() FROM PUBLIC;
COMMENT ON EVENT TRIGGER pipeline_staging_ddl_start IS
    'keeps partitioned staging tables whole (see pipeline.staging_ddl_start)';
CREATE FUNCTION pipeline.staging_ddl_end() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pipeline_staging_ddl_end'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.staging_ddl_end() IS
    'event trigger: guards new partitions of staging tables, makes the rows of an attached one new rows';
CREATE EVENT TRIGGER pipeline_staging_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE SCHEMA')
    EXECUTE FUNCTION pipeline.staging_ddl_end();
REVOKE EXECUTE ON FUNCTION pipeline.staging_ddl_end() FROM PUBLIC;
COMMENT ON EVENT TRIGGER pipeline_staging_ddl_end IS
    'keeps partitioned staging tables whole (see pipeline.staging_ddl_end)';
