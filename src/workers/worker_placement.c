/*-------------------------------------------------------------------------
 *
 * worker_placement.c
 *	  Which due pipelines of a pass get a run worker, and which wait.
 *
 * The workers are few (pipeline.max_workers in the cluster) and the
 * pipelines many, so a pass places first the due pipelines with rows
 * waiting, the one whose last run started longest ago first, and gives a
 * continuous pipeline with nothing to read a worker only when one is left
 * over (a standby).  Those that find no free worker are listed in order in
 * the database's shared slot for the workers to take over between runs
 * (shared_state.c), and counted as waiting for pipeline.status.  A
 * continuous pipeline without a worker is probed only when a commit named
 * its source (staged_sources.c), when it had a worker or waited for one at
 * the last pass, or when the pass probes every one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "model.h"
#include "definition/definition.h"
#include "run/run.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "steps/steps.h"
#include "workers/workers.h"

/* A run worker this scheduler started, until it is seen stopped. */
typedef struct LaunchedWorker
{
	int			slot;
	uint64		launch_id;
	BackgroundWorkerHandle *handle;
} LaunchedWorker;

static List *launched = NIL;

/*
 * The pipelines that had a run worker, or were waiting for one, at the last
 * pass, sorted: a worker may have run them since, while rows came.
 */
static int64 *served = NULL;
static int	served_count = 0;

/*
 * pipeline_forget_stopped_workers
 *		Frees the slots of run workers that stopped without freeing them
 *		(they failed to start, or to connect).
 */
void
pipeline_forget_stopped_workers(void)
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
	if (pipeline_worker_slot_of(MyDatabaseId, p->id, p->step) != NULL)
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
			slot->step = p->step;
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
									   psprintf("pipeline worker for %s%s", p->step ? "step " : "", p->name),
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
 * pipeline_is_running
 *		Whether the pipeline (or step) runs: in a run worker of this
 *		database (noted in p->has_worker), or in any session holding its
 *		run lock (a client's CALL).  A worker started then would only find the run lock
 *		taken, exit, and be started again at once.
 */
bool
pipeline_is_running(ScheduledPipeline *p)
{
	LWLockAcquire(pipeline_shared->lock, LW_SHARED);
	p->has_worker = pipeline_worker_slot_of(MyDatabaseId, p->id, p->step) != NULL;
	LWLockRelease(pipeline_shared->lock);
	if (p->has_worker)
		return true;
	return p->step ? pipeline_step_lock_held(p->id) : pipeline_run_lock_held(p->id);
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
 * pipeline_remember_served
 *		Keeps, until the next pass, which pipelines have a run worker now or
 *		wait for one.
 */
void
pipeline_remember_served(List *pipelines)
{
	ListCell   *lc;

	if (served != NULL)
		pfree(served);
	served = MemoryContextAlloc(TopMemoryContext, Max(1, list_length(pipelines)) * sizeof(int64));
	served_count = 0;
	foreach(lc, pipelines)
	{
		ScheduledPipeline *p = lfirst(lc);

		/* only continuous pipelines ask (may_have_rows) */
		if (!p->step && (p->has_worker || p->started || p->waits))
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
 * pipeline_plan_due_pipeline
 *		Sorts a due pipeline that no one runs: an interval or cron tick with
 *		nothing to read is counted and moved on; a continuous pipeline with
 *		nothing to read stands by; every other one has work.  A pipeline
 *		still waiting for a worker is not probed again.
 */
void
pipeline_plan_due_pipeline(ScheduledPipeline *p, TimestampTz now, PassPlan *plan)
{
	/* found with rows by an earlier pass, and not run since: still has them */
	bool		still_waiting = p->waiting_since != 0 && p->last_start < p->waiting_since;

	if (pipeline_quiet_tick(p))
		pipeline_record_empty_tick(p, now, pipeline_schedule_next(&p->schedule, now));
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
 * pipeline_publish_waiting
 *		Lists for the workers, in the database's 'slot', the due pipelines
 *		that wait
 *		for one, in the order they should be served, and says whether a
 *		commit of staged rows should wake this scheduler (a continuous
 *		pipeline has no worker); asks the continuous workers to hand theirs
 *		over when some wait.
 */
void
pipeline_publish_waiting(PipelineDatabaseSlot *slot, List *work, int unplaced_continuous)
{
	ListCell   *lc;
	int			waiting = 0;

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	slot->handoffs = 0;
	foreach(lc, work)
	{
		ScheduledPipeline *p = lfirst(lc);

		if (!p->waits)
			continue;
		if (slot->handoffs < PIPELINE_HANDOFF_QUEUE)
		{
			PipelineHandoff *h = &slot->handoff[slot->handoffs++];

			h->pipeline_id = p->id;
			h->step = p->step;
			h->owner = p->owner;
			h->continuous = p->schedule.kind == SCHEDULE_CONTINUOUS;
			h->retrying = p->failures > 0;
		}
		waiting++;
	}
	slot->waiting = waiting;
	slot->unplaced_continuous = unplaced_continuous;
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
withdraw_waiting(PipelineDatabaseSlot *slot)
{
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	slot->handoffs = 0;
	slot->waiting = 0;
	LWLockRelease(pipeline_shared->lock);
}

/*
 * pipeline_place_due
 *		Gives the pass's due pipelines workers: first those with work, the
 *		longest unserved first, then, if none of them waits, the standbys.
 *		The database's list of waiting pipelines is emptied first (the pass
 *		publishes it anew).  Returns how many with work wait.
 */
int
pipeline_place_due(PipelineDatabaseSlot *slot, PassPlan *plan)
{
	int			waiting;

	list_sort(plan->work, longest_unserved_first);
	withdraw_waiting(slot);
	waiting = place_pipelines(plan->work, true);
	if (waiting == 0)
		(void) place_pipelines(plan->standby, false);
	return waiting;
}
