/*-------------------------------------------------------------------------
 *
 * capture_changes.c
 *	  The capture triggers: every write to a captured table (capture.c)
 *	  reaches its change log, exactly once.
 *
 * pipeline.capture(table) gives the table a change log, the same kind a
 * pipeline's target gets when other pipelines read it (change_log.c):
 * <table>_changes, with the table's columns plus _op ('upsert' or
 * 'delete'), _for, _xid and _seq.  Two sets of triggers fill it, and
 * exactly one of them fires for any write, according to
 * session_replication_role:
 *
 * Ordinary writes (origin or local): four statement-level triggers,
 * enabled the default way, reading the statement's transition tables, so
 * that a statement writing many rows costs one INSERT into the log, not
 * one per row:
 *
 *	INSERT		every new row, as an upsert;
 *	UPDATE		every new row as an upsert, and as a delete every old row
 *				whose primary key no new row has (a key change);
 *	DELETE		every old row, as a delete;
 *	TRUNCATE	(before it) every row of the table, as a delete, so that
 *				readers empty too; it costs a read of the table.
 *
 * Replicated writes (replica): the apply worker of a logical replication
 * subscription, and a session with session_replication_role = replica,
 * fire no statement-level trigger but TRUNCATE's, and only triggers
 * enabled REPLICA or ALWAYS, without transition tables.  So three
 * row-level AFTER triggers and a BEFORE TRUNCATE trigger, all enabled
 * REPLICA, log the same events row by row: the new row as an upsert, the
 * old one as a delete, and for an update both when the key changed (the
 * row triggers fire in the order the rows were written, so the log
 * replays the statement step by step).  Enabled REPLICA, they never fire
 * for ordinary writes, and the statement-level ones never in replica
 * mode: no write is logged twice.
 *
 * A partitioned table is captured whole: it and each of its partitions
 * carry the triggers (a statement fires the statement triggers of the
 * table it names only), and a partition's write into the captured table's
 * log (capture_partitions.c follows partitions created, attached, detached
 * and dropped).  The row-level triggers PostgreSQL clones from the
 * partitioned table onto each partition itself.
 *
 * The triggers log from the capture on, whether or not a pipeline reads
 * the log: a log can be published to another database (logical
 * replication of the log) with no local reader.  Rows every reader has
 * consumed are trimmed at the readers' runs (change_log.c); a log nobody
 * reads keeps growing until it is read or the table is uncaptured.
 *
 * The log is written as the log's owner -- the table's owner, who owned
 * the table when it was captured -- whoever writes the table, in a
 * security-restricted operation with search_path pinned to pg_catalog:
 * the log is that role's, and so are its triggers and its columns' types,
 * which must not run with the privileges of whoever happened to write the
 * table (a superuser, say, or the subscription's apply worker).  The
 * writer needs no privilege on the log.  The trigger function refuses to
 * run as anything but one of the capture triggers of a captured table
 * (name, level, timing, enabled mode), so that nobody can make it write
 * into another role's log by attaching it to a table of their own, or log
 * a write twice by enabling a trigger for both modes.
 *
 * A pipeline whose source is a captured table reads its log instead,
 * starting from the table's rows (change_log.c seeds them, with its
 * cursor at the snapshot of that copy: a write is in the copy exactly
 * when its logged rows are consumed).
 *
 * The triggers' statements are prepared once per backend and table, and
 * rebuilt after the table or its log changed (a relcache invalidation);
 * a column added to the table is added to the log when they are rebuilt.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"
#include "sources/sources.h"

PG_FUNCTION_INFO_V1(pipeline_capture_changes);

/* The statements the triggers run, per table and event. */
typedef enum CaptureEvent
{
	CAPTURE_INSERT,				/* statement-level, from transition tables */
	CAPTURE_UPDATE,
	CAPTURE_DELETE,
	CAPTURE_TRUNCATE,			/* either mode: reads the table */
	CAPTURE_ROW_INSERT,			/* row-level, from the trigger's tuples */
	CAPTURE_ROW_UPDATE,
	CAPTURE_ROW_DELETE,
	CAPTURE_EVENTS
} CaptureEvent;

typedef struct CapturePlans
{
	Oid			relation;		/* the captured table, or a partition of it */
	Oid			captured;		/* the captured table (the partitions' root) */
	Oid			change_log;
	Oid			owner;			/* the log's: the statements run as this role */
	Oid			row_type;		/* the table's, for the row statements */
	bool		valid;			/* false: rebuild before the next use */
	char	   *key_match;		/* "n.k = o.k AND ..." over the captured key */
	SPIPlanPtr	plans[CAPTURE_EVENTS];
} CapturePlans;

static List *capture_plans = NIL;	/* of CapturePlans *; list and entries in
									 * TopMemoryContext */
static bool capture_callback_registered = false;

/* A trigger capture() creates. */
typedef struct CaptureTrigger
{
	const char *name;
	const char *when;			/* timing, event and transition tables; %s is
								 * the table */
	TriggerEvent op;			/* TRIGGER_EVENT_INSERT, ... */
	bool		for_row;
	char		enabled;		/* pg_trigger.tgenabled */
	CaptureEvent event;			/* the statement it runs */
} CaptureTrigger;

/*
 * The statement-level ones fire for ordinary writes, the REPLICA ones under
 * session_replication_role = replica (a subscription's apply worker): one
 * set for every write.
 */
static const CaptureTrigger capture_triggers[] = {
	{"pipeline_capture_insert", "AFTER INSERT ON %s REFERENCING NEW TABLE AS pl_new",
	TRIGGER_EVENT_INSERT, false, TRIGGER_FIRES_ON_ORIGIN, CAPTURE_INSERT},
	{"pipeline_capture_update", "AFTER UPDATE ON %s REFERENCING OLD TABLE AS pl_old NEW TABLE AS pl_new",
	TRIGGER_EVENT_UPDATE, false, TRIGGER_FIRES_ON_ORIGIN, CAPTURE_UPDATE},
	{"pipeline_capture_delete", "AFTER DELETE ON %s REFERENCING OLD TABLE AS pl_old",
	TRIGGER_EVENT_DELETE, false, TRIGGER_FIRES_ON_ORIGIN, CAPTURE_DELETE},
	{"pipeline_capture_truncate", "BEFORE TRUNCATE ON %s",
	TRIGGER_EVENT_TRUNCATE, false, TRIGGER_FIRES_ON_ORIGIN, CAPTURE_TRUNCATE},
	{"pipeline_capture_replica_insert", "AFTER INSERT ON %s",
	TRIGGER_EVENT_INSERT, true, TRIGGER_FIRES_ON_REPLICA, CAPTURE_ROW_INSERT},
	{"pipeline_capture_replica_update", "AFTER UPDATE ON %s",
	TRIGGER_EVENT_UPDATE, true, TRIGGER_FIRES_ON_REPLICA, CAPTURE_ROW_UPDATE},
	{"pipeline_capture_replica_delete", "AFTER DELETE ON %s",
	TRIGGER_EVENT_DELETE, true, TRIGGER_FIRES_ON_REPLICA, CAPTURE_ROW_DELETE},
	{"pipeline_capture_replica_truncate", "BEFORE TRUNCATE ON %s",
	TRIGGER_EVENT_TRUNCATE, false, TRIGGER_FIRES_ON_REPLICA, CAPTURE_TRUNCATE},
};

/*
 * forget_plans
 *		Frees the cached statements of a table.
 */
static void
forget_plans(CapturePlans *cp)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	for (int i = 0; i < CAPTURE_EVENTS; i++)
		if (cp->plans[i])
			SPI_freeplan(cp->plans[i]);
	pfree(cp->key_match);
	capture_plans = list_delete_ptr(capture_plans, cp);
	pfree(cp);
	MemoryContextSwitchTo(old);
}

/*
 * capture_invalidate
 *		Relcache callback: a change to a captured table or its log (or a
 *		full reset) outdates the statements built from them.  They are
 *		rebuilt at their next use, not freed here: invalidations arrive
 *		while a statement executes (when it takes a lock), possibly this
 *		very one.
 */
static void
capture_invalidate(Datum arg, Oid relid)
{
	ListCell   *lc;

	foreach(lc, capture_plans)
	{
		CapturePlans *cp = lfirst(lc);

		if (relid == InvalidOid || relid == cp->relation || relid == cp->captured ||
			relid == cp->change_log)
			cp->valid = false;
	}
}

/*
 * key_match
 *		"n.k1 = o.k1 AND ..." over the key captured with the table (its
 *		primary key then: dropping it later changes nothing here).
 */
static char *
key_match(List *key)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, key)
	{
		const char *k = quote_identifier(lfirst(lc));

		appendStringInfo(&buf, "%sn.%s = o.%s", buf.len ? " AND " : "", k, k);
	}
	return buf.data;
}

/*
 * capture_sql
 *		The statement one trigger runs to fill the log.  The statement-level
 *		ones read the transition tables pl_new and pl_old, the row-level
 *		ones the old row in $1 and the new one in $2 (the new one of an
 *		insert in $1), of the table's row type.
 */
static char *
capture_sql(CaptureEvent event, Oid relation, Oid log, const char *key_match)
{
	char	   *cols = pipeline_quote_list(pipeline_shared_columns(relation, log), NULL);
	char	   *old_cols = pipeline_quote_list(pipeline_shared_columns(relation, log), "o");
	char	   *into = psprintf("INSERT INTO %s (%s, _op) ", pipeline_qualified_name(log), cols);
	const char *new_rows = "pl_new";
	const char *old_rows = "pl_old";

	switch (event)
	{
		case CAPTURE_INSERT:
			return psprintf("%sSELECT %s, 'upsert' FROM pl_new", into, cols);
		case CAPTURE_DELETE:
			return psprintf("%sSELECT %s, 'delete' FROM pl_old", into, cols);
		case CAPTURE_TRUNCATE:
			return psprintf("%sSELECT %s, 'delete' FROM %s", into, cols,
							pipeline_qualified_name(relation));
		case CAPTURE_ROW_INSERT:
			return psprintf("%sSELECT %s, 'upsert' FROM (SELECT ($1).*) n", into, cols);
		case CAPTURE_ROW_DELETE:
			return psprintf("%sSELECT %s, 'delete' FROM (SELECT ($1).*) o", into, cols);
		case CAPTURE_ROW_UPDATE:
			new_rows = "(SELECT ($2).*)";
			old_rows = "(SELECT ($1).*)";
			break;
		default:
			break;
	}
	/* an old row whose key no new row has: its key changed, a delete */
	return psprintf("%sSELECT %s, 'upsert' FROM %s n UNION ALL SELECT %s, 'delete' FROM %s o "
					"WHERE NOT EXISTS (SELECT 1 FROM %s n WHERE %s)",
					into, cols, new_rows, old_cols, old_rows, new_rows, key_match);
}

/*
 * prepare_capture
 *		Prepares and keeps the statement of 'event' for a captured table;
 *		the row-level ones take the table's rows as parameters.
 */
static SPIPlanPtr
prepare_capture(CapturePlans *cp, CaptureEvent event)
{
	Oid			types[2] = {cp->row_type, cp->row_type};
	int			nargs = event == CAPTURE_ROW_UPDATE ? 2
	: event == CAPTURE_ROW_INSERT || event == CAPTURE_ROW_DELETE ? 1 : 0;

	return pipeline_prepare_kept(capture_sql(event, cp->relation, cp->change_log, cp->key_match),
								 nargs, types, false);
}

/*
 * plans_for
 *		The cached statements of a captured table or of one of its
 *		partitions, building the entry (and bringing the log's columns up to
 *		date) when missing.  A partition logs into its root's log: the
 *		captured table.  The caller is connected to SPI with the trigger's
 *		transition tables registered.
 */
static CapturePlans *
plans_for(Oid relation)
{
	ListCell   *lc;
	CapturePlans *cp;
	Oid			type = OIDOID;
	Oid			captured;
	Datum		value;
	PipelineUserContext ctx;
	MemoryContext old;
	SPIPlanPtr	plan;
	bool		isnull;
	int			n;

	foreach(lc, capture_plans)
	{
		cp = lfirst(lc);
		if (cp->relation != relation)
			continue;
		if (cp->valid)
			return cp;
		forget_plans(cp);
		break;
	}
	/* a cache miss: the partitions' root is looked up once per entry */
	captured = pipeline_partition_root(relation);
	value = ObjectIdGetDatum(captured);

	/*
	 * Read with the latest snapshot, not the writer's: a REPEATABLE READ
	 * writer whose snapshot was taken before the capture committed finds the
	 * capture's triggers, and must find the capture too.
	 */
	pipeline_become_internal(&ctx);
	plan = SPI_prepare("SELECT c.change_log::oid, c.key FROM pipeline.captures c "
					   "WHERE c.relation = $1", 1, &type);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, &value, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.captures");
	n = (int) SPI_processed;
	pipeline_restore_user(&ctx);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not captured", pipeline_qualified_name(relation)),
				 errdetail("It has the capture triggers of the pipeline extension, but pipeline.captures does not list it."),
				 errhint("Run SELECT pipeline.capture('%s'), or drop the triggers named pipeline_capture_*.",
						 pipeline_qualified_name(relation))));
	if (!capture_callback_registered)
	{
		CacheRegisterRelcacheCallback(capture_invalidate, (Datum) 0);
		capture_callback_registered = true;
	}
	cp = MemoryContextAllocZero(TopMemoryContext, sizeof(CapturePlans));
	cp->relation = relation;
	cp->captured = captured;
	cp->change_log = DatumGetObjectId(pipeline_result_datum(0, 0, &isnull));
	cp->key_match = MemoryContextStrdup(TopMemoryContext,
										key_match(pipeline_text_array_to_list(pipeline_result_datum(0, 1, &isnull),
																			  "key")));
	cp->valid = true;
	cp->owner = pipeline_relation_owner(cp->change_log);
	cp->row_type = get_rel_type_id(relation);
	pipeline_add_missing_columns(relation, cp->change_log);
	old = MemoryContextSwitchTo(TopMemoryContext);
	capture_plans = lappend(capture_plans, cp);
	MemoryContextSwitchTo(old);
	return cp;
}

/*
 * capture_trigger
 *		The capture trigger firing, or errors unless it is one of those
 *		pipeline.capture created, as it created it: its name, the event it
 *		was made for, its level and timing, the transition tables a
 *		statement-level one reads, and its enabled mode (a trigger enabled
 *		for other sessions would log a write twice, or not at all).
 *		Whether the table is captured, plans_for checks.
 */
static const CaptureTrigger *
capture_trigger(TriggerData *trigdata)
{
	TriggerEvent ev = trigdata->tg_event;
	Trigger    *trigger = trigdata->tg_trigger;
	Oid			table = RelationGetRelid(trigdata->tg_relation);

	for (int i = 0; i < lengthof(capture_triggers); i++)
	{
		const CaptureTrigger *ct = &capture_triggers[i];
		bool		truncate = ct->event == CAPTURE_TRUNCATE;
		bool		reads_new = ct->event == CAPTURE_INSERT || ct->event == CAPTURE_UPDATE;
		bool		reads_old = ct->event == CAPTURE_UPDATE || ct->event == CAPTURE_DELETE;

		if (strcmp(trigger->tgname, ct->name) != 0)
			continue;
		if ((TRIGGER_FIRED_FOR_ROW(ev) != 0) != ct->for_row ||
			!(truncate ? TRIGGER_FIRED_BEFORE(ev) : TRIGGER_FIRED_AFTER(ev)) ||
			(ev & TRIGGER_EVENT_OPMASK) != ct->op ||
			(reads_new && trigdata->tg_newtable == NULL) ||
			(reads_old && trigdata->tg_oldtable == NULL))
			break;
		if (trigger->tgenabled != ct->enabled)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("capture trigger \"%s\" on %s is enabled for other sessions than pipeline.capture enables it for",
							trigger->tgname, pipeline_qualified_name(table)),
					 errdetail("pipeline.capture enables it for %s only; otherwise a write would be captured twice, or not at all.",
							   ct->enabled == TRIGGER_FIRES_ON_REPLICA
							   ? "sessions in replica mode (a subscription's apply worker)"
							   : "sessions not in replica mode"),
					 errhint("ALTER TABLE %s ENABLE%s TRIGGER %s;", pipeline_qualified_name(table),
							 ct->enabled == TRIGGER_FIRES_ON_REPLICA ? " REPLICA" : "",
							 quote_identifier(trigger->tgname))));
		return ct;
	}
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("pipeline.capture_changes must be fired by the capture triggers of a captured table"),
			 errdetail("Trigger \"%s\" on %s is not the trigger pipeline.capture creates for this event.",
					   trigger->tgname, pipeline_qualified_name(table)),
			 errhint("Use pipeline.capture(table), which creates its triggers; drop this one.")));
	return NULL;				/* keep the compiler quiet */
}

/*
 * log_write
 *		Runs a capture trigger's statement, as the log's owner: a
 *		statement-level one over the registered transition tables, a
 *		row-level one with the trigger's rows.  The caller is connected to
 *		SPI.
 */
static void
log_write(CapturePlans *cp, CaptureEvent event, TriggerData *trigdata)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	Datum		rows[2] = {0, 0};
	PipelineUserContext ctx;

	/* an insert's new row is its trigger tuple, as a delete's old one is */
	if (event == CAPTURE_ROW_INSERT || event == CAPTURE_ROW_UPDATE || event == CAPTURE_ROW_DELETE)
		rows[0] = heap_copy_tuple_as_datum(trigdata->tg_trigtuple, desc);
	if (event == CAPTURE_ROW_UPDATE)
		rows[1] = heap_copy_tuple_as_datum(trigdata->tg_newtuple, desc);

	/*
	 * a TRUNCATE reads the table: rows row-level security hid would go
	 * unlogged
	 */
	if (event == CAPTURE_TRUNCATE)
		pipeline_require_whole_source(RelationGetRelid(trigdata->tg_relation), cp->owner);
	pipeline_become_role(cp->owner, "pg_catalog, pg_temp", &ctx);
	if (cp->plans[event] == NULL)
		cp->plans[event] = prepare_capture(cp, event);
	if (SPI_execute_plan(cp->plans[event], rows, NULL, false, 0) < 0)
		elog(ERROR, "capture of changes to %s failed",
			 pipeline_qualified_name(RelationGetRelid(trigdata->tg_relation)));
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_capture_changes
 *		The trigger of a captured table (see above).  Fired by an
 *		application's write or a replicated one, it writes the log as the
 *		log's owner.
 */
Datum
pipeline_capture_changes(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const CaptureTrigger *ct;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pipeline.capture_changes must be called as a trigger"),
				 errdetail("It copies the rows a write changed into the change log of a captured table."),
				 errhint("Use pipeline.capture(table), which creates its triggers.")));
	ct = capture_trigger(trigdata);
	/* a partitioned table holds no rows: its partitions' triggers log them */
	if (ct->event == CAPTURE_TRUNCATE &&
		trigdata->tg_relation->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		return PointerGetDatum(NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_register_trigger_data(trigdata) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	log_write(plans_for(RelationGetRelid(trigdata->tg_relation)), ct->event, trigdata);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * pipeline_capture_create_triggers
 *		Creates the capture triggers on a captured table or on one of its
 *		partitions (each needs them: a statement addressed to a partition
 *		fires that partition's statement triggers only), as its owner: the
 *		statement-level ones enabled the default way (ordinary writes), the
 *		row-level ones and the second TRUNCATE trigger enabled REPLICA
 *		(replicated writes).  Capture triggers it has already (the row-level
 *		ones PostgreSQL cloned from its partitioned table) are only given
 *		their mode; another trigger of the same name makes CREATE TRIGGER
 *		fail.
 */
void
pipeline_capture_create_triggers(Oid relation)
{
	for (int i = 0; i < lengthof(capture_triggers); i++)
	{
		const CaptureTrigger *ct = &capture_triggers[i];

		pipeline_ensure_trigger(relation, ct->name,
								psprintf("%s FOR EACH %s", ct->when, ct->for_row ? "ROW" : "STATEMENT"),
								"pipeline.capture_changes()", ct->enabled);
	}
}

/*
 * pipeline_capture_drop_triggers
 *		Drops the capture triggers of a table (a captured one, or one of its
 *		partitions), as its owner (those still there).
 */
void
pipeline_capture_drop_triggers(Oid relation)
{
	for (int i = 0; i < lengthof(capture_triggers); i++)
		pipeline_exec_as_relation_owner(relation,
										psprintf("DROP TRIGGER IF EXISTS %s ON %s",
												 capture_triggers[i].name,
												 pipeline_qualified_name(relation)),
										0, NULL, NULL, NULL);
}
