/*-------------------------------------------------------------------------
 *
 * run_worker.c
 *	  A run worker: runs one pipeline for its scheduler, as the pipeline's
 *	  owner; or one step (steps/), as the step's owner.
 *
 * The worker runs the pipeline exactly as a client's CALL pipeline.run(<name>)
 * outside a transaction block does, by calling the run directly (run.c):
 * each batch commits with its cursor, and the run records itself in
 * pipeline.runs.  It connects as the bootstrap superuser (PostgreSQL 15
 * does not let a background worker log in as a NOLOGIN role, which owner
 * roles often are) and runs with the owner as its user id, locked so that
 * nothing inside can change it back, after the checks CALL would make of
 * the owner: a pipeline gains no privilege from running in a worker.
 *
 * A worker of a scheduled pipeline runs it once and stops.  A worker of a
 * continuous pipeline stays while no other pipeline waits for a worker: it
 * waits on its latch, which every commit of
 * staged rows in the database sets (shared_state.c), and runs again when
 * rows wait for its pipeline (a commit to another source only wakes it), but
 * not sooner than pipeline.continuous_min_interval after its last run
 * started, so that a stream of small commits makes fewer, larger runs; it
 * stops when the pipeline fails (its scheduler retries it after a backoff),
 * is paused, suspended, dropped or no longer continuous.
 *
 * A worker of a step runs it once, as CALL pipeline.run_step(<name>) outside
 * a transaction block would, recorded with what started it (its schedule,
 * an upstream's new work, a retry), after the same checks of its owner.
 *
 * Between two runs (after a run, or when woken with nothing to read) a
 * worker first looks for a pipeline waiting for a worker (shared_state.c):
 * one of its own database it takes over, in the same process, and runs
 * next; for one of another database it stops, freeing its slot.  So the
 * pipelines share pipeline.max_workers workers in turn.  SIGTERM (server
 * shutdown, DROP DATABASE) lets the batch in progress commit and stops the
 * run before the next one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "steps/steps.h"
#include "workers/workers.h"

PGDLLEXPORT void pipeline_run_worker_main(Datum arg);


static PipelineWorkerSlot *my_slot = NULL;

/*
 * pause_between_runs
 *		Waits until pipeline.continuous_min_interval has passed since the
 *		last run started (commits meanwhile only set the latch), then until
 *		the latch is set by a commit, or continuous_naptime.
 */
static void
pause_between_runs(TimestampTz run_started)
{
	long		elapsed_ms = (long) ((GetCurrentTimestamp() - run_started) / 1000);

	if (elapsed_ms < pipeline_continuous_min_interval && !pipeline_stop_requested)
		(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pipeline_continuous_min_interval - elapsed_ms, PG_WAIT_EXTENSION);
	if (!pipeline_stop_requested)
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pipeline_continuous_naptime, PG_WAIT_EXTENSION);
}

/*
 * request_stop
 *		SIGTERM: finish the batch in progress, then stop.
 */
static void
request_stop(SIGNAL_ARGS)
{
	int			save_errno = errno;

	pipeline_stop_requested = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * release_worker_slot
 *		on_shmem_exit: frees the slot and wakes its scheduler, and the
 *		schedulers with pipelines waiting for a worker.
 */
static void
release_worker_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->in_use = false;
		my_slot->pid = 0;
		my_slot->latch = NULL;
		if (my_slot->scheduler_latch)
			SetLatch(my_slot->scheduler_latch);
		pipeline_wake_waiting_schedulers();
	}
	LWLockRelease(pipeline_shared->lock);
}

/*
 * check_may_call
 *		What CALL pipeline.run (or run_step) checks of its caller, checked
 *		of the owner: USAGE on the schema (the lookup by qualified name
 *		checks it) and EXECUTE on the procedure; the object access hook
 *		hears of the call as of any procedure's.  An owner who may not call
 *		pipeline.run gets no run from a worker either.
 */
static void
check_may_call(const char *procedure)
{
	ObjectWithArgs *run = makeNode(ObjectWithArgs);
	Oid			proc;
	AclResult	acl;

	run->objname = list_make2(makeString(PIPELINE_SCHEMA), makeString(pstrdup(procedure)));
	run->args_unspecified = true;
	proc = LookupFuncWithArgs(OBJECT_PROCEDURE, run, false);
	acl = pipeline_proc_aclcheck(proc, GetUserId(), ACL_EXECUTE);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_PROCEDURE, get_func_name(proc));
	InvokeFunctionExecuteHook(proc);
}

/*
 * open_call_portal
 *		An invisible portal, made active and current as PortalRun makes a
 *		CALL's: SPI's non-atomic mode keeps its memory there across the
 *		run's commits, and after each commit takes the snapshot of the next
 *		statement from it.
 */
static Portal
open_call_portal(const char *activity)
{
	Portal		portal = CreatePortal("", true, true);

	portal->visible = false;
	PortalDefineQuery(portal, NULL, activity, CMDTAG_CALL, NIL, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	MarkPortalActive(portal);
	ActivePortal = portal;
	PortalContext = portal->portalContext;
	CurrentResourceOwner = portal->resowner;
	MemoryContextSwitchTo(PortalContext);
	return portal;
}

/*
 * close_call_portal
 *		After the run, as PortalRun and PortalDrop end a CALL: pops the
 *		snapshot a statement after the last commit took, and drops the
 *		portal.  The transaction stays open.
 */
static void
close_call_portal(Portal portal)
{
	if (portal->portalSnapshot != NULL && ActiveSnapshotSet())
		PopActiveSnapshot();
	portal->portalSnapshot = NULL;
	MarkPortalDone(portal);
	ActivePortal = NULL;
	PortalContext = NULL;
	/* the run's commits replaced the transaction the portal began in */
	CurrentResourceOwner = TopTransactionResourceOwner;
	MemoryContextSwitchTo(TopTransactionContext);
	PortalDrop(portal, false);
}

/*
 * run_as_call
 *		Runs the pipeline (or step) as a client's CALL pipeline.run(name)
 *		(or run_step) outside a transaction block does, calling the run
 *		directly instead of parsing and planning that statement: a
 *		transaction of its own, a portal for SPI's non-atomic mode (see
 *		pipeline_run_nonatomic).  pg_stat_activity and the server log's
 *		STATEMENT lines show that CALL, the statement a client would type
 *		for the same run.  Errors propagate; the run recorded them.
 */
static void
run_as_call(const char *name, const char *step_trigger)
{
	const char *procedure = step_trigger ? "run_step" : "run";
	char	   *activity = psprintf("CALL pipeline.%s(%s)", procedure, quote_literal_cstr(name));
	MemoryContext cxt = CurrentMemoryContext;
	Portal		portal;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	debug_query_string = activity;
	pgstat_report_activity(STATE_RUNNING, activity);
	check_may_call(procedure);

	portal = open_call_portal(activity);
	PG_TRY();
	{
		if (step_trigger)
			pipeline_run_step_in_worker(name, step_trigger);
		else
			pipeline_run_nonatomic(name);
	}
	PG_CATCH();
	{
		/* the abort drops it */
		MarkPortalFailed(portal);
		ActivePortal = NULL;
		PortalContext = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();
	close_call_portal(portal);
	CommitTransactionCommand();

	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	MemoryContextSwitchTo(cxt);
}

/*
 * still_wanted
 *		Whether the pipeline should run (again): it exists, is neither
 *		paused nor suspended, and (for another run) is still continuous;
 *		a step: it exists, is neither paused nor suspended, and is still
 *		scheduled (*step_trigger set to what starts its run).
 *		Sets *name to its current name, allocated in cxt, and, for another
 *		run (or the first run of a continuous pipeline that is not a retry),
 *		*idle when no staged row waits for it: a commit to another source
 *		woke the worker, or the scheduler gave it a worker that was free,
 *		and an empty run would only fill the run history.
 */
static bool
still_wanted(bool again, MemoryContext cxt, char **name, bool *idle, const char **step_trigger)
{
	bool		wanted = false;
	PipelineUserContext ctx;
	char	   *runnable;

	*idle = false;
	*step_trigger = NULL;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the extension may have been dropped or updated meanwhile */
	if (pipeline_lock_extension() && pipeline_check_version(DEBUG1))
	{
		/* never with the database's search_path: this process is a superuser */
		pipeline_become_internal(&ctx);
		if (my_slot->step)
			runnable = pipeline_due_step(my_slot->pipeline_id, step_trigger);
		else
			runnable = pipeline_runnable_name(my_slot->pipeline_id, again);
		if (runnable != NULL)
		{
			*name = MemoryContextStrdup(cxt, runnable);
			wanted = true;
			/* one probe of the source's index, as the scheduler asks */
			*idle = !my_slot->step && (again || (my_slot->continuous && !my_slot->retrying)) &&
				pipeline_is_caught_up(my_slot->pipeline_id);
		}
		pipeline_restore_user(&ctx);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return wanted;
}

/*
 * run_once
 *		One run of the pipeline (or step) as its owner; false when it failed
 *		(the run recorded its error itself; the log gets it too).
 */
static bool
run_once(const char *name, const char *step_trigger)
{
	MemoryContext old = CurrentMemoryContext;
	Oid			saved_user;
	int			saved_context;
	volatile bool ok = true;

	GetUserIdAndSecContext(&saved_user, &saved_context);
	PG_TRY();
	{
		SetUserIdAndSecContext(my_slot->owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
		run_as_call(name, step_trigger);
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		SetUserIdAndSecContext(saved_user, saved_context);
		debug_query_string = NULL;
		pgstat_report_activity(STATE_IDLE, NULL);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * pipeline_run_worker_main
 *		A run worker; the argument is its slot.
 */
void
pipeline_run_worker_main(Datum arg)
{
	char	   *name = NULL;
	bool		again = false;
	MemoryContext iteration;

	my_slot = &pipeline_shared->workers[DatumGetInt32(arg)];
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, request_stop);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(my_slot->dboid, InvalidOid, 0);

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	my_slot->pid = MyProcPid;
	my_slot->latch = MyLatch;
	LWLockRelease(pipeline_shared->lock);
	before_shmem_exit(release_worker_slot, (Datum) 0);
	/* what one run allocates outside its transactions, freed before the next */
	iteration = AllocSetContextCreate(TopMemoryContext, "pipeline worker run",
									  ALLOCSET_SMALL_SIZES);

	for (;;)
	{
		TimestampTz run_started;
		bool		idle;
		bool		ran_ok = true;
		const char *step_trigger;

		MemoryContextReset(iteration);
		ResetLatch(MyLatch);	/* commits from now on wake the next run */
		run_started = GetCurrentTimestamp();
		if (pipeline_stop_requested)
			break;
		if (!still_wanted(again, iteration, &name, &idle, &step_trigger))
			my_slot->continuous = false;	/* gone, paused: no further run of
											 * it */
		else
		{
			MemoryContextSwitchTo(iteration);
			pgstat_report_appname(psprintf("pipeline worker: %s%s", step_trigger ? "step " : "", name));
			if (!idle)
				ran_ok = run_once(name, step_trigger);
		}
		/* between two runs: a pipeline waiting for a worker goes first */
		switch (ran_ok ? pipeline_hand_over(my_slot) : HANDOFF_YIELD)
		{
			case HANDOFF_TAKEN:
				again = false;
				continue;
			case HANDOFF_YIELD:
				proc_exit(0);
			case HANDOFF_NONE:
				break;
		}
		if (!my_slot->continuous)
			break;
		again = true;
		pause_between_runs(run_started);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	proc_exit(0);
}
