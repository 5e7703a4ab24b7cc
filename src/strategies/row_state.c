/*-------------------------------------------------------------------------
 *
 * row_state.c
 *	  What the strategies that keep a row state (<target>_rows: aggregate,
 *	  and merge with joins) keep of each source row alike: with joins, the
 *	  source row itself and its join columns, which a dimension's change
 *	  finds it by (joins_sql.c); and the deletes they remember, forgotten
 *	  after tombstone_retention.
 *
 * A row state row is keyed by the row's identity (__pl_k<j>,
 * pipeline_row_keys) and, where it tracks liveness, says whether the row
 * is in the result (__pl_live) and since when it was deleted
 * (__pl_deleted_at: NULL for a row only left out of the result, by an
 * inner join or the filter, which a dimension's change may bring back).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"

/*
 * pipeline_source_column_type
 *		The type of a source column, as SQL.
 */
char *
pipeline_source_column_type(const PipelineDef *def, const char *column)
{
	return pipeline_column_type_sql(def->source, get_attnum(def->source, column));
}

/*
 * pipeline_row_state_key_match
 *		"r.__pl_k0 = l.k1 AND ...": a row state row (alias r) and a batch
 *		row (alias l) of the same key.
 */
char *
pipeline_row_state_key_match(const PipelineDef *def, const char *r, const char *l)
{
	StringInfoData buf;
	ListCell   *lc;
	ListCell   *lk;
	List	   *row_keys = pipeline_row_keys(def);

	initStringInfo(&buf);
	forboth(lk, row_keys, lc, def->key)
		appendStringInfo(&buf, "%s%s.%s = %s.%s", buf.len ? " AND " : "", r, (char *) lfirst(lk),
						 l, quote_identifier(lfirst(lc)));
	return buf.data;
}

/*
 * pipeline_join_state_elements
 *		", __pl_fact jsonb, __pl_j0_0 <type>, ...": the row state's columns
 *		of a pipeline with joins ("" without).
 */
char *
pipeline_join_state_elements(const PipelineDef *def)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	if (def->joins != NIL)
		appendStringInfoString(&buf, ", " PIPELINE_ROW_FACT " jsonb");
	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);
		int			j = foreach_current_index(lc);
		ListCell   *ls;

		foreach(ls, join->source_columns)
			appendStringInfo(&buf, ", " PIPELINE_ROW_JOIN_KEY " %s", j, foreach_current_index(ls),
							 pipeline_source_column_type(def, lfirst(ls)));
	}
	return buf.data;
}

/*
 * pipeline_index_join_state
 *		One index of the row state per join, on its join columns: a
 *		dimension's change finds the rows that join it through it.
 */
void
pipeline_index_join_state(const PipelineDef *def)
{
	ListCell   *lc;

	foreach(lc, def->joins)
		pipeline_exec_as_owner(def, psprintf("CREATE INDEX ON %s (%s)",
											 pipeline_qualified_name(def->row_state),
											 pipeline_quote_list(pipeline_join_key_columns(foreach_current_index(lc),
																						   lfirst(lc)), NULL)));
}

/*
 * pipeline_join_state_columns
 *		The row state's join columns: __pl_fact, then each join's
 *		__pl_j<j>_<i>; NIL without joins.
 */
List *
pipeline_join_state_columns(const PipelineDef *def)
{
	List	   *columns = NIL;
	ListCell   *lc;

	if (def->joins == NIL)
		return NIL;
	columns = lappend(columns, PIPELINE_ROW_FACT);
	foreach(lc, def->joins)
		columns = list_concat(columns, pipeline_join_key_columns(foreach_current_index(lc),
																 lfirst(lc)));
	return columns;
}

/*
 * pipeline_join_state_values
 *		", CASE WHEN <deleted> THEN NULL ELSE __pl_fact END, __pl_j0_0, ...":
 *		the values of the join columns from a batch row, the source row
 *		forgotten once deleted; "" without joins.
 */
char *
pipeline_join_state_values(const PipelineDef *def, const char *deleted)
{
	List	   *columns = pipeline_join_state_columns(def);

	if (columns == NIL)
		return "";
	/* every join has a column: the list goes on after __pl_fact */
	return psprintf(", CASE WHEN %s THEN NULL ELSE " PIPELINE_ROW_FACT " END, %s", deleted,
					pipeline_quote_list(list_delete_first(columns), NULL));
}

/*
 * pipeline_forget_row_deletes
 *		The row state remembers deleted rows (not live, with the time of
 *		their delete) so that an older event cannot bring them back; past
 *		the tombstone_retention it forgets them, as merge forgets its
 *		tombstones.  Rows left out of the result but not deleted stay.
 */
void
pipeline_forget_row_deletes(const PipelineDef *def)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(def->tombstone_retention);

	/* with joins, only delete_when deletes (the others leave the result) */
	if (!OidIsValid(def->row_state) || def->sequence_by == NULL || !pipeline_has_delete_events(def) ||
		(def->joins != NIL && def->delete_when == NULL))
		return;
	pipeline_exec_as_relation_owner(def->row_state,
									psprintf("DELETE FROM %s WHERE NOT __pl_live AND __pl_deleted_at < now() - $1::interval",
											 pipeline_qualified_name(def->row_state)),
									1, &type, &value, NULL);
}
