/*-------------------------------------------------------------------------
 *
 * capture_partitions.c
 *	  Capture of partitioned tables: every way a row enters or leaves one
 *	  reaches its change log.
 *
 * A statement addressed to a partitioned table fires that table's
 * statement triggers, whose transition tables hold the rows routed to any
 * partition (an UPDATE moving a row to another partition included); a
 * statement addressed to a partition fires that partition's triggers only.
 * So the captured table and every partition under it, at any depth, carry
 * the four capture triggers (capture.c), and a partition's triggers write
 * into the captured table's log.  What the triggers cannot see, DDL
 * statements do, and event triggers follow them:
 *
 *	CREATE TABLE ... PARTITION OF	the new partition gets the triggers;
 *	ATTACH PARTITION				the table (and its partitions) get the
 *									triggers, and its rows are logged as
 *									upserts;
 *	DETACH PARTITION				its rows are logged as deletes and its
 *									triggers dropped; CONCURRENTLY, which
 *									commits in two steps, is refused;
 *	DROP TABLE of a partition		its rows are logged as deletes before
 *									the drop (DROP SCHEMA ... CASCADE and
 *									other drops that take a partition
 *									without naming it are refused);
 *	TRUNCATE						each partition's BEFORE TRUNCATE trigger
 *									logs its rows (a partitioned table's logs
 *									nothing: it holds none).
 *
 * A partition is never captured on its own, and a captured table is never
 * attached as a partition: writes routed through the parent would miss its
 * triggers.  Every partition must be owned by the log's owner, who reads
 * its rows when it is truncated, attached, detached or dropped.  (No
 * foreign table can be a partition: the captured table's primary key is a
 * unique index, which PostgreSQL refuses to give one.)
 *
 * The rows of a partition attached, detached or dropped are read with the
 * latest snapshot while the partition (and its own partitions) are locked
 * ACCESS EXCLUSIVE: every write to them either committed before and was
 * logged by the triggers, or waits for the statement's commit.  They are
 * logged whether or not the log has readers: a reader joining later has
 * them in its snapshot and skips them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "model.h"
#include "base/base.h"
#include "sources/sources.h"

PG_FUNCTION_INFO_V1(pipeline_on_ddl_command_start);
PG_FUNCTION_INFO_V1(pipeline_on_ddl_command_end);

/*
 * What a DROP statement's ddl_command_start found, for its sql_drop: the
 * partitions of captured tables with their captured table, and those whose
 * rows it logged as deletes.  Valid in transaction 'drop_lxid' only (the
 * lists live in its TopTransactionContext), until the next DDL statement.
 */
static LocalTransactionId drop_lxid = InvalidLocalTransactionId;
static List *drop_partitions = NIL;
static List *drop_roots = NIL;
static List *drop_logged = NIL;

/*
 * pipeline_capture_members
 *		A table and, when it is partitioned, its partitions at every depth,
 *		locked in 'lockmode' (parents before their partitions, the order
 *		PostgreSQL locks them in).  An inheritance child of a plain table is
 *		no member: writes to it never were the table's.
 */
List *
pipeline_capture_members(Oid relation, LOCKMODE lockmode)
{
	if (lockmode != NoLock)
		LockRelationOid(relation, lockmode);
	if (get_rel_relkind(relation) != RELKIND_PARTITIONED_TABLE)
		return list_make1_oid(relation);
	return find_all_inheritors(relation, lockmode, NULL);
}

/*
 * read_captures
 *		Runs a query on pipeline.captures as the extension, with the latest
 *		snapshot: a REPEATABLE READ transaction too must see a capture
 *		committed since it began (its DDL waited for the capture's locks).
 *		Returns the number of rows.  The caller is connected to SPI.
 */
static int
read_captures(const char *sql, int nargs, Oid *types, Datum *values)
{
	PipelineUserContext ctx;
	SPIPlanPtr	plan;

	pipeline_become_internal(&ctx);
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.captures");
	SPI_freeplan(plan);
	pipeline_restore_user(&ctx);
	return (int) SPI_processed;
}

/*
 * capture_log
 *		The change log of captured table 'relation', or InvalidOid when it
 *		is not captured.  The caller is connected to SPI.
 */
static Oid
capture_log(Oid relation)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relation);
	bool		isnull;

	if (read_captures("SELECT change_log::oid FROM pipeline.captures WHERE relation = $1",
					  1, &type, &value) != 1)
		return InvalidOid;
	return DatumGetObjectId(pipeline_result_datum(0, 0, &isnull));
}

/*
 * refuse_partition
 *		Errors for a table that cannot be a partition of captured table
 *		'captured', whose log 'log_owner' owns: a table captured on its
 *		own, a table another role owns.  (A foreign table cannot be one:
 *		the captured table's primary key refuses it.)  The caller is
 *		connected to SPI.
 */
static void
refuse_partition(Oid partition, Oid captured, Oid log_owner)
{
	char	   *name = pipeline_qualified_name(partition);
	char	   *root = pipeline_qualified_name(captured);
	Oid			owner = pipeline_relation_owner(partition);

	if (partition != captured && OidIsValid(capture_log(partition)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is captured on its own and cannot be a partition of captured table %s",
						name, root),
				 errdetail("Its rows would be captured twice, into two change logs."),
				 errhint("Run SELECT pipeline.uncapture('%s') first.", name)));
	if (owner != log_owner)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("partition %s of captured table %s must be owned by role %s",
						name, root, GetUserNameFromId(log_owner, false)),
				 errdetail("It is owned by role %s; the change log of %s is written as role %s, which reads a partition's rows when it is truncated, attached, detached or dropped.",
						   GetUserNameFromId(owner, false), root,
						   GetUserNameFromId(log_owner, false)),
				 errhint("Keep the partitions owned by role %s: create or attach them as that role, or ALTER TABLE %s OWNER TO %s first.",
						 GetUserNameFromId(log_owner, false), name,
						 quote_identifier(GetUserNameFromId(log_owner, false)))));
}

/*
 * pipeline_refuse_capture_partitions
 *		Errors unless every partition of partitioned table 'relation' (the
 *		caller holds the lock that keeps them) can be captured with it into
 *		a log 'log_owner' owns, and none is being detached concurrently.
 *		The caller is connected to SPI.
 */
void
pipeline_refuse_capture_partitions(Oid relation, Oid log_owner)
{
	List	   *members = pipeline_capture_members(relation, NoLock);
	ListCell   *lc;
	Oid			type = OIDARRAYOID;
	Datum		value = pipeline_oid_list_to_array(members);
	PipelineUserContext ctx;
	int			n;

	foreach(lc, members)
		refuse_partition(lfirst_oid(lc), relation, log_owner);
	pipeline_become_internal(&ctx);
	n = pipeline_exec("SELECT inhrelid::regclass::text FROM pg_inherits "
					  "WHERE inhdetachpending AND inhparent = ANY ($1)",
					  1, &type, &value, NULL, false, 1);
	pipeline_restore_user(&ctx);
	if (n > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition %s of %s is being detached", pipeline_result_text(0, 0),
						pipeline_qualified_name(relation)),
				 errdetail("A DETACH PARTITION ... CONCURRENTLY did not finish."),
				 errhint("Run ALTER TABLE ... DETACH PARTITION %s FINALIZE, then capture the table.",
						 pipeline_result_text(0, 0))));
}

/*
 * log_rows
 *		Copies every row of 'relation' (a partition of captured table
 *		'captured', or one that was, and its own partitions) into the
 *		captured table's log 'log' as 'op' ('upsert' or 'delete').  As the
 *		log's owner; with the latest snapshot, so that a REPEATABLE READ
 *		transaction too reads what the locks the caller holds keep.  The
 *		caller is connected to SPI.
 */
static void
log_rows(Oid relation, Oid captured, Oid log, const char *op)
{
	PipelineUserContext ctx;
	SPIPlanPtr	plan;
	char	   *cols;

	/* rows row-level security hid from the log's owner would go unlogged */
	pipeline_require_whole_source(relation, pipeline_relation_owner(log));
	pipeline_add_missing_columns(captured, log);
	cols = pipeline_quote_list(pipeline_shared_columns(relation, log), NULL);
	pipeline_become_relation_owner(log, &ctx);
	plan = SPI_prepare(psprintf("INSERT INTO %s (%s, _op) SELECT %s, %s FROM %s",
								pipeline_qualified_name(log), cols, cols,
								quote_literal_cstr(op), pipeline_qualified_name(relation)),
					   0, NULL);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 false, true, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not log the rows of %s", pipeline_qualified_name(relation));
	SPI_freeplan(plan);
	pipeline_restore_user(&ctx);
}

/*
 * log_leaves
 *		log_rows for each table holding rows among 'members' (partitioned
 *		ones hold none) that is not in *done, adding them all to *done.
 */
static void
log_leaves(List *members, Oid captured, Oid log, const char *op, List **done)
{
	ListCell   *lc;

	foreach(lc, members)
	{
		Oid			member = lfirst_oid(lc);

		if (list_member_oid(*done, member))
			continue;
		if (get_rel_relkind(member) != RELKIND_PARTITIONED_TABLE)
			log_rows(member, captured, log, op);
		*done = lappend_oid(*done, member);
	}
}

/*
 * join_partition
 *		A table became a partition of captured table 'captured' (created as
 *		one, or attached with 'rows'): it and its own partitions get the
 *		capture triggers, and the rows it brings are logged as upserts.
 */
static void
join_partition(Oid partition, Oid captured, Oid log, bool rows)
{
	List	   *members = pipeline_capture_members(partition, AccessExclusiveLock);
	ListCell   *lc;

	foreach(lc, members)
		refuse_partition(lfirst_oid(lc), captured, pipeline_relation_owner(log));
	foreach(lc, members)
		pipeline_capture_create_triggers(lfirst_oid(lc));
	if (rows)
		log_rows(partition, captured, log, "upsert");
}

/*
 * leave_partition
 *		A partition left captured table 'captured' (DETACH): its rows, and
 *		those of its own partitions, are logged as deletes and their
 *		triggers dropped.
 */
static void
leave_partition(Oid partition, Oid captured, Oid log)
{
	List	   *members = pipeline_capture_members(partition, AccessExclusiveLock);
	List	   *done = NIL;
	ListCell   *lc;

	log_leaves(members, captured, log, "delete", &done);
	foreach(lc, members)
		pipeline_capture_drop_triggers(lfirst_oid(lc));
}

/*
 * refuse_captured_attach
 *		Errors when a table attached to a partitioned table that is not
 *		captured is captured itself: writes routed through its new parent
 *		would not fire its triggers.
 */
static void
refuse_captured_attach(Oid partition, Oid parent)
{
	if (!OidIsValid(capture_log(partition)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("captured table %s cannot be attached as a partition of %s",
					pipeline_qualified_name(partition), pipeline_qualified_name(parent)),
			 errdetail("Writes routed through %s would not fire the capture triggers of %s: its change log would miss them.",
					   pipeline_qualified_name(parent), pipeline_qualified_name(partition)),
			 errhint("Uncapture %s, attach it, then capture %s.",
					 pipeline_qualified_name(partition),
					 pipeline_qualified_name(pipeline_partition_root(parent)))));
}

/*
 * refuse_owner_change
 *		ddl_command_end of ALTER TABLE ... OWNER TO of a partition of a
 *		captured table: the new owner must be the log's (refuse_partition).
 */
static void
refuse_owner_change(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		Oid			table;
		Oid			captured;
		Oid			log;

		if (lfirst_node(AlterTableCmd, lc)->subtype != AT_ChangeOwner)
			continue;
		table = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(table) || !get_rel_relispartition(table))
			return;
		captured = pipeline_partition_root(table);
		log = capture_log(captured);
		if (OidIsValid(log))
			refuse_partition(table, captured, pipeline_relation_owner(log));
		return;
	}
}

/*
 * on_alter_table
 *		ddl_command_end of ALTER TABLE: ATTACH or DETACH PARTITION (see the
 *		file comment), and a partition's change of owner.
 */
static void
on_alter_table(AlterTableStmt *stmt)
{
	AlterTableType type;
	Oid			parent = InvalidOid;
	Oid			partition = InvalidOid;
	Oid			captured;
	Oid			log;

	if (pipeline_partition_command(stmt, &type, &parent, &partition) == NULL)
	{
		refuse_owner_change(stmt);
		return;
	}
	if (!OidIsValid(parent) || !OidIsValid(partition))
		return;
	captured = pipeline_partition_root(parent);
	log = capture_log(captured);
	if (type == AT_AttachPartition && !OidIsValid(log))
		refuse_captured_attach(partition, parent);
	else if (type == AT_AttachPartition)
		join_partition(partition, captured, log, true);
	else if (OidIsValid(log))
		leave_partition(partition, captured, log);
}

/*
 * on_created_tables
 *		ddl_command_end of CREATE TABLE (also inside CREATE SCHEMA): a table
 *		created as a partition of a captured table, or of one of its
 *		partitions, gets the capture triggers.  It has no rows yet.
 */
static void
on_created_tables(void)
{
	ListCell   *lc;

	foreach(lc, pipeline_created_partitions())
	{
		Oid			table = lfirst_oid(lc);
		Oid			captured = pipeline_partition_root(table);
		Oid			log = capture_log(captured);

		if (OidIsValid(log))
			join_partition(table, captured, log, false);
	}
}

/*
 * pipeline_on_ddl_command_end
 *		Event trigger on ddl_command_end: a partitioned table that is
 *		captured follows its partitions (see the file comment).
 */
Datum
pipeline_on_ddl_command_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "on_ddl_command_end must be called as an event trigger");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (IsA(trigdata->parsetree, AlterTableStmt))
		on_alter_table((AlterTableStmt *) trigdata->parsetree);
	else
		on_created_tables();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * refuse_partition_command
 *		ddl_command_start of ATTACH or DETACH PARTITION on a captured table:
 *		errors for attaching a table captured on its own (before
 *		PostgreSQL clones the captured table's row-level triggers onto it,
 *		which would fail on its own capture triggers' names), and for DETACH
 *		PARTITION ... CONCURRENTLY: it commits in two transactions, the
 *		partition half-attached between them, with no point where its rows
 *		leave the table for every reader at once.
 */
static void
refuse_partition_command(AlterTableStmt *stmt)
{
	AlterTableType type;
	Oid			parent = InvalidOid;
	Oid			partition = InvalidOid;
	PartitionCmd *pc = pipeline_partition_command(stmt, &type, &parent, &partition);
	Oid			captured;
	Oid			log;

	if (pc == NULL || !OidIsValid(parent))
		return;
	captured = pipeline_partition_root(parent);
	log = capture_log(captured);
	if (!OidIsValid(log))
		return;
	if (type == AT_AttachPartition && OidIsValid(partition) &&
		OidIsValid(capture_log(partition)))
		refuse_partition(partition, captured, pipeline_relation_owner(log));
	if (type != AT_DetachPartition || !pc->concurrent)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot detach a partition of captured table %s concurrently",
					pipeline_qualified_name(captured)),
			 errdetail("A concurrent detach commits in two steps; the change log records a detached partition's rows as deleted when it leaves the table."),
			 errhint("Use ALTER TABLE ... DETACH PARTITION without CONCURRENTLY.")));
}

/*
 * remember_partitions
 *		Before a DROP: the partitions of every captured table, with their
 *		captured table, so that sql_drop can tell a partition dropped
 *		without its rows logged (see pipeline_capture_check_dropped_partitions).
 */
static void
remember_partitions(void)
{
	List	   *captured = NIL;
	ListCell   *lc;
	MemoryContext old;
	int			n;

	n = read_captures("SELECT c.relation::oid FROM pipeline.captures c JOIN pg_class r "
					  "ON r.oid = c.relation WHERE r.relkind = 'p'", 0, NULL, NULL);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		captured = lappend_oid(captured, DatumGetObjectId(pipeline_result_datum(i, 0, &isnull)));
	}
	foreach(lc, captured)
	{
		List	   *members = pipeline_capture_members(lfirst_oid(lc), NoLock);
		ListCell   *mc;

		old = MemoryContextSwitchTo(TopTransactionContext);
		foreach(mc, members)
		{
			drop_partitions = lappend_oid(drop_partitions, lfirst_oid(mc));
			drop_roots = lappend_oid(drop_roots, lfirst_oid(lc));
		}
		MemoryContextSwitchTo(old);
	}
}

/*
 * log_dropped_partitions
 *		Before DROP TABLE: the rows of each partition of a captured table it
 *		names (and of their own partitions) are logged as deletes, once
 *		the parent and the partitions are locked as the drop locks them.
 *		A table the role does not own is left to the DROP's own error.
 *		Returns the tables whose rows were logged.
 */
static List *
log_dropped_partitions(DropStmt *stmt)
{
	List	   *done = NIL;
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		Oid			table = RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)), NoLock, true);
		Oid			captured;
		Oid			log;

		if (!OidIsValid(table) || !get_rel_relispartition(table) ||
			!pipeline_relation_ownercheck(table, GetUserId()))
			continue;
		captured = pipeline_partition_root(table);
		log = capture_log(captured);
		if (!OidIsValid(log))
			continue;
		LockRelationOid(get_partition_parent(table, true), AccessExclusiveLock);
		log_leaves(pipeline_capture_members(table, AccessExclusiveLock), captured, log,
				   "delete", &done);
	}
	return done;
}

/*
 * pipeline_on_ddl_command_start
 *		Event trigger on ddl_command_start: refuses attaching a table
 *		captured on its own to a captured table, and a concurrent detach
 *		from one; before a DROP, logs the rows of the partitions it names
 *		and remembers the others (see the file comment).
 */
Datum
pipeline_on_ddl_command_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;
	Node	   *parsetree;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "on_ddl_command_start must be called as an event trigger");
	parsetree = trigdata->parsetree;
	drop_lxid = pipeline_local_xid();
	drop_partitions = drop_roots = drop_logged = NIL;
	if (!IsA(parsetree, AlterTableStmt) && !IsA(parsetree, DropStmt) &&
		!IsA(parsetree, DropOwnedStmt))
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (IsA(parsetree, AlterTableStmt))
		refuse_partition_command((AlterTableStmt *) parsetree);
	else
	{
		List	   *logged = NIL;
		MemoryContext old;

		if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_TABLE)
			logged = log_dropped_partitions((DropStmt *) parsetree);
		/* after the logging, whose ALTER TABLE of the log comes here too */
		drop_lxid = pipeline_local_xid();
		drop_partitions = drop_roots = NIL;
		remember_partitions();
		old = MemoryContextSwitchTo(TopTransactionContext);
		drop_logged = list_copy(logged);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_capture_check_dropped_partitions
 *		In sql_drop: errors when the statement dropped a partition of a
 *		captured table without its captured table and without having logged
 *		its rows (a DROP SCHEMA ... CASCADE, DROP OWNED, ...): the rows
 *		are gone, and its readers would keep them.  A partition is known
 *		from what the DROP's start remembered.  The caller runs as the
 *		extension, connected to SPI.
 */
void
pipeline_capture_check_dropped_partitions(void)
{
	Oid			types[3] = {OIDARRAYOID, OIDARRAYOID, OIDARRAYOID};
	Datum		values[3];
	bool		current = drop_lxid == pipeline_local_xid();

	values[0] = pipeline_oid_list_to_array(current ? drop_partitions : NIL);
	values[1] = pipeline_oid_list_to_array(current ? drop_roots : NIL);
	values[2] = pipeline_oid_list_to_array(current ? drop_logged : NIL);
	if (pipeline_exec("SELECT t.object_identity FROM pg_event_trigger_dropped_objects() t "
					  "WHERE t.classid = 'pg_class'::regclass AND t.objsubid = 0 "
					  "AND t.objid <> ALL ($3) "
					  "AND NOT EXISTS (SELECT 1 FROM pipeline.captures c WHERE c.relation::oid = t.objid) "
					  "AND t.objid = ANY ($1) "
					  "AND NOT EXISTS (SELECT 1 FROM unnest($1, $2) m(partition, root) "
					  "     JOIN pg_event_trigger_dropped_objects() r ON r.classid = 'pg_class'::regclass "
					  "      AND r.objsubid = 0 AND r.objid = m.root WHERE m.partition = t.objid) "
					  "LIMIT 1", 3, types, values, NULL, true, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop %s, a partition of a captured table, this way",
						pipeline_result_text(0, 0)),
				 errdetail("The statement drops the partition without naming it, so its rows could not be recorded as deleted in the captured table's change log."),
				 errhint("DETACH the partition or DROP TABLE it by name first.")));
}
