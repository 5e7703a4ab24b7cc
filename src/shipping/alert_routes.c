/*-------------------------------------------------------------------------
 *
 * alert_routes.c
 *	  Alert routes: webhooks alerts are delivered to
 *	  (pipeline.add_alert_route), the deliveries a shipper takes, and what
 *	  it records of them.
 *
 * Raising an alert queues a delivery for every route it matches
 * (pipeline_catalog/alerts.c), in the transaction that raised it.  The
 * shipper takes each route's oldest pending deliveries, in order, with the
 * body the route's format asks for (pipeline.alert_webhook_body), and
 * posts them; what a route's receiver took is marked delivered, what it
 * refused for good (400, 413, 422) is marked given up with the answer, and
 * a failure holds that route alone back until its backoff has passed: a
 * chat webhook that is down does not delay a paging webhook.
 *
 * A route carries the alerts its owner may see: a route for a team's role
 * delivers the alerts of that role's pipelines and checks (and of the
 * roles it is a member of), never another team's.  Only the superuser
 * defines routes: a webhook URL is a credential, and a route makes the
 * server post to it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "shared_memory/shared_memory.h"
#include "shipping/shipping.h"

PG_FUNCTION_INFO_V1(pipeline_add_alert_route);
PG_FUNCTION_INFO_V1(pipeline_drop_alert_route);

static const char *const route_formats[] = {"json", "slack", NULL};
static const char *const severities[] = {"info", "warning", "error", "critical", NULL};
static const char *const alert_kinds[] = {"freshness", "pipeline", "check", "step", NULL};

/*
 * checked_name
 *		The route's name: not empty, at most NAMEDATALEN - 1 bytes.
 */
static char *
checked_name(FunctionCallInfo fcinfo)
{
	char	   *name = text_to_cstring(DatumGetTextPP(pipeline_endpoint_argument(fcinfo, 0, "name",
																				 "an alert route")));

	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid alert route name \"%s\"", name),
				 errdetail("A route's name is 1 to %d bytes.", NAMEDATALEN - 1),
				 errhint("Pass a short name such as 'oncall' or 'team-chat'.")));
	return name;
}

/*
 * check_kinds
 *		Each element of the kinds argument is an alert kind.
 */
static void
check_kinds(FunctionCallInfo fcinfo)
{
	Datum	   *kinds;
	bool	   *nulls;
	int			n;

	if (PG_ARGISNULL(4))
		return;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), TEXTOID, -1, false, TYPALIGN_INT, &kinds, &nulls, &n);
	for (int i = 0; i < n; i++)
		pipeline_check_choice("alert kind", nulls[i] ? "NULL" : TextDatumGetCString(kinds[i]), alert_kinds);
}

/*
 * pipeline_add_alert_route
 *		SQL: pipeline.add_alert_route(name, url, format, owner, kinds,
 *		pipelines, relations, min_severity, timeout, retry_base, retry_max,
 *		enabled): stores the route (replacing the one of that name, with
 *		its pending deliveries) and wakes the scheduler at commit, which
 *		keeps the database's shipper running; returns the route's id.
 */
Datum
pipeline_add_alert_route(PG_FUNCTION_ARGS)
{
	Oid			types[12] = {TEXTOID, TEXTOID, TEXTOID, OIDOID, TEXTARRAYOID, TEXTARRAYOID,
	REGCLASSARRAYOID, TEXTOID, INT4OID, INT4OID, INT4OID, BOOLOID};
	Datum		values[12];
	char		nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const char *what = "an alert route";
	int64		id;

	pipeline_check_version(ERROR);
	values[0] = CStringGetTextDatum(checked_name(fcinfo));
	values[1] = CStringGetTextDatum(pipeline_endpoint_url(fcinfo, 1, what));
	values[2] = pipeline_endpoint_argument(fcinfo, 2, "format", what);
	pipeline_check_choice("format", TextDatumGetCString(values[2]), route_formats);
	values[3] = ObjectIdGetDatum(PG_ARGISNULL(3) ? GetUserId() : PG_GETARG_OID(3));
	/* one granted EXECUTE routes only the alerts it may see itself */
	pipeline_check_role(DatumGetObjectId(values[3]),
						psprintf("the alerts of role \"%s\"", GetUserNameFromId(DatumGetObjectId(values[3]), false)));
	check_kinds(fcinfo);
	for (int i = 4; i <= 6; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[7] = pipeline_endpoint_argument(fcinfo, 7, "min_severity", what);
	pipeline_check_choice("min_severity", TextDatumGetCString(values[7]), severities);
	values[8] = Int32GetDatum(pipeline_endpoint_interval_ms(fcinfo, 8, "timeout", what));
	values[9] = Int32GetDatum(pipeline_endpoint_interval_ms(fcinfo, 9, "retry_base", what));
	values[10] = Int32GetDatum(pipeline_endpoint_interval_ms(fcinfo, 10, "retry_max", what));
	pipeline_endpoint_check_backoff(DatumGetInt32(values[9]), DatumGetInt32(values[10]), what);
	values[11] = pipeline_endpoint_argument(fcinfo, 11, "enabled", what);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * A route replaced is a new one: the deliveries the old one matched
	 * (another owner's alerts, maybe) go with it.
	 */
	pipeline_exec_internal("DELETE FROM pipeline.alert_routes WHERE name = $1", 1, types, values, nulls);
	pipeline_exec_internal("INSERT INTO pipeline.alert_routes (name, url, format, owner, kinds, "
						   "pipelines, relations, min_severity, timeout_ms, retry_base_ms, retry_max_ms, "
						   "enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
						   12, types, values, nulls);
	id = pipeline_result_int64(0, 0);
	SPI_finish();
	pipeline_schedules_changed();
	PG_RETURN_INT64(id);
}

/*
 * pipeline_drop_alert_route
 *		SQL: pipeline.drop_alert_route(name): the route and its pending
 *		deliveries go; false when there was none of that name.
 */
Datum
pipeline_drop_alert_route(PG_FUNCTION_ARGS)
{
	Oid			type = TEXTOID;
	Datum		value;
	int			dropped;

	pipeline_check_version(ERROR);
	value = pipeline_endpoint_argument(fcinfo, 0, "name", "an alert route");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	dropped = pipeline_exec_internal("DELETE FROM pipeline.alert_routes WHERE name = $1",
									 1, &type, &value, NULL);
	SPI_finish();
	PG_RETURN_BOOL(dropped > 0);
}

/*
 * pipeline_take_due_deliveries
 *		The enabled routes whose backoff has passed, each with its oldest
 *		max_per_route pending deliveries and their bodies, in order, the
 *		routes that failed last time after the others (one that hangs
 *		delays the healthy ones no more); allocated in 'keep'.  The caller is connected to SPI, as the
 *		extension.
 */
List *
pipeline_take_due_deliveries(int max_per_route, MemoryContext keep)
{
	Oid			type = INT4OID;
	Datum		value = Int32GetDatum(max_per_route);
	List	   *routes = NIL;
	AlertRoute *route = NULL;
	MemoryContext old;
	int			n;

	n = pipeline_exec_kept("SELECT r.id, r.url, r.timeout_ms, r.retry_base_ms, r.retry_max_ms, "
						   "r.failures, x.id, pipeline.alert_webhook_body(x.alert_id, r.format)::text "
						   "FROM pipeline.alert_routes r, LATERAL (SELECT x.id, x.alert_id "
						   "FROM pipeline.alert_deliveries x WHERE x.route_id = r.id "
						   "AND x.delivered_at IS NULL ORDER BY x.id LIMIT $1) x "
						   "WHERE r.enabled AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= now()) "
						   "ORDER BY r.failures > 0, r.id, x.id",
						   1, &type, &value, NULL, true, 0);
	old = MemoryContextSwitchTo(keep);
	for (int i = 0; i < n; i++)
	{
		OutboxEvent *delivery = palloc0(sizeof(OutboxEvent));

		if (route == NULL || route->id != pipeline_result_int64(i, 0))
		{
			route = palloc0(sizeof(AlertRoute));
			route->id = pipeline_result_int64(i, 0);
			route->url = pipeline_result_text(i, 1);
			route->timeout_ms = (int) pipeline_result_int64(i, 2);
			route->retry_base_ms = (int) pipeline_result_int64(i, 3);
			route->retry_max_ms = (int) pipeline_result_int64(i, 4);
			route->failures = (int) pipeline_result_int64(i, 5);
			routes = lappend(routes, route);
		}
		delivery->id = pipeline_result_int64(i, 6);
		delivery->body = pipeline_result_text(i, 7);
		if (delivery->body == NULL)
			delivery->error = pstrdup("the alert's body could not be built");
		route->deliveries = lappend(route->deliveries, delivery);
	}
	MemoryContextSwitchTo(old);
	return routes;
}

/*
 * pipeline_record_deliveries
 *		Records what one pass posted to a route: the deliveries its
 *		receiver took, those it refused (with their errors, logged), and a
 *		failure (NULL if none) that counts as one more in a row and puts the
 *		route's next attempt after its backoff.  The caller is connected to
 *		SPI, as the extension.
 */
void
pipeline_record_deliveries(const AlertRoute *route, List *delivered, List *rejected,
						   const HttpResult *failure)
{
	Oid			types[7] = {INT8OID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTOID, INT4OID, INT4OID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	pipeline_log_given_up(rejected, "alert delivery",
						  "pipeline.alert_delivery counts it; the alert stays in pipeline.alerts.");
	values[0] = Int64GetDatum(route->id);
	values[1] = pipeline_posted_ids(delivered);
	values[2] = pipeline_posted_ids(rejected);
	values[3] = pipeline_posted_errors(rejected);
	values[4] = failure ? CStringGetTextDatum(failure->error) : (Datum) 0;
	nulls[4] = failure ? ' ' : 'n';
	values[5] = Int32GetDatum(failure ? route->failures + 1 : 0);
	values[6] = Int32GetDatum(failure ? pipeline_backoff_ms(route->retry_base_ms, route->retry_max_ms,
															route->failures + 1) : 0);
	pipeline_exec_kept("WITH delivered AS (UPDATE pipeline.alert_deliveries "
					   "SET delivered_at = clock_timestamp() "
					   "WHERE id = ANY ($2) AND delivered_at IS NULL RETURNING 1), "
					   "rejected AS (UPDATE pipeline.alert_deliveries x "
					   "SET delivered_at = clock_timestamp(), delivery_error = e.error "
					   "FROM unnest($3, $4) e(id, error) "
					   "WHERE x.id = e.id AND x.delivered_at IS NULL RETURNING 1) "
					   "UPDATE pipeline.alert_routes SET "
					   "delivered_alerts = delivered_alerts + (SELECT count(*) FROM delivered), "
					   "rejected_alerts = rejected_alerts + (SELECT count(*) FROM rejected), "
					   "last_delivered_at = CASE WHEN cardinality($2) > 0 THEN clock_timestamp() "
					   "ELSE last_delivered_at END, "
					   "last_attempt_at = clock_timestamp(), failures = $6, last_error = $5, "
					   "next_attempt_at = CASE WHEN $6 > 0 "
					   "THEN clock_timestamp() + make_interval(secs => $7 / 1000.0) END "
					   "WHERE id = $1",
					   7, types, values, nulls, false, 0);
}

/*
 * pipeline_alert_routes_wanted
 *		Whether this database has an alert route enabled: the scheduler
 *		keeps a shipper running while it has.  The caller is connected to
 *		SPI, as the extension.
 */
bool
pipeline_alert_routes_wanted(void)
{
	return pipeline_exec_kept("SELECT FROM pipeline.alert_routes WHERE enabled",
							  0, NULL, NULL, NULL, true, 1) > 0;
}
