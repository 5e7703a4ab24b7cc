/*-------------------------------------------------------------------------
 *
 * test_run.c
 *	  pipeline.test(pipeline_name, rows, against): a pipeline's logic over
 *	  fixture rows, in a subtransaction rolled back, and what would land.
 *
 * A test is a run of the pipeline (pipeline_run_fixture, run.c) whose
 * batches read the rows given as JSON (fixture_rows.c) instead of the
 * staging table: what a run does first, then the batch statement --
 * mapping, filter, row rules, checks, joins, strategy, quarantine -- in
 * batches of batch_size, as the pipeline's owner, against its current
 * target or (against => 'empty') against the target and the pipeline's
 * own state tables emptied first.  Everything happens in a subtransaction
 * that is always rolled back; before that, the test reads what the run
 * left (test_results.c).  No staged row is read or consumed, no cursor
 * moves, no history, alert or OpenLineage event stays, and the caller's
 * commit wakes no worker for the rows the test wrote; only sequences keep
 * their advance.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"
#include "shared_memory/shared_memory.h"

PG_FUNCTION_INFO_V1(pipeline_test);

/* A test under way: what it was asked, and what it found. */
typedef struct PipelineTest
{
	char	   *name;
	Jsonb	   *rows;
	bool		empty;			/* against an empty target */
	RunCounts	counts;
	ErrorData  *error;			/* the run's, when it failed */
	char	   *document;		/* JSON: status, error, counts, target,
								 * deleted */
	char	   *run_rows;		/* JSON: quarantined, checks */
} PipelineTest;

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
		why = "It deletes the keys an extract lacks, which it learns from the whole staged extract; a test's rows are batches, not an extract.";
		hint = "Test a pipeline of the same definition with hard_deletes => 'ignore'.";
	}
	else if (def->extract_id != NULL)
	{
		why = "It applies extracts whole and in order (extract_id), which it follows across the staged transactions; a test's rows belong to none.";
		hint = "Test a pipeline of the same definition without extract_id.";
	}
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline.test cannot run pipeline \"%s\"", def->name),
				 errdetail("%s", why),
				 errhint("%s", hint)));
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

	pipeline_require_privilege(def->owner, def->target, ACL_DELETE, "DELETE", "target");
	for (int i = 0; i < lengthof(tables); i++)
		if (OidIsValid(tables[i]))
			pipeline_exec_as_relation_owner(tables[i],
											psprintf("DELETE FROM %s", pipeline_qualified_name(tables[i])),
											0, NULL, NULL, NULL);
}

/*
 * run_test
 *		The test's body, in the subtransaction pipeline_try_undone rolls
 *		back: the definition locked against alter and drop and checked,
 *		the fixture checked, the target emptied when asked, the run, and
 *		what it left.
 */
static void
run_test(void *arg)
{
	PipelineTest *t = (PipelineTest *) arg;
	PipelineDef *def = pipeline_load(t->name, false, DEF_LOCK_SHARE);
	CommandId	before_run;
	int64		run_id;

	pipeline_check_manage(def);
	refuse_untestable(def);
	/* its rows are read back as the pipeline's owner: all of them */
	pipeline_require_read_every_row(def->target, def->owner, "A test's result");
	pipeline_check_fixture_shape(def, t->rows);
	pipeline_check_fixture_rows(def, JB_ROOT_COUNT(t->rows));
	if (t->empty)
		empty_state(def);
	CommandCounterIncrement();
	before_run = GetCurrentCommandId(false);
	run_id = pipeline_run_fixture(def, &t->counts, &t->error);
	t->document = pipeline_test_document(&t->counts, t->error, pipeline_test_written_rows(def),
										 pipeline_test_deleted_rows(def, before_run));
	t->run_rows = pipeline_test_run_rows(run_id);
}

/*
 * test_fixture
 *		Runs the test with its rows held for its statements; returns its
 *		error, or NULL.  What the test's writes noted for the caller's
 *		commit (wake the workers reading those tables) is forgotten.
 */
static ErrorData *
test_fixture(PipelineTest *t)
{
	ErrorData  *volatile error = NULL;
	PipelineStagedNote note;

	pipeline_staged_rows_mark(&note);
	pipeline_fixture_set(t->rows);
	PG_TRY();
	{
		error = pipeline_try_undone(run_test, t);
	}
	PG_FINALLY();
	{
		pipeline_fixture_set(NULL);
		pipeline_staged_rows_rewind(&note);
	}
	PG_END_TRY();
	return error;
}

/*
 * against_empty
 *		The against argument: 'current' (false; also NULL) or 'empty'
 *		(true).
 */
static bool
against_empty(FunctionCallInfo fcinfo)
{
	char	   *against = PG_ARGISNULL(2) ? "current" : pipeline_text_arg(fcinfo, 2);
	const char *const choices[] = {"current", "empty", NULL};

	pipeline_check_choice("against", against, choices);
	return strcmp(against, "empty") == 0;
}

/*
 * refuse_nested_test
 *		A test started from inside a test (an expression of the tested
 *		pipeline) would take the rows of the one under way.
 */
static void
refuse_nested_test(void)
{
	if (pipeline_fixture_held())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot test a pipeline inside a test"),
				 errdetail("This session is running pipeline.test; tests do not nest."),
				 errhint("Do not call pipeline.test from a pipeline's expressions, checks or the triggers of its target.")));
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
	ErrorData  *error;
	char	   *document;
	char	   *run;

	pipeline_check_version(ERROR);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "pipeline name" : "rows"),
				 errdetail("A test runs one pipeline over the rows it is given."),
				 errhint("Call pipeline.test('pipeline', '[{\"id\": 1}]').")));
	refuse_nested_test();
	t.rows = PG_GETARG_JSONB_P(1);
	t.empty = against_empty(fcinfo);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	t.name = pipeline_text_arg(fcinfo, 0);
	error = test_fixture(&t);
	if (error)
		ReThrowError(error);
	document = MemoryContextStrdup(callcxt, t.document);
	run = MemoryContextStrdup(callcxt, t.run_rows);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall2(jsonb_concat,
										DirectFunctionCall1(jsonb_in, CStringGetDatum(document)),
										DirectFunctionCall1(jsonb_in, CStringGetDatum(run))));
}
