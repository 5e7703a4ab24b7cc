/*-------------------------------------------------------------------------
 *
 * freshness_jobs.c
 *	  Scheduled freshness checks as pg_cron jobs.
 *
 * Each scheduled check is the pg_cron job pipeline_freshness_<db>_<id>,
 * running SELECT pipeline.check_freshness(<id>) in the check's database as
 * the check's owner, and written through pg_cron's own API as that role
 * (cron.schedule, or cron.schedule_in_database after SET LOCAL ROLE), so
 * that pg_cron's rules for it apply; only the deletion of a job whose check
 * is gone runs as the extension.  pg_cron keeps its jobs in the one database named by
 * cron.database_name.  When that is this database, jobs are written in the
 * caller's transaction.  Otherwise a short-lived background worker connects
 * to the cron database and writes them just before the caller's
 * transaction commits (an error there aborts the commit); the jobs then
 * follow the checks as committed, except in the rare case where the
 * commit itself fails afterwards, which the next change of the check
 * repairs.
 *
 * The job always matches the check as it is now (sync, not add/remove): a
 * row trigger on freshness_checks syncs it after every change of the row,
 * so add, alter, drop, a dropped relation and pg_restore all keep it.  DROP EXTENSION deletes every job of the database
 * (pipeline_cron_drop_all_jobs, from the utility hook).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"
#include "freshness/freshness.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"

PGDLLEXPORT void pipeline_cron_call_main(Datum arg);


PG_FUNCTION_INFO_V1(pipeline_sync_freshness_job);

/* A statement for the worker to run in the cron database, and its outcome. */
typedef struct CronCall
{
	char		database[NAMEDATALEN];
	bool		done;
	char		error[1024];
	char		sql[FLEXIBLE_ARRAY_MEMBER];
} CronCall;

/* Checks whose job must be synced in the cron database at commit. */
static List *pending_syncs = NIL;

/* The extension was dropped: delete every job of this database at commit. */
static bool pending_drop_all = false;
static bool callback_registered = false;

/*
 * pipeline_cron_normalize_schedule
 *		NULL for no schedule ('manual' or NULL), the trimmed text otherwise.
 */
char *
pipeline_cron_normalize_schedule(char *schedule)
{
	if (schedule == NULL)
		return NULL;
	while (*schedule == ' ')
		schedule++;
	if (strcmp(schedule, "manual") == 0)
		return NULL;
	return schedule;
}

/*
 * pipeline_cron_validate_schedule
 *		Errors unless 'schedule' is what pg_cron accepts: five cron fields,
 *		an @keyword, or '<1-59> seconds'.
 */
void
pipeline_cron_validate_schedule(const char *schedule)
{
	int			fields = 0;
	bool		in_field = false;
	int			seconds;
	char		unit[16];

	if (schedule == NULL)
		return;
	if (sscanf(schedule, "%d %15s", &seconds, unit) == 2 &&
		(strcmp(unit, "seconds") == 0 || strcmp(unit, "second") == 0) &&
		seconds >= 1 && seconds <= 59)
		return;
	if (schedule[0] == '@')
	{
		if (strcmp(schedule, "@yearly") == 0 || strcmp(schedule, "@annually") == 0 ||
			strcmp(schedule, "@monthly") == 0 || strcmp(schedule, "@weekly") == 0 ||
			strcmp(schedule, "@daily") == 0 || strcmp(schedule, "@hourly") == 0)
			return;
		fields = -1;
	}
	for (const char *c = schedule; fields >= 0 && *c; c++)
	{
		if (*c == ' ' || *c == '\t')
			in_field = false;
		else if (strchr("0123456789*,/-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", *c))
		{
			fields += in_field ? 0 : 1;
			in_field = true;
		}
		else
			fields = -1;
	}
	if (fields != 5)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule \"%s\"", schedule),
				 errdetail("A schedule is cron text (five fields), an @keyword such as @hourly, or '<1-59> seconds'."),
				 errhint("For example '*/5 * * * *' for every five minutes, or 'manual' for none.")));
}

/*
 * shortest_gap
 *		The shortest time in seconds between two runs of a pg_cron schedule:
 *		'<n> seconds', or the closest two minutes of cron text (around the
 *		hour too), 60 for a single minute at most every hour.
 */
static int
shortest_gap(const char *schedule)
{
	PipelineSchedule s;
	int			first = -1,
				last = -1,
				gap = 60;

	pipeline_schedule_parse(schedule, &s);
	if (s.kind == SCHEDULE_INTERVAL)
		return (int) Min(s.interval / USECS_PER_SEC, INT_MAX);
	for (int m = 0; m < 60; m++)
	{
		if (!(s.minutes & (UINT64CONST(1) << m)))
			continue;
		if (last >= 0)
			gap = Min(gap, m - last);
		else
			first = m;
		last = m;
	}
	if (first >= 0 && last > first)
		gap = Min(gap, 60 - last + first);
	return gap * 60;
}

/*
 * may_schedule
 *		Whether pg_cron, installed in this database, lets 'role' schedule
 *		jobs: cron.schedule needs USAGE on schema cron.  True when pg_cron is
 *		not here (in another database, pg_cron itself judges the role:
 *		job_sql).
 */
static bool
may_schedule(Oid role)
{
	Oid			cron = get_namespace_oid("cron", true);

	return !OidIsValid(cron) || !OidIsValid(get_extension_oid("pg_cron", true)) ||
		pipeline_namespace_aclcheck(cron, role, ACL_USAGE) == ACLCHECK_OK;
}

/*
 * pipeline_cron_refuse_schedule
 *		Errors when 'role' may not give a freshness check the pg_cron
 *		schedule 'schedule' (NULL: none): pg_cron lets a role schedule jobs
 *		with USAGE on its schema cron (checked when pg_cron is installed in
 *		this database), and no job may run more often than
 *		pipeline.min_schedule_interval.
 */
void
pipeline_cron_refuse_schedule(Oid role, const char *schedule)
{
	int			gap;

	if (schedule == NULL)
		return;
	if (!may_schedule(role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role %s may not schedule pg_cron jobs", GetUserNameFromId(role, false)),
				 errdetail("A scheduled freshness check is a pg_cron job run as its owner, and pg_cron lets a role schedule jobs only with USAGE on schema cron."),
				 errhint("Have an administrator GRANT USAGE ON SCHEMA cron TO %s, or add the check without a schedule and call pipeline.check_freshness yourself.",
						 quote_identifier(GetUserNameFromId(role, false)))));
	gap = shortest_gap(schedule);
	if (gap < pipeline_min_schedule_interval)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("schedule \"%s\" runs more often than pipeline.min_schedule_interval allows", schedule),
				 errdetail("It runs every %d seconds at the shortest; each run takes a connection, and pipeline.min_schedule_interval is %d seconds.",
						   gap, pipeline_min_schedule_interval),
				 errhint("Choose a less frequent schedule, or have a superuser lower pipeline.min_schedule_interval.")));
}

/*
 * job_prefix
 *		What the names of this database's jobs start with; the check's id
 *		follows.
 */
static char *
job_prefix(void)
{
	return psprintf("pipeline_freshness_%s_", get_database_name(MyDatabaseId));
}

/*
 * drop_all_sql
 *		The statement that deletes every job of this database's checks.
 */
static char *
drop_all_sql(void)
{
	char	   *prefix = quote_literal_cstr(job_prefix());

	return psprintf("DELETE FROM cron.job WHERE starts_with(jobname, %s) "
					"AND substr(jobname, length(%s) + 1) ~ '^[0-9]+$'", prefix, prefix);
}

/*
 * job_sql
 *		The statement that makes the cron database's job for a check match
 *		the check: delete it (run as the extension: the job of a check that
 *		is gone), or schedule it through pg_cron's own API as the check's
 *		owner, so that pg_cron's rules for that role apply -- cron.schedule
 *		when pg_cron lives in this database, else, in the cron database,
 *		cron.schedule_in_database after SET LOCAL ROLE.
 */
static char *
job_sql(int64 id, const char *schedule, Oid owner, bool here)
{
	char	   *db = get_database_name(MyDatabaseId);
	char	   *name = quote_literal_cstr(psprintf("%s%lld", job_prefix(), (long long) id));
	char	   *command = quote_literal_cstr(psprintf("SELECT pipeline.check_freshness(%lld)",
													  (long long) id));

	if (schedule == NULL)
		return psprintf("DELETE FROM cron.job WHERE jobname = %s", name);
	if (here)
		return psprintf("SELECT cron.schedule(%s, %s, %s)", name, quote_literal_cstr(schedule),
						command);

	/*
	 * no username argument: pg_cron takes the current role, and refuses one
	 * from a non-superuser
	 */
	return psprintf("SET LOCAL ROLE %s; SELECT cron.schedule_in_database(%s, %s, %s, %s)",
					quote_identifier(GetUserNameFromId(owner, false)), name,
					quote_literal_cstr(schedule), command, quote_literal_cstr(db));
}

/*
 * check_schedule
 *		The schedule and owner of a check as this transaction sees it; NULL
 *		schedule when it has none or no longer exists.
 */
static char *
check_schedule(int64 id, Oid *owner)
{
	PipelineUserContext ctx;
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(id);
	char	   *schedule = NULL;

	pipeline_become_internal(&ctx);
	/* not read-only: it must see the caller's own change of the check */
	if (pipeline_exec("SELECT schedule, owner FROM pipeline.freshness_checks WHERE id = $1",
					  1, &type, &value, NULL, false, 1) == 1)
	{
		bool		isnull;

		(void) pipeline_result_datum(0, 0, &isnull);
		if (!isnull)
			schedule = pipeline_result_text(0, 0);
		*owner = DatumGetObjectId(pipeline_result_datum(0, 1, &isnull));
	}
	pipeline_restore_user(&ctx);
	return schedule;
}

/*
 * run_in_cron_database
 *		Runs a statement in the cron database through a background worker
 *		and waits for it; errors with the worker's error.
 */
static void
run_in_cron_database(const char *database, const char *sql)
{
	Size		size = offsetof(CronCall, sql) + strlen(sql) + 1;
	dsm_segment *seg = dsm_create(size, 0);
	CronCall   *call = dsm_segment_address(seg);
	BackgroundWorkerHandle *handle;

	strlcpy(call->database, database, NAMEDATALEN);
	call->done = false;
	call->error[0] = '\0';
	strcpy(call->sql, sql);

	if (!pipeline_start_worker("pipeline_cron_call_main", "pipeline cron job sync",
							   "pipeline cron job sync",
							   UInt32GetDatum(dsm_segment_handle(seg)), &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a background worker to write the pg_cron job"),
				 errdetail("pg_cron keeps its jobs in database \"%s\"; a worker connects there to write them.",
						   database),
				 errhint("Raise max_worker_processes, or retry when fewer background workers run.")));
	if (WaitForBackgroundWorkerShutdown(handle) != BGWH_STOPPED)
		elog(ERROR, "the pg_cron job worker did not stop");
	pfree(handle);
	if (!call->done)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not write the pg_cron job in database \"%s\"", database),
				 errdetail("%s", call->error[0] ? call->error : "The worker stopped without an answer."),
				 errhint("Check that pg_cron is installed there (CREATE EXTENSION pg_cron in database \"%s\").",
						 database)));
	dsm_detach(seg);
}

/*
 * pipeline_cron_call_main
 *		Background worker: runs a statement in the cron database as the
 *		bootstrap superuser (which sets the role it schedules as, see
 *		job_sql) and reports how it went.
 */
void
pipeline_cron_call_main(Datum arg)
{
	dsm_segment *seg;
	CronCall   *call;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		elog(ERROR, "pipeline cron job sync: shared memory segment is gone");
	call = dsm_segment_address(seg);
	BackgroundWorkerInitializeConnection(call->database, NULL, 0);

	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, call->sql);

		/*
		 * pg_cron's database is not ours: no object of its users' in our
		 * statements
		 */
		if (SPI_execute("SET LOCAL search_path = pg_catalog, pg_temp", false, 0) < 0 ||
			SPI_execute(call->sql, false, 0) < 0)
			elog(ERROR, "could not run: %s", call->sql);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		call->done = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		strlcpy(call->error, edata->message, sizeof(call->error));
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}

/*
 * sync_pending
 *		Transaction callback: just before commit, writes the jobs of the
 *		checks changed in this transaction into the cron database.
 */
static void
sync_pending(XactEvent event, void *arg)
{
	List	   *ids = pending_syncs;
	bool		drop_all = pending_drop_all;
	ListCell   *lc;
	const char *database = GetConfigOption("cron.database_name", true, false);

	if (event != XACT_EVENT_PRE_COMMIT)
	{
		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		{
			pending_syncs = NIL;
			pending_drop_all = false;
		}
		return;
	}
	pending_syncs = NIL;
	pending_drop_all = false;
	if ((ids == NIL && !drop_all) || database == NULL)
		return;
	if (drop_all)
	{
		run_in_cron_database(database, drop_all_sql());
		return;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	foreach(lc, ids)
	{
		int64		id = *(int64 *) lfirst(lc);
		Oid			owner = InvalidOid;
		char	   *schedule = check_schedule(id, &owner);

		run_in_cron_database(database, job_sql(id, schedule, owner, false));
	}
	PopActiveSnapshot();
	SPI_finish();
}

/*
 * at_commit
 *		Makes sure sync_pending runs at the end of this transaction.
 */
static void
at_commit(void)
{
	if (!callback_registered)
		RegisterXactCallback(sync_pending, NULL);
	callback_registered = true;
}

/*
 * notice_unscheduled
 *		Tells the caller that a scheduled check will not run on its schedule,
 *		why, and what to do about it.
 */
static void
notice_unscheduled(int64 id, const char *why, const char *remedy)
{
	ereport(NOTICE,
			(errmsg("%s, so freshness check %lld will not run on its schedule",
					why, (long long) id),
			 errhint("%s or call pipeline.check_freshness(%lld) from any scheduler.",
					 remedy, (long long) id)));
}

/*
 * cron_sync
 *		Makes the pg_cron job of a check match the check as this transaction
 *		sees it.  The caller is connected to SPI.
 */
static void
cron_sync(int64 id)
{
	const char *database = GetConfigOption("cron.database_name", true, false);
	Oid			owner = InvalidOid;
	char	   *schedule = check_schedule(id, &owner);

	if (database == NULL)
	{
		if (schedule != NULL)
			notice_unscheduled(id, "pg_cron is not loaded",
							   "Add pg_cron to shared_preload_libraries,");
		return;
	}
	if (strcmp(database, get_database_name(MyDatabaseId)) != 0)
	{
		MemoryContext old;
		int64	   *copy;
		ListCell   *lc;

		foreach(lc, pending_syncs)
		{
			if (*(int64 *) lfirst(lc) == id)
				return;			/* synced at commit already */
		}
		old = MemoryContextSwitchTo(TopTransactionContext);
		copy = palloc(sizeof(int64));
		*copy = id;
		pending_syncs = lappend(pending_syncs, copy);
		MemoryContextSwitchTo(old);
		at_commit();
		return;
	}
	if (!OidIsValid(get_extension_oid("pg_cron", true)))
	{
		if (schedule != NULL)
			notice_unscheduled(id, "pg_cron is not installed in this database",
							   "Run CREATE EXTENSION pg_cron, then re-add the check;");
		return;
	}
	if (schedule != NULL && !may_schedule(owner))
	{
		/*
		 * a check restored or altered for a role pg_cron does not let
		 * schedule
		 */
		notice_unscheduled(id, psprintf("role %s may not schedule pg_cron jobs",
										GetUserNameFromId(owner, false)),
						   "Grant it USAGE ON SCHEMA cron, then alter the check's schedule,");
		schedule = NULL;
	}
	{
		PipelineUserContext ctx;

		if (schedule == NULL)
			pipeline_become_internal(&ctx);
		else
			pipeline_become_role(owner, "pg_catalog, pg_temp", &ctx);
		pipeline_exec(job_sql(id, schedule, owner, true), 0, NULL, NULL, NULL, false, 0);
		pipeline_restore_user(&ctx);
	}
}

/*
 * pipeline_cron_drop_all_jobs
 *		The extension was just dropped in this transaction: deletes the jobs
 *		of every check of this database, now or (in another cron database)
 *		when the transaction commits.
 */
void
pipeline_cron_drop_all_jobs(void)
{
	const char *database = GetConfigOption("cron.database_name", true, false);

	if (database == NULL)
		return;
	if (strcmp(database, get_database_name(MyDatabaseId)) != 0)
	{
		pending_drop_all = true;
		at_commit();
		return;
	}
	if (!OidIsValid(get_extension_oid("pg_cron", true)))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_exec(drop_all_sql(), 0, NULL, NULL, NULL, false, 0);
	SPI_finish();
}

/*
 * refuse_foreign_trigger
 *		sync_freshness_job schedules the jobs of checks by id, as the
 *		extension: only its own row trigger on pipeline.freshness_checks may
 *		fire it, never one a role attached to a table of its own.
 */
static void
refuse_foreign_trigger(TriggerData *trigdata)
{
	Oid			checks = pipeline_catalog_relid("freshness_checks");

	if (RelationGetRelid(trigdata->tg_relation) != checks ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline.sync_freshness_job fires only on pipeline.freshness_checks"),
				 errdetail("It was fired by trigger %s on %s; it schedules the pg_cron jobs of freshness checks, with the extension's rights.",
						   quote_identifier(trigdata->tg_trigger->tgname),
						   pipeline_qualified_name(RelationGetRelid(trigdata->tg_relation))),
				 errhint("Drop that trigger; checks schedule themselves.")));
}

/*
 * pipeline_sync_freshness_job
 *		AFTER INSERT, UPDATE or DELETE row trigger on freshness_checks: the
 *		check's job follows every change of its row, whoever makes it (the
 *		API, a dropped relation, pg_restore loading the table).  Fired in any
 *		other way (a statement trigger has no row; another table's rows are
 *		not checks), it refuses.
 */
Datum
pipeline_sync_freshness_job(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	row;
	bool		isnull;
	int			id_column;
	Datum		id;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pipeline.sync_freshness_job must be called as a trigger");
	refuse_foreign_trigger(trigdata);
	row = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple
		: trigdata->tg_trigtuple;
	id_column = SPI_fnumber(trigdata->tg_relation->rd_att, "id");
	if (id_column <= 0)
		elog(ERROR, "pipeline.freshness_checks lacks its id column");
	id = heap_getattr(row, id_column, trigdata->tg_relation->rd_att, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);	/* refused by the column's NOT NULL */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cron_sync(DatumGetInt64(id));
	SPI_finish();
	return PointerGetDatum(NULL);
}
