/*-------------------------------------------------------------------------
 *
 * merge_sql.c
 *	  Builds the SQL text of a pipeline's batch statement and of the small
 *	  queries around it.
 *
 * A batch is merged by one statement.  Its parameters (fixed for every
 * statement built here, so one parameter array serves them all):
 *
 *	$1	xid8[]		the cursor's in-progress ids that have committed since
 *	$2	xid8		the cursor's xmax: ids from here on are new
 *	$3	pg_snapshot	the run's snapshot: only what it sees is consumed
 *	$4,$5			(_xid, _seq) the batch starts after (exclusive)
 *	$6,$7			(_xid, _seq) the batch ends at (inclusive)
 *	$8	bigint		run id
 *	$9	bigint[]	_seq of rows already quarantined by this batch
 *	$10 bigint		pipeline id
 *	$11 bigint[]	quarantine ids to requeue (NULL: all)
 *
 * Pending rows are read as two index ranges over (_xid, _seq), never by
 * scanning consumed rows: the rows of transactions the cursor saw in
 * progress ($1), and the rows of transactions it had not seen ($2 and up).
 *
 * Internal columns of the statement start with __pl_ so that they cannot
 * collide with a user's column names (a reserved prefix, documented).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "pipeline.h"

/*
 * source_column_list
 *		"p.a, p.b, ..." style list of the source's own columns.
 */
static char *
source_select_list(const PipelineMapping *map, const char *prefix)
{
	return pipeline_quote_list(map->source_columns, prefix);
}

/*
 * pipeline_pending_sql
 *		A query returning the pending rows between the bounds, as the source
 *		row plus _xid and _seq, minus the rows in $9.
 */
char *
pipeline_pending_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
					 const char *select_list)
{
	char	   *src = pipeline_qualified_name(def->source);
	const char *bounds = "(s._xid, s._seq) > ($4, $5) AND (s._xid, s._seq) <= ($6, $7)";

	if (from == BATCH_FROM_QUARANTINE)
		return psprintf("SELECT %s FROM ("
						"SELECT coalesce(q.source_xid, '0'::xid8) AS _xid, q.id AS _seq, %s "
						"FROM pipeline.quarantine_log q "
						"CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, q.raw_row) r "
						"WHERE q.pipeline_id = $10 AND q.requeued_at IS NULL "
						"AND ($11 IS NULL OR q.id = ANY ($11))) s "
						"WHERE %s AND s._seq <> ALL ($9)",
						select_list, source_select_list(map, "r"), src, bounds);

	return psprintf("SELECT %s FROM ("
					"SELECT s.* FROM %s s WHERE s._xid = ANY ($1) AND %s "
					"UNION ALL "
					"SELECT s.* FROM %s s WHERE s._xid >= $2 AND %s "
					"AND pg_visible_in_snapshot(s._xid, $3)) s "
					"WHERE s._seq <> ALL ($9)",
					select_list, src, bounds, src, bounds);
}

/*
 * raw_source
 *		FROM item and join condition that find a batch row's raw source row
 *		(alias s, joined to the rejected batch rows, alias r), and the jsonb of
 *		that raw row.
 */
static void
raw_source(const PipelineDef *def, BatchSource from, char **from_item, char **raw_expr)
{
	if (from == BATCH_FROM_QUARANTINE)
	{
		*from_item = "pipeline.quarantine_log s ON s.id = r.__pl_seq";
		*raw_expr = "s.raw_row";
	}
	else
	{
		*from_item = psprintf("%s s ON s._xid = r.__pl_xid AND s._seq = r.__pl_seq",
							  pipeline_qualified_name(def->source));
		*raw_expr = "to_jsonb(s) - '_xid' - '_seq'";
	}
}

/*
 * pipeline_raw_row_sql
 *		INSERT of one raw row into the quarantine: $1 pipeline id, $2 run id,
 *		$3 reason, $4 SQLSTATE, $5/$6 the row's (_xid, _seq).
 */
char *
pipeline_raw_row_sql(const PipelineDef *def, BatchSource from)
{
	if (from == BATCH_FROM_QUARANTINE)
		return "INSERT INTO pipeline.quarantine_log "
			"(pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq) "
			"SELECT $1, $2, $3, $4, q.raw_row, q.source_xid, q.source_seq "
			"FROM pipeline.quarantine_log q WHERE q.id = $6 AND $5 IS NOT NULL";
	return psprintf("INSERT INTO pipeline.quarantine_log "
					"(pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq) "
					"SELECT $1, $2, $3, $4, to_jsonb(s) - '_xid' - '_seq', s._xid, s._seq "
					"FROM %s s WHERE s._xid = $5 AND s._seq = $6",
					pipeline_qualified_name(def->source));
}

/*
 * key_match
 *		"a.k1 = b.k1 AND a.k2 = b.k2" over the key columns.
 */
static char *
key_match(const PipelineDef *def, const char *a, const char *b)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, def->key)
	{
		const char *k = quote_identifier(lfirst(lc));

		appendStringInfo(&buf, "%s%s.%s = %s.%s", buf.len ? " AND " : "", a, k, b, k);
	}
	return buf.data;
}

/*
 * rules_pass
 *		"(rule1) AND (rule2) ...": the row may be merged.
 */
static char *
rules_pass(List *rules)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "true");
	foreach(lc, rules)
		appendStringInfo(&buf, " AND %s", ((RowRule *) lfirst(lc))->passes);
	return buf.data;
}

/*
 * reject_reason
 *		CASE giving ARRAY[reason, sqlstate] of the first rule a row fails.
 */
static char *
reject_reason(List *rules)
{
	StringInfoData buf;
	ListCell   *lc;

	if (rules == NIL)
		return "NULL::text[]";
	initStringInfo(&buf);
	appendStringInfoString(&buf, "CASE");
	foreach(lc, rules)
	{
		RowRule    *rule = lfirst(lc);

		appendStringInfo(&buf, " WHEN NOT %s THEN ARRAY[%s, %s]", rule->passes,
						 quote_literal_cstr(rule->reason), quote_literal_cstr(rule->sqlstate));
	}
	appendStringInfoString(&buf, " END");
	return buf.data;
}

/*
 * append_batch_cte
 *		WITH batch AS MATERIALIZED (...): the pending rows, each marked, then
 *		mapped, with the filter and delete_when evaluated once.
 */
static void
append_batch_cte(StringInfo sql, const PipelineDef *def, const PipelineMapping *map,
				 BatchSource from)
{
	StringInfoData list;
	ListCell   *lc;

	initStringInfo(&list);
	appendStringInfoString(&list, "pipeline.mark_row(s._xid, s._seq) AS __pl_mark, "
						   "s._xid AS __pl_xid, s._seq AS __pl_seq");
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		appendStringInfo(&list, ", (%s) AS %s", cm->expr, quote_identifier(cm->column));
	}
	appendStringInfo(&list, ", (%s)::boolean AS __pl_keep", def->filter ? def->filter : "true");
	appendStringInfo(&list, ", (%s)::boolean AS __pl_del",
					 def->delete_when ? def->delete_when : "false");
	appendStringInfo(sql, "WITH batch AS MATERIALIZED (%s)",
					 pipeline_pending_sql(def, map, from, list.data));
}

/*
 * insert_column_lists
 *		The INSERT column list and the matching SELECT list from alias 'a',
 *		the first value wrapped in mark_value so a failing row is named.
 */
static void
insert_column_lists(const PipelineMapping *map, const char *a, char **columns, char **values)
{
	StringInfoData cols,
				vals;
	ListCell   *lc;

	initStringInfo(&cols);
	initStringInfo(&vals);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		const char *c = quote_identifier(cm->column);

		if (cols.len == 0)
			appendStringInfo(&vals, "pipeline.mark_value(%s.__pl_xid, %s.__pl_seq, %s.%s)",
							 a, a, a, c);
		else
			appendStringInfo(&vals, ", %s.%s", a, c);
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", c);
	}
	*columns = cols.data;
	*values = vals.data;
}

/*
 * append_quarantine_cte
 *		Rows that pass the filter but fail a rule go to the quarantine with
 *		the rule's reason, in the same statement.
 */
static void
append_quarantine_cte(StringInfo sql, const PipelineDef *def, BatchSource from, List *rules)
{
	char	   *from_item,
			   *raw_expr;

	raw_source(def, from, &from_item, &raw_expr);
	appendStringInfo(sql,
					 ", quarantined AS (INSERT INTO pipeline.quarantine_log "
					 "(pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq) "
					 "SELECT $10, $8, r.__pl_reject[1], r.__pl_reject[2], %s, r.__pl_xid, r.__pl_seq "
					 "FROM (SELECT __pl_xid, __pl_seq, %s AS __pl_reject FROM batch "
					 "WHERE __pl_keep IS TRUE) r JOIN %s WHERE r.__pl_reject IS NOT NULL RETURNING 1)",
					 raw_expr, reject_reason(rules), from_item);
}

/*
 * merge_sql
 *		The batch statement of the merge strategy (SCD type 1).
 */
static char *
merge_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from)
{
	StringInfoData sql;
	char	   *target = pipeline_qualified_name(def->target);
	char	   *keys = pipeline_quote_list(def->key, NULL);
	char	   *seq = def->sequence_by ? (char *) quote_identifier(def->sequence_by) : NULL;
	bool		tombstones = OidIsValid(def->tombstones);
	char	   *cols,
			   *vals;
	StringInfoData set;
	ListCell   *lc;
	List	   *rules = pipeline_row_rules(def, map);

	initStringInfo(&sql);
	append_batch_cte(&sql, def, map, from);

	/* Latest valid event per key: by sequence_by, then by arrival. */
	appendStringInfo(&sql,
					 ", latest AS (SELECT DISTINCT ON (%s) * FROM batch "
					 "WHERE __pl_keep IS TRUE AND %s "
					 "ORDER BY %s, %s%s__pl_xid DESC, __pl_seq DESC)",
					 keys, rules_pass(rules), keys, seq ? seq : "", seq ? " DESC, " : "");

	/* Upserts: never over a newer version, never over a newer delete. */
	insert_column_lists(map, "l", &cols, &vals);
	initStringInfo(&set);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		if (!cm->is_key)
			appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "",
							 quote_identifier(cm->column), quote_identifier(cm->column));
	}
	appendStringInfo(&sql,
					 ", upserted AS (INSERT INTO %s AS t (%s) SELECT %s FROM latest l "
					 "WHERE l.__pl_del IS NOT TRUE",
					 target, cols, vals);
	if (tombstones)
		appendStringInfo(&sql, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE %s AND x.%s >= l.%s)",
						 pipeline_qualified_name(def->tombstones), key_match(def, "x", "l"),
						 seq, seq);
	if (set.len == 0)
		appendStringInfo(&sql, " ON CONFLICT (%s) DO NOTHING", keys);
	else
	{
		appendStringInfo(&sql, " ON CONFLICT (%s) DO UPDATE SET %s", keys, set.data);
		if (seq)
			appendStringInfo(&sql, " WHERE t.%s IS NULL OR t.%s <= EXCLUDED.%s", seq, seq, seq);
	}
	appendStringInfoString(&sql, " RETURNING (t.xmax = 0) AS inserted)");

	/* Deletes, and with sequence_by a tombstone that outlives the row. */
	appendStringInfo(&sql,
					 ", deleted AS (DELETE FROM %s t USING latest l WHERE l.__pl_del AND %s",
					 target, key_match(def, "t", "l"));
	if (seq)
		appendStringInfo(&sql, " AND (t.%s IS NULL OR t.%s <= l.%s)", seq, seq, seq);
	appendStringInfoString(&sql, " RETURNING 1)");
	if (tombstones)
		appendStringInfo(&sql,
						 ", tombstoned AS (INSERT INTO %s AS x (%s, %s) SELECT %s, l.%s "
						 "FROM latest l WHERE l.__pl_del AND NOT EXISTS "
						 "(SELECT 1 FROM %s t WHERE %s AND t.%s > l.%s) "
						 "ON CONFLICT (%s) DO UPDATE SET %s = EXCLUDED.%s, deleted_at = now() "
						 "WHERE x.%s < EXCLUDED.%s RETURNING 1)",
						 pipeline_qualified_name(def->tombstones), keys, seq,
						 pipeline_quote_list(def->key, "l"), seq,
						 target, key_match(def, "t", "l"), seq, seq,
						 keys, seq, seq, seq, seq);

	append_quarantine_cte(&sql, def, from, rules);

	appendStringInfo(&sql,
					 " SELECT (SELECT count(*) FROM batch), "
					 "(SELECT count(*) FROM batch WHERE __pl_keep IS NOT TRUE), "
					 "(SELECT count(*) FILTER (WHERE inserted) FROM upserted), "
					 "(SELECT count(*) FILTER (WHERE NOT inserted) FROM upserted), "
					 "%s, (SELECT count(*) FROM deleted), (SELECT count(*) FROM quarantined)",
					 tombstones ? "(SELECT count(*) FROM tombstoned)"
					 : "(SELECT count(*) FROM latest WHERE __pl_del)");
	return sql.data;
}

/*
 * append_sql
 *		The batch statement of the append strategy.
 */
static char *
append_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from)
{
	StringInfoData sql;
	char	   *cols,
			   *vals;
	List	   *rules = pipeline_row_rules(def, map);

	initStringInfo(&sql);
	append_batch_cte(&sql, def, map, from);
	insert_column_lists(map, "b", &cols, &vals);
	appendStringInfo(&sql,
					 ", appended AS (INSERT INTO %s (%s) SELECT %s FROM "
					 "(SELECT * FROM batch WHERE __pl_keep IS TRUE AND %s) b RETURNING 1)",
					 pipeline_qualified_name(def->target), cols, vals, rules_pass(rules));
	append_quarantine_cte(&sql, def, from, rules);
	appendStringInfoString(&sql,
						   " SELECT (SELECT count(*) FROM batch), "
						   "(SELECT count(*) FROM batch WHERE __pl_keep IS NOT TRUE), "
						   "(SELECT count(*) FROM appended), 0::bigint, 0::bigint, 0::bigint, "
						   "(SELECT count(*) FROM quarantined)");
	return sql.data;
}

/*
 * pipeline_batch_sql
 *		The statement that merges one batch.  It returns one row: rows read,
 *		filtered, inserted, updated, delete events applied, target rows
 *		deleted, quarantined.
 */
char *
pipeline_batch_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from)
{
	if (strcmp(def->strategy, "append") == 0)
		return append_sql(def, map, from);
	return merge_sql(def, map, from);
}
