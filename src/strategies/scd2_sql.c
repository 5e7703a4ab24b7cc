/*-------------------------------------------------------------------------
 *
 * scd2_sql.c
 *	  Builds the batch statement of the scd2 strategy: events slotted into
 *	  each key's history of versions, set-based, in one statement.
 *
 * A key's history is a sequence of points in sequence_by order, each
 * setting the key's state from there on: an upsert (the row's values) or a
 * delete (no row).  Versions are the stretches between the points that
 * change the tracked columns or the key's existence; the points in between
 * change nothing tracked, and the last of them gives the version its other
 * (untracked) columns, sequence_by included.  So each stored version
 * stands for the points:
 *
 *	- its start, with its values;
 *	- the newest event applied to it (its sequence_by value, when later than
 *	  its start, or equal to its end when a delete closed it there), with
 *	  its values: a late event falling before it does not override it;
 *	- a delete at its end, when no version starts there.
 *
 * and the tombstone table (with delete_when) remembers every delete, also
 * those that found no version to close: a late event before one ends there.
 *
 * Events of one key with the same sequence_by value are ordered by arrival
 * (what is stored arrived before the batch, whose events arrive in (_xid,
 * _seq) order), and the later arrival wins, as in the merge strategy: of
 * two upserts the later replaces the earlier, an upsert after a delete
 * replaces it (the key exists from there on), and a delete after an upsert
 * closes the upsert's version -- at that same value, so a version that
 * starts there is kept as an empty one, [s, s), never erased.  So at one
 * value a key has at most two points: an upsert, then a delete.
 *
 * A batch takes, for each key it has events for, the stored versions that
 * end at or after the key's earliest event (the part of the history the
 * events can change; for events in order, the current version) and the
 * deletes remembered from there on, turns them into points, adds the
 * batch's events (by the rules above), and cuts the points into versions
 * again.  Comparing them with the stored ones by
 * (key, __start_at) gives what to delete (a version merged into its
 * neighbour), update (closed, cut short, untracked columns) and insert --
 * in that order, so that no index ever sees two current versions of a key
 * or two versions with one start.  Every point, event or stored, passes
 * through the same rules, which is why a late event splits the version it
 * falls into, a delete closes one, an event after a delete reopens the key,
 * and several events of one key in one batch are each slotted where they
 * belong.
 *
 * Columns are compared as the target stores them: each event is first
 * converted to the target's column types as an INSERT would convert it.
 *
 * The statement returns versions inserted, versions updated or merged
 * away, delete events applied, and stale events: those that changed no
 * version (neither the one they start, close or last updated was written).
 * Internal columns start with __pl_, as in batch_sql.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"

/*
 * The order of a key's points: by sequence_by value, and at one value an
 * upsert before the delete that closed it there.
 */
#define POINT_ORDER "__pl_at, __pl_live DESC"

/*
 * assigned
 *		SQL converting 'value' to the type of a target column as an INSERT
 *		would: a cast to the type, then its length coercion as an
 *		assignment (which refuses a string too long, where a cast to
 *		varchar(n) would cut it).
 */
static char *
assigned(const PipelineDef *def, const char *column, const char *value)
{
	Oid			type;
	int32		typmod;
	Oid			func;
	char	   *sql;

	pipeline_target_column_type(def, column, &type, &typmod);
	sql = psprintf("CAST(%s AS %s)", value, format_type_with_typemod(type, -1));
	if (typmod < 0 || find_typmod_coercion_function(type, &func) != COERCION_PATH_FUNC)
		return sql;
	return psprintf("%s(%s, %d%s)",
					quote_qualified_identifier(get_namespace_name(get_func_namespace(func)),
											   get_func_name(func)),
					sql, typmod, get_func_nargs(func) == 3 ? ", false" : "");
}

/*
 * value_columns
 *		The mapped columns but the key, in mapping order.
 */
static List *
value_columns(const PipelineMapping *map)
{
	List	   *columns = NIL;
	ListCell   *lc;

	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		if (!cm->is_key)
			columns = lappend(columns, cm->column);
	}
	return columns;
}

/*
 * extract_events_ctes
 *		", compared AS (...), ..., events AS (...)": with full extracts
 *		(format snapshot, snapshot_sql.c), the events are the extract's rows
 *		that differ from their key's current version in another column than
 *		sequence_by (the others are counted as unchanged: they would write
 *		nothing) and, for a complete extract, a delete at the extract's
 *		sequence_by value (its rows' latest) of each key whose current
 *		version it lacks.
 */
static void
extract_events_ctes(StringInfo sql, const PipelineDef *def, const PipelineMapping *map,
					BatchSource from)
{
	char	   *target = pipeline_qualified_name(def->target);
	char	   *events;
	StringInfoData differ;
	ListCell   *lc;

	initStringInfo(&differ);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		const char *c = quote_identifier(cm->column);

		if (!cm->is_key && strcmp(cm->column, def->sequence_by) != 0)
			appendStringInfo(&differ, "%s%s", differ.len ? " OR " : "",
							 pipeline_target_distinct(def, cm->column, psprintf("t.%s", c),
													  psprintf("l.%s", c)));
	}
	events = pipeline_extract_events(sql, def, from, pipeline_mapping_column_list(map),
									 psprintf(", max(%s) AS __pl_version", quote_identifier(def->sequence_by)),
									 psprintf("(SELECT * FROM %s WHERE __end_at IS NULL)", target),
									 differ.len ? differ.data : "false",
									 pipeline_extract_absent_values(def, map, "(SELECT __pl_version FROM extract_tally)"),
									 psprintf("(SELECT count(*) FROM %s WHERE __end_at IS NULL%s)", target,
											  pipeline_marks_deleted(def) ? " AND " PIPELINE_DELETED_COLUMN " IS NOT TRUE" : ""));
	appendStringInfo(sql, ", events AS (SELECT * FROM %s)", events);
}

/*
 * events_ctes
 *		"events AS (...), ...": the batch's accepted rows in the target's
 *		types; batch_keys: each key's earliest event (it names the key's
 *		rewrite in row marks); existing: the stored versions of those keys
 *		in 'target' (its SQL name) that end at or after it, each with the
 *		start of the key's next stored version.
 */
static void
events_ctes(StringInfo sql, const PipelineDef *def, const PipelineMapping *map, BatchSource from,
			const char *accepted, const char *target)
{
	char	   *keys = pipeline_quote_list(def->key, NULL);
	const char *seq = quote_identifier(def->sequence_by);
	ListCell   *lc;

	appendStringInfo(sql, "%s AS %s(SELECT b.__pl_xid, b.__pl_seq",
					 pipeline_reads_extracts(def) ? "extract_rows" : "events",
					 pipeline_reads_extracts(def) ? "MATERIALIZED " : "");
	foreach(lc, map->columns)
	{
		const char *c = quote_identifier(((ColumnMap *) lfirst(lc))->column);

		appendStringInfo(sql, ", %s AS %s",
						 assigned(def, ((ColumnMap *) lfirst(lc))->column, psprintf("b.%s", c)), c);
	}
	appendStringInfo(sql, ", %s AS __pl_del FROM %s)",
					 def->delete_when ? "b.__pl_del IS TRUE" : "false", accepted);
	if (pipeline_reads_extracts(def))
		extract_events_ctes(sql, def, map, from);

	appendStringInfo(sql, ", batch_keys AS (SELECT DISTINCT ON (%s) %s, %s AS __pl_from, "
					 "__pl_xid, __pl_seq FROM events ORDER BY %s, %s, __pl_xid, __pl_seq)",
					 keys, keys, seq, keys, seq);
	appendStringInfo(sql, ", existing AS (SELECT %s, %s, t.__start_at, t.__end_at, "
					 "k.__pl_xid, k.__pl_seq, lead(t.__start_at) OVER (PARTITION BY %s "
					 "ORDER BY t.__start_at) AS __pl_next FROM %s t JOIN batch_keys k ON %s "
					 "WHERE t.__end_at IS NULL OR t.__end_at >= k.__pl_from)",
					 pipeline_quote_list(def->key, "t"), pipeline_quote_list(value_columns(map), "t"),
					 pipeline_quote_list(def->key, "t"), target, pipeline_key_match(def, "t", "k"));
}

/*
 * points_cte
 *		points: the batch's events, the stored versions' points and the
 *		remembered deletes (see the file comment), by the tie rules: per key
 *		and sequence_by value, the last upsert to arrive, and the last delete
 *		to arrive unless an upsert arrived after it (__pl_replaced drops it;
 *		__pl_closed marks an upsert such a delete follows).  Arrival order:
 *		a remembered delete, a stored version's point, then the events
 *		(__pl_prio 0, 1, 2), events by (_xid, _seq); of a stored version's
 *		points at one value, the delete at its end came last.
 *		__pl_xid/__pl_seq name the event (for another point, its key's
 *		earliest event).
 */
static void
points_cte(StringInfo sql, const PipelineDef *def, const PipelineMapping *map)
{
	char	   *keys = pipeline_quote_list(def->key, NULL);
	char	   *values = pipeline_quote_list(value_columns(map), NULL);
	const char *seq = quote_identifier(def->sequence_by);
	StringInfoData at_start,
				nulls;
	ListCell   *lc;

	/* at its start, a version's sequence_by value is its start */
	initStringInfo(&at_start);
	initStringInfo(&nulls);
	foreach(lc, value_columns(map))
	{
		appendStringInfo(&at_start, "%s%s", at_start.len ? ", " : "",
						 strcmp(lfirst(lc), def->sequence_by) == 0
						 ? PIPELINE_START_COLUMN : quote_identifier(lfirst(lc)));
		appendStringInfo(&nulls, "%sNULL", nulls.len ? ", " : "");
	}

	appendStringInfo(sql, ", points AS (SELECT * FROM (SELECT d.*, "
					 "lag(__pl_at) OVER w = __pl_at AND (lag(__pl_prio) OVER w, lag(__pl_xid) OVER w, "
					 "lag(__pl_seq) OVER w) > (__pl_prio, __pl_xid, __pl_seq) AS __pl_replaced, "
					 "lead(__pl_at) OVER w = __pl_at AND (lead(__pl_prio) OVER w, lead(__pl_xid) OVER w, "
					 "lead(__pl_seq) OVER w) >= (__pl_prio, __pl_xid, __pl_seq) AS __pl_closed "
					 "FROM (SELECT DISTINCT ON (%s, __pl_at, __pl_live) * FROM ("
					 "SELECT %s, %s AS __pl_at, NOT __pl_del AS __pl_live, %s, 2 AS __pl_prio, "
					 "__pl_xid, __pl_seq FROM events", keys, keys, seq, values);
	appendStringInfo(sql, " UNION ALL SELECT %s, __start_at, true, %s, 1, __pl_xid, __pl_seq "
					 "FROM existing", keys, at_start.data);
	appendStringInfo(sql, " UNION ALL SELECT %s, %s, true, %s, 1, __pl_xid, __pl_seq FROM existing "
					 "WHERE %s > __start_at AND (__end_at IS NULL OR %s < __end_at "
					 "OR (%s = __end_at AND __pl_next IS DISTINCT FROM __end_at))",
					 keys, seq, values, seq, seq, seq);
	appendStringInfo(sql, " UNION ALL SELECT %s, __end_at, false, %s, 1, __pl_xid, __pl_seq "
					 "FROM existing WHERE __end_at IS NOT NULL AND __pl_next IS DISTINCT FROM __end_at",
					 keys, values);
	if (OidIsValid(def->tombstones))
		appendStringInfo(sql, " UNION ALL SELECT %s, x.%s, false, %s, 0, k.__pl_xid, k.__pl_seq "
						 "FROM %s x JOIN batch_keys k ON %s WHERE x.%s >= k.__pl_from",
						 pipeline_quote_list(def->key, "x"), seq, nulls.data,
						 pipeline_qualified_name(def->tombstones), pipeline_key_match(def, "x", "k"),
						 seq);
	appendStringInfo(sql, ") p ORDER BY %s, " POINT_ORDER ", __pl_prio DESC, __pl_xid DESC, __pl_seq DESC) d "
					 "WINDOW w AS (PARTITION BY %s ORDER BY " POINT_ORDER ")) r "
					 "WHERE __pl_replaced IS NOT TRUE)",
					 keys, keys);
}

/*
 * tombstone_ctes
 *		With a tombstone table: tombstoned remembers the batch's deletes (a
 *		late event before one ends there, even where the key had no version
 *		to close); untombstoned forgets those an upsert of the batch at the
 *		same sequence_by value replaced.  Returns the SQL that reads both.
 */
static const char *
tombstone_ctes(StringInfo sql, const PipelineDef *def)
{
	char	   *keys = pipeline_quote_list(def->key, NULL);
	const char *seq = quote_identifier(def->sequence_by);

	if (!OidIsValid(def->tombstones))
		return "";
	appendStringInfo(sql, ", tombstoned AS (INSERT INTO %s AS x (%s, %s) SELECT %s, __pl_at "
					 "FROM points WHERE __pl_prio = 2 AND NOT __pl_live ON CONFLICT (%s, %s) "
					 "DO UPDATE SET deleted_at = now() RETURNING 1)",
					 pipeline_qualified_name(def->tombstones), keys, seq, keys, keys, seq);
	appendStringInfo(sql, ", untombstoned AS (DELETE FROM %s x USING points p WHERE p.__pl_prio = 2 "
					 "AND p.__pl_live AND p.__pl_closed IS NOT TRUE AND %s AND x.%s = p.__pl_at RETURNING 1)",
					 pipeline_qualified_name(def->tombstones), pipeline_key_match(def, "x", "p"), seq);
	return ", (SELECT count(*) FROM tombstoned) + (SELECT count(*) FROM untombstoned)";
}

/*
 * versions_ctes
 *		changes: whether each point changes the key's state (existence or a
 *		tracked column) from the point before it; grouped: the start of the
 *		stretch each point belongs to, the latest change made by an event
 *		(when it is the stretch's start, an event starts it), and whether it
 *		is its last point; versions: one row per stretch, with the values of
 *		its last point, its end (the next stretch's start), __pl_live false
 *		where the key does not exist, and whether an event starts the next
 *		one.  Every window is over a key's points in sequence_by order, so
 *		that one sort serves them all.
 */
static void
versions_ctes(StringInfo sql, const PipelineDef *def, const PipelineMapping *map)
{
	char	   *keys = pipeline_quote_list(def->key, NULL);
	StringInfoData tracked;
	ListCell   *lc;

	initStringInfo(&tracked);
	foreach(lc, pipeline_scd2_tracked(def, map))
	{
		const char *c = quote_identifier(lfirst(lc));

		appendStringInfo(&tracked, " OR %s",
						 pipeline_target_distinct(def, lfirst(lc), psprintf("p.%s", c), psprintf("lag(p.%s) OVER w", c)));
	}
	appendStringInfo(sql, ", changes AS (SELECT p.*, (__pl_live IS DISTINCT FROM "
					 "lag(__pl_live, 1, false) OVER w OR (__pl_live AND (false%s))) AS __pl_change "
					 "FROM points p WINDOW w AS (PARTITION BY %s ORDER BY " POINT_ORDER "))",
					 tracked.data, keys);
	appendStringInfo(sql, ", grouped AS (SELECT c.*, "
					 "max(CASE WHEN __pl_change THEN __pl_at END) OVER w AS __pl_start, "
					 "max(CASE WHEN __pl_change AND __pl_prio = 2 THEN __pl_at END) OVER w "
					 "AS __pl_event_start, lead(__pl_change, 1, true) OVER w AS __pl_last "
					 "FROM changes c WINDOW w AS (PARTITION BY %s ORDER BY " POINT_ORDER "))", keys);
	appendStringInfo(sql, ", versions AS (SELECT v.*, lead(__pl_start) OVER n AS __pl_end, "
					 "lead(__pl_live) OVER n AS __pl_next_live, "
					 "lead(__pl_start_event) OVER n AS __pl_next_event "
					 "FROM (SELECT g.*, __pl_event_start IS NOT DISTINCT FROM __pl_start "
					 "AS __pl_start_event FROM grouped g WHERE __pl_last AND __pl_start IS NOT NULL) v "
					 "WINDOW n AS (PARTITION BY %s ORDER BY " POINT_ORDER "))", keys);
}

/*
 * diff_cte
 *		diff: the versions against the stored ones, by (key, __start_at),
 *		with __pl_action 'd' (a stored version no longer starts a version:
 *		merged into its neighbour), 'u' (it differs from the version
 *		starting there) or 'i' (nothing was stored there); and how many
 *		events a written version applies: those starting it or last
 *		updating it (__pl_upserts), the delete closing it (__pl_deletes).
 *		A full join, which PostgreSQL runs as a hash or merge join: the
 *		estimates of these CTEs can never make it a nested loop.
 */
static void
diff_cte(StringInfo sql, const PipelineDef *def, const PipelineMapping *map)
{
	StringInfoData keys,
				differs;
	ListCell   *lc;

	initStringInfo(&keys);
	foreach(lc, def->key)
	{
		const char *k = quote_identifier(lfirst(lc));

		appendStringInfo(&keys, "coalesce(v.%s, e.%s) AS %s, ", k, k, k);
	}
	initStringInfo(&differs);
	foreach(lc, value_columns(map))
	{
		const char *c = quote_identifier(lfirst(lc));

		appendStringInfo(&differs, "%s OR ",
						 pipeline_target_distinct(def, lfirst(lc), psprintf("e.%s", c), psprintf("v.%s", c)));
	}
	appendStringInfo(sql, ", diff AS (SELECT %s%s, v.__pl_start, v.__pl_end, v.__pl_xid, v.__pl_seq, "
					 "e.__start_at AS __pl_old_start, CASE WHEN e.__start_at IS NULL THEN 'i' "
					 "WHEN v.__pl_start IS NULL THEN 'd' WHEN %se.__end_at IS DISTINCT FROM v.__pl_end "
					 "THEN 'u' END AS __pl_action, "
					 "v.__pl_start_event::int + (v.__pl_prio = 2 AND v.__pl_at <> v.__pl_start)::int "
					 "AS __pl_upserts, "
					 "(v.__pl_next_live IS FALSE AND v.__pl_next_event)::int AS __pl_deletes "
					 "FROM (SELECT * FROM versions WHERE __pl_live) v FULL JOIN existing e ON %s "
					 "AND v.__pl_start = e.__start_at)",
					 keys.data, pipeline_quote_list(value_columns(map), "v"), differs.data,
					 pipeline_key_match(def, "v", "e"));
}

/*
 * write_ctes
 *		deleted, changed, added: the diff's actions on 'target' (its SQL
 *		name).  Each waits for the one before it (an uncorrelated subquery
 *		runs before the first row), so that a key never has two current
 *		versions at any moment.  With 'marks', the first value written is
 *		wrapped in mark_value, so that a failing row is named.
 */
static void
write_ctes(StringInfo sql, const PipelineDef *def, const PipelineMapping *map, const char *target,
		   bool marks)
{
	StringInfoData set;
	char	   *cols,
			   *vals;
	ListCell   *lc;

	appendStringInfo(sql, ", deleted AS (DELETE FROM %s t USING diff d WHERE d.__pl_action = 'd' "
					 "AND %s AND t.__start_at = d.__pl_old_start RETURNING t.*)",
					 target, pipeline_key_match(def, "t", "d"));

	initStringInfo(&set);
	foreach(lc, value_columns(map))
	{
		const char *c = quote_identifier(lfirst(lc));

		if (set.len == 0 && marks)
			appendStringInfo(&set, "%s = pipeline.mark_value(d.__pl_xid, d.__pl_seq, d.%s)", c, c);
		else
			appendStringInfo(&set, "%s%s = d.%s", set.len ? ", " : "", c, c);
	}
	appendStringInfo(sql, ", changed AS (UPDATE %s t SET %s, __end_at = d.__pl_end FROM diff d "
					 "WHERE d.__pl_action = 'u' AND %s AND t.__start_at = d.__pl_start "
					 "AND (SELECT count(*) FROM deleted) >= 0 RETURNING t.*)",
					 target, set.data, pipeline_key_match(def, "t", "d"));

	if (marks)
		pipeline_insert_column_lists(map, "d", NIL, &cols, &vals);
	else
	{
		cols = pipeline_mapping_column_list(map);
		vals = pipeline_mapping_column_values(map, "d");
	}
	appendStringInfo(sql, ", added AS (INSERT INTO %s AS t (%s, __start_at, __end_at) "
					 "SELECT %s, d.__pl_start, d.__pl_end FROM diff d WHERE d.__pl_action = 'i' "
					 "AND (SELECT count(*) FROM changed) >= 0 RETURNING t.*)",
					 target, cols, vals);
}

/*
 * applied_cte
 *		", applied AS (...)": what the batch did, as a run counts it:
 *		versions inserted, versions updated or deleted, delete events
 *		applied (deletes), and stale events (those that wrote nothing).
 */
static void
applied_cte(StringInfo sql)
{
	appendStringInfoString(sql, ", applied AS (SELECT (SELECT count(*) FROM added) AS inserted, "
						   "(SELECT count(*) FROM changed) + (SELECT count(*) FROM deleted) AS updated, "
						   "a.deletes, (SELECT count(*) FROM events) - a.upserts - a.deletes AS stale "
						   "FROM (SELECT coalesce(sum(__pl_upserts), 0) AS upserts, "
						   "coalesce(sum(__pl_deletes), 0) AS deletes FROM diff "
						   "WHERE __pl_action IN ('i', 'u')) a)");
}

/*
 * pipeline_scd2_sql
 *		The batch statement of the scd2 strategy.  It returns one row:
 *		versions inserted, versions updated or deleted, delete events
 *		applied, stale events (and, with a change log, rows published).
 */
char *
pipeline_scd2_sql(const PipelineDef *def, const PipelineMapping *map, BatchSource from,
				  const char *accepted)
{
	StringInfoData sql;
	char	   *target = pipeline_qualified_name(def->target);
	const char *tombstones;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "WITH ");
	events_ctes(&sql, def, map, from, accepted, target);
	points_cte(&sql, def, map);
	versions_ctes(&sql, def, map);
	diff_cte(&sql, def, map);

	/*
	 * not marked for a Citus distributed or reference target, whose shards
	 * take no volatile function in an UPDATE (a failing row is then found by
	 * splitting the batch, batch_exec.c)
	 */
	write_ctes(&sql, def, map, target, !pipeline_citus_routes(def->target));
	tombstones = tombstone_ctes(&sql, def);

	/*
	 * The change log gets the versions written as upserts and the versions
	 * merged away as deletes: a reader keyed on (key, __start_at) mirrors the
	 * history.  Every data-modifying CTE is read here, so that it runs while
	 * the row marks are live (see row_watch.c).
	 */
	pipeline_publish_cte(&sql, def, "(SELECT * FROM added UNION ALL SELECT * FROM changed) w", "deleted");
	applied_cte(&sql);
	appendStringInfo(&sql, " SELECT inserted, updated, deletes, stale%s%s FROM applied",
					 OidIsValid(def->change_log) ? ", (SELECT count(*) FROM published)" : "",
					 tombstones);
	return sql.data;
}

/*
 * pipeline_scd2_shard_ctes
 *		A sharded scd2 pipeline's batch (batch/shard_sql.c's statement):
 *		"events AS (...), ..., applied AS (...)" over 'accepted' (the rows
 *		its shard statement claimed, as for pipeline_scd2_sql) into the
 *		target shard 'target'.  No tombstones nor change log: a sharded
 *		pipeline keeps neither (definition/sharded_pipelines.c); no marks:
 *		a shard statement calls no function of the extension (a failing
 *		row is found alone on the worker, run/shard_statement.c).
 */
void
pipeline_scd2_shard_ctes(StringInfo sql, const PipelineDef *def, const PipelineMapping *map,
						 const char *accepted, const char *target)
{
	events_ctes(sql, def, map, BATCH_FROM_STAGING, accepted, target);
	points_cte(sql, def, map);
	versions_ctes(sql, def, map);
	diff_cte(sql, def, map);
	write_ctes(sql, def, map, target, false);
	applied_cte(sql);
}

/*
 * pipeline_scd2_tracked
 *		The tracked columns: track_history, or by default every mapped column
 *		but the key and sequence_by (which changes with every event); and
 *		__deleted, marking deleted keys (hard_deletes 'new_record').
 */
List *
pipeline_scd2_tracked(const PipelineDef *def, const PipelineMapping *map)
{
	List	   *tracked = NIL;
	ListCell   *lc;

	if (def->track_history != NIL)
		return pipeline_marks_deleted(def) ?
			lappend(list_copy(def->track_history), PIPELINE_DELETED_COLUMN) : def->track_history;
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);

		if (!cm->is_key && strcmp(cm->column, def->sequence_by) != 0)
			tracked = lappend(tracked, cm->column);
	}
	return tracked;
}
