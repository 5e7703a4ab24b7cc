/*-------------------------------------------------------------------------
 *
 * source_format.c
 *	  How staged rows hold their changes (format): what a pipeline reading
 *	  Debezium change events or full extracts needs, and what it takes by
 *	  default.
 *
 * format => 'debezium':
 * The events are read into the target's columns (batch/debezium_sql.c),
 * so the target must exist; the source must be a staging table (a change
 * log already has rows, not events).  By default a delete event (_op 'd')
 * deletes, and events are ordered by their position in the source
 * database's log (_lsn, which a PostgreSQL connector gives every event);
 * other connectors name their order with sequence_by (_ts_ms, or an
 * expression over _source).  The merge keeps that order in its row state,
 * not in the target.  A truncate event (_op 't') is quarantined, or with
 * on_truncate 'apply' a merge follows it: its rows are deleted, and an
 * event from before it is stale ever after (pipeline_defs.truncated_at).
 *
 * format => 'snapshot': each source transaction's rows are a full extract
 * of a table (batch/snapshot_sql.c).  A merge upserts the extract and
 * deletes the keys it lacks (hard_deletes 'delete', or 'ignore'); an scd2
 * versions it at its sequence_by value and closes the current versions of
 * the keys it lacks ('invalidate'), or gives them a version marked
 * __deleted ('new_record', dbt's), or keeps them ('ignore').  Deletes come from
 * absence only: delete_when is refused, and so are a merge's sequence_by
 * (extracts apply in the order they were staged), joins and partial
 * updates.  An extract is one transaction's rows, or with extract_id the
 * rows naming one value of that column, staged one extract after another.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "strategy.h"

/* What a Debezium truncate event does. */
static const char *const truncate_choices[] = {"quarantine", "apply", NULL};

/*
 * refuse_with_format
 *		Errors for an option a pipeline reading events cannot have yet.
 */
static void
refuse_with_format(const char *format, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("a pipeline with format '%s' cannot have %s", format, what),
			 strcmp(format, "debezium") == 0 ?
			 errdetail("Its source rows are decoded from the events as the target's columns.") :
			 errdetail("Each source transaction's rows are a full extract of the table, compared with the target as a whole."),
			 errhint("%s", hint)));
}

/*
 * check_debezium
 *		format => 'debezium': its target and options; sets its defaults.
 */
static void
check_debezium(PipelineDef *def)
{
	ListCell   *lc;

	if (!OidIsValid(def->target))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target of a pipeline with format 'debezium' must exist"),
				 errdetail("The events' rows are read into the target's columns, by name."),
				 errhint("CREATE TABLE the target with the captured table's columns and a primary key, then create the pipeline.")));
	if (def->strategy->groups)
		refuse_with_format("debezium", "the aggregate strategy",
						   "Merge the events into a table, and aggregate that table with a second pipeline.");
	if (def->joins != NIL)
		refuse_with_format("debezium", "joins",
						   "Merge the events into a table, and join that table with a second pipeline.");
	if (strcmp(def->on_schema_change, "append_new_columns") == 0 ||
		strcmp(def->on_schema_change, "sync_all_columns") == 0)
		refuse_with_format("debezium", psprintf("on_schema_change '%s'", def->on_schema_change),
						   "Use 'ignore' (an event's columns the target lacks are left out) or 'fail' (such an event is quarantined), and add columns to the target yourself.");
	foreach(lc, pipeline_relation_columns(def->target))
		if (pipeline_is_event_column(lfirst(lc)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("target column \"%s\" has the name of a debezium event's column", (char *) lfirst(lc)),
				 errdetail("Expressions of a pipeline with format 'debezium' read _op, _lsn, _ts_ms, _source, _before and _after from the event."),
				 errhint("Rename the target column, and map it with columns => '{\"new_name\": \"%s\"}'.",
						 (char *) lfirst(lc))));
	/* errors when no column holds the events */
	(void) pipeline_event_column(def);
	if (def->strategy->keyed && def->delete_when == NULL)
		def->delete_when = "_op = 'd'";
	if (def->strategy->keyed && !def->strategy->versioned && def->sequence_by == NULL)
		def->sequence_by = "_lsn";
	if (def->on_truncate == NULL)
		def->on_truncate = "quarantine";
	pipeline_check_choice("on_truncate", def->on_truncate, truncate_choices);
}

/*
 * pipeline_check_on_truncate
 *		on_truncate => 'apply' (once sequence_kept is decided): a truncate
 *		removes every row its events came before, and events that arrive
 *		later but came before it are stale.  That needs each key's sequence
 *		in the row state and a merge; partial updates, which fill an event
 *		from the stored row, are refused with it.
 */
void
pipeline_check_on_truncate(const PipelineDef *def)
{
	const char *hint = NULL;

	if (def->on_truncate == NULL || strcmp(def->on_truncate, "apply") != 0)
		return;
	if (!def->strategy->keyed || def->strategy->versioned)
		hint = "Use strategy => 'merge', or leave on_truncate => 'quarantine' and close the versions yourself.";
	else if (!def->sequence_kept)
		hint = "Leave sequence_by to its default, _lsn, or give expressions over the event that name no target column.";
	else if (def->ignore_null_updates != NIL)
		hint = "Drop ignore_null_updates, or leave on_truncate => 'quarantine'.";
	if (hint == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("on_truncate 'apply' needs a merge that keeps its sequence_by in its row state, without ignore_null_updates"),
			 errdetail("A truncate deletes every row whose latest event came before it, and makes later arrivals from before it stale."),
			 errhint("%s", hint)));
}

/*
 * map_deleted_column
 *		hard_deletes 'new_record': the target's __deleted column, false for
 *		the extract's rows (snapshot_sql.c writes true for a missing key).
 *		A new target gets it from the mapping; an existing one must have it.
 */
static void
map_deleted_column(PipelineDef *def)
{
	char	   *expr;
	AttrNumber	att = OidIsValid(def->target) ? get_attnum(def->target, PIPELINE_DELETED_COLUMN) : InvalidAttrNumber;

	if (pipeline_mapping_lookup(def->columns, PIPELINE_DELETED_COLUMN, &expr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("columns must not map \"%s\" with hard_deletes 'new_record'", PIPELINE_DELETED_COLUMN),
				 errdetail("The pipeline writes it: false for an extract's rows, true for the version of a key an extract lacks."),
				 errhint("Remove \"%s\" from columns.", PIPELINE_DELETED_COLUMN)));
	if (OidIsValid(def->target) && (att == InvalidAttrNumber || get_atttype(def->target, att) != BOOLOID))
		ereport(ERROR,
				(errcode(att == InvalidAttrNumber ? ERRCODE_UNDEFINED_COLUMN : ERRCODE_DATATYPE_MISMATCH),
				 errmsg("target %s has no boolean column %s", pipeline_qualified_name(def->target),
						PIPELINE_DELETED_COLUMN),
				 errdetail("With hard_deletes 'new_record' a key an extract lacks gets a version of its own, marked %s.",
						   PIPELINE_DELETED_COLUMN),
				 errhint("ALTER TABLE %s ADD COLUMN %s boolean NOT NULL DEFAULT false;",
						 pipeline_qualified_name(def->target), PIPELINE_DELETED_COLUMN)));
	def->columns = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(def->columns),
													  DirectFunctionCall1(jsonb_in,
																		  CStringGetDatum("{\"" PIPELINE_DELETED_COLUMN "\": \"false\"}"))));
}

/*
 * check_extract_id
 *		extract_id names a source column whose values can be ordered: each
 *		extract's is above the one before.
 */
static void
check_extract_id(const PipelineDef *def)
{
	AttrNumber	att = get_attnum(def->source, def->extract_id);
	Oid			type;

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("extract_id column \"%s\" is not a column of source %s", def->extract_id,
						pipeline_qualified_name(def->source)),
				 errdetail("extract_id names the source column saying which extract a staged row belongs to."),
				 errhint("Name a column of the source (names are exact, without SQL quoting), such as a load date or number.")));
	type = get_atttype(def->source, att);
	if (!OidIsValid(lookup_type_cache(type, TYPECACHE_LT_OPR)->lt_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("extract_id column \"%s\" has type %s, which cannot be ordered", def->extract_id,
						format_type_be(type)),
				 errdetail("Each extract's value must be above the one before, so that a row of an earlier extract staged late is told apart."),
				 errhint("Name a column of an ordered type: a date, a timestamp, a number or text.")));
}

/*
 * check_snapshot
 *		format => 'snapshot': its strategy and options; sets hard_deletes
 *		and max_delete_share by default.
 */
static void
check_snapshot(PipelineDef *def)
{
	bool		scd2 = def->strategy->versioned;
	static const char *const merge_deletes[] = {"delete", "ignore", NULL};
	static const char *const scd2_deletes[] = {"invalidate", "ignore", "new_record", NULL};

	if (!def->strategy->keyed || def->strategy->groups)
		refuse_with_format("snapshot", psprintf("the %s strategy", def->strategy->name),
						   "Use strategy => 'merge' (the latest extract) or 'scd2' (every extract's versions).");
	if (def->joins != NIL)
		refuse_with_format("snapshot", "joins",
						   "Merge the extracts into a table, and join that table with a second pipeline.");
	if (def->delete_when)
		refuse_with_format("snapshot", "delete_when",
						   "A key missing from a complete extract is deleted or closed: hard_deletes says which.");
	if (def->sequence_by && !scd2)
		refuse_with_format("snapshot", "sequence_by",
						   "Extracts apply in the order they were staged; the latest is the table.");
	if (def->ignore_null_updates != NIL)
		refuse_with_format("snapshot", "ignore_null_updates",
						   "An extract's row is the whole row.");
	if (def->hard_deletes == NULL)
		def->hard_deletes = scd2 ? "invalidate" : "delete";
	pipeline_check_choice("hard_deletes", def->hard_deletes, scd2 ? scd2_deletes : merge_deletes);
	if (pipeline_marks_deleted(def))
		map_deleted_column(def);
	if (def->extract_id)
		check_extract_id(def);
	if (def->max_delete_share == 0)
		def->max_delete_share = 0.5;
	if (def->max_delete_share < 0 || def->max_delete_share > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_delete_share must be above 0 and at most 1"),
				 errdetail("It is the share of the target's rows one extract may delete."),
				 errhint("Pass the largest share of the target one extract may delete, such as 0.2; 1 lets any extract empty it.")));
}

/*
 * pipeline_check_format
 *		Checks the format of a new pipeline, whose source is resolved and
 *		whose target, when it exists, is known; sets the format's defaults.
 */
void
pipeline_check_format(PipelineDef *def)
{
	static const char *const formats[] = {"debezium", "snapshot", NULL};

	if (def->on_truncate && !pipeline_reads_events(def))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_truncate applies to debezium events only"),
				 errdetail("It says what a Debezium truncate event (op t) does."),
				 errhint("Pass format => 'debezium' when the staged rows are Debezium change events.")));
	if (def->extract_id && !pipeline_reads_extracts(def))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("extract_id applies to full extracts only"),
				 errdetail("It names the source column saying which extract a staged row belongs to."),
				 errhint("Pass format => 'snapshot' when the staged rows are full extracts.")));
	if (def->format == NULL)
	{
		if (def->hard_deletes || def->max_delete_share != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s applies to full extracts only", def->hard_deletes ? "hard_deletes" : "max_delete_share"),
					 errdetail("It says what a key missing from an extract does."),
					 errhint("Pass format => 'snapshot' when each source transaction stages a full extract of the table.")));
		return;
	}
	pipeline_check_choice("format", def->format, formats);
	if (def->reads_change_log)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("source of a pipeline with format '%s' must be a staging table", def->format),
				 errdetail("The source is a captured table or a pipeline's target, whose changes are rows, not %s.",
						   pipeline_reads_events(def) ? "events" : "extracts"),
				 pipeline_reads_events(def) ?
				 errhint("Stage the events in a table of their own (one json, jsonb or text column named value).") :
				 errhint("Stage each extract in a table of its own, in one transaction.")));
	if (pipeline_reads_events(def))
		check_debezium(def);
	else
		check_snapshot(def);
}
