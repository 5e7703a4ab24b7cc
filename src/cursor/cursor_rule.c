/*-------------------------------------------------------------------------
 *
 * cursor_rule.c
 *	  The cursor rule: which staged rows a cursor has consumed and which
 *	  are pending, as the SQL predicate every statement reading staged rows
 *	  uses (the batch statement, the backlog, the archive pass, replay and
 *	  run_staged_rows).
 *
 * A cursor is a pg_snapshot S plus a partial position (px, pq).  A staged
 * row (_xid, _seq) is consumed when
 *
 *		S sees _xid,  or  _xid = px and _seq <= pq
 *
 * and pending otherwise.  S sees every id below its xmin and none from its
 * xmax on, and the partial transaction is never below xmin (a cursor
 * lists it in progress, or it is at xmax), so nothing below xmin is
 * pending: the pending rows start there in the (_xid, _seq) index, and the
 * rows a snapshot alone sees end below its xmax.  Each predicate carries
 * those bounds, so that it reads an index range.
 *
 * A run consumes the rows pending under its cursor C that its snapshot R
 * sees.  The batch statement reads them in an equivalent form that needs
 * no negation: the ids C saw in progress that R sees finished (a short
 * list computed in C, pipeline_snapshot_committed_since), and the ids from
 * C's xmax on that R sees -- two index ranges.  The partial position is
 * then a bound of the batch: a run first finishes the partial transaction
 * from (px, pq) on (run.c).
 *
 * The predicates are SQL text over the row's _xid and _seq (qualified by
 * 'row', or bare when it is NULL) and the expressions a statement names
 * the cursor's parts with; pipeline.cursor_rule_between hands the same
 * text to SQL (run_staged_rows).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "model.h"
#include "cursor/cursor.h"

PG_FUNCTION_INFO_V1(pipeline_cursor_rule_between);

/*
 * column
 *		"row._xid" or "_xid".
 */
static char *
column(const char *row, const char *name)
{
	return row ? psprintf("%s.%s", row, name) : pstrdup(name);
}

/*
 * pipeline_rule_consumed
 *		"(...)": true when the cursor has consumed the row.  With a partial
 *		position that may be NULL at run time the result is NULL instead of
 *		false for rows the snapshot does not see: use it as a condition,
 *		never negated (pipeline_rule_pending is its negation).
 */
char *
pipeline_rule_consumed(const char *row, const CursorSql *cursor)
{
	char	   *xid = column(row, PIPELINE_XID_COLUMN);
	char	   *seq = column(row, PIPELINE_SEQ_COLUMN);

	if (cursor->partial_xid == NULL)
		return psprintf("(%s < pg_snapshot_xmax(%s) AND pg_visible_in_snapshot(%s, %s))",
						xid, cursor->consumed, xid, cursor->consumed);
	return psprintf("(pg_visible_in_snapshot(%s, %s) OR (%s = %s AND %s <= %s))",
					xid, cursor->consumed, xid, cursor->partial_xid, seq, cursor->partial_seq);
}

/*
 * pipeline_rule_pending
 *		"(...)": true when the row is pending under the cursor (a NULL
 *		partial position at run time is none).
 */
char *
pipeline_rule_pending(const char *row, const CursorSql *cursor)
{
	char	   *xid = column(row, PIPELINE_XID_COLUMN);
	char	   *seq = column(row, PIPELINE_SEQ_COLUMN);
	char	   *pending = psprintf("%s >= pg_snapshot_xmin(%s) AND NOT pg_visible_in_snapshot(%s, %s)",
								   xid, cursor->consumed, xid, cursor->consumed);

	if (cursor->partial_xid == NULL)
		return psprintf("(%s)", pending);
	return psprintf("(%s AND (%s IS NULL OR %s <> %s OR %s > %s))",
					pending, cursor->partial_xid, xid, cursor->partial_xid, seq,
					cursor->partial_seq);
}

/*
 * pipeline_rule_between
 *		"... AND ...": true for the rows 'after' has consumed and 'before'
 *		has not -- the rows of the runs between two cursors, or the rows a
 *		pass takes that a reader has not consumed.
 */
char *
pipeline_rule_between(const char *row, const CursorSql *before, const CursorSql *after)
{
	return psprintf("%s AND %s", pipeline_rule_consumed(row, after),
					pipeline_rule_pending(row, before));
}

/*
 * pipeline_rule_run_committed
 *		The first index range of a run's pending rows: those of the ids the
 *		cursor saw in progress that have finished since.
 */
char *
pipeline_rule_run_committed(const char *row, const RunPendingSql *run)
{
	return psprintf("%s = ANY (%s)", column(row, PIPELINE_XID_COLUMN), run->committed);
}

/*
 * pipeline_rule_run_new
 *		The second index range of a run's pending rows: those of the ids
 *		from the cursor's xmax on that the run's snapshot sees.
 */
char *
pipeline_rule_run_new(const char *row, const RunPendingSql *run)
{
	char	   *xid = column(row, PIPELINE_XID_COLUMN);

	return psprintf("%s >= %s AND pg_visible_in_snapshot(%s, %s)",
					xid, run->cursor_xmax, xid, run->snapshot);
}

/*
 * pipeline_rule_run_pending
 *		"(...)": the rows a run may consume past its cursor (both ranges).
 */
char *
pipeline_rule_run_pending(const char *row, const RunPendingSql *run)
{
	return psprintf("(%s OR (%s))", pipeline_rule_run_committed(row, run),
					pipeline_rule_run_new(row, run));
}

/*
 * pipeline_cursor_rule_between
 *		SQL: pipeline.cursor_rule_between(row_alias, before, before_xid,
 *		before_seq, after, after_xid, after_seq) -> text.  The predicate of
 *		pipeline_rule_between over the expressions given (parameters of the
 *		caller's statement), for the SQL functions of the install script.
 */
Datum
pipeline_cursor_rule_between(PG_FUNCTION_ARGS)
{
	CursorSql	before;
	CursorSql	after;

	before.consumed = text_to_cstring(PG_GETARG_TEXT_PP(1));
	before.partial_xid = text_to_cstring(PG_GETARG_TEXT_PP(2));
	before.partial_seq = text_to_cstring(PG_GETARG_TEXT_PP(3));
	after.consumed = text_to_cstring(PG_GETARG_TEXT_PP(4));
	after.partial_xid = text_to_cstring(PG_GETARG_TEXT_PP(5));
	after.partial_seq = text_to_cstring(PG_GETARG_TEXT_PP(6));
	PG_RETURN_TEXT_P(cstring_to_text(pipeline_rule_between(text_to_cstring(PG_GETARG_TEXT_PP(0)),
														   &before, &after)));
}
