/*-------------------------------------------------------------------------
 *
 * define.c
 *	  create_pipeline, alter_pipeline, drop_pipeline, pause, resume,
 *	  prepare_source and discard_quarantine: everything that changes a
 *	  definition, with the validation that keeps bad definitions out.
 *
 * A definition is validated as a whole, as its owner would run it: every
 * expression is parsed against the source, the target's key index and
 * privileges are checked, and the batch statement itself is prepared, so
 * that what is accepted here runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/varlena.h"

#include "model.h"
#include "archive/archive.h"
#include "base/base.h"
#include "batch/batch.h"
#include "cursor/cursor.h"
#include "definition/definition.h"
#include "lineage/lineage.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "shared_memory/shared_memory.h"
#include "sources/sources.h"
#include "strategy.h"

PG_FUNCTION_INFO_V1(pipeline_create_pipeline);
PG_FUNCTION_INFO_V1(pipeline_alter_pipeline);
PG_FUNCTION_INFO_V1(pipeline_drop_pipeline);
PG_FUNCTION_INFO_V1(pipeline_pause);
PG_FUNCTION_INFO_V1(pipeline_resume);
PG_FUNCTION_INFO_V1(pipeline_prepare_source);
PG_FUNCTION_INFO_V1(pipeline_add_provenance_column);
PG_FUNCTION_INFO_V1(pipeline_discard_quarantine);

/* ---------------------------------------------------------------- helpers */

/*
 * empty_to_null
 *		alter_pipeline clears an optional expression with ''.
 */
static char *
empty_to_null(char *s)
{
	return (s != NULL && s[0] == '\0') ? NULL : s;
}

/* ------------------------------------------------------ probing expressions */

/* What probe() runs in a subtransaction. */
typedef struct ProbeCall
{
	const PipelineDef *def;
	const char *sql;
	Oid			typid;
	int32		typmod;
	bool		aggregates;		/* the expression must aggregate (and may) */
	bool		has_aggs;		/* an aggregate of the row's own level */
	bool		has_window_funcs;
	bool		has_srfs;		/* a set-returning function outside a subquery */
} ProbeCall;

/*
 * probe_query
 *		Prepares and runs a probe's query as the owner; reads the result
 *		type and what the analyzed query holds.
 */
static void
probe_query(void *arg)
{
	ProbeCall  *call = arg;
	PipelineUserContext ctx;
	SPIPlanPtr	plan;
	Query	   *query;
	int			ret;

	pipeline_become_owner(call->def, &ctx);
	plan = SPI_prepare(call->sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	query = linitial_node(Query,
						  ((CachedPlanSource *) linitial(SPI_plan_get_plan_sources(plan)))->query_list);
	call->has_aggs = query->hasAggs;
	call->has_window_funcs = query->hasWindowFuncs;
	call->has_srfs = query->hasTargetSRFs;
	ret = SPI_execute_plan(plan, NULL, NULL, true, 0);
	if (ret < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	pipeline_restore_user(&ctx);
	call->typid = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	call->typmod = TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypmod;
	SPI_freeplan(plan);
}

/*
 * refuse_row_changing
 *		Refuses an expression that would not map one staged row to one
 *		value of its own: an aggregate (over the batch), a window function
 *		(its value would depend on which rows share a batch) or a
 *		set-returning function (several rows).  The batch statement would
 *		fail on the first, and merge nonsense with the others.
 */
static void
refuse_row_changing(const ProbeCall *call, const char *expr, const char *what)
{
	if (call->aggregates && !call->has_aggs)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("%s is neither in the key nor an aggregate", what),
				 errdetail("Each target row of an aggregate pipeline is a group: its columns are the group key and aggregates over the group's rows; the expression is: %s",
						   expr),
				 errhint("Add the column to key, or aggregate it, as in max(%s).", expr)));
	if (call->has_aggs && !call->aggregates)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("%s contains an aggregate function", what),
				 errdetail("A pipeline maps each staged row to one target row, so an expression sees one row: %s", expr),
				 errhint("To keep groups of rows in the target, use strategy => 'aggregate' with the group columns as key. An aggregate over another table fits in a subquery: (SELECT max(x) FROM t).")));
	if (call->has_window_funcs)
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("%s contains a window function", what),
				 errdetail("A window over the staged rows would see the rows of one batch, which depend on when the pipeline runs: %s", expr),
				 errhint("Compute it over the target, in a view or a query on it.")));
	if (call->has_srfs)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s contains a set-returning function", what),
				 errdetail("A pipeline maps each staged row to one target row, and a set-returning function makes several rows of one: %s", expr),
				 errhint("Reduce its rows to one value in a subquery, such as (SELECT max(x) FROM generate_series(1, n) x), or stage one row per value.")));
}

/*
 * probe_as
 *		Checks that expr is one expression, then parses and plans
 *		"SELECT (<expr>) FROM <source> s LIMIT 0" as the owner and returns
 *		the expression's type.  A failure becomes an error that
 *		names the part of the definition at fault, and so does an
 *		expression that does not keep to its row (refuse_row_changing), or,
 *		when it must 'aggregate', one that does not.
 */
static void
probe_as(const PipelineDef *def, const char *expr, const char *what, bool aggregates,
		 Oid *typid, int32 *typmod)
{
	ProbeCall	call = {def, NULL, InvalidOid, -1, aggregates, false, false, false};
	ErrorData  *edata;

	pipeline_require_expression(expr, what);
	call.sql = psprintf("SELECT (%s) FROM %s LIMIT 0", expr,
						pipeline_source_from(def, pipeline_qualified_name(def->source)));
	edata = pipeline_try(probe_query, &call);
	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("invalid %s: %s", what, edata->message),
				 errdetail("The expression is: %s", expr),
				 errhint("Expressions are SQL over the columns of the source %s%s, run as the pipeline's owner.",
						 pipeline_qualified_name(def->source),
						 def->joins ? " and of its joins' dimensions, named by their aliases" : "")));
	refuse_row_changing(&call, expr, what);
	*typid = call.typid;
	*typmod = call.typmod;
}

/*
 * probe
 *		probe_as, for an expression over one source row.
 */
static void
probe(const PipelineDef *def, const char *expr, const char *what, Oid *typid, int32 *typmod)
{
	probe_as(def, expr, what, false, typid, typmod);
}

/*
 * probe_boolean
 *		Probes an optional expression that must be boolean.
 */
static void
probe_boolean(const PipelineDef *def, const char *expr, const char *what)
{
	Oid			typid;
	int32		typmod;

	if (expr == NULL)
		return;
	probe(def, expr, what, &typid, &typmod);
	if (typid != BOOLOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be a boolean expression", what),
				 errdetail("The expression \"%s\" is of type %s.", expr, format_type_be(typid)),
				 errhint("Write a condition over the source's columns, such as status <> 'test'.")));
}

/*
 * check_mapped_columns_exist
 *		Every column the columns object maps to an expression must be a
 *		column of the target (a new target is made of them).
 */
static void
check_mapped_columns_exist(const PipelineDef *def, PipelineMapping *map)
{
	JsonbIterator *it = JsonbIteratorInit(&def->columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *column = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			column = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && v.type != jbvNull &&
				 pipeline_mapping_column(map, column) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("columns maps \"%s\", which is not a column of target %s",
							column, pipeline_qualified_name(def->target)),
					 errdetail("The target's mapped columns are: %s.", pipeline_mapping_column_list(map)),
					 errhint("Add the column to the target with ALTER TABLE, or remove it from the mapping.")));
	}
}

/*
 * check_column_type
 *		Refuses a mapped column whose type no table column can have (a
 *		pseudo-type such as record, from ROW(...)), and a key column of a
 *		new target whose type has no equality and ordering for its unique
 *		index (json, point): both would fail only when the target or a
 *		batch is made.  The sequence_by column's type is checked by the
 *		caller.
 */
static void
check_column_type(const PipelineDef *def, const PipelineMapping *map, const ColumnMap *cm)
{
	bool		is_seq = def->sequence_by && strcmp(def->sequence_by, cm->column) == 0;

	if (get_typtype(cm->typid) == TYPTYPE_PSEUDO && !is_seq)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("mapping for column \"%s\" has pseudo-type %s", cm->column,
						format_type_be(cm->typid)),
				 errdetail("No table column can hold a value of type %s; the expression is: %s",
						   format_type_be(cm->typid), cm->expr),
				 errhint("Cast the expression to a type a column can have, such as a composite type (ROW(a, b)::my_type) or jsonb (to_jsonb(...)).")));
	if (cm->is_key && !map->target_exists && def->strategy->keyed &&
		!OidIsValid(GetDefaultOpClass(cm->typid, BTREE_AM_OID)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("key column \"%s\" has type %s, which has no equality for a unique index",
						cm->column, format_type_be(cm->typid)),
				 errdetail("Rows are matched to target rows by their key, which needs a type with a default btree operator class."),
				 errhint("Map the column to a comparable type, such as jsonb or text (columns => '{\"%s\": \"%s::jsonb\"}').",
						 cm->column, cm->column)));
}

/*
 * refuse_unordered
 *		Errors when a sequence_by value's type cannot be ordered.
 */
static void
refuse_unordered(const char *what, Oid typid, const char *hint)
{
	if (get_typtype(typid) != TYPTYPE_PSEUDO && OidIsValid(GetDefaultOpClass(typid, BTREE_AM_OID)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_FUNCTION),
			 errmsg("sequence_by %s has type %s, which cannot be ordered", what, format_type_be(typid)),
			 get_typtype(typid) == TYPTYPE_PSEUDO ?
			 errdetail("Latest-wins needs a type with a default btree ordering that a table column can have; %s is a pseudo-type.",
					   format_type_be(typid)) :
			 errdetail("Latest-wins needs a type with a default btree ordering."),
			 errhint("%s", hint)));
}

/*
 * probe_sequence_parts
 *		A kept sequence_by: each of its expressions is valid over the source
 *		row and of an ordered type.
 */
static void
probe_sequence_parts(const PipelineDef *def)
{
	ListCell   *lc;

	foreach(lc, pipeline_sequence_parts(def))
	{
		Oid			typid;
		int32		typmod;
		char	   *what = psprintf("expression \"%s\"", (char *) lfirst(lc));

		probe(def, lfirst(lc), psprintf("sequence_by %s", what), &typid, &typmod);
		refuse_unordered(what, typid,
						 "Use a number, a timestamp or another ordered type (cast the expression), or list several separated by commas.");
	}
}

/*
 * probe_mapping
 *		Types every mapped column and checks key and sequence_by.
 */
static void
probe_mapping(const PipelineDef *def, PipelineMapping *map)
{
	ListCell   *lc;

	check_mapped_columns_exist(def, map);
	if (map->columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\" maps no columns", def->name),
				 errdetail("No target column is fed by the source or by the columns mapping."),
				 errhint("Map at least one column, or use a target whose columns share names with the source.")));
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		probe_as(def, cm->expr, psprintf("mapping for column \"%s\"", cm->column),
				 cm->aggregates, &cm->typid, &cm->typmod);
		if (cm->typid == UNKNOWNOID)
			cm->typid = TEXTOID;
		check_column_type(def, map, cm);
	}
	foreach(lc, def->key)
	{
		if (pipeline_mapping_column(map, lfirst(lc)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("key column \"%s\" is not a column of the pipeline's target",
							(char *) lfirst(lc)),
					 errdetail("The target's mapped columns are: %s.", pipeline_mapping_column_list(map)),
					 errhint("Name one of them (names are exact, without SQL quoting), or map it with columns => '{\"%s\": \"...\"}'.",
							 (char *) lfirst(lc))));
	}
	/* an aggregate's sequence_by is its strategy's to check */
	if (def->sequence_kept)
		probe_sequence_parts(def);
	else if (def->sequence_by && !def->strategy->groups)
	{
		ColumnMap  *cm = pipeline_mapping_column(map, def->sequence_by);

		if (cm == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("sequence_by column \"%s\" is not a column of the pipeline's target", def->sequence_by),
					 errdetail("The target keeps each row's version in that column to discard stale events."),
					 errhint("Name a column of the source (or of the columns mapping) that orders events, such as updated_at.")));
		refuse_unordered(psprintf("column \"%s\"", def->sequence_by), cm->typid,
						 psprintf("Use a timestamp, a number or another ordered type, or map the column to one (columns => '{\"%s\": \"...::timestamptz\"}').",
								  def->sequence_by));
	}
	probe_boolean(def, def->delete_when, "delete_when");
	probe_boolean(def, def->filter, "filter");
	if (def->strategy->check_mapping)
		def->strategy->check_mapping(def, map);
}

/* ------------------------------------------------------------ the target */

/*
 * check_existing_target
 *		An existing target must be a table the owner may insert into; what
 *		else it needs (privileges, indexes) its strategy says.
 */
static void
check_existing_target(const PipelineDef *def)
{
	pipeline_require_table(def->target, "target");
	pipeline_require_privilege(def->owner, def->target, ACL_INSERT, "INSERT", "target");
	pipeline_refuse_staging_target(def->target, def->strategy);
	/* matched by key: upserted, so updated and read */
	if (def->strategy->keyed)
	{
		pipeline_require_privilege(def->owner, def->target, ACL_UPDATE, "UPDATE", "target");
		pipeline_require_privilege(def->owner, def->target, ACL_SELECT, "SELECT", "target");
	}
	if (def->strategy->check_target)
		def->strategy->check_target(def);
}

/*
 * column_definitions
 *		"a type, b type" for the mapped columns (all, or only the key and
 *		sequence_by columns when 'key_only').
 */
static char *
column_definitions(const PipelineDef *def, PipelineMapping *map, bool key_only)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		bool		is_seq = def->sequence_by && strcmp(def->sequence_by, cm->column) == 0;

		if (key_only && !cm->is_key && !is_seq)
			continue;
		appendStringInfo(&buf, "%s%s %s%s", buf.len ? ", " : "", quote_identifier(cm->column),
						 format_type_with_typemod(cm->typid, cm->typmod),
						 key_only ? " NOT NULL" : "");
	}
	return buf.data;
}

/*
 * create_target
 *		Creates a missing target from the mapping, with what its strategy
 *		adds (a primary key, version columns and indexes), as the
 *		pipeline's owner.
 */
static Oid
create_target(const PipelineDef *def, PipelineMapping *map, RangeVar *rv)
{
	char	   *name = quote_qualified_identifier(rv->schemaname, rv->relname);
	const PipelineStrategy *strategy = def->strategy;
	ListCell   *lc;

	pipeline_exec_as_owner(def, psprintf("CREATE TABLE %s (%s%s)", name,
										 column_definitions(def, map, false),
										 strategy->target_elements ? strategy->target_elements(def, map) : ""));
	if (strategy->target_extras)
	{
		foreach(lc, strategy->target_extras(def, name))
			pipeline_exec_as_owner(def, lfirst(lc));
	}
	CommandCounterIncrement();
	return RangeVarGetRelid(rv, NoLock, false);
}

/*
 * create_tombstones
 *		Creates the table that remembers deletes next to the target: key,
 *		sequence_by value and when.  Needed when deletes meet sequence_by.
 *		merge remembers the latest delete of a key; a versioned strategy
 *		(scd2) every delete, so that a late event before one ends there
 *		(several per key).
 */
static Oid
create_tombstones(const PipelineDef *def, PipelineMapping *map)
{
	char	   *pk = pipeline_quote_list(def->key, NULL);

	if (def->strategy->versioned)
		pk = psprintf("%s, %s", pk, quote_identifier(def->sequence_by));
	return pipeline_create_own_table(def, "tombstones",
									 psprintf("%s, deleted_at timestamptz NOT NULL DEFAULT now(), "
											  "PRIMARY KEY (%s)",
											  column_definitions(def, map, true), pk),
									 "deletes applied by pipeline %s, kept for its tombstone_retention so that older events cannot bring rows back");
}

/*
 * drop_own_tables
 *		Drops the tables a pipeline keeps next to its target: tombstones,
 *		an aggregate's state.
 */
static void
drop_own_tables(const PipelineDef *def)
{
	Oid			tables[] = {def->tombstones, def->group_state, def->row_state};

	for (int i = 0; i < lengthof(tables); i++)
		pipeline_drop_own_table(tables[i]);
}

/*
 * check_batch_statement
 *		Prepares the batch statement as the owner so that a definition that
 *		cannot run (say, an expression whose type does not fit the target
 *		column, or a check over a column the mapping no longer has) is
 *		refused now rather than at the first run.
 */
static void
check_batch_statement(const PipelineDef *def, PipelineMapping *map)
{
	ErrorData  *edata = pipeline_try_definition_statement(def, map);

	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("pipeline \"%s\" cannot write its target: %s", def->name, edata->message),
				 edata->detail ? errdetail("%s", edata->detail)
				 : errdetail("The statement that merges a batch into %s does not compile.",
							 pipeline_qualified_name(def->target)),
				 errhint("Check that each mapped expression's type fits its target column, and that the pipeline's data quality checks name mapped columns.")));
}

/* ------------------------------------------------------------ the source */

/* ------------------------------------------------------- option checking */

/*
 * normalized_schedule
 *		The schedule as it is stored, after checking it (schedule_spec.c); a
 *		schedule other than 'manual' needs the background workers, which
 *		exist only with the library in shared_preload_libraries.
 */
static char *
normalized_schedule(const char *text)
{
	PipelineSchedule schedule;

	pipeline_schedule_parse(text, &schedule);
	if (schedule.kind != SCHEDULE_MANUAL && pipeline_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schedule \"%s\" needs the pipeline background workers", text),
				 errdetail("The pipeline library is not in shared_preload_libraries, so no worker runs scheduled pipelines."),
				 errhint("Add pipeline to shared_preload_libraries and restart the server, or use schedule => 'manual' and CALL pipeline.run yourself.")));
	return pstrdup(schedule.text);
}

/*
 * pipeline_statement_timeout_arg
 *		A statement_timeout argument as interval text; NULL for none (SQL
 *		NULL or zero).  Errors when negative.
 */
char *
pipeline_statement_timeout_arg(FunctionCallInfo fcinfo, int arg)
{
	Interval   *span;

	if (PG_ARGISNULL(arg))
		return NULL;
	span = PG_GETARG_INTERVAL_P(arg);
	if (span->month == 0 && span->day == 0 && span->time == 0)
		return NULL;
	if (span->month < 0 || span->day < 0 || span->time < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("statement_timeout must not be negative"),
				 errdetail("statement_timeout was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out, PointerGetDatum(span)))),
				 errhint("Pass how long one statement may take, such as '5 minutes', or 0 for no limit.")));
	return DatumGetCString(DirectFunctionCall1(interval_out, PointerGetDatum(span)));
}

/*
 * check_options
 *		The definition's scalar options: strategy, on_schema_change,
 *		batch_size, columns, key, and their combinations.
 */
static void
check_options(const PipelineDef *def)
{
	static const char *const schema_modes[] = {"ignore", "fail", "append_new_columns",
	"sync_all_columns", NULL};
	const PipelineStrategy *strategy = def->strategy;

	pipeline_check_name(def->name, "pipeline");
	pipeline_check_choice("on_schema_change", def->on_schema_change, schema_modes);
	if (def->batch_size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be positive"),
				 errdetail("batch_size was %lld.", (long long) def->batch_size),
				 errhint("The default, 100000, suits most pipelines.")));
	if (!JB_ROOT_IS_OBJECT(def->columns) || JB_ROOT_IS_SCALAR(def->columns))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("columns must be a JSON object"),
				 errdetail("columns maps target column names to SQL expressions."),
				 errhint("Write for example '{\"amount\": \"amount::numeric(12,2)\"}'.")));

	if (strategy->keyed && def->key == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s strategy needs a key", strategy->name),
				 errdetail("Rows are matched to target rows by their key."),
				 errhint("Pass key => ARRAY['id'], or use strategy => 'append'.")));
	if (!strategy->groups && (def->source_key != NIL || def->group_filter))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s strategy takes no %s", strategy->name,
						def->group_filter ? "group_filter" : "source_key"),
				 errdetail("source_key and group_filter belong to pipelines that aggregate their source's rows into groups."),
				 errhint("Use strategy => 'aggregate', or leave them out.")));
	if (!strategy->keyed && (def->sequence_by || def->delete_when))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s strategy takes no %s", strategy->name,
						def->sequence_by ? "sequence_by" : "delete_when"),
				 errdetail("Append inserts every staged row; versions and deletes need a key to apply to."),
				 errhint("Use strategy => 'merge' with a key.")));
	if (!strategy->versioned && def->track_history != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s strategy takes no track_history", strategy->name),
				 errdetail("track_history names the columns whose changes open a new version, which only the scd2 strategy keeps."),
				 errhint("Use strategy => 'scd2', or leave track_history out.")));
	if (strategy->check_options)
		strategy->check_options(def);
}

/* ------------------------------------------------------------ validation */

/*
 * leave_out_columns
 *		except_columns: target columns the pipeline does not write, added to
 *		the mapping as {"column": null}.  A key column, or one the mapping
 *		already names, cannot be left out.
 */
static void
leave_out_columns(PipelineDef *def, List *columns)
{
	StringInfoData buf;
	ListCell   *lc;
	char	   *expr;

	initStringInfo(&buf);
	foreach(lc, columns)
	{
		char	   *column = lfirst(lc);

		if (get_attnum(def->source, column) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("except_columns column \"%s\" is not a column of source %s", column,
							pipeline_qualified_name(def->source)),
					 errdetail("except_columns names source columns the pipeline does not copy to its target."),
					 errhint("Name columns of the source (names are exact, without SQL quoting).")));
		if (pipeline_list_has_string(def->key, column) || pipeline_mapping_lookup(def->columns, column, &expr))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("except_columns cannot leave out column \"%s\"", column),
					 errdetail(pipeline_list_has_string(def->key, column) ? "It is part of the key." :
							   "The columns mapping names it too."),
					 errhint("List in except_columns only columns the pipeline would otherwise copy from the source.")));
		appendStringInfo(&buf, "%s", buf.len ? ", " : "{");
		escape_json(&buf, column);
		appendStringInfoString(&buf, ": null");
	}
	if (buf.len == 0)
		return;
	appendStringInfoChar(&buf, '}');
	def->columns = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(def->columns),
													  DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data))));
}

/*
 * check_ignore_null_updates
 *		ignore_null_updates names "*" or mapped columns outside the key, of
 *		a merge: an update of a stored row keeps a column's value where the
 *		event has NULL.
 */
static void
check_ignore_null_updates(const PipelineDef *def, const PipelineMapping *map)
{
	ListCell   *lc;

	if (def->ignore_null_updates == NIL)
		return;
	if (!def->strategy->keyed || def->strategy->groups || def->strategy->versioned)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the %s strategy takes no ignore_null_updates", def->strategy->name),
				 errdetail("ignore_null_updates keeps a stored row's value where an update has NULL; only a merge updates stored rows in place."),
				 errhint("Use strategy => 'merge', or map the column with coalesce() over the source.")));
	foreach(lc, def->ignore_null_updates)
	{
		char	   *column = lfirst(lc);
		ColumnMap  *cm = pipeline_mapping_column(map, column);

		if (strcmp(column, "*") == 0)
			continue;
		if (cm == NULL || cm->is_key)
			ereport(ERROR,
					(errcode(cm ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_UNDEFINED_COLUMN),
					 errmsg("ignore_null_updates column \"%s\" is not a mapped column outside the key", column),
					 errdetail("The target's mapped columns are: %s.", pipeline_mapping_column_list(map)),
					 errhint("Name mapped columns other than the key, or '*' for all of them.")));
	}
}

/*
 * keeps_sequence
 *		Whether a new pipeline's sequence_by is kept in its row state rather
 *		than in the target: a merge's sequence_by that names no target
 *		column is one or more expressions over the source row.
 */
static bool
keeps_sequence(const PipelineDef *def, const PipelineMapping *map)
{
	return def->sequence_by != NULL && def->strategy->keyed && !def->strategy->groups &&
		!def->strategy->versioned && pipeline_mapping_column(map, def->sequence_by) == NULL;
}

/*
 * validate_and_build
 *		Checks a whole definition as its owner would run it; creates the
 *		target (when 'target_rv' is given and missing) and the tombstone
 *		table.  On return def->target and def->tombstones are set.
 */
static void
validate_and_build(PipelineDef *def, RangeVar *target_rv)
{
	PipelineMapping *map;

	check_options(def);
	pipeline_require_table(def->source, "source");
	pipeline_require_privilege(def->owner, def->source, ACL_SELECT, "SELECT", "source");
	pipeline_check_sharded_kind(def);
	if (OidIsValid(def->target))
		check_existing_target(def);

	map = pipeline_build_mapping(def);
	/* decided once: whether the target or the row state keeps the sequence */
	if (target_rv)
		def->sequence_kept = keeps_sequence(def, map);
	probe_mapping(def, map);
	if (!OidIsValid(def->target))
		def->target = create_target(def, map, target_rv);

	map = pipeline_build_mapping(def);
	probe_mapping(def, map);
	/* (a merge with a row state remembers its deletes there) */
	if (def->strategy->keyed && !def->strategy->groups && def->sequence_by && def->delete_when &&
		!pipeline_keeps_source_rows(def))
		def->tombstones = create_tombstones(def, map);
	else
		def->tombstones = InvalidOid;
	check_ignore_null_updates(def, map);
	pipeline_check_on_truncate(def);
	pipeline_check_sharded(def, map);
	pipeline_check_citus_target(def);
	if (def->strategy->create_state)
		def->strategy->create_state(def, map);
	pipeline_checks_verify_columns(def, map);
	check_batch_statement(def, map);
}

/*
 * parse_target
 *		The target argument ('schema.table', quoted as SQL) as a RangeVar.
 */
static RangeVar *
parse_target(const char *target)
{
	List	   *names;

	if (target == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null"),
				 errdetail("A pipeline writes to one target table."),
				 errhint("Pass target => 'schema.table' (it is created when missing).")));
	names = pipeline_qualified_name_list(target);
	return makeRangeVarFromNameList(names);
}

/*
 * change_log_source_key
 *		What identifies a row of a table read through its change log, for an
 *		aggregate that must retract the row's earlier version: the table's
 *		primary key.
 */
static List *
change_log_source_key(Oid relation)
{
	List	   *key = pipeline_primary_key_columns(relation);

	if (key == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("source_key is needed: %s has no primary key", pipeline_qualified_name(relation)),
				 errdetail("An aggregate over a table whose rows change retracts a row's earlier version by its key."),
				 errhint("Pass source_key => ARRAY[...] naming the columns that identify one of its rows.")));
	return key;
}

/*
 * resolve_source
 *		A source that is another pipeline's target is read through its change
 *		log (change_log.c): the pipeline reads the log instead, and a merge
 *		or scd2 applies the log's deletes unless told otherwise.  Any other source
 *		gets its _xid and _seq and the triggers that keep it append-only
 *		(staging.c).  Refuses a pipeline that would close a cycle.
 */
static void
resolve_source(PipelineDef *def)
{
	Oid			log;

	pipeline_require_table(def->source, "source");
	if (def->target == def->source)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source and target are the same table %s", pipeline_qualified_name(def->source)),
				 errdetail("A pipeline reads its source and writes its target; one table cannot be both."),
				 errhint("Write to another table.")));
	pipeline_require_privilege(def->owner, def->source, ACL_SELECT, "SELECT", "source");
	pipeline_require_whole_source(def->source, def->owner);
	pipeline_refuse_cycle(def->source, def->target);
	log = pipeline_join_change_log(def->source, def->owner);
	if (!OidIsValid(log))
	{
		pipeline_add_change_columns(def->source);
		pipeline_guard_staging_table(def->source);
		return;
	}
	if (def->strategy->groups && def->source_key == NIL)
		def->source_key = change_log_source_key(def->source);
	def->source = log;
	def->reads_change_log = true;
	if (def->strategy->keyed && def->delete_when == NULL)
		def->delete_when = "_op = 'delete'";
}

/*
 * refuse_duplicate
 *		Errors when a pipeline of that name exists, or a step (steps run
 *		after pipelines and steps named alike).
 */
static void
refuse_duplicate(const char *name)
{
	if (pipeline_load(name, true, DEF_LOCK_NONE) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("pipeline \"%s\" already exists", name),
				 errdetail("Pipeline names are unique within a database."),
				 errhint("Choose another name, or change the existing pipeline with pipeline.alter_pipeline.")));
	if (pipeline_step_load(name, true, false) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("a step is named \"%s\"", name),
				 errdetail("Steps run after pipelines and steps named alike: one name cannot be both."),
				 errhint("Choose another name for the pipeline.")));
}

/* -------------------------------------------------------- SQL functions */

/*
 * pipeline_create_pipeline
 *		SQL: pipeline.create_pipeline(name, source, target, key, strategy,
 *		sequence_by, delete_when, columns, filter, on_schema_change,
 *		batch_size, schedule, tombstone_retention, statement_timeout,
 *		track_history, source_key, group_filter, joins, format,
 *		ignore_null_updates, except_columns, hard_deletes, max_delete_share,
 *		on_truncate, extract_id) -> id.
 */
Datum
pipeline_create_pipeline(PG_FUNCTION_ARGS)
{
	PipelineDef *def = palloc0(sizeof(PipelineDef));
	RangeVar   *target_rv;
	Datum		seeded = (Datum) 0;

	pipeline_check_version(ERROR);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source must not be null"),
				 errdetail("A pipeline reads one staging table."),
				 errhint("Pass source => 'schema.table'.")));
	def->name = pipeline_text_arg(fcinfo, 0);
	def->owner = GetUserId();
	def->source = PG_GETARG_OID(1);
	target_rv = parse_target(pipeline_text_arg(fcinfo, 2));
	def->key = PG_ARGISNULL(3) ? NIL : pipeline_text_array_to_list(PG_GETARG_DATUM(3), "key");
	def->strategy = pipeline_find_strategy(PG_ARGISNULL(4) ? "merge" : pipeline_text_arg(fcinfo, 4));
	def->sequence_by = empty_to_null(pipeline_text_arg(fcinfo, 5));
	def->delete_when = empty_to_null(pipeline_text_arg(fcinfo, 6));
	def->columns = PG_ARGISNULL(7) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
		: PG_GETARG_JSONB_P(7);
	def->filter = empty_to_null(pipeline_text_arg(fcinfo, 8));
	def->on_schema_change = PG_ARGISNULL(9) ? "ignore" : pipeline_text_arg(fcinfo, 9);
	def->batch_size = PG_ARGISNULL(10) ? 100000 : PG_GETARG_INT64(10);
	def->schedule = normalized_schedule(PG_ARGISNULL(11) ? "manual" : pipeline_text_arg(fcinfo, 11));
	def->tombstone_retention = PG_ARGISNULL(12) ? "7 days"
		: DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(12)));
	def->statement_timeout = pipeline_statement_timeout_arg(fcinfo, 13);
	if (!PG_ARGISNULL(14))
		def->track_history = pipeline_text_array_to_list(PG_GETARG_DATUM(14), "track_history");
	if (!PG_ARGISNULL(15))
		def->source_key = pipeline_text_array_to_list(PG_GETARG_DATUM(15), "source_key");
	def->group_filter = empty_to_null(pipeline_text_arg(fcinfo, 16));
	if (!PG_ARGISNULL(17))
		def->joins = pipeline_read_joins(PG_GETARG_JSONB_P(17));
	def->format = empty_to_null(pipeline_text_arg(fcinfo, 18));
	if (!PG_ARGISNULL(19))
		def->ignore_null_updates = pipeline_text_array_to_list(PG_GETARG_DATUM(19), "ignore_null_updates");
	if (!PG_ARGISNULL(20))
		leave_out_columns(def, pipeline_text_array_to_list(PG_GETARG_DATUM(20), "except_columns"));
	def->hard_deletes = empty_to_null(pipeline_text_arg(fcinfo, 21));

	/*
	 * 0: not given (source_format.c sets the default); given, it must be
	 * above 0
	 */
	def->max_delete_share = PG_ARGISNULL(22) ? 0 : PG_GETARG_FLOAT4(22);
	if (!PG_ARGISNULL(22) && !(def->max_delete_share > 0))
		def->max_delete_share = -1;
	def->on_truncate = empty_to_null(pipeline_text_arg(fcinfo, 23));
	def->extract_id = empty_to_null(pipeline_text_arg(fcinfo, 24));
	def->search_path = pstrdup(namespace_search_path);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check_options(def);
	refuse_duplicate(def->name);
	def->target = RangeVarGetRelid(target_rv, NoLock, true);
	if (!OidIsValid(def->target) && target_rv->schemaname &&
		!OidIsValid(get_namespace_oid(target_rv->schemaname, true)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"%s\" of target %s does not exist", target_rv->schemaname,
						quote_qualified_identifier(target_rv->schemaname, target_rv->relname)),
				 errdetail("A missing target is created, but not its schema."),
				 errhint("CREATE SCHEMA %s; then create the pipeline again.",
						 quote_identifier(target_rv->schemaname))));
	/* a pass in progress ends first; later ones account for this reader */
	pipeline_archive_new_reader(def->source);
	resolve_source(def);
	pipeline_refuse_citus_source(def->source);
	def->sharded = pipeline_citus_distribution_column(def->source) != NULL;
	pipeline_check_format(def);
	pipeline_check_joins(def);
	def->change_log = pipeline_published_change_log(def->target, def->owner);
	def->source_columns = pipeline_source_columns_json(def->source);
	validate_and_build(def, target_rv);
	pipeline_refuse_deleting_dimension(def);
	def->id = pipeline_save_definition(def, true);
	pipeline_save_joins(def);
	pipeline_save_lineage(def);
	if (def->reads_change_log)
		seeded = pipeline_seed_change_log(def);
	pipeline_create_cursor(def->id, seeded, def->reads_change_log);
	/* the dimensions as they are now are what its first run joins */
	if (def->joins != NIL)
		pipeline_dimensions_move(def->id, pipeline_run_snapshot());
	pipeline_schedules_changed();
	SPI_finish();
	PG_RETURN_INT64(def->id);
}

/*
 * refuse_reshaping
 *		An aggregate pipeline's state (its groups and rows so far), and the
 *		source rows a pipeline with joins keeps, hold the rows it consumed
 *		as its key, mapping, filter and deletes shaped them: changing any
 *		would leave the target wrong.  The arguments are alter_pipeline's.
 */
static void
refuse_reshaping(FunctionCallInfo fcinfo, const PipelineDef *def)
{
	static const char *const shaping[] = {NULL, "key", "sequence_by", "delete_when", "columns",
	"filter"};

	for (int i = 1; i < lengthof(shaping); i++)
		if (!PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg(def->strategy->groups ? "cannot change %s of aggregate pipeline \"%s\"" :
							def->joins ? "cannot change %s of pipeline \"%s\", which has joins" :
							"cannot change %s of pipeline \"%s\", which keeps its sequence_by in its row state",
							shaping[i], def->name),
					 errdetail("The %s were built from the rows it consumed with the current %s.",
							   def->strategy->groups ? "groups it keeps" :
							   def->joins ? "source rows it keeps for its joins" : "sequences it keeps",
							   shaping[i]),
					 errhint("Define a new pipeline with the new %s (replay() can feed it the consumed rows), then drop this one.",
							 shaping[i])));
}

/*
 * pipeline_alter_pipeline
 *		SQL: pipeline.alter_pipeline(name, key, sequence_by, delete_when,
 *		columns, filter, on_schema_change, batch_size, schedule,
 *		tombstone_retention, new_name, statement_timeout, track_history).
 *		NULL keeps a setting (an empty track_history restores the default).
 *		Waits for a running batch; the run's next batch uses the new
 *		definition.  The source's current columns become the accepted ones.
 */
Datum
pipeline_alter_pipeline(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	PipelineDef *old;
	char	   *new_name = pipeline_text_arg(fcinfo, 10);

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = pipeline_load(pipeline_text_arg(fcinfo, 0), false, DEF_LOCK_UPDATE);
	pipeline_check_manage(def);
	old = palloc(sizeof(PipelineDef));
	memcpy(old, def, sizeof(PipelineDef));
	if (def->strategy->groups || pipeline_keeps_source_rows(def))
		refuse_reshaping(fcinfo, def);

	if (!PG_ARGISNULL(1))
		def->key = pipeline_text_array_to_list(PG_GETARG_DATUM(1), "key");
	if (!PG_ARGISNULL(2))
		def->sequence_by = empty_to_null(pipeline_text_arg(fcinfo, 2));
	if (!PG_ARGISNULL(3))
		def->delete_when = empty_to_null(pipeline_text_arg(fcinfo, 3));
	if (!PG_ARGISNULL(4))
		def->columns = PG_GETARG_JSONB_P(4);
	if (!PG_ARGISNULL(5))
		def->filter = empty_to_null(pipeline_text_arg(fcinfo, 5));
	if (!PG_ARGISNULL(6))
		def->on_schema_change = pipeline_text_arg(fcinfo, 6);
	if (!PG_ARGISNULL(7))
		def->batch_size = PG_GETARG_INT64(7);
	if (!PG_ARGISNULL(8))
		def->schedule = normalized_schedule(pipeline_text_arg(fcinfo, 8));
	if (!PG_ARGISNULL(9))
		def->tombstone_retention = DatumGetCString(DirectFunctionCall1(interval_out,
																	   PG_GETARG_DATUM(9)));
	if (!PG_ARGISNULL(11))
		def->statement_timeout = pipeline_statement_timeout_arg(fcinfo, 11);
	if (!PG_ARGISNULL(12))
		def->track_history = pipeline_text_array_to_list(PG_GETARG_DATUM(12), "track_history");
	if (new_name != NULL && strcmp(new_name, def->name) != 0)
	{
		def->name = new_name;
		check_options(def);
		refuse_duplicate(new_name);
	}
	def->search_path = pstrdup(namespace_search_path);
	def->source_columns = pipeline_source_columns_json(def->source);

	/*
	 * Tombstones follow the key and the sequence_by column: rebuild them.  An
	 * aggregate's state stays (refuse_regrouping).
	 */
	pipeline_drop_own_table(old->tombstones);
	def->tombstones = InvalidOid;
	CommandCounterIncrement();
	validate_and_build(def, NULL);
	pipeline_save_definition(def, false);
	pipeline_save_lineage(def);
	pipeline_schedules_changed();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * refuse_drop_of_followed
 *		A pipeline steps run after is not dropped under them.
 */
static void
refuse_drop_of_followed(const PipelineDef *def)
{
	char	   *steps = pipeline_step_followers(def->id, false);

	if (steps != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop pipeline \"%s\" because steps run after it", def->name),
				 errdetail("Steps running after it: %s.", steps),
				 errhint("Those steps' owners drop them (pipeline.drop_step) or alter them to run after something else; DROP TABLE ... CASCADE of the pipeline's source drops them with it.")));
}

/*
 * pipeline_drop_pipeline
 *		SQL: pipeline.drop_pipeline(name, if_exists).  Waits for a running
 *		batch; the run then stops.  Removes cursor, history, quarantine and
 *		tombstones; the source keeps its _xid/_seq columns (other pipelines
 *		may read it) and the target stays.
 */
Datum
pipeline_drop_pipeline(PG_FUNCTION_ARGS)
{
	bool		if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	char	   *name = pipeline_text_arg(fcinfo, 0);
	PipelineDef *def;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = pipeline_load(name, if_exists, DEF_LOCK_UPDATE);
	if (def == NULL)
	{
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" does not exist, skipping", name)));
		SPI_finish();
		PG_RETURN_VOID();
	}
	pipeline_check_manage(def);
	refuse_drop_of_followed(def);
	pipeline_refuse_last_writer_drop(def);
	drop_own_tables(def);
	pipeline_delete_definition(def->id);
	pipeline_release_change_logs();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * set_paused
 *		Shared body of pause and resume (which also lifts a suspension).
 */
static void
set_paused(FunctionCallInfo fcinfo, bool paused)
{
	PipelineDef *def;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = pipeline_load(pipeline_text_arg(fcinfo, 0), false, DEF_LOCK_NONE);
	pipeline_check_manage(def);
	pipeline_set_paused(def->id, paused);
	pipeline_schedules_changed();
	SPI_finish();
}

/*
 * pipeline_pause
 *		SQL: pipeline.pause(name).  A running run stops after its batch.
 */
Datum
pipeline_pause(PG_FUNCTION_ARGS)
{
	set_paused(fcinfo, true);
	PG_RETURN_VOID();
}

/*
 * pipeline_resume
 *		SQL: pipeline.resume(name).
 */
Datum
pipeline_resume(PG_FUNCTION_ARGS)
{
	set_paused(fcinfo, false);
	PG_RETURN_VOID();
}

/*
 * pipeline_prepare_source
 *		SQL: pipeline.prepare_source(source).  What create_pipeline does to a
 *		new source (_xid, _seq, their index, the guard triggers), for its
 *		owner to run ahead of another role's pipeline.
 */
Datum
pipeline_prepare_source(PG_FUNCTION_ARGS)
{
	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_add_change_columns(PG_GETARG_OID(0));
	pipeline_guard_staging_table(PG_GETARG_OID(0));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_add_provenance_column
 *		SQL: pipeline.add_provenance_column(relation, column_name), for
 *		enable_provenance: adds a bigint column to a target when missing, as
 *		the target's owner (whoever enables provenance, a superuser say).
 *		The caller must be allowed to alter the table: a member of its
 *		owning role, or a superuser.
 */
Datum
pipeline_add_provenance_column(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *column = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *name = pipeline_qualified_name(relid);

	pipeline_check_version(ERROR);
	pipeline_check_role(pipeline_relation_owner(relid), psprintf("table %s", name));
	if (get_attnum(relid, column) != InvalidAttrNumber)
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_exec_as_relation_owner(relid, psprintf("ALTER TABLE %s ADD COLUMN %s bigint", name,
													quote_identifier(column)),
									0, NULL, NULL, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_discard_quarantine
 *		SQL: pipeline.discard_quarantine(name, ids) -> rows deleted.
 */
Datum
pipeline_discard_quarantine(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	PipelineUserContext ctx;
	Oid			types[2] = {INT8OID, INT8ARRAYOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int64		n;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = pipeline_load(pipeline_text_arg(fcinfo, 0), false, DEF_LOCK_NONE);
	pipeline_check_manage(def);
	values[0] = Int64GetDatum(def->id);
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
		values[1] = PG_GETARG_DATUM(1);
	pipeline_become_internal(&ctx);
	n = pipeline_exec("DELETE FROM pipeline.quarantine_log WHERE pipeline_id = $1 "
					  "AND requeued_at IS NULL AND ($2 IS NULL OR id = ANY ($2))",
					  2, types, values, nulls, false, 0);
	pipeline_restore_user(&ctx);
	SPI_finish();
	PG_RETURN_INT64(n);
}
