/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  One batch of a run: the parameters every statement of a batch takes,
 *	  and the state the batch keeps while it runs.
 *
 * The batch statement, and the statements that count and find a batch's
 * pending rows, take one parameter array, declared here and nowhere else:
 * BatchParam names each parameter (its position), param_types gives its
 * type, pipeline_batch_param its placeholder in SQL text ("$4"), and
 * pipeline_batch_param_values packs a BatchParams into the array.  SQL
 * builders name parameters only through pipeline_batch_param, so that no
 * statement depends on a number.
 *
 * The row state's key columns (__pl_k<j>, pipeline_row_keys) are named
 * here too: the statements over a row state, of whatever file, share them.
 *
 * A batch's state -- its number, what it did, the row watcher's mark and
 * tallies (row_watch.c), its checks' counts and failed results (check_results.c)
 * -- is one BatchState, owned by the run and handed to each part that
 * needs it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "model.h"
#include "batch/batch.h"
#include "strategy.h"

/* Each parameter's type, by BatchParam. */
static const Oid param_types[BATCH_NPARAMS + 1] = {
	[BATCH_PARAM_COMMITTED] = XID8ARRAYOID,
	[BATCH_PARAM_CURSOR_XMAX] = XID8OID,
	[BATCH_PARAM_SNAPSHOT] = PG_SNAPSHOTOID,
	[BATCH_PARAM_LO_XID] = XID8OID,
	[BATCH_PARAM_LO_SEQ] = INT8OID,
	[BATCH_PARAM_HI_XID] = XID8OID,
	[BATCH_PARAM_HI_SEQ] = INT8OID,
	[BATCH_PARAM_RUN_ID] = INT8OID,
	[BATCH_PARAM_EXCLUDED_SEQS] = INT8ARRAYOID,
	[BATCH_PARAM_PIPELINE_ID] = INT8OID,
	[BATCH_PARAM_REQUEUE_IDS] = INT8ARRAYOID,
	[BATCH_PARAM_EXCLUDED_XIDS] = XID8ARRAYOID,
	[BATCH_PARAM_BEFORE] = PG_SNAPSHOTOID,
	[BATCH_PARAM_BEFORE_XID] = XID8OID,
	[BATCH_PARAM_BEFORE_SEQ] = INT8OID,
	[BATCH_PARAM_AFTER_XID] = XID8OID,
	[BATCH_PARAM_AFTER_SEQ] = INT8OID,
	[BATCH_PARAM_OFFSET] = INT8OID
};

/*
 * pipeline_batch_param
 *		The placeholder of a batch parameter in SQL text: "$<position>".
 */
const char *
pipeline_batch_param(BatchParam param)
{
	return psprintf("$%d", (int) param + 1);
}

/*
 * pipeline_batch_param_types
 *		The parameters' types, for preparing a statement that takes them
 *		(BATCH_NPARAMS of them, or BATCH_NPARAMS + 1 with the offset).
 */
Oid *
pipeline_batch_param_types(void)
{
	return (Oid *) param_types;
}

/*
 * position_array
 *		The _xid (xids) or _seq of a List of RowPosition pointers, as an
 *		xid8[] or bigint[] datum.
 */
static Datum
position_array(List *rows, bool xids)
{
	int			n = list_length(rows);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, rows)
	{
		RowPosition *row = lfirst(lc);

		elems[i++] = xids ? FullTransactionIdGetDatum(row->xid) : Int64GetDatum(row->seq);
	}
	return PointerGetDatum(construct_array(elems, n, xids ? XID8OID : INT8OID, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * pipeline_batch_param_values
 *		Packs a batch's parameters into 'values' and 'nulls' (SPI's form),
 *		BATCH_NPARAMS + 1 of each: the requeue ids and the replay's cursor
 *		are NULL when not given; a replay's missing partial position is
 *		(0, 0), which no row has.
 */
void
pipeline_batch_param_values(const BatchParams *p, Datum *values, char *nulls)
{
	memset(nulls, ' ', BATCH_NPARAMS + 1);
	values[BATCH_PARAM_COMMITTED] = p->committed;
	values[BATCH_PARAM_CURSOR_XMAX] = FullTransactionIdGetDatum(p->cursor_xmax);
	values[BATCH_PARAM_SNAPSHOT] = p->snapshot;
	values[BATCH_PARAM_LO_XID] = FullTransactionIdGetDatum(p->lo.xid);
	values[BATCH_PARAM_LO_SEQ] = Int64GetDatum(p->lo.seq);
	values[BATCH_PARAM_HI_XID] = FullTransactionIdGetDatum(p->hi.xid);
	values[BATCH_PARAM_HI_SEQ] = Int64GetDatum(p->hi.seq);
	values[BATCH_PARAM_RUN_ID] = Int64GetDatum(p->run_id);
	values[BATCH_PARAM_EXCLUDED_SEQS] = position_array(p->excluded, false);
	values[BATCH_PARAM_PIPELINE_ID] = Int64GetDatum(p->pipeline_id);
	values[BATCH_PARAM_REQUEUE_IDS] = p->requeue_ids;
	nulls[BATCH_PARAM_REQUEUE_IDS] = p->requeue_ids == (Datum) 0 ? 'n' : ' ';
	values[BATCH_PARAM_EXCLUDED_XIDS] = position_array(p->excluded, true);
	values[BATCH_PARAM_BEFORE] = p->before;
	nulls[BATCH_PARAM_BEFORE] = p->before == (Datum) 0 ? 'n' : ' ';
	values[BATCH_PARAM_BEFORE_XID] = FullTransactionIdGetDatum(p->before_partial.xid);
	values[BATCH_PARAM_BEFORE_SEQ] = Int64GetDatum(p->before_partial.seq);
	values[BATCH_PARAM_AFTER_XID] = FullTransactionIdGetDatum(p->after_partial.xid);
	values[BATCH_PARAM_AFTER_SEQ] = Int64GetDatum(p->after_partial.seq);
	values[BATCH_PARAM_OFFSET] = Int64GetDatum(p->offset);
}

/*
 * pipeline_batch_state_init
 *		Readies the batch state of a run; its memory is a child of the
 *		current context, which must last as long as the run.
 */
void
pipeline_batch_state_init(BatchState *batch)
{
	memset(batch, 0, sizeof(BatchState));
	batch->context = AllocSetContextCreate(CurrentMemoryContext, "pipeline batch",
										   ALLOCSET_SMALL_SIZES);
	batch->tally_context = AllocSetContextCreate(batch->context, "pipeline batch tally",
												 ALLOCSET_SMALL_SIZES);
}

/*
 * pipeline_batch_begin
 *		Starts batch 'number' of run 'run_id': nothing done yet.
 */
void
pipeline_batch_begin(BatchState *batch, const PipelineDef *def, int64 run_id, int32 number)
{
	batch->run_id = run_id;
	batch->number = number;
	snprintf(batch->where, sizeof(batch->where), "pipeline \"%s\", batch %d of run " INT64_FORMAT,
			 def->name, number, run_id);
	memset(&batch->counts, 0, sizeof(RunCounts));
}

/*
 * pipeline_row_keys
 *		The columns that identify a source row in a strategy's row state
 *		(and, for an aggregate, in the batch row): __pl_k<j>, one per
 *		source_key column of an aggregate, per key column otherwise.
 */
List *
pipeline_row_keys(const PipelineDef *def)
{
	List	   *keys = NIL;
	int			n = list_length(def->strategy->groups ? def->source_key : def->key);

	for (int j = 0; j < n; j++)
		keys = lappend(keys, psprintf(PIPELINE_ROW_SOURCE_KEY, j));
	return keys;
}
