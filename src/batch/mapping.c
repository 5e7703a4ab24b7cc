/*-------------------------------------------------------------------------
 *
 * mapping.c
 *	  Which target column gets which expression over the source row
 *	  (what happens to the target when the source's columns change is
 *	  schema_change.c's).
 *
 * The mapping follows dbt and Delta Live Tables: a target column is fed by
 * the same-named source column unless the pipeline's `columns` object maps
 * it to an SQL expression (or to JSON null, which leaves it out).  For a
 * target that does not exist yet, the source's columns (in order) followed
 * by the mapping's extra columns define it.
 *
 * An aggregate pipeline's target is its group key and its aggregates: a
 * source column feeds only a key column of the same name, and every other
 * target column is mapped to one aggregate call (ColumnMap.aggregates).
 *
 * A pipeline reading Debezium events maps from the decoded rows
 * (debezium_sql.c): the target's columns, read from each event, and the
 * event's own (_op, _lsn, ...).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "optimizer/optimizer.h"

#include "access/table.h"
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "sources/sources.h"
#include "strategy.h"

/*
 * pipeline_mapping_lookup
 *		Looks a target column up in the `columns` object: returns false when
 *		it is not mapped; otherwise sets *expr (NULL for a JSON null).
 */
bool
pipeline_mapping_lookup(Jsonb *columns, const char *column, char **expr)
{
	JsonbValue	key;
	JsonbValue *val;

	key.type = jbvString;
	key.val.string.val = (char *) column;
	key.val.string.len = strlen(column);
	val = findJsonbValueFromContainer(&columns->root, JB_FOBJECT, &key);
	if (val == NULL)
		return false;
	if (val->type == jbvNull)
		*expr = NULL;
	else if (val->type == jbvString)
		*expr = pnstrdup(val->val.string.val, val->val.string.len);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mapping for column \"%s\" must be a string or null", column),
				 errdetail("The columns object maps each target column to an SQL expression over the source row, as text."),
				 errhint("Write for example {\"%s\": \"lower(%s)\"}, or null to leave the column out.",
						 column, column)));
	return true;
}

/*
 * pipeline_follows_source
 *		Whether a source column the mapping does not name goes to the target
 *		by itself: all do, but a change log's own (_op, _for), which a
 *		reader maps only when asked to, and the version columns an scd2
 *		pipeline writes itself (its source may be another scd2 target).
 */
bool
pipeline_follows_source(const PipelineDef *def, const char *column)
{
	return !(def->reads_change_log && pipeline_is_change_log_column(column)) &&
		!pipeline_is_own_column(def, column);
}

/*
 * source_column
 *		The expression of a target column taken from the same-named source
 *		column: qualified by the source's alias when the pipeline has joins,
 *		so that a dimension's column of the same name does not make it
 *		ambiguous.
 */
static char *
source_column(const PipelineDef *def, const char *column)
{
	if (def->joins != NIL)
		return psprintf("s.%s", quote_identifier(column));
	return pstrdup(quote_identifier(column));
}

/*
 * add_column
 *		Appends a ColumnMap to the mapping.
 */
static void
add_column(PipelineMapping *map, const PipelineDef *def, const char *column, char *expr)
{
	ColumnMap  *cm = palloc0(sizeof(ColumnMap));

	cm->column = pstrdup(column);
	cm->expr = expr;
	cm->is_key = pipeline_list_has_string(def->key, column);
	cm->aggregates = def->strategy->groups && !cm->is_key;
	map->columns = lappend(map->columns, cm);
}

/*
 * add_new_group_columns
 *		The columns of an aggregate's new target: its group key (mapped, or
 *		the same-named source columns), then its aggregates, as the columns
 *		object orders them.  The source's other columns are not the target's.
 */
static void
add_new_group_columns(PipelineMapping *map, const PipelineDef *def)
{
	JsonbIterator *it = JsonbIteratorInit(&def->columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	ListCell   *lc;
	char	   *expr;

	foreach(lc, def->key)
	{
		char	   *column = lfirst(lc);

		if (!pipeline_mapping_lookup(def->columns, column, &expr))
			expr = source_column(def, column);
		if (expr != NULL)
			add_column(map, def, column, expr);
	}
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *column;

		if (tok != WJB_KEY)
			continue;
		column = pnstrdup(v.val.string.val, v.val.string.len);
		if (!pipeline_list_has_string(def->key, column) &&
			pipeline_mapping_lookup(def->columns, column, &expr) && expr != NULL)
			add_column(map, def, column, expr);
	}
}

/*
 * pipeline_build_mapping
 *		The column mapping of a pipeline against the current source and
 *		target.  Expression types are left unset (see define.c's probe).
 */
PipelineMapping *
pipeline_build_mapping(const PipelineDef *def)
{
	PipelineMapping *map = palloc0(sizeof(PipelineMapping));
	ListCell   *lc;
	char	   *expr;

	map->source_columns = pipeline_reads_events(def) ? pipeline_decoded_columns(def) :
		pipeline_relation_columns(def->source);
	map->target_exists = OidIsValid(def->target) &&
		SearchSysCacheExists1(RELOID, ObjectIdGetDatum(def->target));

	if (map->target_exists)
	{
		List	   *target_columns = pipeline_relation_columns(def->target);

		foreach(lc, target_columns)
		{
			char	   *column = lfirst(lc);

			if (pipeline_is_own_column(def, column))
				continue;
			if (pipeline_mapping_lookup(def->columns, column, &expr))
			{
				if (expr != NULL)
					add_column(map, def, column, expr);
			}
			else if (pipeline_list_has_string(map->source_columns, column) &&
					 (!def->strategy->groups || pipeline_list_has_string(def->key, column)))
				add_column(map, def, column, source_column(def, column));
		}
		return map;
	}

	if (def->strategy->groups)
	{
		add_new_group_columns(map, def);
		return map;
	}

	/*
	 * A new target: the source's columns (but a change log's own, unless
	 * mapped), then the mapping's extra ones.
	 */
	foreach(lc, map->source_columns)
	{
		char	   *column = lfirst(lc);

		if (!pipeline_mapping_lookup(def->columns, column, &expr))
		{
			if (!pipeline_follows_source(def, column))
				continue;
			expr = source_column(def, column);
		}
		if (expr != NULL)
			add_column(map, def, column, expr);
	}
	{
		JsonbIterator *it = JsonbIteratorInit(&def->columns->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *column;

			if (tok != WJB_KEY)
				continue;
			column = pnstrdup(v.val.string.val, v.val.string.len);
			if (!pipeline_list_has_string(map->source_columns, column) &&
				pipeline_mapping_lookup(def->columns, column, &expr) && expr != NULL)
				add_column(map, def, column, expr);
		}
	}
	return map;
}

/*
 * pipeline_analyze_expression
 *		Parse analysis of "SELECT (<expr>) FROM <source> s <joins>", the form every
 *		expression of a definition is run in; the caller runs as the owner,
 *		so that names resolve as they will when the pipeline runs.
 */
Query *
pipeline_analyze_expression(const PipelineDef *def, const char *expr)
{
	char	   *sql = psprintf("SELECT (%s) FROM %s", expr,
							   pipeline_source_from(def, pipeline_qualified_name(def->source)));
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);

	return parse_analyze_fixedparams(linitial_node(RawStmt, raw), sql, NULL, 0, NULL);
}

/*
 * pipeline_expression_reads_dimensions
 *		Whether an expression of the definition reads a column of one of
 *		its joins' dimensions (range table entry 1 is the source).  The
 *		caller runs as the owner.
 */
bool
pipeline_expression_reads_dimensions(const PipelineDef *def, const char *expr)
{
	Query	   *query;
	Bitmapset  *relids;

	if (def->joins == NIL)
		return false;
	query = pipeline_analyze_expression(def, expr);
	relids = pull_varnos(NULL, (Node *) linitial_node(TargetEntry, query->targetList)->expr);
	return !bms_is_empty(relids) && !(bms_num_members(relids) == 1 && bms_is_member(1, relids));
}

/*
 * pipeline_mapping_column
 *		The mapping of one target column, or NULL when it is not written.
 */
ColumnMap *
pipeline_mapping_column(const PipelineMapping *map, const char *column)
{
	ListCell   *lc;

	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		if (strcmp(cm->column, column) == 0)
			return cm;
	}
	return NULL;
}

/*
 * pipeline_mapping_column_values
 *		"a.x, a.y": the mapped target columns, quoted, in order, each of
 *		alias 'a' (NULL: none).
 */
char *
pipeline_mapping_column_values(const PipelineMapping *map, const char *a)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, map->columns)
		names = lappend(names, ((ColumnMap *) lfirst(lc))->column);
	return pipeline_quote_list(names, a);
}

/*
 * pipeline_mapping_column_list
 *		"x, y": the mapped target columns, quoted, in order.
 */
char *
pipeline_mapping_column_list(const PipelineMapping *map)
{
	return pipeline_mapping_column_values(map, NULL);
}
