/*-------------------------------------------------------------------------
 *
 * run.h
 *	  Running a pipeline: the run (run.c), a batch's statement executed
 *	  with its bad rows isolated (batch_exec.c, row_watch.c), its checks
 *	  judged (check_results.c), replays (replay.c) and the backlog
 *	  (backlog.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_RUN_H
#define PIPELINE_RUN_H

#include "model.h"

#include <signal.h>

#include "batch/batch.h"
#include "pipeline_catalog/pipeline_catalog.h"

/* row_watch.c */
extern void pipeline_mark_init(void);
extern void pipeline_mark_arm(struct BatchState *batch, const char *statement, int nrules,
							  List *checks);
extern void pipeline_mark_disarm(void);

/* backlog.c */
extern bool pipeline_is_caught_up(int64 pipeline_id);

/* check_results.c */
extern void pipeline_checks_begin_batch(struct BatchState *batch, List *checks);
extern void pipeline_checks_add_statement(struct BatchState *batch);
extern void pipeline_checks_end_batch(const PipelineDef *def, struct BatchState *batch,
									  List *checks);
extern void pipeline_checks_fail_statement(const PipelineDef *def, struct BatchState *batch,
										   List *checks);
extern void pipeline_checks_save_pending(struct BatchState *batch);

/* batch_exec.c */
extern bool pipeline_any_pending(const PipelineDef *def, BatchSource from,
								 const BatchParams *params);
extern int64 pipeline_count_pending(const PipelineDef *def, BatchSource from,
									const BatchParams *params);
extern bool pipeline_nth_pending(const PipelineDef *def, BatchSource from,
								 const BatchParams *params, int64 n, RowPosition *row);
extern bool pipeline_extract_end(const PipelineDef *def, BatchSource from,
								 const BatchParams *params, RowPosition *row, bool *complete,
								 char **extract);
extern bool pipeline_is_row_error(int sqlerrcode);
extern void pipeline_merge_batch(const PipelineDef *def, BatchSource from,
								 const BatchParams *params, bool whole_phase, BatchState *batch,
								 RunCounts *counts);

/* shard_run.c */
/*
 * The batches of a sharded run: the statement they send, their rules'
 * reasons and SQLSTATEs (text[]) and their checks, for the definition's
 * version; the shards that failed so far; and of the last batch, what
 * failed (NULL: nothing), its rejected rows (a jsonb array, as text),
 * whether a shard had more rows than a batch takes, and what its checks
 * counted and judged.
 */
typedef struct ShardBatch
{
	const char *statement;
	Datum		reasons;
	Datum		sqlstates;
	int32		version;
	List	   *checks;			/* the checks the statement judges */
	List	   *skipped;		/* names of the staging shards */
	char	   *failed;
	bool		failed_otherwise;	/* a shard failed, not by its checks */
	char	   *rejected;
	bool		full;
	bool		judged;			/* the checks judged a shard's batch */
	CheckCounts check_counts;	/* their counts over the shards' batches */
	int			statuses[PIPELINE_MAX_CHECKS];	/* each one's worst status */
} ShardBatch;

extern void pipeline_prepare_shard_batch(const PipelineDef *def, ShardBatch *batch);
extern void pipeline_read_shard_results(const PipelineDef *def, RunCounts *counts, ShardBatch *batch,
										const char *results, Oid arg_type, Datum arg);
extern void pipeline_merge_shards(const PipelineDef *def, RunCounts *counts, ShardBatch *batch);
extern void pipeline_quarantine_shard_rows(const PipelineDef *def, int64 run_id,
										   const ShardBatch *batch, RunCounts *counts);
extern void pipeline_unstage_shard_rows(const PipelineDef *def, const char *rejected);
extern void pipeline_unstage_quarantined(const PipelineDef *def, bool always);
extern void pipeline_restage_quarantined(const PipelineDef *def, int64 run_id, Datum ids);

/* routed_run.c */
extern void pipeline_claim_routed(const PipelineDef *def, RunCounts *counts, ShardBatch *batch);

/* check_results.c, for a sharded run's batches */
extern void pipeline_checks_save_shards(const PipelineDef *def, int64 run_id, const ShardBatch *batch);

/* run.c */
extern volatile sig_atomic_t pipeline_stop_requested;
extern void pipeline_fail_dead_runs(void);
extern void pipeline_run_nonatomic(const char *name);
extern int64 pipeline_run_fixture(PipelineDef *def, RunCounts *counts, ErrorData **error);

/* test_fixture.c, test_results.c: pipeline.test's rows and results */
extern void pipeline_check_fixture_shape(const PipelineDef *def, Jsonb *rows);
extern void pipeline_check_fixture_rows(const PipelineDef *def, int nrows);
extern char *pipeline_test_written_rows(const PipelineDef *def);
extern char *pipeline_test_deleted_rows(const PipelineDef *def, CommandId cid);
extern char *pipeline_test_run_rows(int64 run_id);
extern char *pipeline_test_document(const RunCounts *counts, const ErrorData *error,
									const char *target, const char *deleted);
extern bool pipeline_run_lock_held(int64 pipeline_id);

/* replay.c */
extern void pipeline_replay_check(const PipelineDef *def, const ReplayRequest *req);

#endif							/* PIPELINE_RUN_H */
