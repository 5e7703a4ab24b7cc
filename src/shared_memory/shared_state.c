/*-------------------------------------------------------------------------
 *
 * shared_state.c
 *	  Shared memory of the background workers: which database has a
 *	  scheduler, which pipeline a run worker is running, and how a commit
 *	  of staged rows wakes them.
 *
 * One slot per database the launcher knows (its scheduler's pid and latch,
 * whether the extension was found there) and one per run worker, up to
 * pipeline.max_workers.  Everything is under one LWLock; the slots are few
 * and read briefly.
 *
 * Wake-up on commit: pipeline.current_xid(), the default of every staging
 * table's _xid column, marks the transaction as one that staged rows.  When
 * such a transaction commits, the continuous run workers of its database
 * have their latches set: a continuous pipeline starts
 * its next run within a few milliseconds of the commit, not at its next
 * poll.  So does the database's scheduler while some continuous pipeline
 * there has no worker: it gives it one when rows wait for it.
 *
 * Sharing the workers: there are pipeline.max_workers of them for any
 * number of pipelines.  A scheduler that finds due pipelines with rows
 * waiting and no free worker says how many in its database's slot
 * ('waiting'), lists the first of them in order ('handoff'), and wakes
 * the continuous workers.  A worker between two runs -- after its run, or
 * at once when it has nothing to do -- takes over the first pipeline listed
 * in its database, without a new process; a worker of another database
 * stops instead, and its exit wakes the schedulers with pipelines waiting.
 * As many workers move as pipelines wait.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"

#include <signal.h>
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "model.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"

PipelineShared *pipeline_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This transaction staged rows (see pipeline_note_staged_rows). */
static bool staged_rows_in_xact = false;

/* This transaction created the extension (see pipeline_want_scheduler). */
static bool created_extension_in_xact = false;

/* This transaction changed a schedule (see pipeline_schedules_changed). */
static bool schedules_changed_in_xact = false;
static bool wake_callback_registered = false;

/*
 * shared_size
 *		Bytes of shared memory the workers need.
 */
static Size
shared_size(void)
{
	return add_size(offsetof(PipelineShared, databases),
					add_size(mul_size(pipeline_max_databases, sizeof(PipelineDatabaseSlot)),
							 mul_size(pipeline_max_workers, sizeof(PipelineWorkerSlot))));
}

/*
 * request_shared
 *		shmem_request_hook: asks for the memory and the lock.
 */
static void
request_shared(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("pipeline", 1);
}

/*
 * startup_shared
 *		shmem_startup_hook: creates (or, in a backend, attaches to) the
 *		shared state.  After a crash restart it starts empty again.
 */
static void
startup_shared(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pipeline_shared = ShmemInitStruct("pipeline", shared_size(), &found);
	if (!found)
	{
		memset(pipeline_shared, 0, shared_size());
		pipeline_shared->lock = &(GetNamedLWLockTranche("pipeline"))->lock;
		pipeline_shared->workers =
			(PipelineWorkerSlot *) &pipeline_shared->databases[pipeline_max_databases];
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * pipeline_shared_state_init
 *		Defines the postmaster settings and installs the shared memory hooks;
 *		called from _PG_init while shared_preload_libraries are loaded.
 */
void
pipeline_shared_state_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shared;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shared;
}

/*
 * pipeline_database_slot
 *		The slot of a database, created when 'create' (NULL when full or,
 *		without create, unknown).  The caller holds the lock exclusively
 *		when creating.
 */
PipelineDatabaseSlot *
pipeline_database_slot(Oid dboid, bool create)
{
	PipelineDatabaseSlot *free_slot = NULL;

	for (int i = 0; i < pipeline_max_databases; i++)
	{
		PipelineDatabaseSlot *slot = &pipeline_shared->databases[i];

		if (slot->dboid == dboid)
			return slot;
		if (slot->dboid == InvalidOid && free_slot == NULL)
			free_slot = slot;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->dboid = dboid;
	return free_slot;
}

/*
 * pipeline_worker_slot_of
 *		The run worker slot running a pipeline (or a step, when 'step') of
 *		a database, or NULL.  The caller holds the lock.
 */
PipelineWorkerSlot *
pipeline_worker_slot_of(Oid dboid, int64 id, bool step)
{
	for (int i = 0; i < pipeline_max_workers; i++)
	{
		PipelineWorkerSlot *slot = &pipeline_shared->workers[i];

		if (slot->in_use && slot->dboid == dboid && slot->pipeline_id == id && slot->step == step)
			return slot;
	}
	return NULL;
}

/*
 * set_continuous_latches
 *		Sets the latches of the continuous workers of a database (of every
 *		database with InvalidOid).  The caller holds the lock.
 */
static void
set_continuous_latches(Oid dboid)
{
	for (int i = 0; i < pipeline_max_workers; i++)
	{
		PipelineWorkerSlot *slot = &pipeline_shared->workers[i];

		if (slot->in_use && slot->continuous && slot->latch != NULL &&
			(dboid == InvalidOid || slot->dboid == dboid))
			SetLatch(slot->latch);
	}
}

/*
 * wake_continuous_pipelines
 *		Rows were staged in this database: sets the latches of its
 *		continuous workers, tells its scheduler into which sources, and
 *		wakes it when a continuous pipeline there has no worker.
 */
static void
wake_continuous_pipelines(void)
{
	PipelineDatabaseSlot *db;

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	set_continuous_latches(MyDatabaseId);
	db = pipeline_database_slot(MyDatabaseId, false);
	if (db != NULL)
	{
		pipeline_publish_staged_sources(&db->staged);
		if (db->unplaced_continuous > 0 && db->scheduler_latch != NULL)
			SetLatch(db->scheduler_latch);
	}
	LWLockRelease(pipeline_shared->lock);
}

/*
 * wake_on_commit
 *		Transaction callback: after a commit that staged rows, sets the
 *		latches of this database's continuous run workers (the scheduler
 *		starts a missing one at its next pass).  PREPARE TRANSACTION only
 *		forgets: COMMIT PREPARED runs elsewhere, and the workers find its
 *		rows within pipeline.continuous_naptime.
 */
static void
wake_on_commit(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (event == XACT_EVENT_COMMIT && staged_rows_in_xact && pipeline_shared != NULL)
		wake_continuous_pipelines();
	if (event == XACT_EVENT_COMMIT && created_extension_in_xact)
		pipeline_wake_launcher();
	if (event == XACT_EVENT_COMMIT && schedules_changed_in_xact && pipeline_shared != NULL)
	{
		PipelineDatabaseSlot *db;

		LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
		db = pipeline_database_slot(MyDatabaseId, false);
		if (db != NULL)
			db->staged.all = true;	/* a pipeline is new, resumed, or reads
									 * anew */
		if (db != NULL && db->scheduler_latch != NULL)
			SetLatch(db->scheduler_latch);
		LWLockRelease(pipeline_shared->lock);
	}
	pipeline_forget_staged_sources();
	staged_rows_in_xact = false;
	created_extension_in_xact = false;
	schedules_changed_in_xact = false;
}

/*
 * register_wake_callback
 *		Installs wake_on_commit once per backend.
 */
static void
register_wake_callback(void)
{
	if (!wake_callback_registered)
	{
		RegisterXactCallback(wake_on_commit, NULL);
		wake_callback_registered = true;
	}
}

/*
 * pipeline_note_staged_rows
 *		Called for every staged row (from pipeline.current_xid()): makes the
 *		commit of this transaction wake the continuous pipelines.
 */
void
pipeline_note_staged_rows(void)
{
	if (pipeline_shared == NULL)
		return;
	pipeline_note_staged_row();
	if (staged_rows_in_xact)
		return;
	register_wake_callback();
	staged_rows_in_xact = true;
}

/*
 * pipeline_staged_rows_mark
 *		What this transaction noted of staged rows so far: a test keeps it
 *		and puts it back once its subtransaction is rolled back, so that
 *		the rows it wrote there wake nobody at commit.
 */
void
pipeline_staged_rows_mark(PipelineStagedNote *note)
{
	note->staged_rows = staged_rows_in_xact;
	pipeline_staged_sources_mark(note);
}

/*
 * pipeline_staged_rows_rewind
 *		Back to what 'note' kept.
 */
void
pipeline_staged_rows_rewind(const PipelineStagedNote *note)
{
	staged_rows_in_xact = note->staged_rows;
	pipeline_staged_sources_rewind(note);
}

/*
 * pipeline_schedules_changed
 *		A pipeline was defined, altered, paused or resumed: when this
 *		transaction commits, the database's scheduler looks again at once.
 */
void
pipeline_schedules_changed(void)
{
	if (pipeline_shared == NULL)
		return;
	register_wake_callback();
	schedules_changed_in_xact = true;
}

/*
 * pipeline_want_scheduler
 *		CREATE EXTENSION pipeline ran in this database: when it commits, the
 *		launcher starts a scheduler here at once.
 */
void
pipeline_want_scheduler(void)
{
	PipelineDatabaseSlot *db;

	if (pipeline_shared == NULL)
		return;
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	db = pipeline_database_slot(MyDatabaseId, true);
	if (db != NULL)
		db->recheck = true;
	LWLockRelease(pipeline_shared->lock);
	register_wake_callback();
	created_extension_in_xact = true;
}

/*
 * pipeline_wake_launcher
 *		Sets the launcher's latch (a database gained the extension, or a
 *		database's workers must be reconsidered).
 */
void
pipeline_wake_launcher(void)
{
	if (pipeline_shared == NULL)
		return;
	LWLockAcquire(pipeline_shared->lock, LW_SHARED);
	if (pipeline_shared->launcher_latch != NULL)
		SetLatch(pipeline_shared->launcher_latch);
	LWLockRelease(pipeline_shared->lock);
}

/*
 * pipeline_stop_database_workers
 *		Asks the scheduler, shipper and run workers of a database to stop, keeps the
 *		launcher from starting them again for a while, and waits (up to ten
 *		seconds) until they are gone.  For statements that need the
 *		database to themselves.
 */
void
pipeline_stop_database_workers(Oid dboid)
{
	PipelineDatabaseSlot *db;

	if (pipeline_shared == NULL)
		return;
	for (int tries = 0; tries < 1000; tries++)
	{
		bool		busy = false;

		LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
		db = pipeline_database_slot(dboid, false);
		if (db != NULL)
		{
			db->blocked_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
			if (db->scheduler_pid != 0)
			{
				kill(db->scheduler_pid, SIGTERM);
				busy = true;
			}
			if (db->shipper_pid != 0)
			{
				kill(db->shipper_pid, SIGTERM);
				busy = true;
			}
		}
		for (int i = 0; i < pipeline_max_workers; i++)
		{
			PipelineWorkerSlot *slot = &pipeline_shared->workers[i];

			if (slot->in_use && slot->dboid == dboid && slot->pid != 0)
			{
				kill(slot->pid, SIGTERM);
				busy = true;
			}
		}
		LWLockRelease(pipeline_shared->lock);
		if (!busy)
			return;
		pg_usleep(10000);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * pipeline_start_worker
 *		Registers a dynamic background worker of this library, started
 *		after recovery, never restarted, reporting its start and stop to
 *		this process.  The handle is allocated in TopMemoryContext: callers
 *		keep it across transactions.  False when no worker slot is free.
 */
bool
pipeline_start_worker(const char *function, const char *type, const char *name, Datum arg,
					  BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker = {0};
	MemoryContext old;
	bool		registered;

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strcpy(worker.bgw_library_name, "pipeline");
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, type, BGW_MAXLEN);
	worker.bgw_main_arg = arg;
	worker.bgw_notify_pid = MyProcPid;
	old = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, handle);
	MemoryContextSwitchTo(old);
	return registered;
}

/*
 * take_handoff
 *		Moves the slot to the first pipeline its database's scheduler lists
 *		as waiting that no worker runs yet; false when there is none.  The
 *		caller holds the lock exclusively.
 */
static bool
take_handoff(PipelineWorkerSlot *slot, PipelineDatabaseSlot *db)
{
	while (db->handoffs > 0)
	{
		PipelineHandoff next = db->handoff[0];

		db->handoffs--;
		memmove(&db->handoff[0], &db->handoff[1], db->handoffs * sizeof(PipelineHandoff));
		if (pipeline_worker_slot_of(db->dboid, next.pipeline_id, next.step) != NULL)
			continue;			/* the scheduler started one meanwhile */
		db->waiting = Max(db->waiting - 1, 0);
		slot->pipeline_id = next.pipeline_id;
		slot->step = next.step;
		slot->owner = next.owner;
		slot->continuous = next.continuous;
		slot->retrying = next.retrying;
		return true;
	}
	return false;
}

/*
 * pipeline_hand_over
 *		A run worker is between runs: when a pipeline of its own database
 *		waits for a worker, the worker takes it over (HANDOFF_TAKEN: the
 *		slot now names it, and the scheduler is woken to place the pipeline
 *		left behind when it has rows); when only one of another database
 *		waits, the worker should stop and free its slot (HANDOFF_YIELD);
 *		else HANDOFF_NONE.  A waiting pipeline is counted as served, so
 *		that no more workers move than pipelines wait.
 */
PipelineHandoffResult
pipeline_hand_over(PipelineWorkerSlot *slot)
{
	PipelineHandoffResult result = HANDOFF_NONE;
	PipelineDatabaseSlot *own;

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	own = pipeline_database_slot(slot->dboid, false);
	if (own != NULL && take_handoff(slot, own))
	{
		result = HANDOFF_TAKEN;
		if (own->scheduler_latch != NULL)
			SetLatch(own->scheduler_latch);
	}
	for (int i = 0; i < pipeline_max_databases && result == HANDOFF_NONE; i++)
	{
		PipelineDatabaseSlot *db = &pipeline_shared->databases[i];

		if (db->dboid != InvalidOid && db->dboid != slot->dboid && db->waiting > 0)
		{
			db->waiting--;
			result = HANDOFF_YIELD;
		}
	}
	LWLockRelease(pipeline_shared->lock);
	return result;
}

/*
 * pipeline_wake_waiting_schedulers
 *		A worker was given back: wakes the schedulers that have pipelines
 *		waiting for one, in every database (the workers are shared by the
 *		cluster).  The caller holds pipeline_shared->lock.
 */
void
pipeline_wake_waiting_schedulers(void)
{
	for (int i = 0; i < pipeline_max_databases; i++)
	{
		PipelineDatabaseSlot *db = &pipeline_shared->databases[i];

		if (db->dboid != InvalidOid && db->waiting > 0 && db->scheduler_latch != NULL)
			SetLatch(db->scheduler_latch);
	}
}

/*
 * pipeline_wake_continuous_workers
 *		Pipelines wait for a worker: wakes every continuous worker, so that
 *		an idle one hands its worker over now rather than at its next
 *		naptime.  A busy one does after its run.
 */
void
pipeline_wake_continuous_workers(void)
{
	LWLockAcquire(pipeline_shared->lock, LW_SHARED);
	set_continuous_latches(InvalidOid);
	LWLockRelease(pipeline_shared->lock);
}
