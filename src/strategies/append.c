/*-------------------------------------------------------------------------
 *
 * append.c
 *	  The append strategy: every accepted row is inserted into the target.
 *
 * No key matches rows to target rows, so there are no updates, deletes or
 * sequence_by; the target needs INSERT only, and may itself be a staging
 * table other pipelines read (its rows are appended, as they expect).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"
#include "strategy.h"

/*
 * append_sql
 *		The batch statement of the append strategy.
 */
static char *
append_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
		   const char *accepted)
{
	char	   *cols,
			   *vals;

	StringInfoData sql;

	pipeline_insert_column_lists(map, "b", NIL, &cols, &vals);
	initStringInfo(&sql);
	appendStringInfo(&sql, "WITH appended AS (INSERT INTO %s AS t (%s) SELECT %s FROM %s RETURNING 1%s)",
					 pipeline_qualified_name(def->target), cols, vals,
					 accepted,
					 pipeline_published_returning(def));
	pipeline_publish_cte(&sql, def, "appended", NULL);
	appendStringInfo(&sql, " SELECT count(*), 0::bigint, 0::bigint%s FROM appended",
					 OidIsValid(def->change_log) ? ", (SELECT count(*) FROM published)" : "");
	return sql.data;
}

const PipelineStrategy pipeline_append_strategy = {
	.name = "append",
	.keyed = false,
	.batch_sql = append_sql,
};
