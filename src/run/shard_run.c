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
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"
#include "strategy.h"

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
 * rule_texts
 *		The text[] of the row rules' reasons, or of their SQLSTATEs.
 */
static Datum
rule_texts(List *rules, bool reasons)
{
	List	   *texts = NIL;
	ListCell   *lc;

	foreach(lc, rules)
	{
		RowRule    *rule = lfirst(lc);

		texts = lappend(texts, reasons ? rule->reason : (char *) rule->sqlstate);
	}
	return pipeline_list_to_text_array(texts);
}

/*
 * pipeline_prepare_shard_batch
 *		The shard statement of a sharded run's batches (run on the workers,
 *		or routed through the coordinator: routed_run.c), its checks and
 *		its rules' reasons, built once for each version of the definition
 *		the run's batches see, as the owner (its expressions are parsed as
 *		the owner, who may read what they read).
 */
void
pipeline_prepare_shard_batch(const PipelineDef *def, ShardBatch *batch)
{
	PipelineMapping *map;
	List	   *rules;
	PipelineUserContext ctx;

	if (batch->statement != NULL && batch->version == def->version)
		return;
	pipeline_become_owner(def, &ctx);
	map = pipeline_build_mapping(def);
	rules = pipeline_row_rules(def, map);
	batch->checks = pipeline_load_shard_checks(def, PIPELINE_SHARD_TARGET);
	batch->statement = pipeline_shard_statement(def, map, rules, batch->checks);
	batch->reasons = rule_texts(rules, true);
	batch->sqlstates = rule_texts(rules, false);
	batch->version = def->version;
	pipeline_restore_user(&ctx);
}

/*
 * shard_command
 *		The command Citus runs on each pair of co-located placements (its
 *		%1$L and %2$L: the shards' names, as literals): the shard statement,
 *		run by pipeline.run_shard_statement as the pipeline's owner with the
 *		pipeline's search_path and statement_timeout; none for the staging
 *		shards the batch skips (they failed in an earlier batch of the run).
 */
static char *
shard_command(const PipelineDef *def, const ShardBatch *batch)
{
	return psprintf("SELECT pipeline.run_shard_statement(%%1$L, %%2$L, %s, %s, %d, %s, " INT64_FORMAT ")",
					double_percents(quote_literal_cstr(batch->statement)),
					double_percents(quote_literal_cstr(def->search_path)),
					(int) Min(def->statement_timeout_ms, PG_INT32_MAX),
					double_percents(text_array_sql(batch->skipped)), def->batch_size);
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

	pipeline_exec_as_relation_owner(def->source,
									"SELECT pg_catalog.lock_shard_metadata(5, ARRAY(SELECT shardid "
									"FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $1 ORDER BY shardid))",
									1, &type, &value, NULL);
}

/*
 * bigint_array_at
 *		Element i of a bigint[] (0-based), 0 when the array is NULL or
 *		shorter.
 */
static int64
bigint_array_at(Datum array, bool isnull, int i)
{
	List	   *values = isnull ? NIL : pipeline_text_array_to_list(array, "check counts");

	return i < list_length(values) ? pg_strtoint64(list_nth(values, i)) : 0;
}

/*
 * read_check_counts
 *		What the shards' checks counted and judged (result columns 'first'
 *		on: rows checked, then failing, unchecked and statuses as text[]),
 *		into 'batch'.
 */
static void
read_check_counts(ShardBatch *batch, int first)
{
	CheckCounts *cc = &batch->check_counts;
	bool		nulls[3];
	Datum		arrays[3];

	memset(cc, 0, sizeof(CheckCounts));
	cc->nchecks = list_length(batch->checks);
	cc->checked = pipeline_result_int64(0, first);
	for (int a = 0; a < 3; a++)
		arrays[a] = pipeline_result_datum(0, first + 1 + a, &nulls[a]);
	batch->judged = !nulls[2];
	for (int i = 0; i < cc->nchecks; i++)
	{
		cc->failing[i] = bigint_array_at(arrays[0], nulls[0], i);
		cc->unchecked[i] = bigint_array_at(arrays[1], nulls[1], i);
		batch->statuses[i] = (int) bigint_array_at(arrays[2], nulls[2], i);
	}
}

/*
 * pipeline_read_shard_results
 *		Adds to 'counts' what a batch's statements did, and says in 'batch'
 *		what failed (adding the failed shards to those skipped), what they
 *		rejected, whether a shard had more rows, and what the checks
 *		counted and judged.  'results' is the SQL of the statements' rows
 *		(shardid1, nodename, nodeport, success, result), over $1 the staging
 *		table, $2 the target and $3 'arg' (of type 'arg_type').
 */
void
pipeline_read_shard_results(const PipelineDef *def, RunCounts *counts, ShardBatch *batch,
							const char *results, Oid arg_type, Datum arg)
{
	Datum		failed_shards;
	Oid			types[3] = {REGCLASSOID, REGCLASSOID, arg_type};
	Datum		values[3] = {ObjectIdGetDatum(def->source), ObjectIdGetDatum(def->target), arg};
	bool		isnull;

	pipeline_exec(psprintf("WITH r AS (SELECT r.*, CASE WHEN r.success THEN r.result::jsonb END AS j "
						   "FROM (%s) r), "
						   "ok AS (SELECT j FROM r WHERE r.success AND r.j->>'check_failed' IS NULL), "
						   "bad AS (SELECT * FROM r WHERE NOT r.success OR r.j->>'check_failed' IS NOT NULL), "
						   "judged AS (SELECT r.j->'checks' AS c FROM r WHERE r.success AND r.j ? 'checks'), "
						   "per_check AS (SELECT e.i, sum((judged.c->'failing'->>(e.i::int - 1))::bigint) AS f, "
						   "sum((judged.c->'unchecked'->>(e.i::int - 1))::bigint) AS u, max(e.v::int) AS status "
						   "FROM judged, jsonb_array_elements_text(judged.c->'statuses') WITH ORDINALITY e(v, i) GROUP BY e.i) "
						   "SELECT (SELECT coalesce(sum((j->>'read')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT coalesce(sum((j->>'filtered')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT coalesce(sum((j->>'inserted')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT coalesce(sum((j->>'updated')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT coalesce(sum((j->>'deleted')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT coalesce(sum((j->>'stale')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT string_agg(CASE WHEN shardid1 IS NULL THEN '' ELSE format('shard %%s on %%s:%%s: ', "
						   "shardid1, nodename, nodeport) END || CASE WHEN success THEN format('data quality check%%s %%s "
						   "failed on its batch, nothing of which was merged (SQLSTATE PL001)', CASE WHEN j->>'check_failed' "
						   "LIKE '%%\",%%' THEN 's' ELSE '' END, j->>'check_failed') ELSE result END, '; ' ORDER BY shardid1) "
						   "FROM bad), "
						   "(SELECT coalesce(jsonb_agg(e), '[]')::text FROM ok, jsonb_array_elements(ok.j->'rejected') e), "
						   "(SELECT coalesce(max((j->>'read')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT coalesce(bool_or((j->>'more')::boolean OR "
						   "jsonb_array_length(j->'rejected') >= " CppAsString2(PIPELINE_SHARD_MAX_REJECTED) "), false) FROM ok), "
						   "(SELECT array_agg(pg_catalog.shard_name($1, shardid1)) FILTER (WHERE shardid1 IS NOT NULL) FROM bad), "
						   "(SELECT coalesce(sum((j->>'dropped')::bigint), 0) FROM ok)::bigint, "
						   "(SELECT coalesce(bool_or(NOT success), false) FROM bad), "
						   "(SELECT coalesce(sum((c->>'checked')::bigint), 0) FROM judged)::bigint, "
						   "(SELECT array_agg(f ORDER BY i) FROM per_check)::text[], "
						   "(SELECT array_agg(u ORDER BY i) FROM per_check)::text[], "
						   "(SELECT array_agg(status ORDER BY i) FROM per_check)::text[]", results),
				  3, types, values, NULL, false, 0);
	counts->read += pipeline_result_int64(0, 0);
	counts->filtered += pipeline_result_int64(0, 1);
	counts->inserted += pipeline_result_int64(0, 2);
	counts->updated += pipeline_result_int64(0, 3);
	counts->deleted += pipeline_result_int64(0, 4);
	counts->stale += pipeline_result_int64(0, 5);
	counts->dropped += pipeline_result_int64(0, 11);
	(void) pipeline_result_datum(0, 6, &isnull);
	batch->failed = isnull ? NULL : pipeline_result_text(0, 6);
	batch->failed_otherwise |= DatumGetBool(pipeline_result_datum(0, 12, &isnull));
	batch->rejected = pipeline_result_text(0, 7);
	batch->full = pipeline_result_int64(0, 8) >= def->batch_size ||
		DatumGetBool(pipeline_result_datum(0, 9, &isnull));
	read_check_counts(batch, 13);
	failed_shards = pipeline_result_datum(0, 10, &isnull);
	if (!isnull)
		batch->skipped = list_concat(batch->skipped,
									 pipeline_text_array_to_list(failed_shards, "failed shards"));
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
	PipelineUserContext ctx;

	/* (scd2: no other pipeline rewrites the target's versions meanwhile) */
	if (def->strategy->begin_batch)
		def->strategy->begin_batch(def);
	lock_shards_against_moves(def);
	pipeline_prepare_shard_batch(def, batch);
	pipeline_become_owner(def, &ctx);
	pipeline_read_shard_results(def, counts, batch,
								"SELECT * FROM pg_catalog.run_command_on_colocated_placements($1, $2, $3)",
								TEXTOID, CStringGetTextDatum(shard_command(def, batch)));
	counts->batches++;
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_quarantine_shard_rows
 *		Adds the rows the shards rejected to the quarantine -- failing a row
 *		rule (its reason), or raising an error (its message and SQLSTATE,
 *		shard_statement.c) -- but those a run that crashed before deleting
 *		them from the staging table added already; counts those it adds.
 */
void
pipeline_quarantine_shard_rows(const PipelineDef *def, int64 run_id, const ShardBatch *batch,
							   RunCounts *counts)
{
	const char *rejected = batch->rejected;
	Oid			types[5] = {INT8OID, INT8OID, JSONBOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[5];

	if (strcmp(rejected, "[]") == 0)
		return;
	values[0] = Int64GetDatum(def->id);
	values[1] = Int64GetDatum(run_id);
	values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(rejected));
	values[3] = batch->reasons;
	values[4] = batch->sqlstates;
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
 *		staging table, as its owner (through Citus), each by its (_xid,
 *		_seq), which the staging table's unique index keeps unique.
 */
void
pipeline_unstage_shard_rows(const PipelineDef *def, const char *rejected)
{
	Oid			type = JSONBOID;
	Datum		value;

	if (strcmp(rejected, "[]") == 0)
		return;
	value = DirectFunctionCall1(jsonb_in, CStringGetDatum(rejected));
	pipeline_exec_as_relation_owner(def->source,
									psprintf("DELETE FROM %s s WHERE (s._xid, s._seq) IN (SELECT (e->>0)::xid8, "
											 "(e->>1)::bigint FROM pg_catalog.jsonb_array_elements($1) e)",
											 pipeline_qualified_name(def->source)),
									1, &type, &value, NULL);
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
	if (!always && pipeline_last_run_succeeded(def->id))
		return;

	/*
	 * Rows a run quarantined from the staging table, not yet requeued (a
	 * requeue stages its rows again, under new positions).
	 */
	pipeline_exec_internal("SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(q.source_xid, q.source_seq))::text "
						   "FROM pipeline.quarantine_log q "
						   "WHERE q.pipeline_id = $1 AND q.requeued_at IS NULL AND q.source_xid IS NOT NULL",
						   1, &type, &value, NULL);
	staged = pipeline_result_datum(0, 0, &isnull);
	if (!isnull)
		pipeline_unstage_shard_rows(def, TextDatumGetCString(staged));
}

/*
 * pipeline_restage_quarantined
 *		A requeue of a sharded pipeline: stages its quarantined rows (all,
 *		or those of quarantine ids 'ids', a bigint[]; 0: all) again, as
 *		written in the quarantine (mended, maybe), as the staging table's
 *		owner, and marks them requeued by run 'run_id' in the same
 *		distributed transaction: each comes back once, under a new (_xid,
 *		_seq), for the run's shard statements to judge again.
 */
void
pipeline_restage_quarantined(const PipelineDef *def, int64 run_id, Datum ids)
{
	Oid			types[3] = {INT8OID, INT8ARRAYOID, INT8OID};
	Datum		values[3] = {Int64GetDatum(def->id), ids, Int64GetDatum(run_id)};
	char		nulls[3] = {' ', ids == (Datum) 0 ? 'n' : ' ', ' '};
	Oid			rows_type = JSONBOID;
	Datum		rows;
	bool		isnull;
	char	   *list = pipeline_quote_list(pipeline_relation_columns(def->source), NULL);

	pipeline_exec_internal("SELECT pg_catalog.jsonb_agg(q.raw_row ORDER BY q.id), pg_catalog.array_agg(q.id) "
						   "FROM pipeline.quarantine_log q WHERE q.pipeline_id = $1 AND q.requeued_at IS NULL "
						   "AND ($2 IS NULL OR q.id = ANY ($2))", 2, types, values, nulls);
	rows = pipeline_result_datum(0, 0, &isnull);
	if (isnull)
		return;
	/* copied: the statements below replace the result they point into */
	rows = datumCopy(rows, false, -1);
	values[1] = datumCopy(pipeline_result_datum(0, 1, &isnull), false, -1);
	nulls[1] = ' ';
	/* (the staging table's columns but _xid and _seq, which it stamps anew) */
	pipeline_exec_as_relation_owner(def->source,
									psprintf("INSERT INTO %s (%s) SELECT %s FROM "
											 "pg_catalog.jsonb_populate_recordset(NULL::%s, $1)",
											 pipeline_qualified_name(def->source), list, list,
											 pipeline_qualified_name(def->source)),
									1, &rows_type, &rows, NULL);
	pipeline_exec_internal("UPDATE pipeline.quarantine_log SET requeued_at = clock_timestamp(), requeue_run_id = $3 "
						   "WHERE pipeline_id = $1 AND id = ANY ($2)", 3, types, values, nulls);
}
