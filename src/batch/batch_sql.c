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
 * Pending rows are read through the (_xid, _seq) index, never by scanning
 * consumed rows: the rows of transactions the cursor saw in progress
 * (COMMITTED), and the rows of transactions it had not seen (CURSOR_XMAX
 * and up) that the run's SNAPSHOT sees, between the batch's bounds -- the
 * batch statement's form of the cursor rule (cursor_rule.c).
 *
 * A replay reads instead the rows that lie between two cursors, from the
 * staging table and from the archive batches overlapping the bounds, in
 * one statement, so that one snapshot sees each row in exactly one of them
 * (an archive pass moves rows from one to the other in one transaction).
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
#include "cursor/cursor.h"
#include "sources/sources.h"
#include "strategy.h"

/* The placeholder of batch parameter BATCH_PARAM_<name>. */
#define P(name) pipeline_batch_param(BATCH_PARAM_##name)

/*
 * not_excluded
 *		Rows this batch has not quarantined already, matched on (_xid, _seq)
 *		exactly.
 */
static char *
not_excluded(void)
{
	return psprintf("(s._xid, s._seq) NOT IN (SELECT e.x, e.q FROM unnest(%s::xid8[], %s::bigint[]) AS e(x, q))",
					P(EXCLUDED_XIDS), P(EXCLUDED_SEQS));
}

/*
 * in_bounds
 *		Rows after the batch's lower bound and up to its upper bound.
 */
static char *
in_bounds(void)
{
	return psprintf("(s._xid, s._seq) > (%s, %s) AND (s._xid, s._seq) <= (%s, %s)",
					P(LO_XID), P(LO_SEQ), P(HI_XID), P(HI_SEQ));
}

/*
 * replay_relation
 *		"(...)": the source's rows still staged and those of its archive
 *		batches that may hold rows between _xid 'lo' and 'hi' (SQL
 *		expressions), as rows of the source.
 */
static char *
replay_relation(const PipelineDef *def, const char *lo, const char *hi)
{
	char	   *src = pipeline_qualified_name(def->source);

	return psprintf("(SELECT * FROM %s UNION ALL SELECT a.* FROM pipeline.archive_batches b "
					"LEFT JOIN pipeline.archive_dictionaries d ON d.id = b.dictionary_id "
					"CROSS JOIN LATERAL pipeline.archive_unpack(b, d.dictionary, NULL::%s) a "
					"WHERE b.source = '%u'::oid::regclass AND b.last_xid >= %s AND b.first_xid <= %s)",
					src, src, def->source, lo, hi);
}

/*
 * pipeline_pending_sql
 *		A query returning the pending rows: "SELECT <select_list> FROM (...) s",
 *		where s has the source's columns plus _xid and _seq.  By 'shape':
 *		PENDING_RANGE keeps the rows between the bounds less those already
 *		quarantined; PENDING_ORDERED does the same reading
 *		the two index ranges separately (UNION ALL), so that rows come out in
 *		(_xid, _seq) order without a sort; PENDING_FIRST reads the first row
 *		of each of the two ranges, in index order, and returns at most one
 *		row (a plan that holds for any bounds, so it can be generic: whether
 *		anything is pending); PENDING_WHOLE takes every pending
 *		row (a batch that is the whole of its phase, on its first attempt),
 *		sparing each row the bound and exclusion tests.  A replay's rows
 *		come in one shape.  A requeue reads the quarantined rows but those
 *		its own run quarantined anew: they are not requeued again.
 */
char *
pipeline_pending_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
					 const char *select_list, PendingShape shape)
{
	char	   *src = pipeline_qualified_name(def->source);
	RunPendingSql run = {P(COMMITTED), P(CURSOR_XMAX), P(SNAPSHOT)};
	char	   *bounds = in_bounds();
	char	   *pending = pipeline_rule_run_pending("s", &run);

	/* a change log's reader skips the rows other readers were seeded with */
	if (def->reads_change_log && from == BATCH_FROM_STAGING)
	{
		char	   *own = psprintf("(s._for IS NULL OR s._for = %s)", P(PIPELINE_ID));

		bounds = psprintf("%s AND %s", bounds, own);
		pending = psprintf("%s AND %s", pending, own);
	}

	if (from == BATCH_FROM_REPLAY)
	{
		CursorSql	before = {P(BEFORE), P(BEFORE_XID), P(BEFORE_SEQ)};
		CursorSql	after = {P(SNAPSHOT), P(AFTER_XID), P(AFTER_SEQ)};

		return psprintf("SELECT %s FROM %s s WHERE %s AND %s AND %s",
						select_list, replay_relation(def, P(LO_XID), P(HI_XID)), bounds,
						pipeline_rule_between("s", &before, &after), not_excluded());
	}
	if (from == BATCH_FROM_DIMENSION)
	{
		/*
		 * Only the batch statement reads the rows themselves (SELECT s.*);
		 * bounds and exclusions apply before a row is decoded.
		 */
		bool		filtered = shape != PENDING_WHOLE && shape != PENDING_FIRST;

		return psprintf("SELECT %s FROM %s s", select_list,
						pipeline_dimension_rows_sql(def, pipeline_qualified_name(def->row_state),
													pipeline_row_keys(def),
													strcmp(select_list, "s.*") == 0,
													shape == PENDING_FIRST,
													filtered ? psprintf("%s AND %s", bounds, not_excluded()) : NULL));
	}
	if (from == BATCH_FROM_QUARANTINE)
		return psprintf("SELECT %s FROM ("
						"SELECT coalesce(q.source_xid, '0'::xid8) AS _xid, q.id AS _seq, %s "
						"FROM pipeline.quarantine_log q "
						"CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, q.raw_row) r "
						"WHERE q.pipeline_id = %s AND q.requeued_at IS NULL AND q.run_id <> %s "
						"AND (%s IS NULL OR q.id = ANY (%s))) s%s",
						select_list, pipeline_quote_list(pipeline_relation_columns(def->source), "r"), src,
						P(PIPELINE_ID), P(RUN_ID), P(REQUEUE_IDS), P(REQUEUE_IDS),
						shape == PENDING_WHOLE ? "" :
						psprintf(" WHERE %s AND %s", bounds, not_excluded()));
	if (shape == PENDING_ORDERED)
		return psprintf("SELECT %s FROM ("
						"SELECT s._xid, s._seq FROM %s s WHERE %s AND %s "
						"UNION ALL "
						"SELECT s._xid, s._seq FROM %s s WHERE %s AND %s) s "
						"WHERE %s",
						select_list, src, pipeline_rule_run_committed("s", &run), bounds,
						src, pipeline_rule_run_new("s", &run), bounds, not_excluded());
	if (shape == PENDING_FIRST)
		return psprintf("(SELECT %s FROM %s s WHERE %s AND %s AND %s ORDER BY s._xid, s._seq LIMIT 1) "
						"UNION ALL "
						"(SELECT %s FROM %s s WHERE %s AND %s AND %s ORDER BY s._xid, s._seq LIMIT 1) "
						"LIMIT 1",
						select_list, src, pipeline_rule_run_committed("s", &run), bounds, not_excluded(),
						select_list, src, pipeline_rule_run_new("s", &run), bounds, not_excluded());
	if (shape == PENDING_WHOLE)
		return psprintf("SELECT %s FROM %s s WHERE %s", select_list, src, pending);
	return psprintf("SELECT %s FROM %s s WHERE %s AND %s AND %s",
					select_list, src, bounds, pending, not_excluded());
}

/*
 * pipeline_quarantine_sql
 *		INSERT of rejected rows into the quarantine with their raw row:
 *		$1 pipeline id, $2 run id, $3 xid8[] and $4 bigint[] the rows'
 *		(_xid, _seq), $5 text[] reasons, $6 text[] SQLSTATEs.
 */
char *
pipeline_quarantine_sql(const PipelineDef *def, BatchSource from)
{
	const char *insert = "INSERT INTO pipeline.quarantine_log "
	"(pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq) ";
	const char *rejected = "unnest($3::xid8[], $4::bigint[], $5::text[], $6::text[]) "
	"AS r(xid, seq, reason, sqlstate)";

	if (from == BATCH_FROM_REPLAY)
		return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, to_jsonb(x) - '_xid' - '_seq', "
						"x._xid, x._seq FROM %s CROSS JOIN LATERAL (SELECT * FROM %s s "
						"WHERE s._xid = r.xid AND s._seq = r.seq) x",
						insert, rejected, replay_relation(def, "r.xid", "r.xid"));
	if (from == BATCH_FROM_DIMENSION)
		return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, x." PIPELINE_ROW_FACT " - '_xid' - '_seq', "
						"r.xid, r.seq FROM %s JOIN %s x ON x." PIPELINE_ROW_FACT " IS NOT NULL "
						"AND (x." PIPELINE_ROW_FACT " ->> '_xid')::xid8 = r.xid "
						"AND (x." PIPELINE_ROW_FACT " ->> '_seq')::bigint = r.seq",
						insert, rejected, pipeline_qualified_name(def->row_state));
	if (from == BATCH_FROM_QUARANTINE)
		return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, q.raw_row, q.source_xid, "
						"q.source_seq FROM %s JOIN pipeline.quarantine_log q ON q.id = r.seq",
						insert, rejected);
	return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, to_jsonb(s) - '_xid' - '_seq', "
					"s._xid, s._seq FROM %s JOIN %s s ON s._xid = r.xid AND s._seq = r.seq",
					insert, rejected, pipeline_qualified_name(def->source));
}

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
 * pipeline_row_keys
 *		The columns that identify a source row in a strategy's row state
 *		(and, for an aggregate, in the batch row): __pl_k<j>, one per
 *		source_key column of an aggregate, per key column otherwise.
 */
List *
pipeline_row_keys(const PipelineDef *def)
{
	List	   *keys = NIL;
	int			n = list_length(def->strategy->groups ? def->source_key : def->key);

	for (int j = 0; j < n; j++)
		keys = lappend(keys, psprintf(PIPELINE_ROW_SOURCE_KEY, j));
	return keys;
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
		appendStringInfoString(&list, pipeline_extract_row_check(def, map, from));
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
														   pipeline_pending_sql(def, map, from, "s.*", shape))));
	else
		rows = psprintf("(%s OFFSET 0)", pipeline_pending_sql(def, map, from, list.data, shape));
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
