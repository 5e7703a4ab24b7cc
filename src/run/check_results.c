/*-------------------------------------------------------------------------
 *
 * check_results.c
 *	  Judges a batch by its data quality checks and keeps every check's
 *	  result of every run in pipeline.check_results.
 *
 * The batch statement counts the rows the checks saw, and per check the
 * rows that failed it and those it left out for a NULL value (row_watch.c): a
 * check's rows checked are the rows seen less those, as Great Expectations
 * computes a column map expectation over the column's non-NULL values.
 * Once the batch's statements have all succeeded, but before the batch
 * commits, each check's counts meet its thresholds: warn_if makes the
 * result WARN, error_if (or mostly) and a row_count out of bounds with
 * action fail make it FAIL and fail the run, so that the batch is rolled
 * back: nothing of it merged, the cursor where it was.
 *
 * A batch's results are added to the run's rows in check_results in the
 * batch's own transaction.  When the batch fails, they are kept in the
 * batch's state (BatchState, owned by the run) and written by run.c once
 * the failed batch has been rolled back, so a failed run shows which check
 * failed it.  The counts are kept there too: nothing here outlives a call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"
#include "run/run.h"

/* A check's result in one batch. */
typedef enum CheckStatus
{
	STATUS_PASS,
	STATUS_WARN,
	STATUS_FAIL
} CheckStatus;

static const char *const status_names[] = {"PASS", "WARN", "FAIL"};

typedef struct BatchResult
{
	CheckStatus status;
	int64		failing;
	int64		total;
	int64		missing;		/* rows left out for a NULL value */
	double		observed;
	char	   *message;		/* NULL when it passed */
	bool		unjudged;		/* a row_count of a batch that did not finish */
} BatchResult;

/* Results of a failed batch, waiting in its state for run.c to record them. */
typedef struct FailedChecks
{
	int64		pipeline_id;
	List	   *checks;			/* of QualityCheck *, copied */
	BatchResult results[PIPELINE_MAX_CHECKS];
} FailedChecks;

/*
 * threshold_met
 *		Whether 'failing' of 'total' rows meet a threshold.
 */
static bool
threshold_met(const CheckThreshold *t, int64 failing, int64 total)
{
	double		x = t->percent ? (total > 0 ? 100.0 * failing / total : 0) : (double) failing;

	if (!t->set)
		return false;
	if (strcmp(t->op, ">") == 0)
		return x > t->value;
	if (strcmp(t->op, ">=") == 0)
		return x >= t->value;
	if (strcmp(t->op, "<") == 0)
		return x < t->value;
	if (strcmp(t->op, "<=") == 0)
		return x <= t->value;
	if (strcmp(t->op, "=") == 0)
		return x == t->value;
	return x != t->value;
}

/*
 * threshold_text
 *		"> 5%" for messages.
 */
static char *
threshold_text(const CheckThreshold *t)
{
	return psprintf("%s %g%s", t->op, t->value, t->percent ? "%" : "");
}

/*
 * pipeline_checks_begin_batch
 *		Starts counting a batch's check failures.
 */
void
pipeline_checks_begin_batch(BatchState *batch, List *checks)
{
	memset(&batch->check_counts, 0, sizeof(CheckCounts));
	batch->check_counts.nchecks = list_length(checks);
	batch->failed = NULL;
}

/*
 * pipeline_checks_add_statement
 *		Adds the counts of a batch statement that succeeded (its tally).
 *		The rows the checks saw are the rows read that the filter kept and
 *		no row rule rejected (delete events among them, which pass); each
 *		check left out those whose value was NULL.
 */
void
pipeline_checks_add_statement(BatchState *batch)
{
	CheckCounts *cc = &batch->check_counts;
	const BatchTally *tally = &batch->tally;
	ListCell   *lc;

	cc->checked += tally->read - tally->filtered;
	foreach(lc, tally->rejected)
	{
		if (((RejectedRow *) lfirst(lc))->rule >= 0)
			cc->checked--;
	}
	for (int i = 0; i < cc->nchecks; i++)
	{
		cc->failing[i] += tally->check_failing[i];
		cc->unchecked[i] += tally->check_unchecked[i];
	}
}

/*
 * judge_row_count
 *		A row_count check's result for a batch of 'rows' rows.
 */
static BatchResult
judge_row_count(const QualityCheck *check, int64 rows)
{
	BatchResult r = {STATUS_PASS, 0, 1, 0, (double) rows, NULL, false};

	if ((check->min_rows >= 0 && rows < check->min_rows) ||
		(check->max_rows >= 0 && rows > check->max_rows))
	{
		r.failing = 1;
		r.status = check->action == CHECK_FAIL ? STATUS_FAIL : STATUS_WARN;
		if (check->max_rows < 0)
			r.message = psprintf("batch of %lld rows, fewer than the minimum of %lld",
								 (long long) rows, (long long) check->min_rows);
		else if (check->min_rows < 0)
			r.message = psprintf("batch of %lld rows, more than the maximum of %lld",
								 (long long) rows, (long long) check->max_rows);
		else
			r.message = psprintf("batch of %lld rows, outside %lld to %lld", (long long) rows,
								 (long long) check->min_rows, (long long) check->max_rows);
	}
	return r;
}

/*
 * judge_rows
 *		Row check number i's result for the batch counted in 'cc': its
 *		failing rows of the rows it checked (those seen less those it left
 *		out for a NULL value).
 */
static BatchResult
judge_rows(const QualityCheck *check, int i, const CheckCounts *cc)
{
	int64		failing = cc->failing[i];
	int64		missing = cc->unchecked[i];
	int64		total = cc->checked - missing;
	double		failing_share = total > 0 ? (double) failing / total : 0;
	BatchResult r = {STATUS_PASS, failing, total, missing, failing_share, NULL, false};
	char	   *share = psprintf("%lld of %lld rows failed (%.2f%%)", (long long) failing,
								 (long long) total, 100.0 * r.observed);

	if (check->action == CHECK_FAIL && failing > 0)
	{
		r.status = STATUS_FAIL;
		r.message = psprintf("%s; its action is fail", share);
	}
	else if (threshold_met(&check->error_if, failing, total))
	{
		r.status = STATUS_FAIL;
		r.message = check->mostly > 0
			? psprintf("%s, fewer than mostly = %g passed", share, check->mostly)
			: psprintf("%s, error_if %s", share, threshold_text(&check->error_if));
	}
	else if (threshold_met(&check->warn_if, failing, total))
	{
		r.status = STATUS_WARN;
		r.message = psprintf("%s, warn_if %s", share, threshold_text(&check->warn_if));
	}
	return r;
}

/*
 * save_results
 *		Adds a batch's results to the run's rows in check_results.
 */
static void
save_results(int64 run_id, int64 pipeline_id, List *checks, const BatchResult *results)
{
	int			n = 0;
	Datum		names[PIPELINE_MAX_CHECKS];
	Datum		ids[PIPELINE_MAX_CHECKS];
	Datum		statuses[PIPELINE_MAX_CHECKS];
	Datum		failing[PIPELINE_MAX_CHECKS];
	Datum		totals[PIPELINE_MAX_CHECKS];
	Datum		missing[PIPELINE_MAX_CHECKS];
	Datum		observed[PIPELINE_MAX_CHECKS];
	Datum		messages[PIPELINE_MAX_CHECKS];
	bool		message_nulls[PIPELINE_MAX_CHECKS];
	Oid			types[10] = {INT8OID, INT8OID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, FLOAT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID};
	Datum		values[10];
	int			dims[1];
	int			lbs[1] = {1};

	for (int i = 0; i < list_length(checks); i++)
	{
		QualityCheck *check = list_nth(checks, i);

		if (results[i].unjudged)
			continue;
		names[n] = CStringGetTextDatum(check->name);
		ids[n] = Int64GetDatum(check->id);
		statuses[n] = CStringGetTextDatum(status_names[results[i].status]);
		failing[n] = Int64GetDatum(results[i].failing);
		totals[n] = Int64GetDatum(results[i].total);
		missing[n] = Int64GetDatum(results[i].missing);
		observed[n] = Float8GetDatum(results[i].observed);
		message_nulls[n] = results[i].message == NULL;
		messages[n] = message_nulls[n] ? (Datum) 0 : CStringGetTextDatum(results[i].message);
		n++;
	}
	dims[0] = n;
	values[0] = Int64GetDatum(run_id);
	values[1] = Int64GetDatum(pipeline_id);
	values[2] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_array(statuses, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(failing, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[6] = PointerGetDatum(construct_array(totals, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[7] = PointerGetDatum(construct_array(observed, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[8] = PointerGetDatum(construct_md_array(messages, message_nulls, 1, dims, lbs, TEXTOID,
												   -1, false, TYPALIGN_INT));
	values[9] = PointerGetDatum(construct_array(missing, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	/*
	 * The worst status of the run's batches stays.  A row check's observed
	 * value is its failing share over the whole run (NULL while it checked no
	 * row, as Great Expectations' unexpected_percent); a row_count's is the
	 * row count of its last batch out of bounds (or of the last batch, while
	 * none was).
	 */
	pipeline_exec_internal("INSERT INTO pipeline.check_results AS t (run_id, pipeline_id, check_name, "
						   "check_id, status, failing, total, missing, observed, batches, message) "
						   "SELECT $1, $2, r.name, r.id, r.status, r.failing, r.total, r.missing, "
						   "CASE WHEN r.total > 0 THEN round(r.observed::numeric, 6) END, 1, r.message "
						   "FROM unnest($3, $4, $5, $6, $7, $8, $9, $10) "
						   "AS r(name, id, status, failing, total, observed, message, missing) "
						   "ON CONFLICT (run_id, check_name) DO UPDATE SET "
						   "status = (ARRAY['PASS', 'WARN', 'FAIL'])[greatest("
						   "array_position('{PASS,WARN,FAIL}'::text[], t.status), "
						   "array_position('{PASS,WARN,FAIL}'::text[], excluded.status))], "
						   "observed = CASE WHEN (SELECT c.kind FROM pipeline.checks c WHERE c.id = t.check_id) "
						   "= 'row_count' THEN CASE WHEN excluded.failing > 0 OR t.failing = 0 "
						   "THEN excluded.observed ELSE t.observed END "
						   "ELSE round((t.failing + excluded.failing)::numeric / nullif(t.total + excluded.total, 0), 6) END, "
						   "failing = t.failing + excluded.failing, total = t.total + excluded.total, "
						   "missing = t.missing + excluded.missing, "
						   "batches = t.batches + 1, message = coalesce(excluded.message, t.message), "
						   "checked_at = excluded.checked_at",
						   10, types, values, NULL);
}

/*
 * pipeline_checks_save_shards
 *		Adds the results of a sharded run's batch to the run's rows in
 *		check_results: the counts over the shards' batches, and each check's
 *		worst status among them -- a shard's batch is what commits, so each
 *		was judged alone by its statement (batch/shard_sql.c); a status the
 *		summed counts would not give says which threshold a shard met.
 */
void
pipeline_checks_save_shards(const PipelineDef *def, int64 run_id, const ShardBatch *batch)
{
	BatchResult results[PIPELINE_MAX_CHECKS];

	if (!batch->judged)
		return;
	for (int i = 0; i < list_length(batch->checks); i++)
	{
		const QualityCheck *check = list_nth(batch->checks, i);
		CheckStatus status = (CheckStatus) batch->statuses[i];

		results[i] = judge_rows(check, i, &batch->check_counts);
		if (results[i].status == status)
			continue;
		results[i].status = status;
		results[i].message = status == STATUS_PASS ? NULL :
			psprintf("%lld of %lld rows failed (%.2f%%) over the shards' batches; a shard's batch met %s",
					 (long long) results[i].failing, (long long) results[i].total,
					 100.0 * results[i].observed,
					 status == STATUS_WARN ? psprintf("warn_if %s", threshold_text(&check->warn_if)) :
					 check->action == CHECK_FAIL ? "its action fail" :
					 psprintf("error_if %s", threshold_text(&check->error_if)));
	}
	save_results(run_id, def->id, batch->checks, results);
}

/*
 * raise_check_failure
 *		Fails the run for the first check whose batch result is FAIL.
 */
static void
raise_check_failure(const PipelineDef *def, List *checks, const BatchResult *results)
{
	for (int i = 0; i < list_length(checks); i++)
	{
		QualityCheck *check = list_nth(checks, i);

		if (results[i].status != STATUS_FAIL)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_PIPELINE_CHECK_FAILED),
				 errmsg("data quality check \"%s\" of pipeline \"%s\" failed: %s",
						check->name, def->name, results[i].message),
				 errdetail("The batch was not merged and the pipeline's cursor did not move."),
				 errhint("pipeline.check_results shows the run's checks, and pipeline.checks the check's definition; fix the staged rows or the check, then run again.")));
	}
}

/*
 * keep_failed
 *		Keeps a failed batch's results in its state, whose memory outlives
 *		the batch's rollback, for pipeline_checks_save_pending.
 */
static void
keep_failed(const PipelineDef *def, BatchState *batch, List *checks, const BatchResult *results)
{
	MemoryContext old = MemoryContextSwitchTo(batch->context);
	FailedChecks *failed = palloc0(sizeof(FailedChecks));

	failed->pipeline_id = def->id;
	failed->checks = pipeline_copy_checks(checks);
	for (int i = 0; i < list_length(checks); i++)
	{
		failed->results[i] = results[i];
		failed->results[i].message = results[i].message ? pstrdup(results[i].message) : NULL;
	}
	MemoryContextSwitchTo(old);
	batch->failed = failed;
}

/*
 * judge_batch
 *		Each check's result for the batch counted so far (of the rows it
 *		read).  Saves them, or, when one failed, keeps them and fails the
 *		run.
 */
static void
judge_batch(const PipelineDef *def, BatchState *batch, List *checks)
{
	BatchResult results[PIPELINE_MAX_CHECKS] = {0};
	bool		failed = false;

	for (int i = 0; i < list_length(checks); i++)
	{
		QualityCheck *check = list_nth(checks, i);

		results[i] = check->passes == NULL ? judge_row_count(check, batch->counts.read)
			: judge_rows(check, i, &batch->check_counts);
		failed |= results[i].status == STATUS_FAIL;
	}
	if (!failed)
	{
		save_results(batch->run_id, def->id, checks, results);
		return;
	}
	keep_failed(def, batch, checks, results);
	raise_check_failure(def, checks, results);
}

/*
 * pipeline_checks_end_batch
 *		After a batch's statements succeeded, before it commits: judges it.
 */
void
pipeline_checks_end_batch(const PipelineDef *def, BatchState *batch, List *checks)
{
	if (checks != NIL)
		judge_batch(def, batch, checks);
}

/*
 * pipeline_checks_fail_statement
 *		A batch statement failed on a row whose check has action fail: keeps
 *		the batch's results, counting that statement's rows so far.
 */
void
pipeline_checks_fail_statement(const PipelineDef *def, BatchState *batch, List *checks)
{
	BatchResult results[PIPELINE_MAX_CHECKS] = {0};

	pipeline_checks_add_statement(batch);
	for (int i = 0; i < list_length(checks); i++)
	{
		QualityCheck *check = list_nth(checks, i);

		if (check->passes != NULL)
			results[i] = judge_rows(check, i, &batch->check_counts);
		else
			results[i].unjudged = true;
	}
	keep_failed(def, batch, checks, results);
}

/*
 * pipeline_checks_save_pending
 *		After a failed batch was rolled back: records its check results in
 *		the run that failed.
 */
void
pipeline_checks_save_pending(BatchState *batch)
{
	if (batch->failed == NULL)
		return;
	save_results(batch->run_id, batch->failed->pipeline_id, batch->failed->checks,
				 batch->failed->results);
	batch->failed = NULL;
}
