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
