/*-------------------------------------------------------------------------
 *
 * joins_sql.c
 *	  The SQL of a pipeline's joins to dimension tables: the FROM clause
 *	  its expressions are evaluated in, and the source rows a change of a
 *	  dimension sends through the pipeline again.
 *
 * A pipeline with joins => [...] evaluates every expression of its
 * definition (mapping, filter, delete_when, checks) over its source row
 * (alias s) LEFT JOINed to each dimension on the dimension's primary key
 * (alias as given), reading the dimensions as the batch statement's
 * snapshot sees them.  An inner join's source row without a match has no
 * result: the strategy takes it as a row that leaves the result (a
 * delete event) but keeps it, so that a dimension row arriving later
 * brings it back.
 *
 * A dimension's rows change after the source rows joined them.  Its
 * changes are followed through its change log (change_log.c) with a
 * cursor of their own (pipeline.cursors.dimensions_consumed); each
 * change sends the source rows that match the changed key through the
 * pipeline again, as they were last seen, from the state the strategy
 * keeps of each source row (__pl_fact, a jsonb of the row, and the join
 * columns __pl_j<join>_<column>, indexed).  Reading a dimension at a
 * snapshot no older than the cursor's is what makes this exact: a source
 * row merged before a dimension change is sent again by it, and one
 * merged after it already joined the changed row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "cursor/cursor.h"

/* The placeholder of batch parameter BATCH_PARAM_<name>. */
#define P(name) pipeline_batch_param(BATCH_PARAM_##name)

/*
 * pipeline_join_key_columns
 *		The batch row's (and row state's) copies of join 'j's source
 *		columns: __pl_j<j>_<i>.
 */
List *
pipeline_join_key_columns(int j, const DimensionJoin *join)
{
	List	   *names = NIL;

	for (int i = 0; i < list_length(join->source_columns); i++)
		names = lappend(names, psprintf(PIPELINE_ROW_JOIN_KEY, j, i));
	return names;
}

/*
 * join_condition
 *		"c.id = s.customer_id AND ...": a join's ON clause.
 */
static char *
join_condition(const DimensionJoin *join, const char *source)
{
	StringInfoData buf;
	ListCell   *ls,
			   *ld;

	initStringInfo(&buf);
	forboth(ls, join->source_columns, ld, join->dimension_columns)
		appendStringInfo(&buf, "%s%s.%s = %s.%s", buf.len ? " AND " : "",
						 quote_identifier(join->alias), quote_identifier(lfirst(ld)),
						 source, quote_identifier(lfirst(ls)));
	return buf.data;
}

/*
 * pipeline_source_from
 *		"<rows> s LEFT JOIN <dimension> AS <alias> ON ...": the FROM clause of
 *		a pipeline's expressions, over 'rows' (a relation or a subquery with
 *		the source's columns; Debezium events decoded, debezium_sql.c).
 */
char *
pipeline_source_from(const PipelineDef *def, const char *rows)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s s", pipeline_source_rows(def, rows));
	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);

		appendStringInfo(&buf, " LEFT JOIN %s AS %s ON %s", pipeline_qualified_name(join->dimension),
						 quote_identifier(join->alias), join_condition(join, "s"));
	}
	return buf.data;
}

/*
 * pipeline_join_missed
 *		"(c.id IS NULL OR ...)": true when an inner join found no dimension
 *		row (a primary key column is never NULL in a match); NULL when every
 *		join is a left join.
 */
char *
pipeline_join_missed(const PipelineDef *def)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);

		if (join->inner)
			appendStringInfo(&buf, "%s%s.%s IS NULL", buf.len ? " OR " : "",
							 quote_identifier(join->alias),
							 quote_identifier(linitial(join->dimension_columns)));
	}
	return buf.len ? psprintf("(%s)", buf.data) : NULL;
}

/*
 * pipeline_join_row_columns
 *		", to_jsonb(s) AS __pl_fact, s.customer_id AS __pl_j0_0, ...": what
 *		a batch row keeps of its source row for the dimensions' changes.
 */
void
pipeline_join_row_columns(const PipelineDef *def, StringInfo list)
{
	ListCell   *lc;

	appendStringInfoString(list, ", to_jsonb(s) AS " PIPELINE_ROW_FACT);
	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);
		int			j = foreach_current_index(lc);
		ListCell   *ls;

		foreach(ls, join->source_columns)
			appendStringInfo(list, ", s.%s AS " PIPELINE_ROW_JOIN_KEY,
							 quote_identifier(lfirst(ls)), j, foreach_current_index(ls));
	}
}

/*
 * changed_keys
 *		"SELECT d.id FROM <change log> d WHERE ...": the keys of a
 *		dimension's rows changed between the dimensions' cursor (BEFORE) and
 *		the run's snapshot (SNAPSHOT); the copies a log keeps for a reader
 *		joining it (_for) are no changes.
 */
static char *
changed_keys(const DimensionJoin *join)
{
	CursorSql	before = {P(BEFORE), NULL, NULL};
	CursorSql	after = {P(SNAPSHOT), NULL, NULL};

	return psprintf("SELECT %s FROM %s d WHERE d._for IS NULL AND %s",
					pipeline_quote_list(join->dimension_columns, "d"),
					pipeline_qualified_name(join->change_log),
					pipeline_rule_between("d", &before, &after));
}

/*
 * pipeline_dimension_rows_sql
 *		"(...)": the source rows that the dimensions' pending changes send
 *		through the pipeline again, from 'state', the table keeping each
 *		source row (keyed by 'keys'), each once, those passing 'where' (a
 *		condition on their positions s._xid and s._seq, or NULL).  With
 *		'whole_rows', as rows of the source, each decoded from its JSON
 *		once the row is marked (row_watch.c): a row that no longer decodes
 *		(a source column whose type changed since) is the marked one, and
 *		once quarantined it is left out before it is decoded again;
 *		otherwise their positions only (_xid and _seq), decoding nothing.
 *		With 'first', one position at most (whether any is pending).
 */
char *
pipeline_dimension_rows_sql(const PipelineDef *def, const char *state, List *keys,
							bool whole_rows, bool first, const char *where)
{
	StringInfoData matches;
	ListCell   *lc;
	char	   *key_list = pipeline_quote_list(keys, "r");
	char	   *positions;

	initStringInfo(&matches);
	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);
		List	   *columns = pipeline_join_key_columns(foreach_current_index(lc), join);

		appendStringInfo(&matches, "%sSELECT %s, r." PIPELINE_ROW_FACT " FROM %s r "
						 "WHERE r." PIPELINE_ROW_FACT " IS NOT NULL AND (%s) IN (%s)",
						 matches.len ? " UNION ALL " : "", key_list, state,
						 pipeline_quote_list(columns, "r"), changed_keys(join));
	}
	positions = psprintf("(SELECT %s(r." PIPELINE_ROW_FACT " ->> '_xid')::xid8 AS _xid, "
						 "(r." PIPELINE_ROW_FACT " ->> '_seq')::bigint AS _seq, r." PIPELINE_ROW_FACT
						 " FROM (%s) r%s)",
						 first ? "" : psprintf("DISTINCT ON (%s) ", key_list), matches.data,
						 first ? " LIMIT 1" : "");
	if (where)
		positions = psprintf("(SELECT * FROM %s s WHERE %s)", positions, where);
	if (!whole_rows)
		return psprintf("(SELECT s._xid, s._seq FROM %s s)", positions);
	return psprintf("(SELECT f.* FROM %s s CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, "
					"pipeline.mark_value(s._xid, s._seq, s." PIPELINE_ROW_FACT ")) f)",
					positions, pipeline_qualified_name(def->source));
}
