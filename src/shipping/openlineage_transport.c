/*-------------------------------------------------------------------------
 *
 * openlineage_transport.c
 *	  The OpenLineage transport of a database: its settings
 *	  (pipeline.set_openlineage_transport), the events the shipper takes
 *	  from the outbox, and what it records of each batch.
 *
 * The settings are a row of pipeline.openlineage_transport, so each
 * database has its own, and only the superuser reads the API key.  The
 * shipper (workers/shipper.c) takes the oldest unacknowledged events in
 * outbox order, builds their JSON, POSTs them one by one as the OpenLineage
 * clients' HTTP transport does, and records the outcome here: the events
 * the receiver took are acknowledged; one it refused for good (or that
 * could not be built) is acknowledged with its delivery_error and counted,
 * so that it does not hold back every later event; a failure (no answer,
 * a timeout, 5xx, 401...) leaves the event and everything after it to the
 * next attempt, after a backoff doubling from retry_base to retry_max.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "shared_memory/shared_memory.h"
#include "shipping/shipping.h"

PG_FUNCTION_INFO_V1(pipeline_set_openlineage_transport);
PG_FUNCTION_INFO_V1(pipeline_drop_openlineage_transport);

/* The most events one batch takes. */
#define TRANSPORT_MAX_BATCH 10000

/*
 * pipeline_set_openlineage_transport
 *		SQL: pipeline.set_openlineage_transport(url, api_key, endpoint,
 *		timeout, batch_size, retry_base, retry_max, enabled): stores this
 *		database's transport (replacing the one before, its state starting
 *		over: the next attempt is now) and wakes the scheduler at commit,
 *		which starts the shipper.
 */
Datum
pipeline_set_openlineage_transport(PG_FUNCTION_ARGS)
{
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, INT4OID, INT4OID, INT4OID, BOOLOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *endpoint;
	int			batch_size;

	pipeline_check_version(ERROR);
	values[0] = CStringGetTextDatum(pipeline_endpoint_url(fcinfo, 0, "the OpenLineage transport"));
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	if (!PG_ARGISNULL(1) && strpbrk(TextDatumGetCString(values[1]), "\r\n") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("api_key of the OpenLineage transport may not hold a line break"),
				 errdetail("It is sent in an HTTP header."),
				 errhint("Pass the key alone.")));
	endpoint = text_to_cstring(DatumGetTextPP(pipeline_endpoint_argument(fcinfo, 2, "endpoint",
																		 "the OpenLineage transport")));
	if (strpbrk(endpoint, " \t\r\n?#") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not an endpoint path", endpoint),
				 errdetail("The endpoint is a path added to the URL, without spaces, query or fragment."),
				 errhint("Leave it out for api/v1/lineage, or pass '' to post to the URL itself.")));
	values[2] = CStringGetTextDatum(endpoint);
	values[3] = Int32GetDatum(pipeline_endpoint_interval_ms(fcinfo, 3, "timeout", "the OpenLineage transport"));
	batch_size = DatumGetInt32(pipeline_endpoint_argument(fcinfo, 4, "batch_size", "the OpenLineage transport"));
	if (batch_size < 1 || batch_size > TRANSPORT_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size of the OpenLineage transport must be between 1 and %d", TRANSPORT_MAX_BATCH),
				 errdetail("It is %d.", batch_size),
				 errhint("A batch is the events read, posted and acknowledged together; 100 suits most receivers.")));
	values[4] = Int32GetDatum(batch_size);
	values[5] = Int32GetDatum(pipeline_endpoint_interval_ms(fcinfo, 5, "retry_base", "the OpenLineage transport"));
	values[6] = Int32GetDatum(pipeline_endpoint_interval_ms(fcinfo, 6, "retry_max", "the OpenLineage transport"));
	pipeline_endpoint_check_backoff(DatumGetInt32(values[5]), DatumGetInt32(values[6]),
									"the OpenLineage transport");
	values[7] = pipeline_endpoint_argument(fcinfo, 7, "enabled", "the OpenLineage transport");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_exec_internal("INSERT INTO pipeline.openlineage_transport AS t (url, api_key, endpoint, "
						   "timeout_ms, batch_size, retry_base_ms, retry_max_ms, enabled) "
						   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
						   "ON CONFLICT (singleton) DO UPDATE SET url = $1, api_key = $2, endpoint = $3, "
						   "timeout_ms = $4, batch_size = $5, retry_base_ms = $6, retry_max_ms = $7, "
						   "enabled = $8, configured_at = clock_timestamp(), failures = 0, "
						   "last_error = NULL, next_attempt_at = NULL",
						   8, types, values, nulls);
	SPI_finish();
	pipeline_schedules_changed();
	PG_RETURN_VOID();
}

/*
 * pipeline_drop_openlineage_transport
 *		SQL: pipeline.drop_openlineage_transport(): no more shipping (the
 *		shipper stops when it next looks); the outbox keeps its events.
 */
Datum
pipeline_drop_openlineage_transport(PG_FUNCTION_ARGS)
{
	int			dropped;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	dropped = pipeline_exec_internal("DELETE FROM pipeline.openlineage_transport", 0, NULL, NULL, NULL);
	SPI_finish();
	PG_RETURN_BOOL(dropped > 0);
}

/*
 * pipeline_read_openlineage_transport
 *		Reads the transport into *transport (in the caller's memory); false
 *		when there is none.  The caller is connected to SPI, as the
 *		extension.
 */
bool
pipeline_read_openlineage_transport(OpenLineageTransport *transport)
{
	bool		isnull;
	Datum		next;

	if (pipeline_exec_kept("SELECT CASE WHEN endpoint = '' THEN url "
						   "ELSE rtrim(url, '/') || '/' || ltrim(endpoint, '/') END, "
						   "api_key, timeout_ms, batch_size, retry_base_ms, retry_max_ms, enabled, "
						   "failures, next_attempt_at FROM pipeline.openlineage_transport",
						   0, NULL, NULL, NULL, true, 1) == 0)
		return false;
	transport->url = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	transport->api_key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	transport->timeout_ms = (int) pipeline_result_int64(0, 2);
	transport->batch_size = (int) pipeline_result_int64(0, 3);
	transport->retry_base_ms = (int) pipeline_result_int64(0, 4);
	transport->retry_max_ms = (int) pipeline_result_int64(0, 5);
	transport->enabled = DatumGetBool(pipeline_result_datum(0, 6, &isnull));
	transport->failures = (int) pipeline_result_int64(0, 7);
	next = pipeline_result_datum(0, 8, &isnull);
	transport->next_attempt_at = isnull ? 0 : DatumGetTimestampTz(next);
	return true;
}

/* The call building one event's JSON, in a subtransaction. */
typedef struct BuildCall
{
	int64		run_id;
	const char *event_type;
	char	   *body;			/* the result, in the caller's memory */
	MemoryContext keep;
} BuildCall;

/*
 * build_event
 *		Builds the JSON of one event (pipeline.openlineage_event).
 */
static void
build_event(void *arg)
{
	BuildCall  *call = arg;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(call->run_id), CStringGetTextDatum(call->event_type)};

	char	   *body;

	pipeline_exec_kept("SELECT pipeline.openlineage_event($1, $2)::text", 2, types, values, NULL, true, 1);
	body = pipeline_result_text(0, 0);
	if (body == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run " INT64_FORMAT " has no %s event", call->run_id, call->event_type)));
	call->body = MemoryContextStrdup(call->keep, body);
}

/*
 * list_append_in
 *		lappend, the list in 'keep' (the caller is in SPI's memory).
 */
static List *
list_append_in(MemoryContext keep, List *list, void *item)
{
	MemoryContext old = MemoryContextSwitchTo(keep);

	list = lappend(list, item);
	MemoryContextSwitchTo(old);
	return list;
}

/*
 * pipeline_take_outbox_events
 *		The oldest max_events unacknowledged events, in order, each with its
 *		JSON or, when it can never be built (its run's end no longer matches
 *		its status: a run log edited by hand), the error why; allocated in
 *		'keep'.  An event that could not be built for another reason ends
 *		the list before it, with the error in *transient (else left alone).
 *		The caller is connected to SPI, as the extension.
 */
List *
pipeline_take_outbox_events(int max_events, MemoryContext keep, char **transient)
{
	Oid			type = INT4OID;
	Datum		value = Int32GetDatum(max_events);
	List	   *events = NIL;
	BuildCall  *calls;
	int			n;
	ListCell   *lc;

	n = pipeline_exec_kept("SELECT id, run_id, event_type FROM pipeline.openlineage_run_events "
						   "WHERE acknowledged_at IS NULL ORDER BY id LIMIT $1",
						   1, &type, &value, NULL, true, 0);
	calls = palloc(sizeof(BuildCall) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		OutboxEvent *event = MemoryContextAllocZero(keep, sizeof(OutboxEvent));

		event->id = pipeline_result_int64(i, 0);
		calls[i].run_id = pipeline_result_int64(i, 1);
		calls[i].event_type = pipeline_result_text(i, 2);
		calls[i].keep = keep;
		calls[i].body = NULL;
		events = list_append_in(keep, events, event);
	}

	/*
	 * Each alone: one that can never be built is given up, not the batch; one
	 * that failed for another reason (a cancel, a lock, memory, a concurrent
	 * DDL) ends the batch there, to be built again later.
	 */
	foreach(lc, events)
	{
		OutboxEvent *event = lfirst(lc);
		BuildCall  *call = &calls[foreach_current_index(lc)];
		ErrorData  *error = pipeline_try(build_event, call);

		event->body = call->body;
		if (error == NULL)
			continue;
		if (error->sqlerrcode != ERRCODE_INVALID_PARAMETER_VALUE &&
			error->sqlerrcode != ERRCODE_UNDEFINED_OBJECT)
		{
			*transient = MemoryContextStrdup(keep, psprintf("an event could not be built now: %s",
															error->message));
			return list_truncate(events, foreach_current_index(lc));
		}
		event->error = MemoryContextStrdup(keep, psprintf("the event could not be built: %s",
														  error->message));
	}
	return events;
}

/*
 * pipeline_record_shipping
 *		Records a batch: the events shipped are acknowledged, those refused
 *		acknowledged with their error (and logged), and the transport's
 *		state counts them; a failure (NULL if none) counts as one more in a
 *		row, and sets the next attempt after the backoff.  The caller is
 *		connected to SPI, as the extension.
 */
void
pipeline_record_shipping(List *shipped, List *rejected, const HttpResult *failure,
						 const OpenLineageTransport *transport)
{
	Oid			types[6] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTOID, INT4OID, INT4OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	pipeline_log_given_up(rejected, "OpenLineage event",
						  "pipeline.openlineage_outbox keeps the event and its delivery_error.");
	values[0] = pipeline_posted_ids(shipped);
	values[1] = pipeline_posted_ids(rejected);
	values[2] = pipeline_posted_errors(rejected);
	values[3] = failure ? CStringGetTextDatum(failure->error) : (Datum) 0;
	nulls[3] = failure ? ' ' : 'n';
	values[4] = Int32GetDatum(failure ? transport->failures + 1 : 0);
	values[5] = Int32GetDatum(failure ? pipeline_backoff_ms(transport->retry_base_ms, transport->retry_max_ms,
															transport->failures + 1) : 0);
	pipeline_exec_kept("WITH shipped AS (UPDATE pipeline.openlineage_run_events "
					   "SET acknowledged_at = clock_timestamp() "
					   "WHERE id = ANY ($1) AND acknowledged_at IS NULL RETURNING 1), "
					   "rejected AS (UPDATE pipeline.openlineage_run_events e "
					   "SET acknowledged_at = clock_timestamp(), delivery_error = r.error "
					   "FROM unnest($2, $3) r(id, error) "
					   "WHERE e.id = r.id AND e.acknowledged_at IS NULL RETURNING 1) "
					   "UPDATE pipeline.openlineage_transport SET "
					   "shipped_events = shipped_events + (SELECT count(*) FROM shipped), "
					   "rejected_events = rejected_events + (SELECT count(*) FROM rejected), "
					   "last_shipped_at = CASE WHEN cardinality($1) > 0 THEN clock_timestamp() "
					   "ELSE last_shipped_at END, "
					   "last_attempt_at = clock_timestamp(), failures = $5, last_error = $4, "
					   "next_attempt_at = CASE WHEN $5 > 0 "
					   "THEN clock_timestamp() + make_interval(secs => $6 / 1000.0) END",
					   6, types, values, nulls, false, 0);
}

/*
 * pipeline_shipping_wanted
 *		Whether this database has something to ship to: a transport or an
 *		alert route enabled.  The scheduler keeps a shipper running while
 *		it has.  The caller is connected to SPI, as the extension.
 */
bool
pipeline_shipping_wanted(void)
{
	return pipeline_exec_kept("SELECT FROM pipeline.openlineage_transport WHERE enabled "
							  "UNION ALL SELECT FROM pipeline.alert_routes WHERE enabled",
							  0, NULL, NULL, NULL, true, 1) > 0;
}
