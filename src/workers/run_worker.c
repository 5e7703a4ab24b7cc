/*-------------------------------------------------------------------------
 *
 * run_worker.c
 *	  A run worker: runs one pipeline for its scheduler, as the pipeline's
 *	  owner.
 *
 * The worker executes CALL pipeline.run(<name>) as a top-level statement,
 * exactly what a client's CALL does: each batch commits with its cursor,
 * and the run records itself in pipeline.runs.  It connects as the
 * bootstrap superuser (PostgreSQL 15 does not let a background worker log
 * in as a NOLOGIN role, which owner roles often are) and runs the statement
 * with the owner as its user id, locked so that nothing inside can change
 * it back: a pipeline gains no privilege from running in a worker.
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
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model.h"
#include "catalog/catalog.h"
#include "common/common.h"
#include "run/run.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "workers/workers.h"

PGDLLEXPORT void pipeline_run_worker_main(Datum arg);


/* pipeline.continuous_naptime and continuous_min_interval, in milliseconds */

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
 * run_top_level
 *		Runs one SQL statement as a client's simple query would: its own
 *		transaction, a top-level portal (so that CALL may commit), results
 *		discarded.  Errors propagate.
 */
static void
run_top_level(const char *sql)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "pipeline worker statement",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RawStmt    *raw;
	List	   *plans;
	Portal		portal;
	DestReceiver *dest;
	QueryCompletion qc;
	bool		snapshot_set = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(cxt);
	debug_query_string = sql;
	pgstat_report_activity(STATE_RUNNING, sql);

	raw = linitial_node(RawStmt, pg_parse_query(sql));
	if (analyze_requires_snapshot(raw))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_set = true;
	}
	plans = pg_plan_queries(pg_analyze_and_rewrite_fixedparams(raw, sql, NULL, 0, NULL),
							sql, CURSOR_OPT_PARALLEL_OK, NULL);
	if (snapshot_set)
		PopActiveSnapshot();

	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, sql, CreateCommandTag(raw->stmt), plans, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	dest = CreateDestReceiver(DestNone);
	(void) PortalRun(portal, FETCH_ALL, true, true, dest, dest, &qc);
	dest->rDestroy(dest);
	PortalDrop(portal, false);
	CommitTransactionCommand();

	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * nothing_pending
 *		Whether the pipeline has no staged row waiting (an error reading its
 *		backlog says no: the run will report it).
 */
static bool
nothing_pending(const char *name)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(name);
	bool		isnull;

	if (pipeline_exec("SELECT pending_rows = 0 FROM pipeline.backlog($1, quiet => true)",
					  1, &type, &value, NULL, true, 1) != 1)
		return false;
	return DatumGetBool(pipeline_result_datum(0, 0, &isnull)) && !isnull;
}

/*
 * still_wanted
 *		Whether the pipeline should run (again): it exists, is neither
 *		paused nor suspended, and (for another run) is still continuous.
 *		Sets *name to its current name, allocated in cxt, and, for another
 *		run (or the first run of a continuous pipeline that is not a retry),
 *		*idle when no staged row waits for it: a commit to another source
 *		woke the worker, or the scheduler gave it a worker that was free,
 *		and an empty run would only fill the run history.
 */
static bool
still_wanted(bool again, MemoryContext cxt, char **name, bool *idle)
{
	bool		wanted = false;
	PipelineUserContext ctx;
	char	   *runnable;

	*idle = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the extension may have been dropped or updated meanwhile */
	if (OidIsValid(get_extension_oid("pipeline", true)) && pipeline_check_version(DEBUG1))
	{
		/* never with the database's search_path: this process is a superuser */
		pipeline_become_internal(&ctx);
		runnable = pipeline_runnable_name(my_slot->pipeline_id, again);
		if (runnable != NULL)
		{
			*name = MemoryContextStrdup(cxt, runnable);
			wanted = true;
			*idle = (again || (my_slot->continuous && !my_slot->retrying)) &&
				nothing_pending(*name);
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
 *		One run of the pipeline as its owner; false when it failed (the run
 *		recorded its error itself; the log gets it too).
 */
static bool
run_once(const char *name)
{
	MemoryContext old = CurrentMemoryContext;
	Oid			saved_user;
	int			saved_context;
	volatile bool ok = true;

	GetUserIdAndSecContext(&saved_user, &saved_context);
	PG_TRY();
	{
		SetUserIdAndSecContext(my_slot->owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
		run_top_level(psprintf("CALL pipeline.run(%s)", quote_literal_cstr(name)));
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

		MemoryContextReset(iteration);
		ResetLatch(MyLatch);	/* commits from now on wake the next run */
		run_started = GetCurrentTimestamp();
		if (pipeline_stop_requested)
			break;
		if (!still_wanted(again, iteration, &name, &idle))
			my_slot->continuous = false;	/* gone, paused: no further run of it */
		else
		{
			MemoryContextSwitchTo(iteration);
			pgstat_report_appname(psprintf("pipeline worker: %s", name));
			if (!idle)
				ran_ok = run_once(name);
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
