/*-------------------------------------------------------------------------
 *
 * definitions.c
 *	  pipeline.pipeline_defs: reading a definition, saving it, and the
 *	  states a definition goes through (paused, suspended, its version
 *	  moved on, dropped).
 *
 * A definition is read by the columns of def_columns and written by those
 * of saved_columns: each list is declared once, with the position it is
 * read or bound at, so that adding a column is one edit of each.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "strategy.h"

/* The columns a definition is read by, in the order of the SELECT list. */
typedef enum DefColumn
{
	DEF_ID,
	DEF_NAME,
	DEF_OWNER,
	DEF_SOURCE,
	DEF_TARGET,
	DEF_TOMBSTONES,
	DEF_KEY,
	DEF_STRATEGY,
	DEF_SEQUENCE_BY,
	DEF_DELETE_WHEN,
	DEF_COLUMNS,
	DEF_FILTER,
	DEF_ON_SCHEMA_CHANGE,
	DEF_BATCH_SIZE,
	DEF_SCHEDULE,
	DEF_TOMBSTONE_RETENTION,
	DEF_SEARCH_PATH,
	DEF_SOURCE_COLUMNS,
	DEF_PAUSED,
	DEF_VERSION,
	DEF_SUSPENDED,
	DEF_STATEMENT_TIMEOUT,
	DEF_STATEMENT_TIMEOUT_MS,
	DEF_CHANGE_LOG,
	DEF_READS_CHANGE_LOG,
	DEF_TRACK_HISTORY,
	DEF_SOURCE_KEY,
	DEF_GROUP_FILTER,
	DEF_GROUP_STATE,
	DEF_ROW_STATE,
	DEF_FORMAT,
	DEF_SEQUENCE_KEPT,
	DEF_IGNORE_NULL_UPDATES,
	DEF_HARD_DELETES,
	DEF_MAX_DELETE_SHARE,
	DEF_ON_TRUNCATE,
	DEF_EXTRACT_ID,
	DEF_EXTRACT_CLOSED,
	DEF_SHARDED,
	DEF_HAS_JOINS,
	DEF_NCOLUMNS
} DefColumn;

static const char *const def_columns[DEF_NCOLUMNS] = {
	[DEF_ID] = "id",
	[DEF_NAME] = "name",
	[DEF_OWNER] = "owner::oid",
	[DEF_SOURCE] = "source::oid",
	[DEF_TARGET] = "target::oid",
	[DEF_TOMBSTONES] = "coalesce(tombstones::oid, 0)",
	[DEF_KEY] = "key",
	[DEF_STRATEGY] = "strategy",
	[DEF_SEQUENCE_BY] = "sequence_by",
	[DEF_DELETE_WHEN] = "delete_when",
	[DEF_COLUMNS] = "columns",
	[DEF_FILTER] = "filter",
	[DEF_ON_SCHEMA_CHANGE] = "on_schema_change",
	[DEF_BATCH_SIZE] = "batch_size",
	[DEF_SCHEDULE] = "schedule",
	[DEF_TOMBSTONE_RETENTION] = "tombstone_retention::text",
	[DEF_SEARCH_PATH] = "search_path",
	[DEF_SOURCE_COLUMNS] = "source_columns",
	[DEF_PAUSED] = "paused",
	[DEF_VERSION] = "version",
	[DEF_SUSPENDED] = "suspended_at IS NOT NULL",
	[DEF_STATEMENT_TIMEOUT] = "statement_timeout::text",
	[DEF_STATEMENT_TIMEOUT_MS] = "coalesce(extract(epoch FROM statement_timeout) * 1000, 0)::bigint",
	[DEF_CHANGE_LOG] = "coalesce(change_log::oid, 0)",
	[DEF_READS_CHANGE_LOG] = "EXISTS (SELECT 1 FROM pipeline.pipeline_defs u "
	"WHERE u.change_log = pipeline_defs.source) OR EXISTS (SELECT 1 FROM pipeline.captures c "
	"WHERE c.change_log = pipeline_defs.source)",
	[DEF_TRACK_HISTORY] = "track_history",
	[DEF_SOURCE_KEY] = "source_key",
	[DEF_GROUP_FILTER] = "group_filter",
	[DEF_GROUP_STATE] = "coalesce(group_state::oid, 0)",
	[DEF_ROW_STATE] = "coalesce(row_state::oid, 0)",
	[DEF_FORMAT] = "format",
	[DEF_SEQUENCE_KEPT] = "sequence_kept",
	[DEF_IGNORE_NULL_UPDATES] = "ignore_null_updates",
	[DEF_HARD_DELETES] = "hard_deletes",
	[DEF_MAX_DELETE_SHARE] = "coalesce(max_delete_share, 1)::float8::text",
	[DEF_ON_TRUNCATE] = "on_truncate",
	[DEF_EXTRACT_ID] = "extract_id",
	[DEF_EXTRACT_CLOSED] = "extract_closed::text",
	[DEF_SHARDED] = "sharded",
	[DEF_HAS_JOINS] = "EXISTS (SELECT 1 FROM pipeline.pipeline_joins j "
	"WHERE j.pipeline_id = pipeline_defs.id)",
};

/* The columns a definition is saved in, in the order of its parameters. */
typedef enum SavedColumn
{
	SAVED_NAME,
	SAVED_OWNER,
	SAVED_SOURCE,
	SAVED_TARGET,
	SAVED_TOMBSTONES,
	SAVED_KEY,
	SAVED_STRATEGY,
	SAVED_SEQUENCE_BY,
	SAVED_DELETE_WHEN,
	SAVED_COLUMNS,
	SAVED_FILTER,
	SAVED_ON_SCHEMA_CHANGE,
	SAVED_BATCH_SIZE,
	SAVED_SCHEDULE,
	SAVED_TOMBSTONE_RETENTION,
	SAVED_SEARCH_PATH,
	SAVED_SOURCE_COLUMNS,
	SAVED_STATEMENT_TIMEOUT,
	SAVED_CHANGE_LOG,
	SAVED_TRACK_HISTORY,
	SAVED_SOURCE_KEY,
	SAVED_GROUP_FILTER,
	SAVED_GROUP_STATE,
	SAVED_ROW_STATE,
	SAVED_FORMAT,
	SAVED_SEQUENCE_KEPT,
	SAVED_IGNORE_NULL_UPDATES,
	SAVED_HARD_DELETES,
	SAVED_MAX_DELETE_SHARE,
	SAVED_ON_TRUNCATE,
	SAVED_EXTRACT_ID,
	SAVED_SHARDED,
	SAVED_NCOLUMNS
} SavedColumn;

/* A saved column: its name, its parameter's type, its value ("%s" is the parameter). */
typedef struct SavedColumnSpec
{
	const char *name;
	Oid			type;
	const char *value;
} SavedColumnSpec;

static const SavedColumnSpec saved_columns[SAVED_NCOLUMNS] = {
	[SAVED_NAME] = {"name", TEXTOID, "%s"},
	[SAVED_OWNER] = {"owner", OIDOID, "%s::regrole"},
	[SAVED_SOURCE] = {"source", OIDOID, "%s::regclass"},
	[SAVED_TARGET] = {"target", OIDOID, "%s::regclass"},
	[SAVED_TOMBSTONES] = {"tombstones", OIDOID, "nullif(%s, 0)::regclass"},
	[SAVED_KEY] = {"key", TEXTARRAYOID, "%s"},
	[SAVED_STRATEGY] = {"strategy", TEXTOID, "%s"},
	[SAVED_SEQUENCE_BY] = {"sequence_by", TEXTOID, "%s"},
	[SAVED_DELETE_WHEN] = {"delete_when", TEXTOID, "%s"},
	[SAVED_COLUMNS] = {"columns", JSONBOID, "%s"},
	[SAVED_FILTER] = {"filter", TEXTOID, "%s"},
	[SAVED_ON_SCHEMA_CHANGE] = {"on_schema_change", TEXTOID, "%s"},
	[SAVED_BATCH_SIZE] = {"batch_size", INT8OID, "%s"},
	[SAVED_SCHEDULE] = {"schedule", TEXTOID, "%s"},
	[SAVED_TOMBSTONE_RETENTION] = {"tombstone_retention", TEXTOID, "%s::interval"},
	[SAVED_SEARCH_PATH] = {"search_path", TEXTOID, "%s"},
	[SAVED_SOURCE_COLUMNS] = {"source_columns", JSONBOID, "%s"},
	[SAVED_STATEMENT_TIMEOUT] = {"statement_timeout", TEXTOID, "%s::interval"},
	[SAVED_CHANGE_LOG] = {"change_log", OIDOID, "nullif(%s, 0)::regclass"},
	[SAVED_TRACK_HISTORY] = {"track_history", TEXTARRAYOID, "%s"},
	[SAVED_SOURCE_KEY] = {"source_key", TEXTARRAYOID, "%s"},
	[SAVED_GROUP_FILTER] = {"group_filter", TEXTOID, "%s"},
	[SAVED_GROUP_STATE] = {"group_state", OIDOID, "nullif(%s, 0)::regclass"},
	[SAVED_ROW_STATE] = {"row_state", OIDOID, "nullif(%s, 0)::regclass"},
	[SAVED_FORMAT] = {"format", TEXTOID, "%s"},
	[SAVED_SEQUENCE_KEPT] = {"sequence_kept", BOOLOID, "%s"},
	[SAVED_IGNORE_NULL_UPDATES] = {"ignore_null_updates", TEXTARRAYOID, "%s"},
	[SAVED_HARD_DELETES] = {"hard_deletes", TEXTOID, "%s"},
	[SAVED_MAX_DELETE_SHARE] = {"max_delete_share", FLOAT4OID, "%s"},
	[SAVED_ON_TRUNCATE] = {"on_truncate", TEXTOID, "%s"},
	[SAVED_EXTRACT_ID] = {"extract_id", TEXTOID, "%s"},
	[SAVED_SHARDED] = {"sharded", BOOLOID, "%s"},
};

static const char *const lock_clause[] = {"", " FOR SHARE", " FOR UPDATE"};

/*
 * def_select_list
 *		The SELECT list of def_columns, built once per backend.
 */
static const char *
def_select_list(void)
{
	static char *list = NULL;

	if (list == NULL)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		for (int i = 0; i < DEF_NCOLUMNS; i++)
			appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", def_columns[i]);
		list = MemoryContextStrdup(TopMemoryContext, buf.data);
		pfree(buf.data);
	}
	return list;
}

/*
 * def_oid, def_bool, def_names
 *		A column of row 0 of the last SPI result: an oid, a boolean, a
 *		text[] as a List (NIL when NULL).
 */
static Oid
def_oid(DefColumn col)
{
	bool		isnull;

	return DatumGetObjectId(pipeline_result_datum(0, col, &isnull));
}

static bool
def_bool(DefColumn col)
{
	bool		isnull;

	return DatumGetBool(pipeline_result_datum(0, col, &isnull));
}

static List *
def_names(DefColumn col, const char *what)
{
	bool		isnull;
	Datum		d = pipeline_result_datum(0, col, &isnull);

	return isnull ? NIL : pipeline_text_array_to_list(d, what);
}

/*
 * def_jsonb
 *		A jsonb column of row 0 of the last SPI result, copied.
 */
static Jsonb *
def_jsonb(DefColumn col)
{
	bool		isnull;

	return DatumGetJsonbPCopy(pipeline_result_datum(0, col, &isnull));
}

/*
 * def_from_result
 *		Builds a PipelineDef from row 0 of the last SPI result.
 */
static PipelineDef *
def_from_result(void)
{
	PipelineDef *def = palloc0(sizeof(PipelineDef));

	def->id = pipeline_result_int64(0, DEF_ID);
	def->name = pipeline_result_text(0, DEF_NAME);
	def->owner = def_oid(DEF_OWNER);
	def->source = def_oid(DEF_SOURCE);
	def->target = def_oid(DEF_TARGET);
	def->tombstones = def_oid(DEF_TOMBSTONES);
	def->key = def_names(DEF_KEY, "key");
	def->strategy = pipeline_find_strategy(pipeline_result_text(0, DEF_STRATEGY));
	def->sequence_by = pipeline_result_text(0, DEF_SEQUENCE_BY);
	def->delete_when = pipeline_result_text(0, DEF_DELETE_WHEN);
	def->columns = def_jsonb(DEF_COLUMNS);
	def->filter = pipeline_result_text(0, DEF_FILTER);
	def->on_schema_change = pipeline_result_text(0, DEF_ON_SCHEMA_CHANGE);
	def->batch_size = pipeline_result_int64(0, DEF_BATCH_SIZE);
	def->schedule = pipeline_result_text(0, DEF_SCHEDULE);
	def->tombstone_retention = pipeline_result_text(0, DEF_TOMBSTONE_RETENTION);
	def->search_path = pipeline_result_text(0, DEF_SEARCH_PATH);
	def->source_columns = def_jsonb(DEF_SOURCE_COLUMNS);
	def->paused = def_bool(DEF_PAUSED);
	def->version = (int32) pipeline_result_int64(0, DEF_VERSION);
	def->suspended = def_bool(DEF_SUSPENDED);
	def->statement_timeout = pipeline_result_text(0, DEF_STATEMENT_TIMEOUT);
	def->statement_timeout_ms = pipeline_result_int64(0, DEF_STATEMENT_TIMEOUT_MS);
	def->change_log = def_oid(DEF_CHANGE_LOG);
	def->reads_change_log = def_bool(DEF_READS_CHANGE_LOG);
	def->track_history = def_names(DEF_TRACK_HISTORY, "track_history");
	def->source_key = def_names(DEF_SOURCE_KEY, "source_key");
	def->group_filter = pipeline_result_text(0, DEF_GROUP_FILTER);
	def->group_state = def_oid(DEF_GROUP_STATE);
	def->row_state = def_oid(DEF_ROW_STATE);
	def->format = pipeline_result_text(0, DEF_FORMAT);
	def->sequence_kept = def_bool(DEF_SEQUENCE_KEPT);
	def->ignore_null_updates = def_names(DEF_IGNORE_NULL_UPDATES, "ignore_null_updates");
	def->hard_deletes = pipeline_result_text(0, DEF_HARD_DELETES);
	def->max_delete_share = (float4) strtod(pipeline_result_text(0, DEF_MAX_DELETE_SHARE), NULL);
	def->on_truncate = pipeline_result_text(0, DEF_ON_TRUNCATE);
	def->extract_id = pipeline_result_text(0, DEF_EXTRACT_ID);
	def->extract_closed = pipeline_result_text(0, DEF_EXTRACT_CLOSED);
	def->sharded = def_bool(DEF_SHARDED);
	/* last: it reads another result */
	if (def_bool(DEF_HAS_JOINS))
		def->joins = pipeline_load_joins(def->id);
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

	sql = psprintf("SELECT %s FROM pipeline.pipeline_defs WHERE %s = $1%s",
				   def_select_list(), column, lock_clause[lock]);
	pipeline_become_internal(&ctx);
	if (pipeline_exec_kept(sql, 1, &argtype, &arg, NULL, lock == DEF_LOCK_NONE, 1) == 1)
		def = def_from_result();
	pipeline_restore_user(&ctx);
	return def;
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
 * save_statement
 *		The INSERT (RETURNING id) or the UPDATE of the definition whose id
 *		is the last parameter, over saved_columns.
 */
static char *
save_statement(bool insert)
{
	StringInfoData cols;
	StringInfoData vals;

	initStringInfo(&cols);
	initStringInfo(&vals);
	for (int i = 0; i < SAVED_NCOLUMNS; i++)
	{
		const char *sep = i > 0 ? ", " : "";
		char	   *value = psprintf(saved_columns[i].value, psprintf("$%d", i + 1));

		if (insert)
		{
			appendStringInfo(&cols, "%s%s", sep, saved_columns[i].name);
			appendStringInfo(&vals, "%s%s", sep, value);
		}
		else
			appendStringInfo(&cols, "%s%s = %s", sep, saved_columns[i].name, value);
	}
	if (insert)
		return psprintf("INSERT INTO pipeline.pipeline_defs (%s) VALUES (%s) RETURNING id",
						cols.data, vals.data);
	return psprintf("UPDATE pipeline.pipeline_defs SET %s, version = version + 1, "
					"altered_at = now() WHERE id = $%d RETURNING id",
					cols.data, SAVED_NCOLUMNS + 1);
}

/*
 * text_or_null, names_or_null
 *		Binds a C string, or a List of names as text[], or NULL.
 */
static void
text_or_null(const char *s, Datum *value, char *null)
{
	*value = s ? CStringGetTextDatum(s) : (Datum) 0;
	*null = s ? ' ' : 'n';
}

static void
names_or_null(List *names, Datum *value, char *null)
{
	*value = names != NIL ? pipeline_list_to_text_array(names) : (Datum) 0;
	*null = names != NIL ? ' ' : 'n';
}

/*
 * pipeline_save_definition
 *		Inserts a definition row (insert) or updates def->id's, moving its
 *		version on; returns its id.
 */
int64
pipeline_save_definition(const PipelineDef *def, bool insert)
{
	Oid			types[SAVED_NCOLUMNS + 1];
	Datum		values[SAVED_NCOLUMNS + 1];
	char		nulls[SAVED_NCOLUMNS + 1];

	memset(nulls, ' ', sizeof(nulls));
	for (int i = 0; i < SAVED_NCOLUMNS; i++)
		types[i] = saved_columns[i].type;
	types[SAVED_NCOLUMNS] = INT8OID;
	values[SAVED_NCOLUMNS] = Int64GetDatum(def->id);
	values[SAVED_NAME] = CStringGetTextDatum(def->name);
	values[SAVED_OWNER] = ObjectIdGetDatum(def->owner);
	values[SAVED_SOURCE] = ObjectIdGetDatum(def->source);
	values[SAVED_TARGET] = ObjectIdGetDatum(def->target);
	values[SAVED_TOMBSTONES] = ObjectIdGetDatum(def->tombstones);
	names_or_null(def->key, &values[SAVED_KEY], &nulls[SAVED_KEY]);
	values[SAVED_STRATEGY] = CStringGetTextDatum(def->strategy->name);
	text_or_null(def->sequence_by, &values[SAVED_SEQUENCE_BY], &nulls[SAVED_SEQUENCE_BY]);
	text_or_null(def->delete_when, &values[SAVED_DELETE_WHEN], &nulls[SAVED_DELETE_WHEN]);
	values[SAVED_COLUMNS] = JsonbPGetDatum(def->columns);
	text_or_null(def->filter, &values[SAVED_FILTER], &nulls[SAVED_FILTER]);
	values[SAVED_ON_SCHEMA_CHANGE] = CStringGetTextDatum(def->on_schema_change);
	values[SAVED_BATCH_SIZE] = Int64GetDatum(def->batch_size);
	values[SAVED_SCHEDULE] = CStringGetTextDatum(def->schedule);
	values[SAVED_TOMBSTONE_RETENTION] = CStringGetTextDatum(def->tombstone_retention);
	values[SAVED_SEARCH_PATH] = CStringGetTextDatum(def->search_path);
	values[SAVED_SOURCE_COLUMNS] = JsonbPGetDatum(def->source_columns);
	text_or_null(def->statement_timeout, &values[SAVED_STATEMENT_TIMEOUT],
				 &nulls[SAVED_STATEMENT_TIMEOUT]);
	values[SAVED_CHANGE_LOG] = ObjectIdGetDatum(def->change_log);
	names_or_null(def->track_history, &values[SAVED_TRACK_HISTORY], &nulls[SAVED_TRACK_HISTORY]);
	names_or_null(def->source_key, &values[SAVED_SOURCE_KEY], &nulls[SAVED_SOURCE_KEY]);
	text_or_null(def->group_filter, &values[SAVED_GROUP_FILTER], &nulls[SAVED_GROUP_FILTER]);
	values[SAVED_GROUP_STATE] = ObjectIdGetDatum(def->group_state);
	values[SAVED_ROW_STATE] = ObjectIdGetDatum(def->row_state);
	text_or_null(def->format, &values[SAVED_FORMAT], &nulls[SAVED_FORMAT]);
	values[SAVED_SEQUENCE_KEPT] = BoolGetDatum(def->sequence_kept);
	names_or_null(def->ignore_null_updates, &values[SAVED_IGNORE_NULL_UPDATES],
				  &nulls[SAVED_IGNORE_NULL_UPDATES]);
	text_or_null(def->hard_deletes, &values[SAVED_HARD_DELETES], &nulls[SAVED_HARD_DELETES]);
	values[SAVED_MAX_DELETE_SHARE] = Float4GetDatum(def->max_delete_share);
	nulls[SAVED_MAX_DELETE_SHARE] = def->hard_deletes ? ' ' : 'n';
	text_or_null(def->on_truncate, &values[SAVED_ON_TRUNCATE], &nulls[SAVED_ON_TRUNCATE]);
	text_or_null(def->extract_id, &values[SAVED_EXTRACT_ID], &nulls[SAVED_EXTRACT_ID]);
	values[SAVED_SHARDED] = BoolGetDatum(def->sharded);

	pipeline_catalog_exec(save_statement(insert), insert ? SAVED_NCOLUMNS : SAVED_NCOLUMNS + 1,
						  types, values, nulls, false, 0, false);
	return pipeline_result_int64(0, 0);
}

/*
 * pipeline_delete_definition
 *		Deletes a definition row; its cursor, checks and history go with it
 *		(ON DELETE CASCADE).
 */
void
pipeline_delete_definition(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);

	pipeline_catalog_exec("DELETE FROM pipeline.pipeline_defs WHERE id = $1", 1, &type, &value,
						  NULL, false, 0, false);
}

/*
 * pipeline_save_truncated_at
 *		The floor a merge applying truncates leaves (merge_truncates.c): the
 *		latest truncate's sequence_by values, a JSON array.
 */
void
pipeline_save_truncated_at(int64 pipeline_id, const char *floor)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(pipeline_id), CStringGetTextDatum(floor)};

	pipeline_catalog_exec("UPDATE pipeline.pipeline_defs SET truncated_at = $2::jsonb WHERE id = $1",
						  2, types, values, NULL, false, 0, false);
}

/*
 * pipeline_save_extract
 *		Records an extract of a pipeline with extract_id (a JSON scalar):
 *		'applied', the latest a batch applied; else the latest its loader
 *		closed.
 */
void
pipeline_save_extract(int64 pipeline_id, const char *extract, bool applied)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(pipeline_id), CStringGetTextDatum(extract)};

	/* (once a batch, with extract_id: its plan kept) */
	pipeline_catalog_exec(applied ?
						  "UPDATE pipeline.pipeline_defs SET extract_applied = $2::jsonb WHERE id = $1" :
						  "UPDATE pipeline.pipeline_defs SET extract_closed = $2::jsonb WHERE id = $1",
						  2, types, values, NULL, false, 0, applied);
}

/*
 * pipeline_set_paused
 *		Pauses or resumes a pipeline; resuming also lifts a suspension,
 *		retention's included, and the archive marks a resumed reader that
 *		retention passed by would no longer agree with go.
 */
void
pipeline_set_paused(int64 pipeline_id, bool paused)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2];

	values[0] = Int64GetDatum(pipeline_id);
	values[1] = BoolGetDatum(paused);

	/*
	 * a resumed reader retention passed by holds rows back again: marks
	 * without it go
	 */
	if (!paused)
		pipeline_catalog_exec("DELETE FROM pipeline.archive_marks m USING pipeline.pipeline_defs d "
							  "WHERE d.id = $1 AND d.archived_unconsumed IS NOT NULL "
							  "AND m.source = d.source", 1, types, values, NULL, false, 0, false);
	pipeline_catalog_exec("UPDATE pipeline.pipeline_defs SET paused = $2, "
						  "suspended_at = CASE WHEN $2 THEN suspended_at END, "
						  "archived_unconsumed = CASE WHEN $2 THEN archived_unconsumed END "
						  "WHERE id = $1", 2, types, values, NULL, false, 0, false);
}

/*
 * pipeline_suspend
 *		Suspends a pipeline (after too many failed runs in a row).
 */
void
pipeline_suspend(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);

	pipeline_catalog_exec("UPDATE pipeline.pipeline_defs SET suspended_at = now() WHERE id = $1",
						  1, &type, &value, NULL, false, 0, false);
}

/*
 * pipeline_save_failure_policy
 *		Stores a pipeline's (table pipeline_defs) or step's (steps) own
 *		retry delays and suspension threshold; -1 stores NULL (the
 *		setting's).
 */
void
pipeline_save_failure_policy(const char *table, int64 id, int32 retry_base_ms, int32 retry_max_ms,
							 int32 suspend_after_failures)
{
	Oid			types[4] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[4] = {Int64GetDatum(id), Int32GetDatum(retry_base_ms),
	Int32GetDatum(retry_max_ms), Int32GetDatum(suspend_after_failures)};
	char		nulls[4] = {' ', retry_base_ms < 0 ? 'n' : ' ', retry_max_ms < 0 ? 'n' : ' ',
	suspend_after_failures < 0 ? 'n' : ' '};

	pipeline_catalog_exec(psprintf("UPDATE pipeline.%s SET retry_base_ms = $2, retry_max_ms = $3, "
								   "suspend_after_failures = $4 WHERE id = $1", table),
						  4, types, values, nulls, false, 0, false);
}

/*
 * pipeline_suspend_archived_unconsumed
 *		Suspends a pipeline whose unconsumed rows retention archived, with
 *		the reason.
 */
void
pipeline_suspend_archived_unconsumed(int64 pipeline_id, const char *reason)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(pipeline_id), CStringGetTextDatum(reason)};

	pipeline_catalog_exec("UPDATE pipeline.pipeline_defs SET archived_unconsumed = $2, "
						  "suspended_at = coalesce(suspended_at, now()) WHERE id = $1",
						  2, types, values, NULL, false, 0, false);
}

/*
 * pipeline_archived_unconsumed_reason
 *		Why retention suspended the pipeline, or NULL.
 */
const char *
pipeline_archived_unconsumed_reason(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);

	if (pipeline_catalog_exec("SELECT archived_unconsumed FROM pipeline.pipeline_defs "
							  "WHERE id = $1 AND archived_unconsumed IS NOT NULL",
							  1, &type, &value, NULL, false, 0, false) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
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

/*
 * pipeline_runnable_name
 *		The name of the pipeline if it may run now (not paused, not
 *		suspended, and continuous when continuous_only), else NULL.  A run
 *		worker asks before each run.
 */
char *
pipeline_runnable_name(int64 pipeline_id, bool continuous_only)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(pipeline_id), BoolGetDatum(continuous_only)};

	if (pipeline_catalog_exec("SELECT name FROM pipeline.pipeline_defs WHERE id = $1 AND NOT paused "
							  "AND suspended_at IS NULL AND (NOT $2 OR schedule = 'continuous')",
							  2, types, values, NULL, true, 1, true) != 1)
		return NULL;
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_dropped_definitions
 *		Which of the n pipeline ids no longer have a definition: stored in
 *		'dropped' (room for n), their number returned.
 */
int
pipeline_dropped_definitions(const int64 *ids, int n, int64 *dropped)
{
	Datum	   *elems = palloc(Max(n, 1) * sizeof(Datum));
	Datum		array;
	Oid			type = INT8ARRAYOID;
	int			gone;

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	array = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
											TYPALIGN_DOUBLE));
	gone = pipeline_exec_internal_kept("SELECT id FROM unnest($1) AS c(id) "
									   "WHERE NOT EXISTS (SELECT FROM pipeline.pipeline_defs d "
									   "WHERE d.id = c.id)", 1, &type, &array, NULL);
	for (int i = 0; i < gone; i++)
		dropped[i] = pipeline_result_int64(i, 0);
	return gone;
}
