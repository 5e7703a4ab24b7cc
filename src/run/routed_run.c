/*-------------------------------------------------------------------------
 *
 * routed_run.c
 *	  A batch of a sharded append into a plain table on the coordinator,
 *	  which no shard can write: routed through the
 *	  coordinator, in one distributed transaction, so that Citus's
 *	  two-phase commit makes the rows taken on the workers and the rows
 *	  written here one -- each row appended exactly once, whatever fails.
 *
 * The batch takes its rows out of every shard through Citus into a
 * temporary table (one DELETE ... RETURNING, which Citus runs on each shard
 * and returns as one result), then runs the shard statement
 * (batch/shard_sql.c) over that table as its staging shard, through the
 * same pipeline.run_shard_statement a worker runs (run/shard_statement.c):
 * rules, checks, rows raising a data error tried alone, the owner's
 * privileges.  The rows the statement neither wrote nor rejected (beyond
 * its batch, or after a row tried alone) go back to the staging table; the
 * run quarantines the rejected ones in the same transaction.  A batch
 * failing its checks is rolled back whole.
 *
 * The shards are not merged in parallel, nor apart: a blocked shard holds
 * the batch, for the pipeline's statement_timeout.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "run/run.h"

/* The rows of pipeline_read_shard_results: the batch's one result, $3. */
#define ROUTED_RESULTS \
	"SELECT NULL::bigint AS shardid1, NULL::text AS nodename, NULL::int AS nodeport, " \
	"true AS success, $3 AS result"

/* A routed batch to run, and its result, kept in the caller's memory. */
typedef struct RoutedBatch
{
	const PipelineDef *def;
	const ShardBatch *batch;
	MemoryContext context;
	char	   *result;
	bool		check_failed;	/* rolled back for its checks, not an error */
} RoutedBatch;

/*
 * taken_table
 *		Creates the temporary table a batch's rows are taken into: the
 *		staging table's columns, owned by its owner (whose privileges the
 *		pipeline's owner has), dropped when the batch ends.  Its name, as
 *		SQL.  Created by the extension, which then hands it to the owner:
 *		no temporary table can be created in the security-restricted
 *		operation the owner's statements run in, and LIKE runs no code of
 *		the staging table's.
 */
static char *
taken_table(const PipelineDef *def)
{
	char	   *name = psprintf("pipeline_taken_" INT64_FORMAT, def->id);
	PipelineUserContext ctx;

	pipeline_become_internal(&ctx);
	pipeline_exec(psprintf("CREATE TEMPORARY TABLE %s (LIKE %s) ON COMMIT DROP", quote_identifier(name),
						   pipeline_qualified_name(def->source)), 0, NULL, NULL, NULL, false, 0);
	pipeline_exec(psprintf("ALTER TABLE pg_temp.%s OWNER TO %s", quote_identifier(name),
						   quote_identifier(GetUserNameFromId(pipeline_relation_owner(def->source), false))),
				  0, NULL, NULL, NULL, false, 0);
	pipeline_restore_user(&ctx);
	return psprintf("pg_temp.%s", quote_identifier(name));
}

/*
 * take_rows
 *		Takes the staged rows up to the batch_size-th lowest _seq (unique
 *		across the shards: one sequence) out of every shard into 'taken', as
 *		the staging table's owner.  Citus computes the bound once, then runs
 *		the DELETE on each shard, with no list of rows to send them.
 */
static void
take_rows(const PipelineDef *def, const char *taken)
{
	const char *source = pipeline_qualified_name(def->source);

	pipeline_exec_as_relation_owner(def->source,
									psprintf("WITH t AS (DELETE FROM %s s WHERE s._seq <= (SELECT max(b._seq) FROM "
											 "(SELECT p._seq FROM %s p ORDER BY p._seq LIMIT " INT64_FORMAT ") b) "
											 "RETURNING s.*) INSERT INTO %s SELECT * FROM t",
											 source, source, def->batch_size, taken),
									0, NULL, NULL, NULL);
}

/*
 * merge_taken
 *		The shard statement over 'taken' and the target, as the pipeline's
 *		owner, through pipeline.run_shard_statement (which applies the
 *		pipeline's search_path in a security-restricted operation; the run
 *		has armed its statement_timeout); its result (a jsonb, as text).
 */
static char *
merge_taken(const PipelineDef *def, const ShardBatch *batch, const char *taken)
{
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[5];
	PipelineUserContext ctx;
	char	   *result;

	values[0] = CStringGetTextDatum(taken);
	values[1] = CStringGetTextDatum(pipeline_qualified_name(def->target));
	values[2] = CStringGetTextDatum(batch->statement);
	values[3] = CStringGetTextDatum(def->search_path);
	values[4] = Int64GetDatum(def->batch_size);
	pipeline_become_owner(def, &ctx);
	pipeline_exec("SELECT pipeline.run_shard_statement($1, $2, $3, $4, 0, '{}', $5)",
				  5, types, values, NULL, false, 0);
	result = pipeline_result_text(0, 0);
	pipeline_restore_user(&ctx);
	return result;
}

/*
 * put_back
 *		Returns to the staging table, as its owner, the rows the statement
 *		left in 'taken' but those it rejected (quarantined by the run).
 */
static void
put_back(const PipelineDef *def, const char *taken, const char *result)
{
	Oid			type = JSONBOID;
	Datum		value = DirectFunctionCall1(jsonb_in, CStringGetDatum(result));

	pipeline_exec_as_relation_owner(def->source,
									psprintf("WITH b AS (DELETE FROM %s t WHERE (t._xid, t._seq) NOT IN (SELECT "
											 "(e->>0)::xid8, (e->>1)::bigint FROM "
											 "pg_catalog.jsonb_array_elements($1->'rejected') e) "
											 "RETURNING t.*) INSERT INTO %s SELECT * FROM b",
											 taken, pipeline_qualified_name(def->source)),
									1, &type, &value, NULL);
}

/*
 * run_batch
 *		Takes, merges and puts back, keeping the result in the caller's
 *		memory; a batch that failed its checks is then rolled back, by an
 *		error, its result kept for the checks' results.
 */
static void
run_batch(void *arg)
{
	RoutedBatch *rb = arg;
	char	   *taken = taken_table(rb->def);
	Oid			type = TEXTOID;
	Datum		value;
	bool		isnull;

	take_rows(rb->def, taken);
	rb->result = MemoryContextStrdup(rb->context, merge_taken(rb->def, rb->batch, taken));
	value = CStringGetTextDatum(rb->result);
	pipeline_exec("SELECT $1::jsonb->>'check_failed' IS NOT NULL", 1, &type, &value, NULL, true, 1);
	if (DatumGetBool(pipeline_result_datum(0, 0, &isnull)))
	{
		rb->check_failed = true;
		ereport(ERROR,
				(errcode(ERRCODE_PIPELINE_CHECK_FAILED),
				 errmsg("a batch of pipeline \"%s\" failed its data quality checks", rb->def->name),
				 errdetail("The batch is rolled back: its rows go back to the staging table."),
				 errhint("pipeline.check_results shows the run's checks.")));
	}
	put_back(rb->def, taken, rb->result);
}

/*
 * pipeline_claim_routed
 *		One batch of a sharded append into a table on the coordinator
 *		(run_batch, in a subtransaction); adds what it did to 'counts' and
 *		says in 'batch' what failed (its checks: the run stops) and what it
 *		rejected, for the run to quarantine in the same transaction.
 */
void
pipeline_claim_routed(const PipelineDef *def, RunCounts *counts, ShardBatch *batch)
{
	RoutedBatch rb = {def, batch, CurrentMemoryContext, NULL, false};
	ErrorData  *error;

	pipeline_prepare_shard_batch(def, batch);
	error = pipeline_try(run_batch, &rb);
	/* any other error fails the batch: its rows are back, nothing counted */
	if (error != NULL && !rb.check_failed)
		ReThrowError(error);
	pipeline_read_shard_results(def, counts, batch, ROUTED_RESULTS, TEXTOID,
								CStringGetTextDatum(rb.result));
	if (batch->failed)
		batch->full = false;
	counts->batches++;
}
