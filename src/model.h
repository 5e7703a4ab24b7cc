/*-------------------------------------------------------------------------
 *
 * model.h
 *	  The data model every area of the extension shares: a pipeline's
 *	  definition, its mapping, rules and checks, positions in a source,
 *	  what a batch or run did, and the identity work runs under.
 *
 * Each area declares its own functions in its folder's header
 * (src/<area>/<area>.h); only types several areas pass to each other
 * live here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_MODEL_H
#define PIPELINE_MODEL_H

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

/* How a pipeline writes its rows into its target (strategy.h). */
typedef struct PipelineStrategy PipelineStrategy;

/*
 * A dimension table a pipeline joins its source rows to (joins => ...), on
 * the dimension's primary key, as stored in pipeline.pipeline_joins.
 */
typedef struct DimensionJoin
{
	Oid			dimension;
	Oid			change_log;		/* where its changes are followed */
	char	   *alias;			/* what expressions call it */
	bool		inner;			/* a source row without a match has no result;
								 * else (left) NULL columns */
	List	   *source_columns; /* of char *, matched in order to */
	List	   *dimension_columns;	/* of char *, its primary key */
} DimensionJoin;

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
	const struct PipelineStrategy *strategy;	/* how rows reach the target
												 * (strategy.h) */
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
	Oid			change_log;		/* where it publishes its changes, or
								 * InvalidOid */
	bool		reads_change_log;	/* its source is another target's change
									 * log */
	List	   *track_history;	/* scd2: of char *; NIL: every column but key
								 * and sequence_by */
	List	   *source_key;		/* aggregate: of char *, source columns
								 * identifying a source row; NIL: none */
	char	   *group_filter;	/* aggregate: HAVING, a condition over target
								 * columns */
	Oid			group_state;	/* aggregate: its groups' state table */
	Oid			row_state;		/* aggregate: its source rows' state table
								 * (keyed by source_key), or InvalidOid */
	List	   *joins;			/* of DimensionJoin *, in order; NIL: none */
	char	   *format;			/* "debezium": a staged row holds a change
								 * event (debezium_sql.c); "snapshot": a
								 * source transaction's rows are a full
								 * extract (snapshot_sql.c); NULL: the row */
	bool		sequence_kept;	/* merge: sequence_by is expressions over the
								 * source row, kept in the row state, not in
								 * the target */
	List	   *ignore_null_updates;	/* merge: of char *, columns ("*": all
										 * but the key) whose NULL in an
										 * update keeps the stored value; NIL:
										 * none */
	char	   *hard_deletes;	/* format snapshot: "delete", "invalidate" or
								 * "ignore" */
	float4		max_delete_share;	/* format snapshot: (0, 1] */
	char	   *on_truncate;	/* format debezium: "quarantine" or "apply" */
	char	   *extract_id;		/* format snapshot: the source column naming
								 * each row's extract, or NULL (a
								 * transaction's rows) */
	char	   *extract_closed; /* extract_id: the latest extract closed by
								 * close_extract, a JSON scalar (as text), or
								 * NULL; the batch statement reads the latest
								 * applied and the truncate floor from the
								 * catalog itself */
	bool		sharded;		/* the staging table is hash-distributed by
								 * Citus: runs merge shard by shard */
} PipelineDef;

/* One target column and the SQL expression (over the source row) feeding it. */
typedef struct ColumnMap
{
	char	   *column;			/* target column name */
	char	   *expr;			/* SQL text, source columns unqualified */
	Oid			typid;			/* type of the expression */
	int32		typmod;
	bool		is_key;
	bool		aggregates;		/* expr aggregates a group's rows (aggregate
								 * strategy) */
} ColumnMap;

/* How the rows of a source become rows of a target. */
typedef struct PipelineMapping
{
	List	   *columns;		/* of ColumnMap *, in target column order */
	List	   *source_columns; /* of char *, source columns but _xid/_seq (of
								 * the decoded rows, for Debezium events) */
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
	char	   *passes;			/* SQL boolean over the batch row; NULL: batch
								 * check */
	char	   *window;			/* a window column passes reads (unique), or
								 * NULL */
	bool		skips_nulls;	/* passes is NULL for a NULL value: row not
								 * checked */
	int64		min_rows;		/* row_count bounds; -1: none */
	int64		max_rows;
	double		mostly;			/* 0: not set */
	CheckThreshold warn_if;
	CheckThreshold error_if;
} QualityCheck;

/* An orchestration step (steps/), as pipeline.steps keeps it. */
typedef struct StepDef
{
	int64		id;				/* 0: not saved yet */
	char	   *name;
	Oid			owner;
	char	   *command;		/* one SQL statement */
	char	   *kind;			/* "refresh", "call" or "statement" */
	char	   *search_path;	/* the command runs with it */
	char	   *statement_timeout;	/* interval text, or NULL for none */
	int64		statement_timeout_ms;	/* 0 for none */
	List	   *reads;			/* of Oid: relations declared read */
	List	   *writes;			/* of Oid: relations declared written */
	bool		paused;
	bool		suspended;		/* after failures in a row; resume_step */
	char	   *schedule;		/* manual, on_upstream, interval or cron */
} StepDef;

/* A pipeline or step a step runs after. */
typedef struct StepUpstream
{
	int64		id;
	bool		is_step;
} StepUpstream;

/* Where a batch's rows come from. */
typedef enum BatchSource
{
	BATCH_FROM_STAGING,			/* pending rows of the source table */
	BATCH_FROM_QUARANTINE,		/* quarantined rows put back by requeue */
	BATCH_FROM_REPLAY,			/* rows earlier runs consumed, staged or
								 * archived */
	BATCH_FROM_DIMENSION,		/* source rows a dimension's change sends
								 * again (joins_sql.c) */
	BATCH_FROM_FIXTURE			/* the rows pipeline.test gives
								 * (fixture_rows.c) */
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
	int64		unchanged;		/* events equal to the stored row: not written */
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

/* What a batch statement read, filtered, checked and rejected (row_watch.c). */
typedef struct BatchTally
{
	int64		read;
	int64		filtered;
	int64		dropped;
	int64		unchanged;		/* upserts equal to the stored row */
	List	   *rejected;		/* of RejectedRow * */
	int64		check_failing[PIPELINE_MAX_CHECKS]; /* rows failing each check */
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
	const char *kind;			/* "freshness", "pipeline", "check" or "step" */
	const char *severity;		/* "info", "warning", "error" or "critical" */
	int64		check_id;		/* a freshness check's */
	int64		pipeline_id;
	int64		step_id;
	const char *subject;		/* the relation checked, or the pipeline's or
								 * step's name */
	const char *previous_state;
	const char *state;
	const char *message;
	Oid			owner;
	const char *details;		/* a JSON object added to the payload */
} PipelineAlert;

#endif							/* PIPELINE_MODEL_H */
