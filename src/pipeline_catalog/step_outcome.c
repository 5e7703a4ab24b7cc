/*-------------------------------------------------------------------------
 *
 * step_outcome.c
 *	  What a finished run of a step leaves besides its history row, as
 *	  outcome.c does for pipelines: the step's totals and streak of
 *	  failures (pipeline.step_state), alerts when it starts or stops
 *	  failing, its suspension after too many failures in a row, and a word
 *	  to the scheduler when a scheduled step has something to do.
 *
 * A skipped run leaves nothing here: it neither breaks nor extends a
 * streak (a step held back by a failing upstream is not itself failing),
 * and recording it must not wait for the step's state row, which the run
 * it was skipped for may hold until its caller's transaction ends.  A
 * suspended step is skipped (by run_step and by its scheduler) until
 * resume_step.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"

/*
 * read_outcome
 *		The run and its step's streak before it; false when the step is
 *		gone.
 */
static bool
read_outcome(int64 run_id, RunStreak *out, bool *scheduled)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(run_id), Int32GetDatum(pipeline_suspend_after_failures)};
	bool		isnull;

	/* not read-only: it must see the run just closed */
	if (pipeline_catalog_exec("SELECT s.id, s.name, s.owner::oid, l.status, l.error_sqlstate, "
							  "l.error_message, s.suspended_at IS NOT NULL, s.schedule <> 'manual', "
							  "coalesce(t.consecutive_failures, 0), coalesce(s.suspend_after_failures, $2), "
							  "EXISTS (SELECT FROM pipeline.step_upstreams u JOIN pipeline.steps f ON f.id = u.step_id "
							  "        WHERE u.upstream_step = s.id AND f.schedule <> 'manual') "
							  "FROM pipeline.step_run_log l JOIN pipeline.steps s ON s.id = l.step_id "
							  "LEFT JOIN pipeline.step_state t ON t.step_id = s.id "
							  "WHERE l.run_id = $1",
							  2, types, values, NULL, false, 1, true) != 1)
		return false;
	out->kind = "step";
	out->run_id = run_id;
	out->id = pipeline_result_int64(0, 0);
	out->name = pipeline_result_text(0, 1);
	out->owner = DatumGetObjectId(pipeline_result_datum(0, 2, &isnull));
	out->status = pipeline_result_text(0, 3);
	out->sqlstate = pipeline_result_text(0, 4);
	out->message = pipeline_result_text(0, 5);
	out->suspended = DatumGetBool(pipeline_result_datum(0, 6, &isnull));
	*scheduled = DatumGetBool(pipeline_result_datum(0, 7, &isnull));
	out->previous_streak = (int32) pipeline_result_int64(0, 8);
	out->suspend_after = (int32) pipeline_result_int64(0, 9);
	out->scheduled_followers = DatumGetBool(pipeline_result_datum(0, 10, &isnull));
	return true;
}

/*
 * add_to_totals
 *		Adds the run to its step's totals; returns the new streak.
 */
static int32
add_to_totals(int64 run_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(run_id);

	pipeline_catalog_exec("INSERT INTO pipeline.step_state AS t (step_id, runs_succeeded, runs_failed, "
						  "duration_seconds_sum, consecutive_failures, last_success_at, last_failure_at) "
						  "SELECT l.step_id, (l.status = 'succeeded')::int, (l.status = 'failed')::int, "
						  "extract(epoch FROM l.finished_at - l.started_at)::float8, "
						  "(l.status = 'failed')::int, "
						  "CASE WHEN l.status = 'succeeded' THEN l.finished_at END, "
						  "CASE WHEN l.status = 'failed' THEN l.finished_at END "
						  "FROM pipeline.step_run_log l WHERE l.run_id = $1 "
						  "ON CONFLICT (step_id) DO UPDATE SET "
						  "runs_succeeded = t.runs_succeeded + excluded.runs_succeeded, "
						  "runs_failed = t.runs_failed + excluded.runs_failed, "
						  "duration_seconds_sum = t.duration_seconds_sum + excluded.duration_seconds_sum, "
						  "consecutive_failures = CASE WHEN excluded.runs_succeeded > 0 THEN 0 "
						  "    ELSE t.consecutive_failures + excluded.consecutive_failures END, "
						  "last_success_at = coalesce(excluded.last_success_at, t.last_success_at), "
						  "last_failure_at = coalesce(excluded.last_failure_at, t.last_failure_at) "
						  "RETURNING consecutive_failures",
						  1, &type, &value, NULL, false, 1, true);
	return (int32) pipeline_result_int64(0, 0);
}

/*
 * suspend
 *		Suspends a step after its streak reached the limit.
 */
static void
suspend(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);

	pipeline_catalog_exec("UPDATE pipeline.steps SET suspended_at = now() WHERE id = $1",
						  1, &type, &value, NULL, false, 0, false);
}

/*
 * record_outcome
 *		pipeline_record_step_outcome, as the extension.
 */
static void
record_outcome(int64 run_id)
{
	RunStreak	out;
	bool		scheduled;

	if (!read_outcome(run_id, &out, &scheduled) || strcmp(out.status, "skipped") == 0)
		return;
	out.streak = add_to_totals(run_id);
	if (pipeline_alert_streak(&out, suspend))
		return;
	if (strcmp(out.status, "failed") == 0 && scheduled)
		pipeline_schedules_changed();	/* its retry */
	else if (strcmp(out.status, "succeeded") == 0 && out.scheduled_followers)
		pipeline_schedules_changed();	/* a step after it may have work */
}

/*
 * pipeline_record_step_outcome
 *		Called once for every run of a step that finished (succeeded,
 *		failed, skipped, or found interrupted), in the transaction recording
 *		it, by whoever ran it (a client, a worker, the scheduler): every
 *		statement of it runs as the extension, with a search_path no user
 *		can plant objects in.
 */
void
pipeline_record_step_outcome(int64 run_id)
{
	PipelineUserContext ctx;

	pipeline_become_internal(&ctx);
	record_outcome(run_id);
	pipeline_restore_user(&ctx);
}
