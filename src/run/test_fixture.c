/*-------------------------------------------------------------------------
 *
 * test_fixture.c
 *	  Whether the rows given to pipeline.test could have been staged: each
 *	  an object of columns of the source, with values the columns' types
 *	  accept, NOT NULL columns given a value (or a default), and the
 *	  source's CHECK constraints met.  A row that fails is the caller's
 *	  error, named by its place in the array -- not a row the pipeline
 *	  quarantines, which a real run never sees.  (The source's triggers and
 *	  foreign keys are not applied.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "run/run.h"

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
 * not_an_object
 *		The error of an element of rows that is not an object.
 */
static void
not_an_object(const PipelineDef *def, int row)
{
	bad_fixture(psprintf("rows[%d]", row), "not an object",
				psprintf("Each row is a JSON object of columns of %s.", pipeline_qualified_name(def->source)),
				"Write the row as {\"column\": value, ...}.");
}

/*
 * pipeline_check_fixture_shape
 *		'rows' is an array of objects whose keys are columns of the source
 *		(not _xid or _seq: a test's rows have no place in the staging order).
 */
void
pipeline_check_fixture_shape(const PipelineDef *def, Jsonb *rows)
{
	List	   *columns = pipeline_relation_columns(def->source);
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
		if ((depth == 1 && token == WJB_ELEM) || (depth == 2 && (token == WJB_BEGIN_OBJECT ||
																 token == WJB_BEGIN_ARRAY)))
			row++;
		if ((depth == 1 && token == WJB_ELEM) || (depth == 2 && token == WJB_BEGIN_ARRAY))
			not_an_object(def, row);
		if (depth == 2 && token == WJB_KEY)
		{
			char	   *key = pnstrdup(v.val.string.val, v.val.string.len);

			if (!pipeline_list_has_string(columns, key))
				bad_fixture(psprintf("rows[%d].%s", row, key),
							psprintf("%s has no column \"%s\"", pipeline_qualified_name(def->source), key),
							psprintf("Its columns are %s.", pipeline_quote_list(columns, NULL)),
							"Name a column of the staging table; a column a row leaves out takes its default.");
		}
	}
}

/* One probe of fixture rows: all of them (row 0), or the row numbered 'row'. */
typedef struct FixtureProbe
{
	const PipelineDef *def;
	int64		row;
} FixtureProbe;

/*
 * populate_rows
 *		Types fixture rows as rows of the source, as the pipeline's owner,
 *		as the test's batch will.
 */
static void
populate_rows(void *arg)
{
	FixtureProbe *probe = (FixtureProbe *) arg;
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(probe->row);
	PipelineUserContext ctx;

	pipeline_become_owner(probe->def, &ctx);
	pipeline_exec(psprintf("SELECT %s FROM " PIPELINE_FIXTURE_ROWS " WHERE $1 = 0 OR f.n = $1",
						   pipeline_fixture_row_sql(probe->def->source)),
				  1, &type, &value, NULL, true, 0);
	pipeline_restore_user(&ctx);
}

/*
 * check_types
 *		Every row's values fit the source's columns; the first that does
 *		not is named, with its value's error (rows are tried alone only
 *		when the whole failed with a data error).
 */
static void
check_types(const PipelineDef *def, int nrows)
{
	FixtureProbe probe = {def, 0};
	ErrorData  *error = pipeline_try(populate_rows, &probe);

	if (error == NULL)
		return;
	if (!pipeline_is_row_error(error->sqlerrcode))
		ReThrowError(error);
	for (probe.row = 1; probe.row <= nrows; probe.row++)
	{
		ErrorData  *alone = pipeline_try(populate_rows, &probe);

		if (alone != NULL && !pipeline_is_row_error(alone->sqlerrcode))
			ReThrowError(alone);
		if (alone != NULL)
		{
			error = alone;
			break;
		}
	}
	if (probe.row > nrows)
		ReThrowError(error);	/* not a row's own failure */
	ereport(ERROR,
			(errcode(error->sqlerrcode),
			 errmsg("invalid fixture row at rows[%lld]: %s", (long long) probe.row - 1, error->message),
			 error->detail ? errdetail("%s", error->detail) :
			 errdetail("A test's rows must fit the columns of %s, as staged rows do.",
					   pipeline_qualified_name(def->source)),
			 errhint("Give each column a value its type accepts, or leave the column out (its default).")));
}

/*
 * first_failing
 *		The first fixture row (from 0) for which 'failing', an SQL condition
 *		over the row's columns, holds, and the value of 'what' there; -1
 *		when none.  Evaluated as the pipeline's owner.
 */
static int64
first_failing(const PipelineDef *def, const char *failing, const char *what, char **found)
{
	PipelineUserContext ctx;
	int64		row = -1;

	pipeline_become_owner(def, &ctx);
	if (pipeline_exec(psprintf("SELECT __pl_row - 1, (%s)::text FROM (SELECT f.n AS __pl_row, r.* FROM "
							   PIPELINE_FIXTURE_ROWS " CROSS JOIN LATERAL %s r) r WHERE %s "
							   "ORDER BY __pl_row LIMIT 1",
							   what, pipeline_fixture_row_sql(def->source), failing),
					  0, NULL, NULL, NULL, true, 1) == 1)
	{
		row = pipeline_result_int64(0, 0);
		*found = pipeline_result_text(0, 1);
	}
	pipeline_restore_user(&ctx);
	return row;
}

/*
 * check_not_null
 *		No NOT NULL column of the source is NULL once defaults are applied.
 */
static void
check_not_null(const PipelineDef *def)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(def->source);
	StringInfoData failing;
	StringInfoData which;
	char	   *column;
	int64		row;

	pipeline_exec_internal("SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 "
						   "AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull "
						   "AND a.attgenerated = '' AND a.attname NOT IN ('_xid', '_seq') ORDER BY a.attnum",
						   1, &type, &value, NULL);
	if (SPI_processed == 0)
		return;
	initStringInfo(&failing);
	initStringInfo(&which);
	appendStringInfoString(&which, "CASE");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		const char *c = quote_identifier(pipeline_result_text(i, 0));

		appendStringInfo(&failing, "%sr.%s IS NULL", i ? " OR " : "", c);
		appendStringInfo(&which, " WHEN r.%s IS NULL THEN %s", c,
						 quote_literal_cstr(pipeline_result_text(i, 0)));
	}
	appendStringInfoString(&which, " END");
	row = first_failing(def, failing.data, which.data, &column);
	if (row >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("invalid fixture row at rows[%lld].%s: null value in a NOT NULL column",
						(long long) row, column),
				 errdetail("Column \"%s\" of %s is NOT NULL and has no default; a staged row always has a value there.",
						   column, pipeline_qualified_name(def->source)),
				 errhint("Give the row a value for \"%s\".", column)));
}

/*
 * check_constraints
 *		Every CHECK constraint of the source holds for every row.
 */
static void
check_constraints(const PipelineDef *def)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(def->source);
	List	   *names = NIL;
	List	   *conditions = NIL;
	ListCell   *ln;
	ListCell   *lc;

	pipeline_exec_internal("SELECT c.conname::text, pg_catalog.pg_get_expr(c.conbin, c.conrelid) "
						   "FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1 AND c.contype = 'c' "
						   "ORDER BY c.conname", 1, &type, &value, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		names = lappend(names, pipeline_result_text(i, 0));
		conditions = lappend(conditions, pipeline_result_text(i, 1));
	}
	forboth(ln, names, lc, conditions)
	{
		char	   *unused;
		int64		row = first_failing(def, psprintf("(%s) IS FALSE", (char *) lfirst(lc)), "NULL", &unused);

		if (row >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("invalid fixture row at rows[%lld]: it violates check constraint \"%s\"",
							(long long) row, (char *) lfirst(ln)),
					 errdetail("A staged row of %s meets %s.", pipeline_qualified_name(def->source),
							   (char *) lfirst(lc)),
					 errhint("Give the row values that meet the constraint.")));
	}
}

/*
 * pipeline_check_fixture_rows
 *		The rows the test holds (fixture_rows.c) could have been staged.
 */
void
pipeline_check_fixture_rows(const PipelineDef *def, int nrows)
{
	check_types(def, nrows);
	check_not_null(def);
	check_constraints(def);
}
