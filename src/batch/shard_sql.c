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
 * The statement reads no catalog of the extension and calls none of its
 * functions: it is plain SQL over the two shards, whose names it takes
 * where the caller says (the shards' own, or the distributed tables' to
 * probe it at definition).  It returns one jsonb: read, filtered,
 * inserted, updated, deleted, stale, and the rejected rows as
 * [_xid, _seq, rule number, raw row], at most PIPELINE_SHARD_MAX_REJECTED of
 * them (the run's memory holds them all; the others stay staged, for the
 * next run to quarantine).
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
 * column_values
 *		"l.c1, l.c2, ...": the mapped columns of a claimed row (alias l).
 */
static char *
column_values(const PipelineMapping *map)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, map->columns)
		names = lappend(names, ((ColumnMap *) lfirst(lc))->column);
	return pipeline_quote_list(names, "l");
}

/*
 * mapped_rows
 *		"m0 AS (...), m AS (...)": the staging shard's first batch_size rows
 *		meeting 'rows' (a condition on the shard's row s) in (_xid, _seq)
 *		order (its unique index's), mapped, with whether
 *		the filter keeps each (__pl_keep), whether it deletes (__pl_del),
 *		and the first row rule it fails (__pl_rule, -1: none, or the filter
 *		skips it).
 */
static void
mapped_rows(StringInfo sql, const PipelineDef *def, const PipelineMapping *map, List *rules,
			const char *source, const char *rows)
{
	ListCell   *lc;
	int			i = 0;

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
	appendStringInfoString(sql, "m AS (SELECT m0.*, CASE WHEN NOT __pl_keep THEN -1");
	foreach(lc, rules)
		appendStringInfo(sql, " WHEN NOT (%s) THEN %d", ((RowRule *) lfirst(lc))->passes, i++);
	appendStringInfoString(sql, " ELSE -1 END AS __pl_rule FROM m0), ");
}

/*
 * claimed_rows
 *		"claimed AS (DELETE ...)": the rows this statement merges, removed
 *		from the staging shard by the statement that writes them.  A row a
 *		concurrent statement claimed or changed meanwhile is not claimed
 *		(its ctid no longer matches): it stays for the next run.
 */
static void
claimed_rows(StringInfo sql, const char *source)
{
	appendStringInfo(sql, "claimed AS (DELETE FROM ONLY %s s USING m WHERE s.ctid = m.__pl_ctid "
					 "AND m.__pl_rule < 0 RETURNING m.*), ", source);
}

/*
 * upsert_and_delete
 *		"latest AS (...), written AS (INSERT ... ON CONFLICT ...), deleted
 *		AS (...)": each key's latest claimed event upserted, never over a
 *		newer version (sequence_by) nor over an equal row, or deleting it.
 */
static void
upsert_and_delete(StringInfo sql, const PipelineDef *def, const PipelineMapping *map,
				  const char *target)
{
	const char *seq_column = pipeline_sequence_target_column(def);
	const char *seq = seq_column ? quote_identifier(seq_column) : NULL;
	char	   *keys = pipeline_quote_list(def->key, NULL);

	appendStringInfo(sql, "latest AS (SELECT DISTINCT ON (%s) * FROM claimed WHERE __pl_keep "
					 "ORDER BY %s, %s__pl_xid DESC, __pl_seq DESC), ",
					 keys, keys, seq ? psprintf("%s DESC NULLS LAST, ", seq) : "");
	appendStringInfo(sql, "written AS (INSERT INTO %s AS t (%s) SELECT %s FROM latest l "
					 "WHERE NOT l.__pl_del%s RETURNING (t.xmax = 0) AS inserted), ",
					 target, pipeline_mapping_column_list(map), column_values(map),
					 pipeline_upsert_conflict(def, map, false));
	appendStringInfo(sql, "deleted AS (DELETE FROM %s t USING latest l WHERE l.__pl_del AND %s%s "
					 "RETURNING 1) ", target, pipeline_key_match(def, "t", "l"),
					 seq ? psprintf(" AND (t.%s IS NULL OR t.%s <= l.%s)", seq, seq, seq) : "");
}

/*
 * result
 *		The statement's one jsonb, counting as a run does, from its CTEs
 *		written and (for a merge) deleted.  Stale: claimed events that wrote
 *		nothing (an older event of a key in the same batch, an event older
 *		than the stored row, or equal to it).
 */
static void
result(StringInfo sql, const char *source, bool merges)
{
	appendStringInfo(sql,
					 "SELECT pg_catalog.jsonb_build_object("
					 "'read', (SELECT count(*) FROM m), "
					 "'filtered', (SELECT count(*) FROM claimed WHERE NOT __pl_keep), "
					 "'inserted', (SELECT count(*) FROM written WHERE inserted), "
					 "'updated', (SELECT count(*) FROM written WHERE NOT inserted), "
					 "'deleted', %s, "
					 "'stale', (SELECT count(*) FROM claimed WHERE __pl_keep) - (SELECT count(*) FROM written)%s, "
					 "'rejected', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array("
					 "m.__pl_xid, m.__pl_seq, m.__pl_rule, pg_catalog.to_jsonb(s) - '_xid' - '_seq')), '[]') "
					 "FROM (SELECT * FROM m WHERE m.__pl_rule >= 0 LIMIT %d) m "
					 "JOIN ONLY %s s ON s.ctid = m.__pl_ctid))::text",
					 merges ? "(SELECT count(*) FROM deleted)" : "0",
					 merges ? " - (SELECT count(*) FROM deleted)" : "",
					 PIPELINE_SHARD_MAX_REJECTED, source);
}

/*
 * pipeline_shard_sql
 *		The statement merging one pair of co-located shards, 'source' and
 *		'target' being the names to write for the staging and target
 *		tables (quoted as SQL), 'rows' the condition on the staged rows it
 *		reads (SQL over the shard's row s).
 */
char *
pipeline_shard_sql(const PipelineDef *def, const PipelineMapping *map, List *rules,
				   const char *source, const char *target, const char *rows)
{
	StringInfoData sql;
	bool		merges = def->strategy->keyed;

	initStringInfo(&sql);
	mapped_rows(&sql, def, map, rules, source, rows);
	claimed_rows(&sql, source);
	if (merges)
		upsert_and_delete(&sql, def, map, target);
	else
		appendStringInfo(&sql, "written AS (INSERT INTO %s AS t (%s) SELECT %s FROM claimed l "
						 "WHERE l.__pl_keep RETURNING true AS inserted) ",
						 target, pipeline_mapping_column_list(map), column_values(map));
	result(&sql, source, merges);
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
 *		The statement a sharded run sends to its workers: the sentinels
 *		where the worker function writes the shards' names and the
 *		condition on the rows it reads (run/shard_statement.c).  Errors when
 *		a byte 0x01 stands anywhere else (an expression, a name or a
 *		constraint of the tables): the worker could not tell it from them.
 */
char *
pipeline_shard_statement(const PipelineDef *def, const PipelineMapping *map, List *rules)
{
	char	   *statement = pipeline_shard_sql(def, map, rules, PIPELINE_SHARD_SOURCE,
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
