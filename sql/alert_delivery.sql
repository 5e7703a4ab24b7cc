-- Alert routes and failure policies: their settings, refused when
-- malformed; which alerts a route gets (its deliveries), by owner, kind,
-- pipeline, relation and severity; who may see and change them.
-- (Delivery to a real receiver that fails, hangs and comes back, and
-- across kill -9, is test/t/022_alert_delivery.pl.)
CALL number_ids_from(420000);
SET client_min_messages = warning;
CREATE SCHEMA ad;
SET search_path = ad, public;
CREATE ROLE ad_sales;
CREATE ROLE ad_ops;
GRANT USAGE, CREATE ON SCHEMA ad TO ad_sales, ad_ops;
SET ROLE ad_sales;
CREATE TABLE ad.src (id int, v int);
SELECT pipeline.create_pipeline('ad_orders', 'ad.src', 'ad.orders', key => '{id}', on_schema_change => 'fail') > 0 AS created;
SELECT pipeline.add_check('ad_orders', 'positive', 'v > 0', action => 'warn') > 0 AS added;
SET ROLE ad_ops;
CREATE TABLE ad.isrc (id int, v int);
SELECT pipeline.create_pipeline('ad_billing', 'ad.isrc', 'ad.billing', key => '{id}', on_schema_change => 'fail') > 0 AS created;
RESET ROLE;

-- Malformed routes, each refused with what to pass instead.
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('', 'http://127.0.0.1:1/a')$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route(NULL, 'http://127.0.0.1:1/a')$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'hooks.example.com/a')$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', NULL)$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'http://127.0.0.1:1/a', format => 'xml')$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'http://127.0.0.1:1/a', min_severity => 'fatal')$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'http://127.0.0.1:1/a', kinds => ARRAY['pipeline', 'disk'])$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'http://127.0.0.1:1/a', kinds => ARRAY[NULL])$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'http://127.0.0.1:1/a', timeout => '-1 s')$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'http://127.0.0.1:1/a', retry_base => '1 min', retry_max => '1 s')$$);
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('r', 'http://127.0.0.1:1/a', owner => 'no_such_role')$$);
SELECT count(*) AS routes FROM pipeline.alert_routes;

-- Routes to a port where nothing listens (the shipper retries them in the
-- background; what counts here is which deliveries each gets), one
-- replaced by name.
SELECT pipeline.add_alert_route('ad-all', 'http://127.0.0.1:1/all', min_severity => 'info') > 0 AS added;
SELECT pipeline.add_alert_route('ad-sales', 'http://u:pw@127.0.0.1:1/services/T0/B0/secret',
    format => 'slack', owner => 'ad_sales') > 0 AS added;
SELECT pipeline.add_alert_route('ad-billing', 'http://127.0.0.1:1/pager',
    pipelines => ARRAY['ad_billing'], min_severity => 'error') > 0 AS added;
SELECT pipeline.add_alert_route('ad-billing-target', 'http://127.0.0.1:1/t',
    relations => ARRAY['ad.billing'::regclass], min_severity => 'info') > 0 AS added;
SELECT pipeline.add_alert_route('ad-freshness', 'http://127.0.0.1:1/f', kinds => ARRAY['freshness'],
    relations => ARRAY['ad.orders'::regclass]) > 0 AS added;
SELECT pipeline.add_alert_route('ad-sales', 'https://127.0.0.1:1/services/T0/B0/other',
    format => 'slack', owner => 'ad_sales', min_severity => 'warning') > 0 AS replaced;
SELECT route, url_host, format,
       CASE WHEN owner::text = session_user THEN '<test user>' ELSE owner::text END AS owner,
       kinds, pipelines, relations, min_severity, enabled, pending_alerts
  FROM pipeline.alert_delivery ORDER BY route;

-- Alerts: a check past its threshold (sales), a pipeline failing, then
-- suspended by its own failure policy (ops), a freshness check failing.
SELECT * FROM error_of($$SELECT pipeline.set_failure_policy(NULL)$$);
SELECT * FROM error_of($$SELECT pipeline.set_failure_policy('ad_nope', suspend_after_failures => 1)$$);
SELECT * FROM error_of($$SELECT pipeline.set_failure_policy('ad_billing', retry_base => '0 s')$$);
SELECT * FROM error_of($$SELECT pipeline.set_failure_policy('ad_billing', retry_base => '2 days')$$);
SELECT * FROM error_of($$SELECT pipeline.set_failure_policy('ad_billing', retry_base => '1 min', retry_max => '1 s')$$);
SELECT * FROM error_of($$SELECT pipeline.set_failure_policy('ad_billing', suspend_after_failures => -1)$$);
SET ROLE ad_sales;
SELECT * FROM error_of($$SELECT pipeline.set_failure_policy('ad_billing', suspend_after_failures => 1)$$);
RESET ROLE;
SET ROLE ad_ops;
SELECT pipeline.set_failure_policy('ad_billing', retry_base => '2 s', retry_max => '1 min', suspend_after_failures => 2);
SELECT retry_base_ms, retry_max_ms, suspend_after_failures FROM pipeline.pipeline_defs WHERE name = 'ad_billing';
ALTER TABLE ad.isrc ADD COLUMN note text;
INSERT INTO ad.isrc (id, v, note) VALUES (1, 1, 'x');
CALL pipeline.run('ad_billing');
CALL pipeline.run('ad_billing');
SELECT suspended_at IS NOT NULL AS suspended FROM pipeline.pipeline_defs WHERE name = 'ad_billing';
RESET ROLE;
SET ROLE ad_sales;
INSERT INTO ad.src VALUES (1, -1);
CALL pipeline.run('ad_orders');
INSERT INTO ad.src VALUES (2, 1);
CALL pipeline.run('ad_orders');
SELECT pipeline.add_freshness_check('ad.orders', error_after => '1 millisecond') > 0 AS added;
SELECT pg_sleep(0.01);
SELECT status FROM pipeline.check_freshness('ad.orders'::regclass);
RESET ROLE;

SELECT kind, subject, previous_state, state, severity, relation, payload ->> 'severity' AS in_payload
  FROM pipeline.alerts WHERE subject LIKE 'ad%' ORDER BY id;
SELECT r.name AS route, a.kind, a.subject, a.state
  FROM pipeline.alert_deliveries x JOIN pipeline.alert_routes r ON r.id = x.route_id
  JOIN pipeline.alerts a ON a.id = x.alert_id
 WHERE a.subject LIKE 'ad%' ORDER BY r.name, x.id;

-- A route replaced is a new one: the deliveries the old one matched go.
SELECT pipeline.add_alert_route('ad-billing', 'http://127.0.0.1:1/pager', owner => 'ad_sales') > 0 AS replaced;
SELECT count(*) AS deliveries_of_the_replaced FROM pipeline.alert_deliveries x
  JOIN pipeline.alert_routes r ON r.id = x.route_id WHERE r.name = 'ad-billing';

-- The bodies: the alert as JSON, or Slack's message (with Slack's escapes).
SELECT jsonb_pretty(pipeline.alert_webhook_body(id, 'json') - 'raised_at' - 'id' - 'run_id' - 'pipeline_id')
  FROM pipeline.alerts WHERE kind = 'check' AND subject LIKE 'ad%' ORDER BY id LIMIT 1;
SELECT pipeline.alert_webhook_body(id, 'slack') ->> 'text' AS slack
  FROM pipeline.alerts WHERE subject LIKE 'ad%' ORDER BY id;

-- A role without privileges may neither add a route nor read the routes
-- (their URLs are credentials) nor the deliveries; a monitoring role reads
-- the delivery state, the URLs only up to their host.
CREATE ROLE ad_monitor IN ROLE pg_monitor;
SET ROLE ad_sales;
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('mine', 'http://127.0.0.1:1/evil')$$);
SELECT * FROM error_of($$SELECT pipeline.drop_alert_route('ad-all')$$);
SELECT * FROM error_of($$SELECT url FROM pipeline.alert_routes$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.alert_deliveries$$);
SELECT * FROM error_of($$SELECT * FROM pipeline.alert_delivery$$);
SELECT * FROM error_of($$SELECT pipeline.alert_webhook_body(1, 'json')$$);
RESET ROLE;
SELECT pipeline.add_alert_route('ad-upper', 'HTTPS://u:pw@127.0.0.1:1/services/T0/B0/secret?token=x') > 0 AS added;
SET ROLE ad_monitor;
SELECT route, url_host FROM pipeline.alert_delivery ORDER BY route;
RESET ROLE;
-- A role granted EXECUTE routes only alerts it may see itself.
GRANT EXECUTE ON FUNCTION pipeline.add_alert_route(text, text, text, regrole, text[], text[], regclass[], text, interval, interval, interval, boolean) TO ad_sales;
SET ROLE ad_sales;
SELECT * FROM error_of($$SELECT pipeline.add_alert_route('ad-mine', 'http://127.0.0.1:1/m', owner => 'ad_ops')$$);
SELECT pipeline.add_alert_route('ad-mine', 'http://127.0.0.1:1/m') > 0 AS added_for_itself;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pipeline.add_alert_route(text, text, text, regrole, text[], text[], regclass[], text, interval, interval, interval, boolean) FROM ad_sales;
SELECT owner FROM pipeline.alert_routes WHERE name = 'ad-mine';

-- Dropped with their pending deliveries; dropping again says there was none.
SELECT pipeline.drop_alert_route(name) FROM pipeline.alert_routes WHERE name LIKE 'ad-%' ORDER BY name;
SELECT pipeline.drop_alert_route('ad-all') AS dropped_again;
SELECT count(*) AS deliveries FROM pipeline.alert_deliveries;
SELECT pipeline.drop_pipeline('ad_orders');
SELECT pipeline.drop_pipeline('ad_billing');
DROP SCHEMA ad CASCADE;
DROP ROLE ad_sales, ad_ops, ad_monitor;
