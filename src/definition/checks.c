/*-------------------------------------------------------------------------
 *
 * checks.c
 *	  Data quality checks of a pipeline: pipeline.add_check and drop_check,
 *	  their compilation, and the statement a run merges a batch with, tried
 *	  with them (as a definition is changed, and a check added).
 *
 * A row check is compiled into one SQL boolean over the mapped row (target
 * column names, unqualified); the batch statement hands every row's results
 * to pipeline.check_row (row_watch.c), which applies the actions in the same
 * statement that merges the row, so a row never lands in both the target
 * and the quarantine, or in neither.  As in Great Expectations' column map
 * expectations and dbt's generic tests, the kinds about a column's values
 * (accepted_values, range, regex, unique, relationships) leave a NULL value
 * out: their condition is NULL for it, which check_row counts as a row not
 * checked, so that their rows checked, failing shares and mostly are over
 * the non-NULL values.  not_null counts every row, and an expression check
 * passes a NULL result and counts the row, as a CHECK constraint would.
 * Batch-level conditions (row_count, warn_if, error_if, mostly) are
 * evaluated by check_results.c once the batch's rows have been counted,
 * before the batch commits.
 *
 * Adding or dropping a check bumps the pipeline's version, so that every
 * backend rebuilds its batch statements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"

PG_FUNCTION_INFO_V1(pipeline_add_check);
PG_FUNCTION_INFO_V1(pipeline_drop_check);

static const char *const check_kinds[] = {"expression", "not_null", "accepted_values", "range",
"between", "regex", "unique", "relationships", "row_count", NULL};
static const char *const check_actions[] = {"warn", "drop", "quarantine", "fail", NULL};
static const char *const unique_scopes[] = {"batch", "target", "batch_and_target", NULL};

#define CHECK_COLUMNS \
	"id, name, kind, action, column_name, expression, accepted_values, min_value, max_value, " \
	"pattern, coalesce(ref_table::oid, 0), ref_column, unique_scope, coalesce(min_rows, -1), " \
	"coalesce(max_rows, -1), warn_if, error_if, coalesce(mostly, 0)"

/* ------------------------------------------------------------- thresholds */

/*
 * parse_threshold
 *		"> 10", ">= 2.5%", "!= 0": a comparison of a batch's failing rows
 *		(or their share, with %) with a number.
 */
static CheckThreshold
parse_threshold(const char *text, const char *option)
{
	static const char *const ops[] = {">=", "<=", "!=", "<>", ">", "<", "=", NULL};
	CheckThreshold t = {0};
	const char *p = text;
	char	   *end;

	while (*p == ' ')
		p++;
	for (const char *const *op = ops; *op; op++)
		if (strncmp(p, *op, strlen(*op)) == 0)
		{
			strlcpy(t.op, strcmp(*op, "<>") == 0 ? "!=" : *op, sizeof(t.op));
			p += strlen(*op);
			break;
		}
	t.value = t.op[0] ? strtod(p, &end) : 0;
	if (t.op[0] && end != p)
	{
		while (*end == ' ')
			end++;
		t.percent = (*end == '%');
		if (t.percent)
			end++;
		while (*end == ' ')
			end++;
	}
	if (t.op[0] == '\0' || end == p || *end != '\0' || t.value < 0 ||
		(t.percent && t.value > 100))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s condition \"%s\"", option, text),
				 errdetail("A condition compares a batch's failing rows with a number: an operator (>, >=, <, <=, =, !=) and a count, or a percentage of the rows checked."),
				 errhint("Write it like '> 0', '>= 100' or '> 2.5%%'.")));
	t.set = true;
	return t;
}

/* --------------------------------------------------------------- compiling */

/*
 * Where a compiled check runs: in the batch statement on this server
 * (shard false), or in a sharded pipeline's shard statement on a worker,
 * which reads the target as 'target' (the sentinel of its target shard)
 * and Citus reference tables as their local shards.
 */
typedef struct CheckPlace
{
	bool		shard;
	const char *target;
} CheckPlace;

/* One row of pipeline.checks, as stored. */
typedef struct StoredCheck
{
	int64		id;
	char	   *name;
	char	   *kind;
	char	   *action;
	char	   *column;
	char	   *expression;
	List	   *accepted;
	char	   *min_value;
	char	   *max_value;
	char	   *pattern;
	Oid			ref_table;
	char	   *ref_column;
	char	   *unique_scope;
	int64		min_rows;
	int64		max_rows;
	char	   *warn_if;
	char	   *error_if;
	double		mostly;
} StoredCheck;

/*
 * stored_check
 *		Row i of the last SPI result (CHECK_COLUMNS).
 */
static StoredCheck *
stored_check(int i)
{
	StoredCheck *c = palloc0(sizeof(StoredCheck));
	bool		isnull;
	Datum		accepted;

	c->id = pipeline_result_int64(i, 0);
	c->name = pipeline_result_text(i, 1);
	c->kind = pipeline_result_text(i, 2);
	c->action = pipeline_result_text(i, 3);
	c->column = pipeline_result_text(i, 4);
	c->expression = pipeline_result_text(i, 5);
	accepted = pipeline_result_datum(i, 6, &isnull);
	c->accepted = isnull ? NIL : pipeline_text_array_to_list(accepted, "accepted_values");
	c->min_value = pipeline_result_text(i, 7);
	c->max_value = pipeline_result_text(i, 8);
	c->pattern = pipeline_result_text(i, 9);
	c->ref_table = DatumGetObjectId(pipeline_result_datum(i, 10, &isnull));
	c->ref_column = pipeline_result_text(i, 11);
	c->unique_scope = pipeline_result_text(i, 12);
	c->min_rows = pipeline_result_int64(i, 13);
	c->max_rows = pipeline_result_int64(i, 14);
	c->warn_if = pipeline_result_text(i, 15);
	c->error_if = pipeline_result_text(i, 16);
	c->mostly = DatumGetFloat8(pipeline_result_datum(i, 17, &isnull));
	return c;
}

/*
 * key_differs
 *		"(a.k1, a.k2) IS DISTINCT FROM (b.k1, b.k2)" over the pipeline's key.
 */
static char *
key_differs(const PipelineDef *def, const char *a, const char *b)
{
	return psprintf("ROW(%s) IS DISTINCT FROM ROW(%s)", pipeline_quote_list(def->key, a),
					pipeline_quote_list(def->key, b));
}

/*
 * counted_rows
 *		Which rows a within-batch uniqueness count looks at: those the filter
 *		keeps that are not delete events.
 */
static const char *
counted_rows(const PipelineDef *def)
{
	if (def->filter && def->delete_when)
		return "w.__pl_keep IS TRUE AND w.__pl_del IS NOT TRUE";
	if (def->filter)
		return "w.__pl_keep IS TRUE";
	if (def->delete_when)
		return "w.__pl_del IS NOT TRUE";
	return "true";
}

/*
 * unique_condition
 *		A unique check on a value that is not NULL: no other row of the batch
 *		(another key's, for a pipeline with a key) has the value, and, with
 *		the target in scope, no row of the target under another key.  Sets
 *		check->window to the count of the batch's other rows with the value.
 */
static char *
unique_condition(const PipelineDef *def, const CheckPlace *place, QualityCheck *check,
				 const StoredCheck *sc, int n)
{
	const char *col = quote_identifier(sc->column);
	const char *scope = sc->unique_scope ? sc->unique_scope : "batch_and_target";
	StringInfoData cond;

	initStringInfo(&cond);
	appendStringInfoString(&cond, "true");
	if (strcmp(scope, "target") != 0)
	{
		const char *counted = counted_rows(def);

		if (def->key != NIL)
			check->window = psprintf("count(*) FILTER (WHERE %s) OVER (PARTITION BY w.%s) - "
									 "count(*) FILTER (WHERE %s) OVER (PARTITION BY w.%s, %s)",
									 counted, col, counted, col,
									 pipeline_quote_list(def->key, "w"));
		else
			check->window = psprintf("count(*) FILTER (WHERE %s) OVER (PARTITION BY w.%s) - 1",
									 counted, col);
		appendStringInfo(&cond, " AND b.__pl_u%d = 0", n);
	}
	if (strcmp(scope, "batch") != 0)
		appendStringInfo(&cond, " AND NOT EXISTS (SELECT 1 FROM %s __pl_t WHERE __pl_t.%s = b.%s%s)",
						 place->target, col, col,
						 def->key != NIL ? psprintf(" AND %s", key_differs(def, "__pl_t", "b")) : "");
	return cond.data;
}

/*
 * literal_list
 *		"'a', 'b'": quoted literals (typed by the column they meet).
 */
static char *
literal_list(List *values)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, values)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", quote_literal_cstr(lfirst(lc)));
	return buf.data;
}

/*
 * value_condition
 *		The condition a column's value that is not NULL must meet, for the
 *		kinds about values; sets check->window when it needs one.
 */
static char *
value_condition(const PipelineDef *def, const CheckPlace *place, QualityCheck *check,
				const StoredCheck *sc, int n)
{
	const char *col = quote_identifier(sc->column);

	if (strcmp(sc->kind, "accepted_values") == 0)
		return psprintf("b.%s IN (%s)", col, literal_list(sc->accepted));
	if (strcmp(sc->kind, "range") == 0)
	{
		StringInfoData cond;

		initStringInfo(&cond);
		if (sc->min_value)
			appendStringInfo(&cond, "b.%s >= %s", col, quote_literal_cstr(sc->min_value));
		if (sc->max_value)
			appendStringInfo(&cond, "%sb.%s <= %s", cond.len ? " AND " : "", col,
							 quote_literal_cstr(sc->max_value));
		return cond.data;
	}
	if (strcmp(sc->kind, "regex") == 0)
		return psprintf("b.%s::text ~ %s", col, quote_literal_cstr(sc->pattern));
	if (strcmp(sc->kind, "relationships") == 0)
		return psprintf("EXISTS (SELECT 1 FROM %s __pl_r WHERE __pl_r.%s = b.%s)",
						pipeline_qualified_name(place->shard ? pipeline_citus_reference_shard(sc->ref_table)
												: sc->ref_table),
						quote_identifier(sc->ref_column ? sc->ref_column : sc->column), col);
	return unique_condition(def, place, check, sc, n);
}

/*
 * row_condition
 *		The SQL a row passes (true), fails (false) or is not checked by
 *		(NULL: the value of a kind about values is NULL), for a row check;
 *		sets check->window when it needs one.  Whatever else is NULL passes.
 */
static char *
row_condition(const PipelineDef *def, const CheckPlace *place, QualityCheck *check,
			  const StoredCheck *sc, int n)
{
	if (strcmp(sc->kind, "expression") == 0)
		return psprintf("(%s) IS NOT FALSE", place->shard ? pipeline_shard_check_expression(def, sc->expression)
						: sc->expression);
	if (strcmp(sc->kind, "not_null") == 0)
		return psprintf("b.%s IS NOT NULL", quote_identifier(sc->column));
	return psprintf("CASE WHEN b.%s IS NULL THEN NULL ELSE (%s) IS NOT FALSE END",
					quote_identifier(sc->column), value_condition(def, place, check, sc, n));
}

/*
 * compile_check
 *		A stored check, ready for the batch statement.
 */
static QualityCheck *
compile_check(const PipelineDef *def, const CheckPlace *place, const StoredCheck *sc, int n)
{
	QualityCheck *check = palloc0(sizeof(QualityCheck));

	check->id = sc->id;
	check->name = sc->name;
	check->kind = sc->kind;
	for (int a = 0; check_actions[a]; a++)
		if (strcmp(sc->action, check_actions[a]) == 0)
			check->action = (CheckAction) a;
	check->min_rows = sc->min_rows;
	check->max_rows = sc->max_rows;
	check->mostly = sc->mostly;
	if (sc->warn_if)
		check->warn_if = parse_threshold(sc->warn_if, "warn_if");
	else
		check->warn_if = parse_threshold("> 0", "warn_if");
	if (sc->error_if)
		check->error_if = parse_threshold(sc->error_if, "error_if");
	else if (sc->mostly > 0)
		check->error_if = parse_threshold(psprintf("> %.15g%%", (1 - sc->mostly) * 100),
										  "mostly");
	if (strcmp(sc->kind, "row_count") != 0)
		check->passes = psprintf("(%s)", row_condition(def, place, check, sc, n));
	check->skips_nulls = sc->column != NULL && strcmp(sc->kind, "not_null") != 0;
	return check;
}

/*
 * load_checks
 *		The pipeline's checks, compiled to run at 'place', in the order of
 *		their ids (a row's failures are numbered in that order).
 */
static List *
load_checks(const PipelineDef *def, const CheckPlace *place)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(def->id);
	List	   *checks = NIL;
	List	   *stored = NIL;
	int			n;

	/* not read-only: add_check compiles the check it has just stored */
	n = pipeline_exec_internal("SELECT " CHECK_COLUMNS " FROM pipeline.checks WHERE pipeline_id = $1 "
							   "ORDER BY id", 1, &type, &value, NULL);
	for (int i = 0; i < n; i++)
		stored = lappend(stored, stored_check(i));
	for (int i = 0; i < n; i++)
		checks = lappend(checks, compile_check(def, place, list_nth(stored, i), i));
	return checks;
}

/*
 * pipeline_load_checks
 *		The pipeline's checks, compiled for its batch statement.
 */
List *
pipeline_load_checks(const PipelineDef *def, const PipelineMapping *map)
{
	CheckPlace	place = {false, pipeline_qualified_name(def->target)};

	return load_checks(def, &place);
}

/*
 * pipeline_load_shard_checks
 *		A sharded pipeline's checks, compiled for its shard statement, which
 *		reads the target as 'target' (SQL): the sentinel of the target shard,
 *		or the distributed table to try the statement at definition.  The
 *		caller runs as the owner.
 */
List *
pipeline_load_shard_checks(const PipelineDef *def, const char *target)
{
	CheckPlace	place = {true, target};

	return load_checks(def, &place);
}

/*
 * pipeline_copy_checks
 *		A copy of a list of compiled checks in the current memory context.
 */
List *
pipeline_copy_checks(List *checks)
{
	List	   *copy = NIL;
	ListCell   *lc;

	foreach(lc, checks)
	{
		QualityCheck *check = palloc(sizeof(QualityCheck));

		memcpy(check, lfirst(lc), sizeof(QualityCheck));
		check->name = pstrdup(check->name);
		check->kind = pstrdup(check->kind);
		check->passes = check->passes ? pstrdup(check->passes) : NULL;
		check->window = check->window ? pstrdup(check->window) : NULL;
		copy = lappend(copy, check);
	}
	return copy;
}

/*
 * pipeline_checks_verify_columns
 *		Every column a check names is still written by the pipeline (after
 *		a change of its mapping).
 */
void
pipeline_checks_verify_columns(const PipelineDef *def, const PipelineMapping *map)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(def->id);
	int			n;

	n = pipeline_exec_internal("SELECT name, column_name FROM pipeline.checks "
							   "WHERE pipeline_id = $1 AND column_name IS NOT NULL ORDER BY id",
							   1, &type, &value, NULL);
	for (int i = 0; i < n; i++)
	{
		char	   *column = pipeline_result_text(i, 1);

		if (pipeline_mapping_column(map, column) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("check \"%s\" of pipeline \"%s\" needs column \"%s\", which the pipeline would no longer write",
							pipeline_result_text(i, 0), def->name, column),
					 errdetail("Checks look at the columns the pipeline writes."),
					 errhint("Drop the check first with pipeline.drop_check('%s', '%s').",
							 def->name, pipeline_result_text(i, 0))));
	}
}

/* ------------------------------------------------- the statement they join */

/*
 * pipeline_try_definition_statement
 *		Prepares, as the owner, the statement a run of the definition merges
 *		a batch with -- the batch statement, or a sharded pipeline's shard
 *		statement over the distributed tables -- with its row rules and
 *		checks; returns the error it raised, or NULL.
 */
ErrorData *
pipeline_try_definition_statement(const PipelineDef *def, PipelineMapping *map)
{
	List	   *rules = pipeline_row_rules(def, map);
	char	   *target = pipeline_qualified_name(def->target);

	if (!def->sharded)
		return pipeline_try_batch_statement(def, pipeline_batch_sql(def, map, BATCH_FROM_STAGING, rules,
																	pipeline_load_checks(def, map),
																	PENDING_RANGE));
	(void) pipeline_shard_statement(def, map, rules,	/* its own checks */
									pipeline_load_shard_checks(def, PIPELINE_SHARD_TARGET));
	return pipeline_try_prepare(def, pipeline_shard_sql(def, map, rules, pipeline_load_shard_checks(def, target),
														pipeline_qualified_name(def->source), target, "true"),
								0, NULL);
}

/* ---------------------------------------------------------------- add_check */

/*
 * missing_option
 *		The error for a check kind used without an option it needs.
 */
static void
missing_option(const char *kind, const char *option, const char *example)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("a check of kind %s needs %s", kind, option),
			 errdetail("The %s argument was not given.", option),
			 errhint("For example: %s", example)));
}

/*
 * unused_option
 *		The error for an option that means nothing to a check kind.
 */
static void
unused_option(const char *kind, const char *option)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s does not apply to a check of kind %s", option, kind),
			 errdetail("Each kind of check takes its own options; see pipeline.add_check in the reference."),
			 errhint("Leave %s out.", option)));
}

/*
 * option_of_kind
 *		An option that belongs to one kind of check: required there (when an
 *		example is given), refused elsewhere.
 */
static void
option_of_kind(const StoredCheck *sc, const char *kind, bool given, const char *option,
			   const char *example)
{
	bool		wanted = strcmp(sc->kind, kind) == 0;

	if (wanted && !given && example != NULL)
		missing_option(sc->kind, option, example);
	if (!wanted && given)
		unused_option(sc->kind, option);
}

/*
 * validate_options
 *		Each kind's options are present, and only those ('between' is stored
 *		as 'range').
 */
static void
validate_options(StoredCheck *sc, const PipelineMapping *map)
{
	bool		is_row_count = strcmp(sc->kind, "row_count") == 0;
	bool		needs_column = !is_row_count && strcmp(sc->kind, "expression") != 0;

	option_of_kind(sc, "expression", sc->expression != NULL, "expression",
				   "pipeline.add_check('orders', 'positive_amount', 'amount > 0')");
	option_of_kind(sc, "accepted_values", sc->accepted != NIL, "accepted_values",
				   "kind => 'accepted_values', column_name => 'status', accepted_values => '{new,paid,shipped}'");
	option_of_kind(sc, "range", sc->min_value != NULL || sc->max_value != NULL,
				   "min_value or max_value",
				   "kind => 'range', column_name => 'amount', min_value => '0', max_value => '10000'");
	option_of_kind(sc, "regex", sc->pattern != NULL, "pattern",
				   "kind => 'regex', column_name => 'email', pattern => '^[^@]+@[^@]+$'");
	option_of_kind(sc, "relationships", OidIsValid(sc->ref_table), "ref_table",
				   "kind => 'relationships', column_name => 'customer_id', ref_table => 'dim.customers', ref_column => 'id'");
	option_of_kind(sc, "relationships", sc->ref_column != NULL, "ref_column", NULL);
	option_of_kind(sc, "unique", sc->unique_scope != NULL, "unique_scope", NULL);
	option_of_kind(sc, "row_count", sc->min_rows >= 0 || sc->max_rows >= 0, "min_rows or max_rows",
				   "kind => 'row_count', min_rows => 1, max_rows => 1000000");
	if (sc->unique_scope)
		pipeline_check_choice("unique_scope", sc->unique_scope, unique_scopes);

	if (needs_column && sc->column == NULL)
		missing_option(sc->kind, "column_name",
					   "pipeline.add_check('orders', 'has_customer', kind => 'not_null', column_name => 'customer_id')");
	if (!needs_column && sc->column != NULL)
		unused_option(sc->kind, "column_name");
	if (needs_column && pipeline_mapping_column(map, sc->column) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" is not written by the pipeline", sc->column),
				 errdetail("Checks look at the rows the pipeline writes, by their target column names."),
				 errhint("Name one of: %s.", pipeline_mapping_column_list(map))));
}

/*
 * validate_thresholds
 *		Actions and thresholds that make sense together.
 */
static void
validate_thresholds(const StoredCheck *sc)
{
	bool		is_row_count = strcmp(sc->kind, "row_count") == 0;

	pipeline_check_choice("action", sc->action, check_actions);
	if (is_row_count && strcmp(sc->action, "warn") != 0 && strcmp(sc->action, "fail") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a row_count check's action must be warn or fail"),
				 errdetail("A row_count check judges a whole batch, not rows: it cannot drop or quarantine one."),
				 errhint("Use action => 'warn' to record it, or 'fail' to stop the run.")));
	if ((is_row_count || strcmp(sc->action, "fail") == 0) &&
		(sc->warn_if || sc->error_if || sc->mostly > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("warn_if, error_if and mostly do not apply to a %s",
						is_row_count ? "row_count check" : "check whose action is fail"),
				 errdetail("%s", is_row_count ? "A row_count check's bounds are its thresholds."
						   : "With action fail, the first failing row fails the run."),
				 errhint("%s", is_row_count ? "Leave them out."
						 : "Use action warn, drop or quarantine with error_if or mostly to fail the run only above a share of failing rows.")));
	if (sc->error_if && sc->mostly > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("error_if and mostly cannot both be given"),
				 errdetail("mostly => m is error_if => '> (1 - m) * 100%%' written the other way round."),
				 errhint("Keep one of them.")));
	if (sc->min_rows >= 0 && sc->max_rows >= 0 && sc->min_rows > sc->max_rows)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_rows must not exceed max_rows"),
				 errdetail("min_rows is %lld and max_rows %lld.", (long long) sc->min_rows,
						   (long long) sc->max_rows),
				 errhint("Swap them.")));
	if (sc->warn_if)
		parse_threshold(sc->warn_if, "warn_if");
	if (sc->error_if)
		parse_threshold(sc->error_if, "error_if");
}

/*
 * check_reference_access
 *		The owner must be able to read the table a relationships check looks
 *		rows up in.
 */
static void
check_reference_access(const PipelineDef *def, const StoredCheck *sc)
{
	const char *ref_column = sc->ref_column ? sc->ref_column : sc->column;

	if (!OidIsValid(sc->ref_table))
		return;
	if (get_attnum(sc->ref_table, ref_column) == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of %s does not exist", ref_column,
						pipeline_qualified_name(sc->ref_table)),
				 errdetail("A relationships check looks each value up in ref_column of ref_table (by default the column of the same name)."),
				 errhint("Name the referenced column with ref_column.")));
	if (pg_class_aclcheck(sc->ref_table, def->owner, ACL_SELECT) == ACLCHECK_OK)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" cannot read %s", GetUserNameFromId(def->owner, false),
					pipeline_qualified_name(sc->ref_table)),
			 errdetail("A relationships check looks rows up in its ref_table as the pipeline's owner."),
			 errhint("GRANT SELECT ON %s TO %s.", pipeline_qualified_name(sc->ref_table),
					 quote_identifier(GetUserNameFromId(def->owner, false)))));
}

/*
 * refuse_citus_check
 *		Errors: check 'name' of 'def' reads 'table', a Citus distributed
 *		table, in a way Citus cannot plan beside the batch's rows.
 */
static void
refuse_citus_check(const PipelineDef *def, const char *name, Oid table, const char *how,
				   const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("check \"%s\" of pipeline \"%s\" cannot read Citus distributed table %s", name,
					def->name, pipeline_qualified_name(table)),
			 errdetail("The check %s for each row of the batch, a correlated lookup Citus cannot plan.", how),
			 errhint("%s", hint)));
}

/*
 * pipeline_check_citus_checks
 *		Errors for a check that looks rows up in a Citus distributed table
 *		for each row of the batch: a unique check with the target in scope
 *		on a distributed target, a relationships check whose ref_table is
 *		distributed.  (Reference tables have a copy on every node: they
 *		work.)  When a check is added and whenever a run builds its
 *		statements, the tables may have been distributed since.  (A
 *		sharded pipeline's checks run on the workers, and are checked
 *		there: sharded_pipelines.c.)
 */
void
pipeline_check_citus_checks(const PipelineDef *def)
{
	Oid			types[2] = {INT8OID, OIDOID};
	Datum		values[2] = {Int64GetDatum(def->id), ObjectIdGetDatum(def->target)};
	List	   *names = NIL;
	List	   *tables = NIL;
	List	   *uniques = NIL;
	int			n;

	if (def->sharded)
		return;
	n = pipeline_exec_internal("SELECT name, CASE WHEN kind = 'unique' THEN $2 ELSE ref_table END, "
							   "kind = 'unique' FROM pipeline.checks WHERE pipeline_id = $1 "
							   "AND ((kind = 'unique' AND coalesce(unique_scope, '') <> 'batch') "
							   "OR kind = 'relationships') ORDER BY id", 2, types, values, NULL);
	/* read them all first: pipeline_citus_kind runs queries of its own */
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		names = lappend(names, pipeline_result_text(i, 0));
		tables = lappend_oid(tables, DatumGetObjectId(pipeline_result_datum(i, 1, &isnull)));
		uniques = lappend_int(uniques, DatumGetBool(pipeline_result_datum(i, 2, &isnull)));
	}
	for (int i = 0; i < n; i++)
	{
		Oid			table = list_nth_oid(tables, i);

		if (pipeline_citus_kind(table) != CITUS_DISTRIBUTED)
			continue;
		if (list_nth_int(uniques, i))
			refuse_citus_check(def, list_nth(names, i), table,
							   "looks its value up among the target's rows under other keys",
							   "Give the check unique_scope => 'batch', or keep the values unique with a UNIQUE constraint on the target (with its distribution column): a row breaking it is quarantined.");
		refuse_citus_check(def, list_nth(names, i), table, "looks its value up in ref_table",
						   "Look values up in a Citus reference table (create_reference_table), or in a plain table on the coordinator.");
	}
}

/*
 * compile_regex
 *		Matches the empty string against a pattern (for pipeline_try).
 */
static void
compile_regex(void *pattern)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum((char *) pattern);

	pipeline_exec("SELECT '' ~ $1", 1, &type, &value, NULL, true, 0);
}

/*
 * check_regex_compiles
 *		A pattern is compiled only when the first row meets it; compile it
 *		now so that a bad one is refused here.
 */
static void
check_regex_compiles(const StoredCheck *sc)
{
	ErrorData  *edata;

	if (sc->pattern == NULL)
		return;
	edata = pipeline_try(compile_regex, sc->pattern);
	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("invalid pattern for check \"%s\": %s", sc->name, edata->message),
				 errdetail("The pattern is: %s", sc->pattern),
				 errhint("Patterns are POSIX regular expressions, matched with the ~ operator.")));
}

/* The arguments of pipeline.add_check, in order. */
enum
{
	ARG_PIPELINE, ARG_NAME, ARG_EXPRESSION, ARG_KIND, ARG_COLUMN, ARG_ACCEPTED, ARG_MIN_VALUE,
	ARG_MAX_VALUE, ARG_PATTERN, ARG_REF_TABLE, ARG_REF_COLUMN, ARG_UNIQUE_SCOPE, ARG_MIN_ROWS,
	ARG_MAX_ROWS, ARG_ACTION, ARG_WARN_IF, ARG_ERROR_IF, ARG_MOSTLY, ADD_CHECK_NARGS
};

/*
 * check_from_args
 *		The check pipeline.add_check describes.  The kind defaults to
 *		expression when an expression is given.
 */
static StoredCheck *
check_from_args(FunctionCallInfo fcinfo)
{
	StoredCheck *sc = palloc0(sizeof(StoredCheck));

	sc->name = pipeline_text_arg(fcinfo, ARG_NAME);
	sc->expression = pipeline_text_arg(fcinfo, ARG_EXPRESSION);
	sc->kind = pipeline_text_arg(fcinfo, ARG_KIND);
	if (sc->kind == NULL)
		sc->kind = "expression";
	pipeline_check_choice("kind", sc->kind, check_kinds);
	if (strcmp(sc->kind, "between") == 0)
		sc->kind = "range";
	sc->column = pipeline_text_arg(fcinfo, ARG_COLUMN);
	sc->accepted = PG_ARGISNULL(ARG_ACCEPTED) ? NIL
		: pipeline_text_array_to_list(PG_GETARG_DATUM(ARG_ACCEPTED), "accepted_values");
	sc->min_value = pipeline_text_arg(fcinfo, ARG_MIN_VALUE);
	sc->max_value = pipeline_text_arg(fcinfo, ARG_MAX_VALUE);
	sc->pattern = pipeline_text_arg(fcinfo, ARG_PATTERN);
	sc->ref_table = PG_ARGISNULL(ARG_REF_TABLE) ? InvalidOid : PG_GETARG_OID(ARG_REF_TABLE);
	sc->ref_column = pipeline_text_arg(fcinfo, ARG_REF_COLUMN);
	sc->unique_scope = pipeline_text_arg(fcinfo, ARG_UNIQUE_SCOPE);
	sc->min_rows = PG_ARGISNULL(ARG_MIN_ROWS) ? -1 : PG_GETARG_INT64(ARG_MIN_ROWS);
	sc->max_rows = PG_ARGISNULL(ARG_MAX_ROWS) ? -1 : PG_GETARG_INT64(ARG_MAX_ROWS);

	/*
	 * by default a failing row is set aside, and a batch out of bounds stops
	 * the run
	 */
	if (!PG_ARGISNULL(ARG_ACTION))
		sc->action = pipeline_text_arg(fcinfo, ARG_ACTION);
	else
		sc->action = strcmp(sc->kind, "row_count") == 0 ? "fail" : "quarantine";
	sc->warn_if = pipeline_text_arg(fcinfo, ARG_WARN_IF);
	sc->error_if = pipeline_text_arg(fcinfo, ARG_ERROR_IF);
	sc->mostly = PG_ARGISNULL(ARG_MOSTLY) ? 0 : PG_GETARG_FLOAT8(ARG_MOSTLY);

	if (sc->name == NULL || sc->name[0] == '\0' || strlen(sc->name) > NAMEDATALEN - 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid check name \"%s\"", sc->name ? sc->name : ""),
				 errdetail("A check's name must be 1 to %d bytes long.", NAMEDATALEN - 1),
				 errhint("Name the check after what it verifies, such as positive_amount.")));
	if (sc->expression != NULL)
		pipeline_require_expression(sc->expression,
									psprintf("check \"%s\"", sc->name));
	if ((sc->min_rows < -1 || sc->max_rows < -1) ||
		(!PG_ARGISNULL(ARG_MIN_ROWS) && sc->min_rows < 0) ||
		(!PG_ARGISNULL(ARG_MAX_ROWS) && sc->max_rows < 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_rows and max_rows must not be negative"),
				 errdetail("They bound the number of rows in a batch."),
				 errhint("Pass a count of 0 or more.")));
	if (!PG_ARGISNULL(ARG_MOSTLY) && !(sc->mostly > 0 && sc->mostly <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mostly must be greater than 0 and at most 1"),
				 errdetail("mostly is the share of the rows checked that must pass; %g is not a share.",
						   sc->mostly),
				 errhint("Write 0.95 for 95%%.")));
	return sc;
}

/*
 * has_most_checks
 *		Whether the pipeline has PIPELINE_MAX_CHECKS checks already.  The
 *		caller runs as the extension.
 */
static bool
has_most_checks(const PipelineDef *def)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2];

	values[0] = Int64GetDatum(def->id);
	values[1] = Int32GetDatum(PIPELINE_MAX_CHECKS - 1);
	return pipeline_exec("SELECT 1 FROM pipeline.checks WHERE pipeline_id = $1 OFFSET $2",
						 2, types, values, NULL, false, 1) > 0;
}

/*
 * insert_check
 *		Stores a check; returns its id.  A duplicate name is refused.
 */
static int64
insert_check(const PipelineDef *def, const StoredCheck *sc)
{
	Oid			types[18] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID,
		TEXTOID, TEXTOID, TEXTOID, OIDOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID,
	FLOAT8OID};
	Datum		values[18];
	char		nulls[18];
	const char *texts[] = {sc->name, sc->kind, sc->action, sc->column, sc->expression};
	PipelineUserContext ctx;
	int64		id;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(def->id);
	for (int i = 0; i < 5; i++)
	{
		values[1 + i] = texts[i] ? CStringGetTextDatum(texts[i]) : (Datum) 0;
		nulls[1 + i] = texts[i] ? ' ' : 'n';
	}
	values[6] = sc->accepted ? pipeline_list_to_text_array(sc->accepted) : (Datum) 0;
	nulls[6] = sc->accepted ? ' ' : 'n';
	{
		const char *more[] = {sc->min_value, sc->max_value, sc->pattern};

		for (int i = 0; i < 3; i++)
		{
			values[7 + i] = more[i] ? CStringGetTextDatum(more[i]) : (Datum) 0;
			nulls[7 + i] = more[i] ? ' ' : 'n';
		}
	}
	values[10] = ObjectIdGetDatum(sc->ref_table);
	nulls[10] = OidIsValid(sc->ref_table) ? ' ' : 'n';
	values[11] = sc->ref_column ? CStringGetTextDatum(sc->ref_column) : (Datum) 0;
	nulls[11] = sc->ref_column ? ' ' : 'n';
	values[12] = sc->unique_scope ? CStringGetTextDatum(sc->unique_scope) : (Datum) 0;
	nulls[12] = sc->unique_scope ? ' ' : 'n';
	values[13] = Int64GetDatum(sc->min_rows);
	nulls[13] = sc->min_rows >= 0 ? ' ' : 'n';
	values[14] = Int64GetDatum(sc->max_rows);
	nulls[14] = sc->max_rows >= 0 ? ' ' : 'n';
	values[15] = sc->warn_if ? CStringGetTextDatum(sc->warn_if) : (Datum) 0;
	nulls[15] = sc->warn_if ? ' ' : 'n';
	values[16] = sc->error_if ? CStringGetTextDatum(sc->error_if) : (Datum) 0;
	nulls[16] = sc->error_if ? ' ' : 'n';
	values[17] = Float8GetDatum(sc->mostly);
	nulls[17] = sc->mostly > 0 ? ' ' : 'n';

	pipeline_become_internal(&ctx);
	if (pipeline_exec("SELECT 1 FROM pipeline.checks WHERE pipeline_id = $1 AND name = $2",
					  2, types, values, nulls, false, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("pipeline \"%s\" already has a check named \"%s\"", def->name, sc->name),
				 errdetail("Check names are unique within a pipeline."),
				 errhint("Choose another name, or drop the check first with pipeline.drop_check('%s', '%s').",
						 def->name, sc->name)));
	if (has_most_checks(def))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("pipeline \"%s\" already has %d checks", def->name, PIPELINE_MAX_CHECKS),
				 errdetail("A pipeline can have at most %d data quality checks.", PIPELINE_MAX_CHECKS),
				 errhint("Combine related conditions into one expression check.")));
	pipeline_exec("INSERT INTO pipeline.checks (pipeline_id, name, kind, action, column_name, "
				  "expression, accepted_values, min_value, max_value, pattern, ref_table, "
				  "ref_column, unique_scope, min_rows, max_rows, warn_if, error_if, mostly) "
				  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::regclass, $12, $13, $14, "
				  "$15, $16, $17, $18) RETURNING id", 18, types, values, nulls, false, 0);
	id = pipeline_result_int64(0, 0);
	pipeline_restore_user(&ctx);
	return id;
}

/*
 * compile_new_check
 *		Builds and prepares the batch statement with the new check in it, as
 *		the owner: a check that cannot run is refused now.
 */
static void
compile_new_check(const PipelineDef *def, const StoredCheck *sc)
{
	PipelineMapping *map = pipeline_build_mapping(def);
	ErrorData  *edata = pipeline_try_definition_statement(def, map);

	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("invalid check \"%s\": %s", sc->name, edata->message),
				 sc->expression ? errdetail("The expression is: %s", sc->expression)
				 : errdetail("The check is of kind %s on column %s.", sc->kind,
							 sc->column ? sc->column : "(none)"),
				 errhint("Checks are SQL over the columns the pipeline writes (%s), run as the pipeline's owner; an expression must be boolean.",
						 pipeline_mapping_column_list(map))));
}

/*
 * pipeline_add_check
 *		SQL: pipeline.add_check(pipeline_name, check_name, expression, kind,
 *		...).  Returns the check's id.
 */
Datum
pipeline_add_check(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	StoredCheck *sc;
	int64		id;
	PipelineUserContext ctx;

	pipeline_check_version(ERROR);
	if (PG_ARGISNULL(ARG_PIPELINE))
		pipeline_report_missing("");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = pipeline_load(pipeline_text_arg(fcinfo, ARG_PIPELINE), false, DEF_LOCK_UPDATE);
	pipeline_check_manage(def);
	sc = check_from_args(fcinfo);
	validate_thresholds(sc);
	validate_options(sc, pipeline_build_mapping(def));
	check_reference_access(def, sc);
	check_regex_compiles(sc);
	id = insert_check(def, sc);
	CommandCounterIncrement();
	pipeline_check_citus_checks(def);
	/* its expressions are parsed as the owner, as the run will */
	pipeline_become_owner(def, &ctx);
	pipeline_check_sharded_checks(def);
	pipeline_restore_user(&ctx);
	compile_new_check(def, sc);
	pipeline_definition_changed(def);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/*
 * pipeline_drop_check
 *		SQL: pipeline.drop_check(pipeline_name, check_name, if_exists).  Its
 *		past results stay, without a check id.
 */
Datum
pipeline_drop_check(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	char	   *name = pipeline_text_arg(fcinfo, 1);
	bool		if_exists = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	int			n;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = pipeline_load(pipeline_text_arg(fcinfo, 0), false, DEF_LOCK_UPDATE);
	pipeline_check_manage(def);
	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(name ? name : "");
	n = pipeline_exec_internal("DELETE FROM pipeline.checks WHERE pipeline_id = $1 AND name = $2",
							   2, types, values, NULL);
	if (n == 0 && !if_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" has no check named \"%s\"", def->name, name ? name : ""),
				 errdetail("pipeline.checks lists the checks of the pipelines you own."),
				 errhint("Pass if_exists => true to ignore a missing check.")));
	if (n > 0)
		pipeline_definition_changed(def);
	SPI_finish();
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------ dependencies */

/*
 * pipeline_checks_on_drop
 *		From the sql_drop event trigger (as the extension, connected to SPI):
 *		a table a relationships check looks rows up in cannot be dropped
 *		without CASCADE; with it, the check goes.
 */
void
pipeline_checks_on_drop(bool cascade)
{
	char	   *relation;
	char	   *check;
	char	   *pipeline;
	ListCell   *lc;

	if (!cascade)
	{
		if (pipeline_dropped_check_reference(&relation, &check, &pipeline))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop %s because check \"%s\" of pipeline \"%s\" uses it",
							relation, check, pipeline),
					 errdetail("A relationships check looks the pipeline's rows up in it."),
					 errhint("Drop the check first with pipeline.drop_check('%s', '%s'), or use DROP ... CASCADE to drop it too.",
							 pipeline, check)));
		return;
	}
	foreach(lc, pipeline_delete_dropped_check_references())
	{
		DroppedCheck *c = lfirst(lc);

		ereport(NOTICE,
				(errmsg("drop cascades to check \"%s\" of pipeline \"%s\"", c->check, c->pipeline)));
	}
}
