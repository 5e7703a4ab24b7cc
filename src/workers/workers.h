/*-------------------------------------------------------------------------
 *
 * workers.h
 *	  Background workers: the launcher (launcher.c), one scheduler per
 *	  database (scheduler.c), run workers (run_worker.c), and the shipper
 *	  of a database's OpenLineage events (shipper.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_WORKERS_H
#define PIPELINE_WORKERS_H

#include "model.h"
#include "definition/definition.h"
#include "shared_memory/shared_memory.h"

/*
 * A scheduled pipeline, as one pass sees it; or a scheduled step (step:
 * steps/), which has no source, never a continuous schedule, and may have
 * to wait for its upstreams.
 */
typedef struct ScheduledPipeline
{
	int64		id;
	bool		step;
	char	   *name;
	Oid			owner;
	PipelineSchedule schedule;
	bool		stopped;		/* paused or suspended */
	int32		failures;		/* in a row */
	TimestampTz last_failure_at;
	TimestampTz last_start;		/* of its last run or empty tick, 0 if none */
	TimestampTz next_run_at;	/* as stored, 0 if none */
	TimestampTz waiting_since;	/* as stored, 0 if not waiting for a worker */
	TimestampTz last_empty_tick_at; /* 0 if none */
	int32		retry_base_ms;	/* its failure policy's; -1: the setting's */
	int32		retry_max_ms;
	Oid			source;			/* the relation it reads (not a step's) */
	bool		ready;			/* a step: every upstream's last run succeeded */
	bool		triggered;		/* a step: an upstream did new work since its
								 * last start */
	bool		has_worker;		/* a run worker of this scheduler runs it */
	bool		started;		/* this pass started its worker */
	bool		waits;			/* this pass found no worker free for it */
	TimestampTz due;			/* due_at, as this pass computed it */
} ScheduledPipeline;

/* The due pipelines of one pass that no worker runs yet. */
typedef struct PassPlan
{
	List	   *work;			/* rows wait for them, or a retry is due */
	List	   *standby;		/* continuous, with nothing to read yet */
	PipelineStagedSources staged;	/* sources that got rows since the last
									 * pass */
} PassPlan;

/* launcher.c */
extern void pipeline_launcher_register(void);

/* scheduled_pipelines.c */
extern int64 pipeline_retry_delay_ms(const ScheduledPipeline *p, int32 failures);
extern List *pipeline_read_scheduled(void);
extern char *pipeline_due_step(int64 step_id, const char **trigger);
extern TimestampTz pipeline_due_at(const ScheduledPipeline *p, TimestampTz now);
extern List *pipeline_recheck_failures(List *due, TimestampTz now);
extern TimestampTz pipeline_next_due(const ScheduledPipeline *p, TimestampTz due, TimestampTz now);
extern TimestampTz pipeline_coarse_wake(const ScheduledPipeline *p, TimestampTz due);
extern void pipeline_store_schedule_state(ScheduledPipeline *p, TimestampTz next,
										  TimestampTz waiting_since);
extern bool pipeline_quiet_tick(const ScheduledPipeline *p);
extern void pipeline_record_empty_tick(ScheduledPipeline *p, TimestampTz now, TimestampTz next);

/* shipper.c */
extern void pipeline_keep_shipper(void);

/* worker_placement.c */
extern void pipeline_forget_stopped_workers(void);
extern bool pipeline_is_running(ScheduledPipeline *p);
extern void pipeline_plan_due_pipeline(ScheduledPipeline *p, TimestampTz now, PassPlan *plan);
extern int	pipeline_place_due(PipelineDatabaseSlot *slot, PassPlan *plan);
extern void pipeline_publish_waiting(PipelineDatabaseSlot *slot, List *work,
									 int unplaced_continuous);
extern void pipeline_remember_served(List *pipelines);

#endif							/* PIPELINE_WORKERS_H */
