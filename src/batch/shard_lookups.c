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
	char	   *sql;
	int			nest_level;

	if (expr == NULL)
		return NULL;
	query = pipeline_analyze_expression(def, expr);
	(void) to_reference_shards((Node *) query, &rewrite);
	if (!rewrite.rewritten)
		return (char *) expr;

	/* with nothing but pg_catalog visible, every other name is qualified */
	nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	sql = deparse_expression((Node *) linitial_node(TargetEntry, query->targetList)->expr,
							 deparse_context_for("s", def->source), true, false);
	AtEOXact_GUC(true, nest_level);
	return sql;
}
