/*-------------------------------------------------------------------------
 *
 * schedule_state.c
 *	  The schedulers' catalog (pipeline.schedule_state, and
 *	  pipeline.step_state for steps): what each pass reads of the
 *	  scheduled pipelines and steps, and what it records of them (when
 *	  each runs next, since when it waits for a worker, a pipeline's empty
 *	  ticks).
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
 *		(or steps, when 'steps') 'ids' (as ScheduleRows with only id, step,
 *		failures and last_failure_at set), read with a new snapshot: a run that ended
 *		after the pass's snapshot was taken counts.  The caller holds an
 *		active snapshot, which is replaced.
 */
List *
pipeline_current_failures(int64 *ids, int nids, bool steps)
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
	n = pipeline_catalog_exec(steps ?
							  "SELECT step_id, consecutive_failures, last_failure_at FROM pipeline.step_state "
							  "WHERE step_id = ANY ($1)" :
							  "SELECT pipeline_id, consecutive_failures, last_failure_at FROM pipeline.run_totals "
							  "WHERE pipeline_id = ANY ($1)",
							  1, &type, &value, NULL, true, 0, true);
	for (int i = 0; i < n; i++)
	{
		ScheduleRow *r = palloc0(sizeof(ScheduleRow));

		r->id = pipeline_result_int64(i, 0);
		r->step = steps;
		r->failures = (int32) pipeline_result_int64(i, 1);
		r->last_failure_at = timestamp_at(i, 2);
		rows = lappend(rows, r);
	}
	return rows;
}

/*
 * pipeline_save_schedule_state
 *		Records when the pipeline (or the step, when 'step') runs next and
 *		since when it waits for a worker (0: NULL, not by a time / not
 *		waiting).
 */
void
pipeline_save_schedule_state(int64 id, bool step, TimestampTz next, TimestampTz waiting_since)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = TimestampTzGetDatum(next);
	nulls[1] = next == 0 ? 'n' : ' ';
	values[2] = TimestampTzGetDatum(waiting_since);
	nulls[2] = waiting_since == 0 ? 'n' : ' ';
	pipeline_catalog_exec(step ?
						  "INSERT INTO pipeline.step_state AS s (step_id, next_run_at, waiting_since) "
						  "VALUES ($1, $2, $3) ON CONFLICT (step_id) DO UPDATE SET next_run_at = $2, "
						  "waiting_since = $3" :
						  "INSERT INTO pipeline.schedule_state AS s (pipeline_id, next_run_at, waiting_since) "
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

/*
 * The columns a pass reads of each scheduled step, in this order: as a
 * pipeline's (SCHEDULED_COLUMNS, without source and empty ticks), then
 * whether it is ready (every upstream's last run succeeded:
 * STEP_UPSTREAM_LAST_STATUS, as pipeline_step_failing_upstream asks) and
 * whether an upstream did new work since the step last ran (a skipped
 * run does not count): a run of the upstream after the last one that
 * run's start saw (its upstream_marks: runs of one pipeline or step never overlap, so ids
 * follow commits) -- a pipeline's run, replay or requeue that succeeded
 * and wrote rows, a step's run that succeeded --, or, for a step never
 * run, one that finished after it was made.  Each probe is by index, over
 * the runs since.
 */
/* a pipeline's run r that did new work */
#define PIPELINE_NEW_WORK \
	"r.status = 'succeeded' AND r.kind <> 'test' AND r.rows_inserted + r.rows_updated + r.rows_deleted > 0"

#define SCHEDULED_STEP_COLUMNS \
	"s.id, s.name, s.owner::oid, s.schedule, s.paused OR s.suspended_at IS NOT NULL, " \
	"coalesce(t.consecutive_failures, 0), t.last_failure_at, ls.started_at, t.next_run_at, " \
	"t.waiting_since, coalesce(s.retry_base_ms, -1), coalesce(s.retry_max_ms, -1), " \
	"coalesce(up.ready, true), coalesce(up.new_work, false)"

#define SCHEDULED_STEP_FROM \
	"FROM pipeline.steps s LEFT JOIN pipeline.step_state t ON t.step_id = s.id " \
	"LEFT JOIN LATERAL (SELECT l.started_at FROM pipeline.step_run_log l WHERE l.step_id = s.id " \
	"  ORDER BY l.run_id DESC LIMIT 1) ls ON true " \
	"LEFT JOIN LATERAL (SELECT l.upstream_marks AS marks FROM pipeline.step_run_log l " \
	"  WHERE l.step_id = s.id AND l.status <> 'skipped' ORDER BY l.run_id DESC LIMIT 1) lr ON true " \
	"LEFT JOIN LATERAL (SELECT bool_and(coalesce(l.status = 'succeeded', false)) AS ready, " \
	"  bool_or(CASE WHEN u.upstream_pipeline IS NOT NULL AND lr.marks IS NULL THEN EXISTS (" \
	"      SELECT FROM pipeline.run_log r WHERE r.pipeline_id = u.upstream_pipeline " \
	"         AND r.finished_at > s.created_at AND " PIPELINE_NEW_WORK ") " \
	"    WHEN u.upstream_pipeline IS NOT NULL THEN EXISTS (" \
	"      SELECT FROM pipeline.run_log r WHERE r.pipeline_id = u.upstream_pipeline " \
	"         AND r.run_id > coalesce((lr.marks ->> ('p' || u.upstream_pipeline))::bigint, 0) " \
	"         AND " PIPELINE_NEW_WORK ") " \
	"    WHEN lr.marks IS NULL THEN EXISTS (SELECT FROM pipeline.step_run_log r " \
	"      WHERE r.step_id = u.upstream_step AND r.finished_at > s.created_at AND r.status = 'succeeded') " \
	"    ELSE EXISTS (SELECT FROM pipeline.step_run_log r WHERE r.step_id = u.upstream_step " \
	"         AND r.run_id > coalesce((lr.marks ->> ('s' || u.upstream_step))::bigint, 0) " \
	"         AND r.status = 'succeeded') " \
	"    END) AS new_work " \
	"  FROM pipeline.step_upstreams u " STEP_UPSTREAM_LAST_STATUS \
	"  WHERE u.step_id = s.id) up ON true "

enum
{
	SS_ID, SS_NAME, SS_OWNER, SS_SCHEDULE, SS_STOPPED, SS_FAILURES, SS_LAST_FAILURE_AT,
	SS_LAST_START, SS_NEXT_RUN_AT, SS_WAITING_SINCE, SS_RETRY_BASE, SS_RETRY_MAX, SS_READY,
	SS_TRIGGERED
};

/*
 * step_row_at
 *		The scheduled step of row i of the last result (SCHEDULED_STEP_COLUMNS).
 */
static ScheduleRow *
step_row_at(int i)
{
	ScheduleRow *r = palloc0(sizeof(ScheduleRow));
	bool		isnull;

	r->id = pipeline_result_int64(i, SS_ID);
	r->step = true;
	r->name = pipeline_result_text(i, SS_NAME);
	r->owner = DatumGetObjectId(pipeline_result_datum(i, SS_OWNER, &isnull));
	r->schedule = pipeline_result_text(i, SS_SCHEDULE);
	r->stopped = DatumGetBool(pipeline_result_datum(i, SS_STOPPED, &isnull));
	r->failures = (int32) pipeline_result_int64(i, SS_FAILURES);
	r->last_failure_at = timestamp_at(i, SS_LAST_FAILURE_AT);
	r->last_start = timestamp_at(i, SS_LAST_START);
	r->next_run_at = timestamp_at(i, SS_NEXT_RUN_AT);
	r->waiting_since = timestamp_at(i, SS_WAITING_SINCE);
	r->retry_base_ms = (int32) pipeline_result_int64(i, SS_RETRY_BASE);
	r->retry_max_ms = (int32) pipeline_result_int64(i, SS_RETRY_MAX);
	r->ready = DatumGetBool(pipeline_result_datum(i, SS_READY, &isnull));
	r->triggered = DatumGetBool(pipeline_result_datum(i, SS_TRIGGERED, &isnull));
	return r;
}

/*
 * pipeline_scheduled_steps
 *		The steps with a schedule other than 'manual', by id, as a List of
 *		ScheduleRow * (step set).
 */
List *
pipeline_scheduled_steps(void)
{
	List	   *rows = NIL;
	int			n;

	n = pipeline_catalog_exec("SELECT " SCHEDULED_STEP_COLUMNS " " SCHEDULED_STEP_FROM
							  "WHERE s.schedule <> 'manual' ORDER BY s.id",
							  0, NULL, NULL, NULL, true, 0, true);
	for (int i = 0; i < n; i++)
		rows = lappend(rows, step_row_at(i));
	return rows;
}

/*
 * pipeline_scheduled_step
 *		Step 'step_id' as a pass would read it now, NULL when it is gone or
 *		no longer scheduled: a run worker asks before the run, which a run
 *		that ended since the pass may have made needless.
 */
ScheduleRow *
pipeline_scheduled_step(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);

	if (pipeline_catalog_exec("SELECT " SCHEDULED_STEP_COLUMNS " " SCHEDULED_STEP_FROM
							  "WHERE s.id = $1 AND s.schedule <> 'manual'",
							  1, &type, &value, NULL, true, 1, true) != 1)
		return NULL;
	return step_row_at(0);
}
