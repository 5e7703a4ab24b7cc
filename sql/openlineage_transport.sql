-- The OpenLineage transport: its settings, refused when malformed, the
-- delivery state view, and who may see and change them.  (Shipping itself,
-- to a real receiver that fails, hangs and comes back, and across kill -9,
-- is test/t/021_openlineage_shipping.pl.)
SET client_min_messages = warning;

-- Malformed settings, each refused with what to pass instead.
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('ftp://lineage.example.com')$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://')$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('marquez:5000')$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport(NULL)$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://marquez:5000', endpoint => 'api/v1/lineage?x=1')$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://marquez:5000', timeout => '0 s')$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://marquez:5000', timeout => '2 hours')$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://marquez:5000', batch_size => 0)$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://marquez:5000', retry_base => '10 s', retry_max => '1 s')$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://marquez:5000', enabled => NULL)$$);
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://marquez:5000', api_key => E'k\r\nX-Evil: 1')$$);
SELECT count(*) AS transports FROM pipeline.openlineage_transport;

-- Set (disabled here: no shipper posts to a receiver that is not there),
-- replaced, shown without the API key or a password in the URL.
SELECT pipeline.set_openlineage_transport('http://marquez:5000', api_key => 'k1', enabled => false);
SELECT pipeline.set_openlineage_transport('https://lineage:s3cret@marquez.example.com/', api_key => 'k2',
    timeout => '2 s', batch_size => 50, retry_base => '500 ms', retry_max => '1 min', enabled => false);
SELECT url, endpoint, has_api_key, enabled, pending_events >= 0 AS counts_pending, shipped_events,
       rejected_events, failures, last_error, timeout, batch_size, retry_base, retry_max
  FROM pipeline.openlineage_shipping;
SELECT api_key FROM pipeline.openlineage_transport;
SELECT pipeline.set_openlineage_transport('HTTP://lineage:s3cret@marquez.example.com/ol?token=x#f', enabled => false);
SELECT url FROM pipeline.openlineage_shipping;

-- A role without privileges may neither set nor read the transport (its
-- API key); a monitoring role reads the delivery state.
CREATE ROLE olt_plain;
CREATE ROLE olt_monitor IN ROLE pg_monitor;
SET ROLE olt_plain;
SELECT * FROM error_of($$SELECT pipeline.set_openlineage_transport('http://evil.example.com')$$);
SELECT * FROM error_of($$SELECT pipeline.drop_openlineage_transport()$$);
SELECT * FROM error_of($$SELECT api_key FROM pipeline.openlineage_transport$$);
SELECT * FROM error_of($$SELECT url FROM pipeline.openlineage_shipping$$);
SET ROLE olt_monitor;
SELECT url, has_api_key FROM pipeline.openlineage_shipping;
SELECT * FROM error_of($$SELECT api_key FROM pipeline.openlineage_transport$$);
RESET ROLE;

-- Dropped: nothing is shipped any more; dropping again says there was none.
SELECT pipeline.drop_openlineage_transport() AS dropped;
SELECT pipeline.drop_openlineage_transport() AS dropped_again;
SELECT count(*) AS shown FROM pipeline.openlineage_shipping;
DROP ROLE olt_plain, olt_monitor;
