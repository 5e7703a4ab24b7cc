/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  Which staged rows a replay merges again.
 *
 * Every run records in pipeline.run_log the cursor it started from and
 * the cursor after its last committed batch (catalog.c), so the rows a
 * run consumed are exactly those the second cursor had consumed and the
 * first had not.  The runs of a pipeline follow one another and its cursor
 * only moves forward, so the rows consumed by a stretch of runs are those
 * between the first one's starting cursor and the last one's final
 * cursor, including runs whose history the retention has deleted in
 * between.  A replay selects its runs by start time and by run id, takes
 * the first and the last of them, and merges those rows again through the
 * pipeline's current batch statement (run.c), reading them from the
 * staging table or, once an archive pass moved them, from the archive
 * (batch_sql.c).  It never moves the cursor.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/datum.h"
#include "utils/timestamp.h"

#include "model.h"
#include "common/common.h"
#include "run/run.h"

/*
 * bad_range
 *		Errors about a replay's range.
 */
static void
bad_range(const char *message, const char *detail) pg_attribute_noreturn();
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
 *		or its owner may not read every row and column of its source, which
 *		the archive holds), or the range is empty by construction.
 */
void
pipeline_replay_check(const PipelineDef *def, const ReplayRequest *req)
{
	if (def->reads_change_log)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" reads a change log, which is not archived", def->name),
				 errdetail("The pipelines reading a change log delete the rows they have all consumed, so a replay would find few of them."),
				 errhint("Replay the pipeline that writes the table it reads: the changes it makes again reach this pipeline through the change log.")));
	/* archived rows hold every row and column: only a whole reader merges them again */
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

/*
 * read_position
 *		A partial position from columns col (xid) and col + 1 (seq) of the
 *		last SPI result; invalid when NULL.
 */
static RowPosition
read_position(int col)
{
	RowPosition p = {0};
	bool		isnull;
	Datum		xid = pipeline_result_datum(0, col, &isnull);

	if (!isnull)
	{
		p.valid = true;
		p.xid = DatumGetFullTransactionId(xid);
		p.seq = pipeline_result_int64(0, col + 1);
	}
	return p;
}

/*
 * pipeline_replay_range
 *		The cursors around the runs the request selects, recorded on the
 *		replay's run 'replay_run_id'; false when it selects none.
 */
bool
pipeline_replay_range(const PipelineDef *def, const ReplayRequest *req, int64 replay_run_id,
					  ReplayRange *range)
{
	Oid			types[5] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT8OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	PipelineUserContext ctx;
	bool		isnull;
	int			found;

	values[0] = Int64GetDatum(def->id);
	values[1] = TimestampTzGetDatum(req->since);
	nulls[1] = req->has_since ? ' ' : 'n';
	values[2] = TimestampTzGetDatum(req->until);
	nulls[2] = req->has_until ? ' ' : 'n';
	values[3] = Int64GetDatum(req->first_run);
	nulls[3] = req->has_first ? ' ' : 'n';
	values[4] = Int64GetDatum(req->last_run);
	nulls[4] = req->has_last ? ' ' : 'n';
	pipeline_become_internal(&ctx);
	found = pipeline_exec("WITH runs AS (SELECT run_id FROM pipeline.run_log "
						  "WHERE pipeline_id = $1 AND kind = 'run' AND cursor_before IS NOT NULL "
						  "AND ($2::timestamptz IS NULL OR started_at >= $2) "
						  "AND ($3::timestamptz IS NULL OR started_at < $3) "
						  "AND ($4::bigint IS NULL OR run_id >= $4) "
						  "AND ($5::bigint IS NULL OR run_id <= $5)) "
						  "SELECT f.run_id, f.cursor_before, f.cursor_before_xid, f.cursor_before_seq, "
						  "l.run_id, l.cursor_after, l.cursor_after_xid, l.cursor_after_seq "
						  "FROM pipeline.run_log f, pipeline.run_log l "
						  "WHERE f.run_id = (SELECT min(run_id) FROM runs) "
						  "AND l.run_id = (SELECT max(run_id) FROM runs)",
						  5, types, values, nulls, false, 1);
	if (found == 1)
	{
		range->first_run = pipeline_result_int64(0, 0);
		range->before = datumCopy(pipeline_result_datum(0, 1, &isnull), false, -1);
		range->before_partial = read_position(2);
		range->last_run = pipeline_result_int64(0, 4);
		range->after = datumCopy(pipeline_result_datum(0, 5, &isnull), false, -1);
		range->after_partial = read_position(6);

		values[0] = Int64GetDatum(replay_run_id);
		values[1] = Int64GetDatum(range->first_run);
		values[2] = Int64GetDatum(range->last_run);
		types[1] = types[2] = INT8OID;
		pipeline_exec("UPDATE pipeline.run_log SET replayed_from_run = $2, replayed_to_run = $3 "
					  "WHERE run_id = $1", 3, types, values, NULL, false, 0);
	}
	pipeline_restore_user(&ctx);
	return found == 1;
}
