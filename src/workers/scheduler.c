/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *	  The scheduler of one database: decides when each scheduled pipeline
 *	  runs and starts run workers for them.
 *
 * Every pass reads the pipelines whose schedule is not 'manual'
 * (scheduled_pipelines.c says when each is due), sorts the due ones that
 * nobody runs into those with work and those standing by, and starts run
 * workers for them (run_worker.c), up to pipeline.max_workers in the
 * cluster; those left over wait, listed for the workers to take over
 * (worker_placement.c).  When each pipeline runs next, and since when it
 * waits, is kept in pipeline.schedule_state for the status view.  A
 * pipeline is suspended after pipeline.suspend_after_failures failures
 * (outcome.c).  Scheduled steps (steps/) are placed alike, after the
 * pipelines in each pass's list.
 *
 * Between passes it sleeps until the next pipeline is due, or until
 * something changes (see SCHEDULER_NAPTIME_MS).
 *
 * The scheduler stops when the extension is dropped from its database, on
 * SIGTERM, and before DROP DATABASE (the utility hook asks it to).  On
 * start it marks failed the runs (of pipelines and steps) a crash left
 * "running".  While this
 * database's extension is of another version than the library (version.c),
 * it starts nothing and waits for ALTER EXTENSION pipeline UPDATE, having
 * logged why once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"
#include "run/run.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "steps/steps.h"
#include "workers/workers.h"

PGDLLEXPORT void pipeline_scheduler_main(Datum arg);

/*
 * How long the scheduler sleeps at most between two passes.  It wakes
 * sooner when a pipeline is due, when a definition or pause changes (at
 * commit, see pipeline_schedules_changed), when a run worker exits, and on
 * SIGHUP; the cap only bounds how long a dropped extension or a worker that
 * never started goes unnoticed.
 */
#define SCHEDULER_NAPTIME_MS 10000
/* ... and while a due pipeline waits for a free run worker. */
#define SCHEDULER_BUSY_NAPTIME_MS 1000

/*
 * How often a pass probes every continuous pipeline without a worker, not
 * only those whose source got rows: the sources a commit names cover every
 * case the code knows; this bounds the cost of one it does not.
 */
#define SCHEDULER_FULL_PROBE_MS 10000

static PipelineDatabaseSlot *my_slot = NULL;
static TimestampTz last_full_probe = 0;

/* whether this database's extension is of another version (logged once) */
static bool version_differs = false;

/*
 * release_database_slot
 *		on_shmem_exit: the database has no scheduler any more; the launcher
 *		is told.
 */
static void
release_database_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	if (my_slot->scheduler_pid == MyProcPid)
	{
		my_slot->scheduler_pid = 0;
		my_slot->scheduler_latch = NULL;
		/* nobody waits here any more: workers need not give theirs back */
		my_slot->waiting = 0;
		my_slot->unplaced_continuous = 0;
		my_slot->handoffs = 0;
	}
	LWLockRelease(pipeline_shared->lock);
	pipeline_wake_launcher();
}

/*
 * take_database_slot
 *		Registers this process as its database's scheduler; false when
 *		another one already is.
 */
static bool
take_database_slot(void)
{
	bool		mine = false;

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	my_slot = pipeline_database_slot(MyDatabaseId, true);
	if (my_slot != NULL)
	{
		my_slot->starting = false;
		if (my_slot->scheduler_pid == 0)
		{
			my_slot->scheduler_pid = MyProcPid;
			my_slot->scheduler_latch = MyLatch;
			mine = true;
		}
	}
	LWLockRelease(pipeline_shared->lock);
	if (!mine)
		my_slot = NULL;
	return mine;
}

/*
 * schedule_pass
 *		One pass: starts the due pipelines' workers, records the next runs
 *		and who waits for a worker; returns how long to sleep (ms).  False
 *		in *installed when the extension is gone.
 */
static long
schedule_pass(bool *installed)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, SCHEDULER_NAPTIME_MS);
	List	   *pipelines;
	List	   *due = NIL;
	ListCell   *lc;
	PassPlan	plan = {NIL, NIL};
	int			waiting;
	int			unplaced_continuous = 0;
	PipelineUserContext ctx;

	pipeline_forget_stopped_workers();
	/* before this pass's snapshot: what it probes then includes these rows */
	pipeline_take_staged_sources(my_slot, &plan.staged);
	pipeline_note_source_activity(&plan.staged, now);
	if (now - last_full_probe >= SCHEDULER_FULL_PROBE_MS * INT64CONST(1000))
	{
		plan.staged.all = true;
		last_full_probe = now;
	}
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	*installed = pipeline_lock_extension();
	if (!*installed)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return 0;
	}
	/* another version's catalog: wait, quietly after the first pass */
	version_differs = !pipeline_check_version(version_differs ? DEBUG1 : LOG);
	if (version_differs)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return SCHEDULER_NAPTIME_MS;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* never with the database's search_path: this process is a superuser */
	pipeline_become_internal(&ctx);
	pipelines = pipeline_read_scheduled();
	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);

		p->due = pipeline_due_at(p, now);
		if (p->due <= now && !pipeline_is_running(p))
			due = lappend(due, p);
	}
	foreach(lc, pipeline_recheck_failures(due, now))
		pipeline_plan_due_pipeline(lfirst(lc), now, &plan);
	waiting = pipeline_place_due(my_slot, &plan);
	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);
		TimestampTz due = pipeline_next_due(p, p->due, now);

		pipeline_store_schedule_state(p, due, p->waits ? (p->waiting_since ? p->waiting_since : now) : 0);
		if (p->schedule.kind == SCHEDULE_CONTINUOUS && !p->stopped && !p->has_worker)
			unplaced_continuous++;
		if (due > now && pipeline_coarse_wake(p, due) < wake)
			wake = pipeline_coarse_wake(p, due);
	}
	/* before SPI_finish frees the pass's lists */
	pipeline_publish_waiting(my_slot, plan.work, unplaced_continuous);
	pipeline_remember_served(pipelines);
	pipeline_keep_shipper();
	pipeline_restore_user(&ctx);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	/* no free worker: look again soon (a worker of another database may exit) */
	if (waiting > 0)
		wake = Min(wake, TimestampTzPlusMilliseconds(now, SCHEDULER_BUSY_NAPTIME_MS));
	return Max(1, (long) ((wake - now) / 1000));
}

/*
 * space_passes
 *		Waits until pipeline.continuous_min_interval, and twice the time the
 *		pass took, have passed since it started: while a continuous pipeline
 *		has no worker, every commit of staged rows wakes the scheduler, and
 *		a stream of them must make passes no more often than a continuous
 *		pipeline makes runs, nor keep the scheduler busy more than a third
 *		of the time (a pass probes every continuous pipeline without a
 *		worker).
 */
static void
space_passes(TimestampTz pass_started, long pass_ms)
{
	long		elapsed_ms = (long) ((GetCurrentTimestamp() - pass_started) / 1000);
	long		spacing_ms = Max((long) pipeline_continuous_min_interval, 2 * pass_ms);

	if (elapsed_ms < spacing_ms)
		(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 spacing_ms - elapsed_ms, PG_WAIT_EXTENSION);
}

/*
 * pipeline_scheduler_main
 *		The scheduler of the database given as the argument.
 */
void
pipeline_scheduler_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	bool		installed = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pipeline scheduler");
	if (!take_database_slot())
		proc_exit(0);
	before_shmem_exit(release_database_slot, (Datum) 0);

	/* runs a crash or a restart interrupted */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (pipeline_lock_extension() && pipeline_check_version(DEBUG1))
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		pipeline_fail_dead_runs();
		pipeline_step_fail_dead_runs();
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();

	for (;;)
	{
		long		sleep_ms;
		long		pass_ms;
		TimestampTz pass_started = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		pgstat_report_activity(STATE_RUNNING, "scheduling pipelines");
		sleep_ms = schedule_pass(&installed);
		pass_ms = (long) ((GetCurrentTimestamp() - pass_started) / 1000);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (!installed)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		space_passes(pass_started, pass_ms);
	}

	/* no extension here: tell the launcher not to start one again soon */
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	my_slot->no_extension = true;
	LWLockRelease(pipeline_shared->lock);
	proc_exit(0);
}
