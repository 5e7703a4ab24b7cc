/*-------------------------------------------------------------------------
 *
 * merge_truncates.c
 *	  How a merge of Debezium events follows a truncate of the captured
 *	  table (on_truncate 'apply'): the parts of its batch statement
 *	  (merge_joins.c) that apply one.
 *
 * A truncate at sequence T empties the captured table at T: every row
 * whose latest event came before T is gone, and an event from before T
 * that arrives later (another partition, a redelivery) must not bring its
 * row back.  So the batch deletes the target rows whose key's kept
 * sequence (the row state, merge_joins.c) is not after T, and forgets
 * their row state; and from then on an event at or before the latest
 * truncate applied -- the floor, pipeline_defs.truncated_at, which the run
 * writes after the batch (batch_exec.c) -- is stale, like an event older
 * than its key's kept sequence.  Events after T in the same batch apply as
 * usual, whatever order they arrived in.
 *
 * A truncate event is counted as a delete event applied.
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
 * floor_values
 *		"(d.truncated_at->>0)::bigint AS __pl_sq, ...": the floor as the
 *		row state's sequence columns, from pipeline_defs (alias d).
 */
static char *
floor_values(const PipelineDef *def)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, pipeline_sequence_columns(def))
		appendStringInfo(&buf, "%s(d.truncated_at->>%d)::%s AS %s", buf.len ? ", " : "",
						 foreach_current_index(lc),
						 pipeline_column_type_sql(def->row_state, get_attnum(def->row_state, lfirst(lc))),
						 quote_identifier(lfirst(lc)));
	return buf.data;
}

/*
 * pipeline_truncation_cte
 *		", truncation AS (...)": the floor after this batch, the latest of
 *		the batch's truncate events (in 'rows', a CTE of batch rows) and
 *		the floor before it; no row when there is none.  The owner running
 *		the statement reads its own pipeline's definition (row-level
 *		security of pipeline_defs lets it).
 */
void
pipeline_truncation_cte(StringInfo sql, const PipelineDef *def, const char *rows)
{
	char	   *seq = pipeline_quote_list(pipeline_sequence_columns(def), NULL);
	StringInfoData order;
	ListCell   *lc;

	initStringInfo(&order);
	foreach(lc, pipeline_sequence_columns(def))
		appendStringInfo(&order, "%s%s DESC", order.len ? ", " : "", quote_identifier(lfirst(lc)));
	appendStringInfo(sql, ", truncation AS MATERIALIZED (SELECT %s FROM ("
					 "SELECT %s FROM %s WHERE " PIPELINE_ROW_TRUNCATE " UNION ALL "
					 "SELECT %s FROM pipeline.pipeline_defs d WHERE d.id = " INT64_FORMAT
					 " AND d.truncated_at IS NOT NULL) f ORDER BY %s LIMIT 1)",
					 seq, seq, rows, floor_values(def), def->id, order.data);
}

/*
 * pipeline_after_truncation
 *		" AND NOT EXISTS (...)": a batch row (alias 'a') is not at or before
 *		the floor.
 */
char *
pipeline_after_truncation(const PipelineDef *def, const char *a)
{
	List	   *seq = pipeline_sequence_columns(def);

	return psprintf(" AND NOT EXISTS (SELECT 1 FROM truncation f WHERE NOT (%s))",
					pipeline_sequence_newer(a, seq, "f", seq));
}

/*
 * pipeline_truncate_ctes
 *		", truncated AS (...), forgotten AS (...)": when the batch has a
 *		truncate event ('rows', a CTE of batch rows), the target rows whose
 *		key's kept sequence is not after the floor are deleted, and their
 *		row state rows forgotten; the keys of 'applied' (whose events are
 *		after it, written by the statement's other parts) are left to them.
 *		Returns SQL that counts the truncate events, and reads both
 *		CTEs so that they run.
 */
char *
pipeline_truncate_ctes(StringInfo sql, const PipelineDef *def, const char *rows,
					   const char *applied)
{
	List	   *seq = pipeline_sequence_columns(def);
	char	   *rows_state = pipeline_qualified_name(def->row_state);

	appendStringInfo(sql, ", truncating AS (SELECT * FROM truncation WHERE EXISTS "
					 "(SELECT 1 FROM %s WHERE " PIPELINE_ROW_TRUNCATE "))", rows);
	appendStringInfo(sql, ", truncated AS (DELETE FROM %s t WHERE EXISTS (SELECT 1 FROM truncating) "
					 "AND NOT EXISTS (SELECT 1 FROM %s r, truncating f WHERE %s AND %s) "
					 "AND NOT EXISTS (SELECT 1 FROM %s l WHERE %s) RETURNING 1%s)",
					 pipeline_qualified_name(def->target), rows_state, pipeline_row_state_key_match(def, "r", "t"),
					 pipeline_sequence_newer("r", seq, "f", seq),
					 applied, pipeline_key_match(def, "t", "l"), pipeline_published_returning(def));
	appendStringInfo(sql, ", forgotten AS (DELETE FROM %s r USING truncating f WHERE NOT (%s) "
					 "AND NOT EXISTS (SELECT 1 FROM %s l WHERE %s) RETURNING 1)",
					 rows_state, pipeline_sequence_newer("r", seq, "f", seq),
					 applied, pipeline_row_state_key_match(def, "r", "l"));
	return psprintf("(SELECT count(*) FROM %s WHERE " PIPELINE_ROW_TRUNCATE ") "
					"+ 0 * (SELECT count(*) FROM forgotten)", rows);
}
