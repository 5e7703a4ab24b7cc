/*-------------------------------------------------------------------------
 *
 * xid_clock.c
 *	  The logical transaction clock: the transaction ids that stamp staged
 *	  rows, and the snapshots cursors are taken from, on it.
 *
 * Staged rows carry _xid = the writer's 64-bit transaction id plus an
 * offset.  The offset lives in pipeline.clock and is zero until a logical
 * restore (pg_dump/pg_restore into another installation) brings cursors
 * taken on the old cluster: their generation differs from ours, so the
 * offset jumps past every id the old cluster can have handed out.  Rows
 * written after the restore then sort after everything restored, and the
 * restored cursors keep telling consumed rows from pending ones exactly.
 *
 * pg_upgrade and physical copies keep both the transaction counter and the
 * clock table, so nothing moves there.
 *
 * Arithmetic on the snapshots (what a cursor becomes after a batch, what
 * every reader consumed) is snapshot_cursor.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "model.h"
#include "cursor/cursor.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "shared_memory/shared_memory.h"

PG_FUNCTION_INFO_V1(pipeline_current_xid);
PG_FUNCTION_INFO_V1(pipeline_current_snapshot);
PG_FUNCTION_INFO_V1(pipeline_adopt_restored_cursor);

/*
 * How far past a restored cursor the clock jumps: a whole epoch of
 * transaction ids.  Rows the old cluster wrote after its newest cursor fit
 * unless a pipeline went four billion transactions without a run.
 */
#define RESTORE_MARGIN (UINT64CONST(1) << 32)

/* Backend-local copy of pipeline.clock, dropped on relcache invalidation. */
static bool clock_valid = false;
static uint64 clock_offset = 0;
static int64 clock_generation = 0;
static Oid	clock_relid = InvalidOid;

/*
 * clock_invalidate
 *		Relcache callback: forget the cached clock when pipeline.clock is
 *		invalidated (the offset changed) or on a full reset.
 */
static void
clock_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == clock_relid)
		clock_valid = false;
}

/*
 * pipeline_clock_init
 *		Registers the invalidation callback; called once from _PG_init.
 */
void
pipeline_clock_init(void)
{
	CacheRegisterRelcacheCallback(clock_invalidate, (Datum) 0);
}

/*
 * clock_load
 *		Reads pipeline.clock into the backend cache when needed.  The caller
 *		must be in a transaction.
 */
static void
clock_load(void)
{
	int			ret;
	bool		isnull;

	if (clock_valid)
		return;

	clock_relid = pipeline_catalog_relid("clock");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("SELECT generation, xid_offset FROM pipeline.clock", true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pipeline clock is missing"),
				 errdetail("Table pipeline.clock must hold exactly one row."),
				 errhint("Reinstall the extension with DROP EXTENSION pipeline and CREATE EXTENSION pipeline.")));
	clock_generation = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
	clock_offset = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();
	clock_valid = true;
}

/*
 * pipeline_current_xid
 *		SQL: pipeline.current_xid() -> xid8.  The default of every source's
 *		_xid column; assigns a transaction id like pg_current_xact_id().
 */
Datum
pipeline_current_xid(PG_FUNCTION_ARGS)
{
	FullTransactionId xid = GetTopFullTransactionId();

	pipeline_note_staged_rows();	/* the commit wakes continuous pipelines */
	clock_load();
	PG_RETURN_FULLTRANSACTIONID(FullTransactionIdFromU64(U64FromFullTransactionId(xid) +
														 clock_offset));
}

/*
 * pipeline_own_staging_xid
 *		The _xid the caller's transaction stamps on the rows it stages, on
 *		the logical clock; false when it has no transaction id yet (then it
 *		staged nothing).
 */
bool
pipeline_own_staging_xid(FullTransactionId *xid)
{
	FullTransactionId own = GetTopFullTransactionIdIfAny();

	if (!FullTransactionIdIsValid(own))
		return false;
	clock_load();
	*xid = FullTransactionIdFromU64(U64FromFullTransactionId(own) + clock_offset);
	return true;
}

/*
 * pipeline_current_snapshot
 *		SQL: pipeline.current_snapshot() -> pg_snapshot on the logical clock.
 */
Datum
pipeline_current_snapshot(PG_FUNCTION_ARGS)
{
	Datum		snap = DirectFunctionCall1(pg_current_snapshot, (Datum) 0);

	clock_load();
	PG_RETURN_DATUM(pipeline_snapshot_shift(snap, clock_offset));
}

/*
 * pipeline_seed_cursor
 *		The first cursor of a pipeline seeded from 'snapshot' in this
 *		transaction: it has consumed what the snapshot sees, on the logical
 *		clock, and has this transaction -- the seed rows -- listed in
 *		progress, to be its partial position (define.c).
 */
Datum
pipeline_seed_cursor(Snapshot snapshot)
{
	Datum		snap;

	PushActiveSnapshot(snapshot);
	snap = DirectFunctionCall1(pg_current_snapshot, (Datum) 0);
	PopActiveSnapshot();
	clock_load();
	return pipeline_snapshot_shift(pipeline_snapshot_with_own_transaction_listed(snap),
								   clock_offset);
}

/*
 * pipeline_run_snapshot
 *		What a run may consume, on the logical clock: a snapshot taken now
 *		(not the calling statement's, which in a transaction block predates
 *		the run lock and the cursor read), with the caller's own transaction
 *		in progress.  Under REPEATABLE READ this is the transaction's
 *		snapshot, the one every batch statement reads with.
 */
Datum
pipeline_run_snapshot(void)
{
	Datum		snap;

	PushActiveSnapshot(GetTransactionSnapshot());
	snap = DirectFunctionCall1(pg_current_snapshot, (Datum) 0);
	PopActiveSnapshot();
	clock_load();
	return pipeline_snapshot_shift(pipeline_snapshot_with_own_transaction(snap),
								   clock_offset);
}

/*
 * require_cursor_insert_trigger
 *		Refuses to run adopt_restored_cursor as anything but the BEFORE
 *		INSERT row trigger on pipeline.cursors: fired on another table, its
 *		columns could be of any type.
 */
static void
require_cursor_insert_trigger(FunctionCallInfo fcinfo)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			cursors = pipeline_catalog_relid("cursors");

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		RelationGetRelid(trigdata->tg_relation) != cursors)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline.adopt_restored_cursor() must be fired as the BEFORE INSERT row trigger on pipeline.cursors"),
				 errdetail("It adopts cursors restored into pipeline.cursors and serves no other table or event."),
				 errhint("Do not attach it to other tables or call it.")));
}

/*
 * pipeline_adopt_restored_cursor
 *		BEFORE INSERT trigger on pipeline.cursors.  A cursor of this
 *		installation passes unchanged; one restored from another moves the
 *		clock past its ids and is stamped with our generation.  A row
 *		without a cursor passes unchanged too: the table's NOT NULL
 *		constraint refuses it.
 */
Datum
pipeline_adopt_restored_cursor(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	tupdesc;
	int			attgen,
				attconsumed;
	bool		isnull;
	int64		generation;
	Datum		consumed_datum;
	PipelineSnapshot *consumed;
	uint64		next_real;
	uint64		needed;
	Datum		newgen;

	require_cursor_insert_trigger(fcinfo);
	tuple = trigdata->tg_trigtuple;
	tupdesc = RelationGetDescr(trigdata->tg_relation);
	attgen = SPI_fnumber(tupdesc, "generation");
	attconsumed = SPI_fnumber(tupdesc, "consumed");
	if (attgen <= 0 || attconsumed <= 0)
		elog(ERROR, "pipeline.cursors lacks its generation or consumed column");

	clock_load();
	generation = DatumGetInt64(SPI_getbinval(tuple, tupdesc, attgen, &isnull));
	if (!isnull && generation == clock_generation)
		return PointerGetDatum(tuple);

	consumed_datum = SPI_getbinval(tuple, tupdesc, attconsumed, &isnull);
	if (isnull)
		return PointerGetDatum(tuple);
	consumed = (PipelineSnapshot *) PG_DETOAST_DATUM(consumed_datum);
	next_real = U64FromFullTransactionId(ReadNextFullTransactionId());
	needed = U64FromFullTransactionId(consumed->xmax) + RESTORE_MARGIN;
	if (needed > next_real + clock_offset)
	{
		Oid			argtypes[1] = {INT8OID};
		Datum		args[1];

		args[0] = Int64GetDatum((int64) (needed - next_real));
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("UPDATE pipeline.clock SET xid_offset = $1",
								  1, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not move the pipeline clock");
		SPI_finish();
		CacheInvalidateRelcacheByRelid(clock_relid);
		clock_valid = false;
		clock_load();
	}

	newgen = Int64GetDatum(clock_generation);
	{
		int			cols[1] = {attgen};
		bool		nulls[1] = {false};

		tuple = heap_modify_tuple_by_cols(tuple, tupdesc, 1, cols, &newgen, nulls);
	}
	return PointerGetDatum(tuple);
}
