/*-------------------------------------------------------------------------
 *
 * pipeline.h
 *	  Declarations shared by the parts of the pipeline extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include "postgres.h"

#include "compat.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"
#include "storage/lockdefs.h"
#include "storage/lwlock.h"
#include <signal.h>
#include "utils/jsonb.h"

#define PIPELINE_SCHEMA "pipeline"

/* Columns every source carries: the writer's transaction and a tie-breaker. */
#define PIPELINE_XID_COLUMN "_xid"
#define PIPELINE_SEQ_COLUMN "_seq"

/* A pipeline definition, as stored in pipeline.pipeline_defs. */
typedef struct PipelineDef
{
	int64		id;
	char	   *name;
	Oid			owner;
	Oid			source;
	Oid			target;
	Oid			tombstones;		/* InvalidOid when the pipeline keeps none */
	List	   *key;			/* of char *, target column names */
	char	   *strategy;		/* "append", "merge" or "scd2" */
	char	   *sequence_by;	/* target column, or NULL */
	char	   *delete_when;	/* boolean expression over the source row */
	Jsonb	   *columns;		/* target column -> expression (or null) */
	char	   *filter;			/* boolean expression over the source row */
	char	   *on_schema_change;
	int64		batch_size;
	char	   *schedule;
	char	   *tombstone_retention;	/* interval, as text */
	char	   *search_path;
	Jsonb	   *source_columns;
	bool		paused;
	bool		suspended;		/* too many failed runs in a row */
	char	   *statement_timeout;	/* interval text, or NULL for none */
	int64		statement_timeout_ms;	/* 0: none */
	int32		version;
	Oid			change_log;		/* where it publishes its changes, or InvalidOid */
	bool		reads_change_log;	/* its source is another target's change log */
	List	   *track_history;	/* scd2: of char *; NIL: every column but key
								 * and sequence_by */
} PipelineDef;

/* One target column and the SQL expression (over the source row) feeding it. */
typedef struct ColumnMap
{
	char	   *column;			/* target column name */
	char	   *expr;			/* SQL text, source columns unqualified */
	Oid			typid;			/* type of the expression */
	int32		typmod;
	bool		is_key;
} ColumnMap;

/* How the rows of a source become rows of a target. */
typedef struct PipelineMapping
{
	List	   *columns;		/* of ColumnMap *, in target column order */
	List	   *source_columns; /* of char *, source columns but _xid/_seq */
	bool		target_exists;
} PipelineMapping;

/* A condition a mapped row must pass to be merged, and why it failed. */
typedef struct RowRule
{
	char	   *passes;			/* SQL boolean over the batch row, never NULL */
	char	   *reason;
	const char *sqlstate;
} RowRule;

/* What a row failing a data quality check does (checks.c), mildest first. */
typedef enum CheckAction
{
	CHECK_WARN,					/* kept and counted */
	CHECK_DROP,					/* discarded and counted */
	CHECK_QUARANTINE,			/* to the quarantine, with the failed checks */
	CHECK_FAIL					/* the run fails; its batch is not merged */
} CheckAction;

/* A condition on a batch's failing rows: "> 10" or ">= 2.5%". */
typedef struct CheckThreshold
{
	bool		set;
	char		op[3];			/* >, >=, <, <=, =, != */
	double		value;
	bool		percent;		/* value is a share of the rows checked, in % */
} CheckThreshold;

/* SQLSTATE of a failed data quality check (a class of the extension's own). */
#define ERRCODE_PIPELINE_CHECK_FAILED MAKE_SQLSTATE('P','L','0','0','1')

/* The most checks a pipeline may have (a row's failures are a bit set). */
#define PIPELINE_MAX_CHECKS 64

/* A data quality check, compiled for the batch statement. */
typedef struct QualityCheck
{
	int64		id;
	char	   *name;
	char	   *kind;
	CheckAction action;
	char	   *passes;			/* SQL boolean over the batch row; NULL: batch check */
	char	   *window;			/* a window column passes reads (unique), or NULL */
	bool		skips_nulls;	/* passes is NULL for a NULL value: row not checked */
	int64		min_rows;		/* row_count bounds; -1: none */
	int64		max_rows;
	double		mostly;			/* 0: not set */
	CheckThreshold warn_if;
	CheckThreshold error_if;
} QualityCheck;

/* Where a batch's rows come from. */
typedef enum BatchSource
{
	BATCH_FROM_STAGING,			/* pending rows of the source table */
	BATCH_FROM_QUARANTINE,		/* quarantined rows put back by requeue */
	BATCH_FROM_REPLAY			/* rows earlier runs consumed, staged or archived */
} BatchSource;

/* What one batch (or a whole run) did. */
typedef struct RunCounts
{
	int64		read;
	int64		inserted;
	int64		updated;
	int64		deleted;
	int64		stale;
	int64		filtered;
	int64		quarantined;
	int64		dropped;		/* by data quality checks */
	int32		batches;
} RunCounts;

/* A position in a source's total order of staged rows: (_xid, _seq). */
typedef struct RowPosition
{
	bool		valid;
	FullTransactionId xid;
	int64		seq;
} RowPosition;

/*
 * A row a batch statement rejected: for failing row rule number 'rule', or
 * (rule -1) for failing the data quality checks in 'failed_checks'.
 */
typedef struct RejectedRow
{
	RowPosition position;
	int			rule;
	uint64		failed_checks;	/* bit i: check number i */
} RejectedRow;

/* What a batch statement read, filtered, checked and rejected (mark.c). */
typedef struct BatchTally
{
	int64		read;
	int64		filtered;
	int64		dropped;
	List	   *rejected;		/* of RejectedRow * */
	int64		check_failing[PIPELINE_MAX_CHECKS];	/* rows failing each check */
	int64		check_unchecked[PIPELINE_MAX_CHECKS];	/* rows each check left
														 * out (NULL value) */
} BatchTally;

/* Saved user id, security context and GUC nest level. */
typedef struct PipelineUserContext
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nest_level;
} PipelineUserContext;

/* An alert to raise (see alerts.c); ids are 0 and strings NULL when absent. */
typedef struct PipelineAlert
{
	const char *kind;			/* "freshness" or "pipeline" */
	int64		check_id;
	int64		pipeline_id;
	const char *subject;		/* the relation checked, or the pipeline's name */
	const char *previous_state;
	const char *state;
	const char *message;
	Oid			owner;
	const char *details;		/* a JSON object added to the payload */
} PipelineAlert;

/* A schedule (schedule.c). */
typedef enum PipelineScheduleKind
{
	SCHEDULE_MANUAL,
	SCHEDULE_CONTINUOUS,
	SCHEDULE_INTERVAL,
	SCHEDULE_CRON
} PipelineScheduleKind;

typedef struct PipelineSchedule
{
	PipelineScheduleKind kind;
	const char *text;			/* as it is stored */
	int64		interval;		/* SCHEDULE_INTERVAL, microseconds */
	uint64		minutes;		/* SCHEDULE_CRON: bit sets */
	uint32		hours;
	uint32		days;
	uint16		months;
	uint8		weekdays;
	bool		any_day;		/* day of month starts with "*" */
	bool		any_weekday;	/* day of week starts with "*" */
} PipelineSchedule;

/* Shared memory of the background workers (shared_state.c). */

/* A pipeline waiting for a worker, as its scheduler found it. */
typedef struct PipelineHandoff
{
	int64		pipeline_id;
	Oid			owner;
	bool		continuous;
	bool		retrying;
} PipelineHandoff;

/* How many waiting pipelines a database's slot lists for its workers. */
#define PIPELINE_HANDOFF_QUEUE 128

/* Sources committed transactions staged rows into (staged_sources.c). */
#define PIPELINE_STAGED_SOURCES 64
typedef struct PipelineStagedSources
{
	bool		all;			/* some rows into sources not named here */
	int			count;
	Oid			relids[PIPELINE_STAGED_SOURCES];
} PipelineStagedSources;

typedef struct PipelineDatabaseSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		scheduler_pid;	/* 0: no scheduler */
	struct Latch *scheduler_latch;
	bool		starting;		/* the launcher registered a scheduler */
	bool		no_extension;	/* the last scheduler found no extension */
	bool		recheck;		/* CREATE EXTENSION ran here since */
	TimestampTz blocked_until;	/* a DROP/RENAME DATABASE wants it alone */
	int			waiting;		/* due pipelines with rows its last pass could not
								 * give a worker */
	int			unplaced_continuous;	/* continuous pipelines without a worker:
										 * commits of staged rows wake the scheduler */
	int			handoffs;		/* the first of them, in order, for a worker of
								 * this database to take over */
	PipelineHandoff handoff[PIPELINE_HANDOFF_QUEUE];
	PipelineStagedSources staged;	/* since its scheduler's last pass */
} PipelineDatabaseSlot;

typedef struct PipelineWorkerSlot
{
	bool		in_use;
	Oid			dboid;
	int64		pipeline_id;
	Oid			owner;
	bool		continuous;
	bool		retrying;		/* after failures: runs even with nothing to read */
	uint64		launch_id;
	pid_t		pid;			/* 0 until the worker started */
	struct Latch *latch;
	struct Latch *scheduler_latch;
} PipelineWorkerSlot;

typedef struct PipelineShared
{
	LWLock	   *lock;
	struct Latch *launcher_latch;
	uint64		last_launch_id; /* tells apart the workers a slot served */
	PipelineWorkerSlot *workers;	/* pipeline_max_workers of them */
	PipelineDatabaseSlot databases[FLEXIBLE_ARRAY_MEMBER];	/* pipeline_max_databases */
} PipelineShared;

/* pipeline.c */
extern void _PG_init(void);

/* clock.c */
extern void pipeline_clock_init(void);
extern Datum pipeline_seed_cursor(Snapshot snapshot);
extern bool pipeline_own_staging_xid(FullTransactionId *xid);
extern Datum pipeline_run_snapshot(void);

/* snapshot_cursor.c: arithmetic on cursors' snapshots */
extern Datum pipeline_snapshot_shift(Datum snapshot, uint64 offset);
extern Datum pipeline_snapshot_with_own_transaction(Datum snapshot);
extern Datum pipeline_snapshot_with_own_transaction_listed(Datum snapshot);
extern Datum pipeline_snapshot_committed_since(Datum cursor, Datum snapshot);
extern Datum pipeline_snapshot_with_finished(Datum cursor, FullTransactionId x);
extern Datum pipeline_snapshot_datum_prefix(Datum consumed, Datum upto,
											FullTransactionId boundary);
extern Datum pipeline_snapshot_intersection(Datum a, Datum b);

/* mark.c: the row watcher of a batch's statements (BatchState, batch.c) */
struct BatchState;
extern void pipeline_mark_init(void);
extern void pipeline_mark_arm(struct BatchState *batch, const char *statement, int nrules,
							  List *checks);
extern void pipeline_mark_disarm(void);

/* read_access.c */
extern void pipeline_require_whole_source(Oid source, Oid owner);
extern void pipeline_require_read_every_row(Oid relid, Oid role, const char *copy);

/* security.c */
extern void pipeline_become_internal(PipelineUserContext *saved);
extern void pipeline_become_owner(const PipelineDef *def, PipelineUserContext *saved);
extern void pipeline_become_role(Oid role, const char *search_path,
								 PipelineUserContext *saved);
extern void pipeline_become_relation_owner(Oid relid, PipelineUserContext *saved);
extern void pipeline_restore_user(PipelineUserContext *saved);
extern void pipeline_check_role(Oid role, const char *what);
extern void pipeline_check_manage(const PipelineDef *def);

/* sqlexec.c */
extern int	pipeline_exec(const char *sql, int nargs, Oid *types, Datum *values,
						  const char *nulls, bool read_only, long limit);
extern int	pipeline_exec_kept(const char *sql, int nargs, Oid *types, Datum *values,
							   const char *nulls, bool read_only, long limit);
extern SPIPlanPtr pipeline_prepare_kept(const char *sql, int nargs, Oid *types);
extern Datum pipeline_result_datum(int row, int col, bool *isnull);
extern int64 pipeline_result_int64(int row, int col);
extern char *pipeline_result_text(int row, int col);
extern char *pipeline_qualified_name(Oid relid);
extern char *pipeline_quote_list(List *names, const char *prefix);
extern ErrorData *pipeline_try(void (*fn) (void *arg), void *arg);
extern int	pipeline_exec_as_relation_owner(Oid relid, const char *sql, int nargs,
											Oid *types, Datum *values, const char *nulls);
extern void pipeline_ensure_trigger(Oid relid, const char *name, const char *definition,
									const char *function, char enabled);
extern void pipeline_require_expression(const char *expr, const char *what);
extern int	pipeline_exec_internal(const char *sql, int nargs, Oid *types, Datum *values,
								   const char *nulls);
extern int	pipeline_exec_internal_kept(const char *sql, int nargs, Oid *types, Datum *values,
										const char *nulls);
extern List *pipeline_text_array_to_list(Datum array, const char *what);
extern Datum pipeline_list_to_text_array(List *names);
extern Datum pipeline_oid_list_to_array(List *oids);

/* backlog.c */
extern bool pipeline_is_caught_up(int64 pipeline_id);

/* catalog.c */
/* Row locks taken on a definition while reading it. */
typedef enum DefLock
{
	DEF_LOCK_NONE,
	DEF_LOCK_SHARE,				/* a batch: blocks alter and drop until commit */
	DEF_LOCK_UPDATE				/* alter and drop: wait for the running batch */
} DefLock;

extern PipelineDef *pipeline_load(const char *name, bool missing_ok, DefLock lock);
extern void pipeline_report_missing(const char *name) pg_attribute_noreturn();
extern PipelineDef *pipeline_load_by_id(int64 id, DefLock lock);
extern Oid	pipeline_catalog_relid(const char *name);
extern int64 pipeline_run_start(const PipelineDef *def, const char *kind, Oid run_as);
extern void pipeline_run_progress(int64 run_id, const RunCounts *counts, int64 pending);
extern void pipeline_run_finish(int64 run_id, const char *status, const RunCounts *counts,
								const char *sqlstate, const char *message);
extern void pipeline_fail_interrupted_runs(int64 pipeline_id);
extern void pipeline_cursor_read(int64 pipeline_id, Datum *consumed, RowPosition *partial);
extern void pipeline_run_cursor_start(int64 run_id, Datum consumed, const RowPosition *partial);
extern void pipeline_cursor_write(int64 pipeline_id, int64 run_id, Datum consumed,
								  const RowPosition *partial, TimestampTz caught_up_at);
extern Jsonb *pipeline_source_columns_json(Oid source);
extern void pipeline_store_source_columns(int64 pipeline_id, Jsonb *columns);

/* mapping.c */
extern PipelineMapping *pipeline_build_mapping(const PipelineDef *def);
extern bool pipeline_mapping_lookup(Jsonb *columns, const char *column, char **expr);
extern ColumnMap *pipeline_mapping_column(const PipelineMapping *map, const char *column);
extern char *pipeline_mapping_column_list(const PipelineMapping *map);
extern void pipeline_apply_schema_change(PipelineDef *def);

/* dependencies.c */
extern void pipeline_drop_own_table(Oid relid);

/* staging.c */
extern void pipeline_guard_staging_table(Oid source);
extern void pipeline_refuse_staging_target(Oid target, const char *strategy);
extern void pipeline_own_staging_writes(Oid relid, void (*fn) (void *arg), void *arg);

/* change_log.c */
extern bool pipeline_is_change_log_column(const char *name);
extern Oid	pipeline_relation_owner(Oid relid);
extern List *pipeline_shared_columns(Oid relation, Oid log);
extern List *pipeline_change_log_columns(const PipelineDef *def);
extern void pipeline_add_missing_columns(Oid relation, Oid log);
extern void pipeline_sync_change_log(const PipelineDef *def);
extern Oid	pipeline_create_change_log(Oid target);
extern Oid	pipeline_published_change_log(Oid target, Oid owner);
extern Oid	pipeline_join_change_log(Oid relation, Oid reader);
extern Datum pipeline_seed_change_log(const PipelineDef *def);
extern void pipeline_check_change_log_reader(const PipelineDef *def);
extern void pipeline_trim_change_log(const PipelineDef *def);
extern void pipeline_release_change_logs(void);
extern void pipeline_refuse_last_writer_drop(const PipelineDef *def);
extern void pipeline_refuse_cycle(Oid source, Oid target);

/* capture.c */
extern void pipeline_forget_capture(Oid relation, Oid log, bool cascade);
extern void pipeline_capture_create_triggers(Oid relation);
extern void pipeline_capture_drop_triggers(Oid relation);

/* partition_ddl.c */
extern List *pipeline_created_partitions(void);
extern PartitionCmd *pipeline_partition_command(AlterTableStmt *stmt, AlterTableType *type,
												Oid *parent, Oid *partition);

/* capture_partitions.c */
extern Oid	pipeline_partition_root(Oid relation);
extern List *pipeline_capture_members(Oid relation, LOCKMODE lockmode);
extern void pipeline_refuse_capture_partitions(Oid relation, Oid log_owner);
extern void pipeline_capture_check_dropped_partitions(void);

/* define.c */
/* Whether an index of relid (its pg_index tuple) is the one looked for. */
typedef bool (*IndexMatch) (Oid relid, HeapTuple index_tuple, void *arg);
extern void pipeline_add_change_columns(Oid source);
extern void pipeline_check_choice(const char *option, const char *value,
								  const char *const *choices);
extern ErrorData *pipeline_try_batch_statement(const PipelineDef *def, const char *sql);
extern bool pipeline_has_index(Oid relid, IndexMatch match, void *arg);
extern bool pipeline_index_on_exactly(Oid relid, HeapTuple index_tuple, List *columns);

/* checks.c */
extern List *pipeline_load_checks(const PipelineDef *def, const PipelineMapping *map);
extern List *pipeline_copy_checks(List *checks);
extern void pipeline_checks_on_drop(bool cascade);
extern void pipeline_checks_verify_columns(const PipelineDef *def, const PipelineMapping *map);

/* check_results.c: a batch's checks, counted in its BatchState (batch.c) */
extern void pipeline_checks_begin_batch(struct BatchState *batch, List *checks);
extern void pipeline_checks_add_statement(struct BatchState *batch);
extern void pipeline_checks_end_batch(const PipelineDef *def, struct BatchState *batch,
									  List *checks);
extern void pipeline_checks_fail_statement(const PipelineDef *def, struct BatchState *batch,
										   List *checks);
extern void pipeline_checks_save_pending(struct BatchState *batch);

/* lineage.c */
extern void pipeline_save_lineage(const PipelineDef *def);

/* openlineage.c */
extern void pipeline_openlineage_init(void);

/* rules.c */
extern List *pipeline_row_rules(const PipelineDef *def, const PipelineMapping *map);

/* merge_sql.c: which pending rows a statement reads (see pipeline_pending_sql) */
typedef enum PendingShape
{
	PENDING_RANGE,
	PENDING_ORDERED,
	PENDING_WHOLE
} PendingShape;

extern char *pipeline_batch_sql(const PipelineDef *def, const PipelineMapping *map,
								BatchSource from, List *rules, List *checks,
								PendingShape shape);
extern char *pipeline_pending_sql(const PipelineDef *def, const PipelineMapping *map,
								  BatchSource from, const char *select_list, PendingShape shape);
extern char *pipeline_quarantine_sql(const PipelineDef *def, BatchSource from);
extern char *pipeline_key_match(const PipelineDef *def, const char *a, const char *b);
extern char *pipeline_accepted_rows(const PipelineDef *def, const PipelineMapping *map,
									BatchSource from, List *rules, List *checks,
									PendingShape shape);
extern void pipeline_insert_column_lists(const PipelineMapping *map, const char *a,
										 char **columns, char **values);
extern void pipeline_publish_cte(StringInfo sql, const PipelineDef *def, const char *written,
								 bool deletes);

/* merge_scd2_sql.c */
extern char *pipeline_scd2_sql(const PipelineDef *def, const PipelineMapping *map,
							   BatchSource from, List *rules, List *checks, PendingShape shape);

/* scd2.c: the version columns of an scd2 target */
#define PIPELINE_START_COLUMN "__start_at"
#define PIPELINE_END_COLUMN "__end_at"
extern bool pipeline_is_version_column(const PipelineDef *def, const char *name);
extern void pipeline_scd2_check_options(const PipelineDef *def);
extern void pipeline_scd2_check_mapping(const PipelineDef *def, const PipelineMapping *map);
extern List *pipeline_scd2_tracked(const PipelineDef *def, const PipelineMapping *map);
extern char *pipeline_scd2_table_elements(const PipelineDef *def, const PipelineMapping *map);
extern char *pipeline_scd2_current_index_sql(const PipelineDef *def, const char *target);
extern void pipeline_scd2_lock_target(const PipelineDef *def);
extern void pipeline_scd2_check_conflict(const PipelineDef *def, const ErrorData *edata);

/* batch.c: the parameters every statement of a batch takes, by position */
typedef enum BatchParam
{
	BATCH_PARAM_COMMITTED,		/* xid8[]: ids the cursor saw in progress,
								 * committed since */
	BATCH_PARAM_CURSOR_XMAX,	/* xid8: the cursor's xmax: ids from here on
								 * are new */
	BATCH_PARAM_SNAPSHOT,		/* pg_snapshot: the run's (a replay: the cursor
								 * after its runs) */
	BATCH_PARAM_LO_XID,			/* (_xid, _seq) the batch starts after */
	BATCH_PARAM_LO_SEQ,
	BATCH_PARAM_HI_XID,			/* (_xid, _seq) the batch ends at */
	BATCH_PARAM_HI_SEQ,
	BATCH_PARAM_RUN_ID,
	BATCH_PARAM_EXCLUDED_SEQS,	/* bigint[]: _seq and */
	BATCH_PARAM_PIPELINE_ID,
	BATCH_PARAM_REQUEUE_IDS,	/* bigint[]: quarantine ids (NULL: all) */
	BATCH_PARAM_EXCLUDED_XIDS,	/* xid8[]: _xid of the rows the batch
								 * quarantined already */
	BATCH_PARAM_BEFORE,			/* pg_snapshot: a replay's cursor before its
								 * runs (NULL otherwise) */
	BATCH_PARAM_BEFORE_XID,		/* its partial position, (0, 0) when none */
	BATCH_PARAM_BEFORE_SEQ,
	BATCH_PARAM_AFTER_XID,		/* the partial position of the cursor after */
	BATCH_PARAM_AFTER_SEQ,
	BATCH_NPARAMS,
	BATCH_PARAM_OFFSET = BATCH_NPARAMS	/* bigint: only the statement finding
										 * the n-th pending row takes it */
} BatchParam;

/* What a batch's statements read, packed by pipeline_batch_param_values. */
typedef struct BatchParams
{
	Datum		committed;		/* xid8[] */
	FullTransactionId cursor_xmax;
	Datum		snapshot;
	RowPosition lo;				/* exclusive */
	RowPosition hi;				/* inclusive */
	int64		run_id;
	int64		pipeline_id;
	Datum		requeue_ids;	/* bigint[], or 0: all */
	List	   *excluded;		/* of RowPosition * */
	Datum		before;			/* a replay's, or 0 */
	RowPosition before_partial;
	RowPosition after_partial;
	int64		offset;
} BatchParams;

/* A batch's data quality check counts, over its successful statements. */
typedef struct CheckCounts
{
	int			nchecks;
	int64		checked;		/* rows the checks saw */
	int64		failing[PIPELINE_MAX_CHECKS];	/* rows failing each check */
	int64		unchecked[PIPELINE_MAX_CHECKS]; /* rows each left out (NULL) */
} CheckCounts;

/*
 * The state of the batch a run is merging, the one place it lives: owned by
 * the run (RunState), reset as each batch begins, handed to the row watcher
 * (mark.c) and the checks (check_results.c).  Its memory lives as long as
 * the run, across the batches' commits and rollbacks.
 */
typedef struct BatchState
{
	int64		run_id;
	int32		number;			/* of the batch in its run, from 1 */
	char		where[NAMEDATALEN + 96];	/* what errors of its statements
											 * say they come from */
	RunCounts	counts;			/* what the batch did */
	/* the statement the row watcher watches (mark.c), NULL when none */
	const char *watched;
	int			nrules;			/* its row rules */
	List	   *checks;			/* its checks, of QualityCheck *, by number */
	RowPosition last_mark;		/* the row it was working on */
	BatchTally	tally;			/* what it read, filtered, checked, rejected */
	MemoryContext tally_context;	/* of tally.rejected: reset as it is armed */
	CheckCounts check_counts;	/* the checks' counts (check_results.c) */
	struct FailedChecks *failed;	/* a failed batch's check results, kept
									 * for the run to record */
	MemoryContext context;
} BatchState;

extern const char *pipeline_batch_param(BatchParam param);
extern Oid *pipeline_batch_param_types(void);
extern void pipeline_batch_param_values(const BatchParams *params, Datum *values, char *nulls);
extern void pipeline_batch_state_init(BatchState *batch);
extern void pipeline_batch_begin(BatchState *batch, const PipelineDef *def, int64 run_id,
								 int32 number);

/* merge.c */
extern int64 pipeline_count_pending(const PipelineDef *def, BatchSource from,
									const BatchParams *params);
extern bool pipeline_nth_pending(const PipelineDef *def, BatchSource from,
								 const BatchParams *params, int64 n, RowPosition *row);
extern void pipeline_merge_batch(const PipelineDef *def, BatchSource from,
								 const BatchParams *params, bool whole_phase, BatchState *batch,
								 RunCounts *counts);
extern void pipeline_forget_statements(int64 pipeline_id);

/* history.c */
extern int	pipeline_history_retention;
extern void pipeline_history_init(void);
extern void pipeline_purge_history(const char *table, const char *time_column,
								   const char *key_column, int64 key);

/* alerts.c */
extern void pipeline_raise_alert(const PipelineAlert *alert);

/* outcome.c */
extern int	pipeline_suspend_after_failures;
extern void pipeline_outcome_init(void);
extern void pipeline_record_outcome(int64 run_id);

/* cron.c */
extern char *pipeline_cron_normalize_schedule(char *schedule);
extern int	pipeline_min_schedule_interval;
extern void pipeline_cron_init(void);
extern void pipeline_cron_refuse_schedule(Oid role, const char *schedule);
extern void pipeline_cron_validate_schedule(const char *schedule);
extern void pipeline_cron_drop_all_jobs(void);

/* utility.c */
extern void pipeline_utility_init(void);

/* schedule.c */
extern void pipeline_schedule_parse(const char *text, PipelineSchedule *schedule);
extern TimestampTz pipeline_schedule_next(const PipelineSchedule *schedule, TimestampTz after);

/* shared_state.c */
extern int	pipeline_max_workers;
extern int	pipeline_max_databases;
extern PipelineShared *pipeline_shared;
extern void pipeline_shared_state_init(void);
extern PipelineDatabaseSlot *pipeline_database_slot(Oid dboid, bool create);
extern PipelineWorkerSlot *pipeline_worker_slot_of(Oid dboid, int64 pipeline_id);
extern void pipeline_note_staged_rows(void);
extern void pipeline_wake_launcher(void);
extern void pipeline_want_scheduler(void);
extern void pipeline_schedules_changed(void);
extern void pipeline_stop_database_workers(Oid dboid);
typedef enum PipelineHandoffResult
{
	HANDOFF_NONE,				/* nobody waits: go on */
	HANDOFF_TAKEN,				/* the slot now runs a waiting pipeline */
	HANDOFF_YIELD				/* a pipeline of another database waits: stop */
} PipelineHandoffResult;
extern PipelineHandoffResult pipeline_hand_over(PipelineWorkerSlot *slot);
extern void pipeline_wake_waiting_schedulers(void);
extern void pipeline_wake_continuous_workers(void);
extern bool pipeline_start_worker(const char *function, const char *type, const char *name,
								  Datum arg, BackgroundWorkerHandle **handle);

/* staged_sources.c */
extern void pipeline_staged_sources_init(void);
extern void pipeline_note_staged_row(void);
extern void pipeline_publish_staged_sources(PipelineStagedSources *set);
extern void pipeline_forget_staged_sources(void);
extern void pipeline_take_staged_sources(PipelineDatabaseSlot *db, PipelineStagedSources *copy);
extern bool pipeline_staged_into(const PipelineStagedSources *set, Oid relid);
extern void pipeline_note_source_activity(const PipelineStagedSources *staged, TimestampTz now);
extern TimestampTz pipeline_source_staged_at(Oid source);

/* launcher.c */
extern int	pipeline_launcher_naptime;
extern void pipeline_launcher_register(void);

/* scheduler.c */
extern int	pipeline_retry_base;
extern int	pipeline_retry_max;
extern void pipeline_scheduler_init(void);
extern int64 pipeline_retry_delay_ms(int64 pipeline_id, int32 failures);

/* run_worker.c */
extern volatile sig_atomic_t pipeline_stop_requested;
extern int	pipeline_continuous_naptime;
extern int	pipeline_continuous_min_interval;
extern void pipeline_run_worker_init(void);

/* run.c */
extern void pipeline_fail_dead_runs(void);
extern void pipeline_run_nonatomic(const char *name);
extern bool pipeline_run_lock_held(int64 pipeline_id);

/* replay.c: which runs a replay merges again, as the caller asked */
typedef struct ReplayRequest
{
	bool		has_since;
	TimestampTz since;
	bool		has_until;
	TimestampTz until;
	bool		has_first;
	int64		first_run;
	bool		has_last;
	int64		last_run;
} ReplayRequest;

/* The rows between two cursors: consumed by 'after', not by 'before'. */
typedef struct ReplayRange
{
	int64		first_run;
	int64		last_run;
	Datum		before;			/* pg_snapshot */
	RowPosition before_partial;
	Datum		after;
	RowPosition after_partial;
} ReplayRange;

extern void pipeline_replay_check(const PipelineDef *def, const ReplayRequest *req);
extern bool pipeline_replay_range(const PipelineDef *def, const ReplayRequest *req,
								  int64 replay_run_id, ReplayRange *range);

/* zstd.c */
extern void pipeline_zstd_check_level(int level);
extern bytea *pipeline_zstd_compress_bytes(const char *src, size_t len, int level,
										   const bytea *dictionary);
extern bytea *pipeline_zstd_decompress_bytes(const char *src, size_t len,
											 const bytea *dictionary, const char **why);
extern bytea *pipeline_zstd_train(const char *samples, const size_t *sizes, unsigned nsamples,
								  size_t capacity, const char **why);

/* archive_format.c: a batch's rows, encoded (see the file comment) */
#define PIPELINE_ARCHIVE_HEADER_SIZE 6

typedef struct ArchiveEncoder
{
	int			first;			/* first archived column of the rows (from 1) */
	int			ncols;
	FmgrInfo   *output;			/* each column's output function */
	StringInfoData buf;			/* the uncompressed payload so far */
	int			rows;
} ArchiveEncoder;

/* A batch as pipeline.archive_batches holds it, to be read back. */
typedef struct ArchivedBatch
{
	int64		id;
	Oid			source;			/* InvalidOid once the table was dropped */
	char	   *source_name;
	bytea	   *payload;
	int64		raw_bytes;
	int64		checksum;
	int64		row_count;
	Jsonb	   *columns;
	char	   *fingerprint;
	bytea	   *dictionary;		/* NULL: none */
} ArchivedBatch;

extern int	pipeline_archive_pin_formats(void);
extern void pipeline_archive_unpin_formats(int level);
extern void pipeline_archive_columns(Oid relid, Jsonb **columns, char **fingerprint);
extern ArchiveEncoder *pipeline_archive_encoder(TupleDesc desc, int first);
extern void pipeline_archive_encoder_reset(ArchiveEncoder *enc);
extern void pipeline_archive_encode_row(ArchiveEncoder *enc, HeapTuple tuple, TupleDesc desc);
extern uint32 pipeline_archive_checksum(const char *data, size_t len);

/* archive.c */
extern const char *pipeline_archived_unconsumed(const PipelineDef *def);
extern int	pipeline_archive_interval;
extern void pipeline_archive_init(void);
extern void pipeline_archive_new_reader(Oid source);
extern void pipeline_archive_after_run(const PipelineDef *def);

#endif							/* PIPELINE_H */
