/*-------------------------------------------------------------------------
 *
 * fixture_rows.c
 *	  The rows pipeline.test runs a pipeline over (test_run.c), held by
 *	  this backend for the test's duration and read by the test's batch
 *	  statements through pipeline.test_rows().
 *
 * A test's rows never touch the staging table: a run does not read the
 * rows of its own transaction (the cursor rule), and a test must leave the
 * staging table and the cursor as they were.  The batch statements of a
 * test read them instead from this function, as a JSON array, in the
 * pipeline's owner's security-restricted context: no table, no privilege
 * to grant, and outside a test the function returns NULL (no rows).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"

PG_FUNCTION_INFO_V1(pipeline_test_rows);

/* The fixture of the test under way in this backend, or NULL. */
static Jsonb *fixture_rows = NULL;

/*
 * pipeline_fixture_set
 *		Holds 'rows' (a JSON array of objects) for the test about to run, or
 *		forgets them (NULL).  The caller keeps 'rows' alive meanwhile.
 */
void
pipeline_fixture_set(Jsonb *rows)
{
	fixture_rows = rows;
}

/*
 * pipeline_test_rows
 *		SQL: pipeline.test_rows() -> jsonb, the rows of the test under way,
 *		NULL outside a test.
 */
Datum
pipeline_test_rows(PG_FUNCTION_ARGS)
{
	pipeline_check_version(ERROR);
	if (fixture_rows == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(fixture_rows);
}
