/*-------------------------------------------------------------------------
 *
 * dependencies.c
 *	  Pipelines depend on their source, target and tombstone tables the way
 *	  PostgreSQL objects depend on each other: dropping such a table fails
 *	  unless the DROP says CASCADE, and then the pipelines go with it -- and
 *	  the pipelines downstream of them, through their targets' change logs.
 *	  A data quality check depends on the table it looks rows up in the
 *	  same way (checks.c).
 *
 * PostgreSQL cannot record that dependency itself (a definition is a row,
 * not an object), so an sql_drop event trigger enforces it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "sources/sources.h"

PG_FUNCTION_INFO_V1(pipeline_on_sql_drop);

/*
 * The role running the DROP statement, while its event trigger runs: the
 * DROPs the trigger itself issues (of change logs) fire it again as the
 * extension, and must be judged by the same role.
 */
static Oid	drop_role = InvalidOid;

static void on_sql_drop(EventTriggerData *trigdata);

/*
 * drop_behavior
 *		Whether the DROP statement being run said CASCADE.
 */
static bool
drop_cascades(Node *parsetree)
{
	if (parsetree == NULL)
		return false;
	if (IsA(parsetree, DropStmt))
		return ((DropStmt *) parsetree)->behavior == DROP_CASCADE;
	if (IsA(parsetree, DropOwnedStmt))
		return ((DropOwnedStmt *) parsetree)->behavior == DROP_CASCADE;
	return false;
}

/*
 * drop_freshness_checks
 *		A freshness check goes with its relation (and its pg_cron job with
 *		it, by the trigger on freshness_checks).  The caller runs as the extension, connected to SPI.
 */
static void
drop_freshness_checks(void)
{
	int			n = pipeline_exec("DELETE FROM pipeline.freshness_checks c "
								  "USING pg_event_trigger_dropped_objects() o "
								  "WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 "
								  "AND o.objid = c.relation::oid RETURNING c.id",
								  0, NULL, NULL, NULL, false, 0);
	SPITupleTable *dropped = SPI_tuptable;

	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(dropped->vals[i], dropped->tupdesc, 1,
													 &isnull));

		ereport(NOTICE, (errmsg("drop removes freshness check %lld", (long long) id)));
	}
}

/*
 * forget_dropped_sources
 *		A dropped staging table's retention setting goes with it; its
 *		archive batches and dictionaries stay, no longer tied to a table
 *		(source NULL, source_name kept): only superusers read them then, and
 *		a table created later with the same oid does not inherit them.  The
 *		caller runs as the extension, connected to SPI.
 */
static void
forget_dropped_sources(void)
{
	const char *dropped = "pg_event_trigger_dropped_objects() o "
	"WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND o.objid = ";

	pipeline_exec(psprintf("DELETE FROM pipeline.retention r USING %s r.source::oid", dropped),
				  0, NULL, NULL, NULL, false, 0);
	pipeline_exec(psprintf("UPDATE pipeline.archive_batches b SET source = NULL FROM %s b.source::oid",
						   dropped), 0, NULL, NULL, NULL, false, 0);
	pipeline_exec(psprintf("UPDATE pipeline.archive_dictionaries d SET source = NULL FROM %s d.source::oid",
						   dropped), 0, NULL, NULL, NULL, false, 0);
}

/*
 * refuse_drop_of_others_log
 *		Errors when the role running the DROP does not have the privileges
 *		of the owner of change log 'log' (the owner of the target or captured
 *		table it records), which the extension is about to drop with what
 *		reads it.  The owner's DROP ... CASCADE takes the log's readers and
 *		the views on it, as PostgreSQL's takes the views on a table; another
 *		role's DROP never takes another role's objects through the extension.
 */
static void
refuse_drop_of_others_log(Oid log)
{
	Oid			owner = pipeline_relation_owner(log);
	char	   *dependents;

	if (has_privs_of_role(drop_role, owner))
		return;
	dependents = pipeline_change_log_dependents(log);
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop change log %s of role %s", pipeline_qualified_name(log),
					GetUserNameFromId(owner, false)),
			 errdetail("The DROP removes the last pipeline writing the table whose changes it records, so the log would go with what reads it (%s); role %s does not own it.",
					   dependents ? dependents : "nothing else",
					   GetUserNameFromId(drop_role, false)),
			 errhint("Drop the pipelines reading %s first (as their owners), or have role %s run the DROP.",
					 pipeline_qualified_name(log), GetUserNameFromId(owner, false))));
}

/* Captures (alias c) of a table, or with a log, the DROP removed. */
#define DROPS_CAPTURE \
	"o.classid = 'pg_class'::regclass AND o.objsubid = 0 " \
	"AND o.objid IN (c.relation::oid, c.change_log::oid)"

/*
 * refuse_drop_of_read_capture
 *		Without CASCADE, a captured table whose changes pipelines read
 *		stays.
 */
static void
refuse_drop_of_read_capture(void)
{
	char	   *relation;
	char	   *pipeline;

	if (pipeline_dropped_capture_read(&relation, &pipeline))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop %s because pipeline \"%s\" reads its captured changes",
						relation, pipeline),
				 errdetail("The pipeline reads the table's change log, which goes with the table."),
				 errhint("Drop the pipeline first with pipeline.drop_pipeline('%s'), or use DROP ... CASCADE to drop it too.",
						 pipeline)));
}

/*
 * drop_captures
 *		A capture goes with its table (and its log with it) or with its log
 *		(and the table's capture triggers with it).
 */
static void
drop_captures(bool cascade)
{
	int			n = pipeline_exec("DELETE FROM pipeline.captures c "
								  "USING pg_event_trigger_dropped_objects() o WHERE " DROPS_CAPTURE
								  " RETURNING c.relation::oid, c.change_log::oid",
								  0, NULL, NULL, NULL, false, 0);
	SPITupleTable *dropped = SPI_tuptable;

	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			log = DatumGetObjectId(SPI_getbinval(dropped->vals[i], dropped->tupdesc, 2,
														 &isnull));

		if (cascade && SearchSysCacheExists1(RELOID, ObjectIdGetDatum(log)))
			refuse_drop_of_others_log(log);
		pipeline_forget_capture(DatumGetObjectId(SPI_getbinval(dropped->vals[i], dropped->tupdesc, 1,
															   &isnull)),
								log, cascade);
	}
}

/*
 * drop_unwritten_change_log
 *		Drops a change log whose writers are all gone, CASCADE: this trigger
 *		fires again for it and drops the pipelines reading it.  As the log's
 *		owner: it is that role's table.
 */
static void
drop_unwritten_change_log(Oid log)
{
	if (!OidIsValid(log) || !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(log)) ||
		pipeline_has_writers(log))
		return;
	refuse_drop_of_others_log(log);
	pipeline_exec_as_relation_owner(log, psprintf("DROP TABLE %s CASCADE", pipeline_qualified_name(log)),
									0, NULL, NULL, NULL);
}

/*
 * pipeline_on_sql_drop
 *		Event trigger on sql_drop: refuses to drop a table a pipeline uses,
 *		or with CASCADE drops those pipelines too.
 */
Datum
pipeline_on_sql_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "on_sql_drop must be called as an event trigger");
	if (pipeline_dropping_own_table())
		PG_RETURN_VOID();

	if (OidIsValid(drop_role))
	{
		on_sql_drop(trigdata);
		PG_RETURN_VOID();
	}
	drop_role = GetUserId();
	PG_TRY();
	{
		on_sql_drop(trigdata);
	}
	PG_FINALLY();
	{
		drop_role = InvalidOid;
	}
	PG_END_TRY();
	PG_RETURN_VOID();
}

/*
 * on_sql_drop
 *		The body of pipeline_on_sql_drop.
 */
static void
on_sql_drop(EventTriggerData *trigdata)
{
	PipelineUserContext ctx;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_become_internal(&ctx);
	pipeline_capture_check_dropped_partitions();
	if (!drop_cascades(trigdata->parsetree))
	{
		char	   *relation;
		char	   *pipeline;

		refuse_drop_of_read_capture();
		if (pipeline_dropped_step_relation(&relation, &pipeline))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop %s because step \"%s\" uses it", relation, pipeline),
					 errdetail("The step's command, or what it declared, reads or writes it."),
					 errhint("Drop the step first with pipeline.drop_step('%s'), or use DROP ... CASCADE to drop it too.",
							 pipeline)));
		if (pipeline_dropped_relation_used(&relation, &pipeline))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop %s because pipeline \"%s\" uses it",
							relation, pipeline),
					 errdetail("A pipeline reads its source and writes its target and the tables it keeps next to it (tombstones, aggregate state)."),
					 errhint("Drop the pipeline first with pipeline.drop_pipeline('%s'), or use DROP ... CASCADE to drop it too.",
							 pipeline)));
	}
	else
	{
		List	   *logs = NIL;
		ListCell   *lc;

		/* the steps after the pipelines that go, first: they name them */
		foreach(lc, pipeline_delete_dropped_steps())
			ereport(NOTICE,
					(errmsg("drop cascades to step \"%s\"", (char *) lfirst(lc))));
		foreach(lc, pipeline_delete_dropped_definitions())
		{
			DroppedDefinition *d = lfirst(lc);
			ListCell   *lt;

			ereport(NOTICE,
					(errmsg("drop cascades to pipeline \"%s\"", d->name)));
			foreach(lt, d->own_tables)
				pipeline_drop_own_table(lfirst_oid(lt));
			logs = lappend_oid(logs, d->change_log);
		}
		/* writers of a dropped change log stop publishing */
		pipeline_unpublish_dropped_logs();
		/* a change log no pipeline writes any more goes, with its readers */
		foreach(lc, logs)
			drop_unwritten_change_log(lfirst_oid(lc));
		pipeline_release_change_logs();
	}
	pipeline_checks_on_drop(drop_cascades(trigdata->parsetree));
	drop_captures(drop_cascades(trigdata->parsetree));
	drop_freshness_checks();
	forget_dropped_sources();
	pipeline_restore_user(&ctx);
	SPI_finish();
}
