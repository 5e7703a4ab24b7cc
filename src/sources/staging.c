/*-------------------------------------------------------------------------
 *
 * staging.c
 *	  Staging tables stay append-only while pipelines read them, and a
 *	  partitioned staging table loses nothing whichever way rows reach it.
 *
 * A pipeline consumes a staged row once, by the transaction that inserted
 * it (its _xid).  An UPDATE keeps the row's _xid and a DELETE leaves no
 * trace, so once the row was consumed neither would ever reach a target:
 * the change would be ignored without a word.  So a staging table gets two
 * guard triggers when it becomes a source (with its _xid and _seq):
 *
 * - pipeline_staging_guard, BEFORE UPDATE OR DELETE OR TRUNCATE FOR EACH
 *   STATEMENT, enabled ALWAYS, on the table and on every partition (a
 *   statement addressed to a partition fires that partition's statement
 *   triggers only);
 * - pipeline_staging_guard_replica, BEFORE UPDATE OR DELETE FOR EACH ROW,
 *   enabled REPLICA, on the table (PostgreSQL clones it onto every
 *   partition, present or future): a logical replication apply worker
 *   fires row triggers only, and a subscription writing the table then
 *   stops with the error instead of diverging.
 *
 * While a pipeline reads the table (it or a partitioned ancestor is a
 * pipeline's source), UPDATE and DELETE are refused.  TRUNCATE is allowed
 * when it loses nothing: every pipeline reading the table has consumed
 * every row and no retention setting waits to archive them (TRUNCATE holds
 * ACCESS EXCLUSIVE, so no writer or batch is in flight) -- unless it comes
 * from logical replication, where it means the publisher's rows are gone.
 * With no pipeline reading the table every statement goes through: the
 * triggers stay with the columns, inert, and no DROP of a pipeline needs
 * the table owner's rights to remove them.  The extension's own deletes
 * (retention, the archive pass) and its restamping of an attached
 * partition pass by a backend-local permission set only around them.
 *
 * Partitions: two event triggers.  At ddl_command_end, a partition created
 * or attached under a guarded table gets the statement guard, and the rows
 * of an attached table become new rows of the staging table: they are
 * restamped with the attaching transaction (new _xid, new _seq), as the
 * table's owner, so that every pipeline merges them exactly once, whatever
 * _xid they were loaded with.  At ddl_command_start, a DETACH or a DROP
 * (DROP TABLE, DROP SCHEMA ... CASCADE, DROP OWNED) of a partition is
 * refused while it holds rows a pipeline has not consumed or the archive
 * has not taken; the parent and the partition are locked first, in the
 * order the statement locks them, so no writer adds rows after the check.
 * DETACH ... CONCURRENTLY, which commits half-way and lets writers in, is
 * refused outright.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "model.h"
#include "base/base.h"
#include "cursor/cursor.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "sources/sources.h"
#include "strategy.h"

PG_FUNCTION_INFO_V1(pipeline_guard_staging);
PG_FUNCTION_INFO_V1(pipeline_staging_ddl_start);
PG_FUNCTION_INFO_V1(pipeline_staging_ddl_end);

#define GUARD_TRIGGER "pipeline_staging_guard"
#define GUARD_REPLICA_TRIGGER "pipeline_staging_guard_replica"

/*
 * The relation (with its partitions) whose rows the extension itself is
 * deleting or restamping right now, or InvalidOid.
 */
static Oid	own_writes_on = InvalidOid;

/* The pipelines reading a staging table, as the guard needs them. */
typedef struct Readers
{
	Oid			source;			/* the pipelines' source: the table or an
								 * ancestor */
	char	   *names;			/* "a", "b" */
} Readers;

/* ------------------------------------------------------------ readers */

/*
 * find_readers
 *		The pipelines reading 'relid' or a partitioned table it is a
 *		partition of (the nearest such ancestor); false when none does.
 *		Reads the catalog as the extension.
 */
static bool
find_readers(Oid relid, Readers *readers)
{
	/* names of other roles' pipelines are theirs: not named */
	return pipeline_readers_of(relid, GetUserId(), &readers->source, &readers->names);
}

/*
 * held_rows
 *		Why rows of 'rel' (the staging table 'source' or a partition of it)
 *		cannot leave it now: a sentence naming a pipeline reading 'source'
 *		whose cursor has not consumed one of them, or saying that the
 *		table's retention archives them and has not yet; NULL when they may
 *		go.  The caller holds a lock that keeps writers and batches out of
 *		'rel'; the rows and cursors are read with a snapshot taken now (not
 *		the transaction's, which may predate the lock), the rows through
 *		'source' as its owner (who reads every partition's rows there), the
 *		cursors as the extension.
 */
static char *
held_rows(Oid source, Oid rel)
{
	Oid			types[4] = {PG_SNAPSHOTOID, XID8OID, INT8OID, REGCLASSOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	CursorSql	cursor = {"$1", "$2", "$3"};
	Oid			userid = GetUserId();
	const char *rows = psprintf("SELECT 1 FROM %s s WHERE %s", pipeline_qualified_name(source),
								rel == source ? "true" :
								"s.tableoid IN (SELECT relid FROM pg_catalog.pg_partition_tree($4))");
	PipelineUserContext ctx;
	List	   *cursors;
	ListCell   *lc;
	bool		archives;
	char	   *why = NULL;

	PushActiveSnapshot(GetLatestSnapshot());
	cursors = pipeline_source_cursors(source, userid, &archives);
	values[3] = ObjectIdGetDatum(rel);
	pipeline_become_relation_owner(source, &ctx);
	foreach(lc, cursors)
	{
		ReaderCursor *c = lfirst(lc);

		pipeline_catalog_cursor_args(c->consumed, &c->partial, types, values, nulls);
		if (pipeline_exec(psprintf("%s AND %s", rows, pipeline_rule_pending("s", &cursor)),
						  4, types, values, nulls, true, 1) > 0)
		{
			why = psprintf("%s has not consumed all of its rows yet.", c->label);
			break;
		}
	}
	if (why == NULL && archives &&
		pipeline_exec(rows, 4, types, values, "nnn ", true, 1) > 0)
		why = psprintf("The retention setting of %s archives its consumed rows, and some are not archived yet.",
					   pipeline_qualified_name(source));
	pipeline_restore_user(&ctx);
	PopActiveSnapshot();
	return why;
}

/* ------------------------------------------------------------- guards */

/*
 * add_guards
 *		Gives 'relid' the statement guard, and with 'replica' the row guard
 *		(which a partitioned table passes on to its partitions), when it
 *		lacks them, as its owner; a guard disabled by hand is enabled again.
 *		The caller is connected to SPI.
 */
static void
add_guards(Oid relid, bool replica)
{
	pipeline_ensure_trigger(relid, GUARD_TRIGGER,
							"BEFORE UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT",
							"pipeline.guard_staging()", TRIGGER_FIRES_ALWAYS);
	if (replica)
		pipeline_ensure_trigger(relid, GUARD_REPLICA_TRIGGER,
								"BEFORE UPDATE OR DELETE ON %s FOR EACH ROW",
								"pipeline.guard_staging()", TRIGGER_FIRES_ON_REPLICA);
}

/*
 * unguarded_tables
 *		The tables of relid's partition tree (relid included) that lack the
 *		statement guard, relid first when it lacks either guard; a guard
 *		disabled by hand, or a trigger of a guard's name running another
 *		function, is no guard.
 */
static List *
unguarded_tables(Oid relid)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);
	List	   *result = NIL;
	int			n;

	n = pipeline_exec_internal("SELECT t.relid FROM (SELECT $1::regclass AS relid, 0 AS level "
							   "  UNION SELECT relid, level FROM pg_catalog.pg_partition_tree($1)) t "
							   "JOIN pg_catalog.pg_class c ON c.oid = t.relid AND c.relkind IN ('r', 'p') "
							   "WHERE (SELECT count(*) FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid "
							   "       AND g.tgfoid = 'pipeline.guard_staging()'::pg_catalog.regprocedure "
							   "       AND (g.tgname, g.tgenabled) IN (('" GUARD_TRIGGER "', 'A'), "
							   "                                       ('" GUARD_REPLICA_TRIGGER "', 'R'))) "
							   "    < CASE WHEN t.relid = $1 THEN 2 ELSE 1 END "
							   "ORDER BY t.level, t.relid",
							   1, &type, &value, NULL);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		result = lappend_oid(result, DatumGetObjectId(pipeline_result_datum(i, 0, &isnull)));
	}
	return result;
}

/*
 * pipeline_refuse_staging_target
 *		Errors when 'target', which a pipeline of strategy 'strategy' would
 *		write, is a staging table pipelines read: a merge or scd2 pipeline
 *		updates (and deletes) rows in its target, which the guards refuse
 *		and the readers would never see.  Appending is what a staging table
 *		takes.  A target defined first is read through its change log
 *		instead, so only this order needs refusing.
 */
void
pipeline_refuse_staging_target(Oid target, const PipelineStrategy *strategy)
{
	Readers		readers;

	if (!strategy->keyed || !find_readers(target, &readers))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("target %s is a staging table", pipeline_qualified_name(target)),
			 errdetail("The pipelines reading %s (%s) consume each row once, as it was inserted; a %s pipeline updates rows in its target, which they would never see.",
					   pipeline_qualified_name(readers.source), readers.names, strategy->name),
			 errhint("Write into a staging table with an append pipeline; or define this pipeline first and the readers after it: a pipeline whose source is another pipeline's target reads its change log.")));
}

/*
 * pipeline_guard_staging_table
 *		Gives a staging table (and each of its partitions) its guard
 *		triggers, as their owners, when they lack them.  Like the _xid and
 *		_seq columns, only the table's owner (or a member, or a superuser)
 *		may add them: another role's pipeline needs the owner's
 *		pipeline.prepare_source first.  The caller is connected to SPI.
 */
void
pipeline_guard_staging_table(Oid source)
{
	List	   *missing;
	ListCell   *lc;
	char	   *src = pipeline_qualified_name(source);

	/*
	 * A hash-distributed source is a queue its sharded pipeline empties: no
	 * cursor passes over a row an UPDATE or DELETE changed
	 */
	if (pipeline_citus_distribution_column(source) != NULL)
		return;
	missing = unguarded_tables(source);
	if (missing == NIL)
		return;
	if (!pipeline_relation_ownercheck(source, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s to make it a pipeline source", src),
				 errdetail("The first pipeline that reads a table gives it the triggers that keep it append-only."),
				 errhint("Ask the owner of %s to run SELECT pipeline.prepare_source('%s'), then create the pipeline.",
						 src, src)));
	foreach(lc, missing)
		add_guards(lfirst_oid(lc), lfirst_oid(lc) == source);
	CommandCounterIncrement();
}

/*
 * is_own_write
 *		Whether rows of 'relid' are being written by the extension itself
 *		(own_writes_on is relid or a partitioned ancestor of it).
 */
static bool
is_own_write(Oid relid)
{
	if (!OidIsValid(own_writes_on))
		return false;
	if (own_writes_on == relid)
		return true;
	return get_rel_relispartition(relid) &&
		list_member_oid(get_partition_ancestors(relid), own_writes_on);
}

/*
 * pipeline_own_staging_writes
 *		Runs fn(arg) with the guards of 'relid' (and its partitions)
 *		letting the extension's own UPDATE and DELETE through: retention,
 *		the archive pass, the restamping of an attached partition.  Reset
 *		however fn ends.
 */
void
pipeline_own_staging_writes(Oid relid, void (*fn) (void *arg), void *arg)
{
	Oid			saved = own_writes_on;

	own_writes_on = relid;
	PG_TRY();
	{
		fn(arg);
	}
	PG_FINALLY();
	{
		own_writes_on = saved;
	}
	PG_END_TRY();
}

/*
 * refuse_foreign_guard
 *		Errors unless the trigger firing is one of the two guards: its name,
 *		BEFORE, and the level that name has.
 */
static void
refuse_foreign_guard(TriggerData *trigdata)
{
	TriggerEvent ev = trigdata->tg_event;
	const char *name = trigdata->tg_trigger->tgname;

	if (TRIGGER_FIRED_BEFORE(ev) &&
		((TRIGGER_FIRED_FOR_STATEMENT(ev) && strcmp(name, GUARD_TRIGGER) == 0) ||
		 (TRIGGER_FIRED_FOR_ROW(ev) && strcmp(name, GUARD_REPLICA_TRIGGER) == 0)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("pipeline.guard_staging must be fired by the guard triggers of a staging table"),
			 errdetail("Trigger \"%s\" on %s is not one of the triggers a pipeline source gets.",
					   name, pipeline_qualified_name(RelationGetRelid(trigdata->tg_relation))),
			 errhint("Drop this trigger; pipeline.prepare_source creates the guards.")));
}

/*
 * refuse_truncate
 *		Errors when a TRUNCATE of 'relid', which 'readers' read, would lose
 *		rows: it comes from logical replication, or a pipeline has not
 *		consumed a row, or the archive has not taken one.
 */
static void
refuse_truncate(Oid relid, const Readers *readers)
{
	char	   *name = pipeline_qualified_name(relid);
	char	   *why;

	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot truncate staging table %s in replica mode", name),
				 errdetail("A TRUNCATE replicated from a publisher (session_replication_role is replica) removes rows the publisher no longer has, and the pipelines reading %s (%s) would never learn it.",
						   pipeline_qualified_name(readers->source), readers->names),
				 errhint("Read a table that logical replication writes through pipeline.capture(), not as a staging table.")));
	why = held_rows(readers->source, relid);
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot truncate staging table %s", name),
				 errdetail("%s", why),
				 errhint("Truncate it once the pipelines reading it (%s) have consumed every row (and the retention archived them); read a table whose rows change through pipeline.capture().",
						 readers->names)));
}

/*
 * pipeline_guard_staging
 *		The guard triggers of a staging table (see the file comment).
 *		Returns the row unchanged, or NULL for a statement trigger.
 */
Datum
pipeline_guard_staging(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent ev;
	Oid			relid;
	Readers		readers;
	bool		found;
	HeapTuple	row = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline.guard_staging must be called as a trigger"),
				 errdetail("It keeps a staging table append-only while pipelines read it."),
				 errhint("pipeline.prepare_source creates its triggers.")));
	refuse_foreign_guard(trigdata);
	ev = trigdata->tg_event;
	relid = RelationGetRelid(trigdata->tg_relation);
	if (TRIGGER_FIRED_FOR_ROW(ev))
		row = TRIGGER_FIRED_BY_UPDATE(ev) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	if (is_own_write(relid))
		return PointerGetDatum(row);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	found = find_readers(relid, &readers);
	if (found && TRIGGER_FIRED_BY_TRUNCATE(ev))
		refuse_truncate(relid, &readers);
	else if (found)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot %s staging table %s",
						TRIGGER_FIRED_BY_UPDATE(ev) ? "update" : "delete from",
						pipeline_qualified_name(relid)),
				 errdetail("The pipelines reading %s (%s) consume each row once, as it was inserted: the change would never reach their targets.",
						   pipeline_qualified_name(readers.source), readers.names),
				 errhint("Insert corrections as new rows; read a table whose rows change through pipeline.capture(), not as a staging table.")));
	SPI_finish();
	return PointerGetDatum(row);
}

/* ---------------------------------------------------------- partitions */

/*
 * guarded_ancestor
 *		Whether a partitioned table 'relid' is a partition of has the
 *		statement guard.
 */
static bool
guarded_ancestor(Oid relid)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);

	return pipeline_exec_internal("SELECT 1 FROM pg_catalog.pg_partition_ancestors($1) a "
								  "JOIN pg_catalog.pg_trigger g ON g.tgrelid = a.relid "
								  "WHERE g.tgname = '" GUARD_TRIGGER "' AND a.relid <> $1",
								  1, &type, &value, NULL) > 0;
}

/*
 * restamp_rows
 *		pipeline_own_staging_writes callback: gives every row of an attached
 *		partition the attaching transaction's _xid and a new _seq, with the
 *		staging table's own defaults, as the partition's owner.
 */
static void
restamp_rows(void *arg)
{
	const char *sql = arg;

	pipeline_exec(sql, 0, NULL, NULL, NULL, false, 0);
}

/*
 * stamp_defaults
 *		The staging table's defaults of _xid and _seq as the SET list of an
 *		UPDATE ("_xid = <default>, _seq = <default>"), read from the parent
 *		of 'partition', just attached; gives the partition those it lacks
 *		(a table created without them), as its owner, so that rows
 *		addressed to it are stamped as rows inserted through the parent.
 */
static char *
stamp_defaults(Oid partition)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2] = {ObjectIdGetDatum(get_partition_parent(partition, false)),
	ObjectIdGetDatum(partition)};
	StringInfoData set;
	StringInfoData alter;
	int			n;

	initStringInfo(&set);
	initStringInfo(&alter);
	n = pipeline_exec_internal("SELECT quote_ident(a.attname), pg_get_expr(d.adbin, d.adrelid), c.atthasdef "
							   "FROM pg_attribute a "
							   "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
							   "JOIN pg_attribute c ON c.attrelid = $2 AND c.attname = a.attname "
							   "WHERE a.attrelid = $1 AND a.attname IN ('_xid', '_seq') ORDER BY a.attname DESC",
							   2, types, values, NULL);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *column = pipeline_result_text(i, 0);
		char	   *expr = pipeline_result_text(i, 1);

		appendStringInfo(&set, "%s%s = %s", set.len ? ", " : "", column, expr);
		if (!DatumGetBool(pipeline_result_datum(i, 2, &isnull)))
			appendStringInfo(&alter, "%sALTER COLUMN %s SET DEFAULT %s", alter.len ? ", " : "",
							 column, expr);
	}
	if (alter.len > 0)
		pipeline_exec_as_relation_owner(partition, psprintf("ALTER TABLE %s %s",
															pipeline_qualified_name(partition),
															alter.data),
										0, NULL, NULL, NULL);
	return set.data;
}

/*
 * restamp_attached
 *		The rows of 'partition', just attached under 'source' (which
 *		pipelines read), become rows of the attaching transaction: they were
 *		loaded elsewhere, with an _xid the pipelines' cursors may have
 *		passed.  'set' assigns the staging table's defaults.  Refused when
 *		pipelines read the attached table itself: its rows would become new
 *		to them too.
 */
static void
restamp_attached(Oid partition, const Readers *readers, const char *set)
{
	Readers		own;
	PipelineUserContext ctx;

	if (find_readers(partition, &own) && own.source == partition)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot attach %s to staging table %s", pipeline_qualified_name(partition),
						pipeline_qualified_name(readers->source)),
				 errdetail("Its rows become new rows of %s when it is attached, and the pipelines reading %s itself (%s) would read them again.",
						   pipeline_qualified_name(readers->source),
						   pipeline_qualified_name(partition), own.names),
				 errhint("Drop those pipelines first, or insert the rows into %s instead.",
						 pipeline_qualified_name(readers->source))));
	pipeline_become_relation_owner(partition, &ctx);
	pipeline_own_staging_writes(partition, restamp_rows,
								psprintf("UPDATE %s SET %s", pipeline_qualified_name(partition), set));
	pipeline_restore_user(&ctx);
}

/*
 * partition_added
 *		A table just became a partition (CREATE TABLE ... PARTITION OF,
 *		ATTACH PARTITION; 'attached' for the latter): under a guarded table
 *		it gets the guards; an attached one gets the stamping defaults it
 *		lacks, and under a table pipelines read the rows it brings are
 *		restamped.
 */
static void
partition_added(Oid partition, bool attached)
{
	Readers		readers;
	ListCell   *lc;

	if (!guarded_ancestor(partition))
		return;
	if (attached)
	{
		char	   *set = stamp_defaults(partition);

		if (find_readers(get_partition_parent(partition, false), &readers))
			restamp_attached(partition, &readers, set);
	}
	foreach(lc, unguarded_tables(partition))
		add_guards(lfirst_oid(lc), false);
}

/*
 * partition_leaving
 *		Before a DROP of table 'relid' (one of 'dropped') or a DETACH of it
 *		('detach'): when it is a partition of a table pipelines read (and a
 *		DROP does not take that table too, which the sql_drop trigger
 *		judges), locks its parent and it as the statement will, then
 *		refuses while it holds rows a pipeline has not consumed or the
 *		archive has not taken.  Statements the caller may not run are left
 *		to their own privilege checks.
 */
static void
partition_leaving(Oid relid, List *dropped, bool detach)
{
	Readers		readers;
	Oid			parent;
	Oid			userid = GetUserId();
	char	   *why;

	if (!get_rel_relispartition(relid))
		return;
	parent = get_partition_parent(relid, true);
	if (detach ? !pipeline_relation_ownercheck(parent, userid)
		: !(pipeline_relation_ownercheck(relid, userid) ||
			pipeline_namespace_ownercheck(get_rel_namespace(relid), userid)))
		return;
	if (!find_readers(parent, &readers) || list_member_oid(dropped, readers.source))
		return;
	LockRelationOid(parent, AccessExclusiveLock);
	LockRelationOid(relid, AccessExclusiveLock);
	why = held_rows(readers.source, relid);
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s partition %s of staging table %s", detach ? "detach" : "drop",
						pipeline_qualified_name(relid), pipeline_qualified_name(readers.source)),
				 errdetail("%s", why),
				 errhint("%s it once the pipelines reading %s (%s) have consumed its rows (and the retention archived them).",
						 detach ? "Detach" : "Drop", pipeline_qualified_name(readers.source),
						 readers.names)));
}

/*
 * dropped_tables
 *		The tables a DROP statement takes that can be partitions: those a
 *		DROP TABLE names, those in the schemas of a DROP SCHEMA ... CASCADE,
 *		those the roles of a DROP OWNED own.  Names that do not resolve are
 *		left to the statement.
 */
static List *
dropped_tables(Node *parsetree)
{
	List	   *result = NIL;
	Datum	   *oids;
	int			noids = 0;
	const char *sql;
	Oid			type = OIDARRAYOID;
	Datum		value;
	ListCell   *lc;
	int			n;

	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_TABLE)
	{
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)), NoLock, true);

			if (OidIsValid(relid))
				result = lappend_oid(result, relid);
		}
		return result;
	}
	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_SCHEMA &&
		((DropStmt *) parsetree)->behavior == DROP_CASCADE)
	{
		oids = palloc(sizeof(Datum) * list_length(((DropStmt *) parsetree)->objects));
		foreach(lc, ((DropStmt *) parsetree)->objects)
			oids[noids++] = ObjectIdGetDatum(get_namespace_oid(strVal(lfirst(lc)), true));
		sql = "SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = ANY ($1) AND relkind IN ('r', 'p')";
	}
	else if (IsA(parsetree, DropOwnedStmt))
	{
		oids = palloc(sizeof(Datum) * list_length(((DropOwnedStmt *) parsetree)->roles));
		foreach(lc, ((DropOwnedStmt *) parsetree)->roles)
			oids[noids++] = ObjectIdGetDatum(get_rolespec_oid(lfirst(lc), true));
		sql = "SELECT oid FROM pg_catalog.pg_class WHERE relowner = ANY ($1) AND relkind IN ('r', 'p')";
	}
	else
		return NIL;
	value = PointerGetDatum(construct_array(oids, noids, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	n = pipeline_exec_internal(sql, 1, &type, &value, NULL);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		result = lappend_oid(result, DatumGetObjectId(pipeline_result_datum(i, 0, &isnull)));
	}
	return result;
}

/*
 * staging_ddl_start
 *		The body of pipeline_staging_ddl_start.
 */
static void
staging_ddl_start(Node *parsetree)
{
	if (IsA(parsetree, DropStmt) || IsA(parsetree, DropOwnedStmt))
	{
		List	   *dropped = dropped_tables(parsetree);
		ListCell   *lc;

		foreach(lc, dropped)
			partition_leaving(lfirst_oid(lc), dropped, false);
	}
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableType type;
		Oid			parent;
		Oid			partition;
		PartitionCmd *cmd = pipeline_partition_command((AlterTableStmt *) parsetree, &type,
													   &parent, &partition);
		Readers		readers;

		if (cmd == NULL || type != AT_DetachPartition ||
			!OidIsValid(parent) || !OidIsValid(partition))
			return;
		if (cmd->concurrent && find_readers(parent, &readers))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot detach a partition of staging table %s concurrently",
							pipeline_qualified_name(readers.source)),
					 errdetail("DETACH ... CONCURRENTLY commits before it ends, so rows written to the partition meanwhile could be missed by the pipelines reading the table (%s).",
							   readers.names),
					 errhint("Detach it without CONCURRENTLY once the pipelines have consumed its rows.")));
		partition_leaving(partition, NIL, true);
	}
}

/*
 * staging_ddl_end
 *		The body of pipeline_staging_ddl_end.
 */
static void
staging_ddl_end(Node *parsetree)
{
	if (IsA(parsetree, CreateStmt) || IsA(parsetree, CreateSchemaStmt))
	{
		ListCell   *lc;

		foreach(lc, pipeline_created_partitions())
			partition_added(lfirst_oid(lc), false);
	}
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableType type;
		Oid			parent;
		Oid			partition;

		if (pipeline_partition_command((AlterTableStmt *) parsetree, &type, &parent, &partition) &&
			type == AT_AttachPartition && OidIsValid(partition) &&
			get_rel_relispartition(partition))
			partition_added(partition, true);
	}
}

/*
 * run_event_trigger
 *		Runs body(parsetree) for an event trigger, connected to SPI.
 */
static void
run_event_trigger(FunctionCallInfo fcinfo, void (*body) (Node *parsetree))
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline.staging_ddl_start and pipeline.staging_ddl_end must be called as event triggers"),
				 errdetail("They keep partitioned staging tables whole."),
				 errhint("Do not call them directly; the extension's event triggers do.")));
	if (trigdata->parsetree == NULL)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	body(trigdata->parsetree);
	SPI_finish();
}

/*
 * pipeline_staging_ddl_start
 *		Event trigger on ddl_command_start: refuses DETACH ... CONCURRENTLY
 *		under a table pipelines read, and a DETACH or DROP of a partition
 *		whose rows are not all consumed and archived.
 */
Datum
pipeline_staging_ddl_start(PG_FUNCTION_ARGS)
{
	run_event_trigger(fcinfo, staging_ddl_start);
	PG_RETURN_VOID();
}

/*
 * pipeline_staging_ddl_end
 *		Event trigger on ddl_command_end: guards new partitions of staging
 *		tables and restamps the rows of attached ones.
 */
Datum
pipeline_staging_ddl_end(PG_FUNCTION_ARGS)
{
	run_event_trigger(fcinfo, staging_ddl_end);
	PG_RETURN_VOID();
}
