/*-------------------------------------------------------------------------
 *
 * merge.c
 *	  The merge strategy (SCD type 1): each key's latest accepted event is
 *	  upserted into the target, or deletes its row.
 *
 * The target has a unique index on exactly the key (INSERT ... ON CONFLICT
 * needs one).  With sequence_by, a stored row is never overwritten by an
 * older event, and deletes are remembered in a tombstones table so that an
 * older event cannot bring a deleted row back.  The batch statement is
 * merge_sql.c's, or with joins to dimension tables, or a sequence_by the
 * target does not keep, merge_joins.c's, over a row state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "lib/stringinfo.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"
#include "strategy.h"

/*
 * is_key_index
 *		IndexMatch: a unique, valid, non-partial index on plain columns that
 *		are exactly the key (a List of column names), in any order -- what
 *		INSERT ... ON CONFLICT needs.
 */
static bool
is_key_index(Oid relid, HeapTuple tup, void *arg)
{
	return pipeline_index_on_exactly(relid, tup, (List *) arg) &&
		heap_attisnull(tup, Anum_pg_index_indpred, NULL);
}

/*
 * key_index_exists
 *		Whether the target has a unique index on exactly the key columns.
 */
static bool
key_index_exists(Oid target, List *key)
{
	return pipeline_has_index(target, is_key_index, key);
}

/*
 * pipeline_require_key_index
 *		Errors unless the target has a unique index on exactly the key, as
 *		a strategy upserting into it needs.
 */
void
pipeline_require_key_index(const PipelineDef *def)
{
	if (!key_index_exists(def->target, def->key))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("target %s has no unique index on the key (%s)",
						pipeline_qualified_name(def->target), pipeline_quote_list(def->key, NULL)),
				 errdetail("The %s strategy upserts with INSERT ... ON CONFLICT, which needs a unique index on exactly the key columns.",
						   def->strategy->name),
				 errhint("CREATE UNIQUE INDEX ON %s (%s);", pipeline_qualified_name(def->target),
						 pipeline_quote_list(def->key, NULL))));
}

/*
 * check_target
 *		An existing target: the owner may delete from it with delete_when
 *		(updating and reading it a keyed strategy needs anyway, define.c),
 *		and it has a unique index on exactly the key.
 */
static void
check_target(const PipelineDef *def)
{
	if (pipeline_has_delete_events(def))
		pipeline_require_privilege(def->owner, def->target, ACL_DELETE, "DELETE", "target");
	pipeline_require_key_index(def);
}

/*
 * target_elements
 *		A new target's primary key: the pipeline's key.
 */
static char *
target_elements(const PipelineDef *def, const PipelineMapping *map)
{
	return psprintf(", PRIMARY KEY (%s)", pipeline_quote_list(def->key, NULL));
}

/*
 * merge_sql
 *		The batch statement: merge_sql.c's, or with a row state (joins, or a
 *		kept sequence_by) merge_joins.c's.
 */
static char *
merge_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
		  const char *accepted)
{
	if (pipeline_keeps_source_rows(def))
		return pipeline_merge_joins_sql(def, map, accepted);
	return pipeline_merge_plain_sql(def, map, from, accepted);
}

/*
 * check_mapping
 *		With joins, the key and sequence_by come from the source row.
 */
static void
check_mapping(const PipelineDef *def, const PipelineMapping *map)
{
	if (def->joins != NIL)
		pipeline_merge_check_joins(def, map);
}

/*
 * create_state
 *		With joins, the row state of each key's source row; with a kept
 *		sequence_by, of each key's sequence.
 */
static void
create_state(PipelineDef *def, const PipelineMapping *map)
{
	if (pipeline_keeps_source_rows(def))
		pipeline_merge_create_row_state(def, map);
}

const PipelineStrategy pipeline_merge_strategy = {
	.name = "merge",
	.keyed = true,
	.check_target = check_target,
	.check_mapping = check_mapping,
	.target_elements = target_elements,
	.create_state = create_state,
	.batch_sql = merge_sql,
};
