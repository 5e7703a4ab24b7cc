/*-------------------------------------------------------------------------
 *
 * mark.c
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
 * mark_row counts rows read, keep_row counts rows the filter skipped, and
 * reject_row records rows that failed a row rule, for merge.c to quarantine
 * right after the statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include "pipeline.h"

PG_FUNCTION_INFO_V1(pipeline_mark_row);
PG_FUNCTION_INFO_V1(pipeline_mark_value);
PG_FUNCTION_INFO_V1(pipeline_keep_row);
PG_FUNCTION_INFO_V1(pipeline_reject_row);

static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;

/* The batch statement being watched (NULL when none) and what it did. */
static const char *armed_statement = NULL;
static RowPosition last_mark;
static BatchTally tally;
static MemoryContext tally_context = NULL;

/*
 * mark_executor_finish
 *		ExecutorFinish hook: once the watched statement has produced all its
 *		rows, a later error belongs to no particular row.
 */
static void
mark_executor_finish(QueryDesc *queryDesc)
{
	if (armed_statement != NULL && queryDesc->sourceText != NULL &&
		strcmp(queryDesc->sourceText, armed_statement) == 0)
		last_mark.valid = false;

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
 *		Starts watching a batch statement (its exact SQL text): clears the
 *		mark and the tallies.  The text must stay allocated until
 *		pipeline_mark_disarm.
 */
void
pipeline_mark_arm(const char *statement)
{
	if (tally_context == NULL)
		tally_context = AllocSetContextCreate(TopMemoryContext, "pipeline batch tally",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(tally_context);
	armed_statement = statement;
	last_mark.valid = false;
	memset(&tally, 0, sizeof(tally));
}

/*
 * pipeline_mark_disarm
 *		Stops watching; the mark and tallies are kept for the caller.
 */
void
pipeline_mark_disarm(void)
{
	armed_statement = NULL;
}

/*
 * pipeline_mark_get
 *		The row the failed statement was working on, if it can be named.
 */
bool
pipeline_mark_get(RowPosition *row)
{
	*row = last_mark;
	return last_mark.valid;
}

/*
 * pipeline_mark_tally
 *		What the last watched statement read, filtered and rejected.  The
 *		rejected list lives until the next pipeline_mark_arm.
 */
const BatchTally *
pipeline_mark_tally(void)
{
	return &tally;
}

/*
 * pipeline_mark_row
 *		SQL: pipeline.mark_row(_xid, _seq) -> true.  Evaluated first in the
 *		projection of each staged row.
 */
Datum
pipeline_mark_row(PG_FUNCTION_ARGS)
{
	if (armed_statement != NULL)
	{
		last_mark.valid = true;
		last_mark.xid = PG_GETARG_FULLTRANSACTIONID(0);
		last_mark.seq = PG_GETARG_INT64(1);
		tally.read++;
	}
	PG_RETURN_BOOL(true);
}

/*
 * pipeline_mark_value
 *		SQL: pipeline.mark_value(_xid, _seq, value) -> value.  Wraps the first
 *		column handed to INSERT so that a constraint failure names its row.
 */
Datum
pipeline_mark_value(PG_FUNCTION_ARGS)
{
	if (armed_statement != NULL && !PG_ARGISNULL(0) && !PG_ARGISNULL(1))
	{
		last_mark.valid = true;
		last_mark.xid = PG_GETARG_FULLTRANSACTIONID(0);
		last_mark.seq = PG_GETARG_INT64(1);
	}
	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(PG_GETARG_DATUM(2));
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

	if (!keep && armed_statement != NULL)
		tally.filtered++;
	PG_RETURN_BOOL(keep);
}

/*
 * pipeline_reject_row
 *		SQL: pipeline.reject_row(_xid, _seq, rule) -> false.  Records a row
 *		that failed row rule number 'rule'.
 */
Datum
pipeline_reject_row(PG_FUNCTION_ARGS)
{
	if (armed_statement != NULL)
	{
		RejectedRow *row = MemoryContextAlloc(tally_context, sizeof(RejectedRow));
		MemoryContext old = MemoryContextSwitchTo(tally_context);

		row->position.valid = true;
		row->position.xid = PG_GETARG_FULLTRANSACTIONID(0);
		row->position.seq = PG_GETARG_INT64(1);
		row->rule = PG_GETARG_INT32(2);
		tally.rejected = lappend(tally.rejected, row);
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_BOOL(false);
}
