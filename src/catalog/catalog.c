/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Reading and writing the extension's catalog tables: definitions,
 *	  cursors and run history.
 *
 * Every function here expects an open SPI connection and does its work as
 * the extension (pipeline_become_internal); callers check permissions first.
 * Values are returned in the SPI procedure's memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "model.h"
#include "catalog/catalog.h"
#include "common/common.h"
#include "strategy.h"

#define DEF_COLUMNS \
	"id, name, owner::oid, source::oid, target::oid, coalesce(tombstones::oid, 0), " \
	"key, strategy, sequence_by, delete_when, columns, filter, on_schema_change, " \
	"batch_size, schedule, tombstone_retention::text, search_path, source_columns, " \
	"paused, version, suspended_at IS NOT NULL, statement_timeout::text, " \
	"coalesce(extract(epoch FROM statement_timeout) * 1000, 0)::bigint, " \
	"coalesce(change_log::oid, 0), EXISTS (SELECT 1 FROM pipeline.pipeline_defs u " \
	"WHERE u.change_log = pipeline_defs.source) OR EXISTS (SELECT 1 FROM pipeline.captures c " \
	"WHERE c.change_log = pipeline_defs.source), track_history"

static const char *const lock_clause[] = {"", " FOR SHARE", " FOR UPDATE"};

/*
 * def_from_result
 *		Builds a PipelineDef from row 0 of the last SPI result.
 */
static PipelineDef *
def_from_result(void)
{
	PipelineDef *def = palloc0(sizeof(PipelineDef));
	bool		isnull;
	Datum		d;

	def->id = pipeline_result_int64(0, 0);
	def->name = pipeline_result_text(0, 1);
	def->owner = DatumGetObjectId(pipeline_result_datum(0, 2, &isnull));
	def->source = DatumGetObjectId(pipeline_result_datum(0, 3, &isnull));
	def->target = DatumGetObjectId(pipeline_result_datum(0, 4, &isnull));
	def->tombstones = DatumGetObjectId(pipeline_result_datum(0, 5, &isnull));
	d = pipeline_result_datum(0, 6, &isnull);
	def->key = isnull ? NIL : pipeline_text_array_to_list(d, "key");
	def->strategy = pipeline_find_strategy(pipeline_result_text(0, 7));
	def->sequence_by = pipeline_result_text(0, 8);
	def->delete_when = pipeline_result_text(0, 9);
	def->columns = DatumGetJsonbPCopy(pipeline_result_datum(0, 10, &isnull));
	def->filter = pipeline_result_text(0, 11);
	def->on_schema_change = pipeline_result_text(0, 12);
	def->batch_size = pipeline_result_int64(0, 13);
	def->schedule = pipeline_result_text(0, 14);
	def->tombstone_retention = pipeline_result_text(0, 15);
	def->search_path = pipeline_result_text(0, 16);
	def->source_columns = DatumGetJsonbPCopy(pipeline_result_datum(0, 17, &isnull));
	def->paused = DatumGetBool(pipeline_result_datum(0, 18, &isnull));
	def->version = (int32) pipeline_result_int64(0, 19);
	def->suspended = DatumGetBool(pipeline_result_datum(0, 20, &isnull));
	def->statement_timeout = pipeline_result_text(0, 21);
	def->statement_timeout_ms = pipeline_result_int64(0, 22);
	def->change_log = DatumGetObjectId(pipeline_result_datum(0, 23, &isnull));
	def->reads_change_log = DatumGetBool(pipeline_result_datum(0, 24, &isnull));
	d = pipeline_result_datum(0, 25, &isnull);
	def->track_history = isnull ? NIL : pipeline_text_array_to_list(d, "track_history");
	return def;
}

/*
 * load_where
 *		Loads the definition matching "<column> = $1", or NULL.
 */
static PipelineDef *
load_where(const char *column, Oid argtype, Datum arg, DefLock lock)
{
	PipelineUserContext ctx;
	PipelineDef *def = NULL;
	char	   *sql;

	sql = psprintf("SELECT " DEF_COLUMNS " FROM pipeline.pipeline_defs WHERE %s = $1%s",
				   column, lock_clause[lock]);
	pipeline_become_internal(&ctx);
	if (pipeline_exec_kept(sql, 1, &argtype, &arg, NULL, lock == DEF_LOCK_NONE, 1) == 1)
		def = def_from_result();
	pipeline_restore_user(&ctx);
	return def;
}

/*
 * pipeline_catalog_relid
 *		The oid of one of the extension's own tables, by name (as the
 *		trigger functions check that they fire on theirs).
 */
Oid
pipeline_catalog_relid(const char *name)
{
	return get_relname_relid(name, get_namespace_oid(PIPELINE_SCHEMA, false));
}

/*
 * pipeline_load
 *		The definition of the named pipeline, optionally row-locked; NULL
 *		when it does not exist and missing_ok.  A lock is taken only for a
 *		caller that may manage the pipeline (checked first, without it):
 *		another role's call must fail at once, not wait for a running batch
 *		or hold the owner's runs while its transaction stays open.
 */
PipelineDef *
pipeline_load(const char *name, bool missing_ok, DefLock lock)
{
	PipelineDef *def;
	PipelineDef *unlocked;

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null"),
				 errdetail("Every pipeline function needs the name of a pipeline."),
				 errhint("Pass the name given to pipeline.create_pipeline.")));
	if (lock != DEF_LOCK_NONE)
	{
		unlocked = load_where("name", TEXTOID, CStringGetTextDatum(name), DEF_LOCK_NONE);
		if (unlocked != NULL)
			pipeline_check_manage(unlocked);
	}
	def = load_where("name", TEXTOID, CStringGetTextDatum(name), lock);
	if (def == NULL && !missing_ok)
		pipeline_report_missing(name);
	return def;
}

/*
 * pipeline_report_missing
 *		Errors that the named pipeline does not exist.
 */
void
pipeline_report_missing(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("pipeline \"%s\" does not exist", name),
			 errdetail("No pipeline of that name is defined in this database."),
			 errhint("See SELECT name FROM pipeline.pipelines for the pipelines you can manage.")));
}

/*
 * pipeline_load_by_id
 *		The definition with the given id, or NULL when it was dropped.
 */
PipelineDef *
pipeline_load_by_id(int64 id, DefLock lock)
{
	return load_where("id", INT8OID, Int64GetDatum(id), lock);
}

/*
 * pipeline_run_start
 *		Records a new run as 'running' and returns its id.
 */
int64
pipeline_run_start(const PipelineDef *def, const char *kind, Oid run_as)
{
	Oid			types[3] = {INT8OID, TEXTOID, OIDOID};
	Datum		values[3];
	PipelineUserContext ctx;
	int64		run_id;

	values[0] = Int64GetDatum(def->id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = ObjectIdGetDatum(run_as);
	pipeline_become_internal(&ctx);
	pipeline_exec_kept("INSERT INTO pipeline.run_log (pipeline_id, kind, run_as) "
				  "VALUES ($1, $2, $3::regrole) RETURNING run_id", 3, types, values, NULL, false, 0);
	run_id = pipeline_result_int64(0, 0);
	pipeline_purge_history("run_log", "finished_at", "pipeline_id", def->id);
	pipeline_restore_user(&ctx);
	return run_id;
}

/*
 * counts_args
 *		Fills parameters $2..$10 of a run_log update from counts.
 */
static void
counts_args(const RunCounts *counts, Oid *types, Datum *values)
{
	int64		fields[8] = {counts->read, counts->inserted, counts->updated, counts->deleted,
	counts->stale, counts->filtered, counts->quarantined, counts->dropped};

	for (int i = 0; i < 8; i++)
	{
		types[i] = INT8OID;
		values[i] = Int64GetDatum(fields[i]);
	}
	types[8] = INT4OID;
	values[8] = Int32GetDatum(counts->batches);
}

#define COUNTS_SET \
	"rows_read = $2, rows_inserted = $3, rows_updated = $4, rows_deleted = $5, " \
	"rows_stale = $6, rows_filtered = $7, rows_quarantined = $8, rows_dropped = $9, " \
	"batches = $10"

/*
 * pipeline_run_progress
 *		Stores a running run's counts and the rows it has pending in all.
 */
void
pipeline_run_progress(int64 run_id, const RunCounts *counts, int64 pending)
{
	Oid			types[11];
	Datum		values[11];

	types[0] = INT8OID;
	values[0] = Int64GetDatum(run_id);
	counts_args(counts, types + 1, values + 1);
	types[10] = INT8OID;
	values[10] = Int64GetDatum(pending);
	pipeline_exec_internal_kept("UPDATE pipeline.run_log SET " COUNTS_SET ", rows_pending = $11 "
				  "WHERE run_id = $1", 11, types, values, NULL);
}

/*
 * pipeline_run_finish
 *		Closes a run with its final status, counts and error (if any).
 */
void
pipeline_run_finish(int64 run_id, const char *status, const RunCounts *counts,
					const char *sqlstate, const char *message)
{
	Oid			types[13];
	Datum		values[13];
	char		nulls[13];
	PipelineUserContext ctx;

	memset(nulls, ' ', sizeof(nulls));
	types[0] = INT8OID;
	values[0] = Int64GetDatum(run_id);
	counts_args(counts, types + 1, values + 1);
	types[10] = TEXTOID;
	values[10] = CStringGetTextDatum(status);
	types[11] = TEXTOID;
	types[12] = TEXTOID;
	if (sqlstate)
		values[11] = CStringGetTextDatum(sqlstate);
	else
		nulls[11] = 'n';
	if (message)
		values[12] = CStringGetTextDatum(message);
	else
		nulls[12] = 'n';
	pipeline_become_internal(&ctx);
	pipeline_exec_kept("UPDATE pipeline.run_log SET " COUNTS_SET ", status = $11, "
				  "error_sqlstate = $12, error_message = $13, finished_at = clock_timestamp() "
				  "WHERE run_id = $1", 13, types, values, nulls, false, 0);
	pipeline_record_outcome(run_id);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_fail_interrupted_runs
 *		Marks failed the runs of a pipeline still recorded as running.  The
 *		caller holds the pipeline's run lock, so none of them can be alive:
 *		their session ended (crash, restart, terminated backend) mid-run.
 */
void
pipeline_fail_interrupted_runs(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);
	PipelineUserContext ctx;
	int64	   *interrupted;
	uint64		n;

	pipeline_become_internal(&ctx);
	pipeline_exec_kept("UPDATE pipeline.run_log SET status = 'failed', "
				  "finished_at = clock_timestamp(), error_sqlstate = '57P02', "
				  "error_message = 'run interrupted: the session running it ended "
				  "(server crash or restart, or terminated backend) before it finished' "
				  "WHERE pipeline_id = $1 AND status = 'running' RETURNING run_id",
				  1, &type, &value, NULL, false, 0);
	/* Each outcome runs statements of its own: read the ids first. */
	n = SPI_processed;
	interrupted = palloc(sizeof(int64) * (n + 1));
	for (uint64 i = 0; i < n; i++)
		interrupted[i] = pipeline_result_int64(i, 0);
	for (uint64 i = 0; i < n; i++)
		pipeline_record_outcome(interrupted[i]);
	pipeline_restore_user(&ctx);
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
	bool		isnull;
	PipelineUserContext ctx;

	pipeline_become_internal(&ctx);
	if (pipeline_exec_kept("SELECT consumed, partial_xid, partial_seq FROM pipeline.cursors "
					  "WHERE pipeline_id = $1 FOR UPDATE", 1, &type, &value, NULL,
					  false, 1) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pipeline %lld has no cursor", (long long) pipeline_id),
				 errdetail("Every pipeline has one row in pipeline.cursors; this one's is missing."),
				 errhint("Drop and recreate the pipeline.")));
	*consumed = datumCopy(pipeline_result_datum(0, 0, &isnull), false, -1);
	partial->xid = DatumGetFullTransactionId(pipeline_result_datum(0, 1, &isnull));
	partial->valid = !isnull;
	partial->seq = pipeline_result_int64(0, 2);
	pipeline_restore_user(&ctx);
}

/*
 * cursor_args
 *		Fills parameters $2..$4 of a cursor statement: the consumed
 *		snapshot and the partial position (NULLs when none).
 */
static void
cursor_args(Datum consumed, const RowPosition *partial, Oid *types, Datum *values, char *nulls)
{
	types[0] = PG_SNAPSHOTOID;
	types[1] = XID8OID;
	types[2] = INT8OID;
	values[0] = consumed;
	nulls[0] = nulls[1] = nulls[2] = ' ';
	if (partial->valid)
	{
		values[1] = FullTransactionIdGetDatum(partial->xid);
		values[2] = Int64GetDatum(partial->seq);
	}
	else
		nulls[1] = nulls[2] = 'n';
}

/*
 * pipeline_run_cursor_start
 *		Records the cursor a run starts from (and, until its first batch
 *		commits, ends at): what it consumes is what lies between the two,
 *		which is what a replay of it merges again.
 */
void
pipeline_run_cursor_start(int64 run_id, Datum consumed, const RowPosition *partial)
{
	Oid			types[4] = {INT8OID};
	Datum		values[4];
	char		nulls[4] = {' '};

	values[0] = Int64GetDatum(run_id);
	cursor_args(consumed, partial, types + 1, values + 1, nulls + 1);
	pipeline_exec_internal_kept("UPDATE pipeline.run_log SET cursor_before = $2, cursor_before_xid = $3, "
				  "cursor_before_seq = $4, cursor_after = $2, cursor_after_xid = $3, "
				  "cursor_after_seq = $4 WHERE run_id = $1", 4, types, values, nulls);
}

/*
 * pipeline_cursor_write
 *		Moves the pipeline's cursor, and the end of run_id's consumed range
 *		with it; commits with the batch it records.  caught_up_at, when not
 *		0, is the time just before the snapshot the cursor now equals was
 *		taken: every row still pending committed later.
 */
void
pipeline_cursor_write(int64 pipeline_id, int64 run_id, Datum consumed,
					  const RowPosition *partial, TimestampTz caught_up_at)
{
	Oid			types[5] = {INT8OID, InvalidOid, InvalidOid, InvalidOid, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' '};

	values[0] = Int64GetDatum(pipeline_id);
	cursor_args(consumed, partial, types + 1, values + 1, nulls + 1);
	values[4] = TimestampTzGetDatum(caught_up_at);
	nulls[4] = caught_up_at ? ' ' : 'n';
	pipeline_exec_internal_kept("UPDATE pipeline.cursors SET consumed = $2, partial_xid = $3, "
				  "partial_seq = $4, updated_at = now(), "
				  "caught_up_at = coalesce($5, caught_up_at) WHERE pipeline_id = $1",
				  5, types, values, nulls);
	values[0] = Int64GetDatum(run_id);
	pipeline_exec_internal_kept("UPDATE pipeline.run_log SET cursor_after = $2, cursor_after_xid = $3, "
				  "cursor_after_seq = $4 WHERE run_id = $1", 4, types, values, nulls);
}

/*
 * pipeline_source_columns_json
 *		The source's columns (but _xid and _seq) as a jsonb array of
 *		{"name", "type"} objects, in column order.
 */
Jsonb *
pipeline_source_columns_json(Oid source)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(source);
	bool		isnull;

	pipeline_exec_internal_kept("SELECT coalesce(jsonb_agg(jsonb_build_object('name', attname, "
				  "'type', format_type(atttypid, atttypmod)) ORDER BY attnum), '[]') "
				  "FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 "
				  "AND NOT attisdropped AND attname NOT IN ('_xid', '_seq')",
				  1, &type, &value, NULL);
	return DatumGetJsonbPCopy(pipeline_result_datum(0, 0, &isnull));
}

/*
 * pipeline_store_source_columns
 *		Records the source's columns as accepted (after a schema change was
 *		applied), bumping the definition's version.
 */
void
pipeline_store_source_columns(int64 pipeline_id, Jsonb *columns)
{
	Oid			types[2] = {INT8OID, JSONBOID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = JsonbPGetDatum(columns);
	pipeline_exec_internal("UPDATE pipeline.pipeline_defs SET source_columns = $2, "
				  "version = version + 1, altered_at = now() WHERE id = $1",
				  2, types, values, NULL);
}

/*
 * pipeline_definition_changed
 *		Moves a definition's version on: every backend rebuilds the
 *		pipeline's statements before its next batch (batch_exec.c).  Whatever
 *		changes what a batch statement is built from (checks) calls it.
 */
void
pipeline_definition_changed(const PipelineDef *def)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(def->id);

	pipeline_exec_internal("UPDATE pipeline.pipeline_defs SET version = version + 1, altered_at = now() "
						   "WHERE id = $1", 1, &type, &value, NULL);
}
