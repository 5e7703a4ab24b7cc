/*-------------------------------------------------------------------------
 *
 * snapshot_sql.c
 *	  Full extracts (format => 'snapshot'): the keys a complete extract
 *	  lacks, which a merge deletes and an scd2 closes, and the guard that
 *	  keeps an empty or truncated extract from emptying the target.
 *
 * An extract is the rows one source transaction staged: a run's batch is
 * one transaction's rows whole (run.c), so a batch from the staging table
 * is one extract.  It is complete when every one of its rows is in the
 * batch's accepted rows, but those the filter skips: a row quarantined (a
 * NULL key, a failed check, a value the target cannot hold) leaves its key
 * unknown, so a partial extract applies its rows and deletes nothing.
 * Rows put back from the quarantine, or replayed, are never a complete
 * extract.  The strategies add the keys a complete extract lacks to its
 * rows as delete events, at the batch's last row's position (hi): a real
 * row of the batch, as the row marks need.
 *
 * With hard_deletes 'new_record' (scd2) a missing key is not a delete but
 * an upsert of its current version's values with __deleted true: the scd2
 * tracks __deleted (mapped as false for the extract's rows), so the key's
 * live version closes where a deleted one starts, and a key that comes back
 * closes its deleted version.  A key whose current version is already
 * deleted is not missing again.
 *
 * With extract_id, an extract is the rows naming one value of that column,
 * however many transactions staged them, one extract after another: the
 * extract being applied is the first pending row's whose value is above
 * the latest applied (pipeline_defs.extract_applied), and it ends before
 * the first pending row with a greater value.  It is complete once such a
 * row exists (the next extract began) or its loader closed it
 * (close_extract); until then the run stops before it (run.c).  A row of
 * another extract among its rows -- one already applied, one staged after
 * a later one began, or none -- is refused (refuse_extract_row) and
 * quarantined with the reason; the count that says the extract is
 * complete is of its pending rows in the batch, a row refused or
 * quarantined included.
 *
 * Before any is applied, the guard compares their number with the
 * target's rows: more than max_delete_share of them calls
 * pipeline.refuse_extract, which fails the run, unless the owner allowed
 * that extract (extract_decisions.c).  A skipped extract's rows are not
 * applied at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"

#define P(name) pipeline_batch_param(BATCH_PARAM_##name)

/*
 * pipeline_marks_deleted
 *		Whether a key a complete extract lacks gets a version of its own,
 *		marked __deleted (hard_deletes 'new_record').
 */
bool
pipeline_marks_deleted(const PipelineDef *def)
{
	return def->hard_deletes != NULL && strcmp(def->hard_deletes, "new_record") == 0;
}

/*
 * pipeline_reads_extracts
 *		Whether a pipeline's source transactions stage full extracts.
 */
bool
pipeline_reads_extracts(const PipelineDef *def)
{
	return def->format != NULL && strcmp(def->format, "snapshot") == 0;
}

/*
 * pipeline_extract_id_attnum
 *		The extract_id column's number in the source; errors when the column
 *		was renamed or dropped since the pipeline was defined.
 */
AttrNumber
pipeline_extract_id_attnum(const PipelineDef *def)
{
	AttrNumber	att = get_attnum(def->source, def->extract_id);

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("extract_id column \"%s\" of pipeline \"%s\" is not a column of source %s",
						def->extract_id, def->name, pipeline_qualified_name(def->source)),
				 errdetail("It was renamed or dropped after the pipeline was defined."),
				 errhint("Rename the column back, or define a new pipeline with the column's name.")));
	return att;
}

/*
 * extract_type
 *		The SQL type of the extract_id column.
 */
static char *
extract_type(const PipelineDef *def)
{
	return pipeline_column_type_sql(def->source, pipeline_extract_id_attnum(def));
}

/*
 * recorded_extract
 *		"(SELECT (d.<field> #>> '{}')::<type> FROM pipeline.pipeline_defs d
 *		WHERE ...)": an extract the definition records (extract_applied or
 *		extract_closed), typed; no row when it records none.  The owner
 *		running the statement reads its own pipeline's row.
 */
static char *
recorded_extract(const PipelineDef *def, const char *field)
{
	return psprintf("(SELECT (d.%s #>> '{}')::%s FROM pipeline.pipeline_defs d WHERE d.id = " INT64_FORMAT
					" AND d.%s IS NOT NULL)", field, extract_type(def), def->id, field);
}

/*
 * pipeline_current_extract
 *		"(SELECT ...)": the extract_id value of the extract being applied:
 *		the first pending row's (within the bounds) above the latest
 *		applied; NULL when none is.
 */
char *
pipeline_current_extract(const PipelineDef *def, BatchSource from)
{
	const char *c = quote_identifier(def->extract_id);

	return psprintf("(SELECT p.%s FROM (%s) p WHERE p.%s IS NOT NULL AND p.%s > ALL %s "
					"ORDER BY p._xid, p._seq LIMIT 1)",
					c, pipeline_pending_sql(def, from, psprintf("s._xid, s._seq, s.%s", c), PENDING_RANGE),
					c, c, recorded_extract(def, "extract_applied"));
}

/*
 * extract_id_end_sql
 *		With extract_id: the statement giving the last pending row (within
 *		the bounds) of the extract being applied, whether that extract is
 *		complete (a later one began, or it was closed; or no extract is
 *		being applied: the rows pending are all of other extracts, to be
 *		refused), and its value as a JSON scalar.  No row when nothing is
 *		pending.
 */
static char *
extract_id_end_sql(const PipelineDef *def, BatchSource from)
{
	const char *c = quote_identifier(def->extract_id);
	char	   *pending = pipeline_pending_sql(def, from, psprintf("s._xid, s._seq, s.%s", c),
											   PENDING_RANGE);

	return psprintf("WITH x AS MATERIALIZED (SELECT %s AS v), "
					"n AS MATERIALIZED (SELECT p._xid, p._seq FROM (%s) p, x WHERE p.%s > x.v "
					"ORDER BY p._xid, p._seq LIMIT 1), "
					"e AS (SELECT p._xid, p._seq FROM (%s) p WHERE NOT EXISTS (SELECT 1 FROM n) "
					"OR (p._xid, p._seq) < (SELECT n._xid, n._seq FROM n) ORDER BY p._xid DESC, p._seq DESC LIMIT 1) "
					"SELECT e._xid, e._seq, x.v IS NULL OR EXISTS (SELECT 1 FROM n) OR x.v <= ANY %s, "
					"to_jsonb(x.v)::text FROM e, x",
					pipeline_current_extract(def, from), pending, c, pending,
					recorded_extract(def, "extract_closed"));
}

/*
 * pipeline_extract_end_sql
 *		The statement giving where the batch of the first pending extract
 *		ends (run.c): its last pending row within the bounds -- of the first
 *		pending row's transaction (a transaction's rows are all pending or
 *		none), or with extract_id of the extract being applied, then with
 *		whether it is complete and its value (extract_id_end_sql).
 */
char *
pipeline_extract_end_sql(const PipelineDef *def, BatchSource from)
{
	if (def->extract_id)
		return extract_id_end_sql(def, from);
	return psprintf("SELECT s._xid, s._seq FROM %s s WHERE s._xid = (%s) "
					"AND (s._xid, s._seq) > (%s, %s) AND (s._xid, s._seq) <= (%s, %s) "
					"ORDER BY s._xid DESC, s._seq DESC LIMIT 1",
					pipeline_qualified_name(def->source),
					pipeline_pending_sql(def, from, "s._xid", PENDING_FIRST),
					P(LO_XID), P(LO_SEQ), P(HI_XID), P(HI_SEQ));
}

/*
 * pipeline_extract_row_check
 *		", (...) AS __pl_extract_ok": with extract_id, for a staged row
 *		(alias s), refuses a row that is not of the extract being applied.
 */
char *
pipeline_extract_row_check(const PipelineDef *def, BatchSource from)
{
	const char *c = quote_identifier(def->extract_id);
	char	   *current = pipeline_current_extract(def, from);

	return psprintf(", CASE WHEN s.%s = %s THEN true ELSE pipeline.refuse_extract_row(s.%s::text, %s::text) END "
					"AS __pl_extract_ok", c, current, c, current);
}

/*
 * decided
 *		"EXISTS (...)": whether the owner decided 'decision' about the
 *		batch's extract.
 */
static char *
decided(const char *decision)
{
	return psprintf("EXISTS (SELECT 1 FROM pipeline.extract_decisions x WHERE x.pipeline_id = %s "
					"AND x.extract_xid = %s AND x.decision = '%s')",
					P(PIPELINE_ID), P(HI_XID), decision);
}

/*
 * pipeline_extract_kept
 *		The condition the rows of a batch's extract meet to be applied (else
 *		they are counted as filtered): its owner did not skip it.
 */
char *
pipeline_extract_kept(void)
{
	return psprintf("NOT %s", decided("skip"));
}

/*
 * extract_position
 *		"<hi xid> AS __pl_xid, <hi seq> AS __pl_seq": where the delete events
 *		of the keys an extract lacks stand in the batch.
 */
static char *
extract_position(void)
{
	return psprintf("%s::xid8 AS __pl_xid, %s::bigint AS __pl_seq", P(HI_XID), P(HI_SEQ));
}

/*
 * extract_guard
 *		The condition the delete events of an extract's missing keys (the
 *		CTE absent) pass before any is applied: none, or few enough of the
 *		target's rows ('live', what counts them: only counted when some are
 *		missing), or allowed; else the run fails.
 */
static char *
extract_guard(const PipelineDef *def, const char *live)
{
	char	   *deleting = "(SELECT count(*) FROM absent)";

	return psprintf("(%s = 0 OR %s <= %g * %s OR %s OR pipeline.refuse_extract(%s, %s, %s, %s, %g::real))",
					deleting, deleting, (double) def->max_delete_share, live, decided("allow"),
					quote_literal_cstr(def->name), P(HI_XID), deleting, live,
					(double) def->max_delete_share);
}

/*
 * complete
 *		Whether the batch is a complete extract: it has rows, and every row
 *		its transaction staged (but those the filter skips) is among its
 *		accepted rows, which 'extract' counts (__pl_rows).  "false" for rows that are not a
 *		staged extract, or when missing keys are ignored.
 */
static char *
complete(const PipelineDef *def, BatchSource from, const char *extract)
{
	char	   *filter = def->filter ? psprintf(" AND (%s)::boolean IS TRUE", def->filter) : "";
	char	   *staged;

	if (from != BATCH_FROM_STAGING || strcmp(def->hard_deletes, "ignore") == 0)
		return "false";
	/* (within the bounds, quarantined rows included: they leave it partial) */
	if (def->extract_id)
		staged = psprintf("(SELECT count(*) FROM (%s) s WHERE (s._xid, s._seq) > (%s, %s) "
						  "AND (s._xid, s._seq) <= (%s, %s) AND s.%s = %s%s)",
						  pipeline_pending_sql(def, from, "s.*", PENDING_WHOLE),
						  P(LO_XID), P(LO_SEQ), P(HI_XID), P(HI_SEQ),
						  quote_identifier(def->extract_id), pipeline_current_extract(def, from), filter);
	else
		staged = psprintf("(SELECT count(*) FROM %s s WHERE s._xid = %s%s)",
						  pipeline_qualified_name(def->source), P(HI_XID), filter);
	/* (a batch past the last extract, or skipped, has no row: no extract) */
	return psprintf("(%s AND (SELECT __pl_rows FROM %s) > 0 AND %s = (SELECT __pl_rows FROM %s))",
					pipeline_extract_kept(), extract, staged, extract);
}

/*
 * pipeline_extract_absent_values
 *		", c.__pl_t0, NULL::text, ...": the mapped columns of the delete
 *		event of a key a full extract lacks, from the target's key (the
 *		comparison's __pl_t<i>), typed as the target's columns (a union
 *		resolves them with the extract's); the sequence_by column, when
 *		'sequence_value' is given, that value.  Marking deleted keys, the
 *		values are the current version's (alias x), __deleted true.
 */
char *
pipeline_extract_absent_values(const PipelineDef *def, const PipelineMapping *map,
							   const char *sequence_value)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		Oid			type;
		int32		typmod;

		if (cm->is_key)
			appendStringInfo(&buf, ", c.%s",
							 pipeline_extract_target_key(pipeline_list_position(def->key, cm->column)));
		else if (sequence_value && strcmp(cm->column, def->sequence_by) == 0)
			appendStringInfo(&buf, ", %s", sequence_value);
		else if (pipeline_marks_deleted(def))
			appendStringInfo(&buf, ", %s", strcmp(cm->column, PIPELINE_DELETED_COLUMN) == 0 ? "true" :
							 psprintf("x.%s", quote_identifier(cm->column)));
		else
		{
			pipeline_target_column_type(def, cm->column, &type, &typmod);
			appendStringInfo(&buf, ", NULL::%s", format_type_with_typemod(type, typmod));
		}
	}
	return buf.data;
}

/*
 * pipeline_extract_target_key
 *		The name of the column holding the target's key column i (in the
 *		key's order) in the comparison of an extract with the target.
 */
char *
pipeline_extract_target_key(int i)
{
	return psprintf("__pl_t%d", i);
}

/*
 * current_version
 *		" JOIN <current> x ON ... AND x.__deleted IS NOT TRUE": a missing
 *		key's current version (compared's alias c), when it is not deleted
 *		already.
 */
static char *
current_version(const PipelineDef *def, const char *current)
{
	StringInfoData on;
	ListCell   *lc;

	initStringInfo(&on);
	foreach(lc, def->key)
		appendStringInfo(&on, "x.%s = c.%s AND ", quote_identifier(lfirst(lc)),
						 pipeline_extract_target_key(foreach_current_index(lc)));
	return psprintf(" JOIN %s x ON %sx.%s IS NOT TRUE", current, on.data, PIPELINE_DELETED_COLUMN);
}

/*
 * pipeline_extract_events
 *		", compared AS (...), repeated AS (...), absent AS (...)" after the
 *		CTE extract_rows (__pl_xid, __pl_seq, the mapped columns 'columns',
 *		__pl_del: the batch's accepted rows), and returns the batch's
 *		events, what follows FROM.  extract_tally counts the extract's rows
 *		(__pl_rows) and computes the 'tallies' (", max(x) AS y", or "")
 *		in the same scan.  One full join of the extract with 'current' (the
 *		target's current rows, alias t) finds both the rows that differ
 *		('differ', over t and the extract's row l; the others are counted as
 *		unchanged) and the keys the extract lacks, whose delete events
 *		('absent_values', the mapped columns over the target's keys
 *		__pl_t<i>) a complete extract adds once the guard let them through
 *		('live' counts the target's rows).  Only the rows that differ go on,
 *		but a key with several rows in the extract, some of which differ,
 *		takes all of them, so that its latest row decides.
 */
char *
pipeline_extract_events(StringInfo sql, const PipelineDef *def, BatchSource from,
						const char *columns, const char *tallies, const char *current,
						const char *differ, const char *absent_values, const char *live)
{
	char	   *keys = pipeline_quote_list(def->key, NULL);
	StringInfoData target_keys;
	ListCell   *lc;

	initStringInfo(&target_keys);
	foreach(lc, def->key)
		appendStringInfo(&target_keys, ", t.%s AS %s", quote_identifier(lfirst(lc)),
						 pipeline_extract_target_key(foreach_current_index(lc)));
	appendStringInfo(sql, ", extract_tally AS MATERIALIZED (SELECT count(*) AS __pl_rows%s FROM extract_rows)",
					 tallies);
	appendStringInfo(sql, ", compared AS MATERIALIZED (SELECT l.*%s FROM extract_rows l FULL JOIN %s t ON %s "
					 "WHERE l.__pl_xid IS NULL OR t.%s IS NULL OR pipeline.changes_row(true, %s))",
					 target_keys.data, current, pipeline_key_match(def, "t", "l"),
					 quote_identifier(linitial(def->key)), differ);
	appendStringInfo(sql, ", repeated AS (SELECT %s FROM extract_rows WHERE (%s) IN "
					 "(SELECT %s FROM compared WHERE __pl_xid IS NOT NULL) GROUP BY %s HAVING count(*) > 1)",
					 keys, keys, keys, keys);
	appendStringInfo(sql, ", absent AS MATERIALIZED (SELECT %s%s, %s FROM compared c%s "
					 "WHERE c.__pl_xid IS NULL AND %s)",
					 extract_position(), absent_values, pipeline_marks_deleted(def) ? "false" : "true",
					 pipeline_marks_deleted(def) ? current_version(def, current) : "",
					 complete(def, from, "extract_tally"));
	return psprintf("(SELECT __pl_xid, __pl_seq, %s, __pl_del FROM compared WHERE __pl_xid IS NOT NULL "
					"AND (%s) NOT IN (SELECT %s FROM repeated) "
					"UNION ALL SELECT * FROM extract_rows WHERE (%s) IN (SELECT %s FROM repeated) "
					"UNION ALL SELECT * FROM absent WHERE %s) u",
					columns, keys, keys, keys, keys, extract_guard(def, live));
}
