/*-------------------------------------------------------------------------
 *
 * shard_statement.c
 *	  The worker's side of a sharded run (shard_run.c is the
 *	  coordinator's): pipeline.run_shard_statement runs a batch's statement
 *	  (batch/shard_sql.c) over one pair of co-located shards, as the caller
 *	  (the pipeline's owner, whose connection Citus opened), in a
 *	  security-restricted operation with the pipeline's search_path and
 *	  statement timeout, all rolled back before it returns.
 *
 * A row that makes the statement fail with a data error (a value the
 * target's type refuses, a unique violation no row rule foresaw) would
 * fail its shard at every run.  So when the statement fails so, the
 * batch's first rows (as many as a shard may return rejected) are tried
 * alone, each in a subtransaction always rolled back; the statement runs
 * again over those that passed, and those that failed are returned with
 * their error among the rejected rows, for the coordinator to quarantine;
 * the rows after them wait for the next batch.  An error no single row
 * raises, or that every row tried raises, fails the shard, as before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/timeout.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "run/run.h"

PG_FUNCTION_INFO_V1(pipeline_run_shard_statement);

/*
 * qualified_shard
 *		A shard's name as Citus writes it (unqualified in schema public),
 *		qualified: the statement runs with the pipeline's search_path, which
 *		may not hold public, or hold a schema ahead of it.
 */
static char *
qualified_shard(const char *name)
{
	List	   *names = stringToQualifiedNameList(name);

	if (list_length(names) == 1)
		return quote_qualified_identifier("public", strVal(linitial(names)));
	return quote_qualified_identifier(strVal(linitial(names)), strVal(lsecond(names)));
}

/*
 * with_shards
 *		The statement with each sentinel replaced, in one pass: by the
 *		shards' names and the condition on the rows it reads.
 */
static char *
with_shards(const char *statement, const char *source, const char *target, const char *rows)
{
	const char *sentinels[3] = {PIPELINE_SHARD_SOURCE, PIPELINE_SHARD_TARGET, PIPELINE_SHARD_ROWS};
	const char *values[3] = {source, target, rows};
	StringInfoData buf;

	initStringInfo(&buf);
	while (*statement)
	{
		int			i;

		for (i = 0; i < 3; i++)
			if (strncmp(statement, sentinels[i], strlen(sentinels[i])) == 0)
				break;
		if (i < 3)
		{
			appendStringInfoString(&buf, values[i]);
			statement += strlen(sentinels[i]);
		}
		else
			appendStringInfoChar(&buf, *statement++);
	}
	return buf.data;
}

/*
 * first_value
 *		Runs a statement; the text of its first row's first column, in the
 *		caller's memory (NULL when none).  The caller is connected to SPI.
 */
static char *
first_value(const char *sql)
{
	char	   *value;

	if (SPI_execute(sql, false, 0) < 0 || SPI_processed == 0 || SPI_tuptable == NULL)
		return NULL;
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return value ? strcpy(SPI_palloc(strlen(value) + 1), value) : NULL;
}

/*
 * is_row_error
 *		Whether an error may be one row's: a data exception or an integrity
 *		constraint violation but a foreign key's.
 */
static bool
is_row_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	/* (a missing referenced row may come later: not the row's fault) */
	if (sqlerrcode == ERRCODE_FOREIGN_KEY_VIOLATION)
		return false;
	return category == ERRCODE_DATA_EXCEPTION || category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION;
}

/* A statement try_statement runs, and its first value. */
typedef struct StatementCall
{
	const char *sql;
	char	   *value;
} StatementCall;

/*
 * run_statement
 *		first_value, for pipeline_try.
 */
static void
run_statement(void *arg)
{
	StatementCall *call = arg;

	call->value = first_value(call->sql);
}

/*
 * try_statement
 *		Runs a statement in a subtransaction, rolled back when 'probe' (a
 *		trial) or when it fails; its first value (first_value), or NULL with
 *		*error set to the error it raised.
 */
static char *
try_statement(const char *sql, bool probe, ErrorData **error)
{
	StatementCall call = {sql, NULL};

	*error = probe ? pipeline_try_undone(run_statement, &call) : pipeline_try(run_statement, &call);
	return *error ? NULL : call.value;
}

/*
 * Rows tried alone: the batch's first ones, at most as many as a shard may
 * return rejected (the others wait for the next batch, which the result
 * asks for with "more").
 */
#define MAX_TRIED PIPELINE_SHARD_MAX_REJECTED

/* Advisory lock class of a target shard: its statements run one at a time. */
#define SHARD_LOCK_CLASS 0x5348

/*
 * TriedRows: the rows of a failed batch tried alone -- the ctids (SQL
 * literals) of those that passed and of those that failed, and the latter
 * as [_xid, _seq, -1, raw row, message, SQLSTATE] entries of a jsonb array.
 */
typedef struct TriedRows
{
	StringInfoData passed;
	StringInfoData failed;
	StringInfoData entries;
	int			nfailed;
	int			ntried;
} TriedRows;

/*
 * try_rows
 *		Tries the batch's first rows (MAX_TRIED at most) alone, each in a
 *		subtransaction rolled back, with a fresh snapshot as the statement
 *		takes; sorts them into 'tried'.  A row failing with an error that is
 *		no row's error fails the shard.
 */
static void
try_rows(const char *statement, const char *source, const char *target, int64 batch_size,
		 TriedRows *tried)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext per_row = AllocSetContextCreate(outer, "shard row tries", ALLOCSET_DEFAULT_SIZES);
	int			n;
	char	  **tids;
	char	  **entries;

	n = SPI_execute(psprintf("SELECT s.ctid::text, pg_catalog.jsonb_build_array(s._xid, s._seq, -1, "
							 "pg_catalog.to_jsonb(s) - '_xid' - '_seq')::text FROM ONLY %s s "
							 "ORDER BY s._xid, s._seq LIMIT " INT64_FORMAT, source, Min(batch_size, MAX_TRIED)),
					false, 0) == SPI_OK_SELECT ? (int) SPI_processed : 0;
	tids = palloc(sizeof(char *) * Max(n, 1));
	entries = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		tids[i] = quote_literal_cstr(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		entries[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}
	initStringInfo(&tried->passed);
	initStringInfo(&tried->failed);
	initStringInfo(&tried->entries);
	tried->nfailed = 0;
	tried->ntried = n;
	for (int i = 0; i < n; i++)
	{
		ErrorData  *error;
		StringInfo	list;

		MemoryContextSwitchTo(per_row);
		(void) try_statement(with_shards(statement, source, target,
										 psprintf("s.ctid = %s::tid", tids[i])), true, &error);
		MemoryContextSwitchTo(outer);
		if (error != NULL && !is_row_error(error->sqlerrcode))
			ReThrowError(error);
		list = error ? &tried->failed : &tried->passed;
		appendStringInfo(list, "%s%s", list->len ? ", " : "", tids[i]);
		if (error)
		{
			/* the entry [x, q, -1, raw] without its "]", then the error's two */
			appendStringInfo(&tried->entries, "%s%.*s, ", tried->entries.len ? ", " : "",
							 (int) strlen(entries[i]) - 1, entries[i]);
			escape_json(&tried->entries, error->message);
			appendStringInfoString(&tried->entries, ", ");
			escape_json(&tried->entries, unpack_sql_state(error->sqlerrcode));
			appendStringInfoChar(&tried->entries, ']');
			tried->nfailed++;
		}
		MemoryContextReset(per_row);
	}
	MemoryContextDelete(per_row);
}

/*
 * with_failing_rows
 *		A shard statement's result (a jsonb object, as text) counting the
 *		rows that failed alone as read, listing them among the rejected, and
 *		asking for another batch ("more": the rows after those tried wait).
 */
static char *
with_failing_rows(const char *result, const char *failing, int nfailing)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT4OID};
	Datum		values[3] = {CStringGetTextDatum(result), CStringGetTextDatum(failing),
	Int32GetDatum(nfailing)};
	char	   *value;

	if (SPI_execute_with_args("SELECT (r || pg_catalog.jsonb_build_object('read', (r->>'read')::bigint + $3, "
							  "'rejected', (r->'rejected') || $2::jsonb, 'more', true))::text "
							  "FROM (SELECT $1::jsonb AS r) x",
							  3, types, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not add the failing rows to a shard statement's result");
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return strcpy(SPI_palloc(strlen(value) + 1), value);
}

/*
 * run_batch
 *		The batch's statement over the two shards; on a data error, the
 *		batch's first rows tried alone (try_rows), and the statement run
 *		again over those that passed, its result listing those that failed
 *		among the rejected (when all of the first MAX_TRIED passed, the row
 *		at fault lies further: those are merged, and the next batch tries
 *		from it).  An error that no row of a shorter batch raises alone, or
 *		that every row tried raises (not theirs: a constant expression's,
 *		say), fails the shard.  The caller is connected to SPI.
 */
static char *
run_batch(const char *statement, const char *source, const char *target, int64 batch_size)
{
	ErrorData  *error;
	char	   *result = try_statement(with_shards(statement, source, target, "true"), false, &error);
	TriedRows	tried;

	if (error == NULL)
		return result;
	if (!is_row_error(error->sqlerrcode))
		ReThrowError(error);
	try_rows(statement, source, target, batch_size, &tried);
	/* a row past those tried may be the one: merge those, and it comes up */
	if ((tried.nfailed == 0 && tried.ntried < MAX_TRIED) || tried.nfailed == tried.ntried)
		ReThrowError(error);
	result = first_value(with_shards(statement, source, target,
									 psprintf("s.ctid = ANY (ARRAY[%s]::tid[])", tried.passed.data)));
	if (result == NULL)
		elog(ERROR, "a shard statement returned no result");
	return with_failing_rows(result, psprintf("[%s]", tried.entries.data), tried.nfailed);
}

/*
 * lock_target_shard
 *		Waits, within the statement timeout, until no other shard statement
 *		writes the target shard, for the rest of the transaction (see the
 *		file comment); the statement's snapshot is taken afterwards.
 */
static void
lock_target_shard(const char *target)
{
	LOCKTAG		tag;
	Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(target)),
										 NoLock, true);

	/* (no such table: the statement says so itself) */
	if (!OidIsValid(relid))
		return;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, relid, SHARD_LOCK_CLASS);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * pipeline_run_shard_statement
 *		SQL: pipeline.run_shard_statement(source_shard, target_shard,
 *		statement, search_path, timeout_ms, skipped_shards, batch_size) ->
 *		text: the batch's result (run_batch), or '{}' for a source shard
 *		among skipped_shards.  Runs only what the caller could run.
 */
Datum
pipeline_run_shard_statement(PG_FUNCTION_ARGS)
{
	Oid			userid;
	int			sec_context;
	int			nest_level;
	int			timeout_ms;
	char	   *source;
	char	   *target;
	char	   *volatile result = NULL;

	pipeline_check_version(ERROR);
	for (int i = 0; i < 7; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("arguments of pipeline.run_shard_statement must not be null"),
					 errdetail("A sharded pipeline's run calls it on each pair of co-located shards."),
					 errhint("Run the pipeline with pipeline.run; do not call this function.")));
	if (pipeline_list_has_string(pipeline_text_array_to_list(PG_GETARG_DATUM(5), "skipped_shards"),
								 text_to_cstring(PG_GETARG_TEXT_PP(0))))
		PG_RETURN_TEXT_P(cstring_to_text("{}"));
	source = qualified_shard(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	target = qualified_shard(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	timeout_ms = PG_GETARG_INT32(4);

	GetUserIdAndSecContext(&userid, &sec_context);
	SetUserIdAndSecContext(userid, sec_context | SECURITY_RESTRICTED_OPERATION);
	nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", text_to_cstring(PG_GETARG_TEXT_PP(3)), PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		lock_target_shard(target);
		result = run_batch(text_to_cstring(PG_GETARG_TEXT_PP(2)), source, target,
						   Max(PG_GETARG_INT64(6), 1));
		SPI_finish();
	}
	PG_FINALLY();
	{
		/* the timer is ours: off whatever happened */
		if (timeout_ms > 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
	}
	PG_END_TRY();
	AtEOXact_GUC(false, nest_level);
	SetUserIdAndSecContext(userid, sec_context);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
