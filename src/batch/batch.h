/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  One batch's statement, up to the rows it accepts: the batch's
 *	  parameters and state (batch.c), the mapping (mapping.c), row rules
 *	  (rules.c), and the SQL of pending rows (pending_sql.c) and accepted
 *	  rows (batch_sql.c); the rows of a test (fixture_rows.c).
 *	  How accepted rows reach the target is the strategy's (strategy.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_BATCH_H
#define PIPELINE_BATCH_H

#include "utils/jsonb.h"

#include "model.h"

/*
 * Internal columns of a batch row (batch_sql.c): the row's source_key
 * columns (numbered from 0) and its sequence_by value, for a strategy
 * whose target does not keep them (aggregate).
 */
#define PIPELINE_ROW_SOURCE_KEY "__pl_k%d"
#define PIPELINE_ROW_SEQUENCE "__pl_sq"

/*
 * With joins (joins_sql.c): the source row as jsonb, the copies of each
 * join's source columns (join number, column number), and whether a delete
 * event deletes the row rather than leaving it out of the result.
 */
#define PIPELINE_ROW_FACT "__pl_fact"
#define PIPELINE_ROW_JOIN_KEY "__pl_j%d_%d"
#define PIPELINE_ROW_DROP "__pl_drop"

/*
 * The target column marking the version of a key a full extract lacked
 * (hard_deletes 'new_record', snapshot_sql.c).
 */
#define PIPELINE_DELETED_COLUMN "__deleted"

/*
 * A Debezium truncate event, which a merge applies (merge_truncates.c),
 * and the batch statement's result column giving the floor it leaves.
 */
#define PIPELINE_ROW_TRUNCATE "__pl_trunc"
#define PIPELINE_TRUNCATED_AT "__pl_truncated_at"

/* pending_sql.c: which pending rows a statement reads (see pipeline_pending_sql) */
typedef enum PendingShape
{
	PENDING_RANGE,
	PENDING_ORDERED,
	PENDING_FIRST,
	PENDING_WHOLE
} PendingShape;

/* batch.c: the parameters every statement of a batch takes, by position */
typedef enum BatchParam
{
	BATCH_PARAM_COMMITTED,		/* xid8[]: ids the cursor saw in progress,
								 * committed since */
	BATCH_PARAM_CURSOR_XMAX,	/* xid8: the cursor's xmax: ids from here on
								 * are new */
	BATCH_PARAM_SNAPSHOT,		/* pg_snapshot: the run's (a replay: the
								 * cursor after its runs) */
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
 * (row_watch.c) and the checks (check_results.c).  Its memory lives as long as
 * the run, across the batches' commits and rollbacks.
 */
typedef struct BatchState
{
	int64		run_id;
	int32		number;			/* of the batch in its run, from 1 */
	char		where[NAMEDATALEN + 96];	/* what errors of its statements
											 * say they come from */
	RunCounts	counts;			/* what the batch did */
	/* the statement the row watcher watches (row_watch.c), NULL when none */
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

/* mapping.c */
extern PipelineMapping *pipeline_build_mapping(const PipelineDef *def);
extern bool pipeline_mapping_lookup(Jsonb *columns, const char *column, char **expr);
extern ColumnMap *pipeline_mapping_column(const PipelineMapping *map, const char *column);
extern Query *pipeline_analyze_expression(const PipelineDef *def, const char *expr);
extern bool pipeline_expression_reads_dimensions(const PipelineDef *def, const char *expr);
extern char *pipeline_mapping_column_list(const PipelineMapping *map);
extern char *pipeline_mapping_column_values(const PipelineMapping *map, const char *a);
extern bool pipeline_follows_source(const PipelineDef *def, const char *column);

/* sequence.c */
extern List *pipeline_sequence_parts(const PipelineDef *def);
extern char *pipeline_kept_sequence_column(int i);
extern List *pipeline_sequence_columns(const PipelineDef *def);
extern const char *pipeline_sequence_target_column(const PipelineDef *def);
extern void pipeline_sequence_row_columns(const PipelineDef *def, StringInfo list);
extern char *pipeline_sequence_newer(const char *a, List *a_columns, const char *b,
									 List *b_columns);

/* snapshot_sql.c */
extern bool pipeline_marks_deleted(const PipelineDef *def);
extern AttrNumber pipeline_extract_id_attnum(const PipelineDef *def);
extern bool pipeline_reads_extracts(const PipelineDef *def);
extern char *pipeline_extract_kept(void);
extern char *pipeline_extract_absent_values(const PipelineDef *def, const PipelineMapping *map,
											const char *sequence_value);
extern char *pipeline_extract_target_key(int i);
extern char *pipeline_extract_events(StringInfo sql, const PipelineDef *def, BatchSource from,
									 const char *columns, const char *tallies,
									 const char *current, const char *differ, const char *absent_values,
									 const char *live);
extern char *pipeline_current_extract(const PipelineDef *def, BatchSource from);
extern char *pipeline_extract_end_sql(const PipelineDef *def, BatchSource from);
extern char *pipeline_extract_row_check(const PipelineDef *def, BatchSource from);

/* debezium_sql.c */
extern bool pipeline_reads_events(const PipelineDef *def);
extern bool pipeline_applies_truncates(const PipelineDef *def);
extern bool pipeline_is_event_column(const char *column);
extern char *pipeline_event_column(const PipelineDef *def);
extern List *pipeline_decoded_columns(const PipelineDef *def);
extern char *pipeline_source_rows(const PipelineDef *def, const char *rows);

/* joins_sql.c */
extern List *pipeline_join_key_columns(int j, const DimensionJoin *join);
extern char *pipeline_source_from(const PipelineDef *def, const char *rows);
extern char *pipeline_join_missed(const PipelineDef *def);
extern void pipeline_join_row_columns(const PipelineDef *def, StringInfo list);
extern char *pipeline_dimension_rows_sql(const PipelineDef *def, const char *state, List *keys,
										 bool whole_rows, bool first, const char *where);

/* batch_sql.c */
extern ErrorData *pipeline_try_batch_statement(const PipelineDef *def, const char *sql);
extern char *pipeline_batch_sql(const PipelineDef *def, const PipelineMapping *map,
								BatchSource from, List *rules, List *checks,
								PendingShape shape);
extern char *pipeline_target_distinct(const PipelineDef *def, const char *column, const char *a,
									  const char *b);
extern bool pipeline_has_delete_events(const PipelineDef *def);
extern bool pipeline_keeps_source_rows(const PipelineDef *def);
extern char *pipeline_accepted_rows(const PipelineDef *def, const PipelineMapping *map,
									BatchSource from, List *rules, List *checks,
									PendingShape shape);
extern void pipeline_insert_column_lists(const PipelineMapping *map, const char *a,
										 List *values, char **columns, char **selected);
extern char *pipeline_upsert_conflict(const PipelineDef *def, const PipelineMapping *map, bool counted);
extern char *pipeline_upsert_returning(const PipelineDef *def);
extern char *pipeline_published_returning(const PipelineDef *def);
extern void pipeline_publish_cte(StringInfo sql, const PipelineDef *def, const char *written,
								 const char *deleted);

/* shard_sql.c: the most rejected rows a shard statement returns */
#define PIPELINE_SHARD_MAX_REJECTED 1000

/*
 * Where the worker function (run/shard_statement.c) writes the shards'
 * names and the condition on the rows a statement reads: bytes no SQL of a
 * definition holds (refused elsewhere).
 */
#define PIPELINE_SHARD_SOURCE "\001source\001"
#define PIPELINE_SHARD_TARGET "\001target\001"
#define PIPELINE_SHARD_ROWS "\001rows\001"

extern char *pipeline_shard_sql(const PipelineDef *def, const PipelineMapping *map, List *rules,
								List *checks, const char *source, const char *target, const char *rows);
extern char *pipeline_shard_statement(const PipelineDef *def, const PipelineMapping *map, List *rules,
									  List *checks);

/* shard_lookups.c */
extern List *pipeline_shard_lookup_others(const PipelineDef *def, const char *expr);
extern char *pipeline_shard_expression(const PipelineDef *def, const char *expr);
extern List *pipeline_shard_check_lookup_others(const PipelineDef *def, const char *expr);
extern char *pipeline_shard_check_expression(const PipelineDef *def, const char *expr);

/* pending_sql.c */
extern char *pipeline_pending_sql(const PipelineDef *def, BatchSource from,
								  const char *select_list, PendingShape shape);
extern char *pipeline_quarantine_sql(const PipelineDef *def, BatchSource from);

/* fixture_rows.c: the rows of a test, numbered n from 1, as f.value */
#define PIPELINE_FIXTURE_ROWS \
	"pg_catalog.jsonb_array_elements(pipeline.test_rows()) WITH ORDINALITY AS f(value, n)"
extern void pipeline_fixture_set(Jsonb *rows);
extern bool pipeline_fixture_held(void);
extern char *pipeline_fixture_row_sql(Oid source);

/* rules.c */
extern List *pipeline_row_rules(const PipelineDef *def, const PipelineMapping *map);

/* batch.c */
extern const char *pipeline_batch_param(BatchParam param);
extern Oid *pipeline_batch_param_types(void);
extern void pipeline_batch_param_values(const BatchParams *params, Datum *values, char *nulls);
extern void pipeline_batch_state_init(BatchState *batch);
extern void pipeline_batch_begin(BatchState *batch, const PipelineDef *def, int64 run_id,
								 int32 number);
extern List *pipeline_row_keys(const PipelineDef *def);

#endif							/* PIPELINE_BATCH_H */
