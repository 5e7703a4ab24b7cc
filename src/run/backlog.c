/*-------------------------------------------------------------------------
 *
 * backlog.c
 *	  pipeline.backlog: how many staged rows wait for a pipeline, and since
 *	  when, without running it.
 *
 * Which rows are pending is the cursor rule (cursor_rule.c).  Nothing
 * below the cursor's xmin can be pending, so the (_xid, _seq) index finds
 * the first pending row at once, by a statement each backend keeps.  The
 * count is exact on request (an index range scan over all pending rows).
 * Otherwise up to BACKLOG_COUNT_LIMIT rows are counted, and a larger
 * backlog is the planner's estimate of the rows from the cursor's xmin on,
 * which costs a plan and no scan: cheap enough for a status view polled
 * every second.
 *
 * The scheduler asks the same index whether anything waits at all
 * (pipeline_is_caught_up) before it runs a scheduled pipeline.
 *
 * The oldest pending row's commit time is exact when track_commit_timestamp
 * is on.  Otherwise the answer is the moment the cursor last caught up:
 * every pending row committed after it, so its age bounds the lag from
 * above.
 *
 * A sharded pipeline has no cursor over its staging table: every row still
 * in it waits (a run takes out what it merges or quarantines).  Its backlog
 * is the table's row count, counted on the workers by Citus, and its
 * oldest row committed after the start of its last run that left every
 * shard with less than a batch (run.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/commit_ts.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "nodes/params.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "cursor/cursor.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"

PG_FUNCTION_INFO_V1(pipeline_backlog);

/* Up to this many pending rows are counted; beyond, the planner estimates. */
#define BACKLOG_COUNT_LIMIT 10000

/* How long the scheduler's look at a source waits for a lock on it. */
#define CAUGHT_UP_LOCK_TIMEOUT "100ms"

/* A pipeline's cursor, read without locking it. */
typedef struct CursorState
{
	Datum		values[3];		/* consumed, partial_xid, partial_seq */
	char		nulls[3];
	bool		caught_up;
	TimestampTz caught_up_at;
	int64		xid_offset;
} CursorState;

/*
 * read_cursor
 *		The cursor and the clock's offset, read as the extension.
 */
static void
read_cursor(int64 pipeline_id, CursorState *c)
{
	CursorProgress p;
	Oid			types[3];

	pipeline_cursor_state(pipeline_id, &p);
	pipeline_catalog_cursor_args(p.consumed, &p.partial, types, c->values, c->nulls);
	c->caught_up = p.caught_up;
	c->caught_up_at = p.caught_up_at;
	c->xid_offset = p.xid_offset;
}

/*
 * pending_rows
 *		The cursor rule's pending rows of the source, the cursor being the
 *		parameters of CursorState: $1 consumed, $2/$3 partial position.
 */
static char *
pending_rows(void)
{
	CursorSql	cursor = {"$1", "$2", "$3"};

	return pipeline_rule_pending(NULL, &cursor);
}

/*
 * first_pending
 *		The _xid of the first pending row, as text; NULL when none is.
 *		pipeline.status asks it of every pipeline and the scheduler of every
 *		due one at each pass: a kept statement (a generic plan, whatever the
 *		cursor: the (_xid, _seq) index finds the row).
 */
static char *
first_pending(const char *source, CursorState *c)
{
	Oid			types[3] = {PG_SNAPSHOTOID, XID8OID, INT8OID};

	if (pipeline_exec_kept(psprintf("SELECT _xid FROM %s WHERE %s ORDER BY _xid, _seq LIMIT 1",
									source, pending_rows()),
						   3, types, c->values, c->nulls, true, 1) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
}

/*
 * count_pending
 *		The number of pending rows, counting at most limit + 1 of them
 *		(limit -1: all).
 */
static int64
count_pending(const char *source, CursorState *c, int64 limit)
{
	Oid			types[3] = {PG_SNAPSHOTOID, XID8OID, INT8OID};

	pipeline_exec(psprintf("SELECT count(*) FROM (SELECT FROM %s WHERE %s%s) p", source,
						   pending_rows(),
						   limit < 0 ? "" : psprintf(" LIMIT " INT64_FORMAT, limit + 1)),
				  3, types, c->values, c->nulls, true, 1);
	return pipeline_result_int64(0, 0);
}

/*
 * estimate_pending
 *		The planner's estimate of the rows from the cursor's xmin on: the
 *		top plan node's row count, the figure EXPLAIN shows (an Append's
 *		sum for a partitioned source), from a plan that is never run.  The
 *		xmin is a parameter marked constant, so that the estimate uses its
 *		value and the index's actual upper end, as a literal would.  No
 *		privilege is checked here: the count before it read the same
 *		source as the same role.
 */
static int64
estimate_pending(const char *source, CursorState *c)
{
	PipelineSnapshot *consumed = (PipelineSnapshot *) PG_DETOAST_DATUM(c->values[0]);
	Oid			type = XID8OID;
	char	   *sql = psprintf("SELECT FROM %s WHERE _xid OPERATOR(pg_catalog.>=) $1", source);
	RawStmt    *raw = linitial_node(RawStmt, pg_parse_query(sql));
	List	   *queries = pg_analyze_and_rewrite_fixedparams(raw, sql, &type, 1, NULL);
	ParamListInfo params = makeParamList(1);
	PlannedStmt *plan;

	params->params[0].value = FullTransactionIdGetDatum(consumed->xmin);
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = XID8OID;
	plan = pg_plan_query(linitial_node(Query, queries), sql, CURSOR_OPT_PARALLEL_OK, params);
	return (int64) rint(plan->planTree->plan_rows); /* as EXPLAIN rounds it */
}

/*
 * commit_time
 *		The commit time of a transaction on the logical clock, when
 *		track_commit_timestamp keeps it; 0 when unknown (never after a
 *		restore moved the clock: old ids no longer map to this cluster's).
 */
static TimestampTz
commit_time(const char *xid, const CursorState *c)
{
	Datum		value = CStringGetTextDatum(xid);
	Oid			type = TEXTOID;
	bool		isnull;
	Datum		d;

	if (!track_commit_timestamp || c->xid_offset != 0)
		return 0;
	pipeline_exec("SELECT pg_xact_commit_timestamp(xid($1::xid8))", 1, &type, &value, NULL,
				  true, 1);
	d = pipeline_result_datum(0, 0, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

/* What backlog() measures, and what it needs to. */
typedef struct Backlog
{
	PipelineDef *def;
	CursorState cursor;
	char	   *source;
	bool		exact;
	int64		pending;
	bool		pending_exact;
	TimestampTz oldest;			/* 0: none pending, or unknown */
} Backlog;

/*
 * measure_sharded
 *		measure, for a sharded pipeline: the staging table's rows, all
 *		pending, counted exactly (Citus plans no estimate of them).
 */
static void
measure_sharded(Backlog *b)
{
	PipelineUserContext ctx;

	pipeline_become_owner(b->def, &ctx);
	pipeline_exec(psprintf("SELECT count(*) FROM %s", b->source), 0, NULL, NULL, NULL, true, 1);
	b->pending = pipeline_result_int64(0, 0);
	pipeline_restore_user(&ctx);
	b->pending_exact = true;
	if (b->pending > 0 && b->cursor.caught_up)
		b->oldest = b->cursor.caught_up_at;
}

/*
 * measure
 *		Reads the source as the pipeline's owner: the pending rows and the
 *		oldest one's commit time.
 */
static void
measure(void *arg)
{
	Backlog    *b = arg;
	PipelineUserContext ctx;
	char	   *first;

	if (b->def->sharded)
	{
		measure_sharded(b);
		return;
	}
	pipeline_become_owner(b->def, &ctx);
	first = first_pending(b->source, &b->cursor);
	b->pending = first == NULL ? 0 :
		count_pending(b->source, &b->cursor, b->exact ? -1 : BACKLOG_COUNT_LIMIT);
	if (!b->exact && b->pending > BACKLOG_COUNT_LIMIT)
		b->pending = Max(b->pending, estimate_pending(b->source, &b->cursor));
	b->pending_exact = b->exact || b->pending <= BACKLOG_COUNT_LIMIT;
	pipeline_restore_user(&ctx);

	if (first != NULL)
	{
		b->oldest = commit_time(first, &b->cursor);
		if (b->oldest == 0 && b->cursor.caught_up)
			b->oldest = b->cursor.caught_up_at;
	}
}

/*
 * reader_source
 *		The rows the pipeline reads, as SQL for a FROM clause: its source,
 *		less, for a change log's reader, the rows seeded for other readers.
 */
static char *
reader_source(const PipelineDef *def)
{
	char	   *source = pipeline_qualified_name(def->source);

	if (!def->reads_change_log)
		return source;
	return psprintf("(SELECT * FROM %s WHERE _for IS NULL OR _for = " INT64_FORMAT ") s",
					source, def->id);
}

/*
 * probe_first_pending
 *		Whether a row waits (b->pending 1 or 0), reading no further than
 *		the first one, and waiting at most CAUGHT_UP_LOCK_TIMEOUT for a lock
 *		on the source (a long ALTER TABLE, an ATTACH of a partition).
 */
static void
probe_first_pending(void *arg)
{
	Backlog    *b = arg;
	PipelineUserContext ctx;

	read_cursor(b->def->id, &b->cursor);
	b->source = reader_source(b->def);
	pipeline_become_owner(b->def, &ctx);
	/* rolled back with the owner's settings */
	(void) set_config_option("lock_timeout", CAUGHT_UP_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (b->def->sharded)
		b->pending = pipeline_exec(psprintf("SELECT 1 FROM %s LIMIT 1", b->source), 0, NULL, NULL,
								   NULL, true, 1);
	else
		b->pending = first_pending(b->source, &b->cursor) == NULL ? 0 : 1;
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_is_caught_up
 *		Whether no staged row waits for a pipeline: the scheduler does not
 *		run a scheduled pipeline that would read nothing.  False when that
 *		cannot be told at once -- the source stays locked (a run may wait
 *		for the lock, the scheduler must not), or reading it fails (the run
 *		will say why) -- and when the pipeline is gone.  The caller runs as
 *		the extension, connected to SPI.
 */
bool
pipeline_is_caught_up(int64 pipeline_id)
{
	Backlog		b = {0};
	ErrorData  *error;

	b.def = pipeline_load_by_id(pipeline_id, DEF_LOCK_NONE);
	if (b.def == NULL)
		return false;
	error = pipeline_try(probe_first_pending, &b);
	if (error != NULL && error->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(error);
	return error == NULL && b.pending == 0;
}

/*
 * pipeline_backlog
 *		SQL: pipeline.backlog(pipeline_name, exact => false, quiet => false)
 *		  -> (pending_rows, pending_exact, oldest_pending_at).
 *		quiet returns NULLs instead of raising when the source cannot be
 *		read (the owner lost its privileges, a lock timeout), so that one
 *		broken pipeline does not hide the others in pipeline.status.
 */
Datum
pipeline_backlog(PG_FUNCTION_ARGS)
{
	Backlog		b = {0};
	bool		quiet = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	pipeline_check_version(ERROR);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pipeline.backlog must return a record");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	b.def = pipeline_load(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
						  false, DEF_LOCK_NONE);
	pipeline_check_manage(b.def);
	read_cursor(b.def->id, &b.cursor);
	b.source = reader_source(b.def);
	b.exact = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);

	if (!quiet)
		measure(&b);
	else
	{
		ErrorData  *error = pipeline_try(measure, &b);

		/* a cancel or statement_timeout stops the whole statement */
		if (error != NULL && error->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(error);
		nulls[0] = nulls[1] = error != NULL;
	}
	values[0] = Int64GetDatum(b.pending);
	values[1] = BoolGetDatum(b.pending_exact);
	values[2] = TimestampTzGetDatum(b.oldest);
	nulls[2] = b.oldest == 0;
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
