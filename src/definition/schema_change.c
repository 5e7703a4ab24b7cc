/*-------------------------------------------------------------------------
 *
 * schema_change.c
 *	  What happens to a pipeline's target when its source's columns change:
 *	  the on_schema_change option (ignore, fail, append_new_columns,
 *	  sync_all_columns), applied at the start of a run.
 *
 * The columns a pipeline last accepted are stored with its definition
 * (pipeline_defs.source_columns).  A run compares them with the source's
 * columns now; what changed is refused, or carried to the target as its
 * owner, after which the definition's version moves on (every backend
 * rebuilds the batch statement) and the lineage is computed again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/ruleutils.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "lineage/lineage.h"
#include "pipeline_catalog/pipeline_catalog.h"

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
	{
		if (!pipeline_list_has_string(new_names, lfirst(lc)))
			appendStringInfo(&changes, " removed %s;", quote_identifier(lfirst(lc)));
	}

	if (!append)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("source of pipeline \"%s\" changed its columns", def->name),
				 errdetail("Since the pipeline was defined, the source %s:%s",
						   pipeline_qualified_name(def->source), changes.data),
				 errhint("Set on_schema_change to append_new_columns or sync_all_columns with pipeline.alter_pipeline, "
						 "or call pipeline.alter_pipeline('%s', on_schema_change => 'fail') to accept the new columns as they are.",
						 def->name)));

	target_columns = pipeline_relation_columns(def->target);
	foreach(lc, new_names)
	{
		char	   *name = lfirst(lc);
		char	   *old_type = column_type_from_json(def->source_columns, name);
		char	   *new_type = column_type_from_json(now_cols, name);
		bool		mapped = pipeline_mapping_lookup(def->columns, name, &ignored);

		if (mapped || !pipeline_follows_source(def, name))
			continue;			/* the mapping decides this column, not the
								 * source */
		if (!pipeline_list_has_string(target_columns, name))
			alter_target(def, psprintf("ADD COLUMN %s %s", quote_identifier(name), new_type));
		else if (sync && old_type != NULL && strcmp(old_type, new_type) != 0)
			alter_target(def, psprintf("ALTER COLUMN %s TYPE %s USING %s::%s",
									   quote_identifier(name), new_type,
									   quote_identifier(name), new_type));
	}
	if (sync)
	{
		foreach(lc, old_names)
		{
			char	   *name = lfirst(lc);

			if (pipeline_list_has_string(new_names, name) || pipeline_mapping_lookup(def->columns, name, &ignored) ||
				!pipeline_list_has_string(target_columns, name) || !pipeline_follows_source(def, name))
				continue;
			if (pipeline_list_has_string(def->key, name) ||
				(def->sequence_by && strcmp(def->sequence_by, name) == 0) ||
				pipeline_list_has_string(def->track_history, name))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
						 errmsg("source of pipeline \"%s\" lost column \"%s\", which the pipeline needs",
								def->name, name),
						 errdetail("\"%s\" is part of the key, the sequence_by column or track_history.", name),
						 errhint("Map the column to an expression with pipeline.alter_pipeline(columns => ...), or restore it in the source.")));
			alter_target(def, psprintf("DROP COLUMN %s", quote_identifier(name)));
		}
	}

	pipeline_store_source_columns(def->id, now_cols);
	def->source_columns = now_cols;
	def->version++;
	pipeline_save_lineage(def);
}
