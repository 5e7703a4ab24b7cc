/*-------------------------------------------------------------------------
 *
 * dimension_joins.c
 *	  pipeline.pipeline_joins: the dimension tables a pipeline joins its
 *	  source rows to, saved with the definition, and how far the
 *	  pipeline has followed their changes (pipeline.cursors.
 *	  dimensions_consumed, a snapshot of the logical clock).
 *
 * A join is saved once, when the pipeline is created; alter_pipeline
 * does not change joins.  The dimensions' cursor is one for all of a
 * pipeline's dimensions: the run that moves it has applied every change
 * of every dimension its snapshot sees (run.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/*
 * pipeline_load_joins
 *		The joins of a pipeline, in order (NIL: none).
 */
List *
pipeline_load_joins(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);
	List	   *joins = NIL;
	int			n;

	n = pipeline_catalog_exec("SELECT dimension::oid, change_log::oid, alias::text, kind, "
							  "source_columns, dimension_columns FROM pipeline.pipeline_joins "
							  "WHERE pipeline_id = $1 ORDER BY position",
							  1, &type, &value, NULL, true, 0, true);
	for (int i = 0; i < n; i++)
	{
		DimensionJoin *j = palloc0(sizeof(DimensionJoin));
		bool		isnull;

		j->dimension = DatumGetObjectId(pipeline_result_datum(i, 0, &isnull));
		j->change_log = DatumGetObjectId(pipeline_result_datum(i, 1, &isnull));
		j->alias = pipeline_result_text(i, 2);
		j->inner = strcmp(pipeline_result_text(i, 3), "inner") == 0;
		j->source_columns = pipeline_text_array_to_list(pipeline_result_datum(i, 4, &isnull),
														"source_columns");
		j->dimension_columns = pipeline_text_array_to_list(pipeline_result_datum(i, 5, &isnull),
														   "dimension_columns");
		joins = lappend(joins, j);
	}
	return joins;
}

/*
 * pipeline_save_joins
 *		Saves the joins of a new pipeline.
 */
void
pipeline_save_joins(const PipelineDef *def)
{
	Oid			types[8] = {INT8OID, INT4OID, OIDOID, OIDOID, TEXTOID, TEXTOID,
	TEXTARRAYOID, TEXTARRAYOID};
	ListCell   *lc;

	foreach(lc, def->joins)
	{
		DimensionJoin *j = lfirst(lc);
		Datum		values[8];

		values[0] = Int64GetDatum(def->id);
		values[1] = Int32GetDatum(foreach_current_index(lc));
		values[2] = ObjectIdGetDatum(j->dimension);
		values[3] = ObjectIdGetDatum(j->change_log);
		values[4] = CStringGetTextDatum(j->alias);
		values[5] = CStringGetTextDatum(j->inner ? "inner" : "left");
		values[6] = pipeline_list_to_text_array(j->source_columns);
		values[7] = pipeline_list_to_text_array(j->dimension_columns);
		pipeline_catalog_exec("INSERT INTO pipeline.pipeline_joins (pipeline_id, position, "
							  "dimension, change_log, alias, kind, source_columns, "
							  "dimension_columns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
							  8, types, values, NULL, false, 0, false);
	}
}

/*
 * pipeline_dimensions_read
 *		The snapshot up to which the pipeline has applied its dimensions'
 *		changes.
 */
Datum
pipeline_dimensions_read(int64 pipeline_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(pipeline_id);
	bool		isnull;
	Datum		consumed;

	if (pipeline_catalog_exec("SELECT dimensions_consumed FROM pipeline.cursors "
							  "WHERE pipeline_id = $1", 1, &type, &value, NULL, true, 1, true) != 1)
		elog(ERROR, "pipeline %lld has no cursor", (long long) pipeline_id);
	consumed = pipeline_result_datum(0, 0, &isnull);
	if (isnull)
		elog(ERROR, "pipeline %lld has joins but no dimensions cursor", (long long) pipeline_id);
	return PointerGetDatum(PG_DETOAST_DATUM_COPY(consumed));
}

/*
 * pipeline_dimensions_move
 *		The pipeline has applied every change of its dimensions that
 *		'consumed' sees; commits with the caller's step.
 */
void
pipeline_dimensions_move(int64 pipeline_id, Datum consumed)
{
	Oid			types[2] = {INT8OID, PG_SNAPSHOTOID};
	Datum		values[2] = {Int64GetDatum(pipeline_id), consumed};

	pipeline_exec_internal_kept("UPDATE pipeline.cursors SET dimensions_consumed = $2 "
								"WHERE pipeline_id = $1", 2, types, values, NULL);
}
