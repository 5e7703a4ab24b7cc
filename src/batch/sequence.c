/*-------------------------------------------------------------------------
 *
 * sequence.c
 *	  What orders the events of a key (sequence_by), as the batch
 *	  statement reads it.
 *
 * sequence_by names a target column, which keeps each row's version (and
 * the statement compares events with it), or it is one or more
 * expressions over the source row, separated by commas and ordered
 * lexicographically, which the target does not keep: a merge keeps them
 * in its row state (merge_joins.c), per key.  Which of the two it is was
 * decided when the pipeline was created (sequence_kept), so that a column
 * added to the target later cannot change what an existing pipeline
 * compares.  A batch row carries the kept values as __pl_sq, __pl_sq_1,
 * ... -- the names of the row state's columns too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"

/*
 * pipeline_sequence_parts
 *		The expressions of a kept sequence_by, in order ("a, f(b, c)" gives
 *		"a" and "f(b, c)"); NIL when sequence_by is a target column or not
 *		set.  Split where PostgreSQL's parser says its items start.
 */
List *
pipeline_sequence_parts(const PipelineDef *def)
{
	const char *prefix = "SELECT ";
	char	   *sql;
	SelectStmt *select;
	List	   *parts = NIL;
	ListCell   *lc;

	if (!def->sequence_kept || def->sequence_by == NULL)
		return NIL;
	sql = psprintf("%s%s", prefix, def->sequence_by);
	select = (SelectStmt *) linitial_node(RawStmt, raw_parser(sql, RAW_PARSE_DEFAULT))->stmt;
	foreach(lc, select->targetList)
	{
		int			start = lfirst_node(ResTarget, lc)->location;
		int			end = lnext(select->targetList, lc) ?
		lfirst_node(ResTarget, lnext(select->targetList, lc))->location : strlen(sql);
		char	   *part = pnstrdup(sql + start, end - start);
		int			len = strlen(part);

		/* drop the comma and the blanks before the next item */
		while (len > 0 && (part[len - 1] == ',' || isspace((unsigned char) part[len - 1])))
			part[--len] = '\0';
		parts = lappend(parts, part);
	}
	return parts;
}

/*
 * pipeline_kept_sequence_column
 *		The name of the row state's (and batch row's) column holding part i
 *		of a sequence: __pl_sq, __pl_sq_1, ...
 */
char *
pipeline_kept_sequence_column(int i)
{
	return i == 0 ? pstrdup(PIPELINE_ROW_SEQUENCE) : psprintf(PIPELINE_ROW_SEQUENCE "_%d", i);
}

/*
 * pipeline_sequence_columns
 *		The batch row's columns holding its sequence: the target column, or
 *		the kept parts' columns; NIL without sequence_by.
 */
List *
pipeline_sequence_columns(const PipelineDef *def)
{
	List	   *columns = NIL;
	int			parts;

	if (def->sequence_by == NULL)
		return NIL;
	if (!def->sequence_kept)
		return list_make1(def->sequence_by);
	parts = list_length(pipeline_sequence_parts(def));
	for (int i = 0; i < parts; i++)
		columns = lappend(columns, pipeline_kept_sequence_column(i));
	return columns;
}

/*
 * pipeline_sequence_target_column
 *		The target column keeping each row's sequence, or NULL when the
 *		target keeps none (no sequence_by, or a kept one).
 */
const char *
pipeline_sequence_target_column(const PipelineDef *def)
{
	return def->sequence_kept ? NULL : def->sequence_by;
}

/*
 * pipeline_sequence_row_columns
 *		", (<part 0>) AS __pl_sq, ...": a kept sequence's values, for the
 *		batch row's select list.
 */
void
pipeline_sequence_row_columns(const PipelineDef *def, StringInfo list)
{
	ListCell   *lc;

	foreach(lc, pipeline_sequence_parts(def))
		appendStringInfo(list, ", (%s) AS %s", (char *) lfirst(lc),
						 pipeline_kept_sequence_column(foreach_current_index(lc)));
}

/*
 * pipeline_sequence_newer
 *		"(a.x, a.y) > (b.x, b.y)": whether 'a''s sequence (its columns
 *		'a_columns') is after 'b''s (its 'b_columns'), lexicographically.
 */
char *
pipeline_sequence_newer(const char *a, List *a_columns, const char *b, List *b_columns)
{
	return psprintf("(%s) > (%s)", pipeline_quote_list(a_columns, a), pipeline_quote_list(b_columns, b));
}
