/*-------------------------------------------------------------------------
 *
 * shipper.c
 *	  The shipper of a database: a background worker that ships the
 *	  OpenLineage outbox to the database's transport and delivers alerts to
 *	  their routes' webhooks, and the scheduler's part in keeping it
 *	  running.
 *
 * The scheduler starts the shipper while its database has a transport
 * (pipeline.set_openlineage_transport) or an alert route
 * (pipeline.add_alert_route) enabled, and again when it stopped; the
 * shipper stops when neither is, or the extension is dropped.  Nothing a
 * run does waits for it: runs only add rows to the outbox and to the
 * deliveries, and the shipper holds no transaction while it posts.
 *
 * A pass takes the oldest unacknowledged events (a batch, in outbox
 * order, which is each run's order), in one short transaction; posts them
 * one after another over one connection, outside any transaction, up to
 * the first failure; then records, in a second transaction, which were
 * shipped and which refused (openlineage_transport.c).  An event is
 * acknowledged only after its receiver answered 2xx, so a crash between
 * the two transactions ships it again: at least once, never lost.  Then
 * the same for each alert route whose backoff has passed, route by route
 * (alert_routes.c): one route's failure holds back that route alone.
 * After a failure the transport, or the route, waits its backoff
 * (next_attempt_at, looked at every SHIPPER_NAPTIME_MS, so that a new
 * setting, a dropped transport or extension is seen within a second);
 * with a full batch shipped the shipper goes on at once; otherwise it
 * looks again after SHIPPER_NAPTIME_MS, or when its latch is set (SIGHUP,
 * shutdown).
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
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "shared_memory/shared_memory.h"
#include "shipping/shipping.h"
#include "workers/workers.h"

PGDLLEXPORT void pipeline_shipper_main(Datum arg);

/* How often an idle shipper looks for new events and alerts. */
#define SHIPPER_NAPTIME_MS 1000
/* The most deliveries of one route a pass posts. */
#define ALERT_BATCH 100
/* How long a pass posts lineage events at most, so that alerts wait no longer. */
#define PASS_BUDGET_MS 1000

/* The scheduler's handle of its database's shipper (NULL: none started). */
static BackgroundWorkerHandle *shipper_handle = NULL;

static PipelineDatabaseSlot *my_slot = NULL;

/*
 * pipeline_keep_shipper
 *		Called by the scheduler in each pass, connected to SPI as the
 *		extension: starts the database's shipper when a transport or an
 *		alert route is enabled and none runs.
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
	if (!pipeline_shipping_wanted())
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
	{
		my_slot->shipper_pid = 0;
		/* a transport set while this one decided to stop gets a new shipper */
		if (my_slot->scheduler_latch)
			SetLatch(my_slot->scheduler_latch);
	}
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
	/* not while a DROP or ALTER DATABASE wants the database alone */
	if (my_slot != NULL && my_slot->shipper_pid == 0 &&
		my_slot->blocked_until <= GetCurrentTimestamp())
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
	if (!pipeline_lock_extension() || !pipeline_check_version(DEBUG1))
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
 * ship_openlineage
 *		Ships one batch of the OpenLineage outbox; returns how long to wait
 *		before the next (ms), -1 when there is no transport to ship to, or
 *		-2 when the extension is gone.  Allocates in 'batch'.
 */
static long
ship_openlineage(MemoryContext batch)
{
	PipelineUserContext ctx;
	OpenLineageTransport transport;
	List	   *events;
	List	   *shipped = NIL;
	List	   *rejected = NIL;
	HttpResult *failure;
	static HttpResult unbuilt_failure;
	char	   *unbuilt = NULL;
	TimestampTz now = GetCurrentTimestamp();

	if (!begin_catalog_work(&ctx))
		return -2;
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
	events = pipeline_take_outbox_events(transport.batch_size, batch, &unbuilt);
	end_catalog_work(&ctx);
	MemoryContextSwitchTo(batch);
	if (events == NIL && unbuilt == NULL)
		return SHIPPER_NAPTIME_MS;

	pgstat_report_activity(STATE_RUNNING, "shipping OpenLineage events");

	/*
	 * the budget counts from the first post: building the batch is not
	 * posting it
	 */
	failure = pipeline_post_in_order(transport.url, transport.api_key, transport.timeout_ms, events,
									 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PASS_BUDGET_MS),
									 &shipped, &rejected);

	/*
	 * an event that could not be built now is a failure to retry, as one not
	 * taken
	 */
	if (failure == NULL && unbuilt != NULL &&
		list_length(shipped) + list_length(rejected) == list_length(events))
	{
		unbuilt_failure.outcome = HTTP_RETRY;
		strlcpy(unbuilt_failure.error, unbuilt, sizeof(unbuilt_failure.error));
		failure = &unbuilt_failure;
	}
	if (!begin_catalog_work(&ctx))
		return -2;
	pipeline_record_shipping(shipped, rejected, failure, &transport);
	end_catalog_work(&ctx);
	MemoryContextSwitchTo(batch);
	if (failure != NULL)
		return pipeline_backoff_ms(transport.retry_base_ms, transport.retry_max_ms, transport.failures + 1);
	/* a full batch, or one cut short by the pass's budget: more waits */
	if (list_length(events) == transport.batch_size ||
		list_length(shipped) + list_length(rejected) < list_length(events))
		return 0;
	return SHIPPER_NAPTIME_MS;
}

/*
 * deliver_alerts
 *		Delivers the due routes' oldest pending alerts, route by route;
 *		returns how long to wait before the next pass (ms: 0 when a route
 *		had a full batch), -1 when no route is enabled, -2 when the
 *		extension is gone.  A route that fails waits its own backoff
 *		(next_attempt_at), which the next pass respects.
 */
static long
deliver_alerts(MemoryContext batch)
{
	PipelineUserContext ctx;
	List	   *routes;
	bool		wanted;
	bool		more = false;
	ListCell   *lc;

	if (!begin_catalog_work(&ctx))
		return -2;
	wanted = pipeline_alert_routes_wanted();
	routes = wanted ? pipeline_take_due_deliveries(ALERT_BATCH, batch) : NIL;
	end_catalog_work(&ctx);
	MemoryContextSwitchTo(batch);
	if (!wanted)
		return -1;

	foreach(lc, routes)
	{
		AlertRoute *route = lfirst(lc);
		List	   *delivered = NIL;
		List	   *rejected = NIL;
		HttpResult *failure;

		pgstat_report_activity(STATE_RUNNING, "delivering alerts");
		failure = pipeline_post_in_order(route->url, NULL, route->timeout_ms, route->deliveries, 0,
										 &delivered, &rejected);
		if (!begin_catalog_work(&ctx))
			return -2;
		pipeline_record_deliveries(route, delivered, rejected, failure);
		end_catalog_work(&ctx);
		MemoryContextSwitchTo(batch);
		more |= failure == NULL && list_length(route->deliveries) == ALERT_BATCH;
	}
	return more ? 0 : SHIPPER_NAPTIME_MS;
}

/*
 * ship_pass
 *		One pass of both jobs, alerts first (a page must not wait for a
 *		batch of lineage); returns how long to wait before the next
 *		(ms), or -1 when the shipper should stop: the extension is gone, or
 *		neither a transport nor an alert route is enabled.
 */
static long
ship_pass(MemoryContext batch)
{
	long		alerts = deliver_alerts(batch);
	long		lineage;

	if (alerts == -2)
		return -1;
	MemoryContextReset(batch);
	lineage = ship_openlineage(batch);
	if (lineage == -2 || (lineage == -1 && alerts == -1))
		return -1;
	if (lineage < 0)
		return alerts;
	if (alerts < 0)
		return lineage;
	return Min(lineage, alerts);
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
		wait_ms = ship_pass(batch);
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
