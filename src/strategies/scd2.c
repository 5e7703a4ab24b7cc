/*-------------------------------------------------------------------------
 *
 * scd2.c
 *	  The scd2 strategy (slowly changing dimension, type 2): its options,
 *	  the columns whose changes it tracks, the shape of its target, and the
 *	  lock that keeps two batches from rewriting one target's history at
 *	  once.
 *
 * An scd2 target keeps every version of each key: the mapped columns plus
 * __start_at and __end_at, typed as the sequence_by column.  A version is
 * valid from its __start_at (included) to its __end_at (excluded), and is
 * current while __end_at is NULL.  Two unique indexes keep the history
 * sound whoever writes it: one on the key WHERE __end_at IS NULL, so that
 * no key ever has two current versions, and one on (key, __start_at), one
 * version per start, by which a batch finds the versions it rewrites.
 *
 * scd2_sql.c builds the batch statement that slots events into the
 * history.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "parser/parse_coerce.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"
#include "strategy.h"

/* Advisory lock class of an scd2 target: its batches run one at a time. */
#define SCD2_LOCK_CLASS 0x5344

/* The columns of a version's validity, which scd2 writes itself. */
static const char *const version_columns[] = {PIPELINE_START_COLUMN, PIPELINE_END_COLUMN, NULL};

/*
 * check_options
 *		The options that concern scd2: track_history only with it; with it,
 *		sequence_by is required and the version columns are not mapped.
 */
static void
check_options(const PipelineDef *def)
{
	char	   *expr;

	if (def->sequence_by == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the scd2 strategy needs sequence_by"),
				 errdetail("A version starts at the sequence_by value of the event that opened it and ends at that of the event that replaced or deleted it."),
				 errhint("Pass sequence_by => 'updated_at' (a column that orders the events of a key).")));
	for (int i = 0; version_columns[i] != NULL; i++)
		if (pipeline_mapping_lookup(def->columns, version_columns[i], &expr) && expr != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("columns must not map \"%s\"", version_columns[i]),
					 errdetail("The scd2 strategy writes __start_at and __end_at itself, from the sequence_by values of the events."),
					 errhint("Remove \"%s\" from columns.", version_columns[i])));
}

/*
 * check_track_history
 *		Every track_history entry is a mapped column other than the key and
 *		sequence_by, named once.
 */
static void
check_track_history(const PipelineDef *def, const PipelineMapping *map)
{
	ListCell   *lc;

	foreach(lc, def->track_history)
	{
		char	   *column = lfirst(lc);
		ColumnMap  *cm = pipeline_mapping_column(map, column);
		bool		is_seq = strcmp(column, def->sequence_by) == 0;

		if (cm == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("track_history column \"%s\" is not a column of the pipeline's target", column),
					 errdetail("The target's mapped columns are: %s.", pipeline_mapping_column_list(map)),
					 errhint("Name mapped columns other than the key and sequence_by (names are exact, without SQL quoting).")));
		if (cm->is_key || is_seq)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("track_history must not name the %s column \"%s\"",
							cm->is_key ? "key" : "sequence_by", column),
					 cm->is_key
					 ? errdetail("The key identifies the versions of a row; it never changes within them.")
					 : errdetail("The sequence_by value changes with every event: tracking it would open a version per event."),
					 errhint("Remove \"%s\" from track_history.", column)));
		for (ListCell *other = lnext(def->track_history, lc); other;
			 other = lnext(def->track_history, other))
			if (strcmp(lfirst(other), column) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("track_history names column \"%s\" twice", column),
						 errdetail("track_history is a set of columns."),
						 errhint("Name each column once.")));
	}
}

/*
 * column_type
 *		The type of a column of the target; errors when it has none, with
 *		the statement that would add it (of the sequence_by column's type).
 */
static Oid
column_type(const PipelineDef *def, const char *column, Oid seq_type)
{
	AttrNumber	att = get_attnum(def->target, column);
	char	   *target = pipeline_qualified_name(def->target);

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("target %s has no column %s", target, column),
				 errdetail("An scd2 target keeps each version's validity in __start_at and __end_at, of the type of its sequence_by column \"%s\".",
						   def->sequence_by),
				 errhint("ALTER TABLE %s ADD COLUMN %s %s;", target, column,
						 format_type_be(seq_type))));
	return get_atttype(def->target, att);
}

/*
 * is_current_index
 *		IndexMatch: a unique index on exactly the key (arg: List of names)
 *		whose predicate is "__end_at IS NULL".
 */
static bool
is_current_index(Oid relid, HeapTuple tup, void *arg)
{
	Datum		pred;
	bool		isnull;
	Node	   *node;

	if (!pipeline_index_on_exactly(relid, tup, (List *) arg))
		return false;
	pred = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indpred, &isnull);
	if (isnull)
		return false;
	node = stringToNode(TextDatumGetCString(pred));
	if (IsA(node, List) && list_length((List *) node) == 1)
		node = linitial((List *) node);
	return IsA(node, NullTest) && ((NullTest *) node)->nulltesttype == IS_NULL &&
		IsA(((NullTest *) node)->arg, Var) &&
		((Var *) ((NullTest *) node)->arg)->varattno == get_attnum(relid, PIPELINE_END_COLUMN);
}

/*
 * is_start_index
 *		IndexMatch: a unique, non-partial index on exactly (key, __start_at)
 *		(arg: that List of names).
 */
static bool
is_start_index(Oid relid, HeapTuple tup, void *arg)
{
	return pipeline_index_on_exactly(relid, tup, (List *) arg) &&
		heap_attisnull(tup, Anum_pg_index_indpred, NULL);
}

/*
 * start_index_columns
 *		(key, __start_at) as a List of names.
 */
static List *
start_index_columns(const PipelineDef *def)
{
	return lappend(list_copy(def->key), PIPELINE_START_COLUMN);
}

/*
 * current_index_sql
 *		The CREATE UNIQUE INDEX that keeps one current version per key of
 *		'target' (a quoted name).
 */
static char *
current_index_sql(const PipelineDef *def, const char *target)
{
	return psprintf("CREATE UNIQUE INDEX ON %s (%s) WHERE %s IS NULL", target,
					pipeline_quote_list(def->key, NULL), PIPELINE_END_COLUMN);
}

/*
 * check_target_shape
 *		An existing target has the version columns, typed as its sequence_by
 *		column, and both unique indexes; every mapped expression can be
 *		assigned to its column (the batch statement compares events with
 *		stored versions in the columns' types).
 */
static void
check_target_shape(const PipelineDef *def, const PipelineMapping *map)
{
	char	   *target = pipeline_qualified_name(def->target);
	char	   *keys = pipeline_quote_list(def->key, NULL);
	Oid			seq_type = get_atttype(def->target, get_attnum(def->target, def->sequence_by));
	ListCell   *lc;

	for (int i = 0; version_columns[i] != NULL; i++)
	{
		Oid			type = column_type(def, version_columns[i], seq_type);

		if (type != seq_type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %s of target %s is of type %s, not %s like its sequence_by column \"%s\"",
							version_columns[i], target, format_type_be(type),
							format_type_be(seq_type), def->sequence_by),
					 errdetail("__start_at and __end_at hold sequence_by values."),
					 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s;", target, version_columns[i],
							 format_type_be(seq_type))));
	}
	if (!pipeline_has_index(def->target, is_current_index, def->key))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("target %s has no unique index on the key (%s) of its current versions",
						target, keys),
				 errdetail("No key may have two current versions (__end_at IS NULL); a unique partial index guarantees it, whoever writes the target."),
				 errhint("%s;", current_index_sql(def, target))));
	if (!pipeline_has_index(def->target, is_start_index, start_index_columns(def)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("target %s has no unique index on (%s, __start_at)", target, keys),
				 errdetail("Each version of a key has a start of its own, by which a batch finds the versions it rewrites."),
				 errhint("CREATE UNIQUE INDEX ON %s (%s, __start_at);", target, keys)));

	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		Oid			type = get_atttype(def->target, get_attnum(def->target, cm->column));

		if (!can_coerce_type(1, &cm->typid, &type, COERCION_ASSIGNMENT))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("pipeline \"%s\" cannot write its target: column \"%s\" is of type %s but expression is of type %s",
							def->name, cm->column, format_type_be(type), format_type_be(cm->typid)),
					 errdetail("The expression is: %s", cm->expr),
					 errhint("Cast the expression in columns, for example {\"%s\": \"(...)::%s\"}.",
							 cm->column, format_type_be(type))));
	}
}

/*
 * check_mapping
 *		Checks an scd2 definition once its mapping is typed: sequence_by is
 *		not part of the key, track_history is sound, and an existing target
 *		has the shape scd2 needs.
 */
static void
check_mapping(const PipelineDef *def, const PipelineMapping *map)
{
	if (pipeline_mapping_column(map, def->sequence_by)->is_key)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sequence_by column \"%s\" must not be part of the key", def->sequence_by),
				 errdetail("The scd2 strategy keeps the versions of a key in sequence_by order."),
				 errhint("Name a key that identifies a row and a sequence_by column that orders its events.")));
	check_track_history(def, map);
	if (map->target_exists)
		check_target_shape(def, map);
}

/*
 * target_elements
 *		", __start_at T NOT NULL, __end_at T, ...": what a new scd2 target
 *		has after its mapped columns (T is the sequence_by column's type).
 */
static char *
target_elements(const PipelineDef *def, const PipelineMapping *map)
{
	ColumnMap  *seq = pipeline_mapping_column(map, def->sequence_by);
	char	   *type = format_type_with_typemod(seq->typid, seq->typmod);

	return psprintf(", %s %s NOT NULL, %s %s, CHECK (%s >= %s), PRIMARY KEY (%s, %s)",
					PIPELINE_START_COLUMN, type, PIPELINE_END_COLUMN, type,
					PIPELINE_END_COLUMN, PIPELINE_START_COLUMN,
					pipeline_quote_list(def->key, NULL), PIPELINE_START_COLUMN);
}

/*
 * target_extras
 *		After a new target: the unique index that keeps one current version
 *		per key.
 */
static List *
target_extras(const PipelineDef *def, const char *target)
{
	return list_make1(current_index_sql(def, target));
}

/*
 * begin_batch
 *		Before a batch of an scd2 pipeline: waits until no other batch writes
 *		the target's versions, for the rest of the transaction, so that the
 *		batch statement, whose snapshot is taken afterwards, reads every
 *		version committed before it.  A transaction snapshot (REPEATABLE
 *		READ, SERIALIZABLE) would be older than the lock: refused.
 */
static void
begin_batch(const PipelineDef *def)
{
	LOCKTAG		tag;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("scd2 pipeline \"%s\" must run in a READ COMMITTED transaction", def->name),
				 errdetail("A batch rewrites the versions of %s as other pipelines left them, which a transaction snapshot taken before it may not show.",
						   pipeline_qualified_name(def->target)),
				 errhint("Run it outside a REPEATABLE READ or SERIALIZABLE transaction.")));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, def->target, SCD2_LOCK_CLASS);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * is_version_index
 *		Whether an index is one of the two unique indexes of an scd2 target,
 *		or of one of its partitions (which reports the violations).
 */
static bool
is_version_index(const PipelineDef *def, Oid index)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(index));
	Oid			rel;
	bool		result;

	if (!HeapTupleIsValid(tup))
		return false;
	rel = ((Form_pg_index) GETSTRUCT(tup))->indrelid;
	result = (rel == def->target ||
			  (get_rel_relispartition(rel) &&
			   list_member_oid(get_partition_ancestors(rel), def->target))) &&
		(is_current_index(rel, tup, def->key) ||
		 is_start_index(rel, tup, start_index_columns(def)));
	ReleaseSysCache(tup);
	return result;
}

/*
 * check_error
 *		A batch failed with 'edata'.  A batch never breaks the target's
 *		version indexes over the versions it read, so a unique violation of
 *		one means that another transaction wrote versions of the same key
 *		meanwhile (a hand-written change; pipelines take the lock above):
 *		raised as a serialization failure, to retry, instead of
 *		quarantining a good event.
 */
static void
check_error(const PipelineDef *def, const ErrorData *edata)
{
	if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION ||
		edata->constraint_name == NULL || edata->schema_name == NULL ||
		!is_version_index(def, get_relname_relid(edata->constraint_name,
												 get_namespace_oid(edata->schema_name, true))))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not serialize access to the versions of %s",
					pipeline_qualified_name(def->target)),
			 errdetail("Another transaction wrote versions of the same key while the batch ran: %s%s%s",
					   edata->message, edata->detail ? " " : "", edata->detail ? edata->detail : ""),
			 errhint("Run the pipeline again (its background workers retry by themselves); write the target only through its pipelines.")));
}

/*
 * check_target
 *		An existing target: the owner may delete from it (a late event
 *		merges versions into their neighbour; updating and reading it a
 *		keyed strategy needs anyway, define.c).  Its version columns and
 *		indexes are checked with the mapping (check_mapping).
 */
static void
check_target(const PipelineDef *def)
{
	pipeline_require_privilege(def->owner, def->target, ACL_DELETE, "DELETE", "target");
}


const PipelineStrategy pipeline_scd2_strategy = {
	.name = "scd2",
	.keyed = true,
	.versioned = true,
	.counts_stale = true,
	.own_columns = version_columns,
	.check_options = check_options,
	.check_target = check_target,
	.check_mapping = check_mapping,
	.target_elements = target_elements,
	.target_extras = target_extras,
	.batch_sql = pipeline_scd2_sql,
	.shard_ctes = pipeline_scd2_shard_ctes,
	.begin_batch = begin_batch,
	.check_error = check_error,
};
