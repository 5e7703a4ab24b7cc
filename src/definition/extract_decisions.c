/*-------------------------------------------------------------------------
 *
 * extract_decisions.c
 *	  The owner's decisions about the extracts of a format snapshot
 *	  pipeline, and the error that asks for one.
 *
 * A complete extract deletes (or closes) the keys it lacks.  An empty or
 * truncated file would empty the target, so the batch statement refuses
 * an extract that would delete more than max_delete_share of the target's
 * rows (pipeline.refuse_extract, snapshot_sql.c): the run fails, the
 * extract stays pending, and the owner decides: allow_extract lets it
 * delete what it lacks, skip_extract passes over it (its rows are read,
 * nothing is applied).  A decision names the extract by the transaction
 * that staged it, which the error gives; it is kept in
 * pipeline.extract_decisions, which the batch statement reads.
 *
 * With extract_id, an extract spans transactions and is complete once the
 * next one begins, or once its loader says it is staged whole:
 * close_extract, kept in pipeline_defs.extract_closed.  A row of another
 * extract among the rows of the one being applied is refused
 * (refuse_extract_row) and quarantined.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/xid8.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"

PG_FUNCTION_INFO_V1(pipeline_allow_extract);
PG_FUNCTION_INFO_V1(pipeline_skip_extract);
PG_FUNCTION_INFO_V1(pipeline_refuse_extract);
PG_FUNCTION_INFO_V1(pipeline_close_extract);
PG_FUNCTION_INFO_V1(pipeline_refuse_extract_row);

/* SQLSTATE of an extract refused by the delete guard. */
#define ERRCODE_PIPELINE_EXTRACT_REFUSED MAKE_SQLSTATE('P','L','0','0','2')

/*
 * load_snapshot_pipeline
 *		The definition of a format snapshot pipeline the caller may manage,
 *		named by argument 0; errors when its arguments are NULL.
 */
static PipelineDef *
load_snapshot_pipeline(FunctionCallInfo fcinfo, const char *detail, const char *hint)
{
	PipelineDef *def;

	pipeline_check_version(ERROR);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name and extract must not be null"),
				 errdetail("%s", detail),
				 errhint("%s", hint)));
	def = pipeline_load(text_to_cstring(PG_GETARG_TEXT_PP(0)), false, DEF_LOCK_SHARE);
	pipeline_check_manage(def);
	if (def->format == NULL || strcmp(def->format, "snapshot") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("pipeline \"%s\" does not read extracts", def->name),
				 errdetail("Only a pipeline with format 'snapshot' applies full extracts."),
				 errhint("Name a pipeline created with format => 'snapshot'.")));
	return def;
}

/*
 * decide
 *		Records the owner's decision about an extract of a format snapshot
 *		pipeline.
 */
static void
decide(FunctionCallInfo fcinfo, const char *decision)
{
	PipelineDef *def;
	Oid			types[4] = {INT8OID, XID8OID, TEXTOID, OIDOID};
	Datum		values[4];

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = load_snapshot_pipeline(fcinfo, "An extract is named by the transaction that staged it.",
								 "Pass the transaction the refusal's message names.");
	values[0] = Int64GetDatum(def->id);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = CStringGetTextDatum(decision);
	values[3] = ObjectIdGetDatum(GetUserId());
	pipeline_catalog_exec("INSERT INTO pipeline.extract_decisions (pipeline_id, extract_xid, decision, decided_by) "
						  "VALUES ($1, $2, $3, $4::regrole) ON CONFLICT (pipeline_id, extract_xid) "
						  "DO UPDATE SET decision = EXCLUDED.decision, decided_at = now(), "
						  "decided_by = EXCLUDED.decided_by",
						  4, types, values, NULL, false, 0, false);
	SPI_finish();
}

/*
 * pipeline_allow_extract
 *		SQL: pipeline.allow_extract(pipeline_name, extract).
 */
Datum
pipeline_allow_extract(PG_FUNCTION_ARGS)
{
	decide(fcinfo, "allow");
	PG_RETURN_VOID();
}

/*
 * pipeline_skip_extract
 *		SQL: pipeline.skip_extract(pipeline_name, extract).
 */
Datum
pipeline_skip_extract(PG_FUNCTION_ARGS)
{
	decide(fcinfo, "skip");
	PG_RETURN_VOID();
}

/*
 * pipeline_close_extract
 *		SQL: pipeline.close_extract(pipeline_name, extract_id): the extract
 *		(and every earlier one) is staged whole.  The value is read as the
 *		extract_id column's type -- whose input function and checks are
 *		the owner's code, so as the owner, in a security-restricted
 *		operation, with search_path pinned -- and a closed extract stays
 *		closed (the latest closed is kept).
 */
Datum
pipeline_close_extract(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char	   *type_name;
	char	   *extract;
	PipelineUserContext ctx;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = load_snapshot_pipeline(fcinfo, "An extract is named by its extract_id value.",
								 "Pass the extract_id value of the extract staged whole.");
	if (def->extract_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("pipeline \"%s\" has no extract_id", def->name),
				 errdetail("Each of its extracts is one transaction's rows, complete when it commits."),
				 errhint("Name a pipeline created with extract_id.")));
	type_name = format_type_be_qualified(get_atttype(def->source, pipeline_extract_id_attnum(def)));
	values[0] = PG_GETARG_DATUM(1);
	values[1] = def->extract_closed ? CStringGetTextDatum(def->extract_closed) : (Datum) 0;
	nulls[1] = def->extract_closed ? ' ' : 'n';

	pipeline_become_role(def->owner, "pg_catalog, pg_temp", &ctx);
	if (SPI_execute_with_args(psprintf("SELECT to_jsonb(greatest($1::%s, ($2::jsonb #>> '{}')::%s))::text",
									   type_name, type_name), 2, types, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the extract");
	extract = pipeline_result_text(0, 0);
	pipeline_restore_user(&ctx);
	pipeline_save_extract(def->id, extract, false);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_refuse_extract_row
 *		SQL: pipeline.refuse_extract_row(row_extract, current_extract): the
 *		error of a staged row that is not of the extract being applied
 *		(extract_id), a data exception, so that the batch quarantines the
 *		row and goes on.
 */
Datum
pipeline_refuse_extract_row(PG_FUNCTION_ARGS)
{
	char	   *row = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *current = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 row == NULL ? errmsg("row without an extract_id value") :
			 current == NULL ? errmsg("row of extract %s, which was applied already", row) :
			 errmsg("row of extract %s among the rows of extract %s", row, current),
			 errdetail("Extracts are staged one after another, each with extract_id values above the one before; a row of an extract already applied, or staged after a later extract began, cannot be placed."),
			 errhint("Stage each extract whole before the next. To apply the row, requeue it from the quarantine: it is then an upsert.")));
	PG_RETURN_BOOL(false);
}

/*
 * pipeline_refuse_extract
 *		SQL: pipeline.refuse_extract(pipeline_name, extract, deleting, live,
 *		max_delete_share): the error of an extract that would delete more
 *		than its pipeline's max_delete_share of the target.  Called by the
 *		batch statement.
 */
Datum
pipeline_refuse_extract(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *extract = DatumGetCString(DirectFunctionCall1(xid8out, PG_GETARG_DATUM(1)));
	int64		deleting = PG_GETARG_INT64(2);
	int64		live = PG_GETARG_INT64(3);
	float4		share = PG_GETARG_FLOAT4(4);

	ereport(ERROR,
			(errcode(ERRCODE_PIPELINE_EXTRACT_REFUSED),
			 errmsg("extract %s of pipeline \"%s\" would delete %lld of the target's %lld rows",
					extract, name, (long long) deleting, (long long) live),
			 errdetail("That is %.1f%% of the target; max_delete_share is %.1f%%. An empty or truncated extract would empty the target.",
					   live > 0 ? 100.0 * deleting / live : 100.0, 100.0 * share),
			 errhint("If the extract is complete, SELECT pipeline.allow_extract(%s, '%s'); if not, SELECT pipeline.skip_extract(%s, '%s'). Then run the pipeline again.",
					 quote_literal_cstr(name), extract, quote_literal_cstr(name), extract)));
	PG_RETURN_BOOL(false);
}
