/*-------------------------------------------------------------------------
 *
 * aggregate_sql.c
 *	  The batch statement of the aggregate strategy: a batch's rows change
 *	  the groups they enter and leave, and only those.
 *
 * Three tables hold an aggregate pipeline's result (aggregate.c makes them):
 *
 *	- the target: one row per group that has rows (and passes having), its
 *	  key and its aggregates' values, as the user reads them;
 *	- the group state: one row per group with rows, its running state: the
 *	  group's row count (__pl_rows), and per aggregate number i the counts
 *	  and sums it is kept by (__pl_n<i> non-NULL values, __pl_s<i> their
 *	  sum, __pl_m<i> the extreme, __pl_t<i>/__pl_u<i> true and false
 *	  values, __pl_d<i> distinct values);
 *	- the row state, when rows can leave a group (a source_key) or an
 *	  aggregate needs its group's values (a distinct count): each source
 *	  row's current contribution, its group and the inputs of every
 *	  aggregate (__pl_a<i>, __pl_f<i> for its FILTER, shared by aggregates
 *	  of the same argument or FILTER), keyed by source_key
 *	  (__pl_k<j>), with its sequence_by value and, when deletes must be
 *	  remembered against late events, whether it is live (and since when
 *	  not, for tombstone_retention to forget it: aggregate.c).
 *
 * A batch's statement takes, per source row, its latest event in the
 * batch that is not older than the row state's (the others are stale),
 * and makes of them a delta: the new image of each row entering its group
 * (+1), the old image of each row leaving one (-1, from the row state,
 * which then takes the new images).  Per group the delta changes the row
 * count, counts, sums and true/false counts by addition.  Extremes grow by
 * LEAST/GREATEST; one is looked up again in the group's rows only when a
 * leaving row held it, and a distinct count is counted again in the
 * group's rows; both read the row state of just those groups, never the
 * source.  Groups left without rows leave the group state and the target;
 * the others are upserted into both, a target row only when a value
 * changed.  All of it is one statement, so it commits with the cursor.
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
#include "strategy.h"

/* What a batch statement's parts need to know about the pipeline. */
typedef struct AggregatePlan
{
	const PipelineDef *def;
	List	   *calls;			/* of AggregateCall * */
	List	   *groups;			/* of char *: the group key (target columns) */
	List	   *row_keys;		/* of char *: __pl_k<j>, NIL without
								 * source_key */
	char	   *row_state;		/* its row state's name, or NULL without one */
	bool		deletes;		/* batch rows can be delete events */
	bool		live;			/* the row state remembers deletes */
	bool		recomputes;		/* some aggregate reads its groups' rows */
} AggregatePlan;

/*
 * input_columns
 *		The batch row's (and row state's) aggregate inputs: "__pl_a0,
 *		__pl_f0, ..." prefixed by 'alias.' when given; "" when none.
 */
static char *
input_columns(const AggregatePlan *plan, const char *alias)
{
	StringInfoData buf;
	ListCell   *lc;
	const char *p = alias ? psprintf("%s.", alias) : "";

	initStringInfo(&buf);
	foreach(lc, plan->calls)
	{
		AggregateCall *c = lfirst(lc);

		if (c->owns_arg)
			appendStringInfo(&buf, ", %s%s", p, c->arg_column);
		if (c->owns_filter)
			appendStringInfo(&buf, ", %s%s", p, c->filter_column);
	}
	return buf.data;
}

/*
 * contributes
 *		Whether a row (alias x) counts in aggregate c: it passes the
 *		FILTER and its argument is not NULL.
 */
static char *
contributes(const AggregateCall *c, const char *x)
{
	if (c->filter && c->arg)
		return psprintf("%s.%s AND %s.%s IS NOT NULL", x, c->filter_column, x, c->arg_column);
	if (c->filter)
		return psprintf("%s.%s", x, c->filter_column);
	if (c->arg)
		return psprintf("%s.%s IS NOT NULL", x, c->arg_column);
	return "true";
}

/*
 * pipeline_aggregate_state_columns
 *		The group state columns of an aggregate: "name type" each.
 */
List *
pipeline_aggregate_state_columns(const AggregateCall *c)
{
	int			i = c->index;
	char	   *type = format_type_be(c->restype);

	switch (c->kind)
	{
		case AGG_COUNT:
			return list_make1(psprintf("__pl_n%d bigint NOT NULL", i));
		case AGG_SUM:
		case AGG_AVG:
			return list_make2(psprintf("__pl_n%d bigint NOT NULL", i),
							  psprintf("__pl_s%d %s", i, type));
		case AGG_MIN:
		case AGG_MAX:
			return list_make1(psprintf("__pl_m%d %s", i, type));
		case AGG_COUNT_DISTINCT:
			return list_make1(psprintf("__pl_d%d bigint NOT NULL", i));
		case AGG_BOOL_AND:
		case AGG_BOOL_OR:
			return list_make2(psprintf("__pl_t%d bigint NOT NULL", i),
							  psprintf("__pl_u%d bigint NOT NULL", i));
	}
	return NIL;					/* keep compiler quiet */
}

/*
 * state_names
 *		"__pl_rows, <state columns>" of the group state, each prefixed by
 *		'prefix' (as "g." or "EXCLUDED.", or "" for none).
 */
static char *
state_names(const AggregatePlan *plan, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc,
			   *ls;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s__pl_rows", prefix);
	foreach(lc, plan->calls)
		foreach(ls, pipeline_aggregate_state_columns(lfirst(lc)))
	{
		char	   *column = lfirst(ls);

		appendStringInfo(&buf, ", %s%.*s", prefix, (int) strcspn(column, " "), column);
	}
	return buf.data;
}

/*
 * pipeline_aggregate_keeps_rows
 *		Whether an aggregate pipeline keeps a row state: rows can leave
 *		their groups (a source_key), or an aggregate needs its group's rows
 *		even when they only arrive.
 */
bool
pipeline_aggregate_keeps_rows(const PipelineDef *def, List *calls)
{
	ListCell   *lc;

	if (def->source_key != NIL)
		return true;
	foreach(lc, calls)
		if (pipeline_aggregate_needs_rows(lfirst(lc), false))
		return true;
	return false;
}

/*
 * pipeline_aggregate_reads_groups
 *		Whether some aggregate is computed again from its groups' rows,
 *		which the row state is then indexed by.
 */
bool
pipeline_aggregate_reads_groups(const PipelineDef *def, List *calls)
{
	ListCell   *lc;

	foreach(lc, calls)
		if (pipeline_aggregate_needs_rows(lfirst(lc), def->source_key != NIL))
		return true;
	return false;
}

/*
 * pipeline_aggregate_remembers_deletes
 *		Whether the row state keeps deleted rows (not live, since when),
 *		against late events: deletes meet sequence_by.
 */
bool
pipeline_aggregate_remembers_deletes(const PipelineDef *def)
{
	return pipeline_has_delete_events(def) && def->sequence_by != NULL;
}

/*
 * pipeline_aggregate_tracks_liveness
 *		Whether the row state keeps rows that are in no group (__pl_live
 *		false): deleted rows it remembers against late events, and, with
 *		joins, rows an inner join or the filter leaves out, which a
 *		dimension's change may bring back (joins_sql.c).
 */
bool
pipeline_aggregate_tracks_liveness(const PipelineDef *def)
{
	return pipeline_aggregate_remembers_deletes(def) || def->joins != NIL;
}

/*
 * make_plan
 *		What the statement's parts share.
 */
static AggregatePlan *
make_plan(const PipelineDef *def, const PipelineMapping *map)
{
	AggregatePlan *plan = palloc0(sizeof(AggregatePlan));

	plan->def = def;
	plan->calls = pipeline_aggregate_calls(def, map);
	plan->groups = def->key;
	plan->row_keys = pipeline_row_keys(def);
	if (OidIsValid(def->row_state))
		plan->row_state = pipeline_qualified_name(def->row_state);
	plan->deletes = pipeline_has_delete_events(def);
	plan->live = pipeline_aggregate_tracks_liveness(def);
	plan->recomputes = pipeline_aggregate_reads_groups(def, plan->calls);
	return plan;
}

/*
 * pipeline_aggregate_row_columns
 *		The batch row of an aggregate pipeline: its group key columns, its
 *		source_key and sequence_by values, and each aggregate's argument
 *		and FILTER (never NULL).
 */
void
pipeline_aggregate_row_columns(const PipelineDef *def, const PipelineMapping *map,
							   StringInfo list)
{
	ListCell   *lc;

	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		if (!cm->aggregates)
			appendStringInfo(list, ", (%s) AS %s", cm->expr, quote_identifier(cm->column));
	}
	foreach(lc, def->source_key)
		appendStringInfo(list, ", s.%s AS " PIPELINE_ROW_SOURCE_KEY,
						 quote_identifier(lfirst(lc)), foreach_current_index(lc));
	if (def->sequence_by)
		appendStringInfo(list, ", s.%s AS " PIPELINE_ROW_SEQUENCE, quote_identifier(def->sequence_by));
	foreach(lc, pipeline_aggregate_calls(def, map))
	{
		AggregateCall *c = lfirst(lc);

		if (c->owns_arg)
			appendStringInfo(list, ", (%s) AS %s", c->arg, c->arg_column);
		if (c->owns_filter)
			appendStringInfo(list, ", ((%s) IS TRUE) AS %s", c->filter, c->filter_column);
	}
}

/*
 * events_ctes
 *		"WITH ...": came (the rows entering their groups: new images) and,
 *		with a source_key, applied (each source row's latest event not
 *		older than its state) and gone (the old images leaving their
 *		groups).  Returns the SQL counting stale events.
 */
static const char *
events_ctes(StringInfo sql, const AggregatePlan *plan, const char *accepted)
{
	const PipelineDef *def = plan->def;
	char	   *keys = pipeline_quote_list(plan->row_keys, NULL);

	if (plan->row_keys == NIL)
	{
		appendStringInfo(sql, "WITH came AS MATERIALIZED (SELECT * FROM %s)", accepted);
		return "0::bigint";
	}
	appendStringInfo(sql,
					 "WITH accepted_all AS MATERIALIZED (SELECT * FROM %s), "
					 "latest AS MATERIALIZED (SELECT DISTINCT ON (%s) * FROM accepted_all "
					 "ORDER BY %s, %s__pl_xid DESC, __pl_seq DESC), "
					 "old AS MATERIALIZED (SELECT r.* FROM %s r JOIN latest l ON %s)",
					 accepted, keys, keys,
					 def->sequence_by ? PIPELINE_ROW_SEQUENCE " DESC, " : "",
					 plan->row_state, pipeline_columns_match(plan->row_keys, "r", "l"));
	if (def->sequence_by)
		appendStringInfo(sql,
						 ", applied AS MATERIALIZED (SELECT l.* FROM latest l WHERE NOT EXISTS "
						 "(SELECT 1 FROM old o WHERE %s AND o." PIPELINE_ROW_SEQUENCE " > l." PIPELINE_ROW_SEQUENCE "))",
						 pipeline_columns_match(plan->row_keys, "o", "l"));
	else
		appendStringInfoString(sql, ", applied AS (SELECT * FROM latest)");
	appendStringInfo(sql,
					 ", gone AS MATERIALIZED (SELECT o.* FROM old o WHERE %sEXISTS "
					 "(SELECT 1 FROM applied a WHERE %s)), "
					 "came AS MATERIALIZED (SELECT * FROM applied%s)",
					 plan->live ? "o.__pl_live AND " : "",
					 pipeline_columns_match(plan->row_keys, "o", "a"),
					 plan->deletes ? " WHERE __pl_del IS NOT TRUE" : "");
	return "(SELECT count(*) FROM accepted_all) - (SELECT count(*) FROM applied)";
}

/*
 * row_state_ctes
 *		The row state's writes: the applied events' new images (or, when it
 *		tracks liveness, their liveness), the deleted rows removed unless
 *		remembered.  With joins a delete event only leaves its group (live
 *		false) unless delete_when deleted the row (__pl_drop).  Returns the
 *		SQL that reads them (for the final SELECT).
 */
static const char *
row_state_ctes(StringInfo sql, const AggregatePlan *plan)
{
	const PipelineDef *def = plan->def;
	char	   *rows = plan->row_state;
	char	   *groups = pipeline_quote_list(plan->groups, NULL);
	char	   *keys = pipeline_quote_list(plan->row_keys, NULL);
	const char *leaves = def->joins ? PIPELINE_ROW_DROP : "__pl_del";
	bool		erases = plan->deletes && !pipeline_aggregate_remembers_deletes(def);
	List	   *joined = pipeline_join_state_columns(def);
	StringInfoData cols,
				set;
	ListCell   *lc;

	if (plan->row_state == NULL)
		return "0";
	if (plan->row_keys == NIL)
	{
		appendStringInfo(sql, ", kept AS (INSERT INTO %s (%s%s) SELECT %s%s FROM came RETURNING 1)",
						 rows, groups, input_columns(plan, NULL), groups, input_columns(plan, NULL));
		return "(SELECT count(*) FROM kept)";
	}

	initStringInfo(&cols);
	appendStringInfo(&cols, "%s, %s%s%s%s%s", keys, groups,
					 def->sequence_by ? ", " PIPELINE_ROW_SEQUENCE : "",
					 plan->live ? ", __pl_live, __pl_deleted_at" : "",
					 joined ? psprintf(", %s", pipeline_quote_list(joined, NULL)) : "",
					 input_columns(plan, NULL));
	initStringInfo(&set);
	foreach(lc, plan->groups)
		appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "",
						 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
	if (def->sequence_by)
		appendStringInfoString(&set, ", " PIPELINE_ROW_SEQUENCE " = EXCLUDED." PIPELINE_ROW_SEQUENCE);
	if (plan->live)
		appendStringInfoString(&set, ", __pl_live = EXCLUDED.__pl_live, __pl_deleted_at = EXCLUDED.__pl_deleted_at");
	foreach(lc, joined)
		appendStringInfo(&set, ", %s = EXCLUDED.%s", (char *) lfirst(lc), (char *) lfirst(lc));
	foreach(lc, plan->calls)
	{
		AggregateCall *c = lfirst(lc);

		if (c->owns_arg)
			appendStringInfo(&set, ", %s = EXCLUDED.%s", c->arg_column, c->arg_column);
		if (c->owns_filter)
			appendStringInfo(&set, ", %s = EXCLUDED.%s", c->filter_column, c->filter_column);
	}
	appendStringInfo(sql, ", kept AS (INSERT INTO %s (%s) SELECT %s, %s%s%s%s%s FROM applied%s "
					 "ON CONFLICT (%s) DO UPDATE SET %s RETURNING 1)",
					 rows, cols.data, keys, groups,
					 def->sequence_by ? ", " PIPELINE_ROW_SEQUENCE : "",
					 plan->live ? psprintf(", __pl_del IS NOT TRUE, CASE WHEN %s THEN now() END", leaves) : "",
					 pipeline_join_state_values(def, leaves), input_columns(plan, NULL),
					 erases ? psprintf(" WHERE %s IS NOT TRUE", leaves) : "",
					 keys, set.data);
	if (erases)
	{
		appendStringInfo(sql, ", erased AS (DELETE FROM %s r USING applied a WHERE a.%s AND %s RETURNING 1)",
						 rows, leaves, pipeline_columns_match(plan->row_keys, "r", "a"));
		return "(SELECT count(*) FROM kept) + (SELECT count(*) FROM erased)";
	}
	return "(SELECT count(*) FROM kept)";
}

/*
 * change_cte
 *		change AS (...): per group the delta's effect on its row count
 *		(__pl_dr) and on each aggregate's state.
 */
static void
change_cte(StringInfo sql, const AggregatePlan *plan)
{
	char	   *groups = pipeline_quote_list(plan->groups, NULL);
	char	   *inputs = input_columns(plan, NULL);
	ListCell   *lc;

	appendStringInfo(sql, ", delta AS (SELECT %s, 1 AS __pl_sign%s FROM came", groups, inputs);
	if (plan->row_keys != NIL)
		appendStringInfo(sql, " UNION ALL SELECT %s, -1%s FROM gone", groups, inputs);
	appendStringInfo(sql, "), change AS (SELECT %s, sum(__pl_sign) AS __pl_dr", groups);
	foreach(lc, plan->calls)
	{
		AggregateCall *c = lfirst(lc);
		int			i = c->index;
		char	   *in = contributes(c, "d");
		char	   *value = c->kind == AGG_AVG
		? psprintf("(%s)::%s", c->arg_column, format_type_be(c->restype))
		: (char *) c->arg_column;
		const char *extreme = c->kind == AGG_MIN ? "min" : "max";

		switch (c->kind)
		{
			case AGG_COUNT:
			case AGG_SUM:
			case AGG_AVG:
				appendStringInfo(sql, ", coalesce(sum(__pl_sign) FILTER (WHERE %s), 0) AS __pl_dn%d", in, i);
				if (c->kind == AGG_COUNT)
					break;
				appendStringInfo(sql, ", sum(%s) FILTER (WHERE __pl_sign > 0 AND %s) AS __pl_sp%d"
								 ", sum(%s) FILTER (WHERE __pl_sign < 0 AND %s) AS __pl_sm%d",
								 value, in, i, value, in, i);
				break;
			case AGG_MIN:
			case AGG_MAX:
				appendStringInfo(sql, ", %s(%s) FILTER (WHERE __pl_sign > 0 AND %s) AS __pl_mp%d"
								 ", %s(%s) FILTER (WHERE __pl_sign < 0 AND %s) AS __pl_mm%d",
								 extreme, value, in, i, extreme, value, in, i);
				break;
			case AGG_COUNT_DISTINCT:
				break;
			case AGG_BOOL_AND:
			case AGG_BOOL_OR:
				appendStringInfo(sql, ", coalesce(sum(__pl_sign) FILTER (WHERE %s AND %s), 0) AS __pl_dt%d"
								 ", coalesce(sum(__pl_sign) FILTER (WHERE %s AND NOT %s), 0) AS __pl_du%d",
								 in, value, i, in, value, i);
				break;
		}
	}
	appendStringInfo(sql, " FROM delta d GROUP BY %s)", groups);
}

/*
 * lost_extreme
 *		Whether aggregate c's extreme may have left its group (alias x of
 *		cur): a leaving value was it (NULL, false, when none left).
 */
static char *
lost_extreme(const AggregateCall *c, const char *x)
{
	return psprintf("%s.__pl_mm%d %s %s.__pl_m%d", x, c->index,
					c->kind == AGG_MIN ? "<=" : ">=", x, c->index);
}

/*
 * recompute_ctes
 *		cur AS (...): the changed groups with their current state; and,
 *		when an aggregate reads its groups' rows, recomputed AS (...): those
 *		aggregates over the rows of the groups that need it (needy): the
 *		row state's rows the batch did not change, and the entering rows.
 */
static void
recompute_ctes(StringInfo sql, const AggregatePlan *plan)
{
	const PipelineDef *def = plan->def;
	StringInfoData needs,
				aggs;
	ListCell   *lc;


	/*
	 * Every batch row has been read (change groups them all): from here on an
	 * error belongs to a group, not to the row marked last (row_watch.c).
	 */
	appendStringInfo(sql, ", cur AS MATERIALIZED (SELECT c.*, %s FROM change c LEFT JOIN %s g ON %s "
					 "WHERE pipeline.mark_value(NULL::xid8, NULL::bigint, true))",
					 state_names(plan, "g."), pipeline_qualified_name(def->group_state),
					 pipeline_columns_match(plan->groups, "g", "c"));
	if (!plan->recomputes)
		return;

	initStringInfo(&needs);
	initStringInfo(&aggs);
	foreach(lc, plan->calls)
	{
		AggregateCall *c = lfirst(lc);
		char	   *in = contributes(c, "x");

		if (!pipeline_aggregate_needs_rows(c, plan->row_keys != NIL))
			continue;
		if (c->kind == AGG_COUNT_DISTINCT)
		{
			appendStringInfo(&needs, "%strue", needs.len ? " OR " : "");
			appendStringInfo(&aggs, ", count(DISTINCT x.%s) FILTER (WHERE %s) AS __pl_rd%d",
							 c->arg_column, in, c->index);
		}
		else
		{
			appendStringInfo(&needs, "%s%s", needs.len ? " OR " : "", lost_extreme(c, "c"));
			appendStringInfo(&aggs, ", %s(x.%s) FILTER (WHERE %s) AS __pl_rm%d",
							 c->kind == AGG_MIN ? "min" : "max", c->arg_column, in, c->index);
		}
	}
	appendStringInfo(sql, ", needy AS MATERIALIZED (SELECT %s FROM cur c WHERE %s)",
					 pipeline_quote_list(plan->groups, "c"), needs.data);

	/*
	 * Each needy group's rows are read through the row state's index by
	 * group, in a subquery per group (OFFSET 0 keeps it one): joined as a
	 * set, a row state never analyzed since it was filled looks to the
	 * planner like a few large groups, and it reads all of it.
	 */
	appendStringInfo(sql, ", recomputed AS (SELECT %s%s FROM ("
					 "SELECT %s%s FROM needy n CROSS JOIN LATERAL (SELECT %s%s%s FROM %s r "
					 "WHERE %s%s OFFSET 0) r",
					 pipeline_quote_list(plan->groups, "x"), aggs.data,
					 pipeline_quote_list(plan->groups, "r"), input_columns(plan, "r"),
					 pipeline_quote_list(plan->groups, "r"),
					 plan->row_keys ? psprintf(", %s", pipeline_quote_list(plan->row_keys, "r")) : "",
					 input_columns(plan, "r"), plan->row_state,
					 pipeline_columns_match(plan->groups, "r", "n"),
					 plan->live ? " AND r.__pl_live" : "");
	if (plan->row_keys != NIL)
		appendStringInfo(sql, " WHERE NOT EXISTS (SELECT 1 FROM applied a WHERE %s)",
						 pipeline_columns_match(plan->row_keys, "r", "a"));
	appendStringInfo(sql, " UNION ALL SELECT %s%s FROM came m JOIN needy n ON %s) x GROUP BY %s)",
					 pipeline_quote_list(plan->groups, "m"), input_columns(plan, "m"),
					 pipeline_columns_match(plan->groups, "m", "n"), pipeline_quote_list(plan->groups, "x"));
}

/*
 * next_cte
 *		next AS (...): each changed group's new state, from its current one
 *		(cur) and, where an aggregate was recomputed, recomputed.
 */
static void
next_cte(StringInfo sql, const AggregatePlan *plan)
{
	ListCell   *lc;

	appendStringInfo(sql, ", next AS MATERIALIZED (SELECT %s, coalesce(c.__pl_rows, 0) + c.__pl_dr AS __pl_rows",
					 pipeline_quote_list(plan->groups, "c"));
	foreach(lc, plan->calls)
	{
		AggregateCall *c = lfirst(lc);
		int			i = c->index;
		char	   *n = psprintf("coalesce(c.__pl_n%d, 0) + c.__pl_dn%d", i, i);
		char	   *zero = psprintf("'0'::%s", format_type_be(c->restype));

		switch (c->kind)
		{
			case AGG_COUNT:
				appendStringInfo(sql, ", %s AS __pl_n%d", n, i);
				break;
			case AGG_SUM:
			case AGG_AVG:
				/* a sum of no values is NULL */
				appendStringInfo(sql, ", %s AS __pl_n%d, CASE WHEN %s > 0 THEN coalesce(c.__pl_s%d, %s) "
								 "+ coalesce(c.__pl_sp%d, %s) - coalesce(c.__pl_sm%d, %s) END AS __pl_s%d",
								 n, i, n, i, zero, i, zero, i, zero, i);
				break;
			case AGG_MIN:
			case AGG_MAX:
				if (pipeline_aggregate_needs_rows(c, plan->row_keys != NIL))
					appendStringInfo(sql, ", CASE WHEN %s THEN r.__pl_rm%d ELSE %s(c.__pl_m%d, c.__pl_mp%d) END AS __pl_m%d",
									 lost_extreme(c, "c"), i,
									 c->kind == AGG_MIN ? "least" : "greatest", i, i, i);
				else
					appendStringInfo(sql, ", %s(c.__pl_m%d, c.__pl_mp%d) AS __pl_m%d",
									 c->kind == AGG_MIN ? "least" : "greatest", i, i, i);
				break;
			case AGG_COUNT_DISTINCT:
				appendStringInfo(sql, ", coalesce(r.__pl_rd%d, 0) AS __pl_d%d", i, i);
				break;
			case AGG_BOOL_AND:
			case AGG_BOOL_OR:
				appendStringInfo(sql, ", coalesce(c.__pl_t%d, 0) + c.__pl_dt%d AS __pl_t%d"
								 ", coalesce(c.__pl_u%d, 0) + c.__pl_du%d AS __pl_u%d",
								 i, i, i, i, i, i);
				break;
		}
	}
	appendStringInfoString(sql, " FROM cur c");
	if (plan->recomputes)
		appendStringInfo(sql, " LEFT JOIN recomputed r ON %s", pipeline_columns_match(plan->groups, "r", "c"));
	appendStringInfoChar(sql, ')');
}

/*
 * final_value
 *		Aggregate c's value from a group's state (alias n).
 */
static char *
final_value(const AggregateCall *c, const char *n)
{
	int			i = c->index;

	switch (c->kind)
	{
		case AGG_COUNT:
			return psprintf("%s.__pl_n%d", n, i);
		case AGG_SUM:
			return psprintf("%s.__pl_s%d", n, i);
		case AGG_AVG:
			return psprintf("(CASE WHEN %s.__pl_n%d > 0 THEN %s.__pl_s%d / %s.__pl_n%d END)::%s",
							n, i, n, i, n, i, format_type_be(c->restype));
		case AGG_MIN:
		case AGG_MAX:
			return psprintf("%s.__pl_m%d", n, i);
		case AGG_COUNT_DISTINCT:
			return psprintf("%s.__pl_d%d", n, i);
		case AGG_BOOL_AND:
			return psprintf("CASE WHEN %s.__pl_t%d + %s.__pl_u%d > 0 THEN %s.__pl_u%d = 0 END",
							n, i, n, i, n, i);
		case AGG_BOOL_OR:
			return psprintf("CASE WHEN %s.__pl_t%d + %s.__pl_u%d > 0 THEN %s.__pl_t%d > 0 END",
							n, i, n, i, n, i);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * group_state_ctes
 *		The group state's writes: groups with rows upserted, the others
 *		deleted.  Returns the SQL that reads them.
 */
static const char *
group_state_ctes(StringInfo sql, const AggregatePlan *plan)
{
	char	   *table = pipeline_qualified_name(plan->def->group_state);
	char	   *groups = pipeline_quote_list(plan->groups, NULL);
	char	   *states = state_names(plan, "");
	StringInfoData set;

	initStringInfo(&set);
	appendStringInfo(&set, "(%s) = ROW(%s)", states, state_names(plan, "EXCLUDED."));
	appendStringInfo(sql, ", groups_kept AS (INSERT INTO %s (%s, %s) SELECT %s, %s FROM next "
					 "WHERE __pl_rows > 0 ON CONFLICT (%s) DO UPDATE SET %s RETURNING 1)"
					 ", groups_gone AS (DELETE FROM %s g USING next n WHERE n.__pl_rows = 0 AND %s RETURNING 1)",
					 table, groups, states, groups, states, groups, set.data,
					 table, pipeline_columns_match(plan->groups, "g", "n"));
	return "(SELECT count(*) FROM groups_kept) + (SELECT count(*) FROM groups_gone)";
}

/*
 * target_ctes
 *		final AS (...): each changed group's values and whether it belongs
 *		in the target (it has rows and passes having); upserted AS (...)
 *		writes those that do when a value changed, deleted AS (...) removes
 *		the others.
 */
static void
target_ctes(StringInfo sql, const AggregatePlan *plan)
{
	const PipelineDef *def = plan->def;
	char	   *target = pipeline_qualified_name(def->target);
	char	   *groups = pipeline_quote_list(plan->groups, NULL);
	StringInfoData values,
				columns,
				set,
				old,
				new;
	ListCell   *lc;

	initStringInfo(&values);
	initStringInfo(&columns);
	initStringInfo(&set);
	initStringInfo(&old);
	initStringInfo(&new);
	foreach(lc, plan->calls)
	{
		AggregateCall *c = lfirst(lc);
		const char *col = quote_identifier(c->column);

		appendStringInfo(&values, ", %s AS %s", final_value(c, "n"), col);
		appendStringInfo(&columns, ", %s", col);
		appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", col, col);
		appendStringInfo(&old, "%st.%s", old.len ? ", " : "", col);
		appendStringInfo(&new, "%sEXCLUDED.%s", new.len ? ", " : "", col);
	}
	appendStringInfo(sql, ", final AS MATERIALIZED (SELECT *, __pl_rows > 0%s AS __pl_in FROM "
					 "(SELECT %s%s, n.__pl_rows FROM next n) v)",
					 def->group_filter ? psprintf(" AND (%s) IS TRUE", def->group_filter) : "",
					 pipeline_quote_list(plan->groups, "n"), values.data);
	appendStringInfo(sql, ", upserted AS (INSERT INTO %s AS t (%s%s) SELECT %s%s FROM final f WHERE f.__pl_in "
					 "ON CONFLICT (%s) DO UPDATE SET %s WHERE ROW(%s) IS DISTINCT FROM ROW(%s)%s%s)",
					 target, groups, columns.data, groups, columns.data,
					 groups, set.data, old.data, new.data,
					 pipeline_upsert_returning(def), pipeline_published_returning(def));
	appendStringInfo(sql, ", deleted AS (DELETE FROM %s t USING final f WHERE NOT f.__pl_in AND %s "
					 "RETURNING 1%s)",
					 target, pipeline_columns_match(plan->groups, "t", "f"), pipeline_published_returning(def));
}

/*
 * pipeline_aggregate_sql
 *		The batch statement of the aggregate strategy.  It returns groups
 *		added to the target, groups changed, groups removed, and stale
 *		events (then, with a change log, rows published).
 */
char *
pipeline_aggregate_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
					   const char *accepted)
{
	AggregatePlan *plan = make_plan(def, map);
	StringInfoData sql;
	const char *stale,
			   *rows_written,
			   *groups_written;

	initStringInfo(&sql);
	stale = events_ctes(&sql, plan, accepted);
	rows_written = row_state_ctes(&sql, plan);
	change_cte(&sql, plan);
	recompute_ctes(&sql, plan);
	next_cte(&sql, plan);
	groups_written = group_state_ctes(&sql, plan);
	target_ctes(&sql, plan);
	pipeline_publish_cte(&sql, def, "upserted", "deleted");

	/*
	 * Every data-modifying CTE is read here, so that it runs within the
	 * statement's plan (see row_watch.c); the state's writes count nothing.
	 */
	appendStringInfo(&sql,
					 " SELECT count(*) FILTER (WHERE __pl_inserted), count(*) FILTER (WHERE NOT __pl_inserted), "
					 "(SELECT count(*) FROM deleted) + 0 * (%s + %s), %s%s FROM upserted",
					 rows_written, groups_written, stale,
					 OidIsValid(def->change_log) ? ", (SELECT count(*) FROM published)" : "");
	return sql.data;
}
