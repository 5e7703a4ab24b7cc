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
 * to grant, and outside a test the function returns NULL (no rows).  A
 * row is typed as a row of the source the way an INSERT naming its keys
 * makes one: a column it leaves out takes the column's default.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
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
 * pipeline_fixture_held
 *		Whether a test holds its rows in this backend (a test is under way).
 */
bool
pipeline_fixture_held(void)
{
	return fixture_rows != NULL;
}

/*
 * defaults_object
 *		"jsonb_build_object('c', <default of c>, ...)" over the source's
 *		columns that have a default (not _xid, _seq, nor generated ones),
 *		deparsed with every name qualified; "'{}'::jsonb" when none.
 */
static char *
defaults_object(Oid source)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(source);
	StringInfoData buf;

	pipeline_exec_internal("SELECT a.attname::text, pg_catalog.pg_get_expr(d.adbin, d.adrelid) "
						   "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attrdef d "
						   "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
						   "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped "
						   "AND a.attgenerated = '' AND a.attname NOT IN ('_xid', '_seq') ORDER BY a.attnum",
						   1, &type, &value, NULL);
	if (SPI_processed == 0)
		return "'{}'::pg_catalog.jsonb";
	initStringInfo(&buf);
	for (uint64 i = 0; i < SPI_processed; i++)
		appendStringInfo(&buf, "%s%s, %s", i == 0 ? "pg_catalog.jsonb_build_object(" : ", ",
						 quote_literal_cstr(pipeline_result_text(i, 0)), pipeline_result_text(i, 1));
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * pipeline_fixture_row_sql
 *		The fixture row f.value (of PIPELINE_FIXTURE_ROWS) as a record of
 *		the source, the columns it leaves out at their defaults.
 */
char *
pipeline_fixture_row_sql(Oid source)
{
	return psprintf("pg_catalog.jsonb_populate_record(NULL::%s, %s OPERATOR(pg_catalog.||) f.value)",
					pipeline_qualified_name(source), defaults_object(source));
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
