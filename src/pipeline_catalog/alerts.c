/*-------------------------------------------------------------------------
 *
 * alerts.c
 *	  Alerts: changes of state worth telling someone about.
 *
 * Freshness checks changing state, pipelines and steps starting or
 * stopping to fail (pipeline_alert_streak), and data quality checks
 * changing status raise alerts.  Each alert is a
 * row of pipeline.alerts and a NOTIFY on channel pipeline_alerts, sent
 * when the transaction that raised it commits, so a listener never hears
 * of a change that was rolled back; and a delivery to each alert route it
 * matches (pipeline.add_alert_route), which the database's shipper posts.
 *
 * The NOTIFY carries the alert's id alone ({"id": 42}).  Any role may
 * LISTEN on any channel, so a channel cannot carry what only some roles
 * may see (a channel per owner would not help: LISTEN checks no
 * privilege).  A listener reads the alert by its id from pipeline.alerts,
 * whose row-level security shows it only the alerts of the roles it is a
 * member of; other roles learn only that some alert was raised.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/* An alert's message is cut to this many bytes (an error can be long). */
#define ALERT_MESSAGE_MAX 2000

/*
 * text_or_null
 *		Sets a text parameter, or marks it NULL.
 */
static void
text_or_null(const char *value, Datum *datum, char *null)
{
	*datum = value ? CStringGetTextDatum(value) : (Datum) 0;
	*null = value ? ' ' : 'n';
}

/*
 * queue_deliveries
 *		Adds a delivery of alert 'id' for every enabled route that matches
 *		it: whose owner may see it (has the privileges of the alert's
 *		owner, as the row-level security of pipeline.alerts asks), of
 *		its kind, pipeline or step and relation when the route names some, and of
 *		at least the route's severity.  The caller runs as the extension.
 */
static void
queue_deliveries(int64 id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(id);

	pipeline_exec_kept("INSERT INTO pipeline.alert_deliveries (alert_id, route_id) "
					   "SELECT a.id, r.id FROM pipeline.alerts a, pipeline.alert_routes r "
					   "WHERE a.id = $1 AND r.enabled AND pg_has_role(r.owner, a.owner, 'USAGE') "
					   "AND (r.kinds IS NULL OR a.kind = ANY (r.kinds)) "
					   "AND (r.pipelines IS NULL OR coalesce((SELECT d.name FROM pipeline.pipeline_defs d "
					   "WHERE d.id = a.pipeline_id), (SELECT s.name FROM pipeline.steps s "
					   "WHERE s.id = a.step_id)) = ANY (r.pipelines)) "
					   "AND (r.relations IS NULL OR a.relation = ANY (r.relations)) "
					   "AND pipeline.severity_rank(a.severity) >= pipeline.severity_rank(r.min_severity) "
					   "ORDER BY r.id",
					   1, &type, &value, NULL, false, 0);
}

/*
 * pipeline_raise_alert
 *		Records an alert and sends its id as NOTIFY pipeline_alerts (see the
 *		file comment).  The alert's payload column is kind, database,
 *		previous_state, state, message and raised_at, plus the alert's
 *		details (a JSON object as text).  The caller has an SPI connection.
 */
void
pipeline_raise_alert(const PipelineAlert *alert)
{
	Oid			types[11] = {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	OIDOID, JSONBOID, TEXTOID, INT8OID};
	Datum		values[11];
	char		nulls[11];
	char	   *message = NULL;
	PipelineUserContext ctx;

	if (alert->message)
		message = pnstrdup(alert->message, pg_mbcliplen(alert->message, strlen(alert->message),
														ALERT_MESSAGE_MAX));
	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(alert->kind);
	values[1] = Int64GetDatum(alert->check_id);
	nulls[1] = alert->check_id ? ' ' : 'n';
	values[2] = Int64GetDatum(alert->pipeline_id);
	nulls[2] = alert->pipeline_id ? ' ' : 'n';
	values[3] = CStringGetTextDatum(alert->subject);
	text_or_null(alert->previous_state, &values[4], &nulls[4]);
	values[5] = CStringGetTextDatum(alert->state);
	text_or_null(message, &values[6], &nulls[6]);
	values[7] = ObjectIdGetDatum(alert->owner);
	values[8] = DirectFunctionCall1(jsonb_in, CStringGetDatum(alert->details ? alert->details : "{}"));
	values[9] = CStringGetTextDatum(alert->severity);
	values[10] = Int64GetDatum(alert->step_id);
	nulls[10] = alert->step_id ? ' ' : 'n';

	pipeline_become_internal(&ctx);
	/* the relation: the freshness check's, or the pipeline's target */
	pipeline_exec("INSERT INTO pipeline.alerts (kind, check_id, pipeline_id, subject, "
				  "previous_state, state, message, owner, payload, severity, relation, step_id) "
				  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, jsonb_build_object("
				  "'kind', $1, 'database', current_database(), 'previous_state', $5, "
				  "'state', $6, 'severity', $10, 'message', $7, 'raised_at', clock_timestamp()) || $9, "
				  "$10, coalesce((SELECT f.relation FROM pipeline.freshness_checks f WHERE f.id = $2), "
				  "(SELECT d.target FROM pipeline.pipeline_defs d WHERE d.id = $3)), $11) "
				  "RETURNING jsonb_build_object('id', id)::text, id",
				  11, types, values, nulls, false, 1);
	Async_Notify("pipeline_alerts", pipeline_result_text(0, 0));
	queue_deliveries(pipeline_result_int64(0, 1));
	pipeline_purge_history("alerts", "raised_at", NULL, 0);
	pipeline_restore_user(&ctx);
}

/*
 * streak_alert
 *		Raises an alert about the run's pipeline or step changing state;
 *		the payload names it, the run, the error's SQLSTATE and the failed
 *		runs in a row.
 */
static void
streak_alert(const RunStreak *run, const char *previous, const char *state,
			 const char *severity, const char *message)
{
	PipelineAlert alert = {0};
	Oid			types[6] = {TEXTOID, INT8OID, INT8OID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(run->name);
	values[1] = Int64GetDatum(run->id);
	values[2] = Int64GetDatum(run->run_id);
	text_or_null(run->sqlstate, &values[3], &nulls[3]);
	values[4] = Int32GetDatum(run->streak);
	values[5] = CStringGetTextDatum(run->kind);
	pipeline_exec("SELECT pg_catalog.jsonb_build_object($6, $1, $6 OPERATOR(pg_catalog.||) '_id', $2, "
				  "'run_id', $3, 'sqlstate', $4, 'consecutive_failures', $5)::pg_catalog.text",
				  6, types, values, nulls, true, 1);

	alert.kind = run->kind;
	alert.severity = severity;
	if (strcmp(run->kind, "step") == 0)
		alert.step_id = run->id;
	else
		alert.pipeline_id = run->id;
	alert.subject = run->name;
	alert.previous_state = previous;
	alert.state = state;
	alert.message = message;
	alert.owner = run->owner;
	alert.details = pipeline_result_text(0, 0);
	pipeline_raise_alert(&alert);
}

/*
 * pipeline_alert_streak
 *		The alerts a finished run of a pipeline or step raises (the caller
 *		runs as the extension): idle ->
 *		failing at the first failure, failing -> suspended when the streak
 *		reaches its limit (after 'suspend' suspended it), failing -> idle at
 *		the success that ends a streak.  Returns whether it suspended it.
 */
bool
pipeline_alert_streak(const RunStreak *run, void (*suspend) (int64 id))
{
	if (strcmp(run->status, "failed") == 0)
	{
		if (run->previous_streak == 0)
			streak_alert(run, "idle", "failing", "error", run->message);
		if (run->suspend_after > 0 && !run->suspended && run->streak >= run->suspend_after)
		{
			suspend(run->id);
			streak_alert(run, "failing", "suspended", "critical",
						 psprintf("suspended after %d failed runs in a row; the last failed with: %s",
								  run->streak, run->message ? run->message : "(no message)"));
			return true;
		}
	}
	else if (strcmp(run->status, "succeeded") == 0 && run->previous_streak > 0)
		streak_alert(run, "failing", "idle", "info",
					 psprintf("run %lld succeeded after %d failed runs",
							  (long long) run->run_id, run->previous_streak));
	return false;
}
