/*-------------------------------------------------------------------------
 *
 * lineage.c
 *	  The lineage catalog (pipeline.lineage_edges): which source columns
 *	  each pipeline's target columns are computed from, found by parse
 *	  analysis of the mapping expressions, the filter, delete_when and
 *	  sequence_by with PostgreSQL's own parser and analyzer.
 *
 * Each expression is analyzed as "SELECT (<expr>) FROM <source> s" (joined
 * to the pipeline's dimensions, which give edges of their own), as the
 * pipeline's owner with its search_path (exactly how the batch statement
 * resolves it), and the analyzed tree is walked for Vars.  The rule for the
 * kind of an edge:
 *
 *	DIRECT		the column's value is an input of the value written: an
 *				argument of a function or operator, a cast, a COALESCE
 *				argument, a result of a CASE, the output of a scalar
 *				subquery (subtype IDENTITY for a plain column,
 *				TRANSFORMATION otherwise, AGGREGATION inside an aggregate);
 *	INDIRECT	the column only decides which value or which row: a CASE
 *				condition (CONDITIONAL), the WHERE, JOIN and HAVING of a
 *				subquery, the tests of EXISTS, IN, ANY and ALL, an
 *				aggregate's FILTER, the pipeline's filter and delete_when
 *				(FILTER), GROUP BY and ORDER BY of a subquery and an
 *				aggregate pipeline's group key (GROUP_BY), the
 *				sequence_by column that decides which event wins (SORT),
 *				the columns a join to a dimension matches on (JOIN).
 *
 * Edges of the filter, delete_when, sequence_by and a group key decide
 * whether or where a row lands; they have no target column (they bear on
 * every column).
 * A source that is a change log (another pipeline's target, or a captured
 * table) is recorded as the relation it logs, so that edges chain across a
 * DAG; the log's own bookkeeping columns (_op, ...) give no edge.
 *
 * Edges are recomputed whenever a definition is saved (create_pipeline,
 * alter_pipeline, a schema change applied by a run) and go with the
 * pipeline by the foreign key's cascade.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "lineage/lineage.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "sources/sources.h"
#include "strategy.h"

/* One source column an expression reads, and how. */
typedef struct LineageEdge
{
	Oid			relid;
	char	   *column;
	bool		indirect;
	const char *subtype;
} LineageEdge;

/* State of the walk over one analyzed expression. */
typedef struct LineageWalk
{
	List	   *queries;		/* of Query *, innermost first (for
								 * varlevelsup) */
	bool		indirect;
	const char *subtype;
	List	   *edges;			/* of LineageEdge * */
} LineageWalk;

static bool lineage_walker(Node *node, LineageWalk *w);

/*
 * add_edge
 *		Records that the walk reads column 'attno' of relation 'relid'.
 */
static void
add_edge(LineageWalk *w, Oid relid, AttrNumber attno)
{
	LineageEdge *e = palloc(sizeof(LineageEdge));

	e->relid = relid;
	e->column = get_attname(relid, attno, false);
	e->indirect = w->indirect;
	e->subtype = w->subtype;
	w->edges = lappend(w->edges, e);
}

/*
 * walk_as
 *		Walks a node as INDIRECT (or, given a subtype, as DIRECT of that
 *		subtype), then restores the walk's own kind.  Inside a part that
 *		only decides, everything only decides.
 */
static void
walk_as(Node *node, LineageWalk *w, bool indirect, const char *subtype)
{
	bool		saved_indirect = w->indirect;
	const char *saved_subtype = w->subtype;

	if (!w->indirect && (indirect || subtype != NULL))
	{
		w->indirect = indirect;
		w->subtype = subtype;
	}
	lineage_walker(node, w);
	w->indirect = saved_indirect;
	w->subtype = saved_subtype;
}

/*
 * walk_query
 *		A (sub)query: its output flows, everything else decides.
 */
static void
walk_query(Query *q, LineageWalk *w)
{
	ListCell   *lc;

	w->queries = lcons(q, w->queries);
	foreach(lc, q->targetList)
	{
		TargetEntry *te = lfirst(lc);

		if (!te->resjunk)
			lineage_walker((Node *) te->expr, w);
		else if (get_sortgroupref_clause_noerr(te->ressortgroupref, q->groupClause))
			walk_as((Node *) te->expr, w, true, "GROUP_BY");
		else
			walk_as((Node *) te->expr, w, true, "SORT");
	}
	walk_as((Node *) q->jointree, w, true, "FILTER");
	walk_as(q->havingQual, w, true, "FILTER");
	w->queries = list_delete_first(w->queries);
}

/*
 * walk_var
 *		A column: of a table, or of a join or a subquery in FROM, which is
 *		followed to the expression it stands for.
 */
static void
walk_var(Var *var, LineageWalk *w)
{
	Query	   *q = list_nth(w->queries, var->varlevelsup);
	RangeTblEntry *rte = rt_fetch(var->varno, q->rtable);
	List	   *outer;

	switch (rte->rtekind)
	{
		case RTE_RELATION:
			if (var->varattno > 0)
				add_edge(w, rte->relid, var->varattno);
			else if (var->varattno == 0)
			{
				/*
				 * The whole row: every column but the staging bookkeeping
				 * (analysis locked the relation).
				 */
				Relation	rel = relation_open(rte->relid, NoLock);
				TupleDesc	desc = RelationGetDescr(rel);

				for (int i = 0; i < desc->natts; i++)
				{
					const char *name = NameStr(TupleDescAttr(desc, i)->attname);

					if (!TupleDescAttr(desc, i)->attisdropped &&
						strcmp(name, PIPELINE_XID_COLUMN) != 0 &&
						strcmp(name, PIPELINE_SEQ_COLUMN) != 0)
						add_edge(w, rte->relid, i + 1);
				}
				relation_close(rel, NoLock);
			}
			break;
		case RTE_JOIN:
			if (var->varattno > 0)
			{
				/* the join's alias Vars are at the join's own level */
				outer = w->queries;
				w->queries = list_copy_tail(w->queries, var->varlevelsup);
				lineage_walker(list_nth(rte->joinaliasvars, var->varattno - 1), w);
				w->queries = outer;
			}
			break;
		case RTE_SUBQUERY:
			if (var->varattno > 0)
			{
				TargetEntry *te = get_tle_by_resno(rte->subquery->targetList, var->varattno);

				outer = w->queries;
				w->queries = lcons(rte->subquery, list_copy_tail(w->queries, var->varlevelsup));
				if (te != NULL)
					lineage_walker((Node *) te->expr, w);
				w->queries = list_delete_first(w->queries);
				walk_as((Node *) rte->subquery->jointree, w, true, "FILTER");
				w->queries = outer;
			}
			break;
		default:
			/* functions, VALUES, CTEs: no relation's column */
			break;
	}
}

/*
 * lineage_walker
 *		expression_tree_walker callback collecting the columns read.
 */
static bool
lineage_walker(Node *node, LineageWalk *w)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		walk_var((Var *) node, w);
		return false;
	}
	if (IsA(node, Query))
	{
		walk_query((Query *) node, w);
		return false;
	}
	if (IsA(node, SubLink))
	{
		SubLink    *s = (SubLink *) node;
		bool		flows = s->subLinkType == EXPR_SUBLINK || s->subLinkType == ARRAY_SUBLINK;

		walk_as(s->testexpr, w, true, "FILTER");
		walk_as(s->subselect, w, !flows, flows ? NULL : "FILTER");
		return false;
	}
	if (IsA(node, CaseExpr))
	{
		CaseExpr   *c = (CaseExpr *) node;
		ListCell   *lc;

		walk_as((Node *) c->arg, w, true, "CONDITIONAL");
		foreach(lc, c->args)
		{
			CaseWhen   *when = lfirst(lc);

			walk_as((Node *) when->expr, w, true, "CONDITIONAL");
			lineage_walker((Node *) when->result, w);
		}
		lineage_walker((Node *) c->defresult, w);
		return false;
	}
	if (IsA(node, Aggref))
	{
		Aggref	   *a = (Aggref *) node;

		walk_as((Node *) a->aggdirectargs, w, false, "AGGREGATION");
		walk_as((Node *) a->args, w, false, "AGGREGATION");
		walk_as((Node *) a->aggfilter, w, true, "FILTER");
		return false;
	}
	return expression_tree_walker(node, lineage_walker, (void *) w);
}

/*
 * expression_edges
 *		The source columns an expression reads; 'indirect' when the whole
 *		expression only decides (filter, delete_when, sequence_by).
 */
static List *
expression_edges(const PipelineDef *def, const char *expr, bool indirect, const char *subtype)
{
	Query	   *q = pipeline_analyze_expression(def, expr);
	TargetEntry *te = linitial_node(TargetEntry, q->targetList);
	Node	   *value = (Node *) te->expr;
	LineageWalk w = {0};

	while (IsA(value, RelabelType))
		value = (Node *) ((RelabelType *) value)->arg;
	w.queries = list_make1(q);
	w.indirect = indirect;
	w.subtype = indirect ? subtype : (IsA(value, Var) ? "IDENTITY" : "TRANSFORMATION");
	lineage_walker((Node *) te->expr, &w);
	return w.edges;
}

/* An expression of the definition and the edges it gives. */
typedef struct LineageSource
{
	const char *target_column;	/* NULL: the whole row */
	const char *origin;
	const char *expr;
	List	   *edges;
} LineageSource;

/*
 * add_source
 *		Appends an expression of the definition and its edges (as
 *		expression_edges finds them) to 'sources'.
 */
static List *
add_source(List *sources, const PipelineDef *def, const char *target_column,
		   const char *origin, const char *expr, bool indirect, const char *subtype)
{
	LineageSource *ls = palloc(sizeof(LineageSource));

	ls->target_column = target_column;
	ls->origin = origin;
	ls->expr = expr;
	ls->edges = expression_edges(def, expr, indirect, subtype);
	return lappend(sources, ls);
}

/*
 * sequence_expression
 *		The expression of the sequence_by value, or NULL: its mapped column's
 *		(an aggregate's is a source column, and a kept one expressions over
 *		the source row: no target column keeps them).
 */
static const char *
sequence_expression(const PipelineDef *def, const PipelineMapping *map)
{
	ColumnMap  *cm;

	if (def->sequence_by == NULL)
		return NULL;
	if (def->strategy->groups)
		return quote_identifier(def->sequence_by);
	if (def->sequence_kept)
		return psprintf("ROW(%s)", def->sequence_by);
	cm = pipeline_mapping_column(map, def->sequence_by);
	return cm ? cm->expr : NULL;
}

/*
 * join_expression
 *		"ROW(s.customer_id, c.id)": the columns a join matches on, as one
 *		expression (a join's columns decide which dimension row a source
 *		row gets, and whether an inner join's row is in the result).
 */
static const char *
join_expression(const DimensionJoin *join)
{
	return psprintf("ROW(%s, %s)", pipeline_quote_list(join->source_columns, "s"),
					pipeline_quote_list(join->dimension_columns, quote_identifier(join->alias)));
}

/*
 * definition_edges
 *		Analyzes every expression of a definition as its owner.
 */
static List *
definition_edges(const PipelineDef *def, const PipelineMapping *map)
{
	List	   *result = NIL;
	PipelineUserContext ctx;
	ListCell   *lc;
	const char *seq = sequence_expression(def, map);

	pipeline_become_owner(def, &ctx);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		result = add_source(result, def, cm->column, "mapping", cm->expr, false, NULL);
		/* a group key decides which rows every aggregate sees */
		if (cm->is_key && def->strategy->groups)
			result = add_source(result, def, NULL, "mapping", cm->expr, true, "GROUP_BY");
	}
	if (seq)
		result = add_source(result, def, NULL, "sequence_by", seq, true, "SORT");
	if (def->filter)
		result = add_source(result, def, NULL, "filter", def->filter, true, "FILTER");
	if (def->delete_when)
		result = add_source(result, def, NULL, "delete_when", def->delete_when, true, "FILTER");
	foreach(lc, def->joins)
		result = add_source(result, def, NULL, "joins", join_expression(lfirst(lc)), true, "JOIN");
	pipeline_restore_user(&ctx);
	return result;
}

/*
 * insert_edge
 *		One row of pipeline.lineage_edges (duplicates are kept once).
 */
static void
insert_edge(const PipelineDef *def, Oid source, const char *source_column,
			const char *target_column, bool indirect, const char *subtype,
			const char *origin, const char *transformation)
{
	Oid			types[9] = {INT8OID, OIDOID, TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID};
	Datum		values[9];
	char		nulls[9];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(def->id);
	values[1] = ObjectIdGetDatum(source);
	values[2] = CStringGetTextDatum(source_column);
	values[3] = ObjectIdGetDatum(def->target);
	if (target_column)
		values[4] = CStringGetTextDatum(target_column);
	else
		nulls[4] = 'n';
	values[5] = CStringGetTextDatum(indirect ? "INDIRECT" : "DIRECT");
	values[6] = CStringGetTextDatum(subtype);
	values[7] = CStringGetTextDatum(origin);
	values[8] = CStringGetTextDatum(transformation);
	pipeline_exec("INSERT INTO pipeline.lineage_edges (pipeline_id, source, source_column, "
				  "target, target_column, lineage_type, subtype, origin, transformation) "
				  "VALUES ($1, $2::regclass, $3, $4::regclass, $5, $6, $7, $8, $9) "
				  "ON CONFLICT DO NOTHING", 9, types, values, nulls, false, 0);
}

/*
 * pipeline_save_lineage
 *		Replaces a saved definition's edges: its column edges, then one
 *		table edge per relation they read (and the source, always).
 */
void
pipeline_save_lineage(const PipelineDef *def)
{
	PipelineMapping *map = pipeline_build_mapping(def);
	List	   *sources = definition_edges(def, map);
	Oid			source;
	PipelineUserContext ctx;
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(def->id);
	ListCell   *lc;
	ListCell   *le;

	pipeline_become_internal(&ctx);
	source = pipeline_logged_relation(def->source);
	pipeline_exec("DELETE FROM pipeline.lineage_edges WHERE pipeline_id = $1", 1, &type, &value,
				  NULL, false, 0);
	foreach(lc, sources)
	{
		LineageSource *ls = lfirst(lc);

		foreach(le, ls->edges)
		{
			LineageEdge *e = lfirst(le);
			Oid			relid = e->relid;

			if (relid == def->source)
			{
				if (def->reads_change_log && pipeline_is_change_log_column(e->column))
					continue;
				relid = source;
			}
			insert_edge(def, relid, e->column, ls->target_column, e->indirect, e->subtype,
						ls->origin, ls->expr);
		}
	}
	value = Int64GetDatum(def->id);
	pipeline_exec(psprintf("INSERT INTO pipeline.lineage_edges (pipeline_id, source, target, "
						   "lineage_type, origin) "
						   "SELECT $1, r.source, %u::oid::regclass, "
						   "CASE WHEN bool_or(r.direct) THEN 'DIRECT' ELSE 'INDIRECT' END, 'pipeline' "
						   "FROM (SELECT %u::oid::regclass AS source, true AS direct "
						   "      UNION ALL "
						   "      SELECT e.source, e.lineage_type = 'DIRECT' FROM pipeline.lineage_edges e "
						   "       WHERE e.pipeline_id = $1) r GROUP BY r.source",
						   def->target, source),
				  1, &type, &value, NULL, false, 0);
	pipeline_restore_user(&ctx);
}
