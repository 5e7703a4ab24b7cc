/*-------------------------------------------------------------------------
 *
 * sharded_pipelines.c
 *	  What a sharded pipeline may be: one whose staging table Citus
 *	  distributes by hash, merged shard by shard on the workers into a
 *	  co-located target (run/shard_run.c).  Whatever its shard statement
 *	  cannot do where a shard lives is refused here, each with its reason.
 *
 * A shard's statement sees its two shards only.  So the target must be
 * co-located with the staging table, and each target row must land in the
 * shard of the staged row it comes from: the target's distribution column
 * is fed by the staging table's, unchanged (and, for a merge, is part of
 * the key).  Or, for an append, the target is a table on the coordinator,
 * whose batches are routed there (run/routed_run.c).  Nothing it writes may be kept on the coordinator in the same
 * transaction (a tombstone table, a row state, a change log), and rows are
 * claimed, not followed by a cursor (no extracts, no Debezium positions).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "strategy.h"

/*
 * refuse
 *		Errors: sharded pipeline 'def' cannot have 'what'.
 */
static void
refuse(const PipelineDef *def, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("sharded pipeline \"%s\" cannot %s", def->name, what),
			 errdetail("Its staging table %s is distributed by Citus: each shard is merged on its worker, by a statement that sees that shard and the target's co-located shard only.",
					   pipeline_qualified_name(def->source)),
			 errhint("%s", hint)));
}

/*
 * pipeline_sharded_routed
 *		Whether a sharded pipeline writes a plain table on the coordinator
 *		(an append), whose batches are routed there rather than run on the
 *		shards (run/routed_run.c).
 */
bool
pipeline_sharded_routed(const PipelineDef *def)
{
	return def->sharded && pipeline_citus_kind(def->target) == CITUS_NONE;
}

/*
 * check_placement
 *		The target is distributed co-located with the staging table, its
 *		distribution column fed by the staging table's unchanged (and in
 *		the key of a merge); or an append's target is a table on the
 *		coordinator.
 */
static void
check_placement(const PipelineDef *def, const PipelineMapping *map)
{
	char	   *source_column = pipeline_citus_distribution_column(def->source);
	char	   *target_column = pipeline_citus_distribution_column(def->target);
	char	   *hint = psprintf("SELECT create_distributed_table('%s', '%s', colocate_with => '%s'); (or append, strategy => 'append', into a table on the coordinator)",
								pipeline_qualified_name(def->target), source_column,
								pipeline_qualified_name(def->source));
	CitusKind	kind = pipeline_citus_kind(def->target);
	ColumnMap  *cm;

	/* an append into a plain table on the coordinator is routed there */
	if (kind == CITUS_NONE && !def->strategy->keyed)
		return;
	/* Citus plans no write of a reference table from the coordinator's own */
	if (kind == CITUS_REFERENCE)
		refuse(def, psprintf("write %s, a Citus reference table", pipeline_qualified_name(def->target)),
			   "Append into a plain table on the coordinator, and fill the reference table from it with a pipeline reading that table.");
	if (target_column == NULL || !pipeline_citus_colocated(def->source, def->target))
		refuse(def, psprintf("write %s, which is not distributed co-located with its staging table",
							 pipeline_qualified_name(def->target)), hint);
	cm = pipeline_mapping_column(map, target_column);
	if (cm == NULL || (strcmp(cm->expr, source_column) != 0 &&
					   strcmp(cm->expr, quote_identifier(source_column)) != 0))
		refuse(def, psprintf("feed the target's distribution column %s with anything but the staging table's, %s",
							 quote_identifier(target_column), quote_identifier(source_column)),
			   "Map the target's distribution column to the staging table's distribution column, as it is.");
	if (def->strategy->keyed && !cm->is_key)
		refuse(def, psprintf("merge by a key without the distribution column %s",
							 quote_identifier(target_column)),
			   "Put the distribution column in the key: the rows of a key must live in one shard.");
}

/* What lookup_others reads and finds. */
typedef struct LookupCall
{
	const PipelineDef *def;
	const char *expr;
	List	   *others;
} LookupCall;

/*
 * lookup_others
 *		pipeline_shard_lookup_others, for pipeline_try.
 */
static void
lookup_others(void *arg)
{
	LookupCall *call = arg;

	call->others = pipeline_shard_lookup_others(call->def, call->expr);
}

/*
 * check_expression
 *		An expression of a sharded pipeline reads the staged row, and Citus
 *		reference tables only (their shards, on the worker: shard_lookups.c):
 *		Citus plans no statement mixing shards with its own tables, and a
 *		plain table is on the coordinator alone.
 */
static void
check_expression(const PipelineDef *def, const char *expr)
{
	LookupCall	call = {def, expr, NIL};

	if (expr == NULL)
		return;
	/* an expression that does not parse is the mapping's error to report */
	if (pipeline_try(lookup_others, &call) == NULL && call.others != NIL)
	{
		List	   *others = call.others;

		refuse(def, psprintf("read %s in its expressions", pipeline_qualified_name(linitial_oid(others))),
			   "Look up Citus reference tables only (create_reference_table), or stage the looked-up values with the rows.");
	}
}

/*
 * check_expressions
 *		The expressions the columns object maps, the filter and delete_when
 *		(check_expression); before the mapping is built and tried, whose
 *		errors over a lookup would be Citus's, not why.
 */
static void
check_expressions(const PipelineDef *def)
{
	JsonbIterator *it = JsonbIteratorInit(&def->columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_VALUE && v.type == jbvString)
			check_expression(def, pnstrdup(v.val.string.val, v.val.string.len));
	check_expression(def, def->filter);
	check_expression(def, def->delete_when);
}

/*
 * has_foreign_keys
 *		Whether a table has foreign keys (row rules looking the referenced
 *		table up, which a shard statement cannot).
 */
static bool
has_foreign_keys(Oid relid)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);

	return pipeline_exec("SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'f'",
						 1, &type, &value, NULL, true, 1) > 0;
}

/*
 * check_source
 *		The staging table is a table (not partitioned: a shard statement
 *		reads one shard, not its partitions), with one placement of each
 *		shard (each placement would claim its own copy of a row), owned by
 *		the pipeline's owner or a role whose privileges it has: the claim
 *		runs as the pipeline's owner, so the table's triggers and policies
 *		must be its own.
 */
static void
check_source(const PipelineDef *def)
{
	Oid			owner = pipeline_relation_owner(def->source);

	if (get_rel_relkind(def->source) != RELKIND_RELATION)
		refuse(def, psprintf("read %s, which is partitioned", pipeline_qualified_name(def->source)),
			   "Distribute a plain table as the staging table.");
	if (pipeline_citus_replicated(def->source))
		refuse(def, psprintf("read %s, whose shards have more than one placement",
							 pipeline_qualified_name(def->source)),
			   "Distribute the staging table with citus.shard_replication_factor = 1.");
	if (!has_privs_of_role(def->owner, owner))
		refuse(def, psprintf("read %s, which role %s owns", pipeline_qualified_name(def->source),
							 GetUserNameFromId(owner, false)),
			   "Define the pipeline as the staging table's owner (or a member of its role): its runs delete the rows they merge from it.");
}

/*
 * check_only_reader
 *		A distributed staging table feeds one pipeline: its runs take the
 *		rows they merge out of it.
 */
static void
check_only_reader(const PipelineDef *def)
{
	char	   *other = pipeline_other_reader(def->source, def->id);

	if (other)
		refuse(def, psprintf("read %s, which pipeline \"%s\" reads", pipeline_qualified_name(def->source),
							 other),
			   "A distributed staging table feeds one pipeline, whose runs take the rows they merge out of it; stage a copy of the rows for the other pipeline, or read its target.");
}

/*
 * pipeline_check_sharded_kind
 *		Errors for a sharded pipeline of a kind no shard statement writes,
 *		or whose expressions read what a shard statement cannot: checked
 *		before its target and mapping are.
 */
void
pipeline_check_sharded_kind(const PipelineDef *def)
{
	if (!def->sharded)
		return;
	if (def->strategy->groups)
		refuse(def, psprintf("use strategy %s", def->strategy->name),
			   "Use merge, scd2 or append; keep groups (aggregate) in a pipeline reading a plain staging table, or the target of a sharded append into a table on the coordinator.");
	if (def->joins != NIL)
		refuse(def, "join dimension tables",
			   "Map the columns the staging rows carry; join in a downstream view or pipeline.");
	if (def->format != NULL)
		refuse(def, psprintf("read format %s", def->format),
			   "Stage Debezium events and full extracts into a plain table.");
	check_expressions(def);
}

/*
 * refuse_check
 *		Errors: check 'name' of sharded pipeline 'def' cannot be 'what'.
 */
static void
refuse_check(const PipelineDef *def, const char *name, const char *what, const char *hint)
{
	refuse(def, psprintf("have check \"%s\", %s", name, what), hint);
}

/*
 * check_sharded_check
 *		A data quality check of a sharded pipeline judges the rows of one
 *		shard's batch, in its shard statement: it may look values up in
 *		Citus reference tables only, a unique check must be about the
 *		distribution column (whose equal values share a shard) unless the
 *		batch is 'routed' whole through the coordinator, and no check
 *		judges a whole batch (row_count: the shards commit apart).
 *		'distribution' is the target's distribution column.
 */
static void
check_sharded_check(const PipelineDef *def, bool routed, const char *distribution, const char *name,
					const char *kind, const char *column, Oid ref_table, const char *expression)
{
	if (strcmp(kind, "row_count") == 0)
		refuse_check(def, name, "a row_count check",
					 "A sharded run's batch is one statement per shard, each committed on its own; count the rows in a pipeline reading the target, or check freshness.");
	if (strcmp(kind, "unique") == 0 && !routed && (distribution == NULL || strcmp(column, distribution) != 0))
		refuse_check(def, name, psprintf("a unique check on %s, which is not the distribution column",
										 quote_identifier(column)),
					 "Check uniqueness of the distribution column only (its equal values share a shard), or keep the values unique with a UNIQUE constraint on the target that includes the distribution column.");
	/* (the shard statement reads the reference table's copy on its node) */
	if (OidIsValid(ref_table) && (pipeline_citus_kind(ref_table) != CITUS_REFERENCE ||
								  !OidIsValid(pipeline_citus_reference_shard(ref_table))))
		refuse_check(def, name, psprintf("looking values up in %s, which is not a Citus reference table",
										 pipeline_qualified_name(ref_table)),
					 "Look values up in a Citus reference table (create_reference_table): it has a copy on every worker.");
	if (expression != NULL)
	{
		List	   *others = pipeline_shard_check_lookup_others(def, expression);

		if (others != NIL)
			refuse_check(def, name, psprintf("reading %s", pipeline_qualified_name(linitial_oid(others))),
						 "Read Citus reference tables only in a check's expression; a shard statement sees its two shards and the reference tables' copies.");
	}
}

/*
 * pipeline_check_sharded_checks
 *		Errors for a data quality check a sharded pipeline's shard statement
 *		cannot run (check_sharded_check); nothing for another pipeline.
 *		When a check is added, and at each run (a table may have been
 *		distributed otherwise since).  The caller runs as the owner.
 */
void
pipeline_check_sharded_checks(const PipelineDef *def)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(def->id);
	int			n;
	char	  **names;
	char	  **kinds;
	char	  **columns;
	char	  **expressions;
	Oid		   *ref_tables;
	bool		routed;
	char	   *distribution;

	if (!def->sharded)
		return;
	routed = pipeline_sharded_routed(def);
	distribution = pipeline_citus_distribution_column(def->target);
	n = pipeline_exec_internal("SELECT name, kind, column_name, ref_table, expression FROM pipeline.checks "
							   "WHERE pipeline_id = $1 ORDER BY id", 1, &type, &value, NULL);
	/* read them all first: the checks below run queries of their own */
	names = palloc(sizeof(char *) * Max(n, 1));
	kinds = palloc(sizeof(char *) * Max(n, 1));
	columns = palloc(sizeof(char *) * Max(n, 1));
	expressions = palloc(sizeof(char *) * Max(n, 1));
	ref_tables = palloc(sizeof(Oid) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		names[i] = pipeline_result_text(i, 0);
		kinds[i] = pipeline_result_text(i, 1);
		columns[i] = pipeline_result_text(i, 2);
		ref_tables[i] = DatumGetObjectId(pipeline_result_datum(i, 3, &isnull));
		expressions[i] = pipeline_result_text(i, 4);
	}
	for (int i = 0; i < n; i++)
		check_sharded_check(def, routed, distribution, names[i], kinds[i], columns[i], ref_tables[i],
							expressions[i]);
}

/*
 * pipeline_check_sharded
 *		Errors unless a pipeline whose staging table is hash-distributed is
 *		one a sharded run can merge; nothing for another pipeline.  The
 *		owner must be allowed to delete from the staging table: a run claims
 *		the rows it merges by deleting them.
 */
void
pipeline_check_sharded(const PipelineDef *def, const PipelineMapping *map)
{
	bool		routed;

	if (!def->sharded)
		return;
	routed = pipeline_sharded_routed(def);
	check_source(def);
	if (def->strategy->versioned && def->delete_when)
		refuse(def, "close versions by delete_when",
			   "An scd2 pipeline remembers its deletes in a table on the coordinator. Append the rows into a table on the coordinator and keep their versions with an scd2 pipeline reading that table.");
	if (OidIsValid(def->tombstones) || pipeline_keeps_source_rows(def))
		refuse(def, "keep its deletes or sequences on the coordinator (sequence_by with delete_when, or sequence_by over the source row)",
			   "Use sequence_by naming a mapped target column, without delete_when; or delete_when without sequence_by.");
	if (def->ignore_null_updates != NIL)
		refuse(def, "ignore null updates", "Stage whole rows.");
	if (OidIsValid(def->change_log) && !routed)
		refuse(def, psprintf("write %s, which other pipelines read", pipeline_qualified_name(def->target)),
			   "Append from the distributed staging table into a table on the coordinator, and read that table.");
	if (!routed && has_foreign_keys(def->target))
		refuse(def, psprintf("write %s, which has foreign keys", pipeline_qualified_name(def->target)),
			   "Drop the foreign keys of the target; a shard statement cannot look up the referenced table.");
	check_only_reader(def);
	check_placement(def, map);
	pipeline_require_privilege(def->owner, def->source, ACL_DELETE, "DELETE", "source");
}

/*
 * pipeline_check_sharded_run
 *		At each run: the staging table is what it was when the pipeline was
 *		defined -- hash-distributed for a sharded pipeline, not for another
 *		(a cursor's rows claimed by a shard statement, or a queue followed
 *		by a cursor, would be merged twice or passed over) -- and a sharded
 *		pipeline is still one its shard statement can merge (its target may
 *		have been distributed otherwise since).
 */
void
pipeline_check_sharded_run(const PipelineDef *def)
{
	bool		distributed = pipeline_citus_distribution_column(def->source) != NULL;

	if (distributed != def->sharded)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg(distributed ? "staging table %s of pipeline \"%s\" was distributed after the pipeline was defined" :
						"staging table %s of sharded pipeline \"%s\" is no longer distributed",
						pipeline_qualified_name(def->source), def->name),
				 errdetail(distributed ? "The pipeline follows its staging table with a cursor; a distributed one is merged shard by shard, each row taken out as it is merged." :
						   "The pipeline takes the rows it merges out of a distributed staging table; a plain one is followed with a cursor."),
				 errhint("Drop the pipeline and define it again on the table as it is now.")));
	if (!def->sharded)
		return;
	pipeline_check_sharded_kind(def);
	pipeline_check_sharded(def, pipeline_build_mapping(def));
	pipeline_check_sharded_checks(def);
}
