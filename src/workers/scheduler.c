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
 * committed to its source, for as long as no other pipeline waits for a
 * worker.  The workers are few and the pipelines many, so a pass places
 * first the due pipelines with rows waiting, the one whose last run started
 * longest ago first, and gives a continuous pipeline with nothing to read a
 * worker only when one is left over.  Those that find no free worker are
 * counted as waiting (pipeline.status says so) and listed in order for
 * the workers: as many workers take them over (shared_state.c), after
 * their run or at once when idle, in the same process for a pipeline of
 * their database: every due pipeline is served in turn, whatever the ratio
 * of pipelines to workers.  A continuous pipeline without a worker is
 * probed only when a commit named its source (staged_sources.c), when it
 * had a worker or waited for one at the last pass (a worker may have run
 * it and left it since), and every SCHEDULER_FULL_PROBE_MS.  An interval schedule is due that long after its
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
 * start it marks failed the runs a crash left "running".  While this
 * database's extension is of another version than the library (version.c),
 * it starts nothing and waits for ALTER EXTENSION pipeline UPDATE, having
 * logged why once.
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

#include "model.h"
#include "common/common.h"
#include "definition/definition.h"
#include "run/run.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "workers/workers.h"

PGDLLEXPORT void pipeline_scheduler_main(Datum arg);

/* pipeline.retry_base and pipeline.retry_max, in milliseconds */

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
	TimestampTz waiting_since;	/* as stored, 0 if not waiting for a worker */
	TimestampTz last_empty_tick_at;	/* 0 if none */
	Oid			source;			/* the relation it reads */
	bool		has_worker;		/* a run worker of this scheduler runs it */
	bool		started;		/* this pass started its worker */
	bool		waits;			/* this pass found no worker free for it */
	TimestampTz due;			/* due_at, as this pass computed it */
} ScheduledPipeline;

/* The due pipelines of one pass that no worker runs yet. */
typedef struct PassPlan
{
	List	   *work;			/* rows wait for them, or a retry is due */
	List	   *standby;		/* continuous, with nothing to read yet */
	PipelineStagedSources staged;	/* sources that got rows since the last pass */
} PassPlan;

/*
 * How often a pass probes every continuous pipeline without a worker, not
 * only those whose source got rows: the sources a commit names cover every
 * case the code knows; this bounds the cost of one it does not.
 */
#define SCHEDULER_FULL_PROBE_MS 10000

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
 * The pipelines that had a run worker, or were waiting for one, at the last
 * pass, sorted: a worker may have run them since, while rows came.
 */
static int64 *served = NULL;
static int	served_count = 0;
static TimestampTz last_full_probe = 0;

/* whether this database's extension is of another version (logged once) */
static bool version_differs = false;


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
	List	   *pipelines = NIL;
	int			n;

	n = pipeline_exec_kept("SELECT d.id, d.name, d.owner::oid, d.schedule, "
						   "d.paused OR d.suspended_at IS NOT NULL, "
						   "coalesce(t.consecutive_failures, 0), t.last_failure_at, "
						   "greatest((SELECT max(l.started_at) FROM pipeline.run_log l "
						   "WHERE l.pipeline_id = d.id), s.last_empty_tick_at), "
						   "s.next_run_at, s.waiting_since, d.source::oid, s.last_empty_tick_at "
						   "FROM pipeline.pipeline_defs d "
						   "LEFT JOIN pipeline.run_totals t ON t.pipeline_id = d.id "
						   "LEFT JOIN pipeline.schedule_state s ON s.pipeline_id = d.id "
						   "WHERE d.schedule <> 'manual' ORDER BY d.id",
						   0, NULL, NULL, NULL, true, 0);
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
		d = pipeline_result_datum(i, 9, &isnull);
		p->waiting_since = isnull ? 0 : DatumGetTimestampTz(d);
		p->source = DatumGetObjectId(pipeline_result_datum(i, 10, &isnull));
		d = pipeline_result_datum(i, 11, &isnull);
		p->last_empty_tick_at = isnull ? 0 : DatumGetTimestampTz(d);
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
 * store_schedule_state
 *		Records when the pipeline runs next (NULL: not by a schedule) and
 *		since when it waits for a worker (NULL: it does not), for
 *		pipeline.status, when either changed.
 */
static void
store_schedule_state(ScheduledPipeline *p, TimestampTz next, TimestampTz waiting_since)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	if (next == DT_NOEND)
		next = 0;
	if (next == p->next_run_at && waiting_since == p->waiting_since)
		return;
	values[0] = Int64GetDatum(p->id);
	values[1] = TimestampTzGetDatum(next);
	nulls[1] = next == 0 ? 'n' : ' ';
	values[2] = TimestampTzGetDatum(waiting_since);
	nulls[2] = waiting_since == 0 ? 'n' : ' ';
	pipeline_exec("INSERT INTO pipeline.schedule_state AS s (pipeline_id, next_run_at, waiting_since) "
				  "VALUES ($1, $2, $3) ON CONFLICT (pipeline_id) DO UPDATE SET next_run_at = $2, "
				  "waiting_since = $3, updated_at = now()", 3, types, values, nulls, false, 0);
	p->next_run_at = next;
	p->waiting_since = waiting_since;
}

/*
 * still_caught_up
 *		Whether the pipeline is known to have nothing to read without a
 *		probe: its last tick found nothing, and no commit to its source came
 *		to this scheduler's knowledge since.
 */
static bool
still_caught_up(const ScheduledPipeline *p)
{
	return p->last_empty_tick_at != 0 && p->last_start == p->last_empty_tick_at &&
		pipeline_source_staged_at(p->source) < p->last_empty_tick_at;
}

/*
 * quiet_tick
 *		Whether the due pipeline has nothing to do: an interval or cron
 *		schedule, not retrying a failure, and no staged row waiting (known
 *		without a probe when nothing was committed to its source since its
 *		last empty tick).
 */
static bool
quiet_tick(const ScheduledPipeline *p)
{
	return (p->schedule.kind == SCHEDULE_INTERVAL || p->schedule.kind == SCHEDULE_CRON) &&
		p->failures == 0 && (still_caught_up(p) || pipeline_is_caught_up(p->id));
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
	p->last_start = now;		/* its next time counts from the tick */
	p->due = next;
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
 *		True too when a worker took the pipeline over meanwhile.
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
	/* a worker may have taken it over since this pass looked */
	if (pipeline_worker_slot_of(MyDatabaseId, p->id) != NULL)
	{
		LWLockRelease(pipeline_shared->lock);
		return true;
	}
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
			slot->retrying = p->failures > 0;
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
 *		Whether the pipeline runs: in a run worker of this database (noted
 *		in p->has_worker), or in any session holding its run lock (a
 *		client's CALL).  A worker started then would only find the run lock
 *		taken, exit, and be started again at once.
 */
static bool
is_running(ScheduledPipeline *p)
{
	LWLockAcquire(pipeline_shared->lock, LW_SHARED);
	p->has_worker = pipeline_worker_slot_of(MyDatabaseId, p->id) != NULL;
	LWLockRelease(pipeline_shared->lock);
	return p->has_worker || pipeline_run_lock_held(p->id);
}

/*
 * compare_int64
 *		qsort and bsearch comparator of int64s.
 */
static int
compare_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * remember_served
 *		Keeps, until the next pass, which pipelines have a run worker now or
 *		wait for one.
 */
static void
remember_served(List *pipelines)
{
	ListCell   *lc;

	if (served != NULL)
		pfree(served);
	served = MemoryContextAlloc(TopMemoryContext, Max(1, list_length(pipelines)) * sizeof(int64));
	served_count = 0;
	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);

		if (p->has_worker || p->started || p->waits)
			served[served_count++] = p->id;
	}
	qsort(served, served_count, sizeof(int64), compare_int64);
}

/*
 * may_have_rows
 *		Whether a continuous pipeline without a worker must be probed: rows
 *		were committed to its source since the last pass, or it had a
 *		worker or waited for one then (a worker may have run it since,
 *		while rows came, and left it).  The caller knows it is not waiting
 *		still.
 */
static bool
may_have_rows(const ScheduledPipeline *p, const PipelineStagedSources *staged)
{
	if (served_count > 0 &&
		bsearch(&p->id, served, served_count, sizeof(int64), compare_int64) != NULL)
		return true;
	return pipeline_staged_into(staged, p->source);
}

/*
 * plan_due_pipeline
 *		Sorts a due pipeline that no one runs: an interval or cron tick with
 *		nothing to read is counted and moved on; a continuous pipeline with
 *		nothing to read stands by; every other one has work.  A pipeline
 *		still waiting for a worker is not probed again.
 */
static void
plan_due_pipeline(ScheduledPipeline *p, TimestampTz now, PassPlan *plan)
{
	/* found with rows by an earlier pass, and not run since: still has them */
	bool		still_waiting = p->waiting_since != 0 && p->last_start < p->waiting_since;

	if (quiet_tick(p))
		record_empty_tick(p, now, pipeline_schedule_next(&p->schedule, now));
	else if (p->schedule.kind == SCHEDULE_CONTINUOUS && p->failures == 0 && !still_waiting &&
			 (!may_have_rows(p, &plan->staged) || pipeline_is_caught_up(p->id)))
		plan->standby = lappend(plan->standby, p);
	else
		plan->work = lappend(plan->work, p);
}

/*
 * longest_unserved_first
 *		list_sort comparator: the pipeline whose last run (or empty tick)
 *		started earlier comes first; never run, first of all.
 */
static int
longest_unserved_first(const ListCell *a, const ListCell *b)
{
	const ScheduledPipeline *pa = lfirst(a);
	const ScheduledPipeline *pb = lfirst(b);

	if (pa->last_start != pb->last_start)
		return pa->last_start < pb->last_start ? -1 : 1;
	return pa->id < pb->id ? -1 : (pa->id > pb->id ? 1 : 0);
}

/*
 * place_pipelines
 *		Starts workers for the pipelines in order until none is free; marks
 *		those started, and those left waiting when 'waits' (pipelines with
 *		work), and returns how many were left.
 */
static int
place_pipelines(List *pipelines, bool waits)
{
	ListCell   *lc;
	int			left = 0;

	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);

		if (left == 0 && start_worker(p))
			p->has_worker = p->started = true;
		else
		{
			p->waits = waits;
			left++;
		}
	}
	return left;
}

/*
 * next_due
 *		When to look at the pipeline again after this pass: a continuous one
 *		runs on commit, not at a time (unless a retry is due); another one
 *		that was just started, at its schedule's next time.
 */
static TimestampTz
next_due(const ScheduledPipeline *p, TimestampTz due, TimestampTz now)
{
	if (p->schedule.kind == SCHEDULE_CONTINUOUS && (p->failures == 0 || p->started))
		return DT_NOEND;
	if (p->started)
		return pipeline_schedule_next(&p->schedule, now);
	return due;
}

/*
 * publish_waiting
 *		Lists for the workers the due pipelines of this database that wait
 *		for one, in the order they should be served, and says whether a
 *		commit of staged rows should wake this scheduler (a continuous
 *		pipeline has no worker); asks the continuous workers to hand theirs
 *		over when some wait.
 */
static void
publish_waiting(List *work, int unplaced_continuous)
{
	ListCell   *lc;
	int			waiting = 0;

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	my_slot->handoffs = 0;
	foreach(lc, work)
	{
		ScheduledPipeline *p = lfirst(lc);

		if (!p->waits)
			continue;
		if (my_slot->handoffs < PIPELINE_HANDOFF_QUEUE)
		{
			PipelineHandoff *h = &my_slot->handoff[my_slot->handoffs++];

			h->pipeline_id = p->id;
			h->owner = p->owner;
			h->continuous = p->schedule.kind == SCHEDULE_CONTINUOUS;
			h->retrying = p->failures > 0;
		}
		waiting++;
	}
	my_slot->waiting = waiting;
	my_slot->unplaced_continuous = unplaced_continuous;
	LWLockRelease(pipeline_shared->lock);
	if (waiting > 0)
		pipeline_wake_continuous_workers();
}

/*
 * withdraw_waiting
 *		Empties this database's list of waiting pipelines before a pass
 *		places them itself; the pass publishes it anew.
 */
static void
withdraw_waiting(void)
{
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	my_slot->handoffs = 0;
	my_slot->waiting = 0;
	LWLockRelease(pipeline_shared->lock);
}

/*
 * coarse_wake
 *		When to wake for a pipeline due at 'due': an interval of a minute or
 *		more is woken for at the next whole second, so that the ticks of
 *		many such schedules due within one second make one pass, not one
 *		each (a second late at most, on a minute: nothing a user sees);
 *		shorter intervals and retries on time.
 */
static TimestampTz
coarse_wake(const ScheduledPipeline *p, TimestampTz due)
{
	if (p->schedule.kind != SCHEDULE_INTERVAL || p->failures > 0 ||
		p->schedule.interval < USECS_PER_MINUTE || TIMESTAMP_NOT_FINITE(due))
		return due;
	return due + (USECS_PER_SEC - due % USECS_PER_SEC) % USECS_PER_SEC;
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
	ListCell   *lc;
	PassPlan	plan = {NIL, NIL};
	int			waiting;
	int			unplaced_continuous = 0;
	PipelineUserContext ctx;

	forget_stopped_workers();
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
	*installed = extension_installed();
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
	pipelines = read_scheduled();
	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);

		p->due = due_at(p, now);
		if (p->due <= now && !is_running(p))
			plan_due_pipeline(p, now, &plan);
	}
	list_sort(plan.work, longest_unserved_first);
	withdraw_waiting();
	waiting = place_pipelines(plan.work, true);
	if (waiting == 0)
		(void) place_pipelines(plan.standby, false);
	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);
		TimestampTz due = next_due(p, p->due, now);

		store_schedule_state(p, due, p->waits ? (p->waiting_since ? p->waiting_since : now) : 0);
		if (p->schedule.kind == SCHEDULE_CONTINUOUS && !p->stopped && !p->has_worker)
			unplaced_continuous++;
		if (due > now && coarse_wake(p, due) < wake)
			wake = coarse_wake(p, due);
	}
	/* before SPI_finish frees the pass's lists */
	publish_waiting(plan.work, unplaced_continuous);
	remember_served(pipelines);
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
	if (extension_installed() && pipeline_check_version(DEBUG1))
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
