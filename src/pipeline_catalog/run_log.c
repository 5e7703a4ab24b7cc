/*-------------------------------------------------------------------------
 *
 * run_log.c
 *	  pipeline.run_log: the history of runs.  A run is recorded when it
 *	  starts, its counts as its batches commit, the cursors it started from
 *	  and ended at, and its end; replay and freshness read it back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/* The columns a run's row is first written with, $1..$11 (record_args). */
#define RECORD_COLUMNS \
	"pipeline_id, kind, run_as, started_at, rows_pending, cursor_before, cursor_before_xid, " \
	"cursor_before_seq, cursor_after, cursor_after_xid, cursor_after_seq"
#define RECORD_VALUES "$1, $2, $3::regrole, $4, $5, $6, $7, $8, $9, $10, $11"
#define RECORD_NPARAMS 11

/*
 * cursor_record_args
 *		Three parameters of a run record: a cursor (NULLs when none).
 */
static void
cursor_record_args(Datum consumed, const RowPosition *partial, Oid *types, Datum *values,
				   char *nulls)
{
	RowPosition none = {0};

	pipeline_catalog_cursor_args(consumed, consumed ? partial : &none, types, values, nulls);
	if (consumed == (Datum) 0)
		nulls[0] = 'n';
}

/*
 * record_args
 *		The parameters of RECORD_COLUMNS.
 */
static void
record_args(int64 pipeline_id, const RunRecord *run, Oid *types, Datum *values, char *nulls)
{
	memset(nulls, ' ', RECORD_NPARAMS);
	types[0] = INT8OID;
	values[0] = Int64GetDatum(pipeline_id);
	types[1] = TEXTOID;
	values[1] = CStringGetTextDatum(run->kind);
	types[2] = OIDOID;
	values[2] = ObjectIdGetDatum(run->run_as);
	types[3] = TIMESTAMPTZOID;
	values[3] = TimestampTzGetDatum(run->started_at);
	types[4] = INT8OID;
	values[4] = Int64GetDatum(run->pending);
	cursor_record_args(run->cursor_before, &run->partial_before, types + 5, values + 5, nulls + 5);
	cursor_record_args(run->cursor_after, &run->partial_after, types + 8, values + 8, nulls + 8);
}

/*
 * insert_run
 *		Writes a run's row: running, or 'succeeded' (a run that found nothing
 *		to do); returns its id.  The caller runs as the extension.
 */
static int64
insert_run(int64 pipeline_id, const RunRecord *run, bool succeeded)
{
	Oid			types[RECORD_NPARAMS];
	Datum		values[RECORD_NPARAMS];
	char		nulls[RECORD_NPARAMS];
	int64		run_id;

	record_args(pipeline_id, run, types, values, nulls);
	pipeline_exec_kept(succeeded ?
					   "INSERT INTO pipeline.run_log (" RECORD_COLUMNS ", status, finished_at) "
					   "VALUES (" RECORD_VALUES ", 'succeeded', clock_timestamp()) RETURNING run_id" :
					   "INSERT INTO pipeline.run_log (" RECORD_COLUMNS ") "
					   "VALUES (" RECORD_VALUES ") RETURNING run_id",
					   RECORD_NPARAMS, types, values, nulls, false, 0);
	run_id = pipeline_result_int64(0, 0);
	pipeline_purge_history("run_log", "finished_at", "pipeline_id", pipeline_id);
	return run_id;
}

/*
 * pipeline_run_start
 *		Records a new run as 'running' and returns its id.
 */
int64
pipeline_run_start(int64 pipeline_id, const RunRecord *run)
{
	PipelineUserContext ctx;
	int64		run_id;

	pipeline_become_internal(&ctx);
	run_id = insert_run(pipeline_id, run, false);
	pipeline_restore_user(&ctx);
	return run_id;
}

/*
 * pipeline_run_record_empty
 *		Records a run that found nothing to do, started and succeeded, in one
 *		statement, with its outcome; returns its id.  (Its OpenLineage
 *		events are the caller's: the trigger takes a run inserted finished
 *		for a restored one.)
 */
int64
pipeline_run_record_empty(int64 pipeline_id, const RunRecord *run)
{
	PipelineUserContext ctx;
	int64		run_id;

	pipeline_become_internal(&ctx);
	run_id = insert_run(pipeline_id, run, true);
	pipeline_record_outcome(run_id);
	pipeline_restore_user(&ctx);
	return run_id;
}

/* The counts a run_log update sets, from parameter $2 (counts_args). */
#define COUNTS_SET \
	"rows_read = $2, rows_inserted = $3, rows_updated = $4, rows_deleted = $5, " \
	"rows_stale = $6, rows_filtered = $7, rows_quarantined = $8, rows_dropped = $9, " \
	"rows_unchanged = $10, batches = $11"
#define COUNTS_NPARAMS 10

/*
 * counts_args
 *		Fills parameters $2..$11 of a run_log update from counts.
 */
static void
counts_args(const RunCounts *counts, Oid *types, Datum *values)
{
	int64		fields[COUNTS_NPARAMS - 1] = {counts->read, counts->inserted, counts->updated,
		counts->deleted, counts->stale, counts->filtered, counts->quarantined, counts->dropped,
	counts->unchanged};

	for (int i = 0; i < COUNTS_NPARAMS - 1; i++)
	{
		types[i] = INT8OID;
		values[i] = Int64GetDatum(fields[i]);
	}
	types[COUNTS_NPARAMS - 1] = INT4OID;
	values[COUNTS_NPARAMS - 1] = Int32GetDatum(counts->batches);
}

/*
 * pipeline_run_progress
 *		Stores a running run's counts and the rows it has pending in all.
 */
void
pipeline_run_progress(int64 run_id, const RunCounts *counts, int64 pending)
{
	Oid			types[COUNTS_NPARAMS + 2];
	Datum		values[COUNTS_NPARAMS + 2];

	types[0] = INT8OID;
	values[0] = Int64GetDatum(run_id);
	counts_args(counts, types + 1, values + 1);
	types[COUNTS_NPARAMS + 1] = INT8OID;
	values[COUNTS_NPARAMS + 1] = Int64GetDatum(pending);
	pipeline_exec_internal_kept("UPDATE pipeline.run_log SET " COUNTS_SET ", rows_pending = $12 "
								"WHERE run_id = $1", COUNTS_NPARAMS + 2, types, values, NULL);
}

/*
 * pipeline_last_run_succeeded
 *		Whether the latest run recorded of a pipeline succeeded (false when
 *		it has none).
 */
bool
pipeline_last_run_succeeded(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);

	return pipeline_exec_internal_kept("SELECT 1 FROM (SELECT status FROM pipeline.run_log "
									   "WHERE pipeline_id = $1 ORDER BY run_id DESC LIMIT 1) r "
									   "WHERE r.status = 'succeeded'", 1, &type, &value, NULL) == 1;
}

/*
 * pipeline_run_finish
 *		Closes a run with its final status, counts and error (if any), and
 *		records what it leaves behind (outcome.c) -- but for a test's run
 *		('outcome' false), which is rolled back: no totals, no streak of
 *		failures, no alert.
 */
void
pipeline_run_finish(int64 run_id, const char *status, const RunCounts *counts,
					const char *sqlstate, const char *message, bool outcome)
{
	Oid			types[COUNTS_NPARAMS + 4];
	Datum		values[COUNTS_NPARAMS + 4];
	char		nulls[COUNTS_NPARAMS + 4];
	int			p = COUNTS_NPARAMS + 1; /* the first parameter after the
										 * counts */
	PipelineUserContext ctx;

	memset(nulls, ' ', sizeof(nulls));
	types[0] = INT8OID;
	values[0] = Int64GetDatum(run_id);
	counts_args(counts, types + 1, values + 1);
	types[p] = TEXTOID;
	values[p] = CStringGetTextDatum(status);
	types[p + 1] = TEXTOID;
	types[p + 2] = TEXTOID;
	if (sqlstate)
		values[p + 1] = CStringGetTextDatum(sqlstate);
	else
		nulls[p + 1] = 'n';
	if (message)
		values[p + 2] = CStringGetTextDatum(message);
	else
		nulls[p + 2] = 'n';
	pipeline_become_internal(&ctx);
	pipeline_exec_kept("UPDATE pipeline.run_log SET " COUNTS_SET ", status = $12, "
					   "error_sqlstate = $13, error_message = $14, finished_at = clock_timestamp() "
					   "WHERE run_id = $1", COUNTS_NPARAMS + 4, types, values, nulls, false, 0);
	if (outcome)
		pipeline_record_outcome(run_id);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_fail_interrupted_runs
 *		Marks failed the runs of a pipeline still recorded as running.  The
 *		caller holds the pipeline's run lock, so none of them can be alive:
 *		their session ended (crash, restart, terminated backend) mid-run.
 */
void
pipeline_fail_interrupted_runs(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);
	PipelineUserContext ctx;
	int64	   *interrupted;
	uint64		n;

	pipeline_become_internal(&ctx);
	pipeline_exec_kept("UPDATE pipeline.run_log SET status = 'failed', "
					   "finished_at = clock_timestamp(), error_sqlstate = '57P02', "
					   "error_message = 'run interrupted: the session running it ended "
					   "(server crash or restart, or terminated backend) before it finished' "
					   "WHERE pipeline_id = $1 AND status = 'running' RETURNING run_id",
					   1, &type, &value, NULL, false, 0);
	/* Each outcome runs statements of its own: read the ids first. */
	n = SPI_processed;
	interrupted = palloc(sizeof(int64) * (n + 1));
	for (uint64 i = 0; i < n; i++)
		interrupted[i] = pipeline_result_int64(i, 0);
	for (uint64 i = 0; i < n; i++)
		pipeline_record_outcome(interrupted[i]);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_run_cursor_after
 *		Records the cursor a run ends at so far (pipeline_cursor_write, with
 *		each batch).
 */
void
pipeline_run_cursor_after(int64 run_id, Datum consumed, const RowPosition *partial)
{
	Oid			types[4] = {INT8OID};
	Datum		values[4];
	char		nulls[4] = {' '};

	values[0] = Int64GetDatum(run_id);
	pipeline_catalog_cursor_args(consumed, partial, types + 1, values + 1, nulls + 1);
	pipeline_exec_internal_kept("UPDATE pipeline.run_log SET cursor_after = $2, cursor_after_xid = $3, "
								"cursor_after_seq = $4 WHERE run_id = $1", 4, types, values, nulls);
}

/* The columns of pipeline_runs_selected: each run with its cursor. */
typedef enum RangeColumn
{
	RANGE_FIRST_RUN,
	RANGE_BEFORE,
	RANGE_BEFORE_PARTIAL,		/* xid, then seq */
	RANGE_LAST_RUN = RANGE_BEFORE_PARTIAL + 2,
	RANGE_AFTER,
	RANGE_AFTER_PARTIAL
} RangeColumn;

/*
 * pipeline_runs_selected
 *		The cursors around the runs (kind 'run', with a recorded cursor) of
 *		the pipeline that the request selects, recorded on the replay's run
 *		'replay_run_id'; false when it selects none.
 */
bool
pipeline_runs_selected(int64 pipeline_id, const ReplayRequest *req, int64 replay_run_id,
					   ReplayRange *range)
{
	Oid			types[5] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT8OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	PipelineUserContext ctx;
	bool		isnull;
	int			found;

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = TimestampTzGetDatum(req->since);
	nulls[1] = req->has_since ? ' ' : 'n';
	values[2] = TimestampTzGetDatum(req->until);
	nulls[2] = req->has_until ? ' ' : 'n';
	values[3] = Int64GetDatum(req->first_run);
	nulls[3] = req->has_first ? ' ' : 'n';
	values[4] = Int64GetDatum(req->last_run);
	nulls[4] = req->has_last ? ' ' : 'n';
	pipeline_become_internal(&ctx);
	found = pipeline_exec("WITH runs AS (SELECT run_id FROM pipeline.run_log "
						  "WHERE pipeline_id = $1 AND kind = 'run' AND cursor_before IS NOT NULL "
						  "AND ($2::timestamptz IS NULL OR started_at >= $2) "
						  "AND ($3::timestamptz IS NULL OR started_at < $3) "
						  "AND ($4::bigint IS NULL OR run_id >= $4) "
						  "AND ($5::bigint IS NULL OR run_id <= $5)) "
						  "SELECT f.run_id, f.cursor_before, f.cursor_before_xid, f.cursor_before_seq, "
						  "l.run_id, l.cursor_after, l.cursor_after_xid, l.cursor_after_seq "
						  "FROM pipeline.run_log f, pipeline.run_log l "
						  "WHERE f.run_id = (SELECT min(run_id) FROM runs) "
						  "AND l.run_id = (SELECT max(run_id) FROM runs)",
						  5, types, values, nulls, false, 1);
	if (found == 1)
	{
		range->first_run = pipeline_result_int64(0, RANGE_FIRST_RUN);
		range->before = datumCopy(pipeline_result_datum(0, RANGE_BEFORE, &isnull), false, -1);
		range->before_partial = pipeline_catalog_position(0, RANGE_BEFORE_PARTIAL);
		range->last_run = pipeline_result_int64(0, RANGE_LAST_RUN);
		range->after = datumCopy(pipeline_result_datum(0, RANGE_AFTER, &isnull), false, -1);
		range->after_partial = pipeline_catalog_position(0, RANGE_AFTER_PARTIAL);

		values[0] = Int64GetDatum(replay_run_id);
		values[1] = Int64GetDatum(range->first_run);
		values[2] = Int64GetDatum(range->last_run);
		types[1] = types[2] = INT8OID;
		pipeline_exec("UPDATE pipeline.run_log SET replayed_from_run = $2, replayed_to_run = $3 "
					  "WHERE run_id = $1", 3, types, values, NULL, false, 0);
	}
	pipeline_restore_user(&ctx);
	return found == 1;
}

/*
 * pipeline_running_pipelines
 *		The ids of the pipelines with a run recorded as running (*ids, in
 *		the caller's memory context); returns how many.
 */
int
pipeline_running_pipelines(int64 **ids)
{
	int			n;

	n = pipeline_catalog_exec("SELECT DISTINCT pipeline_id FROM pipeline.run_log "
							  "WHERE status = 'running'", 0, NULL, NULL, NULL, true, 0, false);
	*ids = palloc(sizeof(int64) * (n + 1));
	for (int i = 0; i < n; i++)
		(*ids)[i] = pipeline_result_int64(i, 0);
	return n;
}

/*
 * pipeline_last_change
 *		When the last run of a pipeline into 'target' that changed it (rows
 *		inserted, updated or deleted; a replay brings nothing new) finished;
 *		false when none did.
 */
bool
pipeline_last_change(Oid target, TimestampTz *finished_at)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(target);
	bool		isnull;
	Datum		d;

	pipeline_catalog_exec("SELECT max(l.finished_at) FROM pipeline.pipeline_defs d "
						  "JOIN pipeline.run_log l ON l.pipeline_id = d.id "
						  "WHERE d.target = $1 AND l.status = 'succeeded' AND l.kind <> 'replay' "
						  "AND l.rows_inserted + l.rows_updated + l.rows_deleted > 0",
						  1, &type, &value, NULL, true, 1, false);
	d = pipeline_result_datum(0, 0, &isnull);
	if (!isnull)
		*finished_at = DatumGetTimestampTz(d);
	return !isnull;
}
