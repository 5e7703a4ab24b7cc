/*-------------------------------------------------------------------------
 *
 * archive.c
 *	  Retention of consumed staging rows: pipeline.set_retention,
 *	  drop_retention, archive (the archive pass) and
 *	  train_archive_dictionary, and the pass a run makes at its end.
 *
 * A staged row may leave its staging table once every pipeline reading the
 * table has consumed it, and at least the table's `keep` has passed since.
 * Rows carry no time, so a pass records a mark: the snapshot of what every
 * reader had consumed (the intersection of their cursors), taken at a
 * time.  Cursors only move forward, so whatever a mark sees had been
 * consumed by every reader by the mark's time; a pass archives what the
 * newest mark at least `keep` old sees.  Marks are spaced by a tenth of
 * `keep`, so a row leaves between `keep` and 1.1 x `keep` after its last
 * reader consumed it (and the next pass).  A pipeline joining the table
 * drops its marks, which did not account for it: nothing then leaves until
 * a mark that includes it is `keep` old.  With `keep` 0 no marks are kept:
 * the pass archives what the current cursors say.  A table no pipeline
 * reads archives nothing; a paused or failing reader holds rows back --
 * but one of another role than the table's owner only for
 * pipeline.retention_hold_limit, and a reader whose unconsumed rows a pass
 * takes is suspended with the reason, never left to skip them unseen.
 *
 * The pass is one transaction: it reads the eligible rows in (_xid, _seq)
 * order, writes them as batches of at most batch_rows rows or 64 MB
 * (archive_format.c), and deletes exactly the row versions it wrote, by
 * their ctid, in the same transaction: no row leaves the table unless its
 * batch commits with the delete.  When the delete finds fewer rows than it
 * archived (a statement updated or deleted a consumed row meanwhile), the
 * pass fails and changes nothing.  No row a pass may take can be written
 * during it: its transaction is finished, since a cursor sees it.
 *
 * Passes on one table, and the creation of a pipeline reading it, are
 * serialized by an advisory lock on the table.  A manual pass waits for
 * it; the pass at the end of a run skips a table whose lock or retention
 * row is taken, or whose last pass is younger than
 * pipeline.archive_interval.
 *
 * Rows are read and deleted as the table's owner (only the owner may set
 * its retention); the catalog is written as the extension.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "model.h"
#include "archive/archive.h"
#include "base/base.h"
#include "cursor/cursor.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "settings.h"
#include "sources/sources.h"

PG_FUNCTION_INFO_V1(pipeline_set_retention);
PG_FUNCTION_INFO_V1(pipeline_drop_retention);
PG_FUNCTION_INFO_V1(pipeline_archive);
PG_FUNCTION_INFO_V1(pipeline_train_archive_dictionary);

/* Advisory lock class of a staging table's archive passes. */
#define ARCHIVE_LOCK_CLASS 0x5041

/* The largest uncompressed batch; a batch closes at the row crossing it. */
#define ARCHIVE_MAX_BATCH_BYTES (64 * 1024 * 1024)

/* Rows fetched from the eligible rows at a time. */
#define ARCHIVE_FETCH_ROWS 1000

/* A dictionary is trained on about this many times its size of rows... */
#define DICTIONARY_SAMPLE_FACTOR 100
/* ...but on at most this many bytes and rows. */
#define DICTIONARY_MAX_SAMPLE_BYTES (16 * 1024 * 1024)
#define DICTIONARY_MAX_SAMPLE_ROWS 100000

/* A table's retention setting, as a pass needs it. */
typedef struct Retention
{
	Oid			source;
	Oid			owner;
	bool		keep_zero;
	bool		archive;
	int			level;
	int			dictionary_size;
	int			batch_rows;
} Retention;

/* What a pass did. */
typedef struct ArchivePass
{
	int32		batches;
	int64		rows_archived;
	int64		rows_removed;
	int64		raw_bytes;
	int64		compressed_bytes;
	int32		dropped;
} ArchivePass;

/* The batch a pass is filling. */
typedef struct BatchWriter
{
	const Retention *r;
	char	   *source_name;
	Jsonb	   *columns;
	char	   *fingerprint;
	int64		dictionary_id;	/* 0: none */
	bytea	   *dictionary;
	ArchiveEncoder *enc;
	SPIPlanPtr	delete_plan;	/* prepared at the first batch */
	MemoryContext batch_context;	/* reset after each batch */
	Oid		   *rels;			/* each row's table (a partition) and ctid */
	ItemPointerData *tids;
	RowPosition first;
	RowPosition last;
} BatchWriter;

/*
 * archive_lock
 *		Takes the lock of a staging table's archive passes until the end of
 *		the transaction; false when 'wait' is false and it is taken.
 */
static bool
archive_lock(Oid source, bool wait)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, source, ARCHIVE_LOCK_CLASS);
	return LockAcquire(&tag, ExclusiveLock, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * pipeline_archive_new_reader
 *		Called by create_pipeline before a new pipeline reading 'source'
 *		gets its cursor: waits for a pass in progress, and drops the table's
 *		marks, which do not account for the new reader.
 */
void
pipeline_archive_new_reader(Oid source)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(source);
	PipelineUserContext ctx;

	archive_lock(source, true);
	pipeline_become_internal(&ctx);
	pipeline_exec("DELETE FROM pipeline.archive_marks WHERE source = $1", 1, &type, &value,
				  NULL, false, 0);
	pipeline_restore_user(&ctx);
}

/* --------------------------------------------------------- eligibility */

/*
 * readers_consumed
 *		What every pipeline reading 'source' that holds its rows back has
 *		consumed: the intersection of their cursors' snapshots (a partially
 *		consumed transaction counts as not consumed).  A pipeline of a role
 *		without the privileges of the table's owner 'owner' holds rows back
 *		only while its cursor moved within pipeline.retention_hold_limit:
 *		another role cannot keep the owner's retention from working by
 *		leaving its pipeline paused (mark_unconsumed makes that visible).
 *		(Datum) 0 when no pipeline holds its rows back.
 */
static Datum
readers_consumed(Oid source, Oid owner)
{
	Datum		all = (Datum) 0;
	ListCell   *lc;

	foreach(lc, pipeline_holding_cursors(source, owner, pipeline_retention_hold_limit))
	{
		Datum		consumed = PointerGetDatum(lfirst(lc));

		all = all == (Datum) 0 ? consumed : pipeline_snapshot_intersection(all, consumed);
	}
	return all;
}

/*
 * eligible_snapshot
 *		The snapshot whose visible rows the pass may take: what every reader
 *		consumed at least `keep` ago (see the file comment), after recording
 *		a new mark when the newest is a tenth of `keep` old.  (Datum) 0 when
 *		nothing is eligible yet.
 */
static Datum
eligible_snapshot(const Retention *r)
{
	Oid			types[3] = {OIDOID, TIMESTAMPTZOID, PG_SNAPSHOTOID};
	Datum		values[3];
	Datum		current = readers_consumed(r->source, r->owner);
	bool		isnull;

	values[0] = ObjectIdGetDatum(r->source);
	if (r->keep_zero || current == (Datum) 0)
	{
		pipeline_exec_internal("DELETE FROM pipeline.archive_marks WHERE source = $1", 1, types, values, NULL);
		return current;
	}

	/* taken after the cursors were read: they had consumed it all by then */
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[2] = current;
	pipeline_exec_internal("INSERT INTO pipeline.archive_marks (source, taken_at, consumed) "
						   "SELECT $1, $2, $3 FROM pipeline.retention r WHERE r.source = $1 "
						   "AND NOT EXISTS (SELECT 1 FROM pipeline.archive_marks m "
						   "WHERE m.source = $1 AND m.taken_at > $2 - r.keep / 10)",
						   3, types, values, NULL);
	if (pipeline_exec_internal("SELECT m.consumed, m.taken_at FROM pipeline.archive_marks m "
							   "JOIN pipeline.retention r ON r.source = m.source "
							   "WHERE m.source = $1 AND m.taken_at <= $2 - r.keep "
							   "ORDER BY m.taken_at DESC LIMIT 1", 2, types, values, NULL) == 0)
		return (Datum) 0;
	current = datumCopy(pipeline_result_datum(0, 0, &isnull), false, -1);
	values[1] = pipeline_result_datum(0, 1, &isnull);
	pipeline_exec_internal("DELETE FROM pipeline.archive_marks WHERE source = $1 AND taken_at < $2",
						   2, types, values, NULL);
	return current;
}

/* -------------------------------------------------------- dictionaries */

/*
 * column_list
 *		"s.a, s.b, ..." over the columns of a batch's columns list.
 */
static char *
column_list(Jsonb *columns)
{
	StringInfoData buf;
	JsonbIterator *it = JsonbIteratorInit(&columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		next_is_name = false;

	initStringInfo(&buf);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			next_is_name = v.val.string.len == 4 && strncmp(v.val.string.val, "name", 4) == 0;
		else if (tok == WJB_VALUE && next_is_name)
			appendStringInfo(&buf, "%ss.%s", buf.len ? ", " : "",
							 quote_identifier(pnstrdup(v.val.string.val, v.val.string.len)));
	}
	return buf.data;
}

/*
 * train_dictionary
 *		Trains a dictionary of the retention's size on the table's newest
 *		rows and stores it; returns its id, or 0 (and *why) when zstd could
 *		not train one from them.
 */
static int64
train_dictionary(const Retention *r, Jsonb *columns, const char *fingerprint, const char **why)
{
	size_t		want = Min((size_t) r->dictionary_size * DICTIONARY_SAMPLE_FACTOR,
						   DICTIONARY_MAX_SAMPLE_BYTES);
	char	   *sql = psprintf("SELECT %s FROM %s s ORDER BY s._xid DESC, s._seq DESC",
							   column_list(columns), pipeline_qualified_name(r->source));
	ArchiveEncoder *enc = NULL;
	size_t	   *sizes = palloc(sizeof(size_t) * DICTIONARY_MAX_SAMPLE_ROWS);
	int			nsamples = 0;
	PipelineUserContext ctx;
	Portal		portal;
	int			level;
	bytea	   *dict;
	Oid			types[6] = {OIDOID, TEXTOID, TEXTOID, INT4OID, INT8OID, BYTEAOID};
	Datum		values[6];

	level = pipeline_archive_pin_formats();
	pipeline_become_role(r->owner, "pg_catalog, pg_temp", &ctx);
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, false, 0);
	while (nsamples < DICTIONARY_MAX_SAMPLE_ROWS &&
		   (enc == NULL || enc->buf.len < (int) want))
	{
		SPITupleTable *fetched;

		SPI_cursor_fetch(portal, true, ARCHIVE_FETCH_ROWS);
		fetched = SPI_tuptable;
		if (SPI_processed == 0)
			break;
		if (enc == NULL)
			enc = pipeline_archive_encoder(fetched->tupdesc, 1);
		for (uint64 i = 0; i < SPI_processed && nsamples < DICTIONARY_MAX_SAMPLE_ROWS; i++)
		{
			int			before = enc->buf.len;

			pipeline_archive_encode_row(enc, fetched->vals[i], fetched->tupdesc);
			sizes[nsamples++] = enc->buf.len - before;
		}
		SPI_freetuptable(fetched);
	}
	SPI_cursor_close(portal);
	pipeline_restore_user(&ctx);
	pipeline_archive_unpin_formats(level);

	if (enc == NULL)
	{
		*why = "the table holds no rows";
		return 0;
	}
	/* the samples are the rows, without the batch header */
	dict = pipeline_zstd_train(enc->buf.data + PIPELINE_ARCHIVE_HEADER_SIZE, sizes, nsamples,
							   r->dictionary_size, why);
	if (dict == NULL)
		return 0;
	values[0] = ObjectIdGetDatum(r->source);
	values[1] = CStringGetTextDatum(pipeline_qualified_name(r->source));
	values[2] = CStringGetTextDatum(fingerprint);
	values[3] = Int32GetDatum(nsamples);
	values[4] = Int64GetDatum(enc->buf.len - PIPELINE_ARCHIVE_HEADER_SIZE);
	values[5] = PointerGetDatum(dict);
	pipeline_exec_internal("INSERT INTO pipeline.archive_dictionaries (source, source_name, "
						   "schema_fingerprint, sample_rows, sample_bytes, dictionary) "
						   "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id", 6, types, values, NULL);
	return pipeline_result_int64(0, 0);
}

/*
 * use_dictionary
 *		The newest dictionary for the table's current columns, trained now
 *		when there is none; the writer compresses without one when zstd
 *		cannot train one yet (too few rows).
 */
static void
use_dictionary(BatchWriter *w)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	const char *why;
	bool		isnull;

	if (w->r->dictionary_size == 0)
		return;
	values[0] = ObjectIdGetDatum(w->r->source);
	values[1] = CStringGetTextDatum(w->fingerprint);
	if (pipeline_exec_internal("SELECT max(id) FROM pipeline.archive_dictionaries "
							   "WHERE source = $1 AND schema_fingerprint = $2", 2, types, values, NULL) == 1)
		w->dictionary_id = pipeline_result_int64(0, 0);
	if (w->dictionary_id == 0)
		w->dictionary_id = train_dictionary(w->r, w->columns, w->fingerprint, &why);
	if (w->dictionary_id == 0)
		return;
	values[0] = Int64GetDatum(w->dictionary_id);
	types[0] = INT8OID;
	pipeline_exec_internal("SELECT dictionary FROM pipeline.archive_dictionaries WHERE id = $1",
						   1, types, values, NULL);
	w->dictionary = DatumGetByteaPCopy(pipeline_result_datum(0, 0, &isnull));
}

/* ------------------------------------------------------------ batches */

/* A batch's rows to delete, and how many were. */
typedef struct DeleteCall
{
	BatchWriter *w;
	int64		deleted;
} DeleteCall;

/*
 * delete_batch_rows
 *		pipeline_own_staging_writes callback of delete_archived: one DELETE
 *		per table (a partition) the batch's rows are in.
 */
static void
delete_batch_rows(void *arg)
{
	DeleteCall *call = arg;
	int			n = call->w->enc->rows;
	Datum	   *tids = palloc(sizeof(Datum) * n);
	bool	   *done = palloc0(sizeof(bool) * n);

	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		int			k = 0;
		int			ret;

		if (done[i])
			continue;

		/*
		 * one statement per table: a partitioned source's rows may be in
		 * several
		 */
		for (int j = i; j < n; j++)
			if (!done[j] && call->w->rels[j] == call->w->rels[i])
			{
				tids[k++] = PointerGetDatum(&call->w->tids[j]);
				done[j] = true;
			}
		values[0] = ObjectIdGetDatum(call->w->rels[i]);
		values[1] = PointerGetDatum(construct_array(tids, k, TIDOID, sizeof(ItemPointerData),
													false, TYPALIGN_SHORT));
		ret = SPI_execute_plan(call->w->delete_plan, values, NULL, false, 0);
		if (ret < 0)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
		call->deleted += SPI_processed;
	}
}

/*
 * delete_archived
 *		Deletes the rows of the batch from the staging table, by table (a
 *		partition) and ctid; returns how many it found.  The statement is
 *		planned generically, not for the list at hand: a list of thousands
 *		of ctids is costed above a scan of the whole table, and the index
 *		cannot help when one transaction staged them all.  The table's
 *		guards let it through (staging.c).
 */
static int64
delete_archived(BatchWriter *w)
{
	DeleteCall	call = {w, 0};
	Oid			types[2] = {OIDOID, TIDARRAYOID};
	PipelineUserContext ctx;

	pipeline_become_role(w->r->owner, "pg_catalog, pg_temp", &ctx);
	if (w->delete_plan == NULL)
		w->delete_plan = SPI_prepare_cursor(psprintf("DELETE FROM %s s WHERE s.tableoid = $1 "
													 "AND s.ctid = ANY ($2)", w->source_name),
											2, types, CURSOR_OPT_GENERIC_PLAN);
	if (w->delete_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	pipeline_own_staging_writes(w->r->source, delete_batch_rows, &call);
	pipeline_restore_user(&ctx);
	return call.deleted;
}

/*
 * flush_batch
 *		Writes the batch being filled to pipeline.archive_batches and
 *		deletes its rows from the staging table, in the current transaction.
 */
static void
flush_batch(BatchWriter *w, ArchivePass *result)
{
	StringInfo	buf = &w->enc->buf;
	uint32		crc;
	bytea	   *payload;
	Oid			types[15] = {OIDOID, TEXTOID, XID8OID, INT8OID, XID8OID, INT8OID, INT4OID,
	INT8OID, INT8OID, JSONBOID, TEXTOID, INT8OID, INT4OID, INT8OID, BYTEAOID};
	Datum		values[15];
	char		nulls[15];
	int64		deleted;
	MemoryContext old;

	if (w->enc->rows == 0)
		return;
	/* what a batch allocates goes with it: a pass may write thousands */
	old = MemoryContextSwitchTo(w->batch_context);
	crc = pipeline_archive_checksum(buf->data, buf->len);
	payload = pipeline_zstd_compress_bytes(buf->data, buf->len, w->r->level, w->dictionary);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = ObjectIdGetDatum(w->r->source);
	values[1] = CStringGetTextDatum(w->source_name);
	values[2] = FullTransactionIdGetDatum(w->first.xid);
	values[3] = Int64GetDatum(w->first.seq);
	values[4] = FullTransactionIdGetDatum(w->last.xid);
	values[5] = Int64GetDatum(w->last.seq);
	values[6] = Int32GetDatum(w->enc->rows);
	values[7] = Int64GetDatum(buf->len);
	values[8] = Int64GetDatum(VARSIZE(payload) - VARHDRSZ);
	values[9] = JsonbPGetDatum(w->columns);
	values[10] = CStringGetTextDatum(w->fingerprint);
	values[11] = Int64GetDatum((int64) crc);
	values[12] = Int32GetDatum(w->r->level);
	values[13] = Int64GetDatum(w->dictionary_id);
	nulls[13] = w->dictionary_id == 0 ? 'n' : ' ';
	values[14] = PointerGetDatum(payload);
	pipeline_exec_internal("INSERT INTO pipeline.archive_batches (source, source_name, first_xid, "
						   "first_seq, last_xid, last_seq, row_count, raw_bytes, compressed_bytes, "
						   "columns, schema_fingerprint, checksum, compression_level, dictionary_id, "
						   "payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
						   "$14, $15)", 15, types, values, nulls);

	deleted = delete_archived(w);
	if (deleted != w->enc->rows)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("staging rows of %s changed during the archive pass", w->source_name),
				 errdetail("The pass archived %d rows and found %lld of them to delete: a concurrent statement updated or deleted consumed rows.",
						   w->enc->rows, (long long) deleted),
				 errhint("Run pipeline.archive('%s') again.", w->source_name)));

	result->batches++;
	result->rows_archived += w->enc->rows;
	result->rows_removed += w->enc->rows;
	result->raw_bytes += buf->len;
	result->compressed_bytes += VARSIZE(payload) - VARHDRSZ;
	pipeline_archive_encoder_reset(w->enc);
	MemoryContextSwitchTo(old);
	MemoryContextReset(w->batch_context);
}

/*
 * add_row
 *		Adds row i of the fetched rows (tableoid, ctid, _xid, _seq, then the
 *		archived columns) to the batch being filled.
 */
static void
add_row(BatchWriter *w, SPITupleTable *fetched, uint64 i)
{
	HeapTuple	tuple = fetched->vals[i];
	TupleDesc	desc = fetched->tupdesc;
	bool		isnull;
	int			n = w->enc->rows;
	RowPosition pos;

	pos.valid = true;
	pos.xid = DatumGetFullTransactionId(heap_getattr(tuple, 3, desc, &isnull));
	pos.seq = DatumGetInt64(heap_getattr(tuple, 4, desc, &isnull));
	if (n == 0)
		w->first = pos;
	w->last = pos;
	w->rels[n] = DatumGetObjectId(heap_getattr(tuple, 1, desc, &isnull));
	ItemPointerCopy((ItemPointer) DatumGetPointer(heap_getattr(tuple, 2, desc, &isnull)), &w->tids[n]);
	pipeline_archive_encode_row(w->enc, tuple, desc);
}

/*
 * eligible_rows
 *		The rows of the table (alias s) the eligible snapshot, $1, has
 *		consumed: those a pass takes.
 */
static char *
eligible_rows(void)
{
	CursorSql	eligible = {"$1", NULL, NULL};

	return pipeline_rule_consumed("s", &eligible);
}

/*
 * write_batches
 *		Archives the rows 'eligible' sees, batch by batch, deleting each
 *		batch's rows as it is written.
 */
static void
write_batches(const Retention *r, Datum eligible, ArchivePass *result)
{
	BatchWriter w = {0};
	Oid			type = PG_SNAPSHOTOID;
	MemoryContext rows_context = AllocSetContextCreate(CurrentMemoryContext, "archive rows",
													   ALLOCSET_DEFAULT_SIZES);
	PipelineUserContext ctx;
	Portal		portal;
	char	   *sql;
	int			level;

	w.r = r;
	w.source_name = pipeline_qualified_name(r->source);
	pipeline_archive_columns(r->source, &w.columns, &w.fingerprint);
	use_dictionary(&w);
	w.rels = palloc(sizeof(Oid) * r->batch_rows);
	w.tids = palloc(sizeof(ItemPointerData) * r->batch_rows);
	w.batch_context = AllocSetContextCreate(CurrentMemoryContext, "archive batch",
											ALLOCSET_DEFAULT_SIZES);
	sql = psprintf("SELECT s.tableoid, s.ctid, s._xid, s._seq, %s FROM %s s WHERE %s "
				   "ORDER BY s._xid, s._seq", column_list(w.columns), w.source_name,
				   eligible_rows());

	level = pipeline_archive_pin_formats();
	pipeline_become_role(r->owner, "pg_catalog, pg_temp", &ctx);
	portal = SPI_cursor_open_with_args(NULL, sql, 1, &type, &eligible, NULL, false, 0);
	pipeline_restore_user(&ctx);
	for (;;)
	{
		SPITupleTable *fetched;
		uint64		n;
		uint64		i = 0;

		pipeline_become_role(r->owner, "pg_catalog, pg_temp", &ctx);
		SPI_cursor_fetch(portal, true, ARCHIVE_FETCH_ROWS);
		pipeline_restore_user(&ctx);
		fetched = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		if (w.enc == NULL)
			w.enc = pipeline_archive_encoder(fetched->tupdesc, 5);
		while (i < n)
		{
			MemoryContext old = MemoryContextSwitchTo(rows_context);

			/* user types' output functions run as the table's owner */
			pipeline_become_role(r->owner, "pg_catalog, pg_temp", &ctx);
			while (i < n && w.enc->rows < r->batch_rows &&
				   w.enc->buf.len < ARCHIVE_MAX_BATCH_BYTES)
				add_row(&w, fetched, i++);
			pipeline_restore_user(&ctx);
			MemoryContextSwitchTo(old);
			MemoryContextReset(rows_context);
			if (w.enc->rows == r->batch_rows || w.enc->buf.len >= ARCHIVE_MAX_BATCH_BYTES)
				flush_batch(&w, result);
			CHECK_FOR_INTERRUPTS();
		}
		SPI_freetuptable(fetched);
	}
	SPI_cursor_close(portal);
	pipeline_archive_unpin_formats(level);
	if (w.enc != NULL)
		flush_batch(&w, result);
	MemoryContextDelete(rows_context);
	MemoryContextDelete(w.batch_context);
}

/* What delete_eligible deletes, and how many rows it did. */
typedef struct EligibleCall
{
	const Retention *r;
	Datum		eligible;
	int64		deleted;
} EligibleCall;

/*
 * delete_eligible_rows
 *		pipeline_own_staging_writes callback of delete_eligible.
 */
static void
delete_eligible_rows(void *arg)
{
	EligibleCall *call = arg;
	Oid			type = PG_SNAPSHOTOID;

	call->deleted = pipeline_exec(psprintf("DELETE FROM %s s WHERE %s",
										   pipeline_qualified_name(call->r->source),
										   eligible_rows()),
								  1, &type, &call->eligible, NULL, false, 0);
}

/*
 * delete_eligible
 *		Retention without archive: deletes the rows 'eligible' sees (the
 *		table's guards let it through, staging.c).
 */
static void
delete_eligible(const Retention *r, Datum eligible, ArchivePass *result)
{
	EligibleCall call = {r, eligible, 0};
	PipelineUserContext ctx;

	pipeline_become_role(r->owner, "pg_catalog, pg_temp", &ctx);
	pipeline_own_staging_writes(r->source, delete_eligible_rows, &call);
	pipeline_restore_user(&ctx);
	result->rows_removed = call.deleted;
}

/*
 * drop_old_batches
 *		Drops the table's batches older than its archive_keep, and the
 *		dictionaries no batch uses that are not its newest.
 */
static void
drop_old_batches(const Retention *r, ArchivePass *result)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(r->source);

	result->dropped = pipeline_exec_internal("DELETE FROM pipeline.archive_batches b "
											 "USING pipeline.retention r WHERE r.source = $1 "
											 "AND b.source = $1 AND b.created_at < now() - r.archive_keep",
											 1, &type, &value, NULL);
	pipeline_exec_internal("DELETE FROM pipeline.archive_dictionaries d WHERE d.source = $1 "
						   "AND d.id < (SELECT max(n.id) FROM pipeline.archive_dictionaries n "
						   "WHERE n.source = $1) AND NOT EXISTS (SELECT 1 FROM pipeline.archive_batches b "
						   "WHERE b.dictionary_id = d.id)", 1, &type, &value, NULL);
}

/*
 * unconsumed_rows
 *		How many rows of the table the pass is about to take (those
 *		'eligible' sees) the cursor 'consumed' (partial position 'px'/'pq')
 *		has not consumed; read as the table's owner, through the index
 *		range between the cursor's xmin and the snapshot's xmax (empty for
 *		a reader that keeps up).
 */
static int64
unconsumed_rows(const Retention *r, Datum eligible, Datum consumed, Datum px, Datum pq,
				bool partial)
{
	Oid			types[4] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID, XID8OID, INT8OID};
	Datum		values[4] = {eligible, consumed, px, pq};
	char		nulls[4] = {' ', ' ', partial ? ' ' : 'n', partial ? ' ' : 'n'};
	CursorSql	pass = {"$1", NULL, NULL};
	CursorSql	reader = {"$2", "$3", "$4"};
	PipelineUserContext ctx;
	int64		n;

	pipeline_become_role(r->owner, "pg_catalog, pg_temp", &ctx);
	pipeline_exec(psprintf("SELECT count(*) FROM %s s WHERE %s",
						   pipeline_qualified_name(r->source),
						   pipeline_rule_between("s", &reader, &pass)),
				  4, types, values, nulls, true, 1);
	n = pipeline_result_int64(0, 0);
	pipeline_restore_user(&ctx);
	return n;
}

/*
 * mark_unconsumed
 *		Suspends, with the reason, every pipeline reading the table whose
 *		cursor has not consumed rows the pass is about to take (one that
 *		stopped holding them back, see readers_consumed): its runs would no
 *		longer find them, and that must not go unseen.  resume() lets it go
 *		on from its cursor; the rows stay readable in the archive.
 */
static void
mark_unconsumed(const Retention *r, Datum eligible)
{
	ListCell   *lc;

	foreach(lc, pipeline_unmarked_cursors(r->source))
	{
		ReaderCursor *c = lfirst(lc);
		int64		lost;

		lost = unconsumed_rows(r, eligible, c->consumed,
							   FullTransactionIdGetDatum(c->partial.xid),
							   Int64GetDatum(c->partial.seq), c->partial.valid);
		if (lost > 0)
			pipeline_suspend_archived_unconsumed(c->pipeline_id, psprintf(
																		  "source rows archived before consumed: a pass moved %lld rows of %s to the archive before this pipeline consumed them (its cursor had not moved for longer than pipeline.retention_hold_limit), and later passes may move more",
																		  (long long) lost, pipeline_qualified_name(r->source)));
	}
}

/*
 * archive_pass
 *		One pass over a table whose retention row the caller locked, holding
 *		its archive lock.
 */
static void
archive_pass(const Retention *r, ArchivePass *result)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(r->source);
	Datum		eligible = eligible_snapshot(r);

	if (eligible != (Datum) 0)
		mark_unconsumed(r, eligible);

	if (eligible != (Datum) 0 && r->archive)
		write_batches(r, eligible, result);
	else if (eligible != (Datum) 0)
		delete_eligible(r, eligible, result);
	drop_old_batches(r, result);
	pipeline_exec_internal("UPDATE pipeline.retention SET last_pass_at = clock_timestamp() WHERE source = $1",
						   1, &type, &value, NULL);
}

/*
 * load_retention
 *		The table's retention setting, its row locked; with 'due_only', only
 *		when the last pass is older than pipeline.archive_interval, and
 *		without waiting for a lock.  NULL when there is none (or none due).
 */
static Retention *
load_retention(Oid source, bool due_only)
{
	Oid			types[2] = {OIDOID, INT4OID};
	Datum		values[2];
	Retention  *r;
	bool		isnull;

	values[0] = ObjectIdGetDatum(source);
	values[1] = Int32GetDatum(pipeline_archive_interval);
	if (pipeline_exec_internal(psprintf("SELECT keep = interval '0', archive, compression_level, "
										"dictionary_size, batch_rows FROM pipeline.retention "
										"WHERE source = $1%s",
										due_only ? " AND (last_pass_at IS NULL OR last_pass_at <= "
										"clock_timestamp() - make_interval(secs => $2)) "
										"FOR UPDATE SKIP LOCKED" : " FOR UPDATE"),
							   due_only ? 2 : 1, types, values, NULL) == 0)
		return NULL;
	r = palloc0(sizeof(Retention));
	r->source = source;
	r->owner = pipeline_relation_owner(source);
	r->keep_zero = DatumGetBool(pipeline_result_datum(0, 0, &isnull));
	r->archive = DatumGetBool(pipeline_result_datum(0, 1, &isnull));
	r->level = (int) pipeline_result_int64(0, 2);
	r->dictionary_size = (int) pipeline_result_int64(0, 3);
	r->batch_rows = (int) pipeline_result_int64(0, 4);
	return r;
}

/*
 * auto_pass
 *		The pass at the end of a run, if one is due and no other pass runs.
 */
static void
auto_pass(void *arg)
{
	Oid			source = *(Oid *) arg;
	Retention  *r = load_retention(source, true);
	ArchivePass result = {0};

	if (r != NULL && archive_lock(source, false))
		archive_pass(r, &result);
}

/*
 * pipeline_archive_after_run
 *		Called at the end of a successful run of 'def', after its work
 *		committed (in its one transaction, for a run that found nothing
 *		pending): an archive pass on its source when one is due.  A failed
 *		pass is rolled back alone and reported as a warning: the run's work
 *		stands, and the rows stay staged for a later pass.
 */
void
pipeline_archive_after_run(const PipelineDef *def)
{
	ErrorData  *error;

	Oid			types[2] = {OIDOID, INT4OID};
	Datum		values[2];

	/* change logs are trimmed, not archived; an old snapshot misses readers */
	if (pipeline_archive_interval < 0 || def->reads_change_log || IsolationUsesXactSnapshot())
		return;
	/* most sources have no retention: one probe, no subtransaction */
	values[0] = ObjectIdGetDatum(def->source);
	values[1] = Int32GetDatum(pipeline_archive_interval);
	if (pipeline_exec_internal_kept("SELECT 1 FROM pipeline.retention WHERE source = $1 AND (last_pass_at IS NULL "
									"OR last_pass_at <= clock_timestamp() - make_interval(secs => $2))",
									2, types, values, NULL) == 0)
		return;
	error = pipeline_try(auto_pass, (void *) &def->source);
	if (error == NULL)
		return;
	if (error->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(error);
	ereport(WARNING,
			(errcode(error->sqlerrcode),
			 errmsg("archive pass on %s after pipeline \"%s\" failed: %s",
					pipeline_qualified_name(def->source), def->name, error->message),
			 error->detail ? errdetail_internal("%s", error->detail) : 0,
			 errhint("The run's work is committed; its rows stay staged until a pass succeeds (SELECT * FROM pipeline.archive('%s')).",
					 pipeline_qualified_name(def->source))));
}

/* ------------------------------------------------------- SQL functions */

/*
 * check_source
 *		Errors unless 'source' is a staging table the caller owns, made a
 *		pipeline source, and not a change log (which its readers trim).
 */
static void
check_source(Oid source)
{
	char	   *name = pipeline_qualified_name(source);
	AttrNumber	xid_att = get_attnum(source, PIPELINE_XID_COLUMN);
	AttrNumber	seq_att = get_attnum(source, PIPELINE_SEQ_COLUMN);
	char		kind = get_rel_relkind(source);

	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a table", name),
				 errdetail("Retention applies to staging tables (plain or partitioned)."),
				 errhint("Give the staging table a pipeline reads.")));
	pipeline_check_role(pipeline_relation_owner(source), psprintf("table %s", name));
	if (xid_att == InvalidAttrNumber || seq_att == InvalidAttrNumber ||
		get_atttype(source, xid_att) != XID8OID || get_atttype(source, seq_att) != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not a pipeline source", name),
				 errdetail("Retention archives rows by the _xid and _seq columns a pipeline source carries."),
				 errhint("Run SELECT pipeline.prepare_source('%s'), or create a pipeline on it.", name)));
	if (pipeline_is_change_log(source))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("table %s is a change log", name),
				 errdetail("The pipelines reading a change log delete the rows they have all consumed; it holds nothing to archive for long."),
				 errhint("Set the retention of the staging table upstream of it.")));
}

/*
 * source_arg
 *		The regclass argument n; NULL is an error.
 */
static Oid
source_arg(FunctionCallInfo fcinfo, int n)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source must not be null"),
				 errdetail("Retention and archives belong to one staging table."),
				 errhint("Pass source => 'schema.table'.")));
	return PG_GETARG_OID(n);
}

/*
 * bad_setting
 *		Errors about a retention setting.
 */
static void bad_setting(const char *message, const char *detail, const char *hint) pg_attribute_noreturn();
static void
bad_setting(const char *message, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg_internal("%s", message),
			 errdetail_internal("%s", detail),
			 errhint("%s", hint)));
}

/*
 * check_settings
 *		Errors on a retention setting out of range.
 */
static void
check_settings(FunctionCallInfo fcinfo, bool archive, int dictionary_size, int batch_rows)
{
	Datum		zero = PointerGetDatum(palloc0(sizeof(Interval)));

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("keep must not be null"),
				 errdetail("keep is how long consumed rows stay in the staging table."),
				 errhint("Pass keep => '0' to archive rows as soon as every pipeline consumed them.")));
	if (DatumGetBool(DirectFunctionCall2(interval_lt, PG_GETARG_DATUM(1), zero)))
		bad_setting("keep must not be negative",
					"keep is how long consumed rows stay in the staging table.",
					"Pass keep => '0' to archive rows as soon as every pipeline consumed them.");
	pipeline_zstd_check_level(PG_ARGISNULL(3) ? 3 : PG_GETARG_INT32(3));
	if (dictionary_size != 0 && (dictionary_size < 1024 || dictionary_size > 1048576))
		bad_setting(psprintf("dictionary_size %d is out of range", dictionary_size),
					"A dictionary has 1024 to 1048576 bytes; 0 means none.",
					"16384 suits rows of a few hundred bytes.");
	if (batch_rows < 1 || batch_rows > 1000000)
		bad_setting(psprintf("batch_rows %d is out of range", batch_rows),
					"An archive batch holds 1 to 1000000 rows (and at most 64 MB).",
					"The default, 10000, compresses well.");
	if (!PG_ARGISNULL(6) &&
		!DatumGetBool(DirectFunctionCall2(interval_gt, PG_GETARG_DATUM(6), zero)))
		bad_setting("archive_keep must be positive",
					"archive_keep is how long archive batches are kept; NULL keeps them forever.",
					"Pass for example archive_keep => '90 days'.");
	if (!archive && (dictionary_size != 0 || !PG_ARGISNULL(6)))
		bad_setting("archive => false takes no dictionary_size or archive_keep",
					"Without archive, rows leaving the staging table are deleted: there are no batches.",
					"Leave dictionary_size and archive_keep out, or archive the rows.");
}

/*
 * pipeline_set_retention
 *		SQL: pipeline.set_retention(source, keep, archive, compression_level,
 *		dictionary_size, batch_rows, archive_keep).  Replaces the table's
 *		setting; its marks stay (they are facts about its readers).
 */
Datum
pipeline_set_retention(PG_FUNCTION_ARGS)
{
	Oid			source = source_arg(fcinfo, 0);
	bool		archive = PG_ARGISNULL(2) ? true : PG_GETARG_BOOL(2);
	int			dictionary_size = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
	int			batch_rows = PG_ARGISNULL(5) ? 10000 : PG_GETARG_INT32(5);
	Oid			types[7] = {OIDOID, INTERVALOID, BOOLOID, INT4OID, INT4OID, INT4OID, INTERVALOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	pipeline_check_version(ERROR);
	check_settings(fcinfo, archive, dictionary_size, batch_rows);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check_source(source);
	values[0] = ObjectIdGetDatum(source);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = BoolGetDatum(archive);
	values[3] = Int32GetDatum(PG_ARGISNULL(3) ? 3 : PG_GETARG_INT32(3));
	values[4] = Int32GetDatum(dictionary_size);
	values[5] = Int32GetDatum(batch_rows);
	values[6] = PG_ARGISNULL(6) ? (Datum) 0 : PG_GETARG_DATUM(6);
	nulls[6] = PG_ARGISNULL(6) ? 'n' : ' ';
	pipeline_exec_internal("INSERT INTO pipeline.retention (source, keep, archive, compression_level, "
						   "dictionary_size, batch_rows, archive_keep) VALUES ($1, $2, $3, $4, $5, $6, $7) "
						   "ON CONFLICT (source) DO UPDATE SET keep = EXCLUDED.keep, "
						   "archive = EXCLUDED.archive, compression_level = EXCLUDED.compression_level, "
						   "dictionary_size = EXCLUDED.dictionary_size, batch_rows = EXCLUDED.batch_rows, "
						   "archive_keep = EXCLUDED.archive_keep, altered_at = now()",
						   7, types, values, nulls);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * report_no_retention
 *		Errors that a table has no retention setting.
 */
static void report_no_retention(Oid source) pg_attribute_noreturn();
static void
report_no_retention(Oid source)
{
	char	   *name = pipeline_qualified_name(source);

	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("table %s has no retention setting", name),
			 errdetail("Consumed rows leave a staging table only once it has one."),
			 errhint("Set one with SELECT pipeline.set_retention('%s', keep => '7 days').", name)));
}

/*
 * pipeline_drop_retention
 *		SQL: pipeline.drop_retention(source, if_exists).  Rows stay in the
 *		staging table from now on; the archive stays as it is.
 */
Datum
pipeline_drop_retention(PG_FUNCTION_ARGS)
{
	Oid			source = source_arg(fcinfo, 0);
	bool		if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(source);

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_check_role(pipeline_relation_owner(source),
						psprintf("table %s", pipeline_qualified_name(source)));
	if (pipeline_exec_internal("DELETE FROM pipeline.retention WHERE source = $1", 1, &type, &value,
							   NULL) == 0)
	{
		if (!if_exists)
			report_no_retention(source);
		ereport(NOTICE,
				(errmsg("table %s has no retention setting, skipping",
						pipeline_qualified_name(source))));
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_archive
 *		SQL: pipeline.archive(source) -> (batches_written, rows_archived,
 *		rows_removed, raw_bytes, compressed_bytes, batches_dropped).
 */
Datum
pipeline_archive(PG_FUNCTION_ARGS)
{
	Oid			source = source_arg(fcinfo, 0);
	TupleDesc	tupdesc;
	ArchivePass result = {0};
	Retention  *r;
	Datum		values[6];
	bool		nulls[6] = {0};

	pipeline_check_version(ERROR);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pipeline.archive must return a record");
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("pipeline.archive must run in a READ COMMITTED transaction"),
				 errdetail("A pass must see the cursors of every pipeline reading the table as they are once it holds the table's archive lock; an older snapshot could miss a new pipeline's."),
				 errhint("Run it outside a REPEATABLE READ or SERIALIZABLE transaction.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_check_role(pipeline_relation_owner(source),
						psprintf("table %s", pipeline_qualified_name(source)));
	archive_lock(source, true);
	r = load_retention(source, false);
	if (r == NULL)
		report_no_retention(source);
	archive_pass(r, &result);
	SPI_finish();

	values[0] = Int32GetDatum(result.batches);
	values[1] = Int64GetDatum(result.rows_archived);
	values[2] = Int64GetDatum(result.rows_removed);
	values[3] = Int64GetDatum(result.raw_bytes);
	values[4] = Int64GetDatum(result.compressed_bytes);
	values[5] = Int32GetDatum(result.dropped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * pipeline_train_archive_dictionary
 *		SQL: pipeline.train_archive_dictionary(source) -> dictionary id.
 *		The table's next batches use the new dictionary.
 */
Datum
pipeline_train_archive_dictionary(PG_FUNCTION_ARGS)
{
	Oid			source = source_arg(fcinfo, 0);
	Retention  *r;
	Jsonb	   *columns;
	char	   *fingerprint;
	const char *why = NULL;
	int64		id;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_check_role(pipeline_relation_owner(source),
						psprintf("table %s", pipeline_qualified_name(source)));
	r = load_retention(source, false);
	if (r == NULL)
		report_no_retention(source);
	if (r->dictionary_size == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s archives without a dictionary", pipeline_qualified_name(source)),
				 errdetail("Its retention setting has dictionary_size 0."),
				 errhint("Set one with pipeline.set_retention(..., dictionary_size => 16384).")));
	pipeline_archive_columns(source, &columns, &fingerprint);
	id = train_dictionary(r, columns, fingerprint, &why);
	if (id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not train a dictionary for %s", pipeline_qualified_name(source)),
				 errdetail("zstd: %s.", why),
				 errhint("Train it once the table holds more rows (about 100 times dictionary_size in bytes), or use a smaller dictionary_size.")));
	SPI_finish();
	PG_RETURN_INT64(id);
}
