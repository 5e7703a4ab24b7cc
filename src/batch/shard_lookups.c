/*-------------------------------------------------------------------------
 *
 * shard_lookups.c
 *	  Lookups of Citus reference tables in a sharded pipeline's
 *	  expressions.  A shard statement runs on a worker over plain tables --
 *	  its two shards -- and Citus plans no statement mixing those with its
 *	  own tables; but a reference table has a shard on every node holding a
 *	  copy, a plain table of the same name there.  So an expression reading
 *	  reference tables is run reading their shards: parsed as the pipeline's
 *	  owner, each reference table replaced by its shard, and written back as
 *	  SQL with every name qualified.  Any other table is refused at
 *	  definition (definition/sharded_pipelines.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/guc.h"
#include "utils/ruleutils.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"

/* What to_reference_shards found and did. */
typedef struct LookupRewrite
{
	Oid			source;
	List	   *others;			/* relations read that are no reference table
								 * with a shard here */
	bool		rewritten;
} LookupRewrite;

/*
 * to_reference_shards
 *		Walker: points each reference table a (sub)query reads at its shard;
 *		notes any other relation but the staging table.
 */
static bool
to_reference_shards(Node *node, LookupRewrite *rewrite)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;
		Oid			shard;

		if (rte->rtekind != RTE_RELATION || rte->relid == rewrite->source)
			return false;
		shard = pipeline_citus_reference_shard(rte->relid);
		if (OidIsValid(shard))
		{
			rte->relid = shard;
			rewrite->rewritten = true;
		}
		else
			rewrite->others = lappend_oid(rewrite->others, rte->relid);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, to_reference_shards, rewrite, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, to_reference_shards, rewrite);
}

/*
 * qualified_sql
 *		The expression of "SELECT (<expression>) FROM <relation> <alias>" as
 *		SQL with every name qualified (nothing but pg_catalog visible while
 *		it is written).
 */
static char *
qualified_sql(Query *query, const char *alias, Oid relation)
{
	int			nest_level = NewGUCNestLevel();
	char	   *sql;

	(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	sql = deparse_expression((Node *) linitial_node(TargetEntry, query->targetList)->expr,
							 deparse_context_for(alias, relation), true, false);
	AtEOXact_GUC(true, nest_level);
	return sql;
}

/*
 * pipeline_shard_lookup_others
 *		The relations an expression of a sharded pipeline reads that its
 *		shard statement cannot (any but the staging table and Citus
 *		reference tables with a shard on this node).  The caller runs as the
 *		pipeline's owner.
 */
List *
pipeline_shard_lookup_others(const PipelineDef *def, const char *expr)
{
	LookupRewrite rewrite = {def->source, NIL, false};

	(void) to_reference_shards((Node *) pipeline_analyze_expression(def, expr), &rewrite);
	return rewrite.others;
}

/*
 * pipeline_shard_expression
 *		An expression of a sharded pipeline as its shard statement runs it
 *		(over the staged row as alias s): itself when it reads no reference
 *		table, else rewritten to read their shards, every name qualified.
 *		NULL for NULL.  The caller runs as the pipeline's owner.
 */
char *
pipeline_shard_expression(const PipelineDef *def, const char *expr)
{
	LookupRewrite rewrite = {def->source, NIL, false};
	Query	   *query;

	if (expr == NULL)
		return NULL;
	query = pipeline_analyze_expression(def, expr);
	(void) to_reference_shards((Node *) query, &rewrite);
	return rewrite.rewritten ? qualified_sql(query, "s", def->source) : (char *) expr;
}

/*
 * check_lookups
 *		A data quality check's expression, parsed over the target's row (as
 *		alias b, the form a shard statement checks a row in) with each
 *		reference table it reads pointed at its shard; in 'rewrite', the
 *		other relations it reads, but the row itself.  The caller runs as
 *		the pipeline's owner.
 */
static Query *
check_lookups(const PipelineDef *def, const char *expr, LookupRewrite *rewrite)
{
	char	   *sql = psprintf("SELECT (%s) FROM %s b", expr, pipeline_qualified_name(def->target));
	Query	   *query = parse_analyze_fixedparams(linitial_node(RawStmt, raw_parser(sql, RAW_PARSE_DEFAULT)),
												  sql, NULL, 0, NULL);

	rewrite->source = InvalidOid;
	(void) to_reference_shards((Node *) query, rewrite);
	/* the target is read as the row checked (distributed: not rewritten) */
	rewrite->others = list_delete_oid(rewrite->others, def->target);
	return query;
}

/*
 * pipeline_shard_check_lookup_others
 *		The relations a data quality check's expression reads that a shard
 *		statement cannot (any but Citus reference tables with a shard on
 *		this node; the target too, but as the row checked).  The caller runs
 *		as the pipeline's owner.
 */
List *
pipeline_shard_check_lookup_others(const PipelineDef *def, const char *expr)
{
	LookupRewrite rewrite = {InvalidOid, NIL, false};

	(void) check_lookups(def, expr, &rewrite);
	return rewrite.others;
}

/*
 * pipeline_shard_check_expression
 *		A data quality check's expression as a shard statement runs it (over
 *		the row checked as alias b): itself when it reads no reference table,
 *		else rewritten to read their shards, every name qualified.  The
 *		caller runs as the pipeline's owner.
 */
char *
pipeline_shard_check_expression(const PipelineDef *def, const char *expr)
{
	LookupRewrite rewrite = {InvalidOid, NIL, false};
	Query	   *query = check_lookups(def, expr, &rewrite);

	return rewrite.rewritten ? qualified_sql(query, "b", def->target) : (char *) expr;
}
