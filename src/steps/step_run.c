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
 * operation itself, around the view's query).  Called with CALL outside a
 * transaction block, the run is recorded as running and committed first,
 * then the command commits with its result, or its failure is recorded and
 * committed after the command was rolled back -- as a pipeline's run.
 * Inside a transaction block, everything is the caller's transaction: an
 * error propagates and nothing is recorded.
 *
 * Two runs of one step never overlap: a run holds the step's advisory lock
 * (for the session, outside a transaction block) until its last commit; a
 * second run is skipped, and alter_step and drop_step wait for the first.
 * A run cannot start another (its command calling run_step).
 *
 * The scheduler's run workers run a step the same way, outside a
 * transaction block, as its owner (pipeline_run_step_in_worker), recorded
 * with what started it: its schedule, an upstream's new work, or a retry.
 * A paused or suspended step is skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "steps/steps.h"

PG_FUNCTION_INFO_V1(pipeline_run_step);

/* The step this backend is running (NULL: none). */
static const char *running_step = NULL;

/* A run of a step, from its start to its result. */
typedef struct StepRun
{
	StepDef    *step;
	const char *trigger;		/* manual, schedule, upstream or retry */
	bool		atomic;			/* all in the caller's transaction */
	int64		run_id;
	const char *status;
	int64		rows;			/* -1: not a count (a REFRESH, a CALL) */
} StepRun;

/*
 * execute_command
 *		The command through SPI, its rows (a SELECT's) discarded as they
 *		come, not kept; returns how many it processed.
 */
static int64
execute_command(const char *command)
{
	SPIExecuteOptions options = {0};

	options.dest = None_Receiver;
	if (SPI_execute_extended(command, &options) < 0)
		elog(ERROR, "SPI_execute_extended failed");
	return (int64) SPI_processed;
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
	int64		ms = run->step->statement_timeout_ms;
	bool		refresh = strcmp(run->step->kind, "refresh") == 0;
	PipelineUserContext ctx;
	TimestampTz outer;
	volatile int64 rows = 0;

	if (refresh)
		pipeline_become_role_for_refresh(run->step->owner, run->step->search_path, &ctx);
	else
		pipeline_become_role(run->step->owner, run->step->search_path, &ctx);
	outer = pipeline_arm_timeout(ms);
	PG_TRY();
	{
		rows = execute_command(run->step->command);
	}
	PG_FINALLY();
	{
		pipeline_disarm_timeout(ms, outer);
	}
	PG_END_TRY();
	pipeline_restore_user(&ctx);
	/* a REFRESH or a CALL reports no rows */
	run->rows = strcmp(run->step->kind, "statement") == 0 ? rows : -1;
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
skip(StepRun *run, const char *why, const char *hint)
{
	run->status = "skipped";
	run->run_id = pipeline_step_run_start(run->step->id, run->trigger, run->status, why);
	ereport(NOTICE,
			(errmsg("step \"%s\" skipped: %s", run->step->name, why),
			 errhint("%s", hint)));
}

/*
 * execute_step
 *		The run, once the step's lock is held: skipped when an upstream is
 *		not done (unless 'force'), else the command, recorded.  Outside a
 *		transaction block, everything it recorded is committed on return.
 */
static void
execute_step(StepRun *run, bool force)
{
	char	   *held_back;
	ErrorData  *error;

	pipeline_step_fail_interrupted(run->step->id);
	held_back = force ? NULL : pipeline_step_failing_upstream(run->step->id);
	if (held_back != NULL)
	{
		skip(run, held_back,
			 "It runs once every pipeline and step it runs after ended its last run successfully; pass force => true to run it now.");
		commit_unless_atomic(run);
		return;
	}
	run->run_id = pipeline_step_run_start(run->step->id, run->trigger, NULL, NULL);

	/*
	 * a crash may lose the row of a run that did nothing yet: no flush to
	 * wait for
	 */
	if (!run->atomic)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	commit_unless_atomic(run);
	running_step = run->step->name;
	error = pipeline_try(run_command, run);
	running_step = NULL;
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
	commit_unless_atomic(run);
}

/*
 * refuse_nested_step
 *		A step's command calling run_step would run inside the run of a step.
 */
static void
refuse_nested_step(void)
{
	if (running_step == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot run a step inside a step"),
			 errdetail("This session is running step \"%s\"; runs of steps do not nest.", running_step),
			 errhint("Make the other step run after this one (after => ...).")));
}

/*
 * run_step
 *		Loads the step, checks the caller may run it, and runs it under its
 *		lock, held until the run's last commit.
 */
static void
run_step(StepRun *run, const char *name, bool force)
{
	run->step = pipeline_step_load(name, false, true);
	pipeline_check_role(run->step->owner, psprintf("step \"%s\"", run->step->name));
	if (run->step->paused || run->step->suspended)
	{
		skip(run, run->step->paused ? "it is paused" : "it is suspended after failed runs in a row",
			 psprintf("Call pipeline.resume_step('%s') to let it run.", name));
		return;
	}
	if (!pipeline_step_try_lock(run->step->id, !run->atomic))
	{
		skip(run, "it is already running", "Runs of one step never overlap; see pipeline.step_runs.");
		return;
	}
	PG_TRY();
	{
		execute_step(run, force);
	}
	PG_FINALLY();
	{
		if (!run->atomic)
			pipeline_step_unlock(run->step->id);
	}
	PG_END_TRY();
}

/*
 * pipeline_run_step_in_worker
 *		A run of the step by a run worker, started by 'trigger' (schedule,
 *		upstream or retry): as CALL pipeline.run_step(name) outside a
 *		transaction block does it.  The worker runs as the step's owner,
 *		in a portal for SPI's non-atomic mode; a failure propagates once
 *		recorded.
 */
void
pipeline_run_step_in_worker(const char *name, const char *trigger)
{
	StepRun    *run = palloc0(sizeof(StepRun));

	run->trigger = trigger;
	run->atomic = false;
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	run_step(run, name, false);
	SPI_finish();
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
	if (PG_ARGISNULL(0))
		pipeline_step_name_required();
	refuse_nested_step();
	run->trigger = "manual";
	run->atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
					!castNode(CallContext, fcinfo->context)->atomic);
	if (SPI_connect_ext(run->atomic ? 0 : SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	run_step(run, pipeline_text_arg(fcinfo, 0), !PG_ARGISNULL(1) && PG_GETARG_BOOL(1));
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
