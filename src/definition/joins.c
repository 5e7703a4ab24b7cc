/*-------------------------------------------------------------------------
 *
 * joins.c
 *	  create_pipeline(joins => ...): the dimension tables a pipeline joins
 *	  its source rows to, read from the argument and checked before the
 *	  pipeline is saved.
 *
 * The argument is a JSON array, one object per dimension:
 *
 *	  {"table": "silver.customers", "as": "c", "on": {"customer_id": "id"},
 *	   "type": "left"}
 *
 * "on" maps source columns to the dimension's columns, which must be the
 * dimension's primary key: one source row then matches at most one
 * dimension row, and a change of a dimension row names the source rows
 * it reaches by that key (joins_sql.c).  "type" is "inner" (the default)
 * or "left"; "as" defaults to the table's name.
 *
 * A dimension is followed through its change log, as a pipeline reading
 * it would (change_log.c): it must be a captured table or another
 * pipeline's target.  A dimension whose changes the pipeline could not
 * follow is refused: its target would silently keep values the
 * dimension no longer holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "sources/sources.h"
#include "strategy.h"

#define JOINS_HINT "Pass joins => '[{\"table\": \"silver.customers\", \"as\": \"c\", \"on\": {\"customer_id\": \"id\"}, \"type\": \"left\"}]'."

/*
 * bad_join
 *		Errors about join number 'n' (from 1) of the argument.
 */
static void
			bad_join(int n, const char *message, const char *detail) pg_attribute_noreturn();

static void
bad_join(int n, const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid join %d: %s", n, message),
			 errdetail("%s", detail),
			 errhint(JOINS_HINT)));
}

/*
 * string_value
 *		A JSON string's text; errors naming 'key' otherwise.
 */
static char *
string_value(int n, const char *key, JsonbValue *v)
{
	if (v->type != jbvString || v->val.string.len == 0)
		bad_join(n, psprintf("\"%s\" must be a non-empty string", key),
				 psprintf("The join's \"%s\" is given as %s.", key,
						  v->type == jbvString ? "an empty string" : "another JSON type"));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * dimension_of
 *		The table a join names, resolved with the caller's search_path.
 */
static Oid
dimension_of(int n, const char *name)
{
	List	   *names = pipeline_qualified_name_list(name);
	Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("dimension table %s of join %d does not exist", name, n),
				 errdetail("A join names an existing table, as SQL would (quote names that need it)."),
				 errhint("Create the table first, or correct its name.")));
	pipeline_require_table(relid, "dimension");
	return relid;
}

/*
 * read_on
 *		The join's "on" object: source columns to dimension columns.
 */
static void
read_on(int n, DimensionJoin *join, JsonbValue *v)
{
	JsonbIterator *it;
	JsonbValue	k,
				val;
	JsonbIteratorToken tok;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_join(n, "\"on\" must be a JSON object", "\"on\" maps source columns to the dimension's key columns.");
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &val, true);
		join->source_columns = lappend(join->source_columns,
									   pnstrdup(k.val.string.val, k.val.string.len));
		join->dimension_columns = lappend(join->dimension_columns, string_value(n, "on", &val));
	}
	if (join->source_columns == NIL)
		bad_join(n, "\"on\" is empty", "A join matches at least one source column to the dimension's key.");
}

/*
 * read_join
 *		One element of the argument, its keys checked.
 */
static DimensionJoin *
read_join(int n, JsonbValue *element)
{
	DimensionJoin *join = palloc0(sizeof(DimensionJoin));
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	char	   *table = NULL;

	join->inner = true;
	if (element->type != jbvBinary || !JsonContainerIsObject(element->val.binary.data))
		bad_join(n, "a join must be a JSON object", "joins is an array of objects, one per dimension table.");
	it = JsonbIteratorInit(element->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "table") == 0)
			table = string_value(n, key, &v);
		else if (strcmp(key, "as") == 0)
			join->alias = string_value(n, key, &v);
		else if (strcmp(key, "on") == 0)
			read_on(n, join, &v);
		else if (strcmp(key, "type") == 0)
		{
			char	   *type = string_value(n, key, &v);

			if (strcmp(type, "left") != 0 && strcmp(type, "inner") != 0)
				bad_join(n, psprintf("unknown join type \"%s\"", type),
						 "A join is \"inner\" (a source row without a dimension row has no result) or \"left\" (its dimension columns are NULL).");
			join->inner = strcmp(type, "inner") == 0;
		}
		else
			bad_join(n, psprintf("unknown key \"%s\"", key),
					 "A join has the keys \"table\", \"as\", \"on\" and \"type\".");
	}
	if (table == NULL || join->source_columns == NIL)
		bad_join(n, psprintf("\"%s\" is missing", table == NULL ? "table" : "on"),
				 "A join names its dimension table and the columns it matches on.");
	join->dimension = dimension_of(n, table);
	if (join->alias == NULL)
		join->alias = get_rel_name(join->dimension);
	return join;
}

/*
 * pipeline_read_joins
 *		The joins => argument as a List of DimensionJoin (dimensions
 *		resolved, nothing else checked yet).
 */
List *
pipeline_read_joins(Jsonb *arg)
{
	List	   *joins = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_ARRAY(arg) || JB_ROOT_IS_SCALAR(arg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("joins must be a JSON array"),
				 errdetail("joins lists the dimension tables the source rows are joined to, one object each."),
				 errhint(JOINS_HINT)));
	it = JsonbIteratorInit(&arg->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			joins = lappend(joins, read_join(list_length(joins) + 1, &v));
	return joins;
}

/*
 * check_alias
 *		A join's alias is a name of its own: not the source's (s), not the
 *		extension's internal prefix, not another join's.
 */
static void
check_alias(List *joins, int n, const DimensionJoin *join)
{
	if (strlen(join->alias) >= NAMEDATALEN || strcmp(join->alias, "s") == 0 ||
		strncmp(join->alias, "__pl_", 5) == 0)
		bad_join(n, psprintf("alias \"%s\" cannot be used", join->alias),
				 "An alias is a name of at most 63 bytes other than s (the source row) and not starting with __pl_ (the extension's own).");
	for (int i = 0; i < n - 1; i++)
		if (strcmp(((DimensionJoin *) list_nth(joins, i))->alias, join->alias) == 0)
			bad_join(n, psprintf("alias \"%s\" is used by join %d too", join->alias, i + 1),
					 "Each dimension is named by an alias of its own in the expressions.");
}

/*
 * check_columns
 *		The "on" columns: source columns on one side, the dimension's
 *		primary key on the other, each column once.
 */
static void
check_columns(const PipelineDef *def, int n, const DimensionJoin *join)
{
	List	   *key = pipeline_primary_key_columns(join->dimension);
	const char *dimension = pipeline_qualified_name(join->dimension);
	ListCell   *ls,
			   *ld;

	bool		exact = list_length(join->dimension_columns) == list_length(key);
	List	   *matched = NIL;

	forboth(ls, join->source_columns, ld, join->dimension_columns)
	{
		if (get_attnum(def->source, lfirst(ls)) <= 0)
			bad_join(n, psprintf("\"%s\" is not a column of the source %s", (char *) lfirst(ls),
								 pipeline_qualified_name(def->source)),
					 "The keys of \"on\" are source columns (names are exact, without SQL quoting).");
		/* every column of the key, each once, and nothing else */
		if (!pipeline_list_has_string(key, lfirst(ld)) || pipeline_list_has_string(matched, lfirst(ld)))
			exact = false;
		matched = lappend(matched, lfirst(ld));
	}
	if (!exact || key == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("join %d must match the primary key of %s", n, dimension),
				 errdetail(key == NIL ? "%s has no primary key." : "%s has the primary key (%s); the join matches (%s).",
						   dimension, pipeline_quote_list(key, NULL),
						   pipeline_quote_list(join->dimension_columns, NULL)),
				 errhint("A dimension row changes as one row of its key: join on every column of the dimension's primary key, once each.")));
}

/*
 * follow_dimension
 *		The change log the dimension's changes are followed through; the
 *		owner must read the whole dimension, as a pipeline reading it would.
 */
static Oid
follow_dimension(const PipelineDef *def, int n, const DimensionJoin *join)
{
	const char *dimension = pipeline_qualified_name(join->dimension);
	Oid			log;

	pipeline_require_privilege(def->owner, join->dimension, ACL_SELECT, "SELECT", "dimension");
	pipeline_refuse_cycle(join->dimension, def->target);
	log = pipeline_join_change_log(join->dimension, def->owner);
	if (!OidIsValid(log))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the changes of dimension %s cannot be followed", dimension),
				 errdetail("A target keeps the dimension values it joined; the pipeline must see every later change of %s to apply it, and %s is neither captured nor a pipeline's target.",
						   dimension, dimension),
				 errhint("Capture it first: SELECT pipeline.capture('%s');", dimension)));
	return log;
}

/*
 * pipeline_refuse_deleting_dimension
 *		delete_when deletes a source row for good (a dimension's change
 *		never brings it back): it must be about the source row alone.  A
 *		condition on a dimension belongs in the filter, whose rows come back
 *		when the dimension changes.  Called once the definition's
 *		expressions have been probed (an invalid one is reported there).
 */
void
pipeline_refuse_deleting_dimension(const PipelineDef *def)
{
	PipelineUserContext ctx;
	bool		reads;

	if (def->delete_when == NULL || def->joins == NIL)
		return;
	pipeline_become_owner(def, &ctx);
	reads = pipeline_expression_reads_dimensions(def, def->delete_when);
	pipeline_restore_user(&ctx);
	if (reads)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("delete_when of a pipeline with joins must be about the source row"),
				 errdetail("It reads a dimension: %s", def->delete_when),
				 errhint("Put a condition on a dimension in filter: a row it leaves out comes back when the dimension changes, a deleted row does not.")));
}

/*
 * pipeline_refuse_citus_dimensions
 *		Errors for a join to a Citus table: the statements that apply a
 *		dimension's changes to the target mix it with the pipeline's own
 *		tables in ways Citus plans wrongly or not at all (a reference
 *		table's change was seen to drop a joined row).  When the pipeline is
 *		defined and when a run builds its statements (a dimension may have
 *		been distributed since).
 */
void
pipeline_refuse_citus_dimensions(const PipelineDef *def)
{
	ListCell   *lc;

	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);
		CitusKind	kind = pipeline_citus_kind(join->dimension);

		if (kind == CITUS_NONE)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("invalid join %d: %s is a Citus %s table", foreach_current_index(lc) + 1,
						pipeline_qualified_name(join->dimension),
						kind == CITUS_REFERENCE ? "reference" : "distributed"),
				 errdetail("A pipeline applies its dimensions' changes to its target by statements that read the dimension beside tables of its own on the coordinator, which Citus cannot plan."),
				 errhint("Join a plain table on the coordinator (a pipeline may maintain it), or look the values up in the mapping: (SELECT name FROM customers WHERE id = customer_id).")));
	}
}

/*
 * pipeline_check_joins
 *		Checks def's joins against its source (resolved: a change log when
 *		it reads one) and strategy, and sets the change log of each.
 */
void
pipeline_check_joins(PipelineDef *def)
{
	ListCell   *lc;

	if (def->joins == NIL)
		return;
	if (!def->strategy->keyed || def->strategy->versioned)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the %s strategy takes no joins", def->strategy->name),
				 errdetail("Joins are maintained by the merge and aggregate strategies, which keep each key's source row to apply a dimension's change to."),
				 errhint("Use strategy => 'merge' or 'aggregate'.")));
	if (def->strategy->groups && def->source_key == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("joins need a source_key"),
				 errdetail("A dimension's change replaces what each source row it reaches contributes, which needs the rows' identity."),
				 errhint("Pass source_key => ARRAY['id'] naming the source columns that identify a row.")));
	pipeline_refuse_citus_dimensions(def);
	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);
		int			n = foreach_current_index(lc) + 1;

		check_alias(def->joins, n, join);
		if (join->dimension == def->target || join->dimension == pipeline_logged_relation(def->source))
			bad_join(n, psprintf("%s is the pipeline's %s", pipeline_qualified_name(join->dimension),
								 join->dimension == def->target ? "target" : "source"),
					 "A dimension is a table of its own that the source rows are joined to.");
		check_columns(def, n, join);
		join->change_log = follow_dimension(def, n, join);
	}
}
