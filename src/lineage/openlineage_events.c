/*-------------------------------------------------------------------------
 *
 * openlineage_events.c
 *	  The OpenLineage outbox: the trigger recording the
 *	  facts of every run's events.
 *
 * A run's start and end each add a row to pipeline.openlineage_run_events
 * (which run, which event, when), in the run's own transaction; the
 * event's JSON is SQL over the run log and the catalog
 * (pipeline.openlineage_event in pipeline--0.1.sql), built when the outbox
 * is read, so that a run does not pay for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "model.h"
#include "base/base.h"
#include "lineage/lineage.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "settings.h"

PG_FUNCTION_INFO_V1(pipeline_openlineage_on_run);


/*
 * refuse_foreign_trigger
 *		openlineage_on_run writes the outbox as the extension: only its own
 *		row triggers on pipeline.run_log may fire it, never one a role
 *		attached to a table of its own.
 */
static void
refuse_foreign_trigger(TriggerData *trigdata)
{
	const char *name = trigdata->tg_trigger->tgname;

	if (RelationGetRelid(trigdata->tg_relation) != pipeline_catalog_relid("run_log") ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		(strcmp(name, "openlineage_on_run_start") != 0 && strcmp(name, "openlineage_on_run_end") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline.openlineage_on_run fires only on pipeline.run_log"),
				 errdetail("It was fired by trigger %s on %s; it records the OpenLineage events of runs, with the extension's rights.",
						   quote_identifier(name),
						   pipeline_qualified_name(RelationGetRelid(trigdata->tg_relation))),
				 errhint("Drop that trigger; the outbox fills itself as pipelines run.")));
}

/*
 * run_log_value
 *		A column of the run log row the trigger fired for.
 */
static Datum
run_log_value(TriggerData *trigdata, HeapTuple row, const char *column, bool *isnull)
{
	int			attnum = SPI_fnumber(trigdata->tg_relation->rd_att, column);

	if (attnum <= 0)
		elog(ERROR, "pipeline.run_log lacks its %s column", column);
	return heap_getattr(row, attnum, trigdata->tg_relation->rd_att, isnull);
}

/*
 * event_type
 *		The OpenLineage event of a run's status: START while it runs, then
 *		COMPLETE, FAIL or ABORT.
 */
static const char *
event_type(const char *status)
{
	if (strcmp(status, "running") == 0)
		return "START";
	if (strcmp(status, "succeeded") == 0)
		return "COMPLETE";
	if (strcmp(status, "failed") == 0)
		return "FAIL";
	if (strcmp(status, "cancelled") == 0)
		return "ABORT";
	elog(ERROR, "run status \"%s\" has no OpenLineage event", status);
	return NULL;				/* keep the compiler quiet */
}

/*
 * apply_retention
 *		Deletes the acknowledged events older than
 *		pipeline.openlineage_retention, and those nobody acknowledged older
 *		than pipeline.openlineage_unshipped_retention, counted in the server
 *		log while a transport is enabled (a loss then; without one, nobody
 *		ships, and the count goes to DEBUG1): an event a shipper has not
 *		taken yet stays as long as the second setting says, whatever the
 *		first.  The bound is now(), which
 *		the index on created_at can use.
 */
static void
apply_retention(void)
{
	Oid			types[3] = {INT4OID, INT4OID, INT4OID};
	Datum		values[3];
	int			shipped = pipeline_openlineage_retention;
	int			unshipped = pipeline_openlineage_unshipped_retention;
	int64		deleted_unshipped;
	bool		shipping;

	if (shipped < 0 && unshipped < 0)
		return;
	values[0] = Int32GetDatum(shipped);
	values[1] = Int32GetDatum(unshipped);
	/* the nearer of the two bounds, which every deleted event is past */
	values[2] = Int32GetDatum(shipped < 0 ? unshipped : unshipped < 0 ? shipped : Min(shipped, unshipped));
	pipeline_exec_kept("WITH gone AS (DELETE FROM pipeline.openlineage_run_events "
					   "WHERE created_at < now() - make_interval(secs => $3) "
					   "AND CASE WHEN acknowledged_at IS NOT NULL "
					   "THEN $1 >= 0 AND created_at < now() - make_interval(secs => $1) "
					   "ELSE $2 >= 0 AND created_at < now() - make_interval(secs => $2) END "
					   "RETURNING acknowledged_at) "
					   "SELECT count(*) FILTER (WHERE acknowledged_at IS NULL) FROM gone",
					   3, types, values, NULL, false, 0);
	deleted_unshipped = pipeline_result_int64(0, 0);
	if (deleted_unshipped == 0)
		return;
	/* a loss only when a transport ships: otherwise, the retention at work */
	shipping = pipeline_exec_kept("SELECT FROM pipeline.openlineage_transport WHERE enabled",
								  0, NULL, NULL, NULL, true, 1) > 0;
	ereport(shipping ? LOG : DEBUG1,
			(errmsg("pipeline deleted " INT64_FORMAT " OpenLineage events nobody acknowledged", deleted_unshipped),
			 errdetail("They were older than pipeline.openlineage_unshipped_retention (%d s).", unshipped),
			 errhint("Set an OpenLineage transport (pipeline.set_openlineage_transport) or raise the setting.")));
}

/*
 * record_event
 *		Records that run 'run_id' had event 'kind' (and, for an end whose
 *		START was not recorded -- the outbox was off when it started --
 *		its START first); a START also deletes the events older than the
 *		retention.  The caller runs as the extension, connected to SPI.
 */
static void
record_event(Datum pipeline_id, Datum run_id, const char *kind)
{
	Oid			types[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		values[3] = {pipeline_id, run_id, CStringGetTextDatum(kind)};

	if (strcmp(kind, "START") != 0)
	{
		pipeline_exec_kept("INSERT INTO pipeline.openlineage_run_events (pipeline_id, run_id, event_type) "
						   "SELECT $1, $2, v.event_type "
						   "FROM (VALUES (1, 'START'), (2, $3)) v(ord, event_type) "
						   "WHERE NOT EXISTS (SELECT 1 FROM pipeline.openlineage_run_events o "
						   "WHERE o.run_id = $2 AND o.event_type = v.event_type) ORDER BY v.ord",
						   3, types, values, NULL, false, 0);
		return;
	}
	pipeline_exec_kept("INSERT INTO pipeline.openlineage_run_events (pipeline_id, run_id, event_type) "
					   "VALUES ($1, $2, $3)", 3, types, values, NULL, false, 0);
	/* once per run */
	apply_retention();
}

/*
 * pipeline_openlineage_record_run
 *		Records the START and end events of a run written to the run log
 *		already finished (pipeline_run_record_empty), which the trigger
 *		takes for a restored run and leaves alone.  The caller is connected
 *		to SPI.
 */
void
pipeline_openlineage_record_run(int64 pipeline_id, int64 run_id, const char *status)
{
	PipelineUserContext ctx;

	if (!pipeline_openlineage_outbox)
		return;
	pipeline_become_internal(&ctx);
	record_event(Int64GetDatum(pipeline_id), Int64GetDatum(run_id), "START");
	record_event(Int64GetDatum(pipeline_id), Int64GetDatum(run_id), event_type(status));
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_openlineage_on_run
 *		AFTER INSERT and AFTER UPDATE OF status row trigger on run_log: a
 *		run that starts records its START event, a run that ends its end
 *		event, unless pipeline.openlineage_outbox is off.  A run inserted
 *		already finished (a restored run log) is history, not news; a test's
 *		run is never news.
 */
Datum
pipeline_openlineage_on_run(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	row;
	bool		isnull;
	char	   *status;
	PipelineUserContext ctx;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pipeline.openlineage_on_run must be called as a trigger");
	refuse_foreign_trigger(trigdata);
	if (!pipeline_openlineage_outbox)
		return PointerGetDatum(NULL);
	row = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple
		: trigdata->tg_trigtuple;
	status = TextDatumGetCString(run_log_value(trigdata, row, "status", &isnull));
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) && strcmp(status, "running") != 0)
		return PointerGetDatum(NULL);
	/* a test's run (pipeline.test) is rolled back: nothing to tell */
	if (strcmp(TextDatumGetCString(run_log_value(trigdata, row, "kind", &isnull)), "test") == 0)
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_become_internal(&ctx);
	record_event(run_log_value(trigdata, row, "pipeline_id", &isnull),
				 run_log_value(trigdata, row, "run_id", &isnull), event_type(status));
	pipeline_restore_user(&ctx);
	SPI_finish();
	return PointerGetDatum(NULL);
}
