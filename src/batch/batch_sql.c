/*-------------------------------------------------------------------------
 *
 * batch_sql.c
 *	  Builds the SQL text of a pipeline's batch statement, up to the rows it
 *	  accepts, and of the small queries around it.
 *
 * A batch is merged by one statement.  Its parameters are fixed for every
 * statement built here, so that one parameter array serves them all; they
 * are declared once, as BatchParam (batch.h, batch.c), and named here
 * only through pipeline_batch_param (P below).
 *
 * The pending rows it reads are pending_sql.c's.
 *
 * The rows stream through the statement once: a subquery evaluates each
 * row's mark, mapped expressions, filter and delete_when (OFFSET 0 keeps the
 * planner from evaluating any of them ahead of the mark); its WHERE counts
 * filtered rows and hands rows failing a row rule to pipeline.reject_row
 * (row_watch.c collects them; batch_exec.c quarantines them after the statement);
 * what remains is deduplicated by key and upserted.
 *
 * Internal columns start with __pl_ so that they cannot collide with a
 * user's column names (a reserved prefix, documented).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "sources/sources.h"
#include "strategy.h"

/* The placeholder of batch parameter BATCH_PARAM_<name>. */
#define P(name) pipeline_batch_param(BATCH_PARAM_##name)

/*
 * pipeline_target_distinct
 *		"a IS DISTINCT FROM b" for values of a target column; compared as
 *		text when the type has no equality (json, xml, point).
 */
char *
pipeline_target_distinct(const PipelineDef *def, const char *column, const char *a, const char *b)
{
	Oid			type;
	int32		typmod;

	pipeline_target_column_type(def, column, &type, &typmod);
	if (OidIsValid(lookup_type_cache(type, TYPECACHE_EQ_OPR)->eq_opr))
		return psprintf("%s IS DISTINCT FROM %s", a, b);
	return psprintf("(%s)::text IS DISTINCT FROM (%s)::text", a, b);
}

/*
 * filter_deletes
 *		Whether the filter makes delete events rather than skipping rows:
 *		rows of a source_key that fail it leave their groups, and with
 *		joins, rows that fail it leave the target (the filter may read a
 *		dimension, whose change then brings them back).
 */
static bool
filter_deletes(const PipelineDef *def)
{
	return def->filter != NULL &&
		((def->strategy->groups && def->source_key != NIL) || def->joins != NIL);
}

/*
 * pipeline_keeps_source_rows
 *		Whether a merge keeps each key's latest source row in a row state
 *		(merge_joins.c): with joins, and with a kept sequence_by.
 */
bool
pipeline_keeps_source_rows(const PipelineDef *def)
{
	return !def->strategy->groups && (def->joins != NIL || def->sequence_kept);
}

/*
 * marks_drops
 *		Whether batch rows always say whether they delete (__pl_del) and
 *		whether the source row is deleted rather than only left out of the
 *		result (__pl_drop): for a row state that keeps source rows (joins)
 *		or sequences (a kept sequence_by).
 */
static bool
marks_drops(const PipelineDef *def)
{
	return def->joins != NIL || def->sequence_kept;
}

/*
 * pipeline_has_delete_events
 *		Whether batch rows can be delete events (a boolean __pl_del): by
 *		delete_when, by failing the filter (filter_deletes), or by missing
 *		an inner join's dimension row.  With joins, a row that is deleted
 *		rather than only left out of the result is marked __pl_drop.
 */
bool
pipeline_has_delete_events(const PipelineDef *def)
{
	return def->delete_when != NULL || filter_deletes(def) || def->joins != NIL ||
		pipeline_reads_extracts(def);
}

/*
 * delete_event_columns
 *		", (...) AS __pl_del" (and with joins ", (...) AS __pl_drop") for
 *		the batch row's select list.
 */
static void
delete_event_columns(const PipelineDef *def, StringInfo list)
{
	StringInfoData del;
	char	   *missed = def->joins ? pipeline_join_missed(def) : NULL;
	char	   *deleted = def->delete_when ? psprintf("(%s)::boolean IS TRUE", def->delete_when) : NULL;

	if (!filter_deletes(def) && !marks_drops(def))
	{
		if (def->delete_when)
			appendStringInfo(list, ", (%s)::boolean AS __pl_del", def->delete_when);
		else if (pipeline_reads_extracts(def))
			appendStringInfoString(list, ", false AS __pl_del");	/* the extract's */
		return;
	}
	initStringInfo(&del);
	if (deleted)
		appendStringInfoString(&del, deleted);
	if (filter_deletes(def))
		appendStringInfo(&del, "%s(%s)::boolean IS NOT TRUE", del.len ? " OR " : "", def->filter);
	if (missed)
		appendStringInfo(&del, "%s%s", del.len ? " OR " : "", missed);
	appendStringInfo(list, ", (%s) AS __pl_del", del.len ? del.data : "false");
	if (marks_drops(def))
		appendStringInfo(list, ", (%s) AS " PIPELINE_ROW_DROP, deleted ? deleted : "false");
}

/*
 * row_keep
 *		The condition a batch row must meet not to be skipped (counted as
 *		filtered): the filter, when it skips rows rather than deleting them;
 *		for Debezium events, not being a tombstone; for a full extract, that
 *		its owner did not skip it.  NULL: none.
 */
static char *
row_keep(const PipelineDef *def, BatchSource from)
{
	char	   *filter = (def->filter && !filter_deletes(def)) ? psprintf("(%s)::boolean", def->filter) : NULL;
	char	   *kept = pipeline_reads_events(def) ? "s._op IS NOT NULL" :
	pipeline_reads_extracts(def) && from == BATCH_FROM_STAGING ? pipeline_extract_kept() : NULL;

	if (filter && kept)
		return psprintf("%s AND %s", kept, filter);
	return filter ? filter : kept;
}

/*
 * checks_failed
 *		"(<passes 0> AND ...) IS NOT TRUE AND NOT pipeline.check_row(
 *		b.__pl_xid, b.__pl_seq, <passes 0>, ...)": true when the row failed a
 *		check whose action keeps it out of the target.  Rows passing every
 *		check (most) cost no function call; check_row gets each check's
 *		result by number (batch checks pass there), and counts a NULL one as
 *		a row the check did not look at (its value was NULL).
 */
static char *
checks_failed(List *checks)
{
	StringInfoData all,
				call;
	ListCell   *lc;

	initStringInfo(&all);
	initStringInfo(&call);
	foreach(lc, checks)
	{
		QualityCheck *check = lfirst(lc);

		if (check->passes)
			appendStringInfo(&all, "%s%s", all.len ? " AND " : "", check->passes);
		appendStringInfo(&call, ", %s", check->passes ? check->passes : "true");
	}
	if (all.len == 0)
		return NULL;
	return psprintf("(%s) IS NOT TRUE AND NOT pipeline.check_row(b.__pl_xid, b.__pl_seq%s)",
					all.data, call.data);
}

/*
 * check_windows
 *		"w.*, <window> AS __pl_u0, ...": the window columns checks need over
 *		the mapped rows (alias w), or NULL when none does.
 */
static char *
check_windows(List *checks)
{
	StringInfoData list;
	ListCell   *lc;
	int			i = 0;
	bool		any = false;

	initStringInfo(&list);
	appendStringInfoString(&list, "w.*");
	foreach(lc, checks)
	{
		QualityCheck *check = lfirst(lc);

		if (check->window)
		{
			appendStringInfo(&list, ", %s AS __pl_u%d", check->window, i);
			any = true;
		}
		i++;
	}
	return any ? list.data : NULL;
}

/*
 * pipeline_accepted_rows
 *		"(SELECT ... mapped row ... OFFSET 0) b WHERE <accepted>": the batch's
 *		rows, each marked and mapped once, filtered, with rows failing a rule
 *		handed to reject_row (rule numbers index 'rules'), and the rows left
 *		handed to check_row when the pipeline has data quality checks
 *		(delete events are not checked).
 */
char *
pipeline_accepted_rows(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
					   List *rules, List *checks, PendingShape shape)
{
	StringInfoData list,
				accept;
	ListCell   *lc;
	int			i = 0;
	char	   *rows;
	char	   *windows = check_windows(checks);
	char	   *failed = checks_failed(checks);
	char	   *keep = row_keep(def, from);

	initStringInfo(&list);
	appendStringInfoString(&list, "pipeline.mark_row(s._xid, s._seq) AS __pl_mark, "
						   "s._xid AS __pl_xid, s._seq AS __pl_seq");
	if (def->strategy->row_columns)
		def->strategy->row_columns(def, map, &list);
	else
		foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		appendStringInfo(&list, ", (%s) AS %s", cm->expr, quote_identifier(cm->column));
	}
	if (keep)
		appendStringInfo(&list, ", (%s) AS __pl_keep", keep);
	if (pipeline_applies_truncates(def))
		appendStringInfoString(&list, ", (s._op = 't') AS " PIPELINE_ROW_TRUNCATE);
	if (def->extract_id && from == BATCH_FROM_STAGING)
		appendStringInfoString(&list, pipeline_extract_row_check(def, from));
	delete_event_columns(def, &list);
	pipeline_sequence_row_columns(def, &list);
	if (def->joins != NIL)
		pipeline_join_row_columns(def, &list);

	initStringInfo(&accept);
	appendStringInfoString(&accept, "CASE");
	if (keep)
		appendStringInfoString(&accept, " WHEN NOT pipeline.keep_row(b.__pl_keep) THEN false");
	/* a truncate has no row to check: merge_joins.c applies it */
	if (pipeline_applies_truncates(def))
		appendStringInfoString(&accept, " WHEN b." PIPELINE_ROW_TRUNCATE " THEN true");
	foreach(lc, rules)
		appendStringInfo(&accept, " WHEN NOT %s THEN pipeline.reject_row(b.__pl_xid, b.__pl_seq, %d)",
						 ((RowRule *) lfirst(lc))->passes, i++);
	if (failed)
		appendStringInfo(&accept, " WHEN %s%s THEN false",
						 pipeline_has_delete_events(def) ? "b.__pl_del IS NOT TRUE AND " : "", failed);
	appendStringInfoString(&accept, " ELSE true END");

	/*
	 * With joins, the pending rows are joined to the dimensions first, and
	 * events are decoded first; a uniqueness check counts values over the
	 * batch: one more level.
	 */
	if (def->joins != NIL || pipeline_reads_events(def))
		rows = psprintf("(SELECT %s FROM %s OFFSET 0)", list.data,
						pipeline_source_from(def, psprintf("(%s)",
														   pipeline_pending_sql(def, from, "s.*", shape))));
	else
		rows = psprintf("(%s OFFSET 0)", pipeline_pending_sql(def, from, list.data, shape));
	if (windows)
		rows = psprintf("(SELECT %s FROM %s w)", windows, rows);
	return psprintf("%s b WHERE %s", rows,
					(keep || rules || failed) ? accept.data : "true");
}

/*
 * pipeline_insert_column_lists
 *		The INSERT column list and the matching SELECT list from alias 'a',
 *		the first value wrapped in mark_value so a failing row is named.
 *		'values' names, for each mapped column in order, the column of 'a'
 *		holding its value; NIL: the same-named columns.
 */
void
pipeline_insert_column_lists(const PipelineMapping *map, const char *a, List *values,
							 char **columns, char **selected)
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
		const char *v = values ? quote_identifier(list_nth(values, foreach_current_index(lc))) : c;

		if (cols.len == 0)
			appendStringInfo(&vals, "pipeline.mark_value(%s.__pl_xid, %s.__pl_seq, %s.%s)",
							 a, a, a, v);
		else
			appendStringInfo(&vals, ", %s.%s", a, v);
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", c);
	}
	*columns = cols.data;
	*selected = vals.data;
}

/*
 * pipeline_upsert_conflict
 *		" ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c, ... WHERE ...": an
 *		upsert of the mapped columns into the target (alias t), never over a
 *		newer version (the target's sequence_by column) nor over an equal
 *		row -- told by pipeline.changes_row, which counts it, when
 *		'counted'; else by a plain immutable condition (what Citus routes
 *		to shards, and what a shard statement runs on its worker).  DO
 *		NOTHING when only the key is mapped.
 */
char *
pipeline_upsert_conflict(const PipelineDef *def, const PipelineMapping *map, bool counted)
{
	const char *seq_column = pipeline_sequence_target_column(def);
	const char *seq = seq_column ? quote_identifier(seq_column) : NULL;
	char	   *keys = pipeline_quote_list(def->key, NULL);
	char	   *newer = seq ? psprintf("t.%s IS NULL OR t.%s <= EXCLUDED.%s", seq, seq, seq) : "true";
	StringInfoData set,
				changed;
	ListCell   *lc;

	initStringInfo(&set);
	initStringInfo(&changed);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		const char *c = quote_identifier(cm->column);

		if (cm->is_key)
			continue;
		appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", c, c);
		appendStringInfo(&changed, "%s%s", changed.len ? " OR " : "",
						 pipeline_target_distinct(def, cm->column, psprintf("t.%s", c),
												  psprintf("EXCLUDED.%s", c)));
	}
	if (set.len == 0)
		return psprintf(" ON CONFLICT (%s) DO NOTHING", keys);
	if (counted)
		return psprintf(" ON CONFLICT (%s) DO UPDATE SET %s WHERE pipeline.changes_row(%s, %s)",
						keys, set.data, newer, changed.data);
	return psprintf(" ON CONFLICT (%s) DO UPDATE SET %s WHERE (%s) AND (%s)", keys, set.data, newer,
					changed.data);
}

/*
 * pipeline_upsert_returning
 *		" RETURNING <inserted> AS __pl_inserted" for an INSERT ... ON
 *		CONFLICT DO UPDATE into the target (alias t): whether each row it
 *		returns was inserted rather than updated.  A fresh tuple has no
 *		xmax; a partitioned target cannot return system columns, so there
 *		it asks whether the key existed in the statement's snapshot (which
 *		does not see the rows it writes).
 */
char *
pipeline_upsert_returning(const PipelineDef *def)
{
	if (get_rel_relkind(def->target) == RELKIND_PARTITIONED_TABLE)
		return psprintf(" RETURNING NOT EXISTS (SELECT 1 FROM %s p WHERE %s) AS __pl_inserted",
						pipeline_qualified_name(def->target), pipeline_key_match(def, "p", "t"));
	return " RETURNING (t.xmax = 0) AS __pl_inserted";
}

/*
 * pipeline_published_returning
 *		", t.a, t.b": what a data-modifying CTE of a pipeline whose target has
 *		a change log returns of each row it wrote, for pipeline_publish_cte;
 *		"" when the target has none.
 */
char *
pipeline_published_returning(const PipelineDef *def)
{
	if (!OidIsValid(def->change_log))
		return "";
	return psprintf(", %s", pipeline_quote_list(pipeline_change_log_columns(def), "t"));
}

/*
 * pipeline_publish_cte
 *		", published AS (INSERT INTO <change log> ...)": the batch's net
 *		changes -- the rows 'written' returned, and the rows 'deleted'
 *		returned (NULL: none) -- added to the target's change log in the
 *		same statement (change_log.c).  Nothing when the target has none.
 */
void
pipeline_publish_cte(StringInfo sql, const PipelineDef *def, const char *written,
					 const char *deleted)
{
	char	   *cols;
	StringInfoData rows;

	if (!OidIsValid(def->change_log))
		return;
	cols = pipeline_quote_list(pipeline_change_log_columns(def), NULL);
	initStringInfo(&rows);
	appendStringInfo(&rows, "SELECT %s, 'upsert' FROM %s", cols, written);
	if (deleted)
		appendStringInfo(&rows, " UNION ALL SELECT %s, 'delete' FROM %s", cols, deleted);
	appendStringInfo(sql, ", published AS (INSERT INTO %s (%s, _op) %s RETURNING 1)",
					 pipeline_qualified_name(def->change_log), cols, rows.data);
}

/*
 * pipeline_batch_sql
 *		The statement that merges one batch, given the pipeline's row rules
 *		and data quality checks, and which rows it reads (PENDING_RANGE or
 *		PENDING_WHOLE).
 *		The pipeline's strategy writes the accepted rows (strategy.h says
 *		what the statement returns); rows read, filtered and rejected are
 *		tallied by row_watch.c.
 */
char *
pipeline_batch_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
				   List *rules, List *checks, PendingShape shape)
{
	return def->strategy->batch_sql(def, map, from,
									pipeline_accepted_rows(def, map, from, rules, checks, shape));
}

/*
 * pipeline_try_batch_statement
 *		Prepares a batch statement as the owner, in a subtransaction; returns
 *		the error it raised, or NULL.
 */
ErrorData *
pipeline_try_batch_statement(const PipelineDef *def, const char *sql)
{
	return pipeline_try_prepare(def, sql, BATCH_NPARAMS, pipeline_batch_param_types());
}
