/*-------------------------------------------------------------------------
 *
 * alerts.c
 *	  Alerts: changes of state worth telling someone about.
 *
 * Freshness checks changing state and pipelines starting or stopping to
 * fail raise alerts.  Each alert is a row of pipeline.alerts and a
 * NOTIFY on channel pipeline_alerts, sent when the transaction that raised
 * it commits, so a listener never hears of a change that was rolled back.
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
 * pipeline_raise_alert
 *		Records an alert and sends its id as NOTIFY pipeline_alerts (see the
 *		file comment).  The alert's payload column is kind, database,
 *		previous_state, state, message and raised_at, plus the alert's
 *		details (a JSON object as text).  The caller has an SPI connection.
 */
void
pipeline_raise_alert(const PipelineAlert *alert)
{
	Oid			types[9] = {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	OIDOID, JSONBOID};
	Datum		values[9];
	char		nulls[9];
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

	pipeline_become_internal(&ctx);
	pipeline_exec("INSERT INTO pipeline.alerts (kind, check_id, pipeline_id, subject, "
				  "previous_state, state, message, owner, payload) "
				  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, jsonb_build_object("
				  "'kind', $1, 'database', current_database(), 'previous_state', $5, "
				  "'state', $6, 'message', $7, 'raised_at', clock_timestamp()) || $9) "
				  "RETURNING jsonb_build_object('id', id)::text",
				  9, types, values, nulls, false, 1);
	Async_Notify("pipeline_alerts", pipeline_result_text(0, 0));
	pipeline_purge_history("alerts", "raised_at", NULL, 0);
	pipeline_restore_user(&ctx);
}
