/*-------------------------------------------------------------------------
 *
 * cursors.c
 *	  pipeline.cursors: each pipeline's consumed snapshot and partial
 *	  position, created with the pipeline, read and moved by every batch,
 *	  and read together by what depends on every reader of a source
 *	  (retention, the staging guards, a change log's trim).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/*
 * A cursor's columns (alias c), read together; each statement reading them
 * names where they start, and they are decoded from there (cursor_at).
 */
#define CURSOR_COLUMNS "c.consumed, c.partial_xid, c.partial_seq"
typedef enum CursorColumn
{
	CURSOR_CONSUMED,
	CURSOR_PARTIAL,				/* partial_xid, then partial_seq */
	CURSOR_NCOLUMNS = CURSOR_PARTIAL + 2
} CursorColumn;

/* The columns of pipeline_cursor_state, after the cursor's. */
typedef enum StateColumn
{
	STATE_CAUGHT_UP_AT = CURSOR_NCOLUMNS,
	STATE_XID_OFFSET
} StateColumn;

/* The columns of a source's readers: who, the cursor, the source's retention. */
typedef enum ReaderColumn
{
	READER_WHO,
	READER_CURSOR,
	READER_ARCHIVES = READER_CURSOR + CURSOR_NCOLUMNS
} ReaderColumn;

/*
 * cursor_at
 *		The cursor whose columns start at column 'first' of row 'row' of the
 *		last SPI result; the snapshot copied into the current context.
 */
static void
cursor_at(int row, int first, Datum *consumed, RowPosition *partial)
{
	bool		isnull;

	/* detoasted: the copy outlives the transaction, and the row version */
	*consumed = PointerGetDatum(PG_DETOAST_DATUM_COPY(pipeline_result_datum(row, first + CURSOR_CONSUMED,
																			&isnull)));
	*partial = pipeline_catalog_position(row, first + CURSOR_PARTIAL);
}

/*
 * pipeline_create_cursor
 *		A new pipeline starts before every row its source holds.  One
 *		reading a change log starts at 'seeded' (has_seed), the snapshot of
 *		the copy it was seeded with, inside its own transaction: the seed
 *		rows, which this transaction wrote, are its partial position (up to
 *		_seq 0, nothing consumed yet), so its first run merges them before any
 *		change published meanwhile, even one with a smaller _xid (a writer
 *		that was in progress during the copy).
 */
void
pipeline_create_cursor(int64 pipeline_id, Datum seeded, bool has_seed)
{
	Oid			types[2] = {INT8OID, PG_SNAPSHOTOID};
	Datum		values[2] = {Int64GetDatum(pipeline_id), seeded};
	char		nulls[2] = {' ', has_seed ? ' ' : 'n'};

	pipeline_catalog_exec("INSERT INTO pipeline.cursors (pipeline_id, consumed, partial_xid, "
						  "partial_seq, generation) SELECT $1, coalesce($2, '1:1:'), "
						  "CASE WHEN $2 IS NOT NULL THEN pipeline.current_xid() END, "
						  "CASE WHEN $2 IS NOT NULL THEN 0 END, generation FROM pipeline.clock",
						  2, types, values, nulls, false, 0, false);
}

/*
 * pipeline_cursor_read
 *		The pipeline's consumed snapshot and partial position, row-locked
 *		until the end of the transaction.
 */
void
pipeline_cursor_read(int64 pipeline_id, Datum *consumed, RowPosition *partial)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);

	if (pipeline_catalog_exec("SELECT " CURSOR_COLUMNS " FROM pipeline.cursors c "
							  "WHERE c.pipeline_id = $1 FOR UPDATE", 1, &type, &value, NULL,
							  false, 1, true) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pipeline %lld has no cursor", (long long) pipeline_id),
				 errdetail("Every pipeline has one row in pipeline.cursors; this one's is missing."),
				 errhint("Drop and recreate the pipeline.")));
	cursor_at(0, 0, consumed, partial);
}

/*
 * pipeline_cursor_move
 *		Moves the pipeline's cursor; commits with the caller's step (a batch,
 *		or a run that found nothing pending).
 *		caught_up_at, when not 0, is the time just before the snapshot the
 *		cursor now equals was taken: every row still pending committed
 *		later.
 */
void
pipeline_cursor_move(int64 pipeline_id, Datum consumed, const RowPosition *partial,
					 TimestampTz caught_up_at)
{
	Oid			types[5] = {INT8OID, InvalidOid, InvalidOid, InvalidOid, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' '};

	values[0] = Int64GetDatum(pipeline_id);
	pipeline_catalog_cursor_args(consumed, partial, types + 1, values + 1, nulls + 1);
	values[4] = TimestampTzGetDatum(caught_up_at);
	nulls[4] = caught_up_at ? ' ' : 'n';
	pipeline_exec_internal_kept("UPDATE pipeline.cursors SET consumed = $2, partial_xid = $3, "
								"partial_seq = $4, updated_at = now(), "
								"caught_up_at = coalesce($5, caught_up_at) WHERE pipeline_id = $1",
								5, types, values, nulls);
}

/*
 * pipeline_cursor_caught_up
 *		Records that every row staged before 'at' was consumed, for a
 *		pipeline without a cursor position (a sharded one takes its rows out
 *		of the staging table); commits with the caller's step.
 */
void
pipeline_cursor_caught_up(int64 pipeline_id, TimestampTz at)
{
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2] = {Int64GetDatum(pipeline_id), TimestampTzGetDatum(at)};

	pipeline_exec_internal_kept("UPDATE pipeline.cursors SET caught_up_at = $2, updated_at = now() "
								"WHERE pipeline_id = $1", 2, types, values, NULL);
}

/*
 * pipeline_cursor_write
 *		Moves the pipeline's cursor (pipeline_cursor_move), and the end of
 *		run_id's consumed range with it.
 */
void
pipeline_cursor_write(int64 pipeline_id, int64 run_id, Datum consumed,
					  const RowPosition *partial, TimestampTz caught_up_at)
{
	pipeline_cursor_move(pipeline_id, consumed, partial, caught_up_at);
	pipeline_run_cursor_after(run_id, consumed, partial);
}

/*
 * pipeline_cursor_state
 *		The pipeline's cursor, when it last caught up, and the clock's
 *		offset, without a lock (backlog asks).
 */
void
pipeline_cursor_state(int64 pipeline_id, CursorProgress *state)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);
	bool		isnull;
	Datum		caught_up_at;

	if (pipeline_catalog_exec("SELECT " CURSOR_COLUMNS ", c.caught_up_at, "
							  "k.xid_offset FROM pipeline.cursors c, pipeline.clock k "
							  "WHERE c.pipeline_id = $1", 1, &type, &value, NULL, true, 1, true) != 1)
		elog(ERROR, "pipeline %lld has no cursor", (long long) pipeline_id);
	cursor_at(0, 0, &state->consumed, &state->partial);
	caught_up_at = pipeline_result_datum(0, STATE_CAUGHT_UP_AT, &isnull);
	state->caught_up = !isnull;
	state->caught_up_at = isnull ? 0 : DatumGetTimestampTz(caught_up_at);
	state->xid_offset = pipeline_result_int64(0, STATE_XID_OFFSET);
}

/*
 * reader_cursors
 *		The rows of the last SPI result as ReaderCursors: the pipeline's id
 *		or label, then its cursor (ReaderColumn).
 */
static List *
reader_cursors(int n, bool labelled)
{
	List	   *cursors = NIL;

	for (int i = 0; i < n; i++)
	{
		ReaderCursor *c = palloc0(sizeof(ReaderCursor));

		if (labelled)
			c->label = pipeline_result_text(i, READER_WHO);
		else
			c->pipeline_id = pipeline_result_int64(i, READER_WHO);
		cursor_at(i, READER_CURSOR, &c->consumed, &c->partial);
		cursors = lappend(cursors, c);
	}
	return cursors;
}

/*
 * pipeline_holding_cursors
 *		The consumed snapshots (List of pg_snapshot Datums) of the pipelines
 *		reading 'source' that hold its rows back from retention: those of a
 *		role with the privileges of the table's owner 'owner', and the
 *		others' while their cursor moved within hold_limit seconds (or
 *		always, hold_limit < 0).
 */
List *
pipeline_holding_cursors(Oid source, Oid owner, int hold_limit)
{
	Oid			types[3] = {OIDOID, OIDOID, INT4OID};
	Datum		values[3] = {ObjectIdGetDatum(source), ObjectIdGetDatum(owner),
	Int32GetDatum(hold_limit)};
	List	   *snapshots = NIL;
	int			n;

	n = pipeline_exec_internal("SELECT c.consumed FROM pipeline.cursors c "
							   "JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id WHERE d.source = $1 "
							   "AND ($3 < 0 OR pg_has_role(d.owner::oid, $2, 'USAGE') "
							   "     OR c.updated_at >= now() - $3 * interval '1 second')",
							   3, types, values, NULL);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		snapshots = lappend(snapshots,
							PG_DETOAST_DATUM_COPY(pipeline_result_datum(i, 0, &isnull)));
	}
	return snapshots;
}

/*
 * pipeline_unmarked_cursors
 *		The cursors (with the pipelines' ids) of the pipelines reading
 *		'source' that retention has not suspended yet.
 */
List *
pipeline_unmarked_cursors(Oid source)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(source);
	int			n;

	n = pipeline_exec_internal("SELECT d.id, " CURSOR_COLUMNS " FROM pipeline.cursors c "
							   "JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id "
							   "WHERE d.source = $1 AND d.archived_unconsumed IS NULL",
							   1, &type, &value, NULL);
	return reader_cursors(n, false);
}

/*
 * pipeline_source_cursors
 *		The cursors of the pipelines reading 'source', labelled for role
 *		'role' (another role's pipelines are not named) and its own first;
 *		*archives tells whether the source's retention archives its rows
 *		(false without readers).  Read-only: the caller's snapshot decides.
 */
List *
pipeline_source_cursors(Oid source, Oid role, bool *archives)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2] = {ObjectIdGetDatum(source), ObjectIdGetDatum(role)};
	List	   *cursors;
	bool		isnull;
	int			n;

	n = pipeline_catalog_exec("SELECT CASE WHEN pg_has_role($2, d.owner, 'USAGE') "
							  "            THEN format('Pipeline \"%s\"', d.name) "
							  "            ELSE 'A pipeline of another role' END, "
							  CURSOR_COLUMNS ", "
							  "EXISTS (SELECT 1 FROM pipeline.retention r "
							  "        WHERE r.source = d.source AND r.archive) "
							  "FROM pipeline.pipeline_defs d JOIN pipeline.cursors c ON c.pipeline_id = d.id "
							  "WHERE d.source = $1 ORDER BY pg_has_role($2, d.owner, 'USAGE') DESC, d.name",
							  2, types, values, NULL, true, 0, false);
	*archives = n > 0 && DatumGetBool(pipeline_result_datum(0, READER_ARCHIVES, &isnull));
	cursors = reader_cursors(n, true);
	return cursors;
}

/*
 * pipeline_readers_horizon
 *		The oldest transaction id any pipeline reading 'source' has not
 *		consumed (the least xmin of their cursors); *isnull without readers.
 *		A change log's trim asks at every run.
 */
Datum
pipeline_readers_horizon(Oid source, bool *isnull)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(source);

	pipeline_catalog_exec("SELECT min(h.xmin) FROM ("
						  "SELECT pg_snapshot_xmin(c.consumed) FROM pipeline.cursors c "
						  "JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id WHERE d.source = $1 "
						  "UNION ALL SELECT pg_snapshot_xmin(c.dimensions_consumed) "
						  "FROM pipeline.pipeline_joins j JOIN pipeline.cursors c "
						  "ON c.pipeline_id = j.pipeline_id WHERE j.change_log = $1) h(xmin)",
						  1, &type, &value, NULL, false, 0, true);
	return pipeline_result_datum(0, 0, isnull);
}
