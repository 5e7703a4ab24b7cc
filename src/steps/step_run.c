/*-------------------------------------------------------------------------
 *
 * step_run.c
 *	  CALL pipeline.run_step(step_name, force): runs a step's command once,
 *	  as its owner, and records the run.
 *
 * A step runs only when it is ready: every pipeline and step it runs after
 * ended its last run successfully.  One that is not is skipped, recorded
 * with the upstream that held it back (force runs it anyway).  The command
 * runs as the step's owner, in a security-restricted operation, with the
 * step's search_path and statement_timeout, in a subtransaction (a
 * REFRESH MATERIALIZED VIEW, of a view the owner owns, makes that
 * operation itself, around the view's query): called
 * with CALL outside a transaction block, the run is recorded as running
 * and committed first, then the command commits with its result, or its
 * failure is recorded and committed after the command was rolled back --
 * as a pipeline's run.  Inside a transaction block, everything is the
 * caller's transaction: an error propagates and nothing is recorded.  Two
 * runs of one step never overlap: the second is skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "steps/steps.h"

PG_FUNCTION_INFO_V1(pipeline_run_step);

/* Distinguishes the step run lock from other advisory locks on the same ids. */
#define STEP_LOCK_CLASS 0x5354

/* A run of a step, from its start to its result. */
typedef struct StepRun
{
	StepDef    *step;
	bool		atomic;			/* all in the caller's transaction */
	int64		run_id;
	const char *status;
	int64		rows;
} StepRun;

/*
 * step_lock_tag
 *		The advisory lock that keeps runs of one step from overlapping.
 */
static void
step_lock_tag(LOCKTAG *tag, int64 step_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (step_id >> 32), (uint32) step_id,
						 STEP_LOCK_CLASS);
}

/*
 * run_command
 *		The command, as the step's owner, under its statement_timeout
 *		(pipeline_try: in a subtransaction).
 */
static void
run_command(void *arg)
{
	StepRun    *run = (StepRun *) arg;
	int			ms = (int) Min(run->step->statement_timeout_ms, INT_MAX);
	PipelineUserContext ctx;
	TimestampTz outer;

	if (strcmp(run->step->kind, "refresh") == 0)
		pipeline_become_role_for_refresh(run->step->owner, run->step->search_path, &ctx);
	else
		pipeline_become_role(run->step->owner, run->step->search_path, &ctx);
	outer = pipeline_arm_timeout(ms);
	PG_TRY();
	{
		pipeline_exec(run->step->command, 0, NULL, NULL, NULL, false, 0);
		/* a REFRESH or a CALL reports no rows */
		run->rows = strcmp(run->step->kind, "statement") == 0 ? (int64) SPI_processed : -1;
	}
	PG_FINALLY();
	{
		pipeline_disarm_timeout(ms, outer);
	}
	PG_END_TRY();
	pipeline_restore_user(&ctx);
}

/*
 * commit_unless_atomic
 *		Outside a transaction block, commits what the run recorded so far.
 */
static void
commit_unless_atomic(const StepRun *run)
{
	if (!run->atomic)
		SPI_commit();
}

/*
 * skip
 *		Records the run as skipped, why, and says so.
 */
static void
skip(StepRun *run, const char *trigger, const char *why, const char *hint)
{
	run->status = "skipped";
	run->run_id = pipeline_step_run_start(run->step->id, trigger, run->status, why);
	ereport(NOTICE,
			(errmsg("step \"%s\" skipped: %s", run->step->name, why),
			 errhint("%s", hint)));
}

/*
 * execute_step
 *		The run, once the step's lock is held: skipped when an upstream is
 *		not done (unless 'force'), else the command, recorded.
 */
static void
execute_step(StepRun *run, const char *trigger, bool force)
{
	char	   *held_back = force ? NULL : pipeline_step_failing_upstream(run->step->id);
	ErrorData  *error;

	if (held_back != NULL)
	{
		skip(run, trigger, held_back,
			 "It runs once every pipeline and step it runs after ended its last run successfully; pass force => true to run it now.");
		return;
	}
	run->run_id = pipeline_step_run_start(run->step->id, trigger, NULL, NULL);
	commit_unless_atomic(run);
	error = pipeline_try(run_command, run);
	if (error != NULL)
	{
		if (run->atomic)
			ReThrowError(error);
		pipeline_step_run_finish(run->run_id, "failed", 0, unpack_sql_state(error->sqlerrcode),
								 error->message);
		SPI_commit();
		ReThrowError(error);
	}
	run->status = "succeeded";
	pipeline_step_run_finish(run->run_id, run->status, run->rows, NULL, NULL);
}

/*
 * run_step
 *		Loads the step, checks the caller may run it, and runs it under its
 *		lock.
 */
static void
run_step(StepRun *run, const char *name, const char *trigger, bool force)
{
	LOCKTAG		tag;

	run->step = pipeline_step_load(name, false, true);
	pipeline_check_role(run->step->owner, psprintf("step \"%s\"", run->step->name));
	if (run->step->paused)
	{
		skip(run, trigger, "it is paused", psprintf("Call pipeline.resume_step('%s') to let it run.", name));
		return;
	}
	step_lock_tag(&tag, run->step->id);
	if (LockAcquire(&tag, ExclusiveLock, !run->atomic, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		skip(run, trigger, "it is already running", "Runs of one step never overlap; see pipeline.step_runs.");
		return;
	}
	PG_TRY();
	{
		execute_step(run, trigger, force);
	}
	PG_FINALLY();
	{
		if (!run->atomic)
			LockRelease(&tag, ExclusiveLock, true);
	}
	PG_END_TRY();
}

/*
 * pipeline_run_step
 *		SQL: CALL pipeline.run_step(step_name, force => false): the run's
 *		id, status (succeeded or skipped; a failure is an error) and the
 *		rows its command affected.
 */
Datum
pipeline_run_step(PG_FUNCTION_ARGS)
{
	MemoryContext callcxt = CurrentMemoryContext;
	StepRun    *run = palloc0(sizeof(StepRun));
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	pipeline_check_version(ERROR);
	run->atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
					!castNode(CallContext, fcinfo->context)->atomic);
	if (SPI_connect_ext(run->atomic ? 0 : SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (PG_ARGISNULL(0))
		pipeline_step_name_required();
	run_step(run, text_to_cstring(PG_GETARG_TEXT_PP(0)), "manual", !PG_ARGISNULL(1) && PG_GETARG_BOOL(1));
	SPI_finish();
	MemoryContextSwitchTo(callcxt);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pipeline.run_step must return a record");
	values[0] = Int64GetDatum(run->run_id);
	nulls[0] = run->run_id == 0;
	values[1] = CStringGetTextDatum(run->status);
	values[2] = Int64GetDatum(run->rows);
	nulls[2] = strcmp(run->status, "succeeded") != 0 || run->rows < 0;
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}
