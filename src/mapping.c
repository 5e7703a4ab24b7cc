/*-------------------------------------------------------------------------
 *
 * mapping.c
 *	  Which target column gets which expression over the source row, and
 *	  what happens to the target when the source's columns change.
 *
 * The mapping follows dbt and Delta Live Tables: a target column is fed by
 * the same-named source column unless the pipeline's `columns` object maps
 * it to an SQL expression (or to JSON null, which leaves it out).  For a
 * target that does not exist yet, the source's columns (in order) followed
 * by the mapping's extra columns define it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pipeline.h"

/*
 * pipeline_mapping_lookup
 *		Looks a target column up in the `columns` object: returns false when
 *		it is not mapped; otherwise sets *expr (NULL for a JSON null).
 */
bool
pipeline_mapping_lookup(Jsonb *columns, const char *column, char **expr)
{
	JsonbValue	key;
	JsonbValue *val;

	key.type = jbvString;
	key.val.string.val = (char *) column;
	key.val.string.len = strlen(column);
	val = findJsonbValueFromContainer(&columns->root, JB_FOBJECT, &key);
	if (val == NULL)
		return false;
	if (val->type == jbvNull)
		*expr = NULL;
	else if (val->type == jbvString)
		*expr = pnstrdup(val->val.string.val, val->val.string.len);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mapping for column \"%s\" must be a string or null", column),
				 errdetail("The columns object maps each target column to an SQL expression over the source row, as text."),
				 errhint("Write for example {\"%s\": \"lower(%s)\"}, or null to leave the column out.",
						 column, column)));
	return true;
}

/*
 * relation_columns
 *		Names of a relation's ordinary columns, in order, skipping dropped and
 *		generated columns and the extension's _xid/_seq.
 */
static List *
relation_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *result = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char	   *name = NameStr(att->attname);

		if (att->attisdropped || att->attgenerated)
			continue;
		if (strcmp(name, PIPELINE_XID_COLUMN) == 0 || strcmp(name, PIPELINE_SEQ_COLUMN) == 0)
			continue;
		result = lappend(result, pstrdup(name));
	}
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * list_has_string
 *		Whether a List of C strings contains s.
 */
static bool
list_has_string(List *list, const char *s)
{
	ListCell   *lc;

	foreach(lc, list)
		if (strcmp(lfirst(lc), s) == 0)
			return true;
	return false;
}

/*
 * follows_source
 *		Whether a source column the mapping does not name goes to the target
 *		by itself: all do, but a change log's own (_op, _for), which a
 *		reader maps only when asked to, and the version columns an scd2
 *		pipeline writes itself (its source may be another scd2 target).
 */
static bool
follows_source(const PipelineDef *def, const char *column)
{
	return !(def->reads_change_log && pipeline_is_change_log_column(column)) &&
		!pipeline_is_version_column(def, column);
}

/*
 * add_column
 *		Appends a ColumnMap to the mapping.
 */
static void
add_column(PipelineMapping *map, const PipelineDef *def, const char *column, char *expr)
{
	ColumnMap  *cm = palloc0(sizeof(ColumnMap));

	cm->column = pstrdup(column);
	cm->expr = expr;
	cm->is_key = list_has_string(def->key, column);
	map->columns = lappend(map->columns, cm);
}

/*
 * pipeline_build_mapping
 *		The column mapping of a pipeline against the current source and
 *		target.  Expression types are left unset (see define.c's probe).
 */
PipelineMapping *
pipeline_build_mapping(const PipelineDef *def)
{
	PipelineMapping *map = palloc0(sizeof(PipelineMapping));
	ListCell   *lc;
	char	   *expr;

	map->source_columns = relation_columns(def->source);
	map->target_exists = OidIsValid(def->target) &&
		SearchSysCacheExists1(RELOID, ObjectIdGetDatum(def->target));

	if (map->target_exists)
	{
		List	   *target_columns = relation_columns(def->target);

		foreach(lc, target_columns)
		{
			char	   *column = lfirst(lc);

			if (pipeline_is_version_column(def, column))
				continue;
			if (pipeline_mapping_lookup(def->columns, column, &expr))
			{
				if (expr != NULL)
					add_column(map, def, column, expr);
			}
			else if (list_has_string(map->source_columns, column))
				add_column(map, def, column, pstrdup(quote_identifier(column)));
		}
		return map;
	}

	/*
	 * A new target: the source's columns (but a change log's own, unless
	 * mapped), then the mapping's extra ones.
	 */
	foreach(lc, map->source_columns)
	{
		char	   *column = lfirst(lc);

		if (!pipeline_mapping_lookup(def->columns, column, &expr))
		{
			if (!follows_source(def, column))
				continue;
			expr = pstrdup(quote_identifier(column));
		}
		if (expr != NULL)
			add_column(map, def, column, expr);
	}
	{
		JsonbIterator *it = JsonbIteratorInit(&def->columns->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *column;

			if (tok != WJB_KEY)
				continue;
			column = pnstrdup(v.val.string.val, v.val.string.len);
			if (!list_has_string(map->source_columns, column) &&
				pipeline_mapping_lookup(def->columns, column, &expr) && expr != NULL)
				add_column(map, def, column, expr);
		}
	}
	return map;
}

/*
 * pipeline_mapping_column
 *		The mapping of one target column, or NULL when it is not written.
 */
ColumnMap *
pipeline_mapping_column(const PipelineMapping *map, const char *column)
{
	ListCell   *lc;

	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		if (strcmp(cm->column, column) == 0)
			return cm;
	}
	return NULL;
}

/*
 * pipeline_mapping_column_list
 *		"a, b, c": the mapped target columns, quoted, in order.
 */
char *
pipeline_mapping_column_list(const PipelineMapping *map)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, map->columns)
		names = lappend(names, ((ColumnMap *) lfirst(lc))->column);
	return pipeline_quote_list(names, NULL);
}

/*
 * column_type_from_json
 *		The "type" of the entry named 'name' in a source_columns array, or
 *		NULL when absent.
 */
static char *
column_type_from_json(Jsonb *columns, const char *name)
{
	JsonbIterator *it = JsonbIteratorInit(&columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *current_name = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_KEY && v.val.string.len == 4 &&
			strncmp(v.val.string.val, "name", 4) == 0)
		{
			tok = JsonbIteratorNext(&it, &v, false);
			current_name = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else if (tok == WJB_KEY && v.val.string.len == 4 &&
				 strncmp(v.val.string.val, "type", 4) == 0)
		{
			tok = JsonbIteratorNext(&it, &v, false);
			if (current_name && strcmp(current_name, name) == 0)
				return pnstrdup(v.val.string.val, v.val.string.len);
		}
	}
	return NULL;
}

/*
 * column_names_from_json
 *		The names in a source_columns array.
 */
static List *
column_names_from_json(Jsonb *columns)
{
	JsonbIterator *it = JsonbIteratorInit(&columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *names = NIL;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
		if (tok == WJB_KEY && v.val.string.len == 4 &&
			strncmp(v.val.string.val, "name", 4) == 0)
		{
			JsonbIteratorNext(&it, &v, false);
			names = lappend(names, pnstrdup(v.val.string.val, v.val.string.len));
		}
	return names;
}

/*
 * alter_target
 *		Runs one ALTER TABLE on the target as the pipeline's owner.
 */
static void
alter_target(const PipelineDef *def, const char *action)
{
	PipelineUserContext ctx;
	char	   *sql = psprintf("ALTER TABLE %s %s", pipeline_qualified_name(def->target), action);

	pipeline_become_owner(def, &ctx);
	pipeline_exec(sql, 0, NULL, NULL, NULL, false, 0);
	pipeline_restore_user(&ctx);
	ereport(NOTICE,
			(errmsg("pipeline \"%s\": %s", def->name, sql)));
}

/*
 * pipeline_apply_schema_change
 *		Compares the source's columns with those the pipeline last accepted
 *		and acts as on_schema_change says: ignore, fail, append_new_columns
 *		or sync_all_columns.  Called at the start of a run.
 */
void
pipeline_apply_schema_change(PipelineDef *def)
{
	Jsonb	   *now_cols = pipeline_source_columns_json(def->source);
	List	   *old_names,
			   *new_names;
	StringInfoData changes;
	ListCell   *lc;
	bool		sync = strcmp(def->on_schema_change, "sync_all_columns") == 0;
	bool		append = sync || strcmp(def->on_schema_change, "append_new_columns") == 0;
	List	   *target_columns;
	char	   *ignored;

	if (compareJsonbContainers(&now_cols->root, &def->source_columns->root) == 0)
		return;
	if (strcmp(def->on_schema_change, "ignore") == 0)
		return;

	old_names = column_names_from_json(def->source_columns);
	new_names = column_names_from_json(now_cols);
	initStringInfo(&changes);
	foreach(lc, new_names)
	{
		char	   *name = lfirst(lc);
		char	   *old_type = column_type_from_json(def->source_columns, name);
		char	   *new_type = column_type_from_json(now_cols, name);

		if (old_type == NULL)
			appendStringInfo(&changes, " added %s %s;", quote_identifier(name), new_type);
		else if (strcmp(old_type, new_type) != 0)
			appendStringInfo(&changes, " changed %s from %s to %s;",
							 quote_identifier(name), old_type, new_type);
	}
	foreach(lc, old_names)
		if (!list_has_string(new_names, lfirst(lc)))
			appendStringInfo(&changes, " removed %s;", quote_identifier(lfirst(lc)));

	if (!append)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("source of pipeline \"%s\" changed its columns", def->name),
				 errdetail("Since the pipeline was defined, the source %s:%s",
						   pipeline_qualified_name(def->source), changes.data),
				 errhint("Set on_schema_change to append_new_columns or sync_all_columns with pipeline.alter_pipeline, "
						 "or call pipeline.alter_pipeline('%s', on_schema_change => 'fail') to accept the new columns as they are.",
						 def->name)));

	target_columns = relation_columns(def->target);
	foreach(lc, new_names)
	{
		char	   *name = lfirst(lc);
		char	   *old_type = column_type_from_json(def->source_columns, name);
		char	   *new_type = column_type_from_json(now_cols, name);
		bool		mapped = pipeline_mapping_lookup(def->columns, name, &ignored);

		if (mapped || !follows_source(def, name))
			continue;			/* the mapping decides this column, not the source */
		if (!list_has_string(target_columns, name))
			alter_target(def, psprintf("ADD COLUMN %s %s", quote_identifier(name), new_type));
		else if (sync && old_type != NULL && strcmp(old_type, new_type) != 0)
			alter_target(def, psprintf("ALTER COLUMN %s TYPE %s USING %s::%s",
									   quote_identifier(name), new_type,
									   quote_identifier(name), new_type));
	}
	if (sync)
		foreach(lc, old_names)
		{
			char	   *name = lfirst(lc);

			if (list_has_string(new_names, name) || pipeline_mapping_lookup(def->columns, name, &ignored) ||
				!list_has_string(target_columns, name) || !follows_source(def, name))
				continue;
			if (list_has_string(def->key, name) ||
				(def->sequence_by && strcmp(def->sequence_by, name) == 0) ||
				list_has_string(def->track_history, name))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
						 errmsg("source of pipeline \"%s\" lost column \"%s\", which the pipeline needs",
								def->name, name),
						 errdetail("\"%s\" is part of the key, the sequence_by column or track_history.", name),
						 errhint("Map the column to an expression with pipeline.alter_pipeline(columns => ...), or restore it in the source.")));
			alter_target(def, psprintf("DROP COLUMN %s", quote_identifier(name)));
		}

	pipeline_store_source_columns(def->id, now_cols);
	def->source_columns = now_cols;
	def->version++;
	pipeline_save_lineage(def);
}
