/*-------------------------------------------------------------------------
 *
 * merge_joins.c
 *	  The merge strategy with joins to dimension tables (enrichment: orders
 *	  with their customer's and product's columns): the row state it keeps
 *	  of each key's source row, and its batch statement.  A merge whose
 *	  sequence_by the target does not keep (sequence.c: an expression over
 *	  the source row, such as a Debezium event's _lsn) keeps its row state
 *	  the same way, without source rows.
 *
 * A target row is a source row joined to the dimensions.  A dimension's
 * change must reach the target rows that joined it, long after their
 * source rows were consumed, so the pipeline keeps each key's latest
 * source row in the row state <target>_rows (row_state.c): keyed by the
 * key (__pl_k<j>), with its sequence_by value (__pl_sq), whether the
 * target has the row (__pl_live), the source row (__pl_fact) and its join
 * columns.  A dimension's change sends the source rows that join it through
 * the batch statement again (joins_sql.c), which writes their target rows
 * as they join now.
 *
 * The row state decides which event of a key is the latest: an event
 * older (by sequence_by) than the key's kept source row is stale.  A
 * delete event deletes the target row; the source row is kept, to be sent
 * again, when only an inner join or the filter left it out, and forgotten
 * when delete_when deleted it (with sequence_by, remembered as deleted for
 * tombstone_retention, as the tombstone table of a merge without joins
 * remembers its deletes).  A key's target row is therefore computed from
 * source columns only: a key or sequence_by mapped from a dimension's
 * column is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"

/*
 * refuse_dimension_column
 *		Errors when a key or sequence_by column's mapping reads a
 *		dimension: a target row is found again by its key, and ordered by
 *		its sequence, from its source row alone.  The caller runs as the
 *		owner.
 */
static void
refuse_dimension_column(const PipelineDef *def, const ColumnMap *cm, const char *what)
{
	/* (an unmapped key column is refused with the definition's other errors) */
	if (cm == NULL || !pipeline_expression_reads_dimensions(def, cm->expr))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s column \"%s\" of a pipeline with joins must be computed from the source row",
					what, cm->column),
			 errdetail("Its mapping reads a dimension: %s", cm->expr),
			 errhint("Map the %s from source columns; a dimension's change finds the target rows it reaches by their key.",
					 what)));
}

/*
 * pipeline_merge_check_joins
 *		A merge with joins: its key and sequence_by come from the source row.
 */
void
pipeline_merge_check_joins(const PipelineDef *def, const PipelineMapping *map)
{
	PipelineUserContext ctx;
	ListCell   *lc;

	pipeline_become_owner(def, &ctx);
	foreach(lc, def->key)
		refuse_dimension_column(def, pipeline_mapping_column(map, lfirst(lc)), "key");
	if (def->sequence_by)
		refuse_dimension_column(def, pipeline_mapping_column(map, def->sequence_by), "sequence_by");
	pipeline_restore_user(&ctx);
}

/*
 * sequence_state_elements
 *		", __pl_sq <type>, ...": the row state's columns keeping a key's
 *		sequence: the sequence_by column's value, or each kept part's.
 */
static char *
sequence_state_elements(const PipelineDef *def, const PipelineMapping *map)
{
	StringInfoData buf;
	PipelineUserContext ctx;
	ListCell   *lc;

	initStringInfo(&buf);
	if (def->sequence_by && !def->sequence_kept)
	{
		ColumnMap  *cm = pipeline_mapping_column(map, def->sequence_by);

		appendStringInfo(&buf, ", " PIPELINE_ROW_SEQUENCE " %s",
						 format_type_with_typemod(cm->typid, cm->typmod));
	}
	pipeline_become_owner(def, &ctx);
	foreach(lc, pipeline_sequence_parts(def))
	{
		Node	   *expr = (Node *) linitial_node(TargetEntry,
												  pipeline_analyze_expression(def, lfirst(lc))->targetList)->expr;

		appendStringInfo(&buf, ", %s %s", pipeline_kept_sequence_column(foreach_current_index(lc)),
						 format_type_with_typemod(exprType(expr), exprTypmod(expr)));
	}
	pipeline_restore_user(&ctx);
	return buf.data;
}

/*
 * pipeline_merge_create_row_state
 *		The row state of a merge with joins or a kept sequence_by, keyed
 *		like the target.
 */
void
pipeline_merge_create_row_state(PipelineDef *def, const PipelineMapping *map)
{
	StringInfoData cols;
	ListCell   *lc;
	int			j = 0;

	if (OidIsValid(def->row_state))
		return;
	initStringInfo(&cols);
	/* __pl_k<j> is key column j, in the key's order (pipeline_row_keys) */
	foreach(lc, def->key)
	{
		ColumnMap  *cm = pipeline_mapping_column(map, lfirst(lc));

		appendStringInfo(&cols, "%s" PIPELINE_ROW_SOURCE_KEY " %s NOT NULL", cols.len ? ", " : "",
						 j++, format_type_with_typemod(cm->typid, cm->typmod));
	}
	appendStringInfoString(&cols, sequence_state_elements(def, map));
	appendStringInfo(&cols, ", __pl_live boolean NOT NULL, __pl_deleted_at timestamptz%s, PRIMARY KEY (%s)",
					 pipeline_join_state_elements(def),
					 pipeline_quote_list(pipeline_row_keys(def), NULL));
	def->row_state = pipeline_create_own_table(def, "rows", cols.data,
											   def->joins ? "the latest source row of each key of merge pipeline %s, for its joins" :
											   "the sequence_by value of each key of merge pipeline %s");
	pipeline_index_join_state(def);
	if (def->sequence_by && def->delete_when)
		pipeline_exec_as_owner(def, psprintf("CREATE INDEX ON %s (__pl_deleted_at) WHERE NOT __pl_live",
											 pipeline_qualified_name(def->row_state)));
}

/*
 * state_sequence_columns
 *		The row state's columns keeping a key's sequence (NIL: none).
 */
static List *
state_sequence_columns(const PipelineDef *def)
{
	if (def->sequence_by && !def->sequence_kept)
		return list_make1(PIPELINE_ROW_SEQUENCE);
	return pipeline_sequence_columns(def);
}

/*
 * descending
 *		"a DESC, b DESC, ": an ORDER BY's start, latest sequence first.
 */
static char *
descending(List *columns)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, columns)
		appendStringInfo(&buf, "%s DESC, ", quote_identifier(lfirst(lc)));
	return buf.data;
}

/*
 * events_ctes
 *		"WITH accepted_all, latest, applied": each key's latest event of the
 *		batch that is not older than its kept source row (nor, applying
 *		truncates, than the latest truncate: truncation, merge_truncates.c).
 */
static void
events_ctes(StringInfo sql, const PipelineDef *def, const PipelineMapping *map, const char *accepted)
{
	char	   *keys = pipeline_quote_list(def->key, NULL);
	List	   *seq = pipeline_sequence_columns(def);

	char	   *older = seq == NIL ? "false" :
	psprintf("EXISTS (SELECT 1 FROM %s r WHERE %s AND %s)", pipeline_qualified_name(def->row_state),
			 pipeline_row_state_key_match(def, "r", "a"), pipeline_sequence_newer("r", state_sequence_columns(def), "a", seq));

	bool		truncates = pipeline_applies_truncates(def);

	appendStringInfo(sql, "WITH accepted_all AS MATERIALIZED (SELECT * FROM %s)",
					 pipeline_merge_fill_nulls(def, map, accepted, older));
	if (truncates)
		pipeline_truncation_cte(sql, def, "accepted_all");
	appendStringInfo(sql,
					 ", latest AS MATERIALIZED (SELECT DISTINCT ON (%s) * FROM accepted_all%s "
					 "ORDER BY %s, %s__pl_xid DESC, __pl_seq DESC)",
					 keys, truncates ? " WHERE NOT " PIPELINE_ROW_TRUNCATE : "", keys, descending(seq));
	if (seq)
		appendStringInfo(sql,
						 ", applied AS MATERIALIZED (SELECT l.* FROM latest l WHERE NOT EXISTS "
						 "(SELECT 1 FROM %s r WHERE %s AND %s)%s)",
						 pipeline_qualified_name(def->row_state), pipeline_row_state_key_match(def, "r", "l"),
						 pipeline_sequence_newer("r", state_sequence_columns(def), "l", seq),
						 truncates ? pipeline_after_truncation(def, "l") : "");
	else
		appendStringInfoString(sql, ", applied AS (SELECT * FROM latest)");
}

/*
 * row_state_ctes
 *		kept AS (...): the applied events' source rows, live unless a delete
 *		event; a row delete_when deleted loses its source row, and without
 *		sequence_by its row state row (erased AS (...)).  Returns the SQL
 *		reading them.
 */
static const char *
row_state_ctes(StringInfo sql, const PipelineDef *def)
{
	char	   *rows = pipeline_qualified_name(def->row_state);
	char	   *row_keys = pipeline_quote_list(pipeline_row_keys(def), NULL);
	List	   *joined = pipeline_join_state_columns(def);
	List	   *state_seq = state_sequence_columns(def);
	bool		remembers = def->sequence_by != NULL;
	StringInfoData set;
	ListCell   *lc;

	initStringInfo(&set);
	appendStringInfoString(&set, "__pl_live = EXCLUDED.__pl_live, __pl_deleted_at = EXCLUDED.__pl_deleted_at");
	foreach(lc, state_seq)
		appendStringInfo(&set, ", %s = EXCLUDED.%s", quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
	foreach(lc, joined)
		appendStringInfo(&set, ", %s = EXCLUDED.%s", (char *) lfirst(lc), (char *) lfirst(lc));
	appendStringInfo(sql, ", kept AS (INSERT INTO %s (%s%s%s, __pl_live, __pl_deleted_at%s%s) "
					 "SELECT %s%s%s, __pl_del IS NOT TRUE, CASE WHEN " PIPELINE_ROW_DROP " THEN now() END%s "
					 "FROM applied%s ON CONFLICT (%s) DO UPDATE SET %s RETURNING 1)",
					 rows, row_keys, state_seq ? ", " : "", pipeline_quote_list(state_seq, NULL),
					 joined ? ", " : "", pipeline_quote_list(joined, NULL),
					 pipeline_quote_list(def->key, NULL),
					 state_seq ? ", " : "", pipeline_quote_list(pipeline_sequence_columns(def), NULL),
					 pipeline_join_state_values(def, PIPELINE_ROW_DROP),
					 remembers ? "" : " WHERE " PIPELINE_ROW_DROP " IS NOT TRUE",
					 row_keys, set.data);
	if (remembers)
		return "(SELECT count(*) FROM kept)";
	appendStringInfo(sql, ", erased AS (DELETE FROM %s r USING applied l WHERE l." PIPELINE_ROW_DROP
					 " AND %s RETURNING 1)", rows, pipeline_row_state_key_match(def, "r", "l"));
	return "(SELECT count(*) FROM kept) + (SELECT count(*) FROM erased)";
}

/*
 * pipeline_merge_joins_sql
 *		The batch statement of a merge with joins or a kept sequence.  It
 *		returns target rows inserted, target rows updated, delete events
 *		applied (then target rows deleted, with a change log rows published,
 *		and applying truncates the floor after the batch's truncate, or
 *		NULL: __pl_truncated_at).
 */
char *
pipeline_merge_joins_sql(const PipelineDef *def, const PipelineMapping *map, const char *accepted)
{
	StringInfoData sql;
	const char *rows_written;
	const char *deletes;
	bool		truncates = pipeline_applies_truncates(def);
	char	   *truncate_events = "0";

	initStringInfo(&sql);
	events_ctes(&sql, def, map, accepted);
	rows_written = row_state_ctes(&sql, def);
	/* the target as a merge writes it, from the applied events */
	appendStringInfoString(&sql, ", ");
	pipeline_merge_upsert_cte(&sql, def, map, "applied");
	deletes = pipeline_merge_delete_ctes(&sql, def, "applied");
	if (truncates)
		truncate_events = pipeline_truncate_ctes(&sql, def, "accepted_all", "applied");
	pipeline_publish_cte(&sql, def, "upserted",
						 truncates ? "(SELECT * FROM deleted UNION ALL SELECT * FROM truncated) d" : "deleted");

	/*
	 * Every data-modifying CTE is read here, so that it runs while the row
	 * marks are live (see row_watch.c); the row state's writes count nothing.
	 */
	appendStringInfo(&sql,
					 " SELECT count(*) FILTER (WHERE __pl_inserted), count(*) FILTER (WHERE NOT __pl_inserted), "
					 "%s + %s + 0 * %s, (SELECT count(*) FROM deleted)%s%s%s FROM upserted",
					 deletes, truncate_events, rows_written,
					 truncates ? " + (SELECT count(*) FROM truncated)" : "",
					 OidIsValid(def->change_log) ? ", (SELECT count(*) FROM published)" : "",
					 truncates ? psprintf(", (SELECT jsonb_build_array(%s) FROM truncating) AS " PIPELINE_TRUNCATED_AT,
										  pipeline_quote_list(pipeline_sequence_columns(def), NULL)) : "");
	return sql.data;
}
