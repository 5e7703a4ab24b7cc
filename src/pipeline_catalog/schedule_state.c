/*-------------------------------------------------------------------------
 *
 * schedule_state.c
 *	  The schedulers' catalog (pipeline.schedule_state): what each pass
 *	  reads of the scheduled pipelines, and what it records of them (when
 *	  each runs next, since when it waits for a worker, its empty ticks).
 *
 * A pass reads every scheduled pipeline, so the statement is planned once
 * (a kept plan is planned again when the catalog changes) and each
 * pipeline's last start is one probe of the run_log (pipeline_id,
 * started_at) index.  The caller runs as the extension, connected to SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/* The columns a pass reads of each scheduled pipeline, in this order. */
#define SCHEDULED_COLUMNS \
	"d.id, d.name, d.owner::oid, d.schedule, d.paused OR d.suspended_at IS NOT NULL, " \
	"coalesce(t.consecutive_failures, 0), t.last_failure_at, " \
	"greatest((SELECT max(l.started_at) FROM pipeline.run_log l WHERE l.pipeline_id = d.id), " \
	"s.last_empty_tick_at), s.next_run_at, s.waiting_since, d.source::oid, s.last_empty_tick_at, " \
	"coalesce(d.retry_base_ms, -1), coalesce(d.retry_max_ms, -1)"

/* Their positions. */
enum
{
	SC_ID, SC_NAME, SC_OWNER, SC_SCHEDULE, SC_STOPPED, SC_FAILURES, SC_LAST_FAILURE_AT,
	SC_LAST_START, SC_NEXT_RUN_AT, SC_WAITING_SINCE, SC_SOURCE, SC_LAST_EMPTY_TICK_AT,
	SC_RETRY_BASE, SC_RETRY_MAX
};

/*
 * timestamp_at
 *		A timestamptz column of row 'row' of the last SPI result; 0 for NULL.
 */
static TimestampTz
timestamp_at(int row, int col)
{
	bool		isnull;
	Datum		d = pipeline_result_datum(row, col, &isnull);

	return isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * pipeline_scheduled_definitions
 *		The pipelines with a schedule other than 'manual', by id, as a List
 *		of ScheduleRow *.
 */
List *
pipeline_scheduled_definitions(void)
{
	List	   *rows = NIL;
	int			n;

	n = pipeline_catalog_exec("SELECT " SCHEDULED_COLUMNS " FROM pipeline.pipeline_defs d "
							  "LEFT JOIN pipeline.run_totals t ON t.pipeline_id = d.id "
							  "LEFT JOIN pipeline.schedule_state s ON s.pipeline_id = d.id "
							  "WHERE d.schedule <> 'manual' ORDER BY d.id",
							  0, NULL, NULL, NULL, true, 0, true);
	for (int i = 0; i < n; i++)
	{
		ScheduleRow *r = palloc0(sizeof(ScheduleRow));
		bool		isnull;

		r->id = pipeline_result_int64(i, SC_ID);
		r->name = pipeline_result_text(i, SC_NAME);
		r->owner = DatumGetObjectId(pipeline_result_datum(i, SC_OWNER, &isnull));
		r->schedule = pipeline_result_text(i, SC_SCHEDULE);
		r->stopped = DatumGetBool(pipeline_result_datum(i, SC_STOPPED, &isnull));
		r->failures = (int32) pipeline_result_int64(i, SC_FAILURES);
		r->last_failure_at = timestamp_at(i, SC_LAST_FAILURE_AT);
		r->last_start = timestamp_at(i, SC_LAST_START);
		r->next_run_at = timestamp_at(i, SC_NEXT_RUN_AT);
		r->waiting_since = timestamp_at(i, SC_WAITING_SINCE);
		r->source = DatumGetObjectId(pipeline_result_datum(i, SC_SOURCE, &isnull));
		r->last_empty_tick_at = timestamp_at(i, SC_LAST_EMPTY_TICK_AT);
		r->retry_base_ms = (int32) pipeline_result_int64(i, SC_RETRY_BASE);
		r->retry_max_ms = (int32) pipeline_result_int64(i, SC_RETRY_MAX);
		rows = lappend(rows, r);
	}
	return rows;
}

/*
 * pipeline_current_failures
 *		The failures in a row, and the last one's time, of the pipelines
 *		'ids' (as ScheduleRows with only id, failures and last_failure_at
 *		set), read with a new snapshot: a run that ended
 *		after the pass's snapshot was taken counts.  The caller holds an
 *		active snapshot, which is replaced.
 */
List *
pipeline_current_failures(int64 *ids, int nids)
{
	Oid			type = INT8ARRAYOID;
	Datum	   *elems = palloc(sizeof(Datum) * nids);
	Datum		value;
	List	   *rows = NIL;
	int			n;

	for (int i = 0; i < nids; i++)
		elems[i] = Int64GetDatum(ids[i]);
	value = PointerGetDatum(construct_array(elems, nids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	PopActiveSnapshot();
	/* (the latest, whatever the isolation level) */
	PushActiveSnapshot(GetLatestSnapshot());
	n = pipeline_catalog_exec("SELECT pipeline_id, consecutive_failures, last_failure_at FROM pipeline.run_totals "
							  "WHERE pipeline_id = ANY ($1)",
							  1, &type, &value, NULL, true, 0, true);
	for (int i = 0; i < n; i++)
	{
		ScheduleRow *r = palloc0(sizeof(ScheduleRow));

		r->id = pipeline_result_int64(i, 0);
		r->failures = (int32) pipeline_result_int64(i, 1);
		r->last_failure_at = timestamp_at(i, 2);
		rows = lappend(rows, r);
	}
	return rows;
}

/*
 * pipeline_save_schedule_state
 *		Records when the pipeline runs next and since when it waits for a
 *		worker (0: NULL, not by a schedule / not waiting).
 */
void
pipeline_save_schedule_state(int64 pipeline_id, TimestampTz next, TimestampTz waiting_since)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = TimestampTzGetDatum(next);
	nulls[1] = next == 0 ? 'n' : ' ';
	values[2] = TimestampTzGetDatum(waiting_since);
	nulls[2] = waiting_since == 0 ? 'n' : ' ';
	pipeline_catalog_exec("INSERT INTO pipeline.schedule_state AS s (pipeline_id, next_run_at, waiting_since) "
						  "VALUES ($1, $2, $3) ON CONFLICT (pipeline_id) DO UPDATE SET next_run_at = $2, "
						  "waiting_since = $3, updated_at = now()",
						  3, types, values, nulls, false, 0, true);
}

/*
 * pipeline_save_empty_tick
 *		Counts a tick of the pipeline's schedule at 'at' that found nothing
 *		to read, and records its next time.
 */
void
pipeline_save_empty_tick(int64 pipeline_id, TimestampTz at, TimestampTz next)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = TimestampTzGetDatum(at);
	values[2] = TimestampTzGetDatum(next);
	pipeline_catalog_exec("INSERT INTO pipeline.schedule_state AS s (pipeline_id, next_run_at, empty_ticks, "
						  "last_empty_tick_at) VALUES ($1, $3, 1, $2) ON CONFLICT (pipeline_id) DO UPDATE "
						  "SET next_run_at = $3, empty_ticks = s.empty_ticks + 1, last_empty_tick_at = $2, "
						  "updated_at = now()", 3, types, values, NULL, false, 0, true);
}
