/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  pipeline.capture and uncapture: an application's table becomes a
 *	  source without an external CDC system, and stops being one.
 *
 * Capturing a table gives it a change log (change_log.c) and the triggers
 * that fill it (capture_changes.c, whose comment says how every kind of
 * write reaches the log); a partitioned table is captured whole
 * (capture_partitions.c).  What can be captured, and who may, is decided
 * here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "sources/sources.h"

PG_FUNCTION_INFO_V1(pipeline_capture);
PG_FUNCTION_INFO_V1(pipeline_uncapture);

/*
 * refuse_citus_table
 *		Errors for a Citus table: its rows are written on the workers'
 *		shards, where no trigger of a capture fires.
 */
static void
refuse_citus_table(Oid relation, const char *name)
{
	CitusKind	kind = pipeline_citus_kind(relation);

	if (kind == CITUS_NONE)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("table %s is a Citus %s table", name, kind == CITUS_REFERENCE ? "reference" : "distributed"),
			 errdetail("Its rows are written on the workers' shards, where no trigger of the capture fires."),
			 errhint("Keep the table a plain table on the coordinator to capture it, or write it with a pipeline: the pipelines reading it then follow its changes.")));
}

/*
 * refuse_capture
 *		Errors for a table that cannot be captured: not a table the caller
 *		owns, a Citus table, a partition, one of the extension's sources,
 *		targets or logs,
 *		without a primary key, or a partitioned table with a partition that
 *		cannot be (capture_partitions.c).  The caller holds the lock that
 *		keeps its partitions as they are.
 */
static void
refuse_capture(Oid relation)
{
	char	   *name = pipeline_qualified_name(relation);
	char		kind = get_rel_relkind(relation);

	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a table", name),
				 errdetail("Only tables and partitioned tables can be captured."),
				 errhint("Capture the table the view reads.")));
	pipeline_check_role(pipeline_relation_owner(relation), psprintf("table %s", name));
	refuse_citus_table(relation, name);
	/* CREATE TRIGGER's lock: no partition comes or goes until commit */
	(void) pipeline_capture_members(relation, ShareRowExclusiveLock);
	if (get_rel_relispartition(relation))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("table %s is a partition of %s", name,
						pipeline_qualified_name(pipeline_partition_root(relation))),
				 errdetail("Writes routed through its partitioned table would not fire its own triggers."),
				 errhint("Capture the partitioned table %s: its partitions are captured with it.",
						 pipeline_qualified_name(pipeline_partition_root(relation)))));
	if (get_attnum(relation, PIPELINE_XID_COLUMN) != InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is a pipeline source already", name),
				 errdetail("It has an _xid column: pipelines read its rows as they are appended."),
				 errhint("Capture is for tables whose rows are updated and deleted; a staging table needs none.")));
	if (pipeline_is_target_or_log(relation))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is a pipeline's target or change log", name),
				 errdetail("The pipelines writing a target publish its changes themselves."),
				 errhint("Create the pipeline with the target as its source.")));
	if (pipeline_primary_key_columns(relation) == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has no primary key", name),
				 errdetail("A captured update that changes a row's key is a delete of the old key, which needs the key."),
				 errhint("ALTER TABLE %s ADD PRIMARY KEY (...), then capture it.", name)));
	if (kind == RELKIND_PARTITIONED_TABLE)
		pipeline_refuse_capture_partitions(relation, pipeline_relation_owner(relation));
}

/*
 * pipeline_capture
 *		SQL: pipeline.capture(relation) -> its change log.  Idempotent.
 */
Datum
pipeline_capture(PG_FUNCTION_ARGS)
{
	Oid			relation = PG_GETARG_OID(0);
	Oid			types[3] = {OIDOID, OIDOID, TEXTARRAYOID};
	Datum		values[3];
	PipelineUserContext ctx;
	Oid			log;
	ListCell   *lc;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = ObjectIdGetDatum(relation);
	pipeline_become_internal(&ctx);
	if (pipeline_exec("SELECT change_log::oid FROM pipeline.captures WHERE relation = $1",
					  1, types, values, NULL, false, 1) == 1)
	{
		bool		isnull;

		log = DatumGetObjectId(pipeline_result_datum(0, 0, &isnull));
		pipeline_restore_user(&ctx);
		/* the log of another role's table is not the caller's to learn */
		pipeline_check_role(pipeline_relation_owner(relation),
							psprintf("table %s", pipeline_qualified_name(relation)));
		SPI_finish();
		PG_RETURN_OID(log);
	}
	pipeline_restore_user(&ctx);

	refuse_capture(relation);
	log = pipeline_create_change_log(relation);
	foreach(lc, pipeline_capture_members(relation, ShareRowExclusiveLock))
		pipeline_capture_create_triggers(lfirst_oid(lc));

	values[1] = ObjectIdGetDatum(log);
	values[2] = pipeline_list_to_text_array(pipeline_primary_key_columns(relation));
	pipeline_become_internal(&ctx);
	pipeline_exec("INSERT INTO pipeline.captures (relation, change_log, key) "
				  "VALUES ($1::regclass, $2::regclass, $3)", 3, types, values, NULL, false, 0);
	pipeline_restore_user(&ctx);
	SPI_finish();
	PG_RETURN_OID(log);
}

/*
 * pipeline_forget_capture
 *		Removes a table's capture: its catalog row and, when they still
 *		exist, its triggers (and its partitions') and its log -- with
 *		'cascade', by DROP ... CASCADE, which drops the pipelines reading
 *		it; else the caller has checked that none does.  The catalog row
 *		goes as the extension (the caller's identity), triggers and log as
 *		their owners.  The caller is connected to SPI.
 */
void
pipeline_forget_capture(Oid relation, Oid log, bool cascade)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relation);
	ListCell   *lc;

	pipeline_exec("DELETE FROM pipeline.captures WHERE relation = $1", 1, &type, &value, NULL,
				  false, 0);
	if (SearchSysCacheExists1(RELOID, value))
	{
		foreach(lc, pipeline_capture_members(relation, AccessExclusiveLock))
			pipeline_capture_drop_triggers(lfirst_oid(lc));
	}
	if (!OidIsValid(log) || !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(log)))
		return;
	if (cascade)
		pipeline_exec_as_relation_owner(log, psprintf("DROP TABLE %s CASCADE",
													  pipeline_qualified_name(log)),
										0, NULL, NULL, NULL);
	else
		pipeline_drop_own_table(log);
}

/*
 * pipeline_uncapture
 *		SQL: pipeline.uncapture(relation, if_exists).  Refused while
 *		pipelines read the table's changes.
 */
Datum
pipeline_uncapture(PG_FUNCTION_ARGS)
{
	Oid			relation = PG_GETARG_OID(0);
	bool		if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relation);
	PipelineUserContext ctx;
	char	   *name = pipeline_qualified_name(relation);
	Oid			log;
	bool		isnull;
	char	   *readers;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_check_role(pipeline_relation_owner(relation), psprintf("table %s", name));
	pipeline_become_internal(&ctx);
	if (pipeline_exec("SELECT change_log::oid FROM pipeline.captures c WHERE c.relation = $1 FOR UPDATE",
					  1, &type, &value, NULL, false, 1) == 0)
	{
		pipeline_restore_user(&ctx);
		if (!if_exists)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table %s is not captured", name),
					 errdetail("pipeline.captures does not list it."),
					 errhint("Pass if_exists => true to ignore this.")));
		ereport(NOTICE, (errmsg("table %s is not captured, skipping", name)));
		SPI_finish();
		PG_RETURN_VOID();
	}
	log = DatumGetObjectId(pipeline_result_datum(0, 0, &isnull));
	readers = pipeline_reader_names(log);
	if (readers != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot stop capturing %s because pipelines read its changes", name),
				 errdetail("Pipelines reading its change log: %s.", readers),
				 errhint("Drop those pipelines first.")));
	pipeline_forget_capture(relation, log, false);
	pipeline_restore_user(&ctx);
	SPI_finish();
	PG_RETURN_VOID();
}
