/*-------------------------------------------------------------------------
 *
 * steps.c
 *	  The catalog of orchestration steps (steps/): their definitions, the
 *	  pipelines and steps each runs after, the relations each reads and
 *	  writes, and their runs.
 *
 * A step is ready when every upstream's last run succeeded; a step run
 * after its upstreams (schedule 'upstream') is due when it is ready and
 * an upstream did work since the step last started: a pipeline run that
 * wrote rows, or a step run that succeeded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/* The columns of a step, in the order step_columns lists them. */
#define STEP_COLUMNS "s.id, s.name, s.owner::oid, s.command, s.kind, s.schedule, s.search_path, " \
	"s.statement_timeout::text, s.paused, coalesce(s.reads::oid[], '{}'), " \
	"coalesce(s.writes::oid[], '{}'), " \
	"coalesce(extract(epoch FROM s.statement_timeout) * 1000, 0)::bigint"

/*
 * step_from_row
 *		The step of row 'row' of the last result (STEP_COLUMNS).
 */
static StepDef *
step_from_row(int row)
{
	StepDef    *step = palloc0(sizeof(StepDef));
	bool		isnull;

	step->id = pipeline_result_int64(row, 0);
	step->name = pipeline_result_text(row, 1);
	step->owner = DatumGetObjectId(pipeline_result_datum(row, 2, &isnull));
	step->command = pipeline_result_text(row, 3);
	step->kind = pipeline_result_text(row, 4);
	step->schedule = pipeline_result_text(row, 5);
	step->search_path = pipeline_result_text(row, 6);
	step->statement_timeout = pipeline_result_text(row, 7);
	step->paused = DatumGetBool(pipeline_result_datum(row, 8, &isnull));
	step->reads = pipeline_oid_array_to_list(pipeline_result_datum(row, 9, &isnull));
	step->writes = pipeline_oid_array_to_list(pipeline_result_datum(row, 10, &isnull));
	step->statement_timeout_ms = pipeline_result_int64(row, 11);
	return step;
}

/*
 * pipeline_step_load
 *		The step named 'name' (NULL when there is none and 'missing_ok'),
 *		share-locked when 'lock' (a run: alter and drop wait for it).
 */
StepDef *
pipeline_step_load(const char *name, bool missing_ok, bool lock)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(name ? name : "");

	if (pipeline_catalog_exec(psprintf("SELECT " STEP_COLUMNS " FROM pipeline.steps s WHERE s.name = $1%s",
									   lock ? " FOR SHARE" : ""),
							  1, &type, &value, NULL, !lock, 1, false) == 0)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("step \"%s\" does not exist", name ? name : ""),
				 errdetail("No step of that name is defined in this database."),
				 errhint("See SELECT name FROM pipeline.steps for the steps you can manage.")));
	}
	return step_from_row(0);
}

/*
 * pipeline_step_save
 *		Inserts a step (its id 0) or updates it; returns its id.
 */
int64
pipeline_step_save(const StepDef *step)
{
	Oid			types[10] = {INT8OID, TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	OIDARRAYOID, OIDARRAYOID};
	Datum		values[10];
	char		nulls[10];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(step->id);
	values[1] = CStringGetTextDatum(step->name);
	values[2] = ObjectIdGetDatum(step->owner);
	values[3] = CStringGetTextDatum(step->command);
	values[4] = CStringGetTextDatum(step->kind);
	values[5] = CStringGetTextDatum(step->schedule);
	values[6] = CStringGetTextDatum(step->search_path);
	if (step->statement_timeout)
		values[7] = CStringGetTextDatum(step->statement_timeout);
	else
		nulls[7] = 'n';
	values[8] = pipeline_oid_list_to_array(step->reads);
	values[9] = pipeline_oid_list_to_array(step->writes);
	if (step->id == 0)
		pipeline_catalog_exec("INSERT INTO pipeline.steps (name, owner, command, kind, schedule, "
							  "search_path, statement_timeout, reads, writes) VALUES ($2, $3::oid::regrole, "
							  "$4, $5, $6, $7, $8::interval, nullif($9, '{}')::regclass[], "
							  "nullif($10, '{}')::regclass[]) RETURNING id",
							  10, types, values, nulls, false, 0, false);
	else
		pipeline_catalog_exec("UPDATE pipeline.steps SET command = $4, kind = $5, schedule = $6, "
							  "statement_timeout = $8::interval, reads = nullif($9, '{}')::regclass[], "
							  "writes = nullif($10, '{}')::regclass[] WHERE id = $1 RETURNING id",
							  10, types, values, nulls, false, 0, false);
	return pipeline_result_int64(0, 0);
}

/*
 * pipeline_step_set_paused
 *		Pauses or resumes a step.
 */
void
pipeline_step_set_paused(int64 step_id, bool paused)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(step_id), BoolGetDatum(paused)};

	pipeline_catalog_exec("UPDATE pipeline.steps SET paused = $2 WHERE id = $1",
						  2, types, values, NULL, false, 0, false);
}

/*
 * pipeline_step_find_upstream
 *		The pipeline (*is_step false) or step named 'name' a step may run
 *		after, and its owner; errors when there is neither or both.
 */
int64
pipeline_step_find_upstream(const char *name, bool *is_step, Oid *owner)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(name);
	bool		isnull;
	int			n;

	n = pipeline_catalog_exec("SELECT false, id, owner::oid FROM pipeline.pipeline_defs WHERE name = $1 "
							  "UNION ALL SELECT true, id, owner::oid FROM pipeline.steps WHERE name = $1",
							  1, &type, &value, NULL, true, 0, false);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no pipeline or step \"%s\" to run after", name),
				 errdetail("A step runs after the pipelines and steps its argument after names."),
				 errhint("See pipeline.pipelines and pipeline.steps for the names you can use.")));
	if (n > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("\"%s\" names both a pipeline and a step", name),
				 errdetail("A step's upstreams are named without saying which they are."),
				 errhint("Rename the step (drop and create it again) so that no pipeline has its name.")));
	*is_step = DatumGetBool(pipeline_result_datum(0, 0, &isnull));
	*owner = DatumGetObjectId(pipeline_result_datum(0, 2, &isnull));
	return pipeline_result_int64(0, 1);
}

/*
 * pipeline_step_set_upstreams
 *		Replaces a step's upstreams: 'upstreams' of StepUpstream *, in order.
 */
void
pipeline_step_set_upstreams(int64 step_id, List *upstreams)
{
	Oid			types[4] = {INT8OID, INT4OID, INT8OID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	ListCell   *lc;

	values[0] = Int64GetDatum(step_id);
	pipeline_catalog_exec("DELETE FROM pipeline.step_upstreams WHERE step_id = $1",
						  1, types, values, NULL, false, 0, false);
	foreach(lc, upstreams)
	{
		StepUpstream *u = lfirst(lc);

		values[1] = Int32GetDatum(foreach_current_index(lc));
		values[2] = values[3] = Int64GetDatum(u->id);
		nulls[2] = u->is_step ? 'n' : ' ';
		nulls[3] = u->is_step ? ' ' : 'n';
		pipeline_catalog_exec("INSERT INTO pipeline.step_upstreams VALUES ($1, $2, $3, $4)",
							  4, types, values, nulls, false, 0, false);
	}
}

/*
 * pipeline_step_cycle
 *		The path by which step 'step_id' already runs after itself through
 *		its upstreams ("a -> b -> a"), or NULL.
 */
char *
pipeline_step_cycle(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);

	if (pipeline_catalog_exec("WITH RECURSIVE walk(id, path) AS ("
							  "  SELECT u.upstream_step, ARRAY[u.step_id, u.upstream_step] "
							  "    FROM pipeline.step_upstreams u WHERE u.step_id = $1 AND u.upstream_step IS NOT NULL "
							  "  UNION ALL "
							  "  SELECT u.upstream_step, w.path || u.upstream_step "
							  "    FROM walk w JOIN pipeline.step_upstreams u ON u.step_id = w.id "
							  "   WHERE u.upstream_step IS NOT NULL AND w.id <> $1) "
							  "SELECT (SELECT string_agg(s.name, ' -> ' ORDER BY p.n) "
							  "          FROM unnest(w.path) WITH ORDINALITY p(id, n) "
							  "          JOIN pipeline.steps s ON s.id = p.id) "
							  "  FROM walk w WHERE w.id = $1 LIMIT 1",
							  1, &type, &value, NULL, false, 1, false) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_step_set_lineage
 *		Replaces a step's lineage: each relation it reads to each it writes
 *		(a relation to itself left out), those its command reads and writes
 *		('reads', 'writes': Oid lists) and those it declared (StepDef).
 */
void
pipeline_step_set_lineage(const StepDef *step, List *reads, List *writes)
{
	Oid			types[5] = {INT8OID, OIDARRAYOID, OIDARRAYOID, OIDARRAYOID, OIDARRAYOID};
	Datum		values[5] = {Int64GetDatum(step->id), pipeline_oid_list_to_array(reads),
		pipeline_oid_list_to_array(writes), pipeline_oid_list_to_array(step->reads),
	pipeline_oid_list_to_array(step->writes)};

	pipeline_catalog_exec("DELETE FROM pipeline.step_lineage WHERE step_id = $1",
						  1, types, values, NULL, false, 0, false);
	pipeline_catalog_exec("INSERT INTO pipeline.step_lineage "
						  "SELECT DISTINCT $1, r::regclass, w::regclass, "
						  "CASE WHEN r = ANY ($2) AND w = ANY ($3) THEN 'command' ELSE 'declared' END "
						  "FROM unnest($2 || $4) r, unnest($3 || $5) w WHERE r <> w",
						  5, types, values, NULL, false, 0, false);
}

/*
 * pipeline_step_followers
 *		The steps that run after pipeline (or step, 'is_step') 'id', their
 *		names comma-separated, or NULL when none does.
 */
char *
pipeline_step_followers(int64 id, bool is_step)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(id);
	bool		isnull;
	Datum		names;

	pipeline_catalog_exec(psprintf("SELECT string_agg(DISTINCT s.name, ', ') FROM pipeline.step_upstreams u "
								   "JOIN pipeline.steps s ON s.id = u.step_id WHERE u.%s = $1",
								   is_step ? "upstream_step" : "upstream_pipeline"),
						  1, &type, &value, NULL, true, 1, false);
	names = pipeline_result_datum(0, 0, &isnull);
	return isnull ? NULL : TextDatumGetCString(names);
}

/*
 * pipeline_step_delete
 *		Deletes a step, and with 'cascade' the steps that run after it,
 *		recursively; returns the names of those it deleted besides it.
 */
List *
pipeline_step_delete(int64 step_id, bool cascade)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(step_id), BoolGetDatum(cascade)};
	List	   *followers = NIL;
	int			n;

	n = pipeline_catalog_exec("WITH RECURSIVE doomed(id) AS ("
							  "  SELECT $1::bigint "
							  "  UNION SELECT u.step_id FROM doomed d "
							  "    JOIN pipeline.step_upstreams u ON u.upstream_step = d.id WHERE $2) "
							  ", gone AS (DELETE FROM pipeline.steps s USING doomed d WHERE s.id = d.id "
							  "RETURNING s.id, s.name) SELECT id, name FROM gone ORDER BY name",
							  2, types, values, NULL, false, 0, false);
	for (int i = 0; i < n; i++)
		if (pipeline_result_int64(i, 0) != step_id)
			followers = lappend(followers, pipeline_result_text(i, 1));
	return followers;
}

/*
 * pipeline_step_failing_upstream
 *		Why step 'step_id' is not ready -- "pipeline "x" failed" -- naming
 *		the first upstream whose last run did not succeed, or NULL when all
 *		did.  A pipeline's runs are its runs and replays (not its tests).
 */
char *
pipeline_step_failing_upstream(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);

	if (pipeline_catalog_exec("SELECT format('%s %I %s', CASE WHEN u.upstream_step IS NULL THEN 'pipeline' "
							  "ELSE 'step' END, coalesce(d.name, s.name), "
							  "coalesce(CASE l.status WHEN 'running' THEN 'has not finished its last run' "
							  "ELSE 'ended its last run ' || l.status END, 'has not run yet')) "
							  "FROM pipeline.step_upstreams u "
							  "LEFT JOIN pipeline.pipeline_defs d ON d.id = u.upstream_pipeline "
							  "LEFT JOIN pipeline.steps s ON s.id = u.upstream_step "
							  "LEFT JOIN LATERAL ("
							  "  SELECT r.status FROM pipeline.run_log r WHERE r.pipeline_id = u.upstream_pipeline "
							  "     AND r.kind IN ('run', 'replay') ORDER BY r.run_id DESC LIMIT 1) l0 ON true "
							  "LEFT JOIN LATERAL ("
							  "  SELECT r.status FROM pipeline.step_run_log r WHERE r.step_id = u.upstream_step "
							  "     AND r.status <> 'skipped' ORDER BY r.run_id DESC LIMIT 1) l1 ON true, "
							  "LATERAL (SELECT coalesce(l0.status, l1.status) AS status) l "
							  "WHERE u.step_id = $1 AND l.status IS DISTINCT FROM 'succeeded' "
							  "ORDER BY u.position LIMIT 1",
							  1, &type, &value, NULL, true, 1, false) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_step_run_start
 *		Records a step's run as running (or, 'status' given, as finished
 *		with that status and 'message'); returns its id.
 */
int64
pipeline_step_run_start(int64 step_id, const char *trigger, const char *status, const char *message)
{
	Oid			types[5] = {INT8OID, TEXTOID, OIDOID, TEXTOID, TEXTOID};
	Datum		values[5] = {Int64GetDatum(step_id), CStringGetTextDatum(trigger),
		ObjectIdGetDatum(GetUserId()), CStringGetTextDatum(status ? status : "running"),
	CStringGetTextDatum(message ? message : "")};

	pipeline_catalog_exec("INSERT INTO pipeline.step_run_log (step_id, trigger, run_as, status, finished_at, "
						  "error_message) VALUES ($1, $2, $3::regrole, $4, "
						  "CASE WHEN $4 <> 'running' THEN clock_timestamp() END, nullif($5, '')) "
						  "RETURNING run_id",
						  5, types, values, NULL, false, 0, false);
	return pipeline_result_int64(0, 0);
}

/*
 * pipeline_step_run_finish
 *		Records how a step's run ended: 'rows' the command affected (-1:
 *		not a count), or the error's SQLSTATE and message.
 */
void
pipeline_step_run_finish(int64 run_id, const char *status, int64 rows, const char *sqlstate,
						 const char *message)
{
	Oid			types[5] = {INT8OID, TEXTOID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[5] = {Int64GetDatum(run_id), CStringGetTextDatum(status), Int64GetDatum(rows),
	CStringGetTextDatum(sqlstate ? sqlstate : ""), CStringGetTextDatum(message ? message : "")};

	pipeline_catalog_exec("UPDATE pipeline.step_run_log SET status = $2, finished_at = clock_timestamp(), "
						  "rows_affected = CASE WHEN $2 = 'succeeded' AND $3 >= 0 THEN $3 END, "
						  "error_sqlstate = nullif($4, ''), error_message = nullif($5, '') "
						  "WHERE run_id = $1 RETURNING step_id",
						  5, types, values, NULL, false, 0, false);
	if (SPI_processed == 1)
	{
		PipelineUserContext ctx;
		int64		step_id = pipeline_result_int64(0, 0);

		pipeline_become_internal(&ctx);
		pipeline_purge_history("step_run_log", "finished_at", "step_id", step_id);
		pipeline_restore_user(&ctx);
	}
}
