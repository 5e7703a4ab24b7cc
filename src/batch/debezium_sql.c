/*-------------------------------------------------------------------------
 *
 * debezium_sql.c
 *	  The source rows of a pipeline with format => 'debezium', as its
 *	  expressions see them: each staged change event read by
 *	  pipeline.debezium_event (sources/debezium_event.c) into the target's
 *	  columns and the event's own.
 *
 * A staged row holds its event in one column (json, jsonb or text: the
 * column named "value", or the only such column), or is itself the
 * flattened record of ExtractNewRecordState, written column by column by
 * a sink (the table has a "__deleted" or "__op" column).  The decoded row
 * has _xid and _seq, then every column of the target, taken from the
 * event's row by name (jsonb_populate_record), then the event's columns:
 * _op, _lsn, _ts_ms, _source, _before and _after.  A target column the
 * mapping computes with an expression is not taken from the event, so a
 * value only the expression can read (from _after) does not fail.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategy.h"

/* The columns an event adds to the row, as expressions name them. */
static const char *const event_columns[][2] = {
	{"_op", "op"},
	{"_lsn", "lsn"},
	{"_ts_ms", "ts_ms"},
	{"_source", "source"},
	{"_before", "before"},
	{"_after", "after"},
};

/*
 * pipeline_reads_events
 *		Whether a pipeline's staged rows are Debezium change events.
 */
bool
pipeline_reads_events(const PipelineDef *def)
{
	return def->format != NULL && strcmp(def->format, "debezium") == 0;
}

/*
 * pipeline_applies_truncates
 *		Whether a pipeline's target follows the truncate events it reads
 *		(on_truncate 'apply'; merge_joins.c applies them).
 */
bool
pipeline_applies_truncates(const PipelineDef *def)
{
	return pipeline_reads_events(def) && def->on_truncate != NULL &&
		strcmp(def->on_truncate, "apply") == 0;
}

/*
 * pipeline_is_event_column
 *		Whether a decoded row's column of that name is the event's own.
 */
bool
pipeline_is_event_column(const char *column)
{
	for (int i = 0; i < lengthof(event_columns); i++)
		if (strcmp(column, event_columns[i][0]) == 0)
			return true;
	return false;
}

/*
 * holds_events
 *		Whether a column's type can hold a whole event.
 */
static bool
holds_events(Oid relid, const char *column)
{
	Oid			type = get_atttype(relid, get_attnum(relid, column));

	return type == JSONBOID || type == JSONOID || type == TEXTOID;
}

/*
 * pipeline_event_column
 *		The source column holding each staged row's event, or NULL when the
 *		rows are flattened records column by column.  Errors when no column
 *		or more than one could be it.
 */
char *
pipeline_event_column(const PipelineDef *def)
{
	List	   *candidates = NIL;
	ListCell   *lc;

	if (get_attnum(def->source, "__deleted") != InvalidAttrNumber ||
		get_attnum(def->source, "__op") != InvalidAttrNumber)
		return NULL;
	foreach(lc, pipeline_relation_columns(def->source))
	{
		char	   *column = lfirst(lc);

		if (!holds_events(def->source, column))
			continue;
		if (strcmp(column, "value") == 0)
			return column;
		candidates = lappend(candidates, column);
	}
	if (list_length(candidates) == 1)
		return linitial(candidates);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("cannot tell which column of %s holds the debezium events",
					pipeline_qualified_name(def->source)),
			 candidates == NIL ?
			 errdetail("It has no json, jsonb or text column, and no __deleted or __op column of a flattened record.") :
			 errdetail("Its json, jsonb and text columns are: %s.", pipeline_quote_list(candidates, NULL)),
			 errhint("Name the column holding the events \"value\", or stage flattened records with their __deleted or __op column.")));
}

/*
 * pipeline_decoded_columns
 *		The columns of a decoded row but _xid and _seq: the target's, then
 *		the event's.
 */
List *
pipeline_decoded_columns(const PipelineDef *def)
{
	List	   *columns = NIL;
	ListCell   *lc;

	foreach(lc, pipeline_relation_columns(def->target))
		if (!pipeline_is_own_column(def, lfirst(lc)))
		columns = lappend(columns, lfirst(lc));
	for (int i = 0; i < lengthof(event_columns); i++)
		columns = lappend(columns, pstrdup(event_columns[i][0]));
	return columns;
}

/*
 * computed_columns
 *		'{a,b}': the target columns the mapping computes with an expression
 *		(or leaves out), as a text[] literal.
 */
static char *
computed_columns(const PipelineDef *def)
{
	StringInfoData buf;
	JsonbIterator *it = JsonbIteratorInit(&def->columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *names = NIL;
	ListCell   *lc;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_KEY)
			names = lappend(names, pnstrdup(v.val.string.val, v.val.string.len));
	initStringInfo(&buf);
	foreach(lc, names)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "",
						 quote_literal_cstr(lfirst(lc)));
	return psprintf("ARRAY[%s]::text[]", buf.len ? buf.data : "");
}

/*
 * known_columns
 *		The target's columns as a text[] for pipeline.debezium_event, which
 *		then errors for an event column the target lacks; NULL (any column
 *		taken, the others left out) unless on_schema_change is 'fail'.
 */
static char *
known_columns(const PipelineDef *def)
{
	StringInfoData buf;
	ListCell   *lc;

	if (strcmp(def->on_schema_change, "fail") != 0)
		return "NULL";
	initStringInfo(&buf);
	foreach(lc, pipeline_relation_columns(def->target))
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", quote_literal_cstr(lfirst(lc)));
	return psprintf("ARRAY[%s]::text[]", buf.data);
}

/*
 * pipeline_source_rows
 *		The source rows as a pipeline's expressions read them, over 'rows'
 *		(a relation or a subquery with the source's columns): 'rows'
 *		itself, or for Debezium events their decoded rows.  The event is
 *		marked as its row's (row_watch.c) before it is read: an event that
 *		cannot be read quarantines its own row.
 */
char *
pipeline_source_rows(const PipelineDef *def, const char *rows)
{
	char	   *column;
	char	   *event;
	StringInfoData list;
	ListCell   *lc;

	if (!pipeline_reads_events(def))
		return pstrdup(rows);
	column = pipeline_event_column(def);
	event = column ? psprintf("s.%s", quote_identifier(column)) :
		"to_jsonb(s) - '" PIPELINE_XID_COLUMN "' - '" PIPELINE_SEQ_COLUMN "'";
	initStringInfo(&list);
	appendStringInfoString(&list, "s." PIPELINE_XID_COLUMN ", s." PIPELINE_SEQ_COLUMN);
	foreach(lc, pipeline_relation_columns(def->target))
		if (!pipeline_is_own_column(def, lfirst(lc)))
		appendStringInfo(&list, ", d.%s", quote_identifier(lfirst(lc)));
	for (int i = 0; i < lengthof(event_columns); i++)
		appendStringInfo(&list, ", e.%s AS %s", event_columns[i][1], event_columns[i][0]);
	return psprintf("(SELECT %s FROM %s s "
					"CROSS JOIN LATERAL pipeline.debezium_event("
					"pipeline.mark_value(s." PIPELINE_XID_COLUMN ", s." PIPELINE_SEQ_COLUMN ", %s)::jsonb, %s, %s) e "
					"CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, e.record - %s) d)",
					list.data, rows, event, known_columns(def),
					pipeline_applies_truncates(def) ? "true" : "false",
					pipeline_qualified_name(def->target), computed_columns(def));
}
