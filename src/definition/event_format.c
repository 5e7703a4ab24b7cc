/*-------------------------------------------------------------------------
 *
 * event_format.c
 *	  format => 'debezium': what a pipeline whose staged rows are Debezium
 *	  change events needs, and what it takes by default.
 *
 * The events are read into the target's columns (batch/debezium_sql.c),
 * so the target must exist; the source must be a staging table (a change
 * log already has rows, not events).  By default a delete event (_op 'd')
 * deletes, and events are ordered by their position in the source
 * database's log (_lsn, which a PostgreSQL connector gives every event);
 * other connectors name their order with sequence_by (_ts_ms, or an
 * expression over _source).  The merge keeps that order in its row state,
 * not in the target.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "strategy.h"

/*
 * refuse_with_format
 *		Errors for an option a pipeline reading events cannot have yet.
 */
static void
refuse_with_format(const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("a pipeline with format 'debezium' cannot have %s", what),
			 errdetail("Its source rows are decoded from the events as the target's columns."),
			 errhint("%s", hint)));
}

/*
 * pipeline_check_format
 *		Checks the format of a new pipeline, whose source is resolved and
 *		whose target, when it exists, is known; sets the format's defaults
 *		(delete_when, sequence_by).
 */
void
pipeline_check_format(PipelineDef *def)
{
	static const char *const formats[] = {"debezium", NULL};
	ListCell   *lc;

	if (def->format == NULL)
		return;
	pipeline_check_choice("format", def->format, formats);
	if (def->reads_change_log)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("source of a pipeline with format 'debezium' must be a staging table"),
				 errdetail("The source is a captured table or a pipeline's target, whose changes are rows, not events."),
				 errhint("Stage the events in a table of their own (one json, jsonb or text column named value).")));
	if (!OidIsValid(def->target))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target of a pipeline with format 'debezium' must exist"),
				 errdetail("The events' rows are read into the target's columns, by name."),
				 errhint("CREATE TABLE the target with the captured table's columns and a primary key, then create the pipeline.")));
	if (def->strategy->groups)
		refuse_with_format("the aggregate strategy",
						   "Merge the events into a table, and aggregate that table with a second pipeline.");
	if (def->joins != NIL)
		refuse_with_format("joins",
						   "Merge the events into a table, and join that table with a second pipeline.");
	if (strcmp(def->on_schema_change, "append_new_columns") == 0 ||
		strcmp(def->on_schema_change, "sync_all_columns") == 0)
		refuse_with_format(psprintf("on_schema_change '%s'", def->on_schema_change),
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
}
