/*-------------------------------------------------------------------------
 *
 * batch_exec.c
 *	  Runs a batch statement, keeping every good row of a batch that has bad
 *	  ones.
 *
 * The batch statement runs in a subtransaction.  When it fails on a row
 * (a data exception or an integrity violation), the row mark (row_watch.c) names
 * the row: it is quarantined with the error and the statement is retried
 * without it.  After a few named rows, or when the error cannot be pinned
 * to a row (an AFTER trigger such as a foreign key), the range is split in
 * two and each half is merged the same way, down to single rows.  Errors
 * that are not about a row (cancel, shutdown, out of memory, permission)
 * fail the run.
 *
 * Prepared statements are cached per backend, per pipeline, and rebuilt
 * when the definition or the columns of the mapping change.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"
#include "sources/sources.h"
#include "strategy.h"

/* Named rows retried in one range before it is split. */
#define NAMED_RETRIES_BEFORE_SPLIT 4

/*
 * One of a pipeline's statements: its text, and its plan, prepared as the
 * owner when the statement is first run (those of a batch just before it,
 * prepare_for_batch).  A run that finds nothing pending prepares only its
 * probe (and its count, when its cursor stopped inside a transaction), and
 * takes no lock on the target for them.
 */
typedef struct LazyStatement
{
	char	   *sql;
	int			nargs;
	Oid		   *types;
	bool		generic;		/* one plan for every call (see the probe) */
	SPIPlanPtr	plan;			/* NULL until first run */
} LazyStatement;

/* The statements of one pipeline, for one kind of source. */
typedef struct PipelineStatements
{
	int64		pipeline_id;
	BatchSource from;
	char	   *signature;		/* what they were built from */
	LazyStatement batch;		/* a range of the pending rows; row_watch.c
								 * watches it by text */
	LazyStatement whole;		/* all pending rows, nothing excluded */
	LazyStatement probe;		/* whether any row is pending */
	LazyStatement count;
	LazyStatement nth;
	LazyStatement extract_end;	/* the last row of the first pending
								 * transaction (format snapshot) */
	LazyStatement quarantine;
	List	   *rules;			/* of RowRule *: reject_row's rule numbers */
	List	   *checks;			/* of QualityCheck *: check_row's check
								 * numbers */
} PipelineStatements;

static MemoryContext statements_context = NULL;
static List *statements = NIL;

/* the quarantine statement's parameters (pipeline_quarantine_sql) */
static Oid	quarantine_types[6] = {INT8OID, INT8OID, XID8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
TEXTARRAYOID};

/*
 * mapping_signature
 *		Text that changes whenever the statements must be rebuilt.
 */
static char *
mapping_signature(const PipelineDef *def, const PipelineMapping *map)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%d/%u/%u/%u/%u", def->version, def->owner, def->source,
					 def->target, def->tombstones);

	/*
	 * The statements name these relations in their text, and a kept plan
	 * looks its names up again whenever it is invalidated: after a rename
	 * they would find whatever table now has the old name.
	 */
	appendStringInfo(&buf, "|%s|%s", pipeline_qualified_name(def->source),
					 pipeline_qualified_name(def->target));
	/* a target distributed by Citus since takes other statements */
	appendStringInfo(&buf, "|citus %d", (int) pipeline_citus_kind(def->target));
	if (OidIsValid(def->tombstones))
		appendStringInfo(&buf, "|%s", pipeline_qualified_name(def->tombstones));
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		Oid			type;
		int32		typmod;

		/* scd2 statements convert values to the target column's type */
		pipeline_target_column_type(def, cm->column, &type, &typmod);
		appendStringInfo(&buf, "|%s=%s:%u/%d", cm->column, cm->expr, type, typmod);
	}
	foreach(lc, map->source_columns)
		appendStringInfo(&buf, "|%s", (char *) lfirst(lc));
	/* and the dimensions, their change logs and the row state, by name too */
	foreach(lc, def->joins)
	{
		DimensionJoin *join = lfirst(lc);

		appendStringInfo(&buf, "|join %u %s %u %s", join->dimension,
						 pipeline_qualified_name(join->dimension), join->change_log,
						 pipeline_qualified_name(join->change_log));
	}
	if (OidIsValid(def->row_state))
		appendStringInfo(&buf, "|rows %s", pipeline_qualified_name(def->row_state));
	/* the change log it publishes to, and the columns published */
	if (OidIsValid(def->change_log))
	{
		appendStringInfo(&buf, "|log %u %s", def->change_log,
						 pipeline_qualified_name(def->change_log));
		foreach(lc, pipeline_change_log_columns(def))
			appendStringInfo(&buf, "|%s", (char *) lfirst(lc));
	}
	return buf.data;
}

/*
 * copy_rules
 *		A copy of a list of row rules in the current memory context.
 */
static List *
copy_rules(List *rules)
{
	List	   *copy = NIL;
	ListCell   *lc;

	foreach(lc, rules)
	{
		RowRule    *rule = palloc(sizeof(RowRule));

		rule->passes = pstrdup(((RowRule *) lfirst(lc))->passes);
		rule->reason = pstrdup(((RowRule *) lfirst(lc))->reason);
		rule->sqlstate = pstrdup(((RowRule *) lfirst(lc))->sqlstate);
		copy = lappend(copy, rule);
	}
	return copy;
}

/*
 * forget_entry
 *		Frees one cache entry and its plans.
 */
static void
forget_entry(PipelineStatements *st)
{
	LazyStatement *kept[] = {&st->batch, &st->whole, &st->probe, &st->count, &st->nth,
	&st->extract_end, &st->quarantine};

	for (int i = 0; i < lengthof(kept); i++)
	{
		if (kept[i]->plan)
			SPI_freeplan(kept[i]->plan);
		if (kept[i]->sql)
			pfree(kept[i]->sql);
	}
	statements = list_delete_ptr(statements, st);
	pfree(st->signature);
	pfree(st);
}

/*
 * replace_statement
 *		In an error raised while SPI ran or prepared 'sql', replaces what
 *		SPI says of the statement (its "SQL statement" context line, or the
 *		query of an error position) with 'where'.  True when it did.
 */
static bool
replace_statement(ErrorData *edata, const char *sql, const char *where)
{
	char	   *line;
	char	   *at;
	StringInfoData buf;

	if (edata->internalquery != NULL && strcmp(edata->internalquery, sql) == 0)
	{
		edata->internalquery = NULL;
		edata->internalpos = 0;
		edata->context = edata->context ? psprintf("%s\n%s", where, edata->context) : pstrdup(where);
		return true;
	}
	if (edata->context == NULL)
		return false;
	line = psprintf("SQL statement \"%s\"", sql);
	at = strstr(edata->context, line);
	if (at == NULL)
		return false;
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, edata->context, at - edata->context);
	appendStringInfoString(&buf, where);
	appendStringInfoString(&buf, at + strlen(line));
	edata->context = buf.data;
	return true;
}

/*
 * rethrow_shortened
 *		In a PG_CATCH block around one of the pipeline's statements ('sql'):
 *		re-raises the error saying which pipeline (and batch) it comes from,
 *		'where', instead of quoting the statement, kilobytes of generated SQL
 *		that help no user (client_min_messages = debug1 shows it).  The lines
 *		of the user's own code (a function called by a mapping, a trigger on
 *		the target) stay.  'cxt' is the memory context of the PG_TRY.
 */
static void
rethrow_shortened(const char *sql, const char *where, MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	(void) replace_statement(edata, sql, where);
	ReThrowError(edata);
}

/*
 * forget_dropped
 *		Frees the entries of pipelines dropped since they were cached.  An
 *		entry is checked against its definition's version when it is used
 *		(mapping_signature), so a changed pipeline never runs stale
 *		statements; a dropped one is never used again, and only its memory
 *		is at stake: reclaimed whenever an entry is built, which is when
 *		definitions changed.
 */
static void
forget_dropped(void)
{
	int			n = list_length(statements);
	int64	   *ids;
	int64	   *dropped;
	ListCell   *lc;
	int			gone;

	if (n == 0)
		return;
	ids = palloc(n * sizeof(int64));
	dropped = palloc(n * sizeof(int64));
	foreach(lc, statements)
		ids[foreach_current_index(lc)] = ((PipelineStatements *) lfirst(lc))->pipeline_id;
	gone = pipeline_dropped_definitions(ids, n, dropped);
	for (int i = 0; i < gone; i++)
	{
		int64		id = dropped[i];

		foreach(lc, statements)
		{
			if (((PipelineStatements *) lfirst(lc))->pipeline_id == id)
			{
				forget_entry(lfirst(lc));
				break;
			}
		}
	}
}

/*
 * keep_statement
 *		A statement whose text lives as long as its cache entry, to be
 *		prepared when first run (run_plan).
 */
static void
keep_statement(LazyStatement *k, const char *sql, int nargs, Oid *types, bool generic)
{
	k->sql = MemoryContextStrdup(statements_context, sql);
	k->nargs = nargs;
	k->types = types;
	k->generic = generic;
	k->plan = NULL;
}

/*
 * prepare_statement
 *		Prepares and keeps a statement; an error (a mapping's function that
 *		no longer exists, say) names the pipeline instead of the statement.
 *		The caller runs as the owner.
 */
static void
prepare_statement(const PipelineDef *def, LazyStatement *k)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		k->plan = pipeline_prepare_kept(k->sql, k->nargs, k->types, k->generic);
	}
	PG_CATCH();
	{
		rethrow_shortened(k->sql, psprintf("pipeline \"%s\", preparing its statements", def->name),
						  cxt);
	}
	PG_END_TRY();
}

/*
 * get_statements
 *		The pipeline's statements for a kind of source, built when missing
 *		or out of date.
 */
static PipelineStatements *
get_statements(const PipelineDef *def, BatchSource from)
{
	PipelineMapping *map = pipeline_build_mapping(def);
	char	   *signature = mapping_signature(def, map);
	PipelineStatements *st = NULL;
	ListCell   *lc;
	MemoryContext old;
	PipelineUserContext ctx;
	List	   *rules;
	List	   *checks;
	Oid		   *types;

	foreach(lc, statements)
	{
		PipelineStatements *candidate = lfirst(lc);

		if (candidate->pipeline_id == def->id && candidate->from == from)
		{
			st = candidate;
			break;
		}
	}
	if (st != NULL && strcmp(st->signature, signature) == 0)
		return st;
	if (st != NULL)
		forget_entry(st);
	forget_dropped();
	pipeline_check_citus_target(def);
	pipeline_check_citus_checks(def);
	pipeline_refuse_citus_dimensions(def);

	if (statements_context == NULL)
		statements_context = AllocSetContextCreate(TopMemoryContext, "pipeline statements",
												   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(statements_context);
	st = palloc0(sizeof(PipelineStatements));
	st->pipeline_id = def->id;
	st->from = from;
	st->signature = pstrdup(signature);
	MemoryContextSwitchTo(old);

	rules = pipeline_row_rules(def, map);	/* SPI: returns in SPI's context */
	checks = pipeline_load_checks(def, map);
	old = MemoryContextSwitchTo(statements_context);
	st->rules = copy_rules(rules);
	st->checks = pipeline_copy_checks(checks);
	MemoryContextSwitchTo(old);

	pipeline_become_owner(def, &ctx);
	types = pipeline_batch_param_types();
	keep_statement(&st->batch, pipeline_batch_sql(def, map, from, st->rules, st->checks,
												  PENDING_RANGE),
				   BATCH_NPARAMS, types, false);
	keep_statement(&st->whole, pipeline_batch_sql(def, map, from, st->rules, st->checks,
												  PENDING_WHOLE),
				   BATCH_NPARAMS, types, false);
	ereport(DEBUG1,
			(errmsg_internal("pipeline \"%s\" batch statement: %s", def->name, st->whole.sql)));

	/*
	 * The probe reads the index in order and stops at the first row: that
	 * plan is the best for any bounds, so it is planned once.
	 */
	keep_statement(&st->probe, pipeline_pending_sql(def, from, "s._xid", PENDING_FIRST),
				   BATCH_NPARAMS, types, true);
	keep_statement(&st->count, pipeline_pending_sql(def, from, "count(*)", PENDING_RANGE),
				   BATCH_NPARAMS, types, false);
	keep_statement(&st->nth, psprintf("%s ORDER BY 1, 2 OFFSET %s LIMIT 1",
									  pipeline_pending_sql(def, from, "s._xid, s._seq",
														   PENDING_ORDERED),
									  pipeline_batch_param(BATCH_PARAM_OFFSET)),
				   BATCH_NPARAMS + 1, types, false);
	if (pipeline_reads_extracts(def) && from == BATCH_FROM_STAGING)
		keep_statement(&st->extract_end, pipeline_extract_end_sql(def, from), BATCH_NPARAMS, types,
					   false);
	keep_statement(&st->quarantine, pipeline_quarantine_sql(def, from), 6, quarantine_types,
				   false);
	pipeline_restore_user(&ctx);

	old = MemoryContextSwitchTo(statements_context);
	statements = lappend(statements, st);
	MemoryContextSwitchTo(old);
	return st;
}

/*
 * run_plan
 *		Executes one of the pipeline's statements as its owner, prepared
 *		first when it is not yet; an error names 'where' instead of the
 *		statement (rethrow_shortened).
 */
static void
run_plan(const PipelineDef *def, LazyStatement *k, Datum *values, const char *nulls, long limit,
		 const char *where)
{
	MemoryContext cxt = CurrentMemoryContext;
	PipelineUserContext ctx;

	pipeline_become_owner(def, &ctx);
	if (k->plan == NULL)
		prepare_statement(def, k);
	PG_TRY();
	{
		int			ret = SPI_execute_plan(k->plan, values, nulls, false, limit);

		if (ret < 0)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
	PG_CATCH();
	{
		rethrow_shortened(k->sql, where, cxt);
	}
	PG_END_TRY();
	pipeline_restore_user(&ctx);
}

/*
 * looking_for_pending
 *		What errors of the statements finding a pipeline's pending rows say
 *		they come from.
 */
static char *
looking_for_pending(const PipelineDef *def)
{
	return psprintf("pipeline \"%s\", looking for its pending rows", def->name);
}

/*
 * pipeline_count_pending
 *		Rows pending between the bounds of params.
 */
int64
pipeline_count_pending(const PipelineDef *def, BatchSource from, const BatchParams *params)
{
	PipelineStatements *st = get_statements(def, from);
	Datum		values[BATCH_NPARAMS + 1];
	char		nulls[BATCH_NPARAMS + 1];

	pipeline_batch_param_values(params, values, nulls);
	run_plan(def, &st->count, values, nulls, 1, looking_for_pending(def));
	return pipeline_result_int64(0, 0);
}

/*
 * pipeline_any_pending
 *		Whether any row is pending between the bounds of params.
 */
bool
pipeline_any_pending(const PipelineDef *def, BatchSource from, const BatchParams *params)
{
	PipelineStatements *st = get_statements(def, from);
	Datum		values[BATCH_NPARAMS + 1];
	char		nulls[BATCH_NPARAMS + 1];

	pipeline_batch_param_values(params, values, nulls);
	run_plan(def, &st->probe, values, nulls, 1, looking_for_pending(def));
	return SPI_processed > 0;
}

/*
 * nth_pending
 *		The position of the n-th (from 0) pending row between the bounds of
 *		params; false when there are fewer rows.  Errors name 'where'.
 */
static bool
nth_pending(const PipelineDef *def, PipelineStatements *st, const BatchParams *params,
			int64 n, RowPosition *row, const char *where)
{
	BatchParams nth = *params;
	Datum		values[BATCH_NPARAMS + 1];
	char		nulls[BATCH_NPARAMS + 1];
	bool		isnull;

	nth.offset = n;
	pipeline_batch_param_values(&nth, values, nulls);
	run_plan(def, &st->nth, values, nulls, 1, where);
	if (SPI_processed == 0)
		return false;
	row->valid = true;
	row->xid = DatumGetFullTransactionId(pipeline_result_datum(0, 0, &isnull));
	row->seq = pipeline_result_int64(0, 1);
	return true;
}

/*
 * pipeline_extract_end
 *		The last pending row (within the bounds of 'params') of the first
 *		pending row's transaction, or with extract_id of the extract being
 *		applied (snapshot_sql.c): where a batch of a pipeline reading full
 *		extracts ends.  False when no row is pending.  With extract_id,
 *		'complete' says whether that extract may be applied, and 'extract'
 *		is its value as a JSON scalar (NULL: none, only rows to refuse).
 */
bool
pipeline_extract_end(const PipelineDef *def, BatchSource from, const BatchParams *params,
					 RowPosition *row, bool *complete, char **extract)
{
	PipelineStatements *st = get_statements(def, from);
	Datum		values[BATCH_NPARAMS];
	char		nulls[BATCH_NPARAMS];
	bool		isnull;

	/* nothing pending: nothing to wait for */
	*complete = true;
	*extract = NULL;
	pipeline_batch_param_values(params, values, nulls);
	run_plan(def, &st->extract_end, values, nulls, 1, looking_for_pending(def));
	if (SPI_processed == 0)
		return false;
	row->valid = true;
	row->xid = DatumGetFullTransactionId(pipeline_result_datum(0, 0, &isnull));
	row->seq = pipeline_result_int64(0, 1);
	if (def->extract_id)
	{
		*complete = DatumGetBool(pipeline_result_datum(0, 2, &isnull));
		*extract = pipeline_result_text(0, 3);
	}
	return true;
}

/*
 * pipeline_nth_pending
 *		nth_pending, for the run that looks for where its batches end.
 */
bool
pipeline_nth_pending(const PipelineDef *def, BatchSource from, const BatchParams *params,
					 int64 n, RowPosition *row)
{
	PipelineStatements *st = get_statements(def, from);

	return nth_pending(def, st, params, n, row, looking_for_pending(def));
}

/*
 * pipeline_is_row_error
 *		Whether an error is about the data of a row, so that quarantining the
 *		row is the right answer, rather than failing the run.
 */
bool
pipeline_is_row_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_WITH_CHECK_OPTION_VIOLATION:
		case ERRCODE_CARDINALITY_VIOLATION:
		case ERRCODE_SQL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION:
		case ERRCODE_PLPGSQL_ERROR:
			return true;
		default:
			return false;
	}
}

/*
 * quarantine_rows
 *		Puts rows in the quarantine, each with its reason and SQLSTATE, in one
 *		statement that reads their raw rows from the source.
 */
static void
quarantine_rows(const PipelineDef *def, PipelineStatements *st, const BatchState *batch, int n,
				Datum *xids, Datum *seqs, Datum *reasons, Datum *sqlstates)
{
	Datum		values[6];

	values[0] = Int64GetDatum(def->id);
	values[1] = Int64GetDatum(batch->run_id);
	values[2] = PointerGetDatum(construct_array(xids, n, XID8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(seqs, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_array(reasons, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(sqlstates, n, TEXTOID, -1, false, TYPALIGN_INT));
	run_plan(def, &st->quarantine, values, NULL, 0, batch->where);
	/* only an expression calling the internal functions names other rows */
	if (SPI_processed != (uint64) n)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" rejected rows that are not rows of its batch", def->name),
				 errdetail("Of the %d rows the batch statement named for the quarantine, %llu are rows of the pipeline's source.",
						   n, (unsigned long long) SPI_processed),
				 errhint("Do not call pipeline.mark_row, mark_value, reject_row or check_row in the pipeline's expressions: the extension calls them itself.")));
}

/*
 * quarantine_failed_row
 *		Puts the row an error was pinned to in the quarantine, with the error.
 */
static void
quarantine_failed_row(const PipelineDef *def, PipelineStatements *st, BatchState *batch,
					  const RowPosition *row, ErrorData *edata)
{
	Datum		xid = FullTransactionIdGetDatum(row->xid);
	Datum		seq = Int64GetDatum(row->seq);
	Datum		reason = CStringGetTextDatum(edata->detail
											 ? psprintf("%s (%s)", edata->message, edata->detail)
											 : edata->message);
	Datum		sqlstate = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));

	quarantine_rows(def, st, batch, 1, &xid, &seq, &reason, &sqlstate);
	batch->counts.read++;
	batch->counts.quarantined++;
}

/*
 * failed_checks_reason
 *		"failed data quality checks \"a\", \"b\"": the checks in a row's bit set.
 */
static char *
failed_checks_reason(List *checks, uint64 failed)
{
	StringInfoData buf;
	int			n = 0;

	initStringInfo(&buf);
	for (int i = 0; i < list_length(checks); i++)
		if (failed & (UINT64CONST(1) << i))
			appendStringInfo(&buf, "%s\"%s\"", n++ ? ", " : "",
							 ((QualityCheck *) list_nth(checks, i))->name);
	return psprintf("failed data quality check%s %s", n > 1 ? "s" : "", buf.data);
}

/*
 * quarantine_rejected
 *		Puts the rows the batch statement rejected (its tally's) in the
 *		quarantine, with the reason of the rule each one failed, or the
 *		checks.
 */
static void
quarantine_rejected(const PipelineDef *def, PipelineStatements *st, const BatchState *batch)
{
	List	   *rejected = batch->tally.rejected;
	int			n = list_length(rejected);
	Datum	   *xids = palloc(sizeof(Datum) * n);
	Datum	   *seqs = palloc(sizeof(Datum) * n);
	Datum	   *reasons = palloc(sizeof(Datum) * n);
	Datum	   *sqlstates = palloc(sizeof(Datum) * n);
	int			i = 0;
	ListCell   *lc;

	foreach(lc, rejected)
	{
		RejectedRow *row = lfirst(lc);

		xids[i] = FullTransactionIdGetDatum(row->position.xid);
		seqs[i] = Int64GetDatum(row->position.seq);
		if (row->rule >= 0)
		{
			RowRule    *rule = list_nth(st->rules, row->rule);

			reasons[i] = CStringGetTextDatum(rule->reason);
			sqlstates[i] = CStringGetTextDatum(rule->sqlstate);
		}
		else
		{
			reasons[i] = CStringGetTextDatum(failed_checks_reason(st->checks, row->failed_checks));
			sqlstates[i] = CStringGetTextDatum(unpack_sql_state(ERRCODE_PIPELINE_CHECK_FAILED));
		}
		i++;
	}
	quarantine_rows(def, st, batch, n, xids, seqs, reasons, sqlstates);
}

/* What try_batch() runs in a subtransaction. */
typedef struct BatchCall
{
	const PipelineDef *def;
	PipelineStatements *st;
	bool		whole;			/* run the whole-phase variant */
	Datum	   *params;
	const char *nulls;
	BatchState *batch;
} BatchCall;

/*
 * save_truncation
 *		After a batch statement that applied a truncate, the floor it left
 *		(its result column __pl_truncated_at): the statements after it read
 *		it from the definition (merge_truncates.c).
 */
static void
save_truncation(const PipelineDef *def)
{
	int			col = SPI_fnumber(SPI_tuptable->tupdesc, PIPELINE_TRUNCATED_AT);
	char	   *floor = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	if (floor != NULL)
		pipeline_save_truncated_at(def->id, floor);
}

/*
 * execute_batch
 *		Runs the batch statement with the row mark armed; adds its counts
 *		to the batch's.
 */
static void
execute_batch(void *arg)
{
	BatchCall  *call = arg;
	BatchState *batch = call->batch;
	RunCounts  *counts = &batch->counts;

	pipeline_mark_arm(batch, call->whole ? call->st->whole.sql : call->st->batch.sql,
					  list_length(call->st->rules), call->st->checks);
	PG_TRY();
	{
		run_plan(call->def, call->whole ? &call->st->whole : &call->st->batch,
				 call->params, call->nulls, 0, batch->where);
	}
	PG_FINALLY();
	{
		pipeline_mark_disarm();
	}
	PG_END_TRY();
	counts->inserted += pipeline_result_int64(0, 0);
	counts->updated += pipeline_result_int64(0, 1);
	counts->deleted += pipeline_result_int64(0, 2);
	/* its other counts are not of events: it counts its stale events */
	if (call->def->strategy->counts_stale)
		counts->stale += pipeline_result_int64(0, 3);
	if (pipeline_applies_truncates(call->def))
		save_truncation(call->def);

	counts->read += batch->tally.read;
	counts->filtered += batch->tally.filtered;
	counts->unchanged += batch->tally.unchanged;
	counts->dropped += batch->tally.dropped;
	counts->quarantined += list_length(batch->tally.rejected);
	if (batch->tally.rejected != NIL)
		quarantine_rejected(call->def, call->st, batch);
	pipeline_checks_add_statement(batch);
}

/*
 * try_batch
 *		One attempt at the batch statement in a subtransaction.  Returns NULL
 *		and adds to the batch's counts on success; on a row error, returns
 *		the error (the subtransaction rolled back); other errors propagate.
 */
static ErrorData *
try_batch(const PipelineDef *def, PipelineStatements *st, bool whole, Datum *params,
		  const char *nulls, BatchState *batch)
{
	BatchCall	call = {def, st, whole, params, nulls, batch};
	ErrorData  *edata = pipeline_try(execute_batch, &call);

	if (edata != NULL && !pipeline_is_row_error(edata->sqlerrcode))
	{
		/* a row failed a check whose action is fail: keep the counts */
		if (edata->sqlerrcode == ERRCODE_PIPELINE_CHECK_FAILED)
			pipeline_checks_fail_statement(def, batch, st->checks);
		ReThrowError(edata);
	}
	if (edata != NULL && def->strategy->check_error)
		def->strategy->check_error(def, edata);
	return edata;
}

/*
 * position_listed
 *		Whether a row position is in a List of RowPosition pointers.
 */
static bool
position_listed(List *rows, const RowPosition *row)
{
	ListCell   *lc;

	foreach(lc, rows)
	{
		RowPosition *r = lfirst(lc);

		if (FullTransactionIdEquals(r->xid, row->xid) && r->seq == row->seq)
			return true;
	}
	return false;
}

/*
 * exclude
 *		A copy of the excluded list with one more row.
 */
static List *
exclude(List *excluded, const RowPosition *row)
{
	RowPosition *copy = palloc(sizeof(RowPosition));

	*copy = *row;
	return lappend(list_copy(excluded), copy);
}

/*
 * merge_range
 *		Merges the pending rows in (lo, hi], isolating bad rows.
 */
static void
merge_range(const PipelineDef *def, PipelineStatements *st, const BatchParams *base,
			bool whole, RowPosition lo, RowPosition hi, List *excluded, BatchState *batch)
{
	BatchParams range = *base;
	Datum		params[BATCH_NPARAMS + 1];
	char		nulls[BATCH_NPARAMS + 1];
	int			named = 0;

	for (;; whole = false)
	{
		ErrorData  *edata;
		RowPosition culprit;
		int64		rows;
		RowPosition mid;

		range.lo = lo;
		range.hi = hi;
		range.excluded = excluded;
		pipeline_batch_param_values(&range, params, nulls);
		edata = try_batch(def, st, whole, params, nulls, batch);
		if (edata == NULL)
			return;

		culprit = batch->last_mark;
		if (culprit.valid && named < NAMED_RETRIES_BEFORE_SPLIT &&
			!position_listed(excluded, &culprit))
		{
			quarantine_failed_row(def, st, batch, &culprit, edata);
			excluded = exclude(excluded, &culprit);
			named++;
			continue;
		}

		/* Not pinned to a row, or many bad rows: split the range. */
		run_plan(def, &st->count, params, nulls, 1, batch->where);
		rows = pipeline_result_int64(0, 0);
		if (rows == 0)
			ReThrowError(edata);	/* not caused by any row of the batch */
		if (rows == 1)
		{
			if (!nth_pending(def, st, &range, 0, &culprit, batch->where))
				ReThrowError(edata);
			quarantine_failed_row(def, st, batch, &culprit, edata);
			excluded = exclude(excluded, &culprit);
			continue;			/* the range is now empty; the retry counts
								 * nothing */
		}
		if (!nth_pending(def, st, &range, rows / 2 - 1, &mid, batch->where))
			ReThrowError(edata);
		merge_range(def, st, base, false, lo, mid, excluded, batch);
		merge_range(def, st, base, false, mid, hi, excluded, batch);
		return;
	}
}

/*
 * prepare_for_batch
 *		Prepares what a batch runs inside pipeline_try before it runs: a
 *		statement that cannot be prepared fails the run, and is never taken
 *		for the error of a row.
 */
static void
prepare_for_batch(const PipelineDef *def, PipelineStatements *st)
{
	LazyStatement *kept[] = {&st->batch, &st->whole, &st->quarantine};
	PipelineUserContext ctx;

	pipeline_become_owner(def, &ctx);
	for (int i = 0; i < lengthof(kept); i++)
	{
		if (kept[i]->plan == NULL)
			prepare_statement(def, kept[i]);
	}
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_merge_batch
 *		Merges one batch: the pending rows between the bounds of params, lo
 *		exclusive, hi inclusive; 'whole_phase' when those bounds hold every
 *		pending row, so that the first attempt can skip testing them.  The
 *		run's 'batch' state follows it; what it did is added to counts, the
 *		stale count being what remains of the rows read (scd2 statements
 *		count it themselves).  An scd2 batch first waits for the other
 *		batches writing its target.
 */
void
pipeline_merge_batch(const PipelineDef *def, BatchSource from, const BatchParams *params,
					 bool whole_phase, BatchState *batch, RunCounts *counts)
{
	PipelineStatements *st = get_statements(def, from);
	RunCounts  *done = &batch->counts;

	prepare_for_batch(def, st);
	pipeline_batch_begin(batch, def, params->run_id, counts->batches + 1);
	if (def->strategy->begin_batch)
		def->strategy->begin_batch(def);
	pipeline_checks_begin_batch(batch, st->checks);
	merge_range(def, st, params, whole_phase, params->lo, params->hi, NIL, batch);
	pipeline_checks_end_batch(def, batch, st->checks);

	/* (a full extract's deletes are of keys it lacks, not of rows it read) */
	if (!def->strategy->counts_stale)
		done->stale = done->read - done->filtered - done->inserted - done->updated -
			(pipeline_reads_extracts(def) ? 0 : done->deleted) - done->quarantined -
			done->dropped - done->unchanged;
	counts->read += done->read;
	counts->filtered += done->filtered;
	counts->inserted += done->inserted;
	counts->updated += done->updated;
	counts->deleted += done->deleted;
	counts->quarantined += done->quarantined;
	counts->dropped += done->dropped;
	counts->unchanged += done->unchanged;
	counts->stale += done->stale;
	counts->batches++;
}
