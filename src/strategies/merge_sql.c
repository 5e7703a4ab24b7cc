/*-------------------------------------------------------------------------
 *
 * merge_sql.c
 *	  The merge strategy's writes of its target, shared by its two batch
 *	  statements (without joins, here; with joins, merge_joins.c): the
 *	  upsert of each key's latest event, never over a newer version nor
 *	  over an equal row (counted by pipeline.changes_row, row_watch.c);
 *	  the deletes and their tombstones.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"

/*
 * changed
 *		"t.c1 IS DISTINCT FROM l.c1 OR ...": whether a batch row (alias l)
 *		differs from the stored row in its non-key mapped columns, its value
 *		columns not yet in the target's types; "" when it has none.
 */
static char *
changed(const PipelineDef *def, const PipelineMapping *map)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		char	   *value = psprintf("l.%s",
									 quote_identifier(pipeline_merge_value_column(def, cm, foreach_current_index(lc))));

		if (!cm->is_key)
			appendStringInfo(&buf, "%s%s", buf.len ? " OR " : "",
							 pipeline_target_distinct(def, cm->column,
													  psprintf("t.%s", quote_identifier(cm->column)), value));
	}
	return buf.data;
}

/*
 * value_columns
 *		The batch row's column holding each mapped column's value: its own,
 *		or its filled value (merge_partial.c).
 */
static List *
value_columns(const PipelineDef *def, const PipelineMapping *map)
{
	List	   *values = NIL;
	ListCell   *lc;

	foreach(lc, map->columns)
		values = lappend(values, pipeline_merge_value_column(def, lfirst(lc), foreach_current_index(lc)));
	return values;
}

/*
 * older_than_stored
 *		"EXISTS (...)": whether the target (or its tombstones) holds a newer
 *		version of a batch row's key (alias a); "false" without sequence_by.
 */
static char *
older_than_stored(const PipelineDef *def, const char *seq)
{
	char	   *older;

	if (seq == NULL)
		return "false";
	older = psprintf("EXISTS (SELECT 1 FROM %s t WHERE %s AND t.%s > a.%s)",
					 pipeline_qualified_name(def->target), pipeline_key_match(def, "t", "a"), seq, seq);
	if (OidIsValid(def->tombstones))
		older = psprintf("%s OR EXISTS (SELECT 1 FROM %s x WHERE %s AND x.%s > a.%s)", older,
						 pipeline_qualified_name(def->tombstones), pipeline_key_match(def, "x", "a"),
						 seq, seq);
	return older;
}

/*
 * fill_columns
 *		", __pl_fill_0, ...": the filled values of the mapped columns that
 *		have one.
 */
static char *
fill_columns(const PipelineDef *def, const PipelineMapping *map)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, map->columns)
	{
		char	   *value = pipeline_merge_value_column(def, lfirst(lc), foreach_current_index(lc));

		if (strncmp(value, "__pl_fill_", 10) == 0)
			appendStringInfo(&buf, ", %s", value);
	}
	return buf.data;
}

/*
 * pipeline_merge_upsert_cte
 *		upserted AS (INSERT ... ON CONFLICT ...) from 'latest' (a CTE name or
 *		a subquery): never over a newer version, never over a newer delete.
 */
void
pipeline_merge_upsert_cte(StringInfo sql, const PipelineDef *def, const PipelineMapping *map,
						  const char *latest)
{
	const char *seq_column = pipeline_sequence_target_column(def);
	char	   *seq = seq_column ? (char *) quote_identifier(seq_column) : NULL;
	char	   *cols,
			   *vals;

	pipeline_insert_column_lists(map, "l", value_columns(def, map), &cols, &vals);
	appendStringInfo(sql, "upserted AS (INSERT INTO %s AS t (%s) SELECT %s FROM %s WHERE %s",
					 pipeline_qualified_name(def->target), cols, vals, psprintf("%s l", latest),
					 pipeline_has_delete_events(def) ? "l.__pl_del IS NOT TRUE" : "true");
	if (OidIsValid(def->tombstones))
		appendStringInfo(sql, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE %s AND x.%s > l.%s)",
						 pipeline_qualified_name(def->tombstones), pipeline_key_match(def, "x", "l"),
						 seq, seq);

	/*
	 * An event equal to the stored row writes nothing, counted; Citus routes
	 * only immutable conditions to a distributed or reference target's
	 * shards, where such an event counts as stale.
	 */
	appendStringInfoString(sql, pipeline_upsert_conflict(def, map, !pipeline_citus_routes(def->target)));
	appendStringInfo(sql, "%s%s)", pipeline_upsert_returning(def), pipeline_published_returning(def));
}

/*
 * pipeline_merge_delete_ctes
 *		deleted AS (...): the delete events of 'latest' (a CTE) remove rows
 *		they are not older than; with a tombstone table, tombstoned AS
 *		(...) remembers them.  Returns the SQL that counts the delete events
 *		applied.
 */
const char *
pipeline_merge_delete_ctes(StringInfo sql, const PipelineDef *def, const char *latest)
{
	char	   *target = pipeline_qualified_name(def->target);
	char	   *keys = pipeline_quote_list(def->key, NULL);
	const char *seq_column = pipeline_sequence_target_column(def);
	char	   *seq = seq_column ? (char *) quote_identifier(seq_column) : NULL;

	appendStringInfo(sql, ", deleted AS (DELETE FROM %s t USING %s l WHERE l.__pl_del AND %s",
					 target, latest, pipeline_key_match(def, "t", "l"));
	if (seq)
		appendStringInfo(sql, " AND (t.%s IS NULL OR t.%s <= l.%s)", seq, seq, seq);
	appendStringInfo(sql, " RETURNING 1%s)", pipeline_published_returning(def));
	if (!OidIsValid(def->tombstones))
		return psprintf("(SELECT count(*) FROM %s WHERE __pl_del)", latest);

	appendStringInfo(sql,
					 ", tombstoned AS (INSERT INTO %s AS x (%s, %s) SELECT %s, l.%s "
					 "FROM %s l WHERE l.__pl_del AND NOT EXISTS "
					 "(SELECT 1 FROM %s t WHERE %s AND t.%s > l.%s) "
					 "ON CONFLICT (%s) DO UPDATE SET %s = EXCLUDED.%s, deleted_at = now() "
					 "WHERE x.%s < EXCLUDED.%s RETURNING 1)",
					 pipeline_qualified_name(def->tombstones), keys, seq,
					 pipeline_quote_list(def->key, "l"), seq, latest,
					 target, pipeline_key_match(def, "t", "l"), seq, seq,
					 keys, seq, seq, seq, seq);
	return "(SELECT count(*) FROM tombstoned)";
}

/*
 * extract_ctes
 *		"WITH extract_rows AS (...), ..., latest AS (...), ": the batch's
 *		events from a full extract (format snapshot, snapshot_sql.c): its
 *		rows that differ from the target, and for a complete extract the
 *		deletes of the keys it lacks; the latest of each key.
 */
static void
extract_ctes(StringInfo sql, const PipelineDef *def, const PipelineMapping *map, BatchSource from,
			 const char *accepted)
{
	char	   *target = pipeline_qualified_name(def->target);
	char	   *keys = pipeline_quote_list(def->key, NULL);
	char	   *columns = pipeline_mapping_column_list(map);
	char	   *differ = changed(def, map);
	char	   *events;

	/* (a target of key columns only: a row in both never differs) */
	if (differ[0] == '\0')
		differ = "false";

	appendStringInfo(sql, "WITH extract_rows AS MATERIALIZED (SELECT __pl_xid, __pl_seq, %s, __pl_del FROM %s)",
					 columns, accepted);
	events = pipeline_extract_events(sql, def, from, columns, "", target, differ,
									 pipeline_extract_absent_values(def, map, NULL),
									 psprintf("(SELECT count(*) FROM %s)", target));
	appendStringInfo(sql, ", latest AS (SELECT DISTINCT ON (%s) * FROM %s ORDER BY %s, __pl_xid DESC, __pl_seq DESC), ",
					 keys, events, keys);
}

/*
 * pipeline_merge_plain_sql
 *		The batch statement of a merge without a row state (SCD type 1).
 */
char *
pipeline_merge_plain_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
						 const char *accepted)
{
	StringInfoData sql;
	char	   *keys = pipeline_quote_list(def->key, NULL);
	const char *seq_column = pipeline_sequence_target_column(def);
	char	   *seq = seq_column ? (char *) quote_identifier(seq_column) : NULL;
	bool		deletes = pipeline_has_delete_events(def);
	const char *applied = "0::bigint";
	char	   *latest;

	initStringInfo(&sql);
	if (pipeline_reads_extracts(def))
	{
		extract_ctes(&sql, def, map, from, accepted);
		latest = "latest";
	}
	else
	{
		/*
		 * Latest accepted event per key: by sequence_by, then by arrival.
		 * Used once (no deletes), it stays a subquery: a CTE holding volatile
		 * functions would be materialised.
		 */
		latest = psprintf("SELECT DISTINCT ON (%s) __pl_xid, __pl_seq, %s%s%s FROM %s "
						  "ORDER BY %s, %s%s__pl_xid DESC, __pl_seq DESC",
						  keys, pipeline_mapping_column_list(map), deletes ? ", __pl_del" : "",
						  fill_columns(def, map),
						  pipeline_merge_fill_nulls(def, map, accepted, older_than_stored(def, seq)),
						  keys, seq ? seq : "", seq ? " DESC, " : "");
		appendStringInfoString(&sql, "WITH ");
		if (deletes)
		{
			appendStringInfo(&sql, "latest AS (%s), ", latest);
			latest = "latest";
		}
		else
			latest = psprintf("(%s)", latest);
	}
	pipeline_merge_upsert_cte(&sql, def, map, latest);
	if (deletes)
		applied = pipeline_merge_delete_ctes(&sql, def, "latest");

	/*
	 * Every data-modifying CTE is read here, so that it runs while the row
	 * marks are live (see row_watch.c).
	 */
	pipeline_publish_cte(&sql, def, "upserted", deletes ? "deleted" : NULL);
	appendStringInfo(&sql,
					 " SELECT count(*) FILTER (WHERE __pl_inserted), count(*) FILTER (WHERE NOT __pl_inserted), "
					 "%s%s%s FROM upserted",
					 applied, deletes ? ", (SELECT count(*) FROM deleted)" : "",
					 OidIsValid(def->change_log) ? ", (SELECT count(*) FROM published)" : "");
	return sql.data;
}
