/*-------------------------------------------------------------------------
 *
 * staged_sources.c
 *	  Which sources a transaction staged rows into, told to its database's
 *	  scheduler when it commits.
 *
 * A continuous pipeline without a worker (there may be many more of them
 * than pipeline.max_workers) is followed by its scheduler, which probes its
 * source when rows may have come.  Probing every such pipeline after every
 * commit would cost the scheduler one probe per pipeline per commit; so a
 * commit says which sources got rows, and only their pipelines are probed.
 *
 * pipeline.current_xid(), the _xid default of every source, counts the rows
 * staged since the last statement end; the end of an INSERT (the executor's
 * finish) attributes them to its result relations.  Rows that no statement
 * end attributes -- COPY, the apply of logical replication -- make the
 * commit say "some source", and the scheduler probes them all.  A statement
 * that writes another table after rows were staged adds that table too:
 * the set may be larger than the sources written, never smaller.
 *
 * The scheduler takes its database's set at every pass, and remembers when
 * it learnt of rows in each source (pipeline_note_source_activity): an
 * interval or cron tick after an empty tick, with no news of its source
 * since, needs no probe.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "nodes/pg_list.h"
#include "parser/parsetree.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "model.h"
#include "shared_memory/shared_memory.h"

static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;

/* Rows staged since the last statement end that named its relations. */
static int64 unattributed_rows = 0;

/* Relations this transaction staged rows into (TopTransactionContext). */
static List *xact_sources = NIL;

/*
 * In a scheduler: when it learnt of rows committed to each source, and to
 * some source unnamed (before it started, to every source).
 */
typedef struct SourceActivity
{
	Oid			source;
	TimestampTz staged_at;
} SourceActivity;
static HTAB *source_activity = NULL;
static TimestampTz unnamed_staged_at = 0;

/*
 * attribute_staged_rows
 *		ExecutorFinish hook: the rows staged since the last attribution went
 *		into this statement's result relations.
 */
static void
attribute_staged_rows(QueryDesc *queryDesc)
{
	ListCell   *lc;

	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
	if (unattributed_rows == 0 || queryDesc->plannedstmt->resultRelations == NIL)
		return;
	foreach(lc, queryDesc->plannedstmt->resultRelations)
	{
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), queryDesc->plannedstmt->rtable);
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		xact_sources = list_append_unique_oid(xact_sources, rte->relid);
		MemoryContextSwitchTo(old);
	}
	unattributed_rows = 0;
}

/*
 * pipeline_staged_sources_init
 *		Installs the executor hook; called from _PG_init when the library is
 *		preloaded (only the workers care).
 */
void
pipeline_staged_sources_init(void)
{
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = attribute_staged_rows;
}

/*
 * pipeline_note_staged_row
 *		A row is being staged (pipeline.current_xid()); its statement's end
 *		tells where.
 */
void
pipeline_note_staged_row(void)
{
	unattributed_rows++;
}

/*
 * pipeline_staged_sources_mark
 *		What this transaction noted of staged rows so far (for
 *		pipeline_staged_sources_rewind).
 */
void
pipeline_staged_sources_mark(PipelineStagedNote *note)
{
	note->unattributed_rows = unattributed_rows;
	note->sources = list_length(xact_sources);
}

/*
 * pipeline_staged_sources_rewind
 *		Forgets what was noted since 'note': rows staged in a subtransaction
 *		that was rolled back (a test's).
 */
void
pipeline_staged_sources_rewind(const PipelineStagedNote *note)
{
	unattributed_rows = note->unattributed_rows;
	xact_sources = list_truncate(xact_sources, note->sources);
}

/*
 * pipeline_publish_staged_sources
 *		At commit: adds the sources this transaction staged rows into to the
 *		database's set (all of them when some rows went unattributed, or the
 *		set is full).  The caller holds pipeline_shared->lock exclusively.
 */
void
pipeline_publish_staged_sources(PipelineStagedSources *set)
{
	ListCell   *lc;

	if (unattributed_rows > 0)
		set->all = true;
	foreach(lc, xact_sources)
	{
		Oid			relid = lfirst_oid(lc);
		bool		known = false;

		for (int i = 0; i < set->count && !known; i++)
			known = set->relids[i] == relid;
		if (known || set->all)
			continue;
		if (set->count == PIPELINE_STAGED_SOURCES)
			set->all = true;
		else
			set->relids[set->count++] = relid;
	}
}

/*
 * pipeline_forget_staged_sources
 *		At the end of every transaction (its memory is gone).
 */
void
pipeline_forget_staged_sources(void)
{
	unattributed_rows = 0;
	xact_sources = NIL;
}

/*
 * pipeline_take_staged_sources
 *		The scheduler's copy of its database's set, which is emptied.
 */
void
pipeline_take_staged_sources(PipelineDatabaseSlot *db, PipelineStagedSources *copy)
{
	LWLockAcquire(pipeline_shared->lock, LW_EXCLUSIVE);
	*copy = db->staged;
	db->staged.all = false;
	db->staged.count = 0;
	LWLockRelease(pipeline_shared->lock);
}

/*
 * pipeline_staged_into
 *		Whether the set says rows may have been staged into the relation.
 */
bool
pipeline_staged_into(const PipelineStagedSources *set, Oid relid)
{
	for (int i = 0; i < set->count; i++)
		if (set->relids[i] == relid)
			return true;
	return set->all;
}

/*
 * pipeline_note_source_activity
 *		In a scheduler: remembers that the pass at 'now' learnt of rows
 *		committed to the sources of the set (to an unnamed one when it says
 *		all).
 */
void
pipeline_note_source_activity(const PipelineStagedSources *staged, TimestampTz now)
{
	if (source_activity == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(Oid),.entrysize = sizeof(SourceActivity)};

		source_activity = hash_create("pipeline source activity", 256, &ctl,
									  HASH_ELEM | HASH_BLOBS);
		unnamed_staged_at = now;	/* what came before is not known */
	}
	if (staged->all)
		unnamed_staged_at = now;
	for (int i = 0; i < staged->count; i++)
	{
		SourceActivity *a = hash_search(source_activity, &staged->relids[i], HASH_ENTER, NULL);

		a->staged_at = now;
	}
}

/*
 * pipeline_source_staged_at
 *		In a scheduler, after pipeline_note_source_activity: the last pass
 *		that learnt of rows committed to the source, or to an unnamed one.
 */
TimestampTz
pipeline_source_staged_at(Oid source)
{
	SourceActivity *a;

	if (source_activity == NULL)
		return DT_NOEND;		/* nothing known yet: anything may have come */
	a = hash_search(source_activity, &source, HASH_FIND, NULL);
	return a == NULL ? unnamed_staged_at : Max(a->staged_at, unnamed_staged_at);
}
