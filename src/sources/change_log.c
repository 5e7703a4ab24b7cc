/*-------------------------------------------------------------------------
 *
 * change_log.c
 *	  Pipelines reading other pipelines' targets: the change log a target's
 *	  pipelines publish, and the DAG it makes.
 *
 * A curated table is updated in place, so it cannot serve as a source the
 * way a staging table does.  When a pipeline is defined on another
 * pipeline's target T, T gets a change log: a table <T>_changes next to
 * it, with T's columns plus _op ('upsert' or 'delete') and _for, made a
 * source like any staging table (_xid, _seq, their index).  From then on
 * every pipeline writing T adds its net changes to the log in the batch
 * statement that makes them (batch_sql.c): the row as upserted, or the row
 * as it was when deleted, so the log commits with the merge and its
 * cursor.  The downstream pipeline's source is the log; it consumes it
 * exactly once with its own cursor, like any source, and several
 * pipelines can read one log (fan-out).
 *
 * A pipeline joining a log starts from T's rows as they are: they are
 * copied into the log as upserts marked _for that pipeline (no other
 * consumer reads them), and its cursor starts at the snapshot of that copy
 * with the copy itself as its partial position, so that its first run
 * merges the copy before any change published meanwhile.  A change is in
 * the copy exactly when the cursor has consumed its published rows, as long
 * as every writer not visible in that snapshot publishes.  When the log has
 * readers already, every writer publishes, and the join locks no writer:
 * a role reading another role's table cannot hold its writers.  The first
 * reader must make the writers start publishing, which they see only once
 * it commits: it locks them out until then (their definitions FOR UPDATE,
 * which waits for a running batch), and only the table's owner, or a
 * member of the owning role, may do that (refuse_first_reader).
 *
 * Rows every consumer has consumed are deleted from the log at the start
 * of a consumer's run.  A pipeline joining the log holds the log's lock
 * exclusively until it commits; trimming takes it shared, without
 * waiting, so it never deletes rows the newcomer's cursor still needs.
 *
 * A pipeline joining a table as a dimension (joins => ..., joins_sql.c)
 * reads its log too, without a seed: it follows the changes from the
 * snapshot of its creation with a cursor of its own (the dimensions'
 * cursor), which trimming waits for like any reader's.
 *
 * The log stays as long as a pipeline reads it: dropping the last reader
 * drops it, and writers stop publishing.  Creating a writer, joining a
 * reader and dropping a log take one lock keyed on the target first, so
 * that a writer created while a reader joins is not saved without the log
 * (it would never publish to it), and a reader does not join a log the
 * last reader's drop is removing.  A pipeline that would close a
 * cycle (its target already feeds its source) is refused.
 *
 * A captured table (capture.c) has the same kind of log, written by its
 * triggers instead of by pipelines, from the capture on, whether or not
 * it has readers.  So every reader joins it as a reader joins a target's
 * log that has readers already: seeded from the table's rows, locking no
 * writer, whoever owns it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "model.h"
#include "base/base.h"
#include "cursor/cursor.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "sources/sources.h"

/* Advisory lock class of a change log: joiners exclusive, trimmers shared. */
#define CHANGE_LOG_LOCK_CLASS 0x504C

/* The most consumed rows a trim finds through the change log's index. */
#define TRIM_CHUNK 50000

/* Advisory lock class of a target: who writes it and who reads its log. */
#define TARGET_LOCK_CLASS 0x5054

/*
 * change_log_lock
 *		Takes the lock of a change log, for the rest of the transaction;
 *		false when 'wait' is false and someone else holds it.
 */
static bool
change_log_lock(Oid log, LOCKMODE mode, bool wait)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, log, CHANGE_LOG_LOCK_CLASS);
	return LockAcquire(&tag, mode, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * lock_target
 *		Serializes, until commit, the changes of who writes 'target' and who
 *		reads its change log (see the file comment): ShareLock to create a
 *		writer or to join a log that exists, ExclusiveLock to create the log
 *		or to drop it.  Taken before the catalog is read, so that what is
 *		read afterwards is what the other party committed.
 */
static void
lock_target(Oid target, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, target, TARGET_LOCK_CLASS);
	(void) LockAcquire(&tag, mode, false, false);
}

/*
 * unlock_target
 *		Releases a lock_target taken in 'mode' before commit: a joiner that
 *		found no log takes the exclusive lock instead.
 */
static void
unlock_target(Oid target, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, target, TARGET_LOCK_CLASS);
	(void) LockRelease(&tag, mode, false);
}

/*
 * exec_internal_oid
 *		Runs a query with one oid parameter as the extension; the number of
 *		rows it returned or changed.  Never read-only: it must see what this
 *		transaction just wrote (a log made a moment ago).
 */
static int
exec_internal_oid(const char *sql, Oid arg)
{
	PipelineUserContext ctx;
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(arg);
	int			n;

	pipeline_become_internal(&ctx);
	n = pipeline_exec(sql, 1, &type, &value, NULL, false, 0);
	pipeline_restore_user(&ctx);
	return n;
}

/*
 * is_log_own_column
 *		Whether a column name is one a change log has of its own.
 */
static bool
is_log_own_column(const char *name)
{
	return pipeline_is_change_log_column(name) || strcmp(name, PIPELINE_XID_COLUMN) == 0 ||
		strcmp(name, PIPELINE_SEQ_COLUMN) == 0;
}

/*
 * log_columns
 *		The columns of 'relation' its change log holds, in the relation's
 *		order, each as "name type" (with 'typed') or "name", quoted: every
 *		column but dropped ones and those named like the log's own (a column
 *		the relation gained after its log was made must not shadow them).
 *		With 'log' valid, only the columns it has (in_log) or lacks.
 */
static List *
log_columns(Oid relation, Oid log, bool in_log, bool typed)
{
	Relation	rel = table_open(relation, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *columns = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);

		if (att->attisdropped || is_log_own_column(name))
			continue;
		if (OidIsValid(log) && (get_attnum(log, name) != InvalidAttrNumber) != in_log)
			continue;
		columns = lappend(columns, typed
						  ? psprintf("%s %s", quote_identifier(name),
									 format_type_with_typemod(att->atttypid, att->atttypmod))
						  : pstrdup(name));
	}
	table_close(rel, AccessShareLock);
	return columns;
}

/*
 * pipeline_shared_columns
 *		The columns of 'relation' that its log 'log' has: what is copied
 *		into the log.
 */
List *
pipeline_shared_columns(Oid relation, Oid log)
{
	return log_columns(relation, log, true, false);
}

/*
 * pipeline_change_log_columns
 *		The columns a writer publishes: its target's columns the log also
 *		has, in target order.  A column added to the target since the log
 *		was made is added to the log at the writer's next run.
 */
List *
pipeline_change_log_columns(const PipelineDef *def)
{
	return pipeline_shared_columns(def->target, def->change_log);
}

/*
 * join_list
 *		"a, b, c" from a List of strings already quoted.
 */
static char *
join_list(List *items)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, items)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", (char *) lfirst(lc));
	return buf.data;
}

/*
 * pipeline_add_missing_columns
 *		Adds to a change log the columns its relation gained, so that they
 *		are published (the log's readers see a schema change of their
 *		source and follow their on_schema_change).  IF NOT EXISTS: two
 *		sessions may find the same column missing.
 */
void
pipeline_add_missing_columns(Oid relation, Oid log)
{
	List	   *missing = log_columns(relation, log, false, true);
	StringInfoData add;
	ListCell   *lc;

	if (missing == NIL)
		return;
	initStringInfo(&add);
	foreach(lc, missing)
		appendStringInfo(&add, "%sADD COLUMN IF NOT EXISTS %s", add.len ? ", " : "",
						 (char *) lfirst(lc));
	/* as the log's owner: a domain's CHECK runs on the new column's rows */
	pipeline_exec_as_relation_owner(log, psprintf("ALTER TABLE %s %s", pipeline_qualified_name(log),
												  add.data),
									0, NULL, NULL, NULL);
	CommandCounterIncrement();
}

/*
 * pipeline_sync_change_log
 *		Brings a writer's change log up to date with its target's columns.
 */
void
pipeline_sync_change_log(const PipelineDef *def)
{
	if (OidIsValid(def->change_log))
		pipeline_add_missing_columns(def->target, def->change_log);
}

/*
 * pipeline_create_change_log
 *		Creates the change log of 'target' (a pipeline's target, or a
 *		captured table), owned by the target's owner, and makes it a source.
 *		Returns its oid.
 */
Oid
pipeline_create_change_log(Oid target)
{
	Oid			nsp = get_rel_namespace(target);
	Oid			owner = pipeline_relation_owner(target);
	char	   *relname = ChooseRelationName(get_rel_name(target), NULL, "changes", nsp, false);
	char	   *name = quote_qualified_identifier(get_namespace_name(nsp), relname);
	PipelineUserContext ctx;
	Oid			log;
	const char *const own[] = {"_op", "_for", PIPELINE_XID_COLUMN, PIPELINE_SEQ_COLUMN};

	for (int i = 0; i < lengthof(own); i++)
		if (get_attnum(target, own[i]) != InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("target %s has a column named %s, which its change log needs",
							pipeline_qualified_name(target), own[i]),
					 errdetail("A pipeline reading another pipeline's target reads its change log: the target's columns plus _op, _for, _xid and _seq."),
					 errhint("Rename the column %s of %s.", own[i], pipeline_qualified_name(target))));

	pipeline_become_role(owner, "pg_catalog, pg_temp", &ctx);

	/*
	 * the columns and their types only: a NOT NULL the target drops later
	 * must not bind the log
	 */
	pipeline_exec(psprintf("CREATE TABLE %s (%s, _op text NOT NULL "
						   "CHECK (_op IN ('upsert', 'delete')), _for bigint)",
						   name, join_list(log_columns(target, InvalidOid, false, true))),
				  0, NULL, NULL, NULL, false, 0);
	pipeline_exec(psprintf("COMMENT ON TABLE %s IS %s", name,
						   quote_literal_cstr(psprintf("changes the pipelines writing %s made to it, read by the pipelines defined on it",
													   pipeline_qualified_name(target)))),
				  0, NULL, NULL, NULL, false, 0);
	CommandCounterIncrement();
	log = get_relname_relid(relname, nsp);
	pipeline_add_change_columns(log);
	pipeline_restore_user(&ctx);
	return log;
}

/*
 * grant_on_log
 *		Lets 'role' read or write the log, as the log's owner (nothing when
 *		the role owns it).  Writing takes a number from _seq's sequence too.
 */
static void
grant_on_log(Oid log, const char *privilege, Oid role)
{
	Oid			owner = pipeline_relation_owner(log);
	const char *grantee;
	PipelineUserContext ctx;

	if (role == owner)
		return;
	grantee = quote_identifier(GetUserNameFromId(role, false));
	pipeline_become_role(owner, "pg_catalog, pg_temp", &ctx);
	pipeline_exec(psprintf("GRANT %s ON %s TO %s", privilege, pipeline_qualified_name(log), grantee),
				  0, NULL, NULL, NULL, false, 0);
	if (strcmp(privilege, "INSERT") == 0 &&
		pipeline_exec(psprintf("SELECT pg_get_serial_sequence(%s, '_seq')",
							   quote_literal_cstr(pipeline_qualified_name(log))),
					  0, NULL, NULL, NULL, false, 1) == 1 && pipeline_result_text(0, 0) != NULL)
		pipeline_exec(psprintf("GRANT USAGE ON SEQUENCE %s TO %s", pipeline_result_text(0, 0), grantee),
					  0, NULL, NULL, NULL, false, 0);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_published_change_log
 *		For a new pipeline writing 'target': the target's change log when it
 *		has one (readers exist), with INSERT granted to 'owner'; else
 *		InvalidOid.
 */
Oid
pipeline_published_change_log(Oid target, Oid owner)
{
	Oid			log = InvalidOid;

	if (!OidIsValid(target))
		return InvalidOid;
	lock_target(target, ShareLock);
	log = pipeline_target_published_log(target);
	if (OidIsValid(log))
		grant_on_log(log, "INSERT", owner);
	return log;
}

/*
 * refuse_old_snapshot
 *		A reader joining a log starts from its table's rows as a snapshot
 *		taken after the join's locks shows them, which a transaction
 *		snapshot taken earlier would not.
 */
static void
refuse_old_snapshot(void)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("a pipeline reading another pipeline's target or a captured table must be created in a READ COMMITTED transaction"),
				 errdetail("It starts from the table's rows as of a snapshot taken after the locks it needs, which an older snapshot would not show."),
				 errhint("Run create_pipeline outside a REPEATABLE READ or SERIALIZABLE transaction.")));
}

/*
 * refuse_partial_reader
 *		A log holds every row and column of the table it mirrors: a reader
 *		joins it only if it may read the whole table (read_access.c), which
 *		the table's own row-level security and column privileges decide.
 */
static void
refuse_partial_reader(Oid table, Oid reader)
{
	pipeline_require_read_every_row(table, reader,
									psprintf("The change log a pipeline on %s reads",
											 pipeline_qualified_name(table)));
}

/*
 * refuse_first_reader
 *		Errors unless 'reader' may lock out the writers of 'relation' until
 *		its transaction commits, as the first reader of its change log must
 *		(see the file comment): only the relation's owner, or a member of
 *		the owning role, may.
 */
static void
refuse_first_reader(Oid relation, Oid reader)
{
	Oid			owner = pipeline_relation_owner(relation);
	const char *name = pipeline_qualified_name(relation);

	if (has_privs_of_role(reader, owner))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("only the owner of %s can create the first pipeline reading its changes", name),
			 errdetail("The first pipeline reading %s locks out its writers until its transaction commits; role %s does not own it.",
					   name, GetUserNameFromId(reader, false)),
			 errhint("Ask role %s to create a pipeline reading %s first: later pipelines of any role join its change log without locking its writers.",
					 GetUserNameFromId(owner, false), name)));
}

/*
 * join_capture
 *		pipeline_join_change_log for a captured table (or its log); InvalidOid
 *		when 'relation' is neither.  Its triggers log every write since the
 *		capture, so the join locks no writer, first reader or not.  The
 *		capture's row is share-locked, against uncapture.
 */
static Oid
join_capture(Oid relation, Oid reader)
{
	Oid			log;
	bool		isnull;

	if (exec_internal_oid("SELECT relation::oid, change_log::oid FROM pipeline.captures "
						  "WHERE relation = $1 OR change_log = $1 FOR SHARE", relation) == 0)
		return InvalidOid;
	log = DatumGetObjectId(pipeline_result_datum(0, 1, &isnull));
	refuse_partial_reader(DatumGetObjectId(pipeline_result_datum(0, 0, &isnull)), reader);
	refuse_old_snapshot();
	change_log_lock(log, ExclusiveLock, true);
	grant_on_log(log, "SELECT", reader);
	return log;
}

/*
 * refuse_sharded_writer
 *		Errors when a sharded pipeline writes a distributed target shard by
 *		shard: its statements run on the workers, beside no change log.
 */
static void
refuse_sharded_writer(Oid target)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(target);
	char	   *writer;

	if (pipeline_citus_kind(target) != CITUS_DISTRIBUTED ||
		pipeline_exec_internal("SELECT name FROM pipeline.pipeline_defs WHERE target = $1 AND sharded "
							   "ORDER BY id LIMIT 1", 1, &type, &value, NULL) == 0)
		return;
	writer = pipeline_result_text(0, 0);
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("the changes of %s cannot be followed", pipeline_qualified_name(target)),
			 errdetail("Sharded pipeline \"%s\" writes it shard by shard, on the workers, where no change log is kept.",
					   writer),
			 errhint("Append from the distributed staging table into a table on the coordinator (each batch is routed there, with its change log), and read that table.")));
}

/*
 * create_target_log
 *		The first reader of a target: locks its writers' definitions FOR
 *		UPDATE (which waits for their running batches and holds their next
 *		ones until commit), creates the log and makes every writer publish
 *		to it.
 */
static Oid
create_target_log(Oid target)
{
	Oid			log;
	List	   *writers;
	ListCell   *lc;

	refuse_sharded_writer(target);
	pipeline_lock_writers(target);
	log = pipeline_create_change_log(target);
	change_log_lock(log, ExclusiveLock, true);
	writers = pipeline_publish_target(target, log);
	/* every writer's owner appends to the log */
	foreach(lc, writers)
		grant_on_log(log, "INSERT", lfirst_oid(lc));
	return log;
}

/*
 * pipeline_join_change_log
 *		When 'relation' is a pipeline's target or a captured table (or its
 *		change log), returns the change log a new pipeline owned by 'reader'
 *		reads instead, creating it on first use; else InvalidOid.
 *
 *		Joining a log that exists locks no writer: the new reader's copy of
 *		the table and its cursor come from one snapshot taken afterwards
 *		(pipeline_seed_change_log), and every writer not visible in that
 *		snapshot publishes to the log.  Only the first reader must lock the
 *		writers until commit, so that none of them commits unpublished
 *		after the copy; only the table's owner may be it (refuse_first_reader).
 *		A captured table's triggers always log: none of its readers locks
 *		a writer.
 */
Oid
pipeline_join_change_log(Oid relation, Oid reader)
{
	Oid			target;
	Oid			log;
	LOCKMODE	mode;

	log = join_capture(relation, reader);
	if (OidIsValid(log))
		return log;
	if (!pipeline_target_log(relation, &target, &log))
		return InvalidOid;
	mode = OidIsValid(log) ? ShareLock : ExclusiveLock;
	lock_target(target, mode);
	/* as committed once the lock is ours: the log may have come or gone */
	if (!pipeline_target_log(relation, &target, &log))
		return InvalidOid;
	if (!OidIsValid(log) && mode == ShareLock)
	{
		unlock_target(target, ShareLock);
		lock_target(target, ExclusiveLock);
		if (!pipeline_target_log(relation, &target, &log))
			return InvalidOid;
	}
	refuse_partial_reader(target, reader);
	refuse_old_snapshot();
	if (OidIsValid(log))
		change_log_lock(log, ExclusiveLock, true);
	else
	{
		refuse_first_reader(target, reader);
		log = create_target_log(target);
	}
	grant_on_log(log, "SELECT", reader);
	CommandCounterIncrement();
	return log;
}

/*
 * pipeline_check_change_log_reader
 *		At each run of a pipeline reading a change log, or following its
 *		dimensions': its owner must still be allowed to read every row and
 *		column of the table the log mirrors (row-level security enabled or
 *		a column privilege revoked since it joined ends its reading).
 */
void
pipeline_check_change_log_reader(const PipelineDef *def)
{
	Oid			table;
	ListCell   *lc;

	foreach(lc, def->joins)
		refuse_partial_reader(((DimensionJoin *) lfirst(lc))->dimension, def->owner);
	if (!def->reads_change_log)
		return;
	table = pipeline_mirrored_table(def->source);
	if (OidIsValid(table))
		refuse_partial_reader(table, def->owner);
}

/*
 * pipeline_seed_change_log
 *		Copies the table whose log 'def' reads into the log, as upserts for
 *		'def' alone, and returns its first cursor: the copy's snapshot, so
 *		that a writer's change is in the copy exactly when the cursor has
 *		consumed its published rows.
 */
Datum
pipeline_seed_change_log(const PipelineDef *def)
{
	PipelineUserContext ctx;
	Oid			target = pipeline_mirrored_table(def->source);
	Snapshot	snapshot;
	SPIPlanPtr	plan;
	char	   *cols;
	Datum		cursor;

	if (!OidIsValid(target))
		elog(ERROR, "change log %u has no table", def->source);

	cols = pipeline_quote_list(pipeline_shared_columns(target, def->source), NULL);
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	/* the log's triggers and its columns' domain checks run as its owner */
	pipeline_become_relation_owner(def->source, &ctx);
	plan = SPI_prepare(psprintf("INSERT INTO %s (%s, _op, _for) SELECT %s, 'upsert', %lld FROM %s",
								pipeline_qualified_name(def->source), cols, cols,
								(long long) def->id, pipeline_qualified_name(target)),
					   0, NULL);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, snapshot, InvalidSnapshot, false, true, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not seed change log %s", pipeline_qualified_name(def->source));
	SPI_freeplan(plan);
	pipeline_restore_user(&ctx);
	cursor = pipeline_seed_cursor(snapshot);
	UnregisterSnapshot(snapshot);
	return cursor;
}

/*
 * trim_log
 *		Deletes the rows of change log 'log' that every reader has
 *		consumed.  Skipped while a new reader joins the log.  The horizon
 *		is read from the catalog as the extension, the rows are deleted as
 *		the log's owner.
 */
static void
trim_log(Oid log)
{
	Oid			type = XID8OID;
	Datum		horizon;
	bool		isnull;

	if (!change_log_lock(log, ShareLock, false))
		return;
	/* what every reader consumed, from the catalog, as the extension */
	horizon = pipeline_readers_horizon(log, &isnull);
	if (isnull)
		return;

	/*
	 * The delete, as the log's owner: its triggers run with no more than
	 * that.  The consumed rows are found through the (_xid, _seq) index, up
	 * to a chunk of them: a plain "WHERE _xid < $1" is planned from
	 * statistics a queue's churn makes stale, and a sequential scan of a log
	 * that once held many rows reads all its pages at every run.  Only when a
	 * whole chunk went, more than a chunk are consumed (a seed, a backlog):
	 * the rest is deleted by the plain statement, as planned.
	 */
	if (pipeline_exec_as_relation_owner(log,
										psprintf("DELETE FROM %s WHERE ctid = ANY (ARRAY("
												 "SELECT ctid FROM %s WHERE _xid < $1 "
												 "ORDER BY _xid, _seq LIMIT %d)) AND _xid < $1",
												 pipeline_qualified_name(log),
												 pipeline_qualified_name(log), TRIM_CHUNK),
										1, &type, &horizon, NULL) == TRIM_CHUNK)
		pipeline_exec_as_relation_owner(log,
										psprintf("DELETE FROM %s WHERE _xid < $1",
												 pipeline_qualified_name(log)),
										1, &type, &horizon, NULL);
}

/*
 * pipeline_trim_change_log
 *		Trims the change logs a pipeline reads: its source's, and its
 *		dimensions'.
 */
void
pipeline_trim_change_log(const PipelineDef *def)
{
	ListCell   *lc;

	if (def->reads_change_log)
		trim_log(def->source);
	foreach(lc, def->joins)
		trim_log(((DimensionJoin *) lfirst(lc))->change_log);
}

/*
 * pipeline_release_change_logs
 *		Drops the change logs no pipeline reads any more; their writers stop
 *		publishing.
 */
void
pipeline_release_change_logs(void)
{
	ListCell   *lc;

	foreach(lc, pipeline_unread_change_logs())
	{
		Oid			log = lfirst_oid(lc);
		ListCell   *t;

		foreach(t, pipeline_change_log_targets(log))
			lock_target(lfirst_oid(t), ExclusiveLock);
		/* a reader that joined meanwhile keeps the log */
		if (pipeline_has_readers(log))
			continue;
		pipeline_unpublish_change_log(log);
		pipeline_drop_own_table(log);
	}
}

/*
 * pipeline_refuse_last_writer_drop
 *		Errors when dropping 'def' would leave the pipelines reading its
 *		target's change log without a writer.
 */
void
pipeline_refuse_last_writer_drop(const PipelineDef *def)
{
	/* names of other roles' pipelines are theirs: counted, not named */
	char	   *readers = pipeline_readers_left_without_writer(def, GetUserId());

	if (readers == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop pipeline \"%s\" because pipelines read its target", def->name),
			 errdetail("Pipelines reading %s through its change log: %s.",
					   pipeline_qualified_name(def->target), readers),
			 errhint("Drop those pipelines first.")));
}

/*
 * pipeline_refuse_cycle
 *		Errors when a pipeline from 'source' (a relation, or a change log:
 *		its target counts) to 'target' would close a cycle: when the target
 *		already feeds the source through other pipelines.
 */
void
pipeline_refuse_cycle(Oid source, Oid target)
{
	char	   *path;

	if (!OidIsValid(target))
		return;
	path = pipeline_cycle_path(source, target, GetUserId());
	if (path == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("pipeline would close a cycle: its target %s already feeds its source",
					pipeline_qualified_name(target)),
			 errdetail("%s%s -> back to this pipeline's source.", pipeline_qualified_name(target), path),
			 errhint("Pipelines form a DAG; write to a table that does not feed the source.")));
}
