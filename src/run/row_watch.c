/*-------------------------------------------------------------------------
 *
 * row_watch.c
 *	  Watches a running batch statement row by row: which staged row it is
 *	  working on, how many rows it read and filtered, and which rows failed
 *	  a row rule.
 *
 * A batch is one set-based statement.  When a row in it raises an error
 * (a cast in a mapping, a unique violation in the target), the whole
 * statement fails, and PostgreSQL does not say which row did it.  The
 * statement therefore calls pipeline.mark_row(_xid, _seq) before it
 * evaluates a row's expressions, and pipeline.mark_value(...) as it hands a
 * row to INSERT, so that the last mark names the culprit.  The merge then
 * quarantines exactly that row and retries without it: one bad row costs a
 * partial pass up to it, not a second full pass.
 *
 * Errors raised after the plan has produced its rows (AFTER triggers such as
 * foreign keys, deferred checks) cannot be pinned to a row that way, so the
 * mark is cleared when the batch statement reaches ExecutorFinish; the merge
 * then narrows the failing range by bisection instead.
 *
 * The same per-row calls keep the batch's tallies, so that the statement
 * streams its rows once instead of materialising them to count them:
 * mark_row counts rows read, keep_row counts rows the filter skipped,
 * changes_row counts the rows an upsert finds equal to the stored ones,
 * reject_row records rows that failed a row rule, for batch_exec.c to quarantine
 * right after the statement, and check_row applies the data quality checks
 * (checks.c) a row failed and counts each check's failures and the rows a
 * check did not look at (a NULL value).
 *
 * The mark and the tallies are fields of the batch's state, which the run
 * owns (BatchState, batch.c); while a statement is watched, 'watching'
 * points to it, since the per-row functions are called by the statement
 * and get nothing else from it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "model.h"
#include "run/run.h"

PG_FUNCTION_INFO_V1(pipeline_mark_row);
PG_FUNCTION_INFO_V1(pipeline_mark_value);
PG_FUNCTION_INFO_V1(pipeline_keep_row);
PG_FUNCTION_INFO_V1(pipeline_changes_row);
PG_FUNCTION_INFO_V1(pipeline_reject_row);
PG_FUNCTION_INFO_V1(pipeline_check_row);

static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;

/* The batch whose statement is being watched (NULL when none). */
static BatchState *watching = NULL;

/*
 * mark_executor_finish
 *		ExecutorFinish hook: once the watched statement has produced all its
 *		rows, a later error belongs to no particular row.
 */
static void
mark_executor_finish(QueryDesc *queryDesc)
{
	if (watching != NULL && queryDesc->sourceText != NULL &&
		strcmp(queryDesc->sourceText, watching->watched) == 0)
		watching->last_mark.valid = false;

	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
}

/*
 * pipeline_mark_init
 *		Installs the ExecutorFinish hook; called once from _PG_init.
 */
void
pipeline_mark_init(void)
{
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = mark_executor_finish;
}

/*
 * pipeline_mark_arm
 *		Starts watching a statement of 'batch' (its exact SQL text) that has
 *		'nrules' row rules and applies 'checks': clears the batch's mark and
 *		tallies.  The text and the checks must stay allocated until
 *		pipeline_mark_disarm.
 */
void
pipeline_mark_arm(BatchState *batch, const char *statement, int nrules, List *checks)
{
	MemoryContextReset(batch->tally_context);
	batch->watched = statement;
	batch->nrules = nrules;
	batch->checks = checks;
	batch->last_mark.valid = false;
	memset(&batch->tally, 0, sizeof(BatchTally));
	watching = batch;
}

/*
 * pipeline_mark_disarm
 *		Stops watching; the mark and tallies stay in the batch's state for
 *		the caller (the rejected rows until the next pipeline_mark_arm).
 */
void
pipeline_mark_disarm(void)
{
	if (watching == NULL)
		return;
	watching->watched = NULL;
	watching->nrules = 0;
	watching->checks = NIL;
	watching = NULL;
}

/*
 * internal_misuse
 *		A call of one of the batch statement's own functions that the batch
 *		statement never makes: refused, so that no expression can record
 *		rows, rules or checks that do not exist.  The SQLSTATE is not one of
 *		a row's data (batch_exec.c would quarantine the row): the run fails.
 */
static void
internal_misuse(const char *function, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("pipeline.%s is internal to the batch statement", function),
			 errdetail("%s", detail),
			 errhint("Do not call pipeline.mark_row, mark_value, keep_row, changes_row, reject_row or check_row in expressions or queries: the extension calls them itself.")));
}

/*
 * pipeline_mark_row
 *		SQL: pipeline.mark_row(_xid, _seq) -> true.  Evaluated first in the
 *		projection of each staged row.
 */
Datum
pipeline_mark_row(PG_FUNCTION_ARGS)
{
	if (watching != NULL)
	{
		watching->last_mark.valid = true;
		watching->last_mark.xid = PG_GETARG_FULLTRANSACTIONID(0);
		watching->last_mark.seq = PG_GETARG_INT64(1);
		watching->tally.read++;
	}
	PG_RETURN_BOOL(true);
}

/*
 * pipeline_mark_value
 *		SQL: pipeline.mark_value(_xid, _seq, value) -> value.  Wraps the first
 *		column handed to INSERT so that a constraint failure names its row.
 *		With a NULL position it clears the mark: what the statement does
 *		from there on is no one row's (an aggregate's groups), and a
 *		failure there is isolated by bisection instead.
 */
Datum
pipeline_mark_value(PG_FUNCTION_ARGS)
{
	if (watching != NULL && (PG_ARGISNULL(0) || PG_ARGISNULL(1)))
		watching->last_mark.valid = false;
	else if (watching != NULL)
	{
		watching->last_mark.valid = true;
		watching->last_mark.xid = PG_GETARG_FULLTRANSACTIONID(0);
		watching->last_mark.seq = PG_GETARG_INT64(1);
	}
	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(PG_GETARG_DATUM(2));
}

/*
 * pipeline_changes_row
 *		SQL: pipeline.changes_row(may, differs) -> may AND differs.  The
 *		condition of a merge's ON CONFLICT DO UPDATE: the stored row may be
 *		overwritten (it is not newer) and the event differs from it.  Counts
 *		the rows it may overwrite but finds equal: unchanged, not written.
 *		Evaluated once per conflicting row, on the row as locked.
 */
Datum
pipeline_changes_row(PG_FUNCTION_ARGS)
{
	bool		may = !PG_ARGISNULL(0) && PG_GETARG_BOOL(0);
	bool		differs = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);

	if (may && !differs && watching != NULL)
		watching->tally.unchanged++;
	PG_RETURN_BOOL(may && differs);
}

/*
 * pipeline_keep_row
 *		SQL: pipeline.keep_row(filter result) -> whether the row is kept.
 *		Counts the rows the filter skips (false or NULL).
 */
Datum
pipeline_keep_row(PG_FUNCTION_ARGS)
{
	bool		keep = !PG_ARGISNULL(0) && PG_GETARG_BOOL(0);

	if (!keep && watching != NULL)
		watching->tally.filtered++;
	PG_RETURN_BOOL(keep);
}

/*
 * reject
 *		Records a row of the watched statement for the quarantine: failing
 *		row rule number 'rule', or (rule -1) the checks in 'failed'.
 */
static void
reject(FullTransactionId xid, int64 seq, int rule, uint64 failed)
{
	RejectedRow *row = MemoryContextAlloc(watching->tally_context, sizeof(RejectedRow));
	MemoryContext old = MemoryContextSwitchTo(watching->tally_context);

	row->position.valid = true;
	row->position.xid = xid;
	row->position.seq = seq;
	row->rule = rule;
	row->failed_checks = failed;
	watching->tally.rejected = lappend(watching->tally.rejected, row);
	MemoryContextSwitchTo(old);
}

/*
 * pipeline_reject_row
 *		SQL: pipeline.reject_row(_xid, _seq, rule) -> false.  Records a row
 *		that failed row rule number 'rule'; outside a batch statement it
 *		records nothing.  A rule number the batch statement does not have is
 *		refused (batch_exec.c looks its reason up by number).
 */
Datum
pipeline_reject_row(PG_FUNCTION_ARGS)
{
	int32		rule = PG_GETARG_INT32(2);

	if (watching != NULL && (rule < 0 || rule >= watching->nrules))
		internal_misuse("reject_row",
						psprintf("It was called with row rule number %d, which the batch statement running does not have (it has %d).",
								 rule, watching->nrules));
	if (watching != NULL)
		reject(PG_GETARG_FULLTRANSACTIONID(0), PG_GETARG_INT64(1), rule, 0);
	PG_RETURN_BOOL(false);
}

/*
 * fail_row
 *		A row failed a check whose action is fail: the run fails.
 */
static void
fail_row(const QualityCheck *check, FullTransactionId xid, int64 seq)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIPELINE_CHECK_FAILED),
			 errmsg("data quality check \"%s\" failed on a row", check->name),
			 errdetail("The staged row with _seq = %lld (_xid %llu) fails it, and the check's action is fail: the batch was not merged and the pipeline's cursor did not move.",
					   (long long) seq, (unsigned long long) U64FromFullTransactionId(xid)),
			 errhint("Fix or remove the staged row, or change the check's action to quarantine to set such rows aside.")));
}

/*
 * pipeline_check_row
 *		SQL: pipeline.check_row(_xid, _seq, VARIADIC passed boolean[]) ->
 *		whether the row is merged; called only for rows that did not pass
 *		every check.  passed[i] is whether the row passed check number i, or
 *		NULL when the check did not look at it (a kind about values, and the
 *		value was NULL).  Counts each check's failures and rows not looked
 *		at; of the failed checks' actions the strongest applies: fail
 *		raises, quarantine records the row (with every check it failed),
 *		drop counts it, warn keeps it.  Outside a batch statement it does
 *		nothing; inside one, anything but one result per check of the batch
 *		(a one-dimensional array, NULL only for checks that leave NULL values
 *		out) is refused.
 */
Datum
pipeline_check_row(PG_FUNCTION_ARGS)
{
	ArrayType  *passed = PG_GETARG_ARRAYTYPE_P(2);
	int			n;
	Datum	   *ok;
	bool	   *unchecked;
	uint64		failed = 0;
	int			strongest = -1;
	int			culprit = -1;

	if (watching == NULL)
		PG_RETURN_BOOL(true);
	deconstruct_array(passed, BOOLOID, 1, true, TYPALIGN_CHAR, &ok, &unchecked, &n);
	if (ARR_NDIM(passed) != 1 || n != list_length(watching->checks))
		internal_misuse("check_row",
						psprintf("It was called with %d check results%s where the batch statement running expects %d.",
								 n, ARR_NDIM(passed) > 1 ? " in several dimensions" : "",
								 list_length(watching->checks)));
	for (int i = 0; i < n; i++)
	{
		QualityCheck *check;

		check = list_nth(watching->checks, i);
		if (unchecked[i] && !check->skips_nulls)
			internal_misuse("check_row",
							psprintf("It was called with no result for check number %d, which checks every row.", i));
		if (unchecked[i])
		{
			watching->tally.check_unchecked[i]++;
			continue;
		}
		if (DatumGetBool(ok[i]))
			continue;
		failed |= UINT64CONST(1) << i;
		watching->tally.check_failing[i]++;
		if ((int) check->action > strongest)
		{
			strongest = check->action;
			culprit = i;
		}
	}
	switch (strongest)
	{
		case CHECK_FAIL:
			fail_row(list_nth(watching->checks, culprit), PG_GETARG_FULLTRANSACTIONID(0),
					 PG_GETARG_INT64(1));
			break;
		case CHECK_QUARANTINE:
			reject(PG_GETARG_FULLTRANSACTIONID(0), PG_GETARG_INT64(1), -1, failed);
			PG_RETURN_BOOL(false);
		case CHECK_DROP:
			watching->tally.dropped++;
			PG_RETURN_BOOL(false);
		default:
			break;
	}
	PG_RETURN_BOOL(true);
}
