/*-------------------------------------------------------------------------
 *
 * clock.c
 *	  The logical transaction clock that stamps staged rows, and snapshot
 *	  arithmetic on it.
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

#include "pipeline.h"

PG_FUNCTION_INFO_V1(pipeline_current_xid);
PG_FUNCTION_INFO_V1(pipeline_current_snapshot);
PG_FUNCTION_INFO_V1(pipeline_adopt_restored_cursor);
PG_FUNCTION_INFO_V1(pipeline_snapshot_prefix);

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
 * shift_snapshot
 *		Returns a copy of a pg_snapshot with every id moved by the offset.
 */
static Datum
shift_snapshot(Datum snapshot, uint64 offset)
{
	PipelineSnapshot *src = (PipelineSnapshot *) PG_DETOAST_DATUM(snapshot);
	PipelineSnapshot *dst;
	Size		size = PIPELINE_SNAPSHOT_SIZE(src->nxip);

	dst = palloc(size);
	memcpy(dst, src, size);
	dst->xmin = FullTransactionIdFromU64(U64FromFullTransactionId(src->xmin) + offset);
	dst->xmax = FullTransactionIdFromU64(U64FromFullTransactionId(src->xmax) + offset);
	for (uint32 i = 0; i < src->nxip; i++)
		dst->xip[i] = FullTransactionIdFromU64(U64FromFullTransactionId(src->xip[i]) + offset);
	return PointerGetDatum(dst);
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
	PG_RETURN_DATUM(shift_snapshot(snap, clock_offset));
}

/*
 * with_own_transaction
 *		A copy of a pg_snapshot that also counts the caller's own transaction
 *		as in progress.  pg_current_snapshot() leaves it out, which would let
 *		a run inside a writer's transaction mark that transaction consumed
 *		while it can still stage rows.
 */
static Datum
with_own_transaction(Datum snapshot)
{
	PipelineSnapshot *s = (PipelineSnapshot *) PG_DETOAST_DATUM(snapshot);
	PipelineSnapshot *m;
	FullTransactionId own = GetTopFullTransactionIdIfAny();
	uint32		n = 0;

	if (!FullTransactionIdIsValid(own) || FullTransactionIdFollowsOrEquals(own, s->xmax))
		return snapshot;
	for (uint32 i = 0; i < s->nxip; i++)
		if (FullTransactionIdEquals(s->xip[i], own))
			return snapshot;

	m = palloc0(PIPELINE_SNAPSHOT_SIZE(s->nxip + 1));
	for (uint32 i = 0; i < s->nxip; i++)
	{
		if (n == i && FullTransactionIdPrecedes(own, s->xip[i]))
			m->xip[n++] = own;
		m->xip[n++] = s->xip[i];
	}
	if (n == s->nxip)
		m->xip[n++] = own;
	m->nxip = n;
	m->xmax = s->xmax;
	m->xmin = FullTransactionIdPrecedes(own, s->xmin) ? own : s->xmin;
	SET_VARSIZE(m, PIPELINE_SNAPSHOT_SIZE(n));
	return PointerGetDatum(m);
}

/*
 * with_own_transaction_listed
 *		A copy of a pg_snapshot that counts the caller's own transaction as
 *		in progress and lists it, below xmax, as a cursor's partial position
 *		needs it: when it is at or above xmax, xmax moves past it and every
 *		id from the old xmax on is listed too (none of them had finished
 *		when the snapshot was taken, so it sees none of them either way).
 *		There are at most as many as transactions were running then.
 */
static Datum
with_own_transaction_listed(Datum snapshot)
{
	PipelineSnapshot *s = (PipelineSnapshot *) PG_DETOAST_DATUM(snapshot);
	FullTransactionId own = GetTopFullTransactionId();
	uint64		from = U64FromFullTransactionId(s->xmax);
	uint64		to = U64FromFullTransactionId(own);
	PipelineSnapshot *m;
	uint32		n;

	if (FullTransactionIdPrecedes(own, s->xmax))
		return with_own_transaction(snapshot);
	n = s->nxip + (uint32) (to - from + 1);
	m = palloc0(PIPELINE_SNAPSHOT_SIZE(n));
	memcpy(m->xip, s->xip, s->nxip * sizeof(FullTransactionId));
	for (uint64 x = from; x <= to; x++)
		m->xip[s->nxip + (x - from)] = FullTransactionIdFromU64(x);
	m->nxip = n;
	m->xmax = FullTransactionIdFromU64(to + 1);
	m->xmin = m->xip[0];
	SET_VARSIZE(m, PIPELINE_SNAPSHOT_SIZE(n));
	return PointerGetDatum(m);
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
	return shift_snapshot(with_own_transaction_listed(snap), clock_offset);
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
	return shift_snapshot(with_own_transaction(snap), clock_offset);
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

/*
 * fxid_cmp
 *		qsort comparator for FullTransactionId.
 */
static int
fxid_cmp(const void *a, const void *b)
{
	uint64		x = U64FromFullTransactionId(*(const FullTransactionId *) a);
	uint64		y = U64FromFullTransactionId(*(const FullTransactionId *) b);

	return (x > y) - (x < y);
}

/*
 * pipeline_snapshot_datum_prefix
 *		The cursor after consuming, in (_xid, _seq) order, every row pending
 *		between 'consumed' and 'upto' whose _xid is below 'boundary'; the
 *		boundary transaction itself stays pending (the caller records how far
 *		into it the batch went).  Below the boundary the result sees what
 *		'upto' sees, above it what 'consumed' sees.
 */
Datum
pipeline_snapshot_datum_prefix(Datum consumed_d, Datum upto_d, FullTransactionId boundary)
{
	PipelineSnapshot *c = (PipelineSnapshot *) PG_DETOAST_DATUM(consumed_d);
	PipelineSnapshot *s = (PipelineSnapshot *) PG_DETOAST_DATUM(upto_d);
	PipelineSnapshot *m;
	uint64		b = U64FromFullTransactionId(boundary);
	uint64		xmax = Max(b, U64FromFullTransactionId(c->xmax));
	uint32		n = 0;

	m = palloc0(PIPELINE_SNAPSHOT_SIZE(s->nxip + c->nxip + 1));
	for (uint32 i = 0; i < s->nxip; i++)
		if (U64FromFullTransactionId(s->xip[i]) < b)
			m->xip[n++] = s->xip[i];
	if (b < xmax)
		m->xip[n++] = boundary;
	for (uint32 i = 0; i < c->nxip; i++)
		if (U64FromFullTransactionId(c->xip[i]) > b)
			m->xip[n++] = c->xip[i];
	qsort(m->xip, n, sizeof(FullTransactionId), fxid_cmp);

	m->nxip = n;
	m->xmax = FullTransactionIdFromU64(xmax);
	m->xmin = n > 0 ? m->xip[0] : m->xmax;
	SET_VARSIZE(m, PIPELINE_SNAPSHOT_SIZE(n));
	return PointerGetDatum(m);
}

/*
 * pipeline_snapshot_prefix
 *		SQL: pipeline.snapshot_prefix(consumed, upto, boundary).
 */
Datum
pipeline_snapshot_prefix(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(pipeline_snapshot_datum_prefix(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
												   PG_GETARG_FULLTRANSACTIONID(2)));
}

/*
 * pipeline_snapshot_intersection
 *		A snapshot that sees what both a and b see: below the smaller xmax,
 *		and in progress in neither.
 */
Datum
pipeline_snapshot_intersection(Datum a_d, Datum b_d)
{
	PipelineSnapshot *a = (PipelineSnapshot *) PG_DETOAST_DATUM(a_d);
	PipelineSnapshot *b = (PipelineSnapshot *) PG_DETOAST_DATUM(b_d);
	PipelineSnapshot *m = palloc0(PIPELINE_SNAPSHOT_SIZE(a->nxip + b->nxip));
	uint64		xmax = Min(U64FromFullTransactionId(a->xmax), U64FromFullTransactionId(b->xmax));
	uint32		n = 0;

	for (uint32 i = 0; i < a->nxip; i++)
		if (U64FromFullTransactionId(a->xip[i]) < xmax)
			m->xip[n++] = a->xip[i];
	for (uint32 i = 0; i < b->nxip; i++)
		if (U64FromFullTransactionId(b->xip[i]) < xmax)
			m->xip[n++] = b->xip[i];
	qsort(m->xip, n, sizeof(FullTransactionId), fxid_cmp);
	/* the same id in progress in both appears once */
	if (n > 1)
	{
		uint32		kept = 1;

		for (uint32 i = 1; i < n; i++)
			if (!FullTransactionIdEquals(m->xip[i], m->xip[kept - 1]))
				m->xip[kept++] = m->xip[i];
		n = kept;
	}
	m->nxip = n;
	m->xmax = FullTransactionIdFromU64(xmax);
	m->xmin = n > 0 ? m->xip[0] : m->xmax;
	SET_VARSIZE(m, PIPELINE_SNAPSHOT_SIZE(n));
	return PointerGetDatum(m);
}
