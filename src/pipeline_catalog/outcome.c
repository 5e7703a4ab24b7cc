/*-------------------------------------------------------------------------
 *
 * outcome.c
 *	  What a finished run leaves behind besides its history row: the
 *	  pipeline's running totals, its streak of failures, alerts when it
 *	  starts or stops failing and when a check changes status, and its
 *	  suspension after too many failures.
 *
 * The totals in pipeline.run_totals only grow (the history retention
 * deletes old runs, never these), so pipeline.metrics() can publish them
 * as Prometheus counters.  A pipeline whose last run failed is "failing";
 * after pipeline.suspend_after_failures (or its own
 * pipeline.set_failure_policy) failed runs in a row it is
 * suspended: run() refuses it until resume(), so a broken pipeline called
 * every minute by a scheduler does not fail every minute forever.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"

/*
 * read_outcome
 *		The run and its pipeline's streak before this run; false when the
 *		pipeline is gone.
 */
static bool
read_outcome(int64 run_id, RunStreak *out)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(run_id), Int32GetDatum(pipeline_suspend_after_failures)};
	bool		isnull;

	if (pipeline_exec_kept("SELECT l.pipeline_id, d.name, d.owner::oid, l.status, l.error_sqlstate, "
						   "l.error_message, d.suspended_at IS NOT NULL, "
						   "coalesce(t.consecutive_failures, 0), "
						   "coalesce(d.suspend_after_failures, $2), "
	/* a scheduled step runs after it: wake the scheduler on success */
						   "EXISTS (SELECT FROM pipeline.step_upstreams u JOIN pipeline.steps f ON f.id = u.step_id "
						   "        WHERE u.upstream_pipeline = l.pipeline_id AND f.schedule <> 'manual') "
						   "FROM pipeline.run_log l JOIN pipeline.pipeline_defs d ON d.id = l.pipeline_id "
						   "LEFT JOIN pipeline.run_totals t ON t.pipeline_id = l.pipeline_id "
						   "WHERE l.run_id = $1", 2, types, values, NULL,
						   false, 1) != 1)	/* not read-only: it must see the
											 * run just closed */
		return false;
	out->kind = "pipeline";
	out->run_id = run_id;
	out->id = pipeline_result_int64(0, 0);
	out->name = pipeline_result_text(0, 1);
	out->owner = DatumGetObjectId(pipeline_result_datum(0, 2, &isnull));
	out->status = pipeline_result_text(0, 3);
	out->sqlstate = pipeline_result_text(0, 4);
	out->message = pipeline_result_text(0, 5);
	out->suspended = DatumGetBool(pipeline_result_datum(0, 6, &isnull));
	out->previous_streak = (int32) pipeline_result_int64(0, 7);
	out->suspend_after = (int32) pipeline_result_int64(0, 8);
	out->scheduled_followers = DatumGetBool(pipeline_result_datum(0, 9, &isnull));
	return true;
}

/*
 * add_to_totals
 *		Adds the run to its pipeline's totals; returns the new streak.
 */
static int32
add_to_totals(int64 run_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(run_id);

	pipeline_exec_kept("INSERT INTO pipeline.run_totals AS t (pipeline_id, runs_succeeded, runs_failed, "
					   "runs_cancelled, rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale, "
					   "rows_filtered, rows_quarantined, rows_dropped, rows_unchanged, duration_seconds_sum, "
					   "duration_le, "
					   "consecutive_failures, last_success_at, last_failure_at) "
					   "SELECT l.pipeline_id, (l.status = 'succeeded')::int, (l.status = 'failed')::int, "
					   "(l.status = 'cancelled')::int, l.rows_read, l.rows_inserted, l.rows_updated, "
					   "l.rows_deleted, l.rows_stale, l.rows_filtered, l.rows_quarantined, l.rows_dropped, "
					   "l.rows_unchanged, s.secs, "
					   "ARRAY(SELECT (s.secs <= b)::int::bigint "
					   "      FROM unnest(pipeline.run_duration_bounds()) WITH ORDINALITY u(b, i) ORDER BY i), "
					   "(l.status = 'failed')::int, "
					   "CASE WHEN l.status = 'succeeded' THEN l.finished_at END, "
					   "CASE WHEN l.status = 'failed' THEN l.finished_at END "
					   "FROM pipeline.run_log l, "
					   "LATERAL (SELECT extract(epoch FROM l.finished_at - l.started_at)::float8 AS secs) s "
					   "WHERE l.run_id = $1 "
					   "ON CONFLICT (pipeline_id) DO UPDATE SET "
					   "runs_succeeded = t.runs_succeeded + excluded.runs_succeeded, "
					   "runs_failed = t.runs_failed + excluded.runs_failed, "
					   "runs_cancelled = t.runs_cancelled + excluded.runs_cancelled, "
					   "rows_read = t.rows_read + excluded.rows_read, "
					   "rows_inserted = t.rows_inserted + excluded.rows_inserted, "
					   "rows_updated = t.rows_updated + excluded.rows_updated, "
					   "rows_deleted = t.rows_deleted + excluded.rows_deleted, "
					   "rows_stale = t.rows_stale + excluded.rows_stale, "
					   "rows_filtered = t.rows_filtered + excluded.rows_filtered, "
					   "rows_quarantined = t.rows_quarantined + excluded.rows_quarantined, "
					   "rows_dropped = t.rows_dropped + excluded.rows_dropped, "
					   "rows_unchanged = t.rows_unchanged + excluded.rows_unchanged, "
					   "duration_seconds_sum = t.duration_seconds_sum + excluded.duration_seconds_sum, "
					   "duration_le = ARRAY(SELECT a + b FROM unnest(t.duration_le, excluded.duration_le) "
					   "                    WITH ORDINALITY u(a, b, i) ORDER BY i), "
					   "consecutive_failures = CASE WHEN excluded.runs_succeeded > 0 THEN 0 "
					   "    ELSE t.consecutive_failures + excluded.consecutive_failures END, "
					   "last_success_at = coalesce(excluded.last_success_at, t.last_success_at), "
					   "last_failure_at = coalesce(excluded.last_failure_at, t.last_failure_at) "
					   "RETURNING consecutive_failures",
					   1, &type, &value, NULL, false, 1);
	return (int32) pipeline_result_int64(0, 0);
}

/*
 * check_alerts
 *		Raises an alert for each data quality check of the run whose status
 *		differs from its result in the pipeline's previous run with it (a
 *		first result, previous state none, differs unless it passes): a
 *		check now past its warn or error threshold, or passing again.
 */
static void
check_alerts(const RunStreak *out)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(out->run_id);
	SPITupleTable *changes;
	int			n;

	n = pipeline_exec_kept("SELECT cr.check_name, p.status, cr.status, cr.message, "
						   "jsonb_build_object('pipeline', d.name, 'pipeline_id', d.id, 'run_id', cr.run_id, "
						   "'check', cr.check_name, 'failing', cr.failing, 'total', cr.total, "
						   "'observed', cr.observed)::text "
						   "FROM pipeline.check_results cr "
						   "JOIN pipeline.pipeline_defs d ON d.id = cr.pipeline_id "
						   "LEFT JOIN LATERAL (SELECT p.status FROM pipeline.check_results p "
						   "WHERE p.check_id = cr.check_id AND p.run_id < cr.run_id "
						   "ORDER BY p.checked_at DESC LIMIT 1) p ON true "
						   "WHERE cr.run_id = $1 AND cr.status IS DISTINCT FROM coalesce(p.status, 'PASS') "
						   "ORDER BY cr.check_name",
						   1, &type, &value, NULL, false, 0);	/* sees this run's */
	changes = SPI_tuptable;
	for (int i = 0; i < n; i++)
	{
		PipelineAlert alert = {0};

		SPI_tuptable = changes;
		alert.kind = "check";
		alert.pipeline_id = out->id;
		alert.subject = psprintf("%s.%s", out->name, pipeline_result_text(i, 0));
		alert.previous_state = pipeline_result_text(i, 1);
		alert.state = pipeline_result_text(i, 2);
		alert.severity = strcmp(alert.state, "FAIL") == 0 ? "error"
			: strcmp(alert.state, "WARN") == 0 ? "warning" : "info";
		alert.message = pipeline_result_text(i, 3);
		alert.owner = out->owner;
		alert.details = pipeline_result_text(i, 4);
		pipeline_raise_alert(&alert);
	}
}

/*
 * pipeline_record_outcome
 *		Called once for every run that finished (succeeded, failed,
 *		cancelled, or found interrupted), in the transaction recording it.
 *		The caller runs as the extension.
 */
void
pipeline_record_outcome(int64 run_id)
{
	RunStreak	out;

	if (!read_outcome(run_id, &out))
		return;
	out.streak = add_to_totals(run_id);
	check_alerts(&out);
	(void) pipeline_alert_streak(&out, pipeline_suspend);
	if (strcmp(out.status, "succeeded") == 0 && out.scheduled_followers)
		pipeline_schedules_changed();
}
