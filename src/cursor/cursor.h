/*-------------------------------------------------------------------------
 *
 * cursor.h
 *	  Snapshot cursors: the logical transaction clock (xid_clock.c),
 *	  arithmetic on cursors' snapshots (snapshot_cursor.c), and the cursor
 *	  rule, which staged rows are pending or consumed (cursor_rule.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CURSOR_H
#define PIPELINE_CURSOR_H

#include "model.h"

/* xid_clock.c */
extern void pipeline_clock_init(void);
extern Datum pipeline_seed_cursor(Snapshot snapshot);
extern bool pipeline_own_staging_xid(FullTransactionId *xid);
extern Datum pipeline_run_snapshot(void);

/* snapshot_cursor.c */
extern Datum pipeline_snapshot_shift(Datum snapshot, uint64 offset);
extern Datum pipeline_snapshot_with_own_transaction(Datum snapshot);
extern Datum pipeline_snapshot_with_own_transaction_listed(Datum snapshot);
extern Datum pipeline_snapshot_committed_since(Datum cursor, Datum snapshot);
extern Datum pipeline_snapshot_with_finished(Datum cursor, FullTransactionId x);
extern Datum pipeline_snapshot_datum_prefix(Datum consumed, Datum upto,
											FullTransactionId boundary);
extern Datum pipeline_snapshot_intersection(Datum a, Datum b);

/*
 * A cursor as a statement names it: SQL expressions (parameters, usually)
 * for its snapshot and its partial position.  partial_xid NULL: the cursor
 * has no partial position (a snapshot alone); otherwise partial_xid may
 * still be NULL at run time, for a cursor without one.
 */
typedef struct CursorSql
{
	const char *consumed;		/* pg_snapshot */
	const char *partial_xid;	/* xid8, or NULL */
	const char *partial_seq;	/* bigint */
} CursorSql;

/*
 * The rows a run may consume past a cursor, in the form the batch statement
 * reads them through the (_xid, _seq) index: the ids the cursor saw in
 * progress that the run's snapshot sees finished (computed by
 * pipeline_snapshot_committed_since), and the ids from the cursor's xmax on
 * that the run's snapshot sees.
 */
typedef struct RunPendingSql
{
	const char *committed;		/* xid8[] */
	const char *cursor_xmax;	/* xid8 */
	const char *snapshot;		/* pg_snapshot: the run's */
} RunPendingSql;

extern char *pipeline_rule_consumed(const char *row, const CursorSql *cursor);
extern char *pipeline_rule_pending(const char *row, const CursorSql *cursor);
extern char *pipeline_rule_between(const char *row, const CursorSql *before,
								   const CursorSql *after);
extern char *pipeline_rule_run_committed(const char *row, const RunPendingSql *run);
extern char *pipeline_rule_run_new(const char *row, const RunPendingSql *run);
extern char *pipeline_rule_run_pending(const char *row, const RunPendingSql *run);

#endif							/* PIPELINE_CURSOR_H */
