/*-------------------------------------------------------------------------
 *
 * dropped_objects.c
 *	  What the catalog says about the relations a DROP removes (the sql_drop
 *	  event trigger's pg_event_trigger_dropped_objects()): the pipelines and
 *	  checks that use them, refused without CASCADE and dropped with it.
 *
 * The caller is the sql_drop event trigger, connected to SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/* Pipelines (alias d) using a relation (alias o) the DROP removed. */
#define USES_DROPPED_RELATION \
	"o.classid = 'pg_class'::regclass AND o.objsubid = 0 " \
	"AND (o.objid IN (d.source::oid, d.target::oid, d.tombstones::oid, " \
	"d.group_state::oid, d.row_state::oid) OR o.objid IN (SELECT x FROM " \
	"pipeline.pipeline_joins j, LATERAL (VALUES (j.dimension::oid), (j.change_log::oid)) v(x) " \
	"WHERE j.pipeline_id = d.id))"

/* Checks (alias c) looking rows up in a relation the DROP removed. */
#define CHECK_USES_DROPPED \
	"JOIN pg_event_trigger_dropped_objects() o " \
	"ON o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND o.objid = c.ref_table::oid"

/*
 * dropped_query
 *		Runs a statement without parameters about the dropped objects as
 *		the extension.
 */
static int
dropped_query(const char *sql, bool read_only, long limit)
{
	return pipeline_catalog_exec(sql, 0, NULL, NULL, NULL, read_only, limit, false);
}

/*
 * pipeline_change_log_dependents
 *		What goes with change log 'log' when it is dropped: the pipelines
 *		reading it and the views on it, with their owners, in one sentence
 *		part; NULL when nothing.
 */
char *
pipeline_change_log_dependents(Oid log)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(log);

	pipeline_catalog_exec("SELECT string_agg(what, ', ' ORDER BY what) FROM ("
						  "  SELECT format('pipeline %I of role %I', d.name, d.owner::text) AS what "
						  "    FROM pipeline.pipeline_defs d WHERE d.source = $1 OR d.id IN "
						  "      (SELECT j.pipeline_id FROM pipeline.pipeline_joins j WHERE j.change_log = $1) "
						  "  UNION SELECT format('view %s of role %I', v.oid::regclass, v.relowner::regrole::text) "
						  "    FROM pg_depend p JOIN pg_rewrite w ON w.oid = p.objid "
						  "    JOIN pg_class v ON v.oid = w.ev_class "
						  "   WHERE p.classid = 'pg_rewrite'::regclass AND p.refclassid = 'pg_class'::regclass "
						  "     AND p.refobjid = $1 AND v.oid <> $1) o",
						  1, &type, &value, NULL, true, 1, false);
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_dropped_capture_read
 *		Whether the DROP removes a captured table whose changes a pipeline
 *		reads: the table's identity and the pipeline's name (the first of
 *		them, so that the error is the same every time).
 */
bool
pipeline_dropped_capture_read(char **relation, char **pipeline)
{
	if (dropped_query("SELECT o.object_identity, r.name FROM pipeline.captures c "
					  "JOIN pg_event_trigger_dropped_objects() o ON o.classid = 'pg_class'::regclass "
					  "AND o.objsubid = 0 AND o.objid = c.relation::oid "
					  "JOIN pipeline.pipeline_defs r ON r.source = c.change_log OR r.id IN "
					  "(SELECT j.pipeline_id FROM pipeline.pipeline_joins j WHERE j.change_log = c.change_log) "
					  "ORDER BY o.object_identity, r.name LIMIT 1",
					  true, 1) == 0)
		return false;
	*relation = pipeline_result_text(0, 0);
	*pipeline = pipeline_result_text(0, 1);
	return true;
}

/*
 * pipeline_dropped_relation_used
 *		Whether the DROP removes a source or target of a pipeline, or a
 *		table it keeps next to its target (tombstones, aggregate state):
 *		the relation's identity and the pipeline's name (the first of them,
 *		so that the error is the same every time).
 */
bool
pipeline_dropped_relation_used(char **relation, char **pipeline)
{
	if (dropped_query("SELECT d.name, o.object_identity FROM pipeline.pipeline_defs d, "
					  "pg_event_trigger_dropped_objects() o WHERE " USES_DROPPED_RELATION
					  " ORDER BY o.object_identity, d.name",
					  true, 1) == 0)
		return false;
	*pipeline = pipeline_result_text(0, 0);
	*relation = pipeline_result_text(0, 1);
	return true;
}

/* Relations a step reads or writes (alias l) that the DROP removed (o). */
#define STEP_USES_DROPPED \
	"JOIN pg_event_trigger_dropped_objects() o ON o.classid = 'pg_class'::regclass " \
	"AND o.objsubid = 0 AND o.objid = l.relation::oid"

/*
 * steps_catalog_exists
 *		Whether the steps' catalog exists: not yet while ALTER EXTENSION
 *		UPDATE from 0.1 drops what it replaces before making it.
 */
static bool
steps_catalog_exists(void)
{
	return OidIsValid(get_relname_relid("step_relations", get_namespace_oid(PIPELINE_SCHEMA, false)));
}

/*
 * pipeline_dropped_step_relation
 *		Whether the DROP removes a relation a step reads or writes: the
 *		relation's identity and the step's name (the first of them).
 */
bool
pipeline_dropped_step_relation(char **relation, char **step)
{
	if (!steps_catalog_exists())
		return false;
	if (dropped_query("SELECT o.object_identity, s.name FROM pipeline.steps s "
					  "JOIN pipeline.step_relations l ON l.step_id = s.id " STEP_USES_DROPPED
					  " ORDER BY o.object_identity, s.name LIMIT 1",
					  true, 1) == 0)
		return false;
	*relation = pipeline_result_text(0, 0);
	*step = pipeline_result_text(0, 1);
	return true;
}

/*
 * pipeline_delete_dropped_steps
 *		With CASCADE: deletes the steps reading or writing a relation the
 *		DROP removed, those running after a pipeline it removes, and those
 *		running after them; returns their names.
 */
List *
pipeline_delete_dropped_steps(void)
{
	if (!steps_catalog_exists())
		return NIL;
	return pipeline_steps_delete("SELECT l.step_id FROM pipeline.step_relations l " STEP_USES_DROPPED
								 " UNION SELECT u.step_id FROM pipeline.step_upstreams u "
								 "JOIN pipeline.pipeline_defs d ON d.id = u.upstream_pipeline "
								 "JOIN pg_event_trigger_dropped_objects() o ON " USES_DROPPED_RELATION,
								 0, true);
}

/*
 * pipeline_delete_dropped_definitions
 *		Deletes the definitions of the pipelines using a relation the DROP
 *		removed; returns them as a List of DroppedDefinition.
 */
List *
pipeline_delete_dropped_definitions(void)
{
	List	   *dropped = NIL;
	int			n;

	n = dropped_query("DELETE FROM pipeline.pipeline_defs d "
					  "USING pg_event_trigger_dropped_objects() o WHERE " USES_DROPPED_RELATION
					  " RETURNING d.name, coalesce(d.change_log::oid, 0), "
					  "coalesce(d.tombstones::oid, 0), coalesce(d.group_state::oid, 0), "
					  "coalesce(d.row_state::oid, 0)", false, 0);
	for (int i = 0; i < n; i++)
	{
		DroppedDefinition *d = palloc0(sizeof(DroppedDefinition));
		bool		isnull;

		d->name = pipeline_result_text(i, 0);
		d->change_log = DatumGetObjectId(pipeline_result_datum(i, 1, &isnull));
		for (int col = 2; col <= 4; col++)
		{
			Oid			table = DatumGetObjectId(pipeline_result_datum(i, col, &isnull));

			if (OidIsValid(table))
				d->own_tables = lappend_oid(d->own_tables, table);
		}
		dropped = lappend(dropped, d);
	}
	return dropped;
}

/*
 * pipeline_unpublish_dropped_logs
 *		The pipelines publishing to a change log the DROP removed stop
 *		publishing (their versions move on).
 */
void
pipeline_unpublish_dropped_logs(void)
{
	dropped_query("UPDATE pipeline.pipeline_defs d SET change_log = NULL, version = version + 1 "
				  "FROM pg_event_trigger_dropped_objects() o WHERE o.classid = 'pg_class'::regclass "
				  "AND o.objsubid = 0 AND o.objid = d.change_log::oid", false, 0);
}

/*
 * pipeline_dropped_check_reference
 *		Whether the DROP removes a table a relationships check looks rows
 *		up in: the table's identity, the check's and its pipeline's names
 *		(one of them).
 */
bool
pipeline_dropped_check_reference(char **relation, char **check, char **pipeline)
{
	if (dropped_query("SELECT o.object_identity, c.name, d.name FROM pipeline.checks c "
					  "JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id "
					  CHECK_USES_DROPPED " LIMIT 1", true, 1) == 0)
		return false;
	*relation = pipeline_result_text(0, 0);
	*check = pipeline_result_text(0, 1);
	*pipeline = pipeline_result_text(0, 2);
	return true;
}

/*
 * pipeline_delete_dropped_check_references
 *		Deletes the checks looking rows up in a table the DROP removed,
 *		moving their pipelines' versions on; returns them as a List of
 *		DroppedCheck.
 */
List *
pipeline_delete_dropped_check_references(void)
{
	List	   *dropped = NIL;
	int			n;

	n = dropped_query("WITH gone AS (DELETE FROM pipeline.checks c WHERE c.id IN "
					  "(SELECT c.id FROM pipeline.checks c " CHECK_USES_DROPPED ") "
					  "RETURNING c.pipeline_id, c.name), "
					  "bumped AS (UPDATE pipeline.pipeline_defs d SET version = version + 1 "
					  "WHERE d.id IN (SELECT pipeline_id FROM gone)) "
					  "SELECT g.name, d.name FROM gone g "
					  "JOIN pipeline.pipeline_defs d ON d.id = g.pipeline_id", false, 0);
	for (int i = 0; i < n; i++)
	{
		DroppedCheck *c = palloc(sizeof(DroppedCheck));

		c->check = pipeline_result_text(i, 0);
		c->pipeline = pipeline_result_text(i, 1);
		dropped = lappend(dropped, c);
	}
	return dropped;
}
