/*-------------------------------------------------------------------------
 *
 * shard_run.c
 *	  A run of a sharded pipeline (a hash-distributed staging table merged
 *	  into a co-located distributed target), from the coordinator: every
 *	  pair of co-located shards merged where it lives, in parallel, each in
 *	  one transaction of its worker (batch/shard_sql.c's statement); then
 *	  the rows they rejected quarantined.
 *
 * Exactly once without a cursor: a shard's statement claims (deletes) the
 * staged rows it merges in the transaction that merges them, so a row is
 * merged when, and only when, it leaves the staging table.  Rows a worker
 * does not show yet stay for a later run; a shard whose statement fails
 * (its worker gone, a row the target refuses, a lock held too long) keeps
 * its rows, and the others commit regardless: a slow shard holds no other.
 *
 * Shard moves: the run holds Citus's shard metadata lock on every shard of
 * the staging table (ShareLock, as Citus's own writers do; co-located
 * shards share it) while its statements run.  A move blocks the shard's
 * writes with ExclusiveLock on it before it switches the shard to its new
 * node, so it waits for the run, and a run starting after it finds the
 * new placements.  A statement is never sent to a placement a move has
 * left (Citus drops those later; rows written there would be lost).
 *
 * Rejected rows: each shard's statement returns the rows failing a row
 * rule, with their raw row, without claiming them.  The run adds them to
 * the quarantine (skipping any a crashed run added already) and commits,
 * then deletes them from the staging table: a crash between the two leaves
 * them staged and quarantined once, and the next run deletes them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timeout.h"
#include "utils/varlena.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "run/run.h"

PG_FUNCTION_INFO_V1(pipeline_run_shard_statement);

/*
 * Where the worker function writes the shards' names into the statement
 * (bytes no SQL of a definition holds: refused in the expressions).
 */
#define SHARD_SOURCE "\001source\001"
#define SHARD_TARGET "\001target\001"

/*
 * double_percents
 *		Citus formats the command with format(): a % of ours must be %%.
 */
static char *
double_percents(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; *s; s++)
	{
		if (*s == '%')
			appendStringInfoChar(&buf, '%');
		appendStringInfoChar(&buf, *s);
	}
	return buf.data;
}

/*
 * shard_command
 *		The command Citus runs on each pair of co-located placements (its
 *		%1$L and %2$L: the shards' names, as literals): the shard statement,
 *		run by pipeline.run_shard_statement as the pipeline's owner with the
 *		pipeline's search_path and statement_timeout.
 */
static char *
shard_command(const PipelineDef *def)
{
	PipelineMapping *map = pipeline_build_mapping(def);
	char	   *statement = pipeline_shard_sql(def, map, pipeline_row_rules(def, map),
											   SHARD_SOURCE, SHARD_TARGET);

	return psprintf("SELECT pipeline.run_shard_statement(%%1$L, %%2$L, %s, %s, %d)",
					double_percents(quote_literal_cstr(statement)),
					double_percents(quote_literal_cstr(def->search_path)),
					(int) Min(def->statement_timeout_ms, PG_INT32_MAX));
}

/*
 * lock_shards_against_moves
 *		Citus's shard metadata lock, ShareLock, on every shard of the staging
 *		table (so of the target's co-located shards too), held to the end of
 *		the run's transaction.  Taken as the extension: lock_shard_metadata
 *		asks for the tables' owner, and the lock writes nothing.
 */
static void
lock_shards_against_moves(const PipelineDef *def)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(def->source);
	PipelineUserContext ctx;

	pipeline_become_internal(&ctx);
	pipeline_exec("SELECT pg_catalog.lock_shard_metadata(5, ARRAY(SELECT shardid "
				  "FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $1 ORDER BY shardid))",
				  1, &type, &value, NULL, false, 0);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_merge_shards
 *		Merges every pair of co-located shards, as the pipeline's owner, and
 *		adds what they did to 'counts'.  Returns what failed ("shard N on
 *		host:port: error; ..."), or NULL; sets *rejected to the jsonb array
 *		of rejected rows (text).
 */
char *
pipeline_merge_shards(const PipelineDef *def, RunCounts *counts, char **rejected)
{
	Oid			types[3] = {REGCLASSOID, REGCLASSOID, TEXTOID};
	Datum		values[3];
	PipelineUserContext ctx;
	bool		isnull;
	char	   *failed;

	values[0] = ObjectIdGetDatum(def->source);
	values[1] = ObjectIdGetDatum(def->target);
	values[2] = CStringGetTextDatum(shard_command(def));
	lock_shards_against_moves(def);
	pipeline_become_owner(def, &ctx);
	pipeline_exec("WITH r AS (SELECT * FROM pg_catalog.run_command_on_colocated_placements($1, $2, $3)), "
				  "ok AS (SELECT r.result::jsonb AS j FROM r WHERE r.success) "
				  "SELECT (SELECT coalesce(sum((j->>'read')::bigint), 0) FROM ok)::bigint, "
				  "(SELECT coalesce(sum((j->>'filtered')::bigint), 0) FROM ok)::bigint, "
				  "(SELECT coalesce(sum((j->>'inserted')::bigint), 0) FROM ok)::bigint, "
				  "(SELECT coalesce(sum((j->>'updated')::bigint), 0) FROM ok)::bigint, "
				  "(SELECT coalesce(sum((j->>'deleted')::bigint), 0) FROM ok)::bigint, "
				  "(SELECT coalesce(sum((j->>'stale')::bigint), 0) FROM ok)::bigint, "
				  "(SELECT string_agg(format('shard %s on %s:%s: %s', shardid1, nodename, nodeport, result), "
				  "'; ' ORDER BY shardid1) FROM r WHERE NOT r.success), "
				  "(SELECT coalesce(jsonb_agg(e), '[]')::text FROM ok, jsonb_array_elements(ok.j->'rejected') e)",
				  3, types, values, NULL, false, 0);
	counts->read += pipeline_result_int64(0, 0);
	counts->filtered += pipeline_result_int64(0, 1);
	counts->inserted += pipeline_result_int64(0, 2);
	counts->updated += pipeline_result_int64(0, 3);
	counts->deleted += pipeline_result_int64(0, 4);
	counts->stale += pipeline_result_int64(0, 5);
	(void) pipeline_result_datum(0, 6, &isnull);
	failed = isnull ? NULL : pipeline_result_text(0, 6);
	*rejected = pipeline_result_text(0, 7);
	counts->batches++;
	pipeline_restore_user(&ctx);
	return failed;
}

/*
 * rule_texts
 *		The text[] of the row rules' reasons, or of their SQLSTATEs.
 */
static Datum
rule_texts(const PipelineDef *def, bool reasons)
{
	PipelineMapping *map = pipeline_build_mapping(def);
	List	   *texts = NIL;
	ListCell   *lc;

	foreach(lc, pipeline_row_rules(def, map))
	{
		RowRule    *rule = lfirst(lc);

		texts = lappend(texts, reasons ? rule->reason : (char *) rule->sqlstate);
	}
	return pipeline_list_to_text_array(texts);
}

/*
 * pipeline_quarantine_shard_rows
 *		Adds the rows the shards rejected to the quarantine, but those a run
 *		that crashed before deleting them added already; counts them.
 */
void
pipeline_quarantine_shard_rows(const PipelineDef *def, int64 run_id, const char *rejected,
							   RunCounts *counts)
{
	Oid			types[5] = {INT8OID, INT8OID, JSONBOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[5];

	if (strcmp(rejected, "[]") == 0)
		return;
	values[0] = Int64GetDatum(def->id);
	values[1] = Int64GetDatum(run_id);
	values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(rejected));
	values[3] = rule_texts(def, true);
	values[4] = rule_texts(def, false);
	pipeline_exec_internal("WITH e AS (SELECT (e->>0)::xid8 AS x, (e->>1)::bigint AS q, "
						   "(e->>2)::int + 1 AS rule, e->3 AS raw FROM jsonb_array_elements($3) e) "
						   "INSERT INTO pipeline.quarantine_log "
						   "(pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq) "
						   "SELECT $1, $2, $4[e.rule], $5[e.rule], e.raw, e.x, e.q FROM e "
						   "WHERE NOT EXISTS (SELECT 1 FROM pipeline.quarantine_log q WHERE "
						   "q.pipeline_id = $1 AND q.source_xid = e.x AND q.source_seq = e.q)",
						   5, types, values, NULL);
	counts->quarantined += DatumGetInt32(DirectFunctionCall1(jsonb_array_length, values[2]));
}

/*
 * pipeline_unstage_shard_rows
 *		Deletes the rejected rows, quarantined and committed, from the
 *		staging table, as the pipeline's owner (through Citus).
 */
void
pipeline_unstage_shard_rows(const PipelineDef *def, const char *rejected)
{
	Oid			type = JSONBOID;
	Datum		value;
	PipelineUserContext ctx;

	if (strcmp(rejected, "[]") == 0)
		return;
	value = DirectFunctionCall1(jsonb_in, CStringGetDatum(rejected));
	pipeline_become_owner(def, &ctx);
	pipeline_exec(psprintf("DELETE FROM %s s WHERE (s._xid, s._seq) IN "
						   "(SELECT (e->>0)::xid8, (e->>1)::bigint FROM pg_catalog.jsonb_array_elements($1) e)",
						   pipeline_qualified_name(def->source)),
				  1, &type, &value, NULL, false, 0);
	pipeline_restore_user(&ctx);
}

/*
 * replace_all
 *		's' with every 'from' replaced by 'to'.
 */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	StringInfoData buf;
	size_t		len = strlen(from);
	const char *hit;

	initStringInfo(&buf);
	while ((hit = strstr(s, from)) != NULL)
	{
		appendBinaryStringInfo(&buf, s, hit - s);
		appendStringInfoString(&buf, to);
		s = hit + len;
	}
	appendStringInfoString(&buf, s);
	return buf.data;
}

/*
 * pipeline_run_shard_statement
 *		SQL: pipeline.run_shard_statement(source_shard, target_shard,
 *		statement, search_path, timeout_ms) -> text.  On a worker, for a
 *		sharded pipeline's run: the statement over the two shards, as the
 *		caller (the pipeline's owner, whose connection Citus opened), in a
 *		security-restricted operation with the pipeline's search_path and
 *		statement timeout, all rolled back before it returns; its first
 *		column of its first row.  Runs only what the caller could run.
 */
Datum
pipeline_run_shard_statement(PG_FUNCTION_ARGS)
{
	Oid			userid;
	int			sec_context;
	int			nest_level;
	int			timeout_ms;
	char	   *statement;
	char	   *result = NULL;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("arguments of pipeline.run_shard_statement must not be null"),
					 errdetail("A sharded pipeline's run calls it on each pair of co-located shards."),
					 errhint("Run the pipeline with pipeline.run; do not call this function.")));
	statement = replace_all(replace_all(text_to_cstring(PG_GETARG_TEXT_PP(2)), SHARD_SOURCE,
										text_to_cstring(PG_GETARG_TEXT_PP(0))),
							SHARD_TARGET, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	timeout_ms = PG_GETARG_INT32(4);

	GetUserIdAndSecContext(&userid, &sec_context);
	SetUserIdAndSecContext(userid, sec_context | SECURITY_RESTRICTED_OPERATION);
	nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", text_to_cstring(PG_GETARG_TEXT_PP(3)), PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(statement, false, 0) >= 0 && SPI_processed > 0 && SPI_tuptable != NULL)
	{
		char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		/* in the caller's memory, which outlives SPI_finish */
		if (value)
			result = strcpy(SPI_palloc(strlen(value) + 1), value);
	}
	SPI_finish();
	if (timeout_ms > 0)
		disable_timeout(STATEMENT_TIMEOUT, false);
	AtEOXact_GUC(false, nest_level);
	SetUserIdAndSecContext(userid, sec_context);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
