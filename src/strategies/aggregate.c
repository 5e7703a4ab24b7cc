/*-------------------------------------------------------------------------
 *
 * aggregate.c
 *	  The aggregate strategy: the target holds groups of source rows, as
 *	  "SELECT key, aggregates FROM source WHERE filter GROUP BY key HAVING
 *	  group_filter" would, kept up to date batch by batch.
 *
 * The pipeline's key is the group key; its other target columns are each
 * mapped to one aggregate call (aggregate_calls.c says which).  A source
 * row is a new row of its group unless the pipeline has a source_key: then
 * the source's rows are rows of a table that change, each identified by
 * its source_key, whose latest event (by sequence_by, then by arrival)
 * replaces its earlier one, moves it to another group, or, as a delete
 * event (delete_when, or failing the filter), takes it out of its group.
 * A pipeline reading another pipeline's target or a captured table gets
 * that table's primary key as its source_key.
 *
 * Next to the target the strategy keeps a group state and, when needed, a
 * row state (aggregate_sql.c describes them and the batch statement);
 * both are made here, owned by the pipeline's owner, and dropped with the
 * pipeline.  Since they hold what the rows consumed so far add up to, an
 * aggregate pipeline's key, mapping, filter and deletes cannot change
 * (define.c refuses it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"
#include "strategy.h"

/*
 * check_options
 *		Row changes need rows to apply to; a target column per group cannot
 *		follow the source's new columns.
 */
static void
check_options(const PipelineDef *def)
{
	if (def->source_key == NIL && (def->delete_when || def->sequence_by))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs a source_key in an aggregate pipeline",
						def->delete_when ? "delete_when" : "sequence_by"),
				 errdetail("Without a source_key every staged row is a new row of its group; deletes and versions need the row they apply to."),
				 errhint("Pass source_key => ARRAY['id'] naming the source columns that identify a row.")));
	if (strcmp(def->on_schema_change, "ignore") != 0 && strcmp(def->on_schema_change, "fail") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_schema_change '%s' does not apply to an aggregate pipeline", def->on_schema_change),
				 errdetail("An aggregate's target columns are its group key and aggregates, not the source's columns."),
				 errhint("Use on_schema_change => 'ignore' or 'fail'.")));
}

/*
 * check_target
 *		An existing target: groups leave it (DELETE), and a unique index on
 *		exactly the group key upserts them.
 */
static void
check_target(const PipelineDef *def)
{
	pipeline_require_privilege(def->owner, def->target, ACL_DELETE, "DELETE", "target");
	pipeline_require_key_index(def);
}

/*
 * check_source_column
 *		A source_key or sequence_by column: a column of the source, of a
 *		type with a default btree ordering; returns its type as SQL.
 */
static char *
check_source_column(const PipelineDef *def, const char *column, const char *what)
{
	AttrNumber	att = get_attnum(def->source, column);
	Oid			type;
	int32		typmod;
	Oid			collation;

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("%s column \"%s\" is not a column of the source %s", what, column,
						pipeline_qualified_name(def->source)),
				 errdetail("In an aggregate pipeline, source_key and sequence_by name columns of the source row, not of the target."),
				 errhint("Name a column of the source (names are exact, without SQL quoting).")));
	get_atttypetypmodcoll(def->source, att, &type, &typmod, &collation);
	if (!OidIsValid(GetDefaultOpClass(type, BTREE_AM_OID)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s column \"%s\" has type %s, which cannot be compared", what, column,
						format_type_be(type)),
				 errdetail("Rows are matched by their source_key and ordered by sequence_by, which need a type with a default btree operator class."),
				 errhint("Name a column of a comparable type, such as text, a number or a timestamp.")));
	return pipeline_source_column_type(def, column);
}

/*
 * check_group_filter
 *		group_filter (HAVING) is a condition over the target's columns, with
 *		no aggregate of its own (it names the aggregate columns instead).
 */
static void
check_group_filter(const PipelineDef *def)
{
	ErrorData  *edata;

	pipeline_require_expression(def->group_filter, "group_filter");
	edata = pipeline_try_prepare(def, psprintf("SELECT 1 FROM %s t WHERE (%s)::boolean",
											   pipeline_qualified_name(def->target),
											   def->group_filter),
								 0, NULL);
	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("invalid group_filter: %s", edata->message),
				 errdetail("The expression is: %s", def->group_filter),
				 errhint("group_filter is a condition over the target's columns (its group key and aggregate columns), such as orders >= 2.")));
}

/*
 * check_mapping
 *		Every aggregate column is one maintainable call; source_key and
 *		sequence_by are comparable source columns; group_filter is a condition
 *		over the target.
 */
static void
check_mapping(const PipelineDef *def, const PipelineMapping *map)
{
	ListCell   *lc;

	pipeline_aggregate_calls(def, map);
	foreach(lc, def->source_key)
	{
		check_source_column(def, lfirst(lc), "source_key");
		for (ListCell *other = lnext(def->source_key, lc); other;
			 other = lnext(def->source_key, other))
			if (strcmp(lfirst(other), lfirst(lc)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("source_key names column \"%s\" twice", (char *) lfirst(lc)),
						 errdetail("source_key is a set of columns."),
						 errhint("Name each column once.")));
	}
	if (def->sequence_by)
		check_source_column(def, def->sequence_by, "sequence_by");
	if (def->group_filter && map->target_exists)
		check_group_filter(def);
}

/*
 * target_elements
 *		A new target's primary key: the group key.
 */
static char *
target_elements(const PipelineDef *def, const PipelineMapping *map)
{
	return psprintf(", PRIMARY KEY (%s)", pipeline_quote_list(def->key, NULL));
}

/*
 * group_key_definitions
 *		"k1 type NOT NULL, ..." for the group key, typed as mapped.
 */
static char *
group_key_definitions(const PipelineMapping *map)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		if (cm->is_key)
			appendStringInfo(&buf, "%s%s %s", buf.len ? ", " : "", quote_identifier(cm->column),
							 format_type_with_typemod(cm->typid, cm->typmod));
	}
	return buf.data;
}

/*
 * row_state_elements
 *		The row state's columns and constraints: source_key, group key,
 *		sequence_by and liveness, each aggregate's inputs.
 */
static char *
row_state_elements(const PipelineDef *def, const PipelineMapping *map, List *calls)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, def->source_key)
		appendStringInfo(&buf, PIPELINE_ROW_SOURCE_KEY " %s NOT NULL, ", foreach_current_index(lc),
						 check_source_column(def, lfirst(lc), "source_key"));
	appendStringInfoString(&buf, group_key_definitions(map));
	if (def->sequence_by)
		appendStringInfo(&buf, ", " PIPELINE_ROW_SEQUENCE " %s",
						 check_source_column(def, def->sequence_by, "sequence_by"));
	if (pipeline_aggregate_tracks_liveness(def))
		appendStringInfoString(&buf, ", __pl_live boolean NOT NULL, __pl_deleted_at timestamptz");
	appendStringInfoString(&buf, pipeline_join_state_elements(def));
	foreach(lc, calls)
	{
		AggregateCall *c = lfirst(lc);

		if (c->owns_arg)
			appendStringInfo(&buf, ", %s %s", c->arg_column,
							 format_type_with_typemod(c->argtype, c->argtypmod));
		if (c->owns_filter)
			appendStringInfo(&buf, ", %s boolean NOT NULL", c->filter_column);
	}
	if (def->source_key != NIL)
		appendStringInfo(&buf, ", PRIMARY KEY (%s)",
						 pipeline_quote_list(pipeline_row_keys(def), NULL));
	return buf.data;
}

/*
 * create_state
 *		The group state, and the row state when the pipeline keeps one,
 *		with the index by group a recomputing aggregate reads it by.  Kept
 *		as they are when the definition is altered.
 */
static void
create_state(PipelineDef *def, const PipelineMapping *map)
{
	List	   *calls;
	StringInfoData groups;
	ListCell   *lc,
			   *ls;

	if (OidIsValid(def->group_state))
		return;
	calls = pipeline_aggregate_calls(def, map);
	initStringInfo(&groups);
	appendStringInfo(&groups, "%s, __pl_rows bigint NOT NULL", group_key_definitions(map));
	foreach(lc, calls)
	{
		foreach(ls, pipeline_aggregate_state_columns(lfirst(lc)))
			appendStringInfo(&groups, ", %s", (char *) lfirst(ls));
	}
	appendStringInfo(&groups, ", PRIMARY KEY (%s)", pipeline_quote_list(def->key, NULL));
	def->group_state = pipeline_create_own_table(def, "groups", groups.data,
												 "running state of the groups of aggregate pipeline %s");
	if (!pipeline_aggregate_keeps_rows(def, calls))
		return;
	def->row_state = pipeline_create_own_table(def, "rows", row_state_elements(def, map, calls),
											   "what each source row adds to its group, for aggregate pipeline %s");
	if (pipeline_aggregate_reads_groups(def, calls))
		pipeline_exec_as_owner(def, psprintf("CREATE INDEX ON %s (%s)", pipeline_qualified_name(def->row_state),
											 pipeline_quote_list(def->key, NULL)));
	pipeline_index_join_state(def);
	/* the deletes it remembers, found by forget_deletes */
	if (pipeline_aggregate_remembers_deletes(def))
		pipeline_exec_as_owner(def, psprintf("CREATE INDEX ON %s (__pl_deleted_at) WHERE NOT __pl_live",
											 pipeline_qualified_name(def->row_state)));
}

const PipelineStrategy pipeline_aggregate_strategy = {
	.name = "aggregate",
	.keyed = true,
	.groups = true,
	.counts_stale = true,
	.check_options = check_options,
	.check_target = check_target,
	.check_mapping = check_mapping,
	.target_elements = target_elements,
	.create_state = create_state,
	.row_columns = pipeline_aggregate_row_columns,
	.batch_sql = pipeline_aggregate_sql,
};
