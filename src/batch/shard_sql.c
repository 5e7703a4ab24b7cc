/*-------------------------------------------------------------------------
 *
 * shard_sql.c
 *	  The statement a sharded pipeline runs on each pair of co-located
 *	  shards, in one transaction of the worker holding them: it claims the
 *	  staged rows it can merge (deletes them from the staging shard) and
 *	  writes them into the target shard, so a row is merged exactly when it
 *	  is claimed, whatever the coordinator's snapshot saw.
 *
 * A row the staging shard does not show yet (its distributed transaction
 * committed on the coordinator, its prepared transaction not yet on this
 * worker) is not claimed: the next run merges it.  A row failing a row rule
 * is not claimed either; the statement names it (with its raw row) for the
 * coordinator to quarantine (run/shard_run.c).  Rows of a key are ordered
 * by sequence_by when the target keeps it, then by (_xid, _seq).
 *
 * What it writes is the strategy's: a merge's upsert and an append's
 * insert are this file's; a strategy writing a shard otherwise (scd2's
 * versions) appends its own CTEs (PipelineStrategy.shard_ctes).
 *
 * A sharded append into a table on the coordinator runs the same statement
 * there, over a temporary table its batch's rows were first taken into
 * (run/routed_run.c); its target's change log, on the coordinator too, is
 * written by it.
 *
 * Data quality checks judge the rows of the shard's batch, in the
 * statement: a row failing a check whose action is quarantine is not
 * claimed and is named like a row breaking a rule, one whose action is drop
 * is claimed and not written; and when the shard's batch fails its checks
 * (a row failing a check whose action is fail, or a check's error_if met
 * by the batch's counts) the statement claims and writes nothing, and
 * says so.  A shard's batch is what commits, so it is what is judged.
 *
 * The statement reads no catalog of the extension and calls none of its
 * functions: it is plain SQL over the two shards, whose names it takes
 * where the caller says (the shards' own, or the distributed tables' to
 * probe it at definition).  It returns one jsonb: read, filtered,
 * inserted, updated, deleted, stale, dropped, and the rejected rows as
 * [_xid, _seq, rule number, raw row] (a row failing checks: [_xid, _seq,
 * -1, raw row, reason, SQLSTATE]), at most PIPELINE_SHARD_MAX_REJECTED of
 * them (the run's memory holds them all; the others stay staged, for the
 * next run to quarantine); with checks, their counts and statuses
 * ("checks") and, when the batch failed them, "check_failed" naming the
 * checks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategy.h"

/*
 * mapped_rows
 *		"WITH m0 AS (...), ": the staging shard's first batch_size rows
 *		meeting 'rows' (a condition on the shard's row s) in (_xid, _seq)
 *		order (its unique index's), mapped, with whether the filter keeps
 *		each (__pl_keep) and whether it deletes (__pl_del).
 */
static void
mapped_rows(StringInfo sql, const PipelineDef *def, const PipelineMapping *map, const char *source,
			const char *rows)
{
	ListCell   *lc;

	appendStringInfoString(sql, "WITH m0 AS (SELECT s.__pl_ctid, s._xid AS __pl_xid, "
						   "s._seq AS __pl_seq");
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		appendStringInfo(sql, ", (%s) AS %s", pipeline_shard_expression(def, cm->expr),
						 quote_identifier(cm->column));
	}
	appendStringInfo(sql, ", %s AS __pl_keep, %s AS __pl_del "
					 "FROM (SELECT s.ctid AS __pl_ctid, s.* FROM ONLY %s s WHERE %s "
					 "ORDER BY s._xid, s._seq LIMIT " INT64_FORMAT ") s), ",
					 def->filter ? psprintf("((%s)::boolean IS TRUE)", pipeline_shard_expression(def, def->filter)) : "true",
					 def->delete_when ? psprintf("((%s)::boolean IS TRUE)",
												 pipeline_shard_expression(def, def->delete_when)) : "false",
					 source, rows, def->batch_size);
}

/*
 * ruled_rows
 *		"<name> AS (...), ": the rows of 'from' with the first row rule each
 *		fails (__pl_rule, -1: none, or the filter skips it).
 */
static void
ruled_rows(StringInfo sql, List *rules, const char *from, const char *name)
{
	ListCell   *lc;
	int			i = 0;

	appendStringInfo(sql, "%s AS (SELECT b.*, CASE WHEN NOT b.__pl_keep THEN -1", name);
	foreach(lc, rules)
		appendStringInfo(sql, " WHEN NOT (%s) THEN %d", ((RowRule *) lfirst(lc))->passes, i++);
	appendStringInfo(sql, " ELSE -1 END AS __pl_rule FROM %s b), ", from);
}

/*
 * checked_rows
 *		"mw AS (...), mr AS (...), mc AS (...), m AS (...), ": the rows with
 *		the window columns unique checks count over the batch (mw, when
 *		any), their rule (mr), each check's result for the rows the checks
 *		look at (__pl_c<i>: kept by the filter, no rule broken, not a delete
 *		event; NULL when the check leaves the row's NULL value out, or does
 *		not look at it), and the strongest action of the checks a row failed
 *		(__pl_act: 0 none, then warn, drop, quarantine, fail as 1 to 4).
 */
static void
checked_rows(StringInfo sql, List *rules, List *checks)
{
	ListCell   *lc;
	bool		windows = false;

	foreach(lc, checks)
		windows |= ((QualityCheck *) lfirst(lc))->window != NULL;
	if (windows)
	{
		appendStringInfoString(sql, "mw AS (SELECT w.*");
		foreach(lc, checks)
		{
			QualityCheck *check = lfirst(lc);

			if (check->window)
				appendStringInfo(sql, ", %s AS __pl_u%d", check->window, foreach_current_index(lc));
		}
		appendStringInfoString(sql, " FROM m0 w), ");
	}
	ruled_rows(sql, rules, windows ? "mw" : "m0", "mr");
	appendStringInfoString(sql, "mc AS (SELECT b.*");
	foreach(lc, checks)
		appendStringInfo(sql, ", CASE WHEN b.__pl_keep AND b.__pl_rule < 0 AND NOT b.__pl_del THEN %s END "
						 "AS __pl_c%d", ((QualityCheck *) lfirst(lc))->passes, foreach_current_index(lc));
	appendStringInfoString(sql, " FROM mr b), m AS (SELECT c.*, greatest(0");
	foreach(lc, checks)
		appendStringInfo(sql, ", CASE WHEN NOT c.__pl_c%d THEN %d END", foreach_current_index(lc),
						 (int) ((QualityCheck *) lfirst(lc))->action + 1);
	appendStringInfoString(sql, ") AS __pl_act FROM mc c), ");
}

/*
 * threshold_sql
 *		Whether 'failing' of 'total' rows (SQL) meet a threshold: the SQL
 *		form of check_results.c's judgement of a batch.
 */
static char *
threshold_sql(const CheckThreshold *t, const char *failing, const char *total)
{
	if (!t->set)
		return "false";
	return psprintf("(%s %s %.17g)",
					t->percent ? psprintf("(CASE WHEN %s > 0 THEN 100.0 * %s / %s ELSE 0 END)", total, failing, total)
					: failing, t->op, t->value);
}

/*
 * judged_batch
 *		"v AS (...), verdict AS (...), ": the checks' counts over the shard's
 *		batch -- rows checked, and per check the rows failing it (f<i>) and
 *		those it left out for a NULL value (u<i>) -- and each check's
 *		status as check_results.c judges a batch (0 PASS, 1 WARN, 2 FAIL:
 *		a row failing it with action fail, or its error_if met).
 */
static void
judged_batch(StringInfo sql, List *checks)
{
	ListCell   *lc;

	appendStringInfoString(sql, "v AS (SELECT count(*) FILTER (WHERE __pl_keep AND __pl_rule < 0) AS checked");
	foreach(lc, checks)
	{
		int			i = foreach_current_index(lc);

		appendStringInfo(sql, ", count(*) FILTER (WHERE NOT __pl_c%d) AS f%d, count(*) FILTER (WHERE "
						 "__pl_keep AND __pl_rule < 0 AND NOT __pl_del AND __pl_c%d IS NULL) AS u%d",
						 i, i, i, i);
	}
	appendStringInfoString(sql, " FROM m), verdict AS (SELECT v.*, ARRAY[");
	foreach(lc, checks)
	{
		QualityCheck *check = lfirst(lc);
		int			i = foreach_current_index(lc);
		char	   *f = psprintf("v.f%d", i);
		char	   *total = psprintf("(v.checked - v.u%d)", i);

		appendStringInfo(sql, "%sCASE WHEN %s OR %s THEN 2 WHEN %s THEN 1 ELSE 0 END", i ? ", " : "",
						 check->action == CHECK_FAIL ? psprintf("%s > 0", f) : "false",
						 threshold_sql(&check->error_if, f, total), threshold_sql(&check->warn_if, f, total));
	}
	appendStringInfoString(sql, "]::int[] AS statuses FROM v), ");
}

/*
 * check_names
 *		"concat_ws(', ', CASE WHEN <cond i> THEN '"name i"' END, ...)": the
 *		quoted names of the checks meeting 'cond' ("%d": the check's number).
 */
static char *
check_names(List *checks, const char *cond)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.concat_ws(', '");
	foreach(lc, checks)
		appendStringInfo(&buf, ", CASE WHEN %s THEN %s END",
						 psprintf(cond, foreach_current_index(lc)),
						 quote_literal_cstr(psprintf("\"%s\"", ((QualityCheck *) lfirst(lc))->name)));
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * claimed_rows
 *		"claimed AS (DELETE ...)": the rows this statement merges, removed
 *		from the staging shard by the statement that writes them.  A row a
 *		concurrent statement claimed or changed meanwhile is not claimed
 *		(its ctid no longer matches): it stays for the next run.  With
 *		checks, nor is a row a check quarantines, nor any row of a batch
 *		that failed its checks.
 */
static void
claimed_rows(StringInfo sql, const char *source, bool checked)
{
	appendStringInfo(sql, "claimed AS (DELETE FROM ONLY %s s USING m WHERE s.ctid = m.__pl_ctid "
					 "AND m.__pl_rule < 0%s RETURNING m.*), ", source,
					 checked ? " AND m.__pl_act <> 3 AND NOT (SELECT 2 = ANY (statuses) FROM verdict)" : "");
}

/*
 * upsert_and_delete
 *		"latest AS (...), written AS (INSERT ... ON CONFLICT ...), deleted
 *		AS (...)": each key's latest claimed event to write ('written', a
 *		condition on claimed) upserted, never over a newer version
 *		(sequence_by) nor over an equal row, or deleting it.
 */
static void
upsert_and_delete(StringInfo sql, const PipelineDef *def, const PipelineMapping *map,
				  const char *target, const char *written)
{
	const char *seq_column = pipeline_sequence_target_column(def);
	const char *seq = seq_column ? quote_identifier(seq_column) : NULL;
	char	   *keys = pipeline_quote_list(def->key, NULL);

	appendStringInfo(sql, "latest AS (SELECT DISTINCT ON (%s) * FROM claimed WHERE %s "
					 "ORDER BY %s, %s__pl_xid DESC, __pl_seq DESC), ",
					 keys, written, keys, seq ? psprintf("%s DESC NULLS LAST, ", seq) : "");
	appendStringInfo(sql, "written AS (INSERT INTO %s AS t (%s) SELECT %s FROM latest l "
					 "WHERE NOT l.__pl_del%s RETURNING (t.xmax = 0) AS inserted), ",
					 target, pipeline_mapping_column_list(map), pipeline_mapping_column_values(map, "l"),
					 pipeline_upsert_conflict(def, map, false));
	appendStringInfo(sql, "deleted AS (DELETE FROM %s t USING latest l WHERE l.__pl_del AND %s%s "
					 "RETURNING 1)", target, pipeline_key_match(def, "t", "l"),
					 seq ? psprintf(" AND (t.%s IS NULL OR t.%s <= l.%s)", seq, seq, seq) : "");
}

/*
 * checks_failed_list
 *		"CASE WHEN NOT m.__pl_c0 THEN 1 END, ...": non-NULL for each check a
 *		row failed.
 */
static char *
checks_failed_list(List *checks)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < list_length(checks); i++)
		appendStringInfo(&buf, "%sCASE WHEN NOT m.__pl_c%d THEN 1 END", i ? ", " : "", i);
	return buf.data;
}

/*
 * rejected_rows
 *		The rows the statement names for the quarantine: breaking a rule, or
 *		failing a check whose action is quarantine (with the reason and
 *		SQLSTATE of the checks it failed); none when the batch failed its
 *		checks (nothing of it is taken).
 */
static char *
rejected_rows(const char *source, List *checks)
{
	const char *entry = "pg_catalog.jsonb_build_array(m.__pl_xid, m.__pl_seq, m.__pl_rule, "
	"pg_catalog.to_jsonb(s) - '_xid' - '_seq')";

	if (checks == NIL)
		return psprintf("SELECT coalesce(pg_catalog.jsonb_agg(%s), '[]') FROM (SELECT * FROM m "
						"WHERE m.__pl_rule >= 0 LIMIT %d) m JOIN ONLY %s s ON s.ctid = m.__pl_ctid",
						entry, PIPELINE_SHARD_MAX_REJECTED, source);
	return psprintf("SELECT coalesce(pg_catalog.jsonb_agg(%s || CASE WHEN m.__pl_rule < 0 THEN "
					"pg_catalog.jsonb_build_array('failed data quality check' || CASE WHEN "
					"pg_catalog.num_nonnulls(%s) > 1 THEN 's ' ELSE ' ' END || %s, 'PL001') "
					"ELSE '[]' END), '[]') FROM (SELECT * FROM m WHERE (m.__pl_rule >= 0 OR m.__pl_act = 3) "
					"AND NOT (SELECT 2 = ANY (statuses) FROM verdict) LIMIT %d) m "
					"JOIN ONLY %s s ON s.ctid = m.__pl_ctid",
					entry, checks_failed_list(checks), check_names(checks, "NOT m.__pl_c%d"),
					PIPELINE_SHARD_MAX_REJECTED, source);
}

/*
 * checks_result
 *		", 'dropped', ..., 'checks', ..., 'check_failed', ...": what the
 *		checks counted and judged, and the checks that failed the batch.
 */
static char *
checks_result(List *checks)
{
	StringInfoData failing,
				unchecked;

	if (checks == NIL)
		return "";
	initStringInfo(&failing);
	initStringInfo(&unchecked);
	for (int i = 0; i < list_length(checks); i++)
	{
		appendStringInfo(&failing, "%sv.f%d", i ? ", " : "", i);
		appendStringInfo(&unchecked, "%sv.u%d", i ? ", " : "", i);
	}
	return psprintf(", 'dropped', (SELECT count(*) FROM claimed WHERE __pl_keep AND __pl_act = 2), "
					"'checks', (SELECT pg_catalog.jsonb_build_object('checked', v.checked, "
					"'failing', pg_catalog.jsonb_build_array(%s), 'unchecked', pg_catalog.jsonb_build_array(%s), "
					"'statuses', pg_catalog.to_jsonb(v.statuses)) FROM verdict v), "
					"'check_failed', (SELECT CASE WHEN 2 = ANY (v.statuses) THEN %s END FROM verdict v)",
					failing.data, unchecked.data, check_names(checks, "v.statuses[%d + 1] = 2"));
}

/*
 * result
 *		The statement's one jsonb, counting as a run does, from the CTE
 *		applied (inserted, updated, deletes, stale: claimed events that
 *		wrote nothing).
 */
static void
result(StringInfo sql, const char *source, List *checks)
{
	appendStringInfo(sql,
					 " SELECT pg_catalog.jsonb_build_object("
					 "'read', (SELECT count(*) FROM m), "
					 "'filtered', (SELECT count(*) FROM claimed WHERE NOT __pl_keep), "
					 "'inserted', a.inserted, 'updated', a.updated, 'deleted', a.deletes, "
					 "'stale', a.stale, 'rejected', (%s)%s)::text FROM applied a",
					 rejected_rows(source, checks), checks_result(checks));
}

/*
 * applied_cte
 *		", applied AS (...)": what a merge or an append wrote ('written' the
 *		condition on claimed of the events it writes), for result: stale,
 *		the events that wrote nothing (an older event of a key in the same
 *		batch, an event older than the stored row, or equal to it).
 */
static void
applied_cte(StringInfo sql, bool merges, const char *written)
{
	const char *deletes = merges ? "(SELECT count(*) FROM deleted)" : "0";

	appendStringInfo(sql, ", applied AS (SELECT (SELECT count(*) FROM written WHERE inserted) AS inserted, "
					 "(SELECT count(*) FROM written WHERE NOT inserted) AS updated, %s AS deletes, "
					 "(SELECT count(*) FROM claimed WHERE %s) - (SELECT count(*) FROM written) - %s AS stale)",
					 deletes, written, deletes);
}

/*
 * pipeline_shard_sql
 *		The statement merging one pair of co-located shards, 'source' and
 *		'target' being the names to write for the staging and target
 *		tables (quoted as SQL), 'rows' the condition on the staged rows it
 *		reads (SQL over the shard's row s), 'checks' the pipeline's data
 *		quality checks compiled for it (pipeline_load_shard_checks).
 */
char *
pipeline_shard_sql(const PipelineDef *def, const PipelineMapping *map, List *rules, List *checks,
				   const char *source, const char *target, const char *rows)
{
	StringInfoData sql;
	bool		merges = def->strategy->keyed;
	const char *written = checks ? "__pl_keep AND __pl_act <> 2" : "__pl_keep";

	/* written: claimed rows kept by the filter and not dropped by a check */
	initStringInfo(&sql);
	mapped_rows(&sql, def, map, source, rows);
	if (checks)
	{
		checked_rows(&sql, rules, checks);
		judged_batch(&sql, checks);
	}
	else
		ruled_rows(&sql, rules, "m0", "m");
	claimed_rows(&sql, source, checks != NIL);
	if (def->strategy->shard_ctes)
		def->strategy->shard_ctes(&sql, def, map, psprintf("(SELECT * FROM claimed WHERE %s) b", written),
								  target);
	else if (merges)
	{
		upsert_and_delete(&sql, def, map, target, written);
		applied_cte(&sql, true, written);
	}
	else
	{
		/* (a change log is kept only of a target on the coordinator) */
		appendStringInfo(&sql, "written AS (INSERT INTO %s AS t (%s) SELECT %s FROM claimed l "
						 "WHERE %s RETURNING true AS inserted%s)",
						 target, pipeline_mapping_column_list(map), pipeline_mapping_column_values(map, "l"), written,
						 pipeline_published_returning(def));
		pipeline_publish_cte(&sql, def, "written", NULL);
		applied_cte(&sql, false, written);
	}
	result(&sql, source, checks);
	return sql.data;
}

/*
 * count_of
 *		How many times 'needle' occurs in 's'.
 */
static int
count_of(const char *s, const char *needle)
{
	int			n = 0;

	while ((s = strstr(s, needle)) != NULL)
	{
		n++;
		s += strlen(needle);
	}
	return n;
}

/*
 * pipeline_shard_statement
 *		The statement a sharded run sends to its workers ('checks'
 *		compiled to read the target shard's sentinel): the sentinels
 *		where the worker function writes the shards' names and the
 *		condition on the rows it reads (run/shard_statement.c).  Errors when
 *		a byte 0x01 stands anywhere else (an expression, a name or a
 *		constraint of the tables): the worker could not tell it from them.
 */
char *
pipeline_shard_statement(const PipelineDef *def, const PipelineMapping *map, List *rules, List *checks)
{
	char	   *statement = pipeline_shard_sql(def, map, rules, checks, PIPELINE_SHARD_SOURCE,
											   PIPELINE_SHARD_TARGET, PIPELINE_SHARD_ROWS);
	int			marks = 0;

	for (const char *c = statement; *c; c++)
		marks += (*c == '\001');
	if (marks != 2 * (count_of(statement, PIPELINE_SHARD_SOURCE) + count_of(statement, PIPELINE_SHARD_TARGET) +
					  count_of(statement, PIPELINE_SHARD_ROWS)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sharded pipeline \"%s\" has the character U+0001 in an expression, or a name or constraint of its tables",
						def->name),
				 errdetail("Its shard statement marks where the shards' names go with that character."),
				 errhint("Write the character another way (chr(1)) in the expression, or rename the column or rewrite the constraint without it.")));
	return statement;
}
