/*-------------------------------------------------------------------------
 *
 * test_run.c
 *	  pipeline.test(pipeline_name, rows, against): a pipeline's logic over
 *	  fixture rows, in a subtransaction rolled back, and what would land.
 *
 * A test is a run of the pipeline (pipeline_run_fixture) whose one batch
 * reads the rows given as JSON (fixture_rows.c) instead of the staging
 * table: the batch statement, mapping, filter, row rules, checks, joins,
 * strategy and quarantine are the pipeline's own, executed as its owner,
 * against its current target or (against => 'empty') against the target
 * and the pipeline's own state tables emptied first.  Before the
 * subtransaction is rolled back the test reads what the run left: the
 * target rows it wrote (those whose xmin is a transaction of the test),
 * the rows it deleted (read at a snapshot taken before the run), the rows
 * it quarantined with their reasons, its check results and its counts.  Nothing of it stays: no cursor moves, no staged row is
 * consumed, no run is in the history; only sequences keep their advance.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"

PG_FUNCTION_INFO_V1(pipeline_test);

/* A test under way: what it was asked, and what it found. */
typedef struct PipelineTest
{
	PipelineDef *def;
	bool		empty;			/* against an empty target */
	RunCounts	counts;
	ErrorData  *error;			/* the run's, when it failed */
	char	   *target_rows;	/* JSON arrays */
	char	   *deleted_rows;
	char	   *run_rows;		/* JSON object: quarantined, checks */
} PipelineTest;

/*
 * bad_fixture
 *		The error of fixture rows the pipeline's source cannot hold.
 */
static void bad_fixture(const char *place, const char *message, const char *detail,
						const char *hint) pg_attribute_noreturn();
static void
bad_fixture(const char *place, const char *message, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid fixture row at %s: %s", place, message),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

/*
 * refuse_untestable
 *		Pipelines a test cannot run exactly: silence would be a wrong answer.
 */
static void
refuse_untestable(const PipelineDef *def)
{
	const char *why = NULL;
	const char *hint = NULL;

	if (def->sharded || pipeline_citus_kind(def->target) != CITUS_NONE)
	{
		why = psprintf("Its %s is distributed by Citus: its shards are written on the workers, whose writes a test cannot tell apart from others'.",
					   def->sharded ? "staging table" : "target");
		hint = "Test a pipeline of the same definition on tables of the coordinator.";
	}
	else if (def->hard_deletes != NULL && strcmp(def->hard_deletes, "ignore") != 0)
	{
		why = "It deletes the keys an extract lacks, which it learns from the whole staged extract; a test's rows are one batch, not an extract.";
		hint = "Test a pipeline of the same definition with hard_deletes => 'ignore'.";
	}
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline.test cannot run pipeline \"%s\"", def->name),
				 errdetail("%s", why),
				 errhint("%s", hint)));
}

/*
 * check_fixture_shape
 *		'rows' is an array of objects whose keys are columns of the source
 *		(not _xid or _seq: a test's rows have no place in the staging order).
 */
static void
check_fixture_shape(const PipelineDef *def, Jsonb *rows)
{
	List	   *columns = pipeline_relation_columns(def->source);
	char	   *source = pipeline_qualified_name(def->source);
	char	   *listed = pipeline_quote_list(columns, NULL);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	int			row = -1;
	int			depth = 0;

	if (!JB_ROOT_IS_ARRAY(rows) || JB_ROOT_IS_SCALAR(rows))
		bad_fixture("rows", "not an array",
					"A test's rows are a JSON array of objects, each a row of the staging table.",
					"Pass rows => '[{\"id\": 1}, {\"id\": 2}]'.");
	it = JsonbIteratorInit(&rows->root);
	while ((token = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (token == WJB_BEGIN_ARRAY || token == WJB_BEGIN_OBJECT)
			depth++;
		else if (token == WJB_END_ARRAY || token == WJB_END_OBJECT)
			depth--;
		if ((depth == 1 && token == WJB_ELEM) || (depth == 2 && token == WJB_BEGIN_OBJECT))
			row++;
		if (depth == 1 && token == WJB_ELEM)
			bad_fixture(psprintf("rows[%d]", row), "not an object",
						psprintf("Each row is a JSON object of columns of %s.", source),
						"Write the row as {\"column\": value, ...}.");
		if (depth == 2 && token == WJB_KEY)
		{
			char	   *key = pnstrdup(v.val.string.val, v.val.string.len);

			if (!pipeline_list_has_string(columns, key))
				bad_fixture(psprintf("rows[%d].%s", row, key),
							psprintf("%s has no column \"%s\"", source, key),
							psprintf("Its columns are %s.", listed),
							"Name a column of the staging table; the columns a row leaves out are NULL.");
		}
	}
}

/* One typing of fixture rows: all of them (row 0), or the row numbered 'row'. */
typedef struct FixtureTyping
{
	const PipelineDef *def;
	int64		row;
} FixtureTyping;

/*
 * populate_rows
 *		Types fixture rows as rows of the source, as the pipeline's owner:
 *		the test's batch does the same, and a value no column can hold must
 *		be the caller's error, not a row the pipeline quarantines.
 */
static void
populate_rows(void *arg)
{
	FixtureTyping *typing = (FixtureTyping *) arg;
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(typing->row);
	PipelineUserContext ctx;

	pipeline_become_owner(typing->def, &ctx);
	pipeline_exec(psprintf("SELECT pg_catalog.jsonb_populate_record(NULL::%s, f.value) "
						   "FROM pg_catalog.jsonb_array_elements(pipeline.test_rows()) "
						   "WITH ORDINALITY AS f(value, n) WHERE $1 = 0 OR f.n = $1",
						   pipeline_qualified_name(typing->def->source)),
				  1, &type, &value, NULL, true, 0);
	pipeline_restore_user(&ctx);
}

/*
 * check_fixture_types
 *		Every row's values fit the source's columns; the first that does
 *		not is named, with the error of its value (tried alone only when
 *		some row failed).
 */
static void
check_fixture_types(const PipelineDef *def, int nrows)
{
	FixtureTyping typing = {def, 0};
	ErrorData  *error = pipeline_try(populate_rows, &typing);

	if (error == NULL)
		return;
	if (error->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(error);
	for (typing.row = 1; typing.row <= nrows; typing.row++)
	{
		ErrorData  *alone = pipeline_try(populate_rows, &typing);

		if (alone != NULL)
		{
			error = alone;
			break;
		}
	}
	if (typing.row > nrows)
		ReThrowError(error);	/* not a row's own failure */
	ereport(ERROR,
			(errcode(error->sqlerrcode),
			 errmsg("invalid fixture row at rows[%lld]: %s", (long long) typing.row - 1,
					error->message),
			 errdetail("A test's rows must fit the columns of %s, as staged rows do.",
					   pipeline_qualified_name(def->source)),
			 errhint("Give each column a value its type accepts, or leave the column out (NULL).")));
}

/*
 * empty_state
 *		Against an empty target: the target and what the pipeline keeps of
 *		its past (tombstones, an aggregate's groups and rows, a row state)
 *		emptied, each as its owner, with DELETE (concurrent readers keep
 *		seeing the rows; the rollback brings them back) -- when the
 *		pipeline's owner may delete the target's rows.
 */
static void
empty_state(const PipelineDef *def)
{
	Oid			tables[4] = {def->target, def->tombstones, def->group_state, def->row_state};

	/* the target may be another role's: emptying it is a delete of its rows */
	pipeline_require_privilege(def->owner, def->target, ACL_DELETE, "DELETE", "target");
	for (int i = 0; i < lengthof(tables); i++)
		if (OidIsValid(tables[i]))
			pipeline_exec_as_relation_owner(tables[i],
											psprintf("DELETE FROM %s", pipeline_qualified_name(tables[i])),
											0, NULL, NULL, NULL);
}

/*
 * own_xids
 *		xid[]: the transaction ids of the test so far -- its subtransaction's
 *		and those of the subtransactions committed inside it.  A target row
 *		whose xmin is one of them was written by the test.
 */
static Datum
own_xids(void)
{
	TransactionId *children;
	int			n = xactGetCommittedChildren(&children);
	Datum	   *ids = palloc(sizeof(Datum) * (n + 1));
	int			count = 0;

	if (TransactionIdIsValid(GetCurrentTransactionIdIfAny()))
		ids[count++] = TransactionIdGetDatum(GetCurrentTransactionIdIfAny());
	for (int i = 0; i < n; i++)
		ids[count++] = TransactionIdGetDatum(children[i]);
	return PointerGetDatum(construct_array(ids, count, XIDOID, sizeof(TransactionId), true,
										   TYPALIGN_INT));
}

/*
 * written_rows
 *		The target rows the test wrote, as a JSON array in key order, read
 *		as the target's owner.
 */
static char *
written_rows(const PipelineDef *def)
{
	Oid			type = XIDARRAYOID;
	Datum		value = own_xids();
	char	   *order = def->key != NIL ? psprintf("%s, ", pipeline_quote_list(def->key, "t")) : "";

	pipeline_exec_as_relation_owner(def->target,
									psprintf("SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) "
											 "ORDER BY %spg_catalog.to_jsonb(t)::text), '[]')::text "
											 "FROM %s t WHERE t.xmin OPERATOR(pg_catalog.=) ANY ($1)",
											 order, pipeline_qualified_name(def->target)),
									1, &type, &value, NULL);
	return pipeline_result_text(0, 0);
}

/*
 * deleted_rows
 *		The target rows the test deleted, as they were, in key order: rows
 *		the snapshot taken before the run ('before') sees and the test
 *		updated or deleted (xmax), whose key the target no longer holds.
 *		A target without a key has its rows appended, never deleted.
 */
static char *
deleted_rows(const PipelineDef *def, Snapshot before)
{
	char	   *target = pipeline_qualified_name(def->target);
	Oid			type = XIDARRAYOID;
	Datum		value = own_xids();
	SPIPlanPtr	plan;
	PipelineUserContext ctx;
	char	   *deleted;
	bool		isnull;

	if (def->key == NIL)
		return "[]";
	pipeline_become_relation_owner(def->target, &ctx);
	plan = SPI_prepare(psprintf("SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) "
								"ORDER BY %s, pg_catalog.to_jsonb(t)::text), '[]') "
								"FROM %s t WHERE t.xmax OPERATOR(pg_catalog.=) ANY ($1)",
								pipeline_quote_list(def->key, "t"), target),
					   1, &type);
	if (plan == NULL || SPI_execute_snapshot(plan, &value, NULL, before, InvalidSnapshot,
											 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the rows a test deleted failed: %s", SPI_result_code_string(SPI_result));
	type = JSONBOID;
	value = pipeline_result_datum(0, 0, &isnull);
	pipeline_exec(psprintf("SELECT coalesce(pg_catalog.jsonb_agg(c.value ORDER BY c.n), '[]')::text "
						   "FROM pg_catalog.jsonb_array_elements($1) WITH ORDINALITY AS c(value, n) "
						   "CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%s, c.value) r "
						   "WHERE NOT EXISTS (SELECT FROM %s t WHERE %s)",
						   target, target, pipeline_key_match(def, "t", "r")),
				  1, &type, &value, NULL, false, 1);
	deleted = pipeline_result_text(0, 0);
	pipeline_restore_user(&ctx);
	return deleted;
}

/*
 * run_rows
 *		What the test's run recorded: its quarantined rows (by their place
 *		in the fixture) with their reasons, and its check results.
 */
static char *
run_rows(int64 run_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(run_id);

	pipeline_exec_internal("SELECT pg_catalog.jsonb_build_object("
						   "'quarantined', (SELECT coalesce(pg_catalog.jsonb_agg("
						   "pg_catalog.jsonb_build_object('row', q.source_seq - 1, 'values', q.raw_row, "
						   "'reason', q.reason, 'sqlstate', q.sqlstate) ORDER BY q.source_seq, q.id), '[]') "
						   "FROM pipeline.quarantine_log q WHERE q.run_id = $1), "
						   "'checks', (SELECT coalesce(pg_catalog.jsonb_agg("
						   "pg_catalog.jsonb_build_object('check', c.check_name, 'status', c.status, "
						   "'failing', c.failing, 'total', c.total, 'missing', c.missing, "
						   "'observed', c.observed, 'message', c.message) ORDER BY c.check_name), '[]') "
						   "FROM pipeline.check_results c WHERE c.run_id = $1))::text",
						   1, &type, &value, NULL);
	return pipeline_result_text(0, 0);
}

/*
 * run_test
 *		The test's body, in the subtransaction pipeline_try_undone rolls
 *		back: empty what it must, run, read what the run left.
 */
static void
run_test(void *arg)
{
	PipelineTest *t = (PipelineTest *) arg;
	int64		run_id;
	Snapshot	before;

	if (t->empty)
		empty_state(t->def);
	CommandCounterIncrement();
	before = RegisterSnapshot(GetTransactionSnapshot());
	run_id = pipeline_run_fixture(t->def->name, &t->counts, &t->error);
	CommandCounterIncrement();
	t->target_rows = written_rows(t->def);
	t->deleted_rows = deleted_rows(t->def, before);
	UnregisterSnapshot(before);
	t->run_rows = run_rows(run_id);
}

/*
 * json_string
 *		A JSON string literal of 's', or null.
 */
static char *
json_string(const char *s)
{
	StringInfoData buf;

	if (s == NULL)
		return "null";
	initStringInfo(&buf);
	escape_json(&buf, s);
	return buf.data;
}

/*
 * test_result
 *		The test's result as JSON text: status, error, counts, target,
 *		deleted (the run's rows, quarantined and checks, are added to it).
 */
static char *
test_result(const PipelineTest *t)
{
	const RunCounts *c = &t->counts;
	char	   *error = "null";

	if (t->error)
		error = psprintf("{\"sqlstate\": %s, \"message\": %s, \"detail\": %s}",
						 json_string(unpack_sql_state(t->error->sqlerrcode)),
						 json_string(t->error->message), json_string(t->error->detail));
	return psprintf("{\"status\": \"%s\", \"error\": %s, \"counts\": {\"read\": %lld, "
					"\"inserted\": %lld, \"updated\": %lld, \"deleted\": %lld, \"stale\": %lld, "
					"\"filtered\": %lld, \"quarantined\": %lld, \"dropped\": %lld, "
					"\"unchanged\": %lld}, \"target\": %s, \"deleted\": %s}",
					t->error ? "failed" : "succeeded", error,
					(long long) c->read, (long long) c->inserted, (long long) c->updated,
					(long long) c->deleted, (long long) c->stale, (long long) c->filtered,
					(long long) c->quarantined, (long long) c->dropped, (long long) c->unchanged,
					t->target_rows, t->deleted_rows);
}

/*
 * against_empty
 *		The against argument: 'current' (false; also NULL) or 'empty'
 *		(true).
 */
static bool
against_empty(FunctionCallInfo fcinfo)
{
	char	   *against = PG_ARGISNULL(2) ? "current" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	const char *const choices[] = {"current", "empty", NULL};

	pipeline_check_choice("against", against, choices);
	return strcmp(against, "empty") == 0;
}

/*
 * test_fixture
 *		Types the fixture's rows and runs the test over them, the rows held
 *		for the test's statements meanwhile; returns the test's error, or
 *		NULL.
 */
static ErrorData *
test_fixture(PipelineTest *t, Jsonb *rows)
{
	ErrorData  *volatile error = NULL;

	pipeline_fixture_set(rows);
	PG_TRY();
	{
		check_fixture_types(t->def, JB_ROOT_COUNT(rows));
		error = pipeline_try_undone(run_test, t);
	}
	PG_FINALLY();
	{
		pipeline_fixture_set(NULL);
	}
	PG_END_TRY();
	return error;
}

/*
 * pipeline_test
 *		SQL: pipeline.test(pipeline_name, rows, against => 'current') ->
 *		jsonb.
 */
Datum
pipeline_test(PG_FUNCTION_ARGS)
{
	MemoryContext callcxt = CurrentMemoryContext;
	PipelineTest t = {0};
	Jsonb	   *rows;
	ErrorData  *error;
	char	   *result;
	char	   *run;

	pipeline_check_version(ERROR);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "pipeline name" : "rows"),
				 errdetail("A test runs one pipeline over the rows it is given."),
				 errhint("Call pipeline.test('pipeline', '[{\"id\": 1}]').")));
	rows = PG_GETARG_JSONB_P(1);
	t.empty = against_empty(fcinfo);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	t.def = pipeline_load(text_to_cstring(PG_GETARG_TEXT_PP(0)), false, DEF_LOCK_NONE);
	pipeline_check_manage(t.def);
	refuse_untestable(t.def);
	check_fixture_shape(t.def, rows);
	error = test_fixture(&t, rows);
	if (error)
		ReThrowError(error);
	result = MemoryContextStrdup(callcxt, test_result(&t));
	run = MemoryContextStrdup(callcxt, t.run_rows);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall2(jsonb_concat,
										DirectFunctionCall1(jsonb_in, CStringGetDatum(result)),
										DirectFunctionCall1(jsonb_in, CStringGetDatum(run))));
}
