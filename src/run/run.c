/*-------------------------------------------------------------------------
 *
 * run.c
 *	  pipeline.run, requeue_quarantine and replay: drive a run batch by
 *	  batch, each batch committed together with the cursor it advances.
 *
 * A run takes the pipeline's snapshot S once, at its start, and consumes
 * every staged row whose _xid S sees and the cursor does not.  Rows are
 * consumed in (_xid, _seq) order in batches of batch_size; after each batch
 * the cursor becomes "everything S sees below the last transaction, what
 * the old cursor saw above it, and the last transaction up to the last
 * _seq" (snapshot_prefix plus a partial position).  A run that starts from
 * such a partial position first finishes that one transaction (phase A),
 * then consumes the rest (phase B), so one cursor never needs two partial
 * positions.
 *
 * Each run records the cursor it started from and the one after its last
 * batch, so that a replay can merge its rows again (replay.c).  A replay is
 * a run over those rows, read from the staging table and the archive, that
 * never moves the cursor.  A successful run ends with an archive pass on
 * its source when one is due (archive.c).
 *
 * Called with CALL outside a transaction block, each batch commits with the
 * cursor it advances (a phase's last batch with what follows it, the run's
 * last with its end) and a run that finds nothing pending is one
 * transaction (see "A run's transactions" in doc/design.md); otherwise the
 * whole run is one transaction.  A run worker calls the
 * same body directly (pipeline_run_nonatomic), batch by batch like such a
 * CALL.  Two runs of a pipeline (replays included) never overlap: the
 * second returns at once with status 'skipped'.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "model.h"
#include "archive/archive.h"
#include "base/base.h"
#include "batch/batch.h"
#include "cursor/cursor.h"
#include "definition/definition.h"
#include "lineage/lineage.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"
#include "sources/sources.h"
#include "strategies/strategies.h"
#include "strategy.h"


/*
 * Set by SIGTERM in a run worker (run_worker.c): the run stops after the
 * batch in progress, as if cancelled.
 */
volatile sig_atomic_t pipeline_stop_requested = false;

PG_FUNCTION_INFO_V1(pipeline_run);
PG_FUNCTION_INFO_V1(pipeline_requeue_quarantine);
PG_FUNCTION_INFO_V1(pipeline_replay);

/* Distinguishes the run lock from other advisory locks on the same ids. */
#define RUN_LOCK_CLASS 0x5049

/* The name of the pipeline this backend is running (NULL: none). */
static const char *running_pipeline = NULL;

/* run_log.kind of a run, by what it reads (a run reads its dimensions too). */
static const char *const run_kind[] = {"run", "requeue", "replay", "run", "test"};

/*
 * A staging run's two phases (run_staging), planned before the run is
 * recorded (plan_staging): phase A, the rest of the transaction the cursor
 * stopped inside; phase B, everything else the run's snapshot sees.
 */
typedef struct StagingPlan
{
	Datum		cursor;			/* the cursor the run starts from */
	RowPosition partial;
	BatchParams a;				/* its bounds are the phase's */
	int64		pending_a;
	Datum		cursor_b;		/* the cursor once phase A is done */
	BatchParams b;				/* its bounds are the phase's */
	int64		pending_b;
	BatchParams dimensions;		/* the source rows its dimensions' changes
								 * send again (joins_sql.c) */
	bool		dimensions_changed; /* some are pending (not counted: the
									 * batch reads them all at once) */
} StagingPlan;

/* The state of a run between its batches. */
typedef struct RunState
{
	PipelineDef *def;
	BatchSource from;
	bool		atomic;			/* all in the caller's transaction */
	int64		run_id;
	TimestampTz started_at;
	int64		max_rows;		/* -1: no limit */
	Datum		requeue_ids;	/* bigint[], or 0 for all */
	ReplayRequest replay;		/* a replay: which runs */
	Datum		snapshot;		/* S: what this run may consume */
	TimestampTz snapshot_at;	/* just before S was taken */
	StagingPlan staging;		/* a run's (from BATCH_FROM_STAGING) */
	RunCounts	counts;
	RunCounts	committed;		/* the counts as of the last commit */
	BatchState	batch;			/* of the batch under way */
	int64		pending;
	bool		extract_open;	/* it stopped before an extract that is not
								 * complete yet (extract_id) */
	bool		in_step;		/* a step's subtransaction is open (not while
								 * its commit runs) */
	const char *status;
	const char *message;
	/* outside a transaction block: the subtransaction of the current step */
	ResourceOwner step_owner;
	MemoryContext step_context;
} RunState;

/*
 * running_backend
 *		The pid holding a pipeline's run lock, or 0.
 */
static int
running_backend(int64 pipeline_id)
{
	Oid			types[3] = {OIDOID, OIDOID, INT4OID};
	Datum		values[3];
	PipelineUserContext ctx;
	int			pid = 0;

	values[0] = ObjectIdGetDatum((Oid) (pipeline_id >> 32));
	values[1] = ObjectIdGetDatum((Oid) pipeline_id);
	values[2] = Int32GetDatum(RUN_LOCK_CLASS);
	pipeline_become_internal(&ctx);
	if (pipeline_exec("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
					  "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
					  "AND classid = $1 AND objid = $2 AND objsubid = $3 AND granted",
					  3, types, values, NULL, true, 1) == 1)
		pid = (int) pipeline_result_int64(0, 0);
	pipeline_restore_user(&ctx);
	return pid;
}

/*
 * pipeline_fail_dead_runs
 *		Marks failed the runs recorded as running whose session is gone (a
 *		crash or a restart ended them), for every pipeline whose run lock is
 *		free.  The scheduler calls it when it starts.  The caller is in a
 *		transaction, connected to SPI.
 */
void
pipeline_fail_dead_runs(void)
{
	int64	   *ids;
	int			n = pipeline_running_pipelines(&ids);

	for (int i = 0; i < n; i++)
		if (!pipeline_run_lock_held(ids[i]))	/* else a live run */
			pipeline_fail_interrupted_runs(ids[i]);
}

/*
 * pipeline_run_lock_held
 *		Whether a session (of any database's client or worker) holds the
 *		pipeline's run lock: a run of it is in progress.
 */
bool
pipeline_run_lock_held(int64 pipeline_id)
{
	return pipeline_id_lock_held(pipeline_id, RUN_LOCK_CLASS);
}

/*
 * position
 *		A RowPosition from its parts.
 */
static RowPosition
position(FullTransactionId xid, int64 seq)
{
	RowPosition p;

	p.valid = true;
	p.xid = xid;
	p.seq = seq;
	return p;
}

/*
 * position_equal
 *		Whether two row positions are the same.
 */
static bool
position_equal(RowPosition a, RowPosition b)
{
	return FullTransactionIdEquals(a.xid, b.xid) && a.seq == b.seq;
}

/*
 * begin_step
 *		Outside a transaction block, the work between two commits runs in a
 *		subtransaction: when it fails, rolling that back leaves a clean
 *		transaction in which the failure can be recorded.
 */
static void
begin_step(RunState *rs)
{
	if (rs->atomic)
		return;
	rs->step_owner = CurrentResourceOwner;
	rs->step_context = CurrentMemoryContext;
	BeginInternalSubTransaction(NULL);
	rs->in_step = true;
	MemoryContextSwitchTo(rs->step_context);
}

/*
 * end_run
 *		Outside a transaction block: commits the step (the run's last, or
 *		one that commit_batch follows with the next).
 */
static void
end_run(RunState *rs)
{
	if (rs->atomic)
		return;
	ReleaseCurrentSubTransaction();
	rs->in_step = false;
	MemoryContextSwitchTo(rs->step_context);
	CurrentResourceOwner = rs->step_owner;
	SPI_commit();
}

/*
 * commit_batch
 *		Ends a step: outside a transaction block, commits it and begins the
 *		next one.
 */
static void
commit_batch(RunState *rs)
{
	if (rs->atomic)
		return;
	end_run(rs);
	rs->committed = rs->counts;
	begin_step(rs);
}

/*
 * commit_lazily
 *		The transaction's commit will not wait for its WAL to reach the disk
 *		(synchronous_commit off for this transaction alone).  For the commits
 *		a crash can lose without losing anything of value: the one that
 *		shows a run as running (the row of a run that has done no work yet;
 *		the run's next durable commit flushes it too), and the end of a run
 *		that found nothing pending (its cursor moved past rows no one wrote:
 *		a crash takes it back to where it was, and the next run moves it
 *		again).  An empty run then waits for no flush at all.
 */
static void
commit_lazily(void)
{
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * commit_start_lazily
 *		Commits the start of a run lazily (commit_lazily).
 */
static void
commit_start_lazily(RunState *rs)
{
	if (!rs->atomic)
		commit_lazily();
	commit_batch(rs);
}

/*
 * abort_step
 *		After an error outside a transaction block: rolls the step back.
 *		An error of the commit itself (a Citus worker refusing its prepared
 *		transaction) came after the step was released: SPI_commit has
 *		already rolled that transaction back and begun a new one, in which
 *		the failure is recorded.
 */
static void
abort_step(RunState *rs)
{
	if (rs->in_step)
	{
		RollbackAndReleaseCurrentSubTransaction();
		rs->in_step = false;
		CurrentResourceOwner = rs->step_owner;
	}
	MemoryContextSwitchTo(rs->step_context);
}

/*
 * start_batch
 *		Begins a batch: re-reads the definition, locked against alter and
 *		drop until the batch commits.  Returns false when the run must stop
 *		(the pipeline was dropped or paused meanwhile, or the worker running
 *		it got SIGTERM).
 */
static bool
start_batch(RunState *rs)
{
	PipelineDef *def = pipeline_load_by_id(rs->def->id, DEF_LOCK_SHARE);

	if (def == NULL)
	{
		rs->status = "cancelled";
		rs->message = "pipeline was dropped while running";
		return false;
	}
	if (def->paused)
	{
		rs->status = "cancelled";
		rs->message = "pipeline was paused while running";
		return false;
	}
	if (pipeline_stop_requested)
	{
		rs->status = "cancelled";
		rs->message = "the background worker running it was asked to stop (server shutdown, SIGTERM, or a statement on its database)";
		return false;
	}
	rs->def = def;
	return true;
}

/*
 * merge_timed_batch
 *		One batch statement under the pipeline's statement_timeout; the
 *		timer is disarmed however the statement ends, so that a failed batch
 *		does not leave it to cancel what follows.
 */
static void
merge_timed_batch(RunState *rs, BatchSource from, const BatchParams *params, bool whole_phase)
{
	TimestampTz outer_deadline = pipeline_arm_timeout(rs->def->statement_timeout_ms);

	PG_TRY();
	{
		pipeline_merge_batch(rs->def, from, params, whole_phase, &rs->batch, &rs->counts);
	}
	PG_FINALLY();
	{
		pipeline_disarm_timeout(rs->def->statement_timeout_ms, outer_deadline);
	}
	PG_END_TRY();
}

/*
 * claim_timed_batch
 *		A routed batch of a sharded pipeline (routed_run.c) under the
 *		pipeline's statement_timeout, as merge_timed_batch.
 */
static void
claim_timed_batch(RunState *rs, ShardBatch *batch)
{
	TimestampTz outer_deadline = pipeline_arm_timeout(rs->def->statement_timeout_ms);

	PG_TRY();
	{
		pipeline_claim_routed(rs->def, &rs->counts, batch);
	}
	PG_FINALLY();
	{
		pipeline_disarm_timeout(rs->def->statement_timeout_ms, outer_deadline);
	}
	PG_END_TRY();
}

/*
 * consume
 *		Merges the pending rows of one phase in batches, advancing the cursor
 *		after each; each batch commits with its cursor but the last, which
 *		the caller commits.  'cursor' is the phase's starting cursor, 'end' the last
 *		position of the phase; 'advance' computes the cursor after a batch
 *		that ended at a given row (or reached the end).  Returns false when
 *		the run stopped early.  'phase_pending' is the number of rows the
 *		phase holds (counted at the start of the run: the set is fixed by the
 *		cursor and the run's snapshot).  'bounds_implied' when the phase's
 *		bounds follow from its snapshot test (phase B; in phase A the lower
 *		bound is what leaves out the rows already consumed).
 */
typedef void (*CursorAdvance) (RunState *rs, Datum cursor, bool reached_end,
							   RowPosition last, Datum *consumed, RowPosition *partial);

/*
 * stop_before_open_extract
 *		The extract a batch would apply next (extract_id) is not complete:
 *		neither has a later one begun nor has its loader closed it.  The run
 *		ends here; its rows, and every row after them, stay pending (the
 *		cursor is where the last batch left it).
 */
static void
stop_before_open_extract(RunState *rs, const char *extract)
{
	rs->extract_open = true;
	rs->message = psprintf("extract %s is not complete: it is applied once the next extract begins or pipeline.close_extract closes it",
						   extract);
}

static bool
consume(RunState *rs, BatchParams *params, Datum cursor, RowPosition lo, RowPosition end,
		CursorAdvance advance, int64 phase_pending, bool bounds_implied)
{
	int64		read_before = rs->counts.read;
	RowPosition phase_start = lo;

	for (;;)
	{
		int64		n = rs->def->batch_size;
		int64		remaining = phase_pending - (rs->counts.read - read_before);
		RowPosition hi;
		bool		reached_end;
		Datum		consumed;
		RowPosition partial;
		char	   *extract;

		if (rs->max_rows >= 0)
			n = Min(n, rs->max_rows - rs->counts.read);
		if (n <= 0)
			return true;

		params->lo = lo;
		params->hi = end;
		extract = NULL;
		if (pipeline_reads_extracts(rs->def) && rs->from == BATCH_FROM_STAGING)
		{
			bool		complete;

			/*
			 * a batch is a whole extract: one transaction's rows, or one
			 * extract_id's
			 */
			reached_end = !pipeline_extract_end(rs->def, rs->from, params, &hi, &complete, &extract) ||
				position_equal(hi, end);
			if (!complete)
			{
				stop_before_open_extract(rs, extract);
				return true;
			}
		}
		else
		{
			/* The rest fits in this batch: no need to look for its last row. */
			reached_end = remaining <= n ||
				!pipeline_nth_pending(rs->def, rs->from, params, n - 1, &hi);
		}
		if (reached_end)
			hi = end;
		params->hi = hi;
		merge_timed_batch(rs, rs->from, params,
						  bounds_implied && reached_end && position_equal(lo, phase_start));
		if (extract)
			pipeline_save_extract(rs->def->id, extract, true);
		/* an extract that was the phase's last rows ends it */
		if (!reached_end && pipeline_reads_extracts(rs->def) &&
			rs->counts.read - read_before >= phase_pending)
			reached_end = true;

		if (rs->from == BATCH_FROM_STAGING)
		{
			advance(rs, cursor, reached_end, hi, &consumed, &partial);
			/* advance_main_phase hands back S itself once all is consumed */
			pipeline_cursor_write(rs->def->id, rs->run_id, consumed, &partial,
								  consumed == rs->snapshot ? rs->snapshot_at : 0);
		}

		/*
		 * A phase's last batch commits with what follows: the next phase, or
		 * the run's end, which records its counts.
		 */
		if (reached_end || (rs->max_rows >= 0 && rs->counts.read >= rs->max_rows))
			return true;
		pipeline_run_progress(rs->run_id, &rs->counts, rs->pending);
		commit_batch(rs);
		if (!start_batch(rs))
			return false;
		lo = hi;
	}
}

/*
 * advance_partial_phase
 *		Phase A: the cursor keeps its snapshot and moves its partial position
 *		until the partial transaction is finished.
 */
static void
advance_partial_phase(RunState *rs, Datum cursor, bool reached_end, RowPosition last,
					  Datum *consumed, RowPosition *partial)
{
	if (reached_end)
	{
		*consumed = pipeline_snapshot_with_finished(cursor, last.xid);
		partial->valid = false;
	}
	else
	{
		*consumed = cursor;
		*partial = last;
	}
}

/*
 * advance_main_phase
 *		Phase B: everything the run's snapshot sees below the last row's
 *		transaction, the old cursor above it, that transaction partially.
 */
static void
advance_main_phase(RunState *rs, Datum cursor, bool reached_end, RowPosition last,
				   Datum *consumed, RowPosition *partial)
{
	if (reached_end)
	{
		*consumed = rs->snapshot;
		partial->valid = false;
	}
	else
	{
		*consumed = pipeline_snapshot_datum_prefix(cursor, rs->snapshot, last.xid);
		*partial = last;
	}
}

/*
 * base_params
 *		The batch parameters of this run past a cursor: the ids it saw in
 *		progress that have committed since, and its xmax (see cursor_rule.c).
 */
static void
base_params(RunState *rs, BatchParams *params, Datum committed, FullTransactionId cursor_xmax)
{
	memset(params, 0, sizeof(BatchParams));
	params->committed = committed;
	params->cursor_xmax = cursor_xmax;
	params->snapshot = rs->snapshot;
	params->run_id = rs->run_id;
	params->pipeline_id = rs->def->id;
	params->requeue_ids = rs->requeue_ids;
}

/*
 * notice_own_rows
 *		In the caller's transaction block: a NOTICE when that transaction
 *		staged rows in the source.  No run consumes them before it commits
 *		(a run counts its own transaction as in progress: pipeline_run_
 *		snapshot); saying so spares a user wondering where they went.
 */
static void
notice_own_rows(RunState *rs)
{
	FullTransactionId own;
	Oid			type = XID8OID;
	Datum		value;
	PipelineUserContext ctx;
	bool		staged;

	if (!rs->atomic || !pipeline_own_staging_xid(&own))
		return;
	value = FullTransactionIdGetDatum(own);
	pipeline_become_owner(rs->def, &ctx);
	staged = pipeline_exec(psprintf("SELECT 1 FROM %s WHERE _xid OPERATOR(pg_catalog.=) $1 LIMIT 1",
									pipeline_qualified_name(rs->def->source)),
						   1, &type, &value, NULL, true, 1) == 1;
	pipeline_restore_user(&ctx);
	if (staged)
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" leaves the rows this transaction staged in %s for a later run",
						rs->def->name, pipeline_qualified_name(rs->def->source)),
				 errdetail("A run merges committed rows only; the rows of the transaction that calls it are merged by the first run after it commits."),
				 errhint("Commit the rows first, then call pipeline.run.")));
}

/*
 * plan_dimensions
 *		With joins: the source rows that the changes of its dimensions
 *		between their cursor and the run's snapshot send again.
 */
static void
plan_dimensions(RunState *rs)
{
	StagingPlan *p = &rs->staging;
	BatchParams *d = &p->dimensions;

	p->dimensions_changed = false;
	if (rs->def->joins == NIL)
		return;
	base_params(rs, d, PointerGetDatum(construct_empty_array(XID8OID)), FullTransactionIdFromU64(0));
	d->before = pipeline_dimensions_read(rs->def->id);
	d->lo = position(FullTransactionIdFromU64(0), PG_INT64_MIN);
	d->hi = position(FullTransactionIdFromU64(PG_UINT64_MAX), PG_INT64_MAX);
	p->dimensions_changed = pipeline_any_pending(rs->def, BATCH_FROM_DIMENSION, d);
}

/*
 * run_dimensions
 *		After the source's rows, committed first (a dimension batch that
 *		fails leaves them merged): the source rows its dimensions' changes
 *		send again, in batches of batch_size, each committed; the last one
 *		moves the dimensions' cursor to the run's snapshot.  Their source
 *		rows as merged so far are the ones sent; the dimensions are read at
 *		a snapshot no older than the run's.  A run that stops before the
 *		last leaves the cursor: the next run sends them all again
 *		(idempotent).
 */
static void
run_dimensions(RunState *rs)
{
	StagingPlan *p = &rs->staging;
	BatchParams *d = &p->dimensions;
	bool		finished;

	if (rs->def->joins == NIL)
		return;
	if (p->dimensions_changed)
	{
		pipeline_run_progress(rs->run_id, &rs->counts, rs->pending);
		commit_batch(rs);
		if (!start_batch(rs))
			return;
		d->run_id = rs->run_id;
		rs->from = BATCH_FROM_DIMENSION;
		/* not counted ahead: each batch looks for its last row */
		finished = consume(rs, d, (Datum) 0, d->lo, d->hi, NULL, PG_INT64_MAX, false);
		rs->from = BATCH_FROM_STAGING;
		if (!finished || (rs->max_rows >= 0 && rs->counts.read >= rs->max_rows))
			return;
	}
	pipeline_dimensions_move(rs->def->id, rs->snapshot);
}

/*
 * plan_staging
 *		Reads the cursor, takes the run's snapshot S, and counts the rows
 *		each phase has pending.  The set is fixed from then on: the cursor
 *		moves only with the run lock, which the run holds.
 */
static void
plan_staging(RunState *rs)
{
	StagingPlan *p = &rs->staging;
	PipelineSnapshot *s;
	PipelineSnapshot *c;

	notice_own_rows(rs);
	pipeline_cursor_read(rs->def->id, &p->cursor, &p->partial);
	rs->snapshot_at = GetCurrentTimestamp();
	rs->snapshot = pipeline_run_snapshot();
	s = (PipelineSnapshot *) PG_DETOAST_DATUM(rs->snapshot);

	/* Phase A: the rest of the transaction the cursor stopped inside. */
	p->cursor_b = p->partial.valid ?
		pipeline_snapshot_with_finished(p->cursor, p->partial.xid) : p->cursor;
	p->pending_a = 0;
	if (p->partial.valid)
	{
		Datum		only[1] = {FullTransactionIdGetDatum(p->partial.xid)};

		base_params(rs, &p->a,
					PointerGetDatum(construct_array(only, 1, XID8OID, 8, FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE)),
					s->xmax);
		p->a.lo = p->partial;
		p->a.hi = position(p->partial.xid, PG_INT64_MAX);
		p->pending_a = pipeline_count_pending(rs->def, rs->from, &p->a);
	}

	/*
	 * Phase B: everything else the snapshot sees, in (_xid, _seq) order.
	 * Nothing below the cursor's xmin can be pending.
	 */
	c = (PipelineSnapshot *) PG_DETOAST_DATUM(p->cursor_b);
	base_params(rs, &p->b, pipeline_snapshot_committed_since(p->cursor_b, rs->snapshot), c->xmax);
	p->b.lo = position(c->xmin, PG_INT64_MIN);
	p->b.hi = position(s->xmax, PG_INT64_MIN);
	/* nothing pending, a continuous pipeline's usual case, costs one probe */
	p->pending_b = pipeline_any_pending(rs->def, rs->from, &p->b) ?
		pipeline_count_pending(rs->def, rs->from, &p->b) : 0;
	plan_dimensions(rs);
	rs->pending = p->pending_a + p->pending_b;
}

/*
 * run_staging
 *		Consumes the planned phases: A, then B, then the dimensions' changes
 *		(once the source's rows are all consumed).
 */
static void
run_staging(RunState *rs)
{
	StagingPlan *p = &rs->staging;

	p->a.run_id = p->b.run_id = rs->run_id; /* recorded after the plan */
	if (p->partial.valid &&
		!consume(rs, &p->a, p->cursor, p->a.lo, p->a.hi, advance_partial_phase,
				 p->pending_a, false))
		return;
	if ((rs->max_rows >= 0 && rs->counts.read >= rs->max_rows) || rs->extract_open)
		return;
	if (p->pending_b == 0)
	{
		RowPosition none_pending = {0};

		pipeline_cursor_write(rs->def->id, rs->run_id, rs->snapshot, &none_pending,
							  rs->snapshot_at);
	}
	else if (!consume(rs, &p->b, p->cursor_b, p->b.lo, p->b.hi, advance_main_phase,
					  p->pending_b, true) ||
			 (rs->max_rows >= 0 && rs->counts.read >= rs->max_rows) || rs->extract_open)
		return;
	run_dimensions(rs);
}

/*
 * count_whole
 *		Takes the run's snapshot, sets 'params' to every row the run reads
 *		(rs->from: a requeue's quarantined rows, a test's fixture, neither
 *		behind a cursor) and counts them in rs->pending.
 */
static void
count_whole(RunState *rs, BatchParams *params)
{
	FullTransactionId none = FullTransactionIdFromU64(0);

	rs->snapshot = pipeline_run_snapshot();
	base_params(rs, params, PointerGetDatum(construct_empty_array(XID8OID)), none);
	params->lo = position(none, PG_INT64_MIN);
	params->hi = position(FullTransactionIdFromU64(PG_UINT64_MAX), PG_INT64_MAX);
	rs->pending = pipeline_count_pending(rs->def, rs->from, params);
}

/*
 * merge_whole
 *		Merges a requeue's quarantined rows as one batch.
 */
static void
merge_whole(RunState *rs)
{
	BatchParams params;

	count_whole(rs, &params);
	pipeline_run_progress(rs->run_id, &rs->counts, rs->pending);
	merge_timed_batch(rs, rs->from, &params, true);
}

/*
 * run_requeue
 *		Puts quarantined rows back through the pipeline as one batch, and
 *		marks them requeued (those that fail again are quarantined anew).
 */
static void
run_requeue(RunState *rs)
{
	Oid			types[3] = {INT8OID, INT8OID, INT8ARRAYOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	PipelineUserContext ctx;

	merge_whole(rs);
	values[0] = Int64GetDatum(rs->def->id);
	values[1] = Int64GetDatum(rs->run_id);
	values[2] = rs->requeue_ids;
	if (rs->requeue_ids == (Datum) 0)
		nulls[2] = 'n';
	pipeline_become_internal(&ctx);
	pipeline_exec("UPDATE pipeline.quarantine_log SET requeued_at = clock_timestamp(), "
				  "requeue_run_id = $2 WHERE pipeline_id = $1 AND requeued_at IS NULL "
				  "AND run_id <> $2 AND ($3 IS NULL OR id = ANY ($3))",
				  3, types, values, nulls, false, 0);
	pipeline_restore_user(&ctx);
}

/*
 * run_replay
 *		Merges again the rows the selected runs consumed, in batches, without
 *		touching the cursor: those between the cursor before the first run
 *		and the cursor after the last.
 */
static void
run_replay(RunState *rs)
{
	BatchParams params;
	ReplayRange range;
	PipelineSnapshot *before;
	PipelineSnapshot *after;
	FullTransactionId last_xid;
	RowPosition lo,
				hi;

	if (!pipeline_runs_selected(rs->def->id, &rs->replay, rs->run_id, &range))
		return;
	rs->snapshot = range.after;
	base_params(rs, &params, PointerGetDatum(construct_empty_array(XID8OID)),
				FullTransactionIdFromU64(0));
	/* a missing partial position is (0, 0): no row has _xid 0 */
	params.before = range.before;
	params.before_partial = range.before_partial;
	params.after_partial = range.after_partial;

	/* nothing below the first cursor's xmin, nor past the last one's end */
	before = (PipelineSnapshot *) PG_DETOAST_DATUM(range.before);
	after = (PipelineSnapshot *) PG_DETOAST_DATUM(range.after);
	last_xid = after->xmax;
	if (range.after_partial.valid && FullTransactionIdFollows(range.after_partial.xid, last_xid))
		last_xid = range.after_partial.xid;
	lo = position(before->xmin, PG_INT64_MIN);
	hi = position(last_xid, PG_INT64_MAX);
	params.lo = lo;
	params.hi = hi;
	rs->pending = pipeline_count_pending(rs->def, rs->from, &params);
	pipeline_run_progress(rs->run_id, &rs->counts, rs->pending);
	if (rs->pending > 0)
		consume(rs, &params, (Datum) 0, lo, hi, NULL, rs->pending, false);
}

/*
 * cleanup_tombstones
 *		Forgets deletes older than the pipeline's tombstone retention, as
 *		the tombstone table's owner, and those a row state remembers.
 */
static void
cleanup_tombstones(const PipelineDef *def)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(def->tombstone_retention);

	pipeline_forget_row_deletes(def);
	if (!OidIsValid(def->tombstones))
		return;
	pipeline_exec_as_relation_owner(def->tombstones,
									psprintf("DELETE FROM %s WHERE deleted_at < now() - $1::interval",
											 pipeline_qualified_name(def->tombstones)),
									1, &type, &value, NULL);
}

/*
 * maintain_staging
 *		What a run from the staging table does before it consumes: follow
 *		the source's schema, keep the change logs it publishes and reads in
 *		step, refuse a source it cannot follow whole, forget tombstones past
 *		their retention.
 */
static void
maintain_staging(RunState *rs)
{
	pipeline_apply_schema_change(rs->def);
	pipeline_sync_change_log(rs->def);
	pipeline_require_whole_source(rs->def->source, rs->def->owner);
	pipeline_check_change_log_reader(rs->def);
	pipeline_trim_change_log(rs->def);
	cleanup_tombstones(rs->def);
}

/*
 * describe_run
 *		The run's history row as it starts.
 */
static void
describe_run(const RunState *rs, RunRecord *record)
{
	memset(record, 0, sizeof(RunRecord));
	record->kind = run_kind[rs->from];
	record->run_as = GetUserId();
	record->started_at = rs->started_at;
	record->pending = rs->pending;
	record->cursor_before = record->cursor_after = rs->staging.cursor;
	record->partial_before = record->partial_after = rs->staging.partial;
}

/*
 * record_start
 *		Records the run as running.
 */
static void
record_start(RunState *rs)
{
	RunRecord	record;

	describe_run(rs, &record);
	rs->run_id = pipeline_run_start(rs->def->id, &record);
}

/*
 * finish_empty_run
 *		A run that found nothing pending moves the cursor up to S and is
 *		recorded whole, started and succeeded, in the transaction that
 *		looked: one commit, which waits for no flush (commit_lazily).
 */
static void
finish_empty_run(RunState *rs)
{
	RunRecord	record;
	RowPosition none_pending = {0};
	int64		run_id;

	rs->status = "succeeded";
	maintain_staging(rs);
	pipeline_cursor_move(rs->def->id, rs->snapshot, &none_pending, rs->snapshot_at);
	if (rs->def->joins != NIL)
		pipeline_dimensions_move(rs->def->id, rs->snapshot);
	describe_run(rs, &record);
	record.cursor_after = rs->snapshot;
	record.partial_after = none_pending;
	run_id = pipeline_run_record_empty(rs->def->id, &record);
	pipeline_openlineage_record_run(rs->def->id, run_id, rs->status);
	pipeline_archive_after_run(rs->def);
	if (!rs->atomic)
		commit_lazily();
	end_run(rs);
	/* only now: a failure before the commit rolled its row back */
	rs->run_id = run_id;
}

/*
 * run_batches
 *		The batches of a recorded run, from what it reads; none when it was
 *		cancelled meanwhile (start_batch).
 */
static void
run_batches(RunState *rs)
{
	if (!start_batch(rs))
		return;
	if (rs->from == BATCH_FROM_STAGING)
	{
		maintain_staging(rs);
		run_staging(rs);
	}
	else if (rs->from == BATCH_FROM_REPLAY)
	{
		pipeline_apply_schema_change(rs->def);
		pipeline_sync_change_log(rs->def);
		pipeline_check_change_log_reader(rs->def);
		run_replay(rs);
	}
	else
	{
		pipeline_check_change_log_reader(rs->def);
		run_requeue(rs);
	}
}

/*
 * refuse_atomic_sharded
 *		A sharded run commits each shard on its worker, on connections of
 *		its own: in the caller's transaction it could neither be rolled back
 *		with it nor see its locks (a run waiting on the caller's own row
 *		locks would wait for ever).
 */
static void
refuse_atomic_sharded(const RunState *rs)
{
	if (rs->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("sharded pipeline \"%s\" cannot run inside a transaction block", rs->def->name),
				 errdetail("Its shards commit on their workers as they are merged, whatever the transaction does after."),
				 errhint("CALL pipeline.run('%s') outside a transaction block.", rs->def->name)));
}

/*
 * run_sharded
 *		A run of a sharded pipeline (shard_run.c), batch by batch -- or its
 *		requeue, which first stages the quarantined rows again -- every
 *		shard merges up to batch_size rows, committed on its worker; the
 *		rows they rejected are quarantined and committed, then taken out of
 *		the staging table.  The batches go on while a shard had more rows,
 *		without the shards that failed; those fail the run (their rows stay
 *		for the next), once what the others did is committed and counted.
 */
static void
run_sharded(RunState *rs)
{
	ShardBatch	batch = {0};
	StringInfoData failed;
	bool		routed = pipeline_sharded_routed(rs->def);

	refuse_atomic_sharded(rs);
	maintain_staging(rs);
	pipeline_unstage_quarantined(rs->def, rs->from == BATCH_FROM_QUARANTINE);
	record_start(rs);
	commit_start_lazily(rs);
	if (rs->from == BATCH_FROM_QUARANTINE)
	{
		pipeline_restage_quarantined(rs->def, rs->run_id, rs->requeue_ids);
		commit_batch(rs);
	}
	initStringInfo(&failed);
	do
	{
		if (!start_batch(rs))
			break;
		if (routed)
			claim_timed_batch(rs, &batch);
		else
			pipeline_merge_shards(rs->def, &rs->counts, &batch);
		pipeline_quarantine_shard_rows(rs->def, rs->run_id, &batch, &rs->counts);
		pipeline_checks_save_shards(rs->def, rs->run_id, &batch);
		commit_batch(rs);
		/* routed, the rejected rows were taken in the batch's transaction */
		if (!routed)
		{
			pipeline_unstage_shard_rows(rs->def, batch.rejected);
			commit_batch(rs);
		}
		if (batch.failed)
			appendStringInfo(&failed, "%s%s", failed.len ? "; " : "", batch.failed);
	} while (batch.full && (rs->max_rows < 0 || rs->counts.read < rs->max_rows));
	/* failed by their checks only: as a batch failing its checks fails a run */
	if (failed.len > 0)
		ereport(ERROR,
				(errcode(batch.failed_otherwise ? ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
						 : ERRCODE_PIPELINE_CHECK_FAILED),
				 routed ? errmsg("a batch of pipeline \"%s\" failed: %s", rs->def->name, failed.data) :
				 errmsg("shards of pipeline \"%s\" failed: %s", rs->def->name, failed.data),
				 routed ? errdetail("Nothing of that batch was merged; its rows stay staged for the next run.") :
				 errdetail("The other shards merged their rows; a failed shard keeps its rows for the next run."),
				 batch.failed_otherwise ?
				 errhint("See each shard's error: a worker that is back, or a lock released, lets the next run merge them.") :
				 errhint("pipeline.check_results shows the run's checks; fix the staged rows or the check, then run again.")));
	if (rs->status == NULL)
		rs->status = "succeeded";
	/* every shard's last batch was short: all rows staged before it are out */
	if (strcmp(rs->status, "succeeded") == 0 && !batch.full)
		pipeline_cursor_caught_up(rs->def->id, rs->started_at);
	pipeline_run_finish(rs->run_id, rs->status, &rs->counts, NULL, rs->message, true);
	end_run(rs);
}

/*
 * execute_run
 *		The body of a run, between taking and releasing the run lock.
 */
static void
execute_run(RunState *rs)
{
	PipelineDef *def;

	begin_step(rs);
	rs->started_at = GetCurrentTimestamp();

	/*
	 * Lock the definition before recording the run: an uncommitted drop makes
	 * this wait, and once it commits the run fails as a run of a missing
	 * pipeline, not on run_log's foreign key.
	 */
	def = pipeline_load_by_id(rs->def->id, DEF_LOCK_SHARE);
	if (def == NULL)
		pipeline_report_missing(rs->def->name);
	pipeline_fail_interrupted_runs(def->id);

	/*
	 * A sharded pipeline's rows are claimed shard by shard, not planned; its
	 * requeue stages the rows again for the shards' statements to judge.
	 */
	pipeline_check_sharded_run(def);
	if (def->sharded && ((rs->from == BATCH_FROM_STAGING && !def->paused && !pipeline_stop_requested) ||
						 rs->from == BATCH_FROM_QUARANTINE))
	{
		rs->def = def;
		run_sharded(rs);
		return;
	}

	/*
	 * A run from the staging table plans its phases before it is recorded,
	 * reading the source only: one that finds nothing pending ends in this
	 * transaction.  (Paused meanwhile, or its worker told to stop, it is
	 * recorded as cancelled.)
	 */
	if (rs->from == BATCH_FROM_STAGING && !def->paused && !pipeline_stop_requested)
	{
		rs->def = def;
		plan_staging(rs);
		if (rs->pending == 0 && !rs->staging.dimensions_changed)
		{
			finish_empty_run(rs);
			return;
		}
	}
	record_start(rs);
	commit_start_lazily(rs);	/* the running run is visible from now on */
	run_batches(rs);
	if (rs->status == NULL)
		rs->status = "succeeded";
	if (strcmp(rs->status, "cancelled") != 0 || pipeline_load_by_id(rs->def->id, DEF_LOCK_NONE))
		pipeline_run_finish(rs->run_id, rs->status, &rs->counts, NULL, rs->message, true);

	/*
	 * The archive pass after the commit: one that fails or is cancelled
	 * leaves the run's work committed.  (When none is due, that step writes
	 * nothing, and its commit waits for no flush.)
	 */
	if (rs->from == BATCH_FROM_STAGING && strcmp(rs->status, "succeeded") == 0)
	{
		commit_batch(rs);
		pipeline_archive_after_run(rs->def);
	}
	end_run(rs);
}

/*
 * record_failure
 *		After an error outside a transaction block: rolls the failed step
 *		back and records the run as failed, committed, with the counts of
 *		its committed batches and the data quality results of the batch
 *		that failed.
 */
static void
record_failure(RunState *rs, ErrorData *edata)
{
	abort_step(rs);

	/*
	 * Share-lock the definition before touching run_log, as execute_run does:
	 * a drop_pipeline holding the definition FOR UPDATE then makes this wait
	 * (and find the pipeline gone), instead of the two waiting on each other
	 * -- the drop's cascade on this run's run_log row, this transaction's
	 * foreign-key checks on the definition.
	 */
	if (pipeline_load_by_id(rs->def->id, DEF_LOCK_SHARE) != NULL)
	{
		if (rs->run_id == 0)
			record_start(rs);	/* it failed before it was recorded */
		pipeline_checks_save_pending(&rs->batch);
		/* what the rolled-back step counted did not happen */
		pipeline_run_finish(rs->run_id, "failed", &rs->committed,
							unpack_sql_state(edata->sqlerrcode), edata->message, true);
	}
	SPI_commit();
}

/*
 * record_failure_and_unlock
 *		record_failure, then the release of the session's run lock, which
 *		happens even when recording fails too (a lock left held would make
 *		every later run of the pipeline skip).
 */
static void
record_failure_and_unlock(RunState *rs, ErrorData *edata, LOCKTAG *tag)
{
	PG_TRY();
	{
		record_failure(rs, edata);
	}
	PG_CATCH();
	{
		LockRelease(tag, ExclusiveLock, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	LockRelease(tag, ExclusiveLock, true);
}

/*
 * result_row
 *		The procedure's result: run id, status and counts.
 */
static Datum
result_row(FunctionCallInfo fcinfo, RunState *rs)
{
	TupleDesc	tupdesc;
	Datum		values[10];
	bool		nulls[10] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pipeline.run must return a record");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Int64GetDatum(rs->run_id);
	nulls[0] = rs->run_id == 0;
	values[1] = CStringGetTextDatum(rs->status);
	values[2] = Int64GetDatum(rs->counts.read);
	values[3] = Int64GetDatum(rs->counts.inserted);
	values[4] = Int64GetDatum(rs->counts.updated);
	values[5] = Int64GetDatum(rs->counts.deleted);
	values[6] = Int64GetDatum(rs->counts.stale);
	values[7] = Int64GetDatum(rs->counts.filtered);
	values[8] = Int64GetDatum(rs->counts.quarantined);
	values[9] = Int32GetDatum(rs->counts.batches);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * refuse_nested_run
 *		A run started while this backend is running a pipeline (an
 *		expression, trigger or check of the running batch calling run,
 *		requeue_quarantine or replay) is refused: of the same pipeline it
 *		would merge the rows of the batch under way a second time (the run
 *		lock is the backend's own), and of another one it would commit or
 *		roll back inside the running batch.
 */
static void
refuse_nested_run(const char *name)
{
	if (running_pipeline == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot run pipeline \"%s\" inside a run", name ? name : ""),
			 errdetail("This session is running pipeline \"%s\"; runs, requeues and replays do not nest.",
					   running_pipeline),
			 errhint("Do not call pipeline.run, requeue_quarantine or replay from a pipeline's expressions, checks or the triggers of its target; run pipelines one after the other.")));
}

/*
 * run_pipeline
 *		Shared body of run, requeue_quarantine, replay and a run worker's
 *		run; 'rs' says which, with what arguments, and whether all in the
 *		caller's transaction (rs->atomic).  Leaves the outcome in 'rs'.
 */
static void
run_pipeline(RunState *rs, const char *name)
{
	MemoryContext callcxt = CurrentMemoryContext;
	LOCKTAG		tag;

	pipeline_check_version(ERROR);
	refuse_nested_run(name);

	if (SPI_connect_ext(rs->atomic ? 0 : SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rs->def = pipeline_load(name, false, DEF_LOCK_NONE);
	pipeline_check_manage(rs->def);
	if (rs->from == BATCH_FROM_REPLAY)
		pipeline_replay_check(rs->def, &rs->replay);

	if (rs->def->paused || rs->def->suspended)
	{
		const char *archived = rs->def->paused ? NULL : pipeline_archived_unconsumed_reason(rs->def->id);

		rs->status = rs->def->paused ? "paused" : "suspended";
		ereport(archived ? WARNING : NOTICE,
				(errmsg("pipeline \"%s\" is %s", name, rs->status),
				 rs->def->paused ? 0 : archived ? errdetail("It was suspended: %s.", archived) :
				 errdetail("It was suspended after pipeline.suspend_after_failures failed runs in a row; pipeline.status shows its last error."),
				 archived ? errhint("The rows are in the archive (pipeline.archived_rows). Call pipeline.resume('%s') to go on from its cursor without them.", name) :
				 errhint("Call pipeline.resume('%s') to let it run.", name)));
		SPI_finish();
		MemoryContextSwitchTo(callcxt);
		return;
	}

	pipeline_id_lock_tag(&tag, rs->def->id, RUN_LOCK_CLASS);
	if (LockAcquire(&tag, ExclusiveLock, !rs->atomic, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		int			pid = running_backend(rs->def->id);

		rs->status = "skipped";
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" is already running", name),
				 errdetail("Backend %d is running it; runs of one pipeline never overlap.", pid),
				 errhint("Wait for that run to finish, or watch it in pipeline.runs.")));
		SPI_finish();
		MemoryContextSwitchTo(callcxt);
		return;
	}

	pipeline_batch_state_init(&rs->batch);	/* in SPI's procedure context */
	PG_TRY();
	{
		running_pipeline = name;	/* the caller's, as long as the call */
		execute_run(rs);
		running_pipeline = NULL;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		running_pipeline = NULL;
		if (rs->atomic)
			PG_RE_THROW();
		MemoryContextSwitchTo(callcxt);
		edata = CopyErrorData();
		FlushErrorState();
		record_failure_and_unlock(rs, edata, &tag);
		ReThrowError(edata);
	}
	PG_END_TRY();

	if (!rs->atomic)
		LockRelease(&tag, ExclusiveLock, true);
	SPI_finish();
	MemoryContextSwitchTo(callcxt);
}

/*
 * call_run
 *		The procedures' side of run_pipeline: the pipeline named by the
 *		first argument, batch by batch when CALL runs it outside a
 *		transaction block; the result row.
 */
static Datum
call_run(FunctionCallInfo fcinfo, RunState *rs)
{
	rs->atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
				   !castNode(CallContext, fcinfo->context)->atomic);
	run_pipeline(rs, PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	return result_row(fcinfo, rs);
}

/*
 * run_fixture
 *		The body of a test's run (pipeline_try): what a run from the staging
 *		table does first (maintain_staging), then the fixture's rows in
 *		batches of batch_size, as a run consumes staged rows.  (No deferred
 *		trigger is left for a commit: a batch statement runs in a
 *		security-restricted operation, where PostgreSQL refuses to queue
 *		one, and fails as a run's would.)
 */
static void
run_fixture(void *arg)
{
	RunState   *rs = (RunState *) arg;
	BatchParams params;
	FullTransactionId none = FullTransactionIdFromU64(0);

	running_pipeline = rs->def->name;
	maintain_staging(rs);
	count_whole(rs, &params);
	/* a fixture's rows are _xid 0, _seq 1 to n */
	for (int64 done = 0; done < rs->pending; done += rs->def->batch_size)
	{
		params.lo = position(none, done);
		params.hi = position(none, done + rs->def->batch_size);
		merge_timed_batch(rs, rs->from, &params, false);
	}
	running_pipeline = NULL;
}

/*
 * pipeline_run_fixture
 *		For pipeline.test (test_run.c), in the caller's subtransaction,
 *		which it rolls back: a run of the pipeline 'def' (loaded
 *		share-locked) over the rows it holds (fixture_rows.c), recorded as
 *		a run of kind 'test' so that its quarantined rows and check results
 *		are where a run's are, and nothing else (no totals, alerts or
 *		OpenLineage events).  The run lock is not taken: a test moves no
 *		cursor and consumes nothing.  A run that fails (a check failing a
 *		batch, an error of the target) is recorded as failed, as an atomic
 *		run's failure would be, with its batch's check results, and its
 *		error returned in '*error'; a cancel, or the pipeline's
 *		statement_timeout, ends the test.  Returns the run's id; '*counts'
 *		what it did.
 */
int64
pipeline_run_fixture(PipelineDef *def, RunCounts *counts, ErrorData **error)
{
	RunState   *rs = palloc0(sizeof(RunState));
	RunCounts	none = {0};

	refuse_nested_run(def->name);
	rs->from = BATCH_FROM_FIXTURE;
	rs->atomic = true;
	rs->max_rows = -1;
	rs->def = def;
	rs->started_at = GetCurrentTimestamp();
	pipeline_batch_state_init(&rs->batch);
	record_start(rs);
	*error = pipeline_try(run_fixture, rs);
	running_pipeline = NULL;
	if (*error && (*error)->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(*error);
	if (*error)
	{
		pipeline_checks_save_pending(&rs->batch);
		rs->counts = none;
	}
	pipeline_run_finish(rs->run_id, *error ? "failed" : "succeeded", &rs->counts,
						*error ? unpack_sql_state((*error)->sqlerrcode) : NULL,
						*error ? (*error)->message : NULL, false);
	*counts = rs->counts;
	return rs->run_id;
}

/*
 * pipeline_run_nonatomic
 *		A run of the named pipeline, batch by batch, exactly as CALL
 *		pipeline.run(name) outside a transaction block makes it: the same
 *		checks, history, events and error handling; for a run worker.  The
 *		caller provides what CALL provides: a transaction, and an active
 *		portal whose memory is current and outlives the run's commits (SPI's
 *		non-atomic mode keeps its memory there, and takes the snapshot of
 *		the first statement after each commit from it).  Errors propagate,
 *		after the run recorded them.
 */
void
pipeline_run_nonatomic(const char *name)
{
	RunState   *rs = palloc0(sizeof(RunState));

	rs->from = BATCH_FROM_STAGING;
	rs->max_rows = -1;
	rs->atomic = false;
	run_pipeline(rs, name);
}

/*
 * pipeline_run
 *		SQL: CALL pipeline.run(pipeline_name, max_rows => NULL).
 */
Datum
pipeline_run(PG_FUNCTION_ARGS)
{
	RunState   *rs = palloc0(sizeof(RunState));
	int64		max_rows = PG_ARGISNULL(1) ? -1 : PG_GETARG_INT64(1);

	if (max_rows == 0 || max_rows < -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be positive"),
				 errdetail("max_rows was %lld.", (long long) max_rows),
				 errhint("Pass NULL to consume every pending row.")));
	rs->from = BATCH_FROM_STAGING;
	rs->max_rows = max_rows;
	return call_run(fcinfo, rs);
}

/*
 * pipeline_requeue_quarantine
 *		SQL: CALL pipeline.requeue_quarantine(pipeline_name, ids => NULL).
 */
Datum
pipeline_requeue_quarantine(PG_FUNCTION_ARGS)
{
	RunState   *rs = palloc0(sizeof(RunState));

	rs->from = BATCH_FROM_QUARANTINE;
	rs->max_rows = -1;
	rs->requeue_ids = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	return call_run(fcinfo, rs);
}

/*
 * pipeline_replay
 *		SQL: CALL pipeline.replay(pipeline_name, since, until, first_run,
 *		last_run): merges again the rows of the runs started in [since,
 *		until) and numbered first_run to last_run (NULL: no bound).
 */
Datum
pipeline_replay(PG_FUNCTION_ARGS)
{
	RunState   *rs = palloc0(sizeof(RunState));
	ReplayRequest *req = &rs->replay;

	rs->from = BATCH_FROM_REPLAY;
	rs->max_rows = -1;
	req->has_since = !PG_ARGISNULL(1);
	req->since = req->has_since ? PG_GETARG_TIMESTAMPTZ(1) : 0;
	req->has_until = !PG_ARGISNULL(2);
	req->until = req->has_until ? PG_GETARG_TIMESTAMPTZ(2) : 0;
	req->has_first = !PG_ARGISNULL(3);
	req->first_run = req->has_first ? PG_GETARG_INT64(3) : 0;
	req->has_last = !PG_ARGISNULL(4);
	req->last_run = req->has_last ? PG_GETARG_INT64(4) : 0;
	return call_run(fcinfo, rs);
}
