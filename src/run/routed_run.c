/*-------------------------------------------------------------------------
 *
 * routed_run.c
 *	  A batch of a sharded append into a table on the coordinator (a plain
 *	  or a reference table): no shard can write it, so the batch's statement
 *	  (batch/shard_sql.c, routed) runs on the coordinator, as the pipeline's
 *	  owner.  It takes the batch's rows out of every shard through Citus and
 *	  writes them, and the run quarantines the rows it names, all in one
 *	  distributed transaction: Citus's two-phase commit makes the claim on
 *	  the workers and the rows written here one, so each row is appended
 *	  exactly once whatever fails.
 *
 * The shards are not merged in parallel, nor apart: a blocked shard holds
 * the batch (for the pipeline's statement_timeout).  A batch failing its
 * checks is rolled back, as on one server.  A row raising a data error
 * (one no row rule foresaw) is found by taking the batch's rows one at a
 * time, each in a subtransaction: those that pass are written, the first
 * that fails is quarantined with its error once a row after it passed; an
 * error every row raises fails the run instead.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "run/run.h"

/* The rows of pipeline_read_shard_results: the statements' results, $3. */
#define ROUTED_RESULTS \
	"SELECT NULL::bigint AS shardid1, NULL::text AS nodename, NULL::int AS nodeport, " \
	"true AS success, e AS result FROM pg_catalog.unnest($3) e"

/* A routed statement to run, and its result, kept in the caller's memory. */
typedef struct RoutedCall
{
	const PipelineDef *def;
	const char *sql;
	MemoryContext context;
	char	   *result;
} RoutedCall;

/*
 * run_statement
 *		Runs the routed statement as the pipeline's owner; keeps its result.
 *		A batch that failed its checks is then rolled back, by an error:
 *		its result is kept, for the checks' results.
 */
static void
run_statement(void *arg)
{
	RoutedCall *call = arg;
	PipelineUserContext ctx;
	Oid			type = TEXTOID;
	Datum		value;
	bool		isnull;

	pipeline_become_owner(call->def, &ctx);
	pipeline_exec(call->sql, 0, NULL, NULL, NULL, false, 0);
	call->result = MemoryContextStrdup(call->context, pipeline_result_text(0, 0));
	pipeline_restore_user(&ctx);
	value = CStringGetTextDatum(call->result);
	pipeline_exec("SELECT $1::jsonb->>'check_failed' IS NOT NULL", 1, &type, &value, NULL, true, 1);
	if (DatumGetBool(pipeline_result_datum(0, 0, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_PIPELINE_CHECK_FAILED),
				 errmsg("the batch of pipeline \"%s\" failed its data quality checks", call->def->name)));
}

/*
 * one_row_statement
 *		The routed statement taking the first staged row meeting 'rows' (SQL
 *		over the staged row p).
 */
static char *
one_row_statement(const PipelineDef *def, const char *rows)
{
	PipelineDef copy = *def;
	PipelineMapping *map;
	PipelineUserContext ctx;
	char	   *sql;

	copy.batch_size = 1;
	pipeline_become_owner(def, &ctx);
	map = pipeline_build_mapping(&copy);
	sql = pipeline_routed_sql(&copy, map, pipeline_row_rules(&copy, map),
							  pipeline_load_shard_checks(&copy, pipeline_qualified_name(def->target)), rows);
	pipeline_restore_user(&ctx);
	return sql;
}

/*
 * try_statement
 *		Runs a routed statement in a subtransaction: NULL, its result kept
 *		in 'results' (a failed check's too); or the error it raised.
 */
static ErrorData *
try_statement(const PipelineDef *def, const char *sql, List **results)
{
	RoutedCall	call = {def, sql, CurrentMemoryContext, NULL};
	ErrorData  *error = pipeline_try(run_statement, &call);

	if (call.result != NULL)
		*results = lappend(*results, call.result);
	return call.result != NULL ? NULL : error;
}

/*
 * first_row
 *		The first staged row meeting 'rows', as [_xid, _seq, -1, raw row]
 *		(text), read as the staging table's owner; NULL when none is.
 */
static char *
first_row(const PipelineDef *def, const char *rows)
{
	PipelineUserContext ctx;
	char	   *row = NULL;

	pipeline_become_relation_owner(def->source, &ctx);
	if (pipeline_exec(psprintf("SELECT pg_catalog.jsonb_build_array(p._xid, p._seq, -1, "
							   "pg_catalog.to_jsonb(p) - '_xid' - '_seq')::text FROM %s p WHERE %s "
							   "ORDER BY p._xid, p._seq LIMIT 1", pipeline_qualified_name(def->source), rows),
					  0, NULL, NULL, NULL, true, 1) > 0)
		row = pipeline_result_text(0, 0);
	pipeline_restore_user(&ctx);
	return row;
}

/*
 * taken_failing
 *		Takes the rows that failed alone ('failing': a jsonb array of [_xid,
 *		_seq, -1, raw row, message, SQLSTATE], as text) out of the staging
 *		table, as its owner; the result naming them for the quarantine.
 */
static char *
taken_failing(const PipelineDef *def, const char *failing)
{
	Oid			type = JSONBOID;
	Datum		value = DirectFunctionCall1(jsonb_in, CStringGetDatum(failing));
	PipelineUserContext ctx;

	pipeline_become_relation_owner(def->source, &ctx);
	pipeline_exec(psprintf("DELETE FROM %s s WHERE (s._xid, s._seq) IN (SELECT (e->>0)::xid8, (e->>1)::bigint "
						   "FROM pg_catalog.jsonb_array_elements($1) e)", pipeline_qualified_name(def->source)),
				  1, &type, &value, NULL, false, 0);
	pipeline_restore_user(&ctx);
	return psprintf("{\"read\": %d, \"rejected\": %s, \"more\": true}",
					(int) SPI_processed, failing);
}

/*
 * isolate_rows
 *		After a data error: the batch's rows taken one at a time, each in a
 *		subtransaction (kept when it passes), until a row failed and one
 *		after it passed, or the batch's size is reached; the rows that
 *		failed are then taken out for the quarantine.  The results of the
 *		statements kept are added to 'results'.  An error no row raises
 *		alone, or every row tried raises, fails the batch.
 */
static void
isolate_rows(const PipelineDef *def, ErrorData *error, List **results)
{
	StringInfoData failing;
	StringInfoData excluded;
	int			passed = 0;

	initStringInfo(&failing);
	initStringInfo(&excluded);
	for (int64 i = 0; i < def->batch_size && !(failing.len > 0 && passed > 0); i++)
	{
		const char *rows = excluded.len ? psprintf("(p._xid, p._seq) NOT IN (%s)", excluded.data) : "true";
		char	   *row = first_row(def, rows);
		ErrorData  *row_error;

		if (row == NULL)
			break;
		row_error = try_statement(def, one_row_statement(def, rows), results);
		if (row_error == NULL)
		{
			passed++;
			continue;
		}
		if (!pipeline_is_row_error(row_error->sqlerrcode))
			ReThrowError(row_error);
		/* the entry without its "]", then the error's message and SQLSTATE */
		appendStringInfo(&failing, "%s%.*s, ", failing.len ? ", " : "", (int) strlen(row) - 1, row);
		escape_json(&failing, row_error->message);
		appendStringInfoString(&failing, ", ");
		escape_json(&failing, unpack_sql_state(row_error->sqlerrcode));
		appendStringInfoChar(&failing, ']');
		appendStringInfo(&excluded, "%s(((%s::jsonb)->>0)::xid8, ((%s::jsonb)->>1)::bigint)",
						 excluded.len ? ", " : "", quote_literal_cstr(row), quote_literal_cstr(row));
	}
	if (failing.len == 0 || passed == 0)
		ReThrowError(error);
	*results = lappend(*results, taken_failing(def, psprintf("[%s]", failing.data)));
}

/*
 * pipeline_claim_routed
 *		One batch of a sharded append into a table on the coordinator: its
 *		rows taken from every shard and written (or, after a data error,
 *		one at a time: isolate_rows); adds what it did to 'counts' and says
 *		in 'batch' what failed (its checks) and what it rejected, for the
 *		run to quarantine in the same transaction.
 */
void
pipeline_claim_routed(const PipelineDef *def, RunCounts *counts, ShardBatch *batch)
{
	List	   *results = NIL;
	ErrorData  *error;

	pipeline_prepare_shard_batch(def, batch);
	error = try_statement(def, batch->statement, &results);
	if (error != NULL)
	{
		if (!pipeline_is_row_error(error->sqlerrcode))
			ReThrowError(error);
		isolate_rows(def, error, &results);
	}
	pipeline_read_shard_results(def, counts, batch, ROUTED_RESULTS, TEXTARRAYOID,
								pipeline_list_to_text_array(results));
	/* a failed batch is the whole of it: the run stops */
	if (batch->failed)
		batch->full = false;
	counts->batches++;
}
