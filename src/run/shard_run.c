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
 * rule, and those raising an error (found one by one on the worker when
 * the statement fails, shard_statement.c), with their raw row, without
 * claiming them.  The run adds them to
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
#include "utils/varlena.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "run/run.h"

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
 * count_of
 *		How many times 'needle' occurs in 's'.
 */
static int
count_of(const char *s, const char *needle)
{
	int			n = 0;

	while ((s = strstr(s, needle)) != NULL)
	{
		n++;
		s += strlen(needle);
	}
	return n;
}

/*
 * text_array_sql
 *		"ARRAY['a', 'b']::text[]": the names as an SQL array.
 */
static char *
text_array_sql(List *names)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "ARRAY[");
	foreach(lc, names)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? ", " : "",
						 quote_literal_cstr(lfirst(lc)));
	appendStringInfoString(&buf, "]::text[]");
	return buf.data;
}

/*
 * shard_command
 *		The command Citus runs on each pair of co-located placements (its
 *		%1$L and %2$L: the shards' names, as literals): the shard statement,
 *		run by pipeline.run_shard_statement as the pipeline's owner with the
 *		pipeline's search_path and statement_timeout; none for the staging
 *		shards 'skipped' names (they failed in an earlier batch of the run).
 */
static char *
shard_command(const PipelineDef *def, List *skipped)
{
	PipelineMapping *map = pipeline_build_mapping(def);
	char	   *statement = pipeline_shard_sql(def, map, pipeline_row_rules(def, map),
											   PIPELINE_SHARD_SOURCE, PIPELINE_SHARD_TARGET,
											   PIPELINE_SHARD_ROWS);
	int			marks = 0;

	/*
	 * the shards' names go where the sentinels stand, and only there: a byte
	 * 0x01 anywhere else (a constraint of the target, a name) is refused
	 */
	for (const char *c = statement; *c; c++)
		marks += (*c == '\001');
	if (marks != 2 * (count_of(statement, PIPELINE_SHARD_SOURCE) + count_of(statement, PIPELINE_SHARD_TARGET) +
					  count_of(statement, PIPELINE_SHARD_ROWS)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sharded pipeline \"%s\" has the character U+0001 in a name or constraint of its tables",
						def->name),
				 errdetail("Its shard statement marks where the shards' names go with that character."),
				 errhint("Rename the column or rewrite the constraint without it.")));
	return psprintf("SELECT pipeline.run_shard_statement(%%1$L, %%2$L, %s, %s, %d, %s, " INT64_FORMAT ")",
					double_percents(quote_literal_cstr(statement)),
					double_percents(quote_literal_cstr(def->search_path)),
					(int) Min(def->statement_timeout_ms, PG_INT32_MAX),
					double_percents(text_array_sql(skipped)), def->batch_size);
}

/*
 * lock_shards_against_moves
 *		Citus's shard metadata lock, ShareLock, on every shard of the staging
 *		table (so of the target's co-located shards too), held to the end of
 *		the batch's transaction.  As the staging table's owner, as
 *		lock_shard_metadata asks.
 */
static void
lock_shards_against_moves(const PipelineDef *def)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(def->source);
	PipelineUserContext ctx;

	pipeline_become_relation_owner(def->source, &ctx);
	pipeline_exec("SELECT pg_catalog.lock_shard_metadata(5, ARRAY(SELECT shardid "
				  "FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $1 ORDER BY shardid))",
				  1, &type, &value, NULL, false, 0);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_merge_shards
 *		One batch: every pair of co-located shards merges its first
 *		batch_size rows, as the pipeline's owner, but the shards that failed
 *		in an earlier batch; adds what they did to 'counts', and says in
 *		'batch' what failed (adding the failed shards to those skipped),
 *		what they rejected and whether a shard had more rows.
 */
void
pipeline_merge_shards(const PipelineDef *def, RunCounts *counts, ShardBatch *batch)
{
	Datum		failed_shards;
	Oid			types[3] = {REGCLASSOID, REGCLASSOID, TEXTOID};
	Datum		values[3];
	PipelineUserContext ctx;
	bool		isnull;

	values[0] = ObjectIdGetDatum(def->source);
	values[1] = ObjectIdGetDatum(def->target);
	lock_shards_against_moves(def);
	pipeline_become_owner(def, &ctx);
	/* (its expressions parsed as the owner, who may read what they read) */
	values[2] = CStringGetTextDatum(shard_command(def, batch->skipped));
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
				  "(SELECT coalesce(jsonb_agg(e), '[]')::text FROM ok, jsonb_array_elements(ok.j->'rejected') e), "
				  "(SELECT coalesce(max((j->>'read')::bigint), 0) FROM ok)::bigint, "
				  "(SELECT coalesce(bool_or((j->>'more')::boolean), false) FROM ok), "
				  "(SELECT array_agg(pg_catalog.shard_name($1, shardid1)) FROM r WHERE NOT r.success)",
				  3, types, values, NULL, false, 0);
	counts->read += pipeline_result_int64(0, 0);
	counts->filtered += pipeline_result_int64(0, 1);
	counts->inserted += pipeline_result_int64(0, 2);
	counts->updated += pipeline_result_int64(0, 3);
	counts->deleted += pipeline_result_int64(0, 4);
	counts->stale += pipeline_result_int64(0, 5);
	(void) pipeline_result_datum(0, 6, &isnull);
	batch->failed = isnull ? NULL : pipeline_result_text(0, 6);
	batch->rejected = pipeline_result_text(0, 7);
	batch->full = pipeline_result_int64(0, 8) >= def->batch_size ||
		DatumGetBool(pipeline_result_datum(0, 9, &isnull));
	failed_shards = pipeline_result_datum(0, 10, &isnull);
	if (!isnull)
	{
		MemoryContext caller = MemoryContextSwitchTo(batch->context);

		batch->skipped = list_concat(batch->skipped,
									 pipeline_text_array_to_list(failed_shards, "failed shards"));
		MemoryContextSwitchTo(caller);
	}
	counts->batches++;
	pipeline_restore_user(&ctx);
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
 *		Adds the rows the shards rejected to the quarantine -- failing a row
 *		rule (its reason), or raising an error (its message and SQLSTATE,
 *		shard_statement.c) -- but those a run that crashed before deleting
 *		them from the staging table added already; counts those it adds.
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
	counts->quarantined +=
		pipeline_exec_internal("WITH e AS (SELECT (e->>0)::xid8 AS x, (e->>1)::bigint AS q, "
							   "(e->>2)::int + 1 AS rule, e->3 AS raw, e->>4 AS error, e->>5 AS error_state "
							   "FROM jsonb_array_elements($3) e) "
							   "INSERT INTO pipeline.quarantine_log "
							   "(pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq) "
							   "SELECT $1, $2, CASE WHEN e.rule > 0 THEN $4[e.rule] ELSE e.error END, "
							   "CASE WHEN e.rule > 0 THEN $5[e.rule] ELSE e.error_state END, e.raw, e.x, e.q "
							   "FROM e WHERE NOT EXISTS (SELECT 1 FROM pipeline.quarantine_log q WHERE "
							   "q.pipeline_id = $1 AND q.source_xid = e.x AND q.source_seq = e.q)",
							   5, types, values, NULL);
}

/*
 * pipeline_unstage_shard_rows
 *		Deletes the rejected rows, quarantined and committed, from the
 *		staging table, as the pipeline's owner (through Citus), each by its
 *		(_xid, _seq), which the staging table's unique index keeps unique.
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
 * pipeline_unstage_quarantined
 *		Deletes from the staging table the rows of the pipeline's quarantine
 *		still staged -- quarantined by a run that failed before it deleted
 *		them -- so that neither a requeue nor a run whose rules now let them
 *		through merges a row the quarantine holds too.  Before a requeue
 *		('always'), and before a run when the last one did not succeed (the
 *		only way to leave such rows).
 */
void
pipeline_unstage_quarantined(const PipelineDef *def, bool always)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(def->id);
	Datum		staged;
	bool		isnull;

	/* the last run succeeded: it deleted what it quarantined */
	if (!always &&
		pipeline_exec_internal("SELECT 1 FROM (SELECT status FROM pipeline.run_log WHERE pipeline_id = $1 "
							   "ORDER BY run_id DESC LIMIT 1) r WHERE r.status = 'succeeded'",
							   1, &type, &value, NULL) == 1)
		return;
	pipeline_exec_internal("SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(source_xid, source_seq))::text "
						   "FROM pipeline.quarantine_log WHERE pipeline_id = $1 AND source_xid IS NOT NULL",
						   1, &type, &value, NULL);
	staged = pipeline_result_datum(0, 0, &isnull);
	if (!isnull)
		pipeline_unstage_shard_rows(def, TextDatumGetCString(staged));
}
