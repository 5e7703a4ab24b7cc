/*-------------------------------------------------------------------------
 *
 * mark.c
 *	  Names the staged row a failing batch statement was working on.
 *
 * A batch is one set-based statement.  When a row in it raises an error
 * (a cast in a mapping, a CHECK or NOT NULL violation in the target), the
 * whole statement fails, and PostgreSQL does not say which row did it.  The
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "fmgr.h"
#include "utils/fmgrprotos.h"

#include "pipeline.h"

PG_FUNCTION_INFO_V1(pipeline_mark_row);
PG_FUNCTION_INFO_V1(pipeline_mark_value);

static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;

/* The batch statement being watched (NULL when none), and its last mark. */
static const char *armed_statement = NULL;
static RowPosition last_mark;

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
 *		Starts watching a batch statement (its exact SQL text) and clears the
 *		mark.  The text must stay allocated until pipeline_mark_disarm.
 */
void
pipeline_mark_arm(const char *statement)
{
	armed_statement = statement;
	last_mark.valid = false;
}

/*
 * pipeline_mark_disarm
 *		Stops watching; the mark is kept for pipeline_mark_get.
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
 * set_mark
 *		Records a row position while a statement is being watched.
 */
static inline void
set_mark(FunctionCallInfo fcinfo)
{
	if (armed_statement == NULL || PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return;
	last_mark.valid = true;
	last_mark.xid = PG_GETARG_FULLTRANSACTIONID(0);
	last_mark.seq = PG_GETARG_INT64(1);
}

/*
 * pipeline_mark_row
 *		SQL: pipeline.mark_row(_xid, _seq) -> true.  Evaluated first in the
 *		projection of each staged row.
 */
Datum
pipeline_mark_row(PG_FUNCTION_ARGS)
{
	set_mark(fcinfo);
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
	set_mark(fcinfo);
	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(PG_GETARG_DATUM(2));
}
