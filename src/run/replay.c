/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  Which staged rows a replay merges again.
 *
 * Every run records in pipeline.run_log the cursor it started from and
 * the cursor after its last committed batch (catalog/run_log.c), so the
 * rows a run consumed are exactly those the second cursor had consumed
 * and the first had not.  The runs of a pipeline follow one another and
 * its cursor only moves forward, so the rows consumed by a stretch of
 * runs are those between the first one's starting cursor and the last
 * one's final cursor, including runs whose history the retention has
 * deleted in between.  A replay selects its runs by start time and by
 * run id, takes the first and the last of them (pipeline_runs_selected),
 * and merges those rows again through the pipeline's current batch
 * statement (run.c), reading them from the staging table or, once an
 * archive pass moved them, from the archive (batch_sql.c).  It never
 * moves the cursor.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/datum.h"
#include "utils/timestamp.h"

#include "model.h"
#include "batch/batch.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"
#include "strategy.h"

/*
 * bad_range
 *		Errors about a replay's range.
 */
static void bad_range(const char *message, const char *detail) pg_attribute_noreturn();
static void
bad_range(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg_internal("%s", message),
			 errdetail_internal("%s", detail),
			 errhint("See the pipeline's runs with SELECT run_id, started_at, rows_read FROM pipeline.runs WHERE pipeline = '...'.")));
}

/*
 * pipeline_replay_check
 *		Errors when the pipeline cannot be replayed (it reads a change log,
 *		it aggregates rows that merged again would count again, or its
 *		owner may not read every row and column of its source, which the
 *		archive holds), or the range is empty by construction.
 */
void
pipeline_replay_check(const PipelineDef *def, const ReplayRequest *req)
{
	if (def->sharded)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sharded pipeline \"%s\" keeps no consumed rows to replay", def->name),
				 errdetail("Its runs take the rows they merge out of its distributed staging table."),
				 errhint("Stage the rows again to merge them again.")));
	if (def->reads_change_log)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" reads a change log, which is not archived", def->name),
				 errdetail("The pipelines reading a change log delete the rows they have all consumed, so a replay would find few of them."),
				 errhint("Replay the pipeline that writes the table it reads: the changes it makes again reach this pipeline through the change log.")));
	if (pipeline_reads_extracts(def))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" reads full extracts, which cannot be replayed", def->name),
				 errdetail("An extract deletes the keys it lacks: replaying an old one would take the target back to it."),
				 errhint("Stage the extract again: a new extract makes the target match it.")));
	if (def->strategy->groups && (def->source_key == NIL || def->sequence_by == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate pipeline \"%s\" cannot be replayed: its groups would count rows twice or go back to older rows",
						def->name),
				 errdetail("Without a source_key every staged row adds to its group again; without sequence_by an older event replaces a newer one."),
				 errhint("Only an aggregate pipeline with source_key and sequence_by applies each event once however often it is merged.")));

	/*
	 * archived rows hold every row and column: only a whole reader merges
	 * them again
	 */
	pipeline_require_read_every_row(def->source, def->owner,
									psprintf("A replay of pipeline \"%s\", which reads the archive of its source,",
											 def->name));
	if (req->has_since && req->has_until && req->since >= req->until)
		bad_range("since must be before until",
				  psprintf("A replay merges the rows of the runs started from since (%s) until before until (%s).",
						   pstrdup(timestamptz_to_str(req->since)),
						   pstrdup(timestamptz_to_str(req->until))));
	if (req->has_first && req->has_last && req->first_run > req->last_run)
		bad_range("first_run must not be after last_run",
				  psprintf("A replay merges the rows of runs %lld to %lld, which is none.",
						   (long long) req->first_run, (long long) req->last_run));
}
