/*-------------------------------------------------------------------------
 *
 * steps.c
 *	  The catalog of orchestration steps (steps/): their definitions, the
 *	  pipelines and steps each runs after, the relations each reads and
 *	  writes, and their runs.
 *
 * A step is ready when every upstream's last run succeeded: a pipeline's
 * last run or replay, a step's last run of any kind (one skipped because
 * its own upstream failed holds back the steps after it too).  Changes to
 * the graph of steps are serialised on an advisory lock, so that two
 * alters cannot each close half a circle.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/* The advisory lock (two keys) serialising changes of the graph of steps. */
#define STEP_GRAPH_LOCK "1398031698, 1196573000"

/* The columns of a step, in the order step_columns lists them. */
#define STEP_COLUMNS "s.id, s.name, s.owner::oid, s.command, s.kind, s.search_path, " \
	"s.statement_timeout::text, s.paused, coalesce(s.reads::oid[], '{}'), " \
	"coalesce(s.writes::oid[], '{}'), " \
	"coalesce(extract(epoch FROM s.statement_timeout) * 1000, 0)::bigint, " \
	"s.suspended_at IS NOT NULL, s.schedule"

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
	step->search_path = pipeline_result_text(row, 5);
	step->statement_timeout = pipeline_result_text(row, 6);
	step->paused = DatumGetBool(pipeline_result_datum(row, 7, &isnull));
	step->reads = pipeline_oid_array_to_list(pipeline_result_datum(row, 8, &isnull));
	step->writes = pipeline_oid_array_to_list(pipeline_result_datum(row, 9, &isnull));
	step->statement_timeout_ms = pipeline_result_int64(row, 10);
	step->suspended = DatumGetBool(pipeline_result_datum(row, 11, &isnull));
	step->schedule = pipeline_result_text(row, 12);
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
							  1, &type, &value, NULL, !lock, 1, true) == 0)
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
	Oid			types[10] = {INT8OID, TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	OIDARRAYOID, OIDARRAYOID, TEXTOID};
	Datum		values[10];
	char		nulls[10];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(step->id);
	values[1] = CStringGetTextDatum(step->name);
	values[2] = ObjectIdGetDatum(step->owner);
	values[3] = CStringGetTextDatum(step->command);
	values[4] = CStringGetTextDatum(step->kind);
	values[5] = CStringGetTextDatum(step->search_path);
	if (step->statement_timeout)
		values[6] = CStringGetTextDatum(step->statement_timeout);
	else
		nulls[6] = 'n';
	values[7] = pipeline_oid_list_to_array(step->reads);
	values[8] = pipeline_oid_list_to_array(step->writes);
	values[9] = CStringGetTextDatum(step->schedule);
	if (step->id == 0)
		pipeline_catalog_exec("INSERT INTO pipeline.steps (name, owner, command, kind, search_path, "
							  "statement_timeout, reads, writes, schedule) VALUES ($2, $3::oid::regrole, $4, $5, "
							  "$6, $7::interval, nullif($8, '{}')::regclass[], nullif($9, '{}')::regclass[], $10) "
							  "RETURNING id",
							  10, types, values, nulls, false, 0, false);
	else
		pipeline_catalog_exec("UPDATE pipeline.steps SET command = $4, kind = $5, "
							  "statement_timeout = $7::interval, reads = nullif($8, '{}')::regclass[], "
							  "writes = nullif($9, '{}')::regclass[], schedule = $10 WHERE id = $1 RETURNING id",
							  10, types, values, nulls, false, 0, false);
	return pipeline_result_int64(0, 0);
}

/*
 * pipeline_step_lock_row
 *		Locks a step's row against changes and new followers (they
 *		key-share-lock it) until the transaction ends.
 */
void
pipeline_step_lock_row(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);

	pipeline_catalog_exec("SELECT FROM pipeline.steps WHERE id = $1 FOR UPDATE",
						  1, &type, &value, NULL, false, 0, false);
}

/*
 * pipeline_step_set_paused
 *		Pauses or resumes a step; resuming also lifts its suspension.
 */
void
pipeline_step_set_paused(int64 step_id, bool paused)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(step_id), BoolGetDatum(paused)};

	pipeline_catalog_exec("UPDATE pipeline.steps SET paused = $2, "
						  "suspended_at = CASE WHEN $2 THEN suspended_at END WHERE id = $1",
						  2, types, values, NULL, false, 0, false);
}

/*
 * pipeline_step_find_upstream
 *		The pipeline (*is_step false) or step named 'name' a step may run
 *		after, and its owner, key-share-locked (a drop waits for the new
 *		step to commit, then finds it); errors when there is neither or
 *		both.
 */
int64
pipeline_step_find_upstream(const char *name, bool *is_step, Oid *owner)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(name);
	int			pipelines;
	int			steps;
	int64		id = 0;
	bool		isnull;

	pipelines = pipeline_catalog_exec("SELECT id, owner::oid FROM pipeline.pipeline_defs WHERE name = $1 "
									  "FOR KEY SHARE", 1, &type, &value, NULL, false, 0, false);
	if (pipelines == 1)
	{
		id = pipeline_result_int64(0, 0);
		*owner = DatumGetObjectId(pipeline_result_datum(0, 1, &isnull));
	}
	steps = pipeline_catalog_exec("SELECT id, owner::oid FROM pipeline.steps WHERE name = $1 FOR KEY SHARE",
								  1, &type, &value, NULL, false, 0, false);
	if (steps == 1)
	{
		id = pipeline_result_int64(0, 0);
		*owner = DatumGetObjectId(pipeline_result_datum(0, 1, &isnull));
	}
	if (pipelines + steps == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no pipeline or step \"%s\" to run after", name),
				 errdetail("A step runs after the pipelines and steps its argument after names."),
				 errhint("See pipeline.pipelines and pipeline.steps for the names you can use.")));
	if (pipelines + steps > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("\"%s\" names both a pipeline and a step", name),
				 errdetail("A step's upstreams are named without saying which they are."),
				 errhint("Rename the step (drop and create it again) so that no pipeline has its name.")));
	*is_step = steps == 1;
	return id;
}

/*
 * pipeline_step_set_upstreams
 *		Replaces a step's upstreams: 'upstreams' of StepUpstream *, in order,
 *		under the lock of the graph of steps, held until commit.
 */
void
pipeline_step_set_upstreams(int64 step_id, List *upstreams)
{
	Oid			types[4] = {INT8OID, INT4OID, INT8OID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	ListCell   *lc;

	values[0] = Int64GetDatum(step_id);
	/* one change of the graph at a time: two could each close half a circle */
	pipeline_catalog_exec("SELECT pg_catalog.pg_advisory_xact_lock(" STEP_GRAPH_LOCK ")",
						  0, NULL, NULL, NULL, false, 0, false);
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
 * pipeline_step_has_upstreams
 *		Whether the step runs after any pipeline or step.
 */
bool
pipeline_step_has_upstreams(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);

	return pipeline_catalog_exec("SELECT FROM pipeline.step_upstreams WHERE step_id = $1 LIMIT 1",
								 1, &type, &value, NULL, false, 1, false) > 0;
}

/*
 * pipeline_step_cycle
 *		The path by which step 'step_id' runs after itself through its
 *		upstreams ("a -> b -> a"), or NULL.  Whether it does is a walk over
 *		the steps reached (each once); the path is looked for only then.
 */
char *
pipeline_step_cycle(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);
	bool		isnull;

	pipeline_catalog_exec("WITH RECURSIVE reached(id) AS ("
						  "  SELECT u.upstream_step FROM pipeline.step_upstreams u "
						  "   WHERE u.step_id = $1 AND u.upstream_step IS NOT NULL "
						  "  UNION SELECT u.upstream_step FROM reached r "
						  "    JOIN pipeline.step_upstreams u ON u.step_id = r.id WHERE u.upstream_step IS NOT NULL) "
						  "SELECT EXISTS (SELECT FROM reached WHERE id = $1)",
						  1, &type, &value, NULL, false, 1, false);
	if (!DatumGetBool(pipeline_result_datum(0, 0, &isnull)))
		return NULL;
	pipeline_catalog_exec("WITH RECURSIVE walk(id, path) AS ("
						  "  SELECT u.upstream_step, ARRAY[u.step_id, u.upstream_step] "
						  "    FROM pipeline.step_upstreams u WHERE u.step_id = $1 AND u.upstream_step IS NOT NULL "
						  "  UNION ALL "
						  "  SELECT u.upstream_step, w.path || u.upstream_step "
						  "    FROM walk w JOIN pipeline.step_upstreams u ON u.step_id = w.id "
						  "   WHERE u.upstream_step IS NOT NULL AND w.id <> $1 "
						  "     AND u.upstream_step <> ALL (w.path[2:])) "
						  "SELECT (SELECT string_agg(s.name, ' -> ' ORDER BY p.n) "
						  "          FROM unnest(w.path) WITH ORDINALITY p(id, n) "
						  "          JOIN pipeline.steps s ON s.id = p.id) "
						  "  FROM walk w WHERE w.id = $1 LIMIT 1",
						  1, &type, &value, NULL, false, 1, false);
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_step_set_relations
 *		Replaces what a step reads and writes: what its command reads and
 *		writes ('reads', 'writes': Oid lists), and what it declared
 *		(StepDef).
 */
void
pipeline_step_set_relations(const StepDef *step, List *reads, List *writes)
{
	Oid			types[5] = {INT8OID, OIDARRAYOID, OIDARRAYOID, OIDARRAYOID, OIDARRAYOID};
	Datum		values[5] = {Int64GetDatum(step->id), pipeline_oid_list_to_array(reads),
		pipeline_oid_list_to_array(writes), pipeline_oid_list_to_array(step->reads),
	pipeline_oid_list_to_array(step->writes)};

	pipeline_catalog_exec("DELETE FROM pipeline.step_relations WHERE step_id = $1",
						  1, types, values, NULL, false, 0, false);
	pipeline_catalog_exec("INSERT INTO pipeline.step_relations "
						  "SELECT DISTINCT ON (x.relation, x.access) $1, x.relation::regclass, x.access, x.origin "
						  "FROM (SELECT r, 'read', 'command' FROM unnest($2) r "
						  "      UNION ALL SELECT w, 'write', 'command' FROM unnest($3) w "
						  "      UNION ALL SELECT r, 'read', 'declared' FROM unnest($4) r "
						  "      UNION ALL SELECT w, 'write', 'declared' FROM unnest($5) w) x(relation, access, origin) "
						  "ORDER BY x.relation, x.access, x.origin",
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
 * pipeline_steps_delete
 *		Deletes the steps 'roots' selects (SQL returning step ids, with
 *		parameter $1 'id'), and with 'cascade' the steps that run after
 *		them, recursively; returns the names deleted, in order.  The steps
 *		are found first; then their edges go, in a statement of their own,
 *		before the steps the edges name.
 */
List *
pipeline_steps_delete(const char *roots, int64 id, bool cascade)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(id), BoolGetDatum(cascade)};
	Oid			type = INT8ARRAYOID;
	Datum		doomed;
	bool		isnull;
	List	   *names = NIL;
	int			n;

	pipeline_catalog_exec(psprintf("WITH RECURSIVE doomed(id) AS (%s "
								   "  UNION SELECT u.step_id FROM doomed d "
								   "    JOIN pipeline.step_upstreams u ON u.upstream_step = d.id WHERE $2) "
								   "SELECT coalesce(array_agg(id), '{}') FROM doomed", roots),
						  2, types, values, NULL, false, 1, false);
	doomed = datumCopy(pipeline_result_datum(0, 0, &isnull), false, -1);
	pipeline_catalog_exec("DELETE FROM pipeline.step_upstreams "
						  "WHERE step_id = ANY ($1) OR upstream_step = ANY ($1)",
						  1, &type, &doomed, NULL, false, 0, false);
	n = pipeline_catalog_exec("WITH gone AS (DELETE FROM pipeline.steps WHERE id = ANY ($1) RETURNING name) "
							  "SELECT name FROM gone ORDER BY name",
							  1, &type, &doomed, NULL, false, 0, false);
	for (int i = 0; i < n; i++)
		names = lappend(names, pipeline_result_text(i, 0));
	return names;
}

/*
 * pipeline_step_failing_upstream
 *		Why step 'step_id' is not ready -- "pipeline x ended its last run
 *		failed" -- naming the first upstream whose last run did not
 *		succeed, or NULL when all did.  A pipeline's runs are its runs and
 *		replays (not its tests or requeues); a step's, all of them.
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
							  STEP_UPSTREAM_LAST_STATUS
							  "WHERE u.step_id = $1 AND l.status IS DISTINCT FROM 'succeeded' "
							  "ORDER BY u.position LIMIT 1",
							  1, &type, &value, NULL, true, 1, true) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
}

/*
 * purge_runs
 *		A step's runs past the history's retention go.
 */
static void
purge_runs(int64 step_id)
{
	PipelineUserContext ctx;

	pipeline_become_internal(&ctx);
	pipeline_purge_history("step_run_log", "finished_at", "step_id", step_id);
	pipeline_restore_user(&ctx);
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
	int64		run_id;

	/*
	 * the last finished run of each upstream it saw: on_upstream counts the
	 * later ones as new work (one running now among them)
	 */
	pipeline_catalog_exec("INSERT INTO pipeline.step_run_log (step_id, trigger, run_as, status, finished_at, "
						  "error_message, upstream_marks) VALUES ($1, $2, $3::regrole, $4, "
						  "CASE WHEN $4 <> 'running' THEN clock_timestamp() END, nullif($5, ''), "
						  "(SELECT coalesce(jsonb_object_agg(CASE WHEN u.upstream_step IS NULL "
						  "   THEN 'p' || u.upstream_pipeline ELSE 's' || u.upstream_step END, "
						  "   coalesce(CASE WHEN u.upstream_step IS NULL "
						  "     THEN (SELECT max(r.run_id) FROM pipeline.run_log r "
						  "            WHERE r.pipeline_id = u.upstream_pipeline AND r.status <> 'running') "
						  "     ELSE (SELECT max(r.run_id) FROM pipeline.step_run_log r "
						  "            WHERE r.step_id = u.upstream_step AND r.status <> 'running') END, 0)), '{}') "
						  " FROM pipeline.step_upstreams u WHERE u.step_id = $1)) "
						  "RETURNING run_id",
						  5, types, values, NULL, false, 0, true);
	run_id = pipeline_result_int64(0, 0);
	if (status != NULL)
	{
		pipeline_record_step_outcome(run_id);
		purge_runs(step_id);
	}
	return run_id;
}

/*
 * pipeline_step_fail_interrupted
 *		Marks failed the runs of a step still recorded as running.  The
 *		caller holds the step's run lock, so none of them is alive: their
 *		session ended mid-run.
 */
void
pipeline_step_fail_interrupted(int64 step_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(step_id);
	int			n;
	int64	   *run_ids;

	n = pipeline_catalog_exec("UPDATE pipeline.step_run_log SET status = 'failed', "
							  "finished_at = clock_timestamp(), error_sqlstate = '57P02', "
							  "error_message = 'run interrupted: the session running it ended (server crash or "
							  "restart, or terminated backend) before it finished' "
							  "WHERE step_id = $1 AND status = 'running' RETURNING run_id",
							  1, &type, &value, NULL, false, 0, true);
	run_ids = palloc(sizeof(int64) * Max(n, 1));

	/* the outcome of each reads and writes through SPI: their ids first */
	for (int i = 0; i < n; i++)
		run_ids[i] = pipeline_result_int64(i, 0);
	for (int i = 0; i < n; i++)
		pipeline_record_step_outcome(run_ids[i]);
}

/*
 * pipeline_running_steps
 *		The steps with a run recorded as running, as a List of int64 *.
 */
List *
pipeline_running_steps(void)
{
	List	   *ids = NIL;
	int			n;

	n = pipeline_catalog_exec("SELECT DISTINCT step_id FROM pipeline.step_run_log WHERE status = 'running'",
							  0, NULL, NULL, NULL, true, 0, false);
	for (int i = 0; i < n; i++)
	{
		int64	   *id = palloc(sizeof(int64));

		*id = pipeline_result_int64(i, 0);
		ids = lappend(ids, id);
	}
	return ids;
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
						  5, types, values, NULL, false, 0, true);
	if (SPI_processed == 1)
	{
		int64		step_id = pipeline_result_int64(0, 0);

		pipeline_record_step_outcome(run_id);
		purge_runs(step_id);
	}
}
