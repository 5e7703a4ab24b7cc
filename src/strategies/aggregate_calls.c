/*-------------------------------------------------------------------------
 *
 * aggregate_calls.c
 *	  What each aggregate column of an aggregate pipeline computes: its
 *	  aggregate function, argument and FILTER, read from the mapping's
 *	  expression as PostgreSQL parses it.
 *
 * A mapped aggregate column is one call of a built-in aggregate the
 * pipeline can maintain: count, sum, avg, min, max, count(DISTINCT ...),
 * bool_and (every) and bool_or, each with an optional FILTER (WHERE ...).
 * The expression is analyzed over the source as the owner would run it; the
 * argument and the filter are printed back as SQL over the source row
 * (ruleutils), so that the batch statement evaluates them once per row
 * and the aggregate itself is kept by aggregate_sql.c.  Anything else (an
 * expression around the call, another aggregate, DISTINCT on another
 * aggregate, ORDER BY inside the call) is refused by name: it cannot be
 * maintained from a group's running state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/ruleutils.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"

/* The aggregates that can be maintained, by pg_catalog function name. */
static const struct
{
	const char *name;
	AggregateKind kind;
}			maintained[] =

{
	{"count", AGG_COUNT},
	{"sum", AGG_SUM},
	{"avg", AGG_AVG},
	{"min", AGG_MIN},
	{"max", AGG_MAX},
	{"bool_and", AGG_BOOL_AND},
	{"every", AGG_BOOL_AND},
	{"bool_or", AGG_BOOL_OR},
};

/*
 * refuse_call
 *		The error for a column whose expression is not one maintainable
 *		aggregate call.
 */
static void
refuse_call(const ColumnMap *cm, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("aggregate column \"%s\" cannot be maintained incrementally: %s",
					cm->column, why),
			 errdetail("The column is mapped to: %s", cm->expr),
			 errhint("Map each aggregate column to one call of count, sum, avg, min, max, count(DISTINCT ...), bool_and or bool_or, with an optional FILTER (WHERE ...); compute expressions over them in a view on the target.")));
}

/*
 * kind_of
 *		The kind of a built-in aggregate function, refusing the others.
 */
static AggregateKind
kind_of(const ColumnMap *cm, Oid fnoid)
{
	char	   *name = get_func_name(fnoid);

	if (get_func_namespace(fnoid) == PG_CATALOG_NAMESPACE)
		for (int i = 0; i < lengthof(maintained); i++)
			if (strcmp(maintained[i].name, name) == 0)
				return maintained[i].kind;
	refuse_call(cm, psprintf("%s is not one of the aggregates it maintains", format_procedure(fnoid)));
	return AGG_COUNT;			/* keep compiler quiet */
}

/*
 * source_sql
 *		An expression of the parsed query as SQL over the source row.  With
 *		joins, over the source row (s) and the dimensions (their aliases),
 *		every column qualified: the batch statement's FROM clause is the
 *		query's (joins_sql.c).
 */
static char *
source_sql(const PipelineDef *def, Query *query, Node *node)
{
	PlannedStmt *stmt;

	if (def->joins == NIL)
		return deparse_expression(node, deparse_context_for(get_rel_name(def->source), def->source),
								  false, false);
	stmt = makeNode(PlannedStmt);
	stmt->rtable = query->rtable;
	return deparse_expression(node,
							  deparse_context_for_plan_tree(stmt,
															select_rtable_names_for_explain(query->rtable,
																							NULL)),
							  true, false);
}

/*
 * compile_call
 *		The aggregate call a column's expression is, checked.  Analyzed and
 *		printed back as the owner, with the pipeline's search_path: a name
 *		printed unqualified is one that resolves there, as it will when
 *		the batch statement runs.  The caller runs as the owner.
 */
static AggregateCall *
compile_call(const PipelineDef *def, ColumnMap *cm, int index)
{
	Query	   *query = pipeline_analyze_expression(def, cm->expr);
	Node	   *node = (Node *) linitial_node(TargetEntry, query->targetList)->expr;
	AggregateCall *call = palloc0(sizeof(AggregateCall));
	Aggref	   *agg;

	if (!IsA(node, Aggref))
		refuse_call(cm, "it is an expression around an aggregate, not an aggregate call");
	agg = (Aggref *) node;
	if (agg->aggkind != AGGKIND_NORMAL)
		refuse_call(cm, "ordered-set and hypothetical-set aggregates are not maintained");
	if (agg->aggorder != NIL)
		refuse_call(cm, "ORDER BY inside an aggregate call is not maintained");
	call->index = index;
	call->column = cm->column;
	call->kind = kind_of(cm, agg->aggfnoid);
	call->restype = agg->aggtype;
	if (agg->aggdistinct != NIL)
	{
		if (call->kind != AGG_COUNT)
			refuse_call(cm, "DISTINCT is maintained for count only");
		call->kind = AGG_COUNT_DISTINCT;
	}
	if (!agg->aggstar)
	{
		Node	   *arg = (Node *) linitial_node(TargetEntry, agg->args)->expr;

		call->arg = source_sql(def, query, arg);
		call->argtype = exprType(arg);
		call->argtypmod = exprTypmod(arg);
	}
	if (agg->aggfilter)
		call->filter = source_sql(def, query, (Node *) agg->aggfilter);
	return call;
}

/*
 * share_inputs
 *		Names the batch row columns of a call's argument and FILTER: those
 *		of an earlier call with the same expression (and argument type),
 *		or its own.
 */
static void
share_inputs(AggregateCall *call, List *earlier)
{
	ListCell   *lc;

	foreach(lc, earlier)
	{
		AggregateCall *e = lfirst(lc);

		if (call->arg && !call->arg_column && e->arg && e->argtype == call->argtype &&
			e->argtypmod == call->argtypmod && strcmp(e->arg, call->arg) == 0)
			call->arg_column = e->arg_column;
		if (call->filter && !call->filter_column && e->filter && strcmp(e->filter, call->filter) == 0)
			call->filter_column = e->filter_column;
	}
	call->owns_arg = call->arg && !call->arg_column;
	call->owns_filter = call->filter && !call->filter_column;
	if (call->owns_arg)
		call->arg_column = psprintf("__pl_a%d", call->index);
	if (call->owns_filter)
		call->filter_column = psprintf("__pl_f%d", call->index);
}

/*
 * pipeline_aggregate_calls
 *		The aggregate calls of an aggregate pipeline's mapping, in target
 *		column order, numbered from 0; errors for a column that is not one
 *		(refuse_call).
 */
List *
pipeline_aggregate_calls(const PipelineDef *def, const PipelineMapping *map)
{
	List	   *calls = NIL;
	ListCell   *lc;

	PipelineUserContext ctx;

	pipeline_become_owner(def, &ctx);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		AggregateCall *call;

		if (!cm->aggregates)
			continue;
		call = compile_call(def, cm, list_length(calls));
		share_inputs(call, calls);
		calls = lappend(calls, call);
	}
	pipeline_restore_user(&ctx);
	return calls;
}

/*
 * pipeline_aggregate_needs_rows
 *		Whether a call needs the rows of its group to be kept: a distinct
 *		count always, min and max when rows can leave a group.
 */
bool
pipeline_aggregate_needs_rows(const AggregateCall *call, bool retracts)
{
	return call->kind == AGG_COUNT_DISTINCT ||
		(retracts && (call->kind == AGG_MIN || call->kind == AGG_MAX));
}
