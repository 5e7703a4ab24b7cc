/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: one background worker that keeps a scheduler running
 *	  in every database where the extension is installed.
 *
 * The launcher reads pg_database (it is connected to no database, which
 * is enough for shared catalogs) every pipeline.launcher_naptime, or as
 * soon as its latch is set: by CREATE EXTENSION pipeline (at commit), by a
 * scheduler that stopped, by the utility hook before DROP DATABASE.  It
 * starts a scheduler for each database that allows connections, is not a
 * template, and has none running.  A scheduler that finds no extension in its database says
 * so in its slot and stops; that database is tried again only when the
 * extension is created there or after ten launcher naps.
 *
 * Registered only from shared_preload_libraries, never in binary upgrade
 * mode (pg_upgrade), and started after recovery: a standby runs no
 * pipelines.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "workers/workers.h"

PGDLLEXPORT void pipeline_launcher_main(Datum arg);

/* Naps after which a database without the extension is looked at again. */
#define RECHECK_NAPS 10

/* The launcher's handles of the schedulers it started, by database slot. */
static BackgroundWorkerHandle **scheduler_handles = NULL;

/*
 * pipeline_launcher_register
 *		Defines the launcher's settings and registers it; called from
 *		_PG_init while shared_preload_libraries are loaded.
 */
void
pipeline_launcher_register(void)
{
	BackgroundWorker worker = {0};

	if (IsBinaryUpgrade)
		return;
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strcpy(worker.bgw_library_name, "pipeline");
	strcpy(worker.bgw_function_name, "pipeline_launcher_main");
	strcpy(worker.bgw_name, "pipeline launcher");
	strcpy(worker.bgw_type, "pipeline launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * connectable_databases
 *		The oids of the databases that allow connections (template0 does
 *		not), read from pg_database.
 */
static List *
connectable_databases(void)
{
	List	   *oids = NIL;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		MemoryContext old;

		/* template databases run no pipelines: CREATE DATABASE copies them */
		if (!db->datallowconn || db->datistemplate ||
			db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
		old = MemoryContextSwitchTo(caller);
		oids = lappend_oid(oids, db->oid);
		MemoryContextSwitchTo(old);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return oids;
}

/*
 * start_scheduler
 *		Registers the scheduler of a database; false when no background
 *		worker slot is free.
 */
static bool
start_scheduler(Oid dboid, BackgroundWorkerHandle **handle)
{
	return pipeline_start_worker("pipeline_scheduler_main", "pipeline scheduler",
								 psprintf("pipeline scheduler for database %u", dboid),
								 ObjectIdGetDatum(dboid), handle);
}

/*
 * forget_failed_starts
 *		A scheduler that stopped before it took its slot (its database went
 *		away, a connection failed) leaves it "starting": free it.
 */
static void
forget_failed_starts(void)
{
	for (int i = 0; i < pipeline_max_databases; i++)
	{
		pid_t		pid;

		if (scheduler_handles[i] == NULL ||
			GetBackgroundWorkerPid(scheduler_handles[i], &pid) != BGWH_STOPPED)
			continue;
		pfree(scheduler_handles[i]);
		scheduler_handles[i] = NULL;
		LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
		pipeline_shared->databases[i].starting = false;
		LWLockRelease(pipeline_shared->lock);
	}
}

/*
 * start_schedulers
 *		Starts a scheduler for every connectable database that needs one.
 */
static void
start_schedulers(int nap)
{
	List	   *databases = connectable_databases();
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	foreach(lc, databases)
	{
		Oid			dboid = lfirst_oid(lc);
		PipelineDatabaseSlot *slot;
		bool		start = false;
		int			i;

		LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
		slot = pipeline_database_slot(dboid, true);
		if (slot != NULL && slot->scheduler_pid == 0 && !slot->starting &&
			slot->blocked_until <= now &&
			(!slot->no_extension || slot->recheck || nap % RECHECK_NAPS == 0))
		{
			slot->starting = true;
			slot->recheck = false;
			slot->no_extension = false;
			start = true;
		}
		LWLockRelease(pipeline_shared->lock);
		if (!start)
			continue;
		i = slot - pipeline_shared->databases;
		if (scheduler_handles[i] != NULL)
			pfree(scheduler_handles[i]);
		scheduler_handles[i] = NULL;
		if (!start_scheduler(dboid, &scheduler_handles[i]))
		{
			LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
			slot->starting = false;
			LWLockRelease(pipeline_shared->lock);
			ereport(LOG,
					(errmsg("pipeline launcher: no background worker slot for the scheduler of database %u",
							dboid),
					 errhint("Raise max_worker_processes.")));
		}
	}
	/* forget databases that are gone */
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < pipeline_max_databases; i++)
	{
		PipelineDatabaseSlot *slot = &pipeline_shared->databases[i];

		if (slot->dboid != InvalidOid && slot->scheduler_pid == 0 && slot->shipper_pid == 0 &&
			!slot->starting &&
			!list_member_oid(databases, slot->dboid))
			slot->dboid = InvalidOid;
	}
	LWLockRelease(pipeline_shared->lock);
}

/*
 * pipeline_launcher_main
 *		The launcher's main loop.
 */
void
pipeline_launcher_main(Datum arg)
{
	int			nap = 0;
	MemoryContext pass;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pipeline launcher");
	scheduler_handles = MemoryContextAllocZero(TopMemoryContext,
											   sizeof(BackgroundWorkerHandle *) * pipeline_max_databases);

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	pipeline_shared->launcher_latch = MyLatch;
	for (int i = 0; i < pipeline_max_databases; i++)
		pipeline_shared->databases[i].starting = false;
	LWLockRelease(pipeline_shared->lock);

	/* what one pass allocates (the database list, worker names) */
	pass = AllocSetContextCreate(TopMemoryContext, "pipeline launcher pass",
								 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		pgstat_report_activity(STATE_RUNNING, "looking for databases with pipelines");
		MemoryContextReset(pass);
		MemoryContextSwitchTo(pass);
		forget_failed_starts();
		start_schedulers(nap++);
		MemoryContextSwitchTo(TopMemoryContext);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pipeline_launcher_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
