/*-------------------------------------------------------------------------
 *
 * sqlexec.c
 *	  Small helpers around SPI, around quoting names into SQL text, around
 *	  the users' expressions the extension splices into it, and around the
 *	  timeout of a statement it runs for them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "parser/parser.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"

/*
 * pipeline_exec
 *		Runs one parameterised statement through SPI (already connected) and
 *		returns SPI_processed; errors on an SPI failure code.
 */
int
pipeline_exec(const char *sql, int nargs, Oid *types, Datum *values,
			  const char *nulls, bool read_only, long limit)
{
	int			ret;

	ret = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, limit);
	if (ret < 0)
		elog(ERROR, "SPI failed (%s) running: %s", SPI_result_code_string(ret), sql);
	return (int) SPI_processed;
}

/*
 * The plans of pipeline_exec_kept, by statement text, for the life of the
 * backend: the catalog statements every run executes, and a statement per
 * pipeline that status and the scheduler ask again and again.  A plan is
 * kept from the second time its text runs (keeping costs more than running
 * once: a session that looks once pays nothing more), for at most
 * KEPT_STATEMENTS_MAX texts; beyond, a new text runs unkept.  The text
 * names the relations it reads, so a renamed relation makes a new text,
 * never a kept plan finding another table by the old name.
 */
typedef struct KeptStatement
{
	const char *sql;			/* key: the text, copied into TopMemoryContext */
	SPIPlanPtr	plan;			/* NULL: it ran once so far */
} KeptStatement;

#define KEPT_STATEMENTS_MAX 8192

static HTAB *kept_statements = NULL;

/*
 * kept_hash, kept_match, kept_copy
 *		Hash, compare and copy the statement texts keying kept_statements.
 */
static uint32
kept_hash(const void *key, Size keysize)
{
	const char *sql = *(const char *const *) key;

	return hash_bytes((const unsigned char *) sql, (int) strlen(sql));
}

static int
kept_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static void *
kept_copy(void *dest, const void *src, Size keysize)
{
	*(const char **) dest = MemoryContextStrdup(TopMemoryContext, *(const char *const *) src);
	return dest;
}

/*
 * pipeline_exec_kept
 *		As pipeline_exec, for a statement that runs again and again in a
 *		backend (every run or batch, every look at a pipeline), looking
 *		rows up by key: from its second run it is parsed and planned once,
 *		with a generic plan, and the plan kept (see KeptStatement).
 *		PostgreSQL's plan cache checks the plan before each use and plans
 *		it again when a relation, function or type it uses changed, or
 *		when the search_path or (under row-level security) the role
 *		differs from those it was planned with.
 */
int
pipeline_exec_kept(const char *sql, int nargs, Oid *types, Datum *values,
				   const char *nulls, bool read_only, long limit)
{
	KeptStatement *entry;
	bool		found;
	int			ret;

	if (kept_statements == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(const char *);
		ctl.entrysize = sizeof(KeptStatement);
		ctl.hash = kept_hash;
		ctl.match = kept_match;
		ctl.keycopy = kept_copy;
		ctl.hcxt = TopMemoryContext;
		kept_statements = hash_create("pipeline kept statements", 64, &ctl,
									  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
									  HASH_KEYCOPY | HASH_CONTEXT);
	}
	entry = hash_search(kept_statements, &sql, HASH_FIND, NULL);
	if (entry == NULL)
	{
		if (hash_get_num_entries(kept_statements) < KEPT_STATEMENTS_MAX)
		{
			entry = hash_search(kept_statements, &sql, HASH_ENTER, &found);
			entry->plan = NULL;
		}
		return pipeline_exec(sql, nargs, types, values, nulls, read_only, limit);
	}
	if (entry->plan == NULL)
	{
		/* keyed lookups: one generic plan serves every call */
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed (%s) for: %s",
				 SPI_result_code_string(SPI_result), sql);
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		entry->plan = plan;
	}
	ret = SPI_execute_plan(entry->plan, values, nulls, read_only, limit);
	if (ret < 0)
		elog(ERROR, "SPI failed (%s) running: %s", SPI_result_code_string(ret), sql);
	return (int) SPI_processed;
}

/*
 * pipeline_prepare_kept
 *		Prepares a statement and keeps the plan beyond the current SPI
 *		connection.  'generic': one plan for every call, for a statement
 *		whose best plan does not depend on its parameters; otherwise it is
 *		planned with its actual parameters at each call (the batch bounds
 *		decide between index and sequential scans).
 */
SPIPlanPtr
pipeline_prepare_kept(const char *sql, int nargs, Oid *types, bool generic)
{
	SPIPlanPtr	plan;

	plan = SPI_prepare_cursor(sql, nargs, types,
							  generic ? CURSOR_OPT_GENERIC_PLAN : CURSOR_OPT_CUSTOM_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed (%s) for: %s",
			 SPI_result_code_string(SPI_result), sql);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * pipeline_result_datum
 *		A value of the last SPI result (row and column from 0).
 */
Datum
pipeline_result_datum(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col + 1, isnull);
}

/*
 * pipeline_result_int64
 *		A bigint (or smaller integer) of the last SPI result; NULL reads as 0.
 */
int64
pipeline_result_int64(int row, int col)
{
	bool		isnull;
	Datum		d = pipeline_result_datum(row, col, &isnull);

	if (isnull)
		return 0;
	switch (SPI_gettypeid(SPI_tuptable->tupdesc, col + 1))
	{
		case INT4OID:
			return DatumGetInt32(d);
		case INT2OID:
			return DatumGetInt16(d);
		default:
			return DatumGetInt64(d);
	}
}

/*
 * pipeline_result_text
 *		A value of the last SPI result as text, or NULL.
 */
char *
pipeline_result_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col + 1);
}

/*
 * pipeline_qualified_name
 *		schema.relation, each part quoted as needed.
 */
char *
pipeline_qualified_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errdetail("A pipeline refers to a table that has been dropped."),
				 errhint("Drop the pipeline with pipeline.drop_pipeline, or recreate the table and the pipeline.")));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

/*
 * pipeline_quote_list
 *		"prefix.a, prefix.b" for a list of column names (no prefix when NULL).
 */
char *
pipeline_quote_list(List *names, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		if (prefix)
			appendStringInfo(&buf, "%s.", prefix);
		appendStringInfoString(&buf, quote_identifier(lfirst(lc)));
	}
	return buf.data;
}

/*
 * pipeline_columns_match
 *		"a.c1 = b.c1 AND a.c2 = b.c2" over columns (exact names).
 */
char *
pipeline_columns_match(List *columns, const char *a, const char *b)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, columns)
	{
		const char *c = quote_identifier(lfirst(lc));

		appendStringInfo(&buf, "%s%s.%s = %s.%s", buf.len ? " AND " : "", a, c, b, c);
	}
	return buf.data;
}

/*
 * pipeline_key_match
 *		"a.k1 = b.k1 AND a.k2 = b.k2" over the key columns.
 */
char *
pipeline_key_match(const PipelineDef *def, const char *a, const char *b)
{
	return pipeline_columns_match(def->key, a, b);
}

/*
 * try_in_subtransaction
 *		Runs fn(arg) in a subtransaction, kept when it succeeds and 'keep',
 *		rolled back otherwise.  Returns NULL when it succeeded, or its error.
 */
static ErrorData *
try_in_subtransaction(void (*fn) (void *arg), void *arg, bool keep)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		fn(arg);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	return edata;
}

/*
 * pipeline_try
 *		Runs fn(arg) in a subtransaction.  Returns NULL when it succeeded, or
 *		its error once the subtransaction is rolled back (the caller decides
 *		whether to re-raise, wrap or absorb it).
 */
ErrorData *
pipeline_try(void (*fn) (void *arg), void *arg)
{
	return try_in_subtransaction(fn, arg, true);
}

/*
 * pipeline_try_undone
 *		As pipeline_try, but what fn(arg) did is rolled back even when it
 *		succeeded: a trial.  What fn keeps must live outside the
 *		subtransaction (the caller's memory).
 */
ErrorData *
pipeline_try_undone(void (*fn) (void *arg), void *arg)
{
	return try_in_subtransaction(fn, arg, false);
}

/* What pipeline_try_prepare() prepares in a subtransaction. */
typedef struct PrepareCall
{
	const PipelineDef *def;
	const char *sql;
	int			nargs;
	Oid		   *types;
} PrepareCall;

/*
 * prepare_as_owner
 *		Prepares (and forgets) a statement as the pipeline's owner.
 */
static void
prepare_as_owner(void *arg)
{
	PrepareCall *call = arg;
	PipelineUserContext ctx;
	SPIPlanPtr	plan;

	pipeline_become_owner(call->def, &ctx);
	plan = SPI_prepare(call->sql, call->nargs, call->types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_freeplan(plan);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_try_prepare
 *		Prepares a statement of a pipeline's as its owner, in a
 *		subtransaction: whether it parses and plans as it will run.
 *		Returns the error it raised, or NULL.
 */
ErrorData *
pipeline_try_prepare(const PipelineDef *def, const char *sql, int nargs, Oid *types)
{
	PrepareCall call = {def, sql, nargs, types};

	return pipeline_try(prepare_as_owner, &call);
}

/*
 * pipeline_oid_list_to_array
 *		A List of oids as an oid[] datum.
 */
Datum
pipeline_oid_list_to_array(List *oids)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, oids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/*
 * pipeline_oid_array_to_list
 *		An oid[] (or regclass[]) datum as a List of Oid, NULL elements left
 *		out, each once.
 */
List *
pipeline_oid_array_to_list(Datum array)
{
	Datum	   *values;
	bool	   *nulls;
	int			n;
	List	   *oids = NIL;

	deconstruct_array(DatumGetArrayTypeP(array), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &values, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			oids = list_append_unique_oid(oids, DatumGetObjectId(values[i]));
	return oids;
}

/*
 * pipeline_list_to_text_array
 *		A List of C strings as a text[] datum.
 */
Datum
pipeline_list_to_text_array(List *names)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(names), 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, names)
		elems[i++] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * pipeline_text_array_to_list
 *		A text[] datum as a List of C strings.  A NULL element is an error
 *		naming 'what'.
 */
List *
pipeline_text_array_to_list(Datum array, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain null", what),
					 errdetail("Element %d of %s is null.", i + 1, what),
					 errhint("List column names, for example ARRAY['order_id'].")));
		result = lappend(result, TextDatumGetCString(elems[i]));
	}
	return result;
}

/*
 * exec_as_extension
 *		Runs a statement as the extension, through a kept plan or not.
 */
static int
exec_as_extension(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
				  bool kept)
{
	PipelineUserContext ctx;
	int			n;

	pipeline_become_internal(&ctx);
	n = kept ? pipeline_exec_kept(sql, nargs, types, values, nulls, false, 0)
		: pipeline_exec(sql, nargs, types, values, nulls, false, 0);
	pipeline_restore_user(&ctx);
	return n;
}

/*
 * pipeline_exec_internal
 *		Runs a statement on the extension's own catalogs (schema pipeline,
 *		never a relation a user owns) as the extension; returns
 *		SPI_processed.
 */
int
pipeline_exec_internal(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	return exec_as_extension(sql, nargs, types, values, nulls, false);
}

/*
 * pipeline_exec_internal_kept
 *		As pipeline_exec_internal, for a statement of fixed text that every
 *		run or batch executes (pipeline_exec_kept).
 */
int
pipeline_exec_internal_kept(const char *sql, int nargs, Oid *types, Datum *values,
							const char *nulls)
{
	return exec_as_extension(sql, nargs, types, values, nulls, true);
}

/*
 * pipeline_exec_as_relation_owner
 *		Runs a statement on a relation a user owns as that relation's owner
 *		(pipeline_become_relation_owner); returns SPI_processed.
 */
int
pipeline_exec_as_relation_owner(Oid relid, const char *sql, int nargs, Oid *types, Datum *values,
								const char *nulls)
{
	PipelineUserContext ctx;
	int			n;

	pipeline_become_relation_owner(relid, &ctx);
	n = pipeline_exec(sql, nargs, types, values, nulls, false, 0);
	pipeline_restore_user(&ctx);
	return n;
}

/*
 * pipeline_ensure_trigger
 *		Gives table 'relid' the extension's trigger 'name' -- 'definition'
 *		is its CREATE TRIGGER text after the name, executing 'function' --
 *		as the table's owner, unless the table has a trigger of that name
 *		executing that function already (another trigger of the name makes
 *		CREATE TRIGGER fail); and enables it for the sessions 'enabled' says
 *		(pg_trigger.tgenabled) when it is enabled otherwise: a trigger
 *		PostgreSQL cloned onto a partition keeps the mode its parent's had
 *		when it was cloned.  The caller is connected to SPI.
 */
void
pipeline_ensure_trigger(Oid relid, const char *name, const char *definition,
						const char *function, char enabled)
{
	char	   *table = pipeline_qualified_name(relid);
	Oid			types[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		values[3] = {ObjectIdGetDatum(relid), CStringGetTextDatum(name),
	CStringGetTextDatum(function)};
	char		current = enabled;
	bool		isnull;

	if (pipeline_exec_internal("SELECT tgenabled FROM pg_catalog.pg_trigger WHERE tgrelid = $1 "
							   "AND tgname = $2 AND tgfoid = $3::regprocedure",
							   3, types, values, NULL) == 1)
		current = DatumGetChar(pipeline_result_datum(0, 0, &isnull));
	else
	{
		pipeline_exec_as_relation_owner(relid, psprintf("CREATE TRIGGER %s %s EXECUTE FUNCTION %s",
														quote_identifier(name),
														psprintf(definition, table), function),
										0, NULL, NULL, NULL);
		current = TRIGGER_FIRES_ON_ORIGIN;
	}
	if (current != enabled)
		pipeline_exec_as_relation_owner(relid,
										psprintf("ALTER TABLE %s ENABLE %s TRIGGER %s", table,
												 enabled == TRIGGER_FIRES_ALWAYS ? "ALWAYS"
												 : enabled == TRIGGER_FIRES_ON_REPLICA ? "REPLICA" : "",
												 quote_identifier(name)),
										0, NULL, NULL, NULL);
}

/* One parse of an expression for pipeline_require_expression. */
typedef struct ExpressionParse
{
	const char *text;
	bool		single;			/* out: exactly one expression */
} ExpressionParse;

/*
 * parse_expression
 *		Parses text as PL/pgSQL parses an expression (the target list of a
 *		SELECT without the keyword) and tells whether it is exactly one
 *		expression: one unnamed target and no other clause.
 */
static void
parse_expression(void *arg)
{
	ExpressionParse *p = arg;
	List	   *raw = raw_parser(p->text, RAW_PARSE_PLPGSQL_EXPR);
	SelectStmt *sel;

	p->single = false;
	if (list_length(raw) != 1)
		return;
	sel = (SelectStmt *) linitial_node(RawStmt, raw)->stmt;
	if (!IsA(sel, SelectStmt) || list_length(sel->targetList) != 1 ||
		sel->distinctClause || sel->intoClause || sel->fromClause || sel->whereClause ||
		sel->groupClause || sel->havingClause || sel->windowClause || sel->sortClause ||
		sel->limitOffset || sel->limitCount || sel->lockingClause || sel->withClause)
		return;
	p->single = linitial_node(ResTarget, sel->targetList)->name == NULL;
}

/*
 * pipeline_require_expression
 *		Refuses a user's expression (named 'what' in the error: "filter",
 *		"mapping for column \"x\"") unless it is exactly one SQL expression,
 *		on its own and in parentheses, as the extension splices it into its
 *		statements.  Text such as "true) OR (true" would otherwise change
 *		the statement around it, and a trailing -- comment would swallow the
 *		closing parenthesis.  Names and types are checked later, by planning
 *		the statements as the owner.
 */
void
pipeline_require_expression(const char *expr, const char *what)
{
	ExpressionParse alone = {expr, false};
	ExpressionParse wrapped = {psprintf("(%s)", expr), false};
	ErrorData  *edata = pipeline_try(parse_expression, &alone);
	const char *hint = "Write exactly one expression: balanced parentheses, no alias, no FROM or WHERE clause, no -- comment at its end (read other tables in a parenthesized subquery).";

	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("invalid %s: %s", what, edata->message),
				 errdetail("The expression is: %s", expr),
				 errhint("%s", hint)));
	if (alone.single)
		edata = pipeline_try(parse_expression, &wrapped);
	if (alone.single && edata == NULL && wrapped.single)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("%s must be a single SQL expression", what),
			 errdetail("The expression \"%s\" is not one expression%s.", expr,
					   alone.single ? " once in parentheses" : ""),
			 errhint("%s", hint)));
}

/*
 * pipeline_text_arg
 *		Text argument 'n' of an SQL function as a C string, NULL for SQL
 *		NULL.
 */
char *
pipeline_text_arg(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * pipeline_check_name
 *		A pipeline's or a step's name ('what'): 1 to 63 bytes.
 */
void
pipeline_check_name(const char *name, const char *what)
{
	if (name != NULL && name[0] != '\0' && strlen(name) <= NAMEDATALEN - 1)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_NAME),
			 errmsg("invalid %s name", what),
			 errdetail("A %s name is 1 to %d bytes long.", what, NAMEDATALEN - 1),
			 errhint("Choose a shorter, non-empty name.")));
}

/*
 * pipeline_check_choice
 *		Errors unless value is one of the NULL-terminated choices.
 */
void
pipeline_check_choice(const char *option, const char *value, const char *const *choices)
{
	StringInfoData all;

	initStringInfo(&all);
	for (const char *const *c = choices; *c; c++)
	{
		if (strcmp(value, *c) == 0)
			return;
		appendStringInfo(&all, "%s%s", all.len ? ", " : "", *c);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown %s \"%s\"", option, value),
			 errdetail("%s must be one of: %s.", option, all.data),
			 errhint("Pass one of the listed values.")));
}

/*
 * pipeline_list_position
 *		The position of s in a List of C strings, or -1.
 */
int
pipeline_list_position(List *list, const char *s)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		if (strcmp(lfirst(lc), s) == 0)
			return foreach_current_index(lc);
	}
	return -1;
}

/*
 * pipeline_list_has_string
 *		Whether a List of C strings contains s.
 */
bool
pipeline_list_has_string(List *list, const char *s)
{
	return pipeline_list_position(list, s) >= 0;
}

/*
 * pipeline_arm_timeout
 *		Starts a statement_timeout of 'ms' (none when 0 or less) for a
 *		statement the extension runs on a user's behalf (a batch, a step's
 *		command).  Statements inside a procedure do not arm
 *		statement_timeout, so the timer is set here; a sooner deadline of
 *		the caller's own statement_timeout is kept.  Returns that deadline
 *		(0: none), for pipeline_disarm_timeout.
 */
TimestampTz
pipeline_arm_timeout(int64 ms)
{
	TimestampTz outer = get_timeout_active(STATEMENT_TIMEOUT) ?
	get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
	TimestampTz mine;

	if (ms <= 0)
		return outer;
	mine = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	if (outer == 0 || mine < outer)
		enable_timeout_at(STATEMENT_TIMEOUT, mine);
	return outer;
}

/*
 * pipeline_disarm_timeout
 *		After the statement: back to the caller's deadline, if it had one.
 */
void
pipeline_disarm_timeout(int64 ms, TimestampTz outer)
{
	if (ms <= 0)
		return;
	if (outer != 0)
		enable_timeout_at(STATEMENT_TIMEOUT, outer);
	else
		disable_timeout(STATEMENT_TIMEOUT, false);
}
