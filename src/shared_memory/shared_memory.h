/*-------------------------------------------------------------------------
 *
 * shared_memory.h
 *	  Shared memory of the background workers (shared_state.c),
 *	  and which sources committed transactions staged rows into
 *	  (staged_sources.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_SHARED_MEMORY_H
#define PIPELINE_SHARED_MEMORY_H

#include "model.h"

/* Shared memory of the background workers (shared_state.c). */

/* A pipeline (or step) waiting for a worker, as its scheduler found it. */
typedef struct PipelineHandoff
{
	int64		pipeline_id;	/* the step's id when 'step' */
	bool		step;
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
	pid_t		shipper_pid;	/* 0: no shipper (workers/shipper.c) */
	struct Latch *scheduler_latch;
	bool		starting;		/* the launcher registered a scheduler */
	bool		no_extension;	/* the last scheduler found no extension */
	bool		recheck;		/* CREATE EXTENSION ran here since */
	TimestampTz blocked_until;	/* a DROP/RENAME DATABASE wants it alone */
	int			waiting;		/* due pipelines with rows its last pass could
								 * not give a worker */
	int			unplaced_continuous;	/* continuous pipelines without a
										 * worker: commits of staged rows wake
										 * the scheduler */
	int			handoffs;		/* the first of them, in order, for a worker
								 * of this database to take over */
	PipelineHandoff handoff[PIPELINE_HANDOFF_QUEUE];
	PipelineStagedSources staged;	/* since its scheduler's last pass */
} PipelineDatabaseSlot;

typedef struct PipelineWorkerSlot
{
	bool		in_use;
	Oid			dboid;
	int64		pipeline_id;	/* the step's id when 'step' */
	bool		step;			/* it runs a step (steps/), not a pipeline */
	Oid			owner;
	bool		continuous;
	bool		retrying;		/* after failures: runs even with nothing to
								 * read */
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

typedef enum PipelineHandoffResult
{
	HANDOFF_NONE,				/* nobody waits: go on */
	HANDOFF_TAKEN,				/* the slot now runs a waiting pipeline */
	HANDOFF_YIELD				/* a pipeline of another database waits: stop */
} PipelineHandoffResult;

extern PipelineShared *pipeline_shared;

/* shared_state.c */
extern void pipeline_shared_state_init(void);
extern PipelineDatabaseSlot *pipeline_database_slot(Oid dboid, bool create);
extern PipelineWorkerSlot *pipeline_worker_slot_of(Oid dboid, int64 id, bool step);
extern void pipeline_note_staged_rows(void);

/* What a transaction noted of staged rows, to forget a rolled-back part. */
typedef struct PipelineStagedNote
{
	bool		staged_rows;
	int64		unattributed_rows;
	int			sources;
} PipelineStagedNote;

extern void pipeline_staged_rows_mark(PipelineStagedNote *note);
extern void pipeline_staged_rows_rewind(const PipelineStagedNote *note);
extern void pipeline_wake_launcher(void);
extern void pipeline_want_scheduler(void);
extern void pipeline_schedules_changed(void);
extern void pipeline_stop_database_workers(Oid dboid);
extern PipelineHandoffResult pipeline_hand_over(PipelineWorkerSlot *slot);
extern void pipeline_wake_waiting_schedulers(void);
extern void pipeline_wake_continuous_workers(void);
extern bool pipeline_start_worker(const char *function, const char *type, const char *name,
								  Datum arg, BackgroundWorkerHandle **handle);

/* staged_sources.c */
extern void pipeline_staged_sources_init(void);
extern void pipeline_note_staged_row(void);
extern void pipeline_staged_sources_mark(PipelineStagedNote *note);
extern void pipeline_staged_sources_rewind(const PipelineStagedNote *note);
extern void pipeline_publish_staged_sources(PipelineStagedSources *set);
extern void pipeline_forget_staged_sources(void);
extern void pipeline_take_staged_sources(PipelineDatabaseSlot *db, PipelineStagedSources *copy);
extern bool pipeline_staged_into(const PipelineStagedSources *set, Oid relid);
extern void pipeline_note_source_activity(const PipelineStagedSources *staged, TimestampTz now);
extern TimestampTz pipeline_source_staged_at(Oid source);

#endif							/* PIPELINE_SHARED_MEMORY_H */
