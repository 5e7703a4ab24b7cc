/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *	  The scheduler of one database: decides when each scheduled pipeline
 *	  runs and starts run workers for them.
 *
 * Every pass reads the pipelines whose schedule is not 'manual' and, for
 * each one that is due and not running, starts a run worker (see
 * run_worker.c), up to pipeline.max_workers in the cluster.  A continuous
 * pipeline is always due: its worker stays and runs whenever rows are
 * committed to its source.  An interval schedule is due that long after its
 * last run started; cron text at its next time.  A due interval or cron
 * pipeline with no staged row waiting is not run: its schedule's tick is
 * counted in pipeline.schedule_state instead (empty_ticks), and its next
 * time counts from the tick, so that a '1 second' schedule over an idle
 * source adds no run to the history, no process start, no OpenLineage
 * event -- as a continuous pipeline's worker does not run when woken with
 * nothing to read.  A pipeline being retried runs anyway.
 *
 * A pipeline whose last runs failed is due again after an exponential
 * backoff with jitter (pipeline.retry_base doubling up to
 * pipeline.retry_max) and is suspended after
 * pipeline.suspend_after_failures failures (outcome.c).  When each
 * pipeline runs next is kept in pipeline.schedule_state for the status
 * view.
 *
 * Between passes it sleeps until the next pipeline is due, or until
 * something changes (see SCHEDULER_NAPTIME_MS).
 *
 * The scheduler stops when the extension is dropped from its database, on
 * SIGTERM, and before DROP DATABASE (the utility hook asks it to).  On
 * start it marks failed the runs a crash left "running".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
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

#include "pipeline.h"

PGDLLEXPORT void pipeline_scheduler_main(Datum arg);

/* pipeline.retry_base and pipeline.retry_max, in milliseconds */
int			pipeline_retry_base = 5000;
int			pipeline_retry_max = 300000;

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

/* A scheduled pipeline, as one pass sees it. */
typedef struct ScheduledPipeline
{
	int64		id;
	char	   *name;
	Oid			owner;
	PipelineSchedule schedule;
	bool		stopped;		/* paused or suspended */
	int32		failures;		/* in a row */
	TimestampTz last_failure_at;
	TimestampTz last_start;		/* of its last run or empty tick, 0 if none */
	TimestampTz next_run_at;	/* as stored, 0 if none */
} ScheduledPipeline;

/* A run worker this scheduler started, until it is seen stopped. */
typedef struct LaunchedWorker
{
	int			slot;
	uint64		launch_id;
	BackgroundWorkerHandle *handle;
} LaunchedWorker;

static List *launched = NIL;
static PipelineDatabaseSlot *my_slot = NULL;

/*
 * pipeline_scheduler_init
 *		Defines the retry settings; called once from _PG_init.
 */
void
pipeline_scheduler_init(void)
{
	DefineCustomIntVariable("pipeline.retry_base",
							"Delay before the first retry of a failed scheduled run; each further failure doubles it.",
							"The delay is spread by up to half of it either way (jitter).",
							&pipeline_retry_base, 5000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.retry_max",
							"Longest delay before a retry of a failed scheduled run.",
							NULL,
							&pipeline_retry_max, 300000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/*
 * pipeline_retry_delay_ms
 *		The delay before the retry that follows 'failures' failed runs in a
 *		row: retry_base doubled per further failure, capped at retry_max,
 *		times a jitter factor in [0.5, 1.5) that is a fixed function of the
 *		pipeline and the count (so every pass, and a restart, agree).
 */
int64
pipeline_retry_delay_ms(int64 pipeline_id, int32 failures)
{
	double		delay = pipeline_retry_base;
	uint32		h = hash_combine(hash_bytes_uint32((uint32) pipeline_id),
								 hash_bytes_uint32((uint32) failures));

	for (int i = 1; i < failures && delay < pipeline_retry_max; i++)
		delay *= 2;
	delay = Min(delay, (double) pipeline_retry_max);
	return (int64) (delay * (0.5 + (double) h / ((double) PG_UINT32_MAX + 1)));
}

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
 * extension_installed
 *		Whether the extension exists (committed) in this database.  The
 *		caller is in a transaction.
 */
static bool
extension_installed(void)
{
	return OidIsValid(get_extension_oid("pipeline", true));
}

/*
 * read_scheduled
 *		The pipelines with a schedule other than 'manual'.  The caller is
 *		in a transaction, connected to SPI.  Every pass reads them all, so
 *		the statement is planned once (a kept plan is planned again when
 *		the catalog changes) and each pipeline's last start is one probe of
 *		the run_log (pipeline_id, started_at) index.
 */
static List *
read_scheduled(void)
{
	static SPIPlanPtr plan = NULL;
	List	   *pipelines = NIL;
	int			n;

	if (plan == NULL)
		plan = pipeline_prepare_kept("SELECT d.id, d.name, d.owner::oid, d.schedule, "
									 "d.paused OR d.suspended_at IS NOT NULL, "
									 "coalesce(t.consecutive_failures, 0), t.last_failure_at, "
									 "greatest((SELECT max(l.started_at) FROM pipeline.run_log l "
									 "WHERE l.pipeline_id = d.id), s.last_empty_tick_at), "
									 "s.next_run_at "
									 "FROM pipeline.pipeline_defs d "
									 "LEFT JOIN pipeline.run_totals t ON t.pipeline_id = d.id "
									 "LEFT JOIN pipeline.schedule_state s ON s.pipeline_id = d.id "
									 "WHERE d.schedule <> 'manual' ORDER BY d.id",
									 0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the scheduled pipelines");
	n = (int) SPI_processed;
	for (int i = 0; i < n; i++)
	{
		ScheduledPipeline *p = palloc0(sizeof(ScheduledPipeline));
		bool		isnull;
		Datum		d;

		p->id = pipeline_result_int64(i, 0);
		p->name = pipeline_result_text(i, 1);
		p->owner = DatumGetObjectId(pipeline_result_datum(i, 2, &isnull));
		pipeline_schedule_parse(pipeline_result_text(i, 3), &p->schedule);
		p->stopped = DatumGetBool(pipeline_result_datum(i, 4, &isnull));
		p->failures = (int32) pipeline_result_int64(i, 5);
		d = pipeline_result_datum(i, 6, &isnull);
		p->last_failure_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = pipeline_result_datum(i, 7, &isnull);
		p->last_start = isnull ? 0 : DatumGetTimestampTz(d);
		d = pipeline_result_datum(i, 8, &isnull);
		p->next_run_at = isnull ? 0 : DatumGetTimestampTz(d);
		pipelines = lappend(pipelines, p);
	}
	return pipelines;
}

/*
 * due_at
 *		When the pipeline should run next: a retry after failures, its
 *		schedule's next time after its last start (or empty tick), or now
 *		for a continuous one.  DT_NOEND when never (paused, suspended).
 */
static TimestampTz
due_at(const ScheduledPipeline *p, TimestampTz now)
{
	if (p->stopped)
		return DT_NOEND;
	if (p->failures > 0 && p->last_failure_at != 0)
		return p->last_failure_at + pipeline_retry_delay_ms(p->id, p->failures) * 1000;
	switch (p->schedule.kind)
	{
		case SCHEDULE_CONTINUOUS:
			return now;
		case SCHEDULE_INTERVAL:
			return p->last_start ? pipeline_schedule_next(&p->schedule, p->last_start) : now;
		case SCHEDULE_CRON:
			/* never run (or its runs purged): the time stored by an earlier pass */
			if (p->last_start == 0 && p->next_run_at != 0)
				return p->next_run_at;
			return pipeline_schedule_next(&p->schedule, p->last_start ? p->last_start : now);
		default:
			return DT_NOEND;
	}
}

/*
 * store_next_run
 *		Records when the pipeline runs next (NULL: not by a schedule), for
 *		pipeline.status, when it changed.
 */
static void
store_next_run(const ScheduledPipeline *p, TimestampTz next)
{
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	if (next == p->next_run_at || (next == DT_NOEND && p->next_run_at == 0))
		return;
	values[0] = Int64GetDatum(p->id);
	values[1] = TimestampTzGetDatum(next);
	nulls[1] = next == DT_NOEND ? 'n' : ' ';
	pipeline_exec("INSERT INTO pipeline.schedule_state AS s (pipeline_id, next_run_at) "
				  "VALUES ($1, $2) ON CONFLICT (pipeline_id) DO UPDATE SET next_run_at = $2, "
				  "updated_at = now()", 2, types, values, nulls, false, 0);
}

/*
 * quiet_tick
 *		Whether the due pipeline has nothing to do: an interval or cron
 *		schedule, not retrying a failure, and no staged row waiting.
 */
static bool
quiet_tick(const ScheduledPipeline *p)
{
	return (p->schedule.kind == SCHEDULE_INTERVAL || p->schedule.kind == SCHEDULE_CRON) &&
		p->failures == 0 && pipeline_is_caught_up(p->id);
}

/*
 * record_empty_tick
 *		Counts a tick of the pipeline's schedule that found nothing to read,
 *		at 'now', and stores its next time.
 */
static void
record_empty_tick(ScheduledPipeline *p, TimestampTz now, TimestampTz next)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];

	values[0] = Int64GetDatum(p->id);
	values[1] = TimestampTzGetDatum(now);
	values[2] = TimestampTzGetDatum(next);
	pipeline_exec("INSERT INTO pipeline.schedule_state AS s (pipeline_id, next_run_at, empty_ticks, "
				  "last_empty_tick_at) VALUES ($1, $3, 1, $2) ON CONFLICT (pipeline_id) DO UPDATE "
				  "SET next_run_at = $3, empty_ticks = s.empty_ticks + 1, last_empty_tick_at = $2, "
				  "updated_at = now()", 3, types, values, NULL, false, 0);
	p->next_run_at = next;
}

/*
 * forget_stopped_workers
 *		Frees the slots of run workers that stopped without freeing them
 *		(they failed to start, or to connect).
 */
static void
forget_stopped_workers(void)
{
	ListCell   *lc;

	foreach(lc, launched)
	{
		LaunchedWorker *w = lfirst(lc);
		pid_t		pid;
		PipelineWorkerSlot *slot = &pipeline_shared->workers[w->slot];
		MemoryContext old;

		if (GetBackgroundWorkerPid(w->handle, &pid) != BGWH_STOPPED)
			continue;
		LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
		if (slot->in_use && slot->launch_id == w->launch_id)
			slot->in_use = false;
		LWLockRelease(pipeline_shared->lock);
		pfree(w->handle);
		old = MemoryContextSwitchTo(TopMemoryContext);
		launched = foreach_delete_current(launched, lc);
		MemoryContextSwitchTo(old);
	}
}

/*
 * start_worker
 *		Claims a run worker slot for the pipeline and starts the worker;
 *		false when every slot is taken (or no background worker is free).
 */
static bool
start_worker(const ScheduledPipeline *p)
{
	PipelineWorkerSlot *slot = NULL;
	LaunchedWorker *w;
	int			index = -1;
	MemoryContext old;
	bool		registered;

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < pipeline_max_workers && slot == NULL; i++)
	{
		if (!pipeline_shared->workers[i].in_use)
		{
			index = i;
			slot = &pipeline_shared->workers[i];
			memset(slot, 0, sizeof(*slot));
			slot->in_use = true;
			slot->dboid = MyDatabaseId;
			slot->pipeline_id = p->id;
			slot->owner = p->owner;
			slot->continuous = p->schedule.kind == SCHEDULE_CONTINUOUS;
			slot->launch_id = ++pipeline_shared->last_launch_id;	/* unique in the cluster */
			slot->scheduler_latch = MyLatch;
		}
	}
	LWLockRelease(pipeline_shared->lock);
	if (slot == NULL)
		return false;

	w = MemoryContextAlloc(TopMemoryContext, sizeof(LaunchedWorker));
	w->slot = index;
	w->launch_id = slot->launch_id;
	registered = pipeline_start_worker("pipeline_run_worker_main", "pipeline worker",
									   psprintf("pipeline worker for %s", p->name),
									   Int32GetDatum(index), &w->handle);
	if (!registered)
	{
		LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
		slot->in_use = false;
		LWLockRelease(pipeline_shared->lock);
		pfree(w);
		return false;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	launched = lappend(launched, w);
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * is_running
 *		Whether the pipeline runs: in a run worker of this database, or in
 *		any session holding its run lock (a client's CALL).  A worker
 *		started then would only find the run lock taken, exit, and be
 *		started again at once.
 */
static bool
is_running(int64 pipeline_id)
{
	bool		running;

	LWLockAcquire(pipeline_shared->lock, LW_SHARED);
	running = pipeline_worker_slot_of(MyDatabaseId, pipeline_id) != NULL;
	LWLockRelease(pipeline_shared->lock);
	return running || pipeline_run_lock_held(pipeline_id);
}

/*
 * schedule_pass
 *		One pass: starts the due pipelines' workers, records the next runs;
 *		returns how long to sleep (ms).  False in *installed when the
 *		extension is gone.
 */
static long
schedule_pass(bool *installed)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, SCHEDULER_NAPTIME_MS);
	List	   *pipelines;
	ListCell   *lc;
	bool		full = false;
	PipelineUserContext ctx;

	forget_stopped_workers();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	*installed = extension_installed();
	if (!*installed)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return 0;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* never with the database's search_path: this process is a superuser */
	pipeline_become_internal(&ctx);
	pipelines = read_scheduled();
	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);
		TimestampTz due = due_at(p, now);

		if (due <= now && !is_running(p->id))
		{
			if (quiet_tick(p))
			{
				due = pipeline_schedule_next(&p->schedule, now);
				record_empty_tick(p, now, due);
			}
			else if (!full && start_worker(p))
				due = p->schedule.kind == SCHEDULE_CONTINUOUS ? DT_NOEND
					: pipeline_schedule_next(&p->schedule, now);
			else
				full = true;
		}
		if (p->schedule.kind == SCHEDULE_CONTINUOUS && p->failures == 0)
			due = DT_NOEND;		/* it runs on commit, not at a time */
		store_next_run(p, due);
		if (due > now && due < wake)
			wake = due;
	}
	pipeline_restore_user(&ctx);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	/* no free worker: look again soon (a worker of another database may exit) */
	if (full)
		wake = Min(wake, TimestampTzPlusMilliseconds(now, SCHEDULER_BUSY_NAPTIME_MS));
	return Max(1, (long) ((wake - now) / 1000));
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
	if (extension_installed())
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		pipeline_fail_dead_runs();
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();

	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		pgstat_report_activity(STATE_RUNNING, "scheduling pipelines");
		sleep_ms = schedule_pass(&installed);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (!installed)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	/* no extension here: tell the launcher not to start one again soon */
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	my_slot->no_extension = true;
	LWLockRelease(pipeline_shared->lock);
	proc_exit(0);
}
