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
