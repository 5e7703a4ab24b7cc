/*-------------------------------------------------------------------------
 *
 * definition.h
 *	  Changing definitions: create, alter and drop (define.c), data
 *	  quality checks (checks.c), joins to dimensions (joins.c), schedules
 *	  (schedule_spec.c), schema evolution (schema_change.c), and drops of
 *	  the tables pipelines use (dependencies.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_DEFINITION_H
#define PIPELINE_DEFINITION_H

#include "model.h"

/* A schedule (schedule_spec.c). */
typedef enum PipelineScheduleKind
{
	SCHEDULE_MANUAL,
	SCHEDULE_CONTINUOUS,
	SCHEDULE_INTERVAL,
	SCHEDULE_CRON,
	SCHEDULE_ON_UPSTREAM		/* a step's: when an upstream did new work */
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

/* source_format.c */
extern void pipeline_check_format(PipelineDef *def);
extern void pipeline_check_on_truncate(const PipelineDef *def);

/* sharded_pipelines.c */
extern bool pipeline_sharded_routed(const PipelineDef *def);
extern void pipeline_check_sharded_kind(const PipelineDef *def);
extern void pipeline_check_sharded_checks(const PipelineDef *def);
extern void pipeline_check_sharded(const PipelineDef *def, const PipelineMapping *map);
extern void pipeline_check_sharded_run(const PipelineDef *def);

/* citus_targets.c */
extern void pipeline_check_citus_target(const PipelineDef *def);

/* joins.c */
extern List *pipeline_read_joins(Jsonb *arg);
extern void pipeline_check_joins(PipelineDef *def);
extern void pipeline_refuse_citus_dimensions(const PipelineDef *def);
extern void pipeline_refuse_deleting_dimension(const PipelineDef *def);

/* schema_change.c */
extern void pipeline_apply_schema_change(PipelineDef *def);

/* checks.c */
extern ErrorData *pipeline_try_definition_statement(const PipelineDef *def, PipelineMapping *map);
extern void pipeline_check_citus_checks(const PipelineDef *def);
extern List *pipeline_load_checks(const PipelineDef *def, const PipelineMapping *map);
extern List *pipeline_load_shard_checks(const PipelineDef *def, const char *target);
extern List *pipeline_copy_checks(List *checks);
extern void pipeline_checks_on_drop(bool cascade);
extern void pipeline_checks_verify_columns(const PipelineDef *def, const PipelineMapping *map);

/* define.c */
extern char *pipeline_statement_timeout_arg(FunctionCallInfo fcinfo, int arg);

/* schedule_spec.c */
extern void pipeline_schedule_parse(const char *text, PipelineSchedule *schedule);
extern void pipeline_step_schedule_parse(const char *text, PipelineSchedule *schedule);
extern void pipeline_stored_step_schedule(const char *text, PipelineSchedule *schedule);
extern TimestampTz pipeline_schedule_next(const PipelineSchedule *schedule, TimestampTz after);

#endif							/* PIPELINE_DEFINITION_H */
