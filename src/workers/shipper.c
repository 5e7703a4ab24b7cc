/*-------------------------------------------------------------------------
 *
 * shipper.c
 *	  The shipper of a database: a background worker that ships the
 *	  OpenLineage outbox to the database's transport, and the scheduler's
 *	  part in keeping it running.
 *
 * The scheduler starts the shipper while its database has a transport
 * enabled (pipeline.set_openlineage_transport), and again when it stopped;
 * the shipper stops when the transport is dropped or disabled, or the
 * extension is.  Nothing a run does waits for it: runs only add rows to
 * the outbox, and the shipper holds no transaction while it posts.
 *
 * A pass takes the oldest unacknowledged events (a batch, in outbox
 * order, which is each run's order), in one short transaction; posts them
 * one after another over one connection, outside any transaction, up to
 * the first failure; then records, in a second transaction, which were
 * shipped and which refused (openlineage_transport.c).  An event is
 * acknowledged only after its receiver answered 2xx, so a crash between
 * the two transactions ships it again: at least once, never lost.  After
 * a failure the shipper waits the transport's backoff (next_attempt_at,
 * looked at every SHIPPER_NAPTIME_MS, so that a new setting, a dropped
 * transport or extension is seen within a second); with a full batch
 * shipped it goes on at once; otherwise it looks again after
 * SHIPPER_NAPTIME_MS, or when its latch is set (SIGHUP, shutdown).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "shared_memory/shared_memory.h"
#include "shipping/shipping.h"
#include "workers/workers.h"

PGDLLEXPORT void pipeline_shipper_main(Datum arg);

/* How often an idle shipper looks for new events. */
#define SHIPPER_NAPTIME_MS 1000

/* The scheduler's handle of its database's shipper (NULL: none started). */
static BackgroundWorkerHandle *shipper_handle = NULL;

static PipelineDatabaseSlot *my_slot = NULL;

/*
 * pipeline_keep_shipper
 *		Called by the scheduler in each pass, connected to SPI as the
 *		extension: starts the database's shipper when a transport is
 *		enabled and none runs.
 */
void
pipeline_keep_shipper(void)
{
	pid_t		pid;
	PipelineDatabaseSlot *slot;
	bool		running;

	if (shipper_handle != NULL &&
		GetBackgroundWorkerPid(shipper_handle, &pid) != BGWH_STOPPED)
		return;
	/* one started by the scheduler before this one */
	LWLockAcquire(pipeline_shared->lock, LW_SHARED);
	slot = pipeline_database_slot(MyDatabaseId, false);
	running = slot != NULL && slot->shipper_pid != 0;
	LWLockRelease(pipeline_shared->lock);
	if (running)
		return;
	if (!pipeline_openlineage_transport_wanted())
		return;
	if (shipper_handle != NULL)
		pfree(shipper_handle);
	shipper_handle = NULL;
	if (!pipeline_start_worker("pipeline_shipper_main", "pipeline shipper",
							   psprintf("pipeline shipper for database %u", MyDatabaseId),
							   ObjectIdGetDatum(MyDatabaseId), &shipper_handle))
		ereport(LOG,
				(errmsg("pipeline scheduler: no background worker slot for the shipper of database %u",
						MyDatabaseId),
				 errhint("Raise max_worker_processes.")));
}

/*
 * release_shipper_slot
 *		on_shmem_exit: the database has no shipper any more.
 */
static void
release_shipper_slot(int code, Datum arg)
{
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	if (my_slot != NULL && my_slot->shipper_pid == MyProcPid)
		my_slot->shipper_pid = 0;
	LWLockRelease(pipeline_shared->lock);
}

/*
 * take_shipper_slot
 *		Registers this process as its database's shipper; false when
 *		another one already is.
 */
static bool
take_shipper_slot(void)
{
	bool		mine = false;

	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	my_slot = pipeline_database_slot(MyDatabaseId, false);
	if (my_slot != NULL && my_slot->shipper_pid == 0)
	{
		my_slot->shipper_pid = MyProcPid;
		mine = true;
	}
	LWLockRelease(pipeline_shared->lock);
	return mine;
}

/*
 * begin_catalog_work, end_catalog_work
 *		A transaction connected to SPI, as the extension; false (and no
 *		transaction) when the extension is gone or of another version.
 */
static bool
begin_catalog_work(PipelineUserContext *ctx)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!OidIsValid(get_extension_oid("pipeline", true)) || !pipeline_check_version(DEBUG1))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return false;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_become_internal(ctx);
	return true;
}

static void
end_catalog_work(PipelineUserContext *ctx)
{
	pipeline_restore_user(ctx);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/*
 * post_events
 *		Posts the events in order, up to the first failure (returned, or
 *		NULL); those the receiver took go to *shipped, those it refused or
 *		that could not be built to *rejected, with their error.
 */
static HttpResult *
post_events(const OpenLineageTransport *transport, List *events, List **shipped, List **rejected)
{
	static HttpResult result;
	ListCell   *lc;

	foreach(lc, events)
	{
		OutboxEvent *event = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (event->body == NULL)
		{
			*rejected = lappend(*rejected, event);
			continue;
		}
		pipeline_http_post(transport->url, transport->api_key, event->body,
						   transport->timeout_ms, &result);
		if (result.outcome == HTTP_RETRY)
			return &result;
		if (result.outcome == HTTP_REFUSED)
		{
			event->error = pstrdup(result.error);
			*rejected = lappend(*rejected, event);
		}
		else
			*shipped = lappend(*shipped, event);
	}
	return NULL;
}

/*
 * ship_batch
 *		One pass; returns how long to wait before the next (ms), or -1 when
 *		the shipper should stop.  What it allocates lives in 'batch'.
 */
static long
ship_batch(MemoryContext batch)
{
	PipelineUserContext ctx;
	OpenLineageTransport transport;
	List	   *events = NIL;
	List	   *shipped = NIL;
	List	   *rejected = NIL;
	HttpResult *failure;
	TimestampTz now = GetCurrentTimestamp();

	if (!begin_catalog_work(&ctx))
		return -1;
	if (!pipeline_read_openlineage_transport(&transport) || !transport.enabled)
	{
		end_catalog_work(&ctx);
		return -1;
	}
	transport.url = MemoryContextStrdup(batch, transport.url);
	if (transport.api_key)
		transport.api_key = MemoryContextStrdup(batch, transport.api_key);
	if (transport.next_attempt_at > now)
	{
		end_catalog_work(&ctx);
		return Max(1, (long) ((transport.next_attempt_at - now) / 1000));
	}
	events = pipeline_take_outbox_events(transport.batch_size, batch);
	end_catalog_work(&ctx);
	MemoryContextSwitchTo(batch);
	if (events == NIL)
		return SHIPPER_NAPTIME_MS;

	pgstat_report_activity(STATE_RUNNING, "shipping OpenLineage events");
	failure = post_events(&transport, events, &shipped, &rejected);
	if (!begin_catalog_work(&ctx))
		return -1;
	pipeline_record_shipping(shipped, rejected, failure, &transport);
	end_catalog_work(&ctx);
	if (failure != NULL)
		return pipeline_shipping_backoff_ms(&transport, transport.failures + 1);
	return list_length(events) < transport.batch_size ? SHIPPER_NAPTIME_MS : 0;
}

/*
 * pipeline_shipper_main
 *		The shipper of the database given as the argument.
 */
void
pipeline_shipper_main(Datum arg)
{
	MemoryContext batch;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("pipeline shipper");
	if (!take_shipper_slot())
		proc_exit(0);
	before_shmem_exit(release_shipper_slot, (Datum) 0);

	batch = AllocSetContextCreate(TopMemoryContext, "pipeline shipper batch", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(batch);
		MemoryContextSwitchTo(batch);
		wait_ms = ship_batch(batch);
		MemoryContextSwitchTo(TopMemoryContext);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (wait_ms < 0)
			break;
		/* a backoff is waited a second at a time: a change is seen soon */
		if (wait_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(wait_ms, SHIPPER_NAPTIME_MS), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
	pipeline_http_close();
	proc_exit(0);
}
