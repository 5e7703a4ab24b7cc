/*-------------------------------------------------------------------------
 *
 * pipeline_catalog.h
 *	  The extension's own catalog tables, and the only code that writes SQL
 *	  against pipeline.pipeline_defs, pipeline.cursors and pipeline.run_log:
 *	  definitions (definitions.c), which pipelines read and write which
 *	  relations (pipeline_graph.c), what a DROP takes with it
 *	  (dropped_objects.c), cursors (cursors.c), run history (run_log.c),
 *	  what a finished run leaves behind (outcome.c), alerts (alerts.c), how
 *	  long history is kept (history_retention.c), orchestration steps
 *	  (steps.c), and what they share (catalog.c).
 *
 * Every function here expects an open SPI connection and does its work as
 * the extension (pipeline_become_internal): the caller checked the
 * permissions first.  Values are returned in the caller's memory context.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CATALOG_H
#define PIPELINE_CATALOG_H

#include "model.h"

/* Row locks taken on a definition while reading it. */
typedef enum DefLock
{
	DEF_LOCK_NONE,
	DEF_LOCK_SHARE,				/* a batch: blocks alter and drop until commit */
	DEF_LOCK_UPDATE				/* alter and drop: wait for the running batch */
} DefLock;

/* A pipeline's cursor, as read with others on the same source. */
typedef struct ReaderCursor
{
	int64		pipeline_id;
	char	   *label;			/* "Pipeline "x"", or another role's, unnamed */
	Datum		consumed;		/* pg_snapshot */
	RowPosition partial;
} ReaderCursor;

/* A pipeline's cursor with the clock's offset (backlog). */
typedef struct CursorProgress
{
	Datum		consumed;		/* pg_snapshot */
	RowPosition partial;
	bool		caught_up;
	TimestampTz caught_up_at;
	int64		xid_offset;
} CursorProgress;

/* A definition a DROP ... CASCADE removed. */
typedef struct DroppedDefinition
{
	char	   *name;
	Oid			change_log;		/* InvalidOid without */
	List	   *own_tables;		/* of Oid: tombstones, aggregate state */
} DroppedDefinition;

/* A check a DROP ... CASCADE removed with the table it looked rows up in. */
typedef struct DroppedCheck
{
	char	   *check;
	char	   *pipeline;
} DroppedCheck;

/*
 * A scheduled pipeline or step as its scheduler's pass reads it
 * (schedule_state.c).
 */
typedef struct ScheduleRow
{
	int64		id;
	bool		step;
	bool		ready;			/* a step: every upstream's last run succeeded */
	bool		triggered;		/* a step: an upstream did new work since its
								 * last start */
	char	   *name;
	Oid			owner;
	char	   *schedule;		/* as stored */
	bool		stopped;		/* paused or suspended */
	int32		failures;		/* in a row */
	TimestampTz last_failure_at;	/* 0 if none */
	TimestampTz last_start;		/* of its last run or empty tick, 0 if none */
	TimestampTz next_run_at;	/* 0 if none */
	TimestampTz waiting_since;	/* 0 if not waiting for a worker */
	Oid			source;
	TimestampTz last_empty_tick_at; /* 0 if none */
	int32		retry_base_ms;	/* its failure policy's; -1: the setting's */
	int32		retry_max_ms;
} ScheduleRow;

/*
 * What a run's history row is first written with: when the run starts
 * (status running), or whole, when the run found nothing to do.
 */
typedef struct RunRecord
{
	const char *kind;			/* run, requeue or replay */
	Oid			run_as;
	TimestampTz started_at;
	int64		pending;		/* the rows it has to consume */
	Datum		cursor_before;	/* a run's cursor at its start; 0 for others */
	RowPosition partial_before;
	Datum		cursor_after;	/* what it has consumed up to (0: none) */
	RowPosition partial_after;
} RunRecord;

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

/* catalog.c */
extern Oid	pipeline_catalog_relid(const char *name);
extern int	pipeline_catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
								  const char *nulls, bool read_only, long limit, bool kept);
extern RowPosition pipeline_catalog_position(int row, int col);
extern void pipeline_catalog_cursor_args(Datum consumed, const RowPosition *partial,
										 Oid *types, Datum *values, char *nulls);

/*
 * The status of the last run of each upstream u (a row of
 * pipeline.step_upstreams) of a step, as l.status: a pipeline's last run
 * or replay (not its tests or requeues), a step's last run; NULL when it
 * never ran.  A step is ready when every one is 'succeeded' (steps.c,
 * schedule_state.c).
 */
#define STEP_UPSTREAM_LAST_STATUS \
	"LEFT JOIN LATERAL (SELECT r.status FROM pipeline.run_log r WHERE r.pipeline_id = u.upstream_pipeline " \
	"   AND r.kind IN ('run', 'replay') ORDER BY r.run_id DESC LIMIT 1) l0 ON true " \
	"LEFT JOIN LATERAL (SELECT r.status FROM pipeline.step_run_log r WHERE r.step_id = u.upstream_step " \
	"   ORDER BY r.run_id DESC LIMIT 1) l1 ON true " \
	"CROSS JOIN LATERAL (SELECT coalesce(l0.status, l1.status) AS status) l "

/* steps.c */
extern StepDef *pipeline_step_load(const char *name, bool missing_ok, bool lock);
extern int64 pipeline_step_save(const StepDef *step);
extern void pipeline_step_lock_row(int64 step_id);
extern void pipeline_step_set_paused(int64 step_id, bool paused);
extern int64 pipeline_step_find_upstream(const char *name, bool *is_step, Oid *owner);
extern void pipeline_step_set_upstreams(int64 step_id, List *upstreams);
extern bool pipeline_step_has_upstreams(int64 step_id);
extern char *pipeline_step_cycle(int64 step_id);
extern void pipeline_step_set_relations(const StepDef *step, List *reads, List *writes);
extern char *pipeline_step_followers(int64 id, bool is_step);
extern List *pipeline_steps_delete(const char *roots, int64 id, bool cascade);
extern void pipeline_step_fail_interrupted(int64 step_id);
extern List *pipeline_running_steps(void);
extern char *pipeline_step_failing_upstream(int64 step_id);
extern int64 pipeline_step_run_start(int64 step_id, const char *trigger, const char *status,
									 const char *message);
extern void pipeline_step_run_finish(int64 run_id, const char *status, int64 rows,
									 const char *sqlstate, const char *message);

/* definitions.c */
extern PipelineDef *pipeline_load(const char *name, bool missing_ok, DefLock lock);
extern void pipeline_report_missing(const char *name) pg_attribute_noreturn();
extern PipelineDef *pipeline_load_by_id(int64 id, DefLock lock);
extern int64 pipeline_save_definition(const PipelineDef *def, bool insert);
extern void pipeline_delete_definition(int64 pipeline_id);
extern void pipeline_save_truncated_at(int64 pipeline_id, const char *floor);
extern void pipeline_save_extract(int64 pipeline_id, const char *extract, bool applied);
extern void pipeline_set_paused(int64 pipeline_id, bool paused);
extern void pipeline_suspend(int64 pipeline_id);
extern void pipeline_save_failure_policy(const char *table, int64 id, int32 retry_base_ms,
										 int32 retry_max_ms, int32 suspend_after_failures);
extern void pipeline_suspend_archived_unconsumed(int64 pipeline_id, const char *reason);
extern const char *pipeline_archived_unconsumed_reason(int64 pipeline_id);
extern void pipeline_store_source_columns(int64 pipeline_id, Jsonb *columns);
extern void pipeline_definition_changed(const PipelineDef *def);
extern char *pipeline_runnable_name(int64 pipeline_id, bool continuous_only);
extern int	pipeline_dropped_definitions(const int64 *ids, int n, int64 *dropped);

/* pipeline_graph.c */
extern bool pipeline_is_target(Oid relid);
extern bool pipeline_is_target_or_log(Oid relid);
extern bool pipeline_is_change_log(Oid relid);
extern Oid	pipeline_target_published_log(Oid target);
extern bool pipeline_target_log(Oid relation, Oid *target, Oid *log);
extern void pipeline_lock_writers(Oid target);
extern List *pipeline_publish_target(Oid target, Oid log);
extern Oid	pipeline_mirrored_table(Oid log);
extern Oid	pipeline_logged_relation(Oid relid);
extern List *pipeline_unread_change_logs(void);
extern List *pipeline_change_log_targets(Oid log);
extern bool pipeline_has_readers(Oid source);
extern char *pipeline_other_reader(Oid source, int64 id);
extern bool pipeline_has_writers(Oid log);
extern void pipeline_unpublish_change_log(Oid log);
extern char *pipeline_readers_left_without_writer(const PipelineDef *def, Oid role);
extern char *pipeline_reader_names(Oid log);
extern bool pipeline_readers_of(Oid relid, Oid role, Oid *source, char **names);
extern char *pipeline_cycle_path(Oid source, Oid target, Oid role);

/* dropped_objects.c */
extern char *pipeline_change_log_dependents(Oid log);
extern bool pipeline_dropped_capture_read(char **relation, char **pipeline);
extern bool pipeline_dropped_relation_used(char **relation, char **pipeline);
extern bool pipeline_dropped_step_relation(char **relation, char **step);
extern List *pipeline_delete_dropped_steps(void);
extern List *pipeline_delete_dropped_definitions(void);
extern void pipeline_unpublish_dropped_logs(void);
extern bool pipeline_dropped_check_reference(char **relation, char **check, char **pipeline);
extern List *pipeline_delete_dropped_check_references(void);

/* cursors.c */
extern void pipeline_create_cursor(int64 pipeline_id, Datum seeded, bool has_seed);
extern void pipeline_cursor_read(int64 pipeline_id, Datum *consumed, RowPosition *partial);
extern void pipeline_cursor_caught_up(int64 pipeline_id, TimestampTz at);
extern void pipeline_cursor_move(int64 pipeline_id, Datum consumed, const RowPosition *partial,
								 TimestampTz caught_up_at);
extern void pipeline_cursor_write(int64 pipeline_id, int64 run_id, Datum consumed,
								  const RowPosition *partial, TimestampTz caught_up_at);
extern void pipeline_cursor_state(int64 pipeline_id, CursorProgress *state);
extern List *pipeline_holding_cursors(Oid source, Oid owner, int hold_limit);
extern List *pipeline_unmarked_cursors(Oid source);
extern List *pipeline_source_cursors(Oid source, Oid role, bool *archives);
extern Datum pipeline_readers_horizon(Oid source, bool *isnull);

/* dimension_joins.c */
extern List *pipeline_load_joins(int64 pipeline_id);
extern void pipeline_save_joins(const PipelineDef *def);
extern Datum pipeline_dimensions_read(int64 pipeline_id);
extern void pipeline_dimensions_move(int64 pipeline_id, Datum consumed);

/* run_log.c */
extern int64 pipeline_run_start(int64 pipeline_id, const RunRecord *run);
extern int64 pipeline_run_record_empty(int64 pipeline_id, const RunRecord *run);
extern void pipeline_run_progress(int64 run_id, const RunCounts *counts, int64 pending);
extern bool pipeline_last_run_succeeded(int64 pipeline_id);
extern void pipeline_run_finish(int64 run_id, const char *status, const RunCounts *counts,
								const char *sqlstate, const char *message, bool outcome);
extern void pipeline_fail_interrupted_runs(int64 pipeline_id);
extern void pipeline_run_cursor_after(int64 run_id, Datum consumed, const RowPosition *partial);
extern bool pipeline_runs_selected(int64 pipeline_id, const ReplayRequest *req,
								   int64 replay_run_id, ReplayRange *range);
extern int	pipeline_running_pipelines(int64 **ids);
extern bool pipeline_last_change(Oid target, TimestampTz *finished_at);

/* schedule_state.c */
extern List *pipeline_scheduled_definitions(void);
extern List *pipeline_current_failures(int64 *ids, int nids, bool steps);
extern void pipeline_save_schedule_state(int64 id, bool step, TimestampTz next,
										 TimestampTz waiting_since);
extern void pipeline_save_empty_tick(int64 pipeline_id, TimestampTz at, TimestampTz next);
extern List *pipeline_scheduled_steps(void);
extern ScheduleRow *pipeline_scheduled_step(int64 step_id);

/* history_retention.c */
extern void pipeline_purge_history(const char *table, const char *time_column,
								   const char *key_column, int64 key);

/*
 * A finished run of a pipeline or a step, with the streak of failed runs
 * it extended or ended (outcome.c, step_outcome.c; alerts.c).
 */
typedef struct RunStreak
{
	const char *kind;			/* "pipeline" or "step" */
	int64		id;				/* the pipeline's or step's */
	char	   *name;
	Oid			owner;
	int64		run_id;
	char	   *status;
	char	   *sqlstate;
	char	   *message;
	bool		suspended;		/* before this run */
	int32		previous_streak;
	int32		streak;
	int32		suspend_after;	/* its own policy's, or the setting's */
	bool		scheduled_followers;	/* a step with a schedule runs after
										 * it */
} RunStreak;

/* alerts.c */
extern void pipeline_raise_alert(const PipelineAlert *alert);
extern bool pipeline_alert_streak(const RunStreak *run, void (*suspend) (int64 id));

/* outcome.c */
extern void pipeline_record_outcome(int64 run_id);

/* step_outcome.c */
extern void pipeline_record_step_outcome(int64 run_id);

#endif							/* PIPELINE_CATALOG_H */
