/*-------------------------------------------------------------------------
 *
 * snapshot_cursor.c
 *	  Arithmetic on the pg_snapshot values cursors are made of: what a
 *	  snapshot sees, the snapshot a run may consume, the cursor after a
 *	  batch, what every reader of a table consumed.
 *
 * A cursor is a pg_snapshot on the logical clock (xid_clock.c) plus a partial
 * position: a staged row is consumed when the snapshot sees its _xid, or
 * when it lies in the partial transaction at or before the partial _seq
 * (the rule itself, in SQL, is cursor_rule.c).  Everything here builds new
 * snapshots from old ones; nothing reads a table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"

#include "model.h"
#include "cursor/cursor.h"

PG_FUNCTION_INFO_V1(pipeline_snapshot_prefix);

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
 * sees
 *		Whether snapshot s sees transaction x as finished.
 */
static bool
sees(const PipelineSnapshot *s, FullTransactionId x)
{
	uint64		v = U64FromFullTransactionId(x);

	if (v < U64FromFullTransactionId(s->xmin))
		return true;
	if (v >= U64FromFullTransactionId(s->xmax))
		return false;
	for (uint32 i = 0; i < s->nxip; i++)
		if (FullTransactionIdEquals(s->xip[i], x))
			return false;
	return true;
}

/*
 * pipeline_snapshot_shift
 *		A copy of a pg_snapshot with every id moved by 'offset' (onto the
 *		logical clock).
 */
Datum
pipeline_snapshot_shift(Datum snapshot, uint64 offset)
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
 * pipeline_snapshot_with_own_transaction
 *		A copy of a pg_snapshot that also counts the caller's own transaction
 *		as in progress.  pg_current_snapshot() leaves it out, which would let
 *		a run inside a writer's transaction mark that transaction consumed
 *		while it can still stage rows.
 */
Datum
pipeline_snapshot_with_own_transaction(Datum snapshot)
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
 * pipeline_snapshot_with_own_transaction_listed
 *		A copy of a pg_snapshot that counts the caller's own transaction as
 *		in progress and lists it, below xmax, as a cursor's partial position
 *		needs it: when it is at or above xmax, xmax moves past it and every
 *		id from the old xmax on is listed too (none of them had finished
 *		when the snapshot was taken, so it sees none of them either way).
 *		There are at most as many as transactions were running then.
 */
Datum
pipeline_snapshot_with_own_transaction_listed(Datum snapshot)
{
	PipelineSnapshot *s = (PipelineSnapshot *) PG_DETOAST_DATUM(snapshot);
	FullTransactionId own = GetTopFullTransactionId();
	uint64		from = U64FromFullTransactionId(s->xmax);
	uint64		to = U64FromFullTransactionId(own);
	PipelineSnapshot *m;
	uint32		n;

	if (FullTransactionIdPrecedes(own, s->xmax))
		return pipeline_snapshot_with_own_transaction(snapshot);
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
 * pipeline_snapshot_committed_since
 *		The ids the cursor saw in progress that the run's snapshot sees
 *		finished, as an xid8[] datum: their rows are pending.  With the
 *		cursor's xmax, this is what the batch statement's form of the cursor
 *		rule reads (cursor_rule.c, pipeline_rule_run_pending).
 */
Datum
pipeline_snapshot_committed_since(Datum cursor, Datum snapshot)
{
	PipelineSnapshot *c = (PipelineSnapshot *) PG_DETOAST_DATUM(cursor);
	PipelineSnapshot *s = (PipelineSnapshot *) PG_DETOAST_DATUM(snapshot);
	Datum	   *elems = palloc(sizeof(Datum) * Max(c->nxip, 1));
	int			n = 0;

	for (uint32 i = 0; i < c->nxip; i++)
		if (sees(s, c->xip[i]))
			elems[n++] = FullTransactionIdGetDatum(c->xip[i]);
	return PointerGetDatum(construct_array(elems, n, XID8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/*
 * pipeline_snapshot_with_finished
 *		A copy of snapshot c that also sees transaction x as finished: the
 *		cursor once the partial transaction x is consumed to its end.
 */
Datum
pipeline_snapshot_with_finished(Datum cursor, FullTransactionId x)
{
	PipelineSnapshot *c = (PipelineSnapshot *) PG_DETOAST_DATUM(cursor);
	PipelineSnapshot *m = palloc0(PIPELINE_SNAPSHOT_SIZE(c->nxip));
	uint32		n = 0;

	for (uint32 i = 0; i < c->nxip; i++)
		if (!FullTransactionIdEquals(c->xip[i], x))
			m->xip[n++] = c->xip[i];
	m->nxip = n;
	m->xmax = c->xmax;
	if (FullTransactionIdFollowsOrEquals(x, c->xmax))
		m->xmax = FullTransactionIdFromU64(U64FromFullTransactionId(x) + 1);
	m->xmin = n > 0 ? m->xip[0] : m->xmax;
	SET_VARSIZE(m, PIPELINE_SNAPSHOT_SIZE(n));
	return PointerGetDatum(m);
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
