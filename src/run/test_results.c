/*-------------------------------------------------------------------------
 *
 * test_results.c
 *	  What a pipeline.test's run left, read before its subtransaction is
 *	  rolled back: the target rows it wrote and deleted, its quarantined
 *	  rows and check results, and the result document.
 *
 * Written rows are those whose xmin is a transaction of the test: its
 * subtransaction, or one committed inside it -- neither the caller's own
 * writes nor anyone else's.  Deleted rows are found by comparing two
 * views of the target that differ only in the test's own commands: the
 * snapshot after the run, and a copy of it whose command id is the one
 * before the run.  Rows the earlier view sees and the later one does not
 * were deleted or replaced by the test; those whose identity (the key, and
 * for a history the version's start) the target no longer holds were
 * deleted.  Both views see the same committed transactions, so a row
 * another session committed while the test waited for it is in both.
 * Rows are read as the pipeline's owner, who must be able to read every
 * row and column of the target (test_run.c checks it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/snapmgr.h"

#include "model.h"
#include "base/base.h"
#include "run/run.h"
#include "strategies/strategies.h"
#include "strategy.h"

/*
 * own_xids
 *		xid[]: the transaction ids of the test so far -- its subtransaction's
 *		and those of the subtransactions committed inside it.
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
 * identity
 *		The columns that tell a target row apart: the key, with a history's
 *		version start; NIL for a target without a key (appended to only).
 */
static List *
identity(const PipelineDef *def)
{
	if (def->key == NIL)
		return NIL;
	if (strcmp(def->strategy->name, "scd2") == 0)
		return lappend(list_copy(def->key), PIPELINE_START_COLUMN);
	return def->key;
}

/*
 * order_by
 *		"t.k1, t.k2, pg_catalog.to_jsonb(t)::text": the order of result rows.
 */
static char *
order_by(const PipelineDef *def)
{
	List	   *columns = identity(def);

	return psprintf("%s%spg_catalog.to_jsonb(t)::text", columns ? pipeline_quote_list(columns, "t") : "",
					columns ? ", " : "");
}

/*
 * pipeline_test_written_rows
 *		The target rows the test wrote, as a JSON array, in key order.
 */
char *
pipeline_test_written_rows(const PipelineDef *def)
{
	Oid			type = XIDARRAYOID;
	Datum		value = own_xids();
	PipelineUserContext ctx;
	char	   *rows;

	pipeline_become_owner(def, &ctx);
	pipeline_exec(psprintf("SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) ORDER BY %s), '[]')::text "
						   "FROM %s t WHERE t.xmin OPERATOR(pg_catalog.=) ANY ($1)",
						   order_by(def), pipeline_qualified_name(def->target)),
				  1, &type, &value, NULL, false, 1);
	rows = pipeline_result_text(0, 0);
	pipeline_restore_user(&ctx);
	return rows;
}

/*
 * identity_of
 *		"jsonb_build_array(<alias>.c1, ...)": a row's identity, comparable
 *		whatever the columns' types and operators.
 */
static char *
identity_of(const PipelineDef *def, const char *alias)
{
	return psprintf("pg_catalog.jsonb_build_array(%s)", pipeline_quote_list(identity(def), alias));
}

/*
 * pipeline_test_deleted_rows
 *		The target rows the test deleted, as they were, in key order; 'cid'
 *		is the command id before the run.
 */
char *
pipeline_test_deleted_rows(const PipelineDef *def, CommandId cid)
{
	char	   *target = pipeline_qualified_name(def->target);
	Snapshot	before;
	SPIPlanPtr	plan;
	Oid			type = JSONBOID;
	Datum		value;
	bool		isnull;
	PipelineUserContext ctx;
	char	   *deleted;

	if (identity(def) == NIL)
		return "[]";
	/* a copy of the snapshot after the run, at the command before it */
	CommandCounterIncrement();
	before = RegisterSnapshot(GetTransactionSnapshot());
	before->curcid = cid;
	pipeline_become_owner(def, &ctx);
	/* what the target held before the run and no longer holds as such */
	plan = SPI_prepare(psprintf("SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) ORDER BY %s), '[]') "
								"FROM %s t WHERE t.xmax OPERATOR(pg_catalog.<>) '0'::pg_catalog.xid",
								order_by(def), target),
					   0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_execute_snapshot(plan, NULL, NULL, before, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the target before a test failed");
	value = pipeline_result_datum(0, 0, &isnull);
	pipeline_exec(psprintf("SELECT coalesce(pg_catalog.jsonb_agg(c.value ORDER BY c.n), '[]')::text "
						   "FROM pg_catalog.jsonb_array_elements($1) WITH ORDINALITY AS c(value, n) "
						   "CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%s, c.value) r "
						   "WHERE NOT EXISTS (SELECT FROM %s t WHERE %s OPERATOR(pg_catalog.=) %s)",
						   target, target, identity_of(def, "t"), identity_of(def, "r")),
				  1, &type, &value, NULL, false, 1);
	deleted = pipeline_result_text(0, 0);
	pipeline_restore_user(&ctx);
	UnregisterSnapshot(before);
	return deleted;
}

/*
 * pipeline_test_run_rows
 *		What the test's run recorded, as a JSON object: its quarantined
 *		rows (by their place in the fixture, from 0) with their reasons,
 *		and its check results.
 */
char *
pipeline_test_run_rows(int64 run_id)
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
 * pipeline_test_document
 *		The test's result as JSON text: status, error, counts, target,
 *		deleted (the run's own rows, quarantined and checks, are added to
 *		it).
 */
char *
pipeline_test_document(const RunCounts *c, const ErrorData *error, const char *target,
					   const char *deleted)
{
	char	   *failure = "null";

	if (error)
		failure = psprintf("{\"sqlstate\": %s, \"message\": %s, \"detail\": %s}",
						   json_string(unpack_sql_state(error->sqlerrcode)),
						   json_string(error->message), json_string(error->detail));
	return psprintf("{\"status\": \"%s\", \"error\": %s, \"counts\": {\"read\": %lld, "
					"\"inserted\": %lld, \"updated\": %lld, \"deleted\": %lld, \"stale\": %lld, "
					"\"filtered\": %lld, \"quarantined\": %lld, \"dropped\": %lld, "
					"\"unchanged\": %lld}, \"target\": %s, \"deleted\": %s}",
					error ? "failed" : "succeeded", failure,
					(long long) c->read, (long long) c->inserted, (long long) c->updated,
					(long long) c->deleted, (long long) c->stale, (long long) c->filtered,
					(long long) c->quarantined, (long long) c->dropped, (long long) c->unchanged,
					target, deleted);
}
