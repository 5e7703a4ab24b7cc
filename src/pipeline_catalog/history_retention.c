/*-------------------------------------------------------------------------
 *
 * history_retention.c
 *	  Retention of run history (of pipelines and steps), freshness results
 *	  and alerts.
 *
 * A continuous pipeline runs every second; its history must not grow the
 * catalog without bound.  Whoever adds a row (a run, a check, an alert)
 * deletes the rows of the same pipeline or check older than
 * pipeline.history_retention, through an index on (key, time), so each
 * call only touches rows that are due.  The newest run of a pipeline that
 * brought changes to its target (a replay brings none that are new) is
 * always kept: freshness checks without a column read it; so is a run
 * whose OpenLineage events a transport has not shipped yet, and the last
 * run of a pipeline or a step (the steps after it wait on its status).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/guc.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "settings.h"

/*
 * pipeline_purge_history
 *		Deletes the rows of pipeline.<table> whose <key_column> is 'key' (all
 *		rows when key_column is NULL) and whose <time_column> is older than
 *		the retention.  The caller runs as the extension.
 */
void
pipeline_purge_history(const char *table, const char *time_column, const char *key_column,
					   int64 key)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2];
	const char *keep = "";

	if (pipeline_history_retention < 0)
		return;

	/*
	 * While a transport ships, a run whose OpenLineage events are not shipped
	 * yet stays too: its events would go with it (they are kept as long as
	 * pipeline.openlineage_unshipped_retention says, and the run after).
	 * Without one, nobody ships: the history goes as set.
	 */
	if (strcmp(table, "run_log") == 0)
		keep = " AND run_id IS DISTINCT FROM (SELECT max(run_id) FROM pipeline.run_log "
			"WHERE pipeline_id = $1 AND status = 'succeeded' AND kind <> 'replay' "
			"AND rows_inserted + rows_updated + rows_deleted > 0) "
		/* the last run or replay: the steps after the pipeline wait on it */
			"AND run_id IS DISTINCT FROM (SELECT max(run_id) FROM pipeline.run_log "
			"WHERE pipeline_id = $1 AND kind IN ('run', 'replay')) "
			"AND NOT (EXISTS (SELECT FROM pipeline.openlineage_transport WHERE enabled) "
			"AND EXISTS (SELECT FROM pipeline.openlineage_run_events e "
			"WHERE e.run_id = run_log.run_id AND e.acknowledged_at IS NULL))";
	/* a step's last run (not skipped) tells the steps after it how it went */
	if (strcmp(table, "step_run_log") == 0)
		keep = " AND run_id IS DISTINCT FROM (SELECT max(r.run_id) FROM pipeline.step_run_log r "
			"WHERE r.step_id = $1 AND r.status <> 'skipped')";
	values[0] = Int64GetDatum(key);
	values[1] = Int32GetDatum(pipeline_history_retention);
	pipeline_exec_kept(psprintf("DELETE FROM pipeline.%s WHERE %s%s%s "
								"%s < now() - make_interval(secs => $2)%s",
								table, key_column ? key_column : "", key_column ? " = $1 AND" : "",
								key_column ? "" : "$1 IS NOT NULL AND", time_column, keep),
					   2, types, values, NULL, false, 0);
}
