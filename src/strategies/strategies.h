/*-------------------------------------------------------------------------
 *
 * strategies.h
 *	  What the strategies' own files share (strategy.h is the
 *	  interface each of them implements).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_STRATEGIES_H
#define PIPELINE_STRATEGIES_H

#include "model.h"

/* strategies/scd2.c, scd2_sql.c: the version columns of an scd2 target */
#define PIPELINE_START_COLUMN "__start_at"
#define PIPELINE_END_COLUMN "__end_at"

/* row_state.c: what a row state keeps of each source row */
extern char *pipeline_source_column_type(const PipelineDef *def, const char *column);
extern char *pipeline_join_state_elements(const PipelineDef *def);
extern void pipeline_index_join_state(const PipelineDef *def);
extern List *pipeline_join_state_columns(const PipelineDef *def);
extern char *pipeline_join_state_values(const PipelineDef *def, const char *deleted);
extern void pipeline_forget_row_deletes(const PipelineDef *def);
extern char *pipeline_row_state_key_match(const PipelineDef *def, const char *r, const char *l);

/* merge_truncates.c */
extern void pipeline_truncation_cte(StringInfo sql, const PipelineDef *def, const char *rows);
extern char *pipeline_after_truncation(const PipelineDef *def, const char *a);
extern char *pipeline_truncate_ctes(StringInfo sql, const PipelineDef *def, const char *rows,
									const char *applied);

/* merge.c */
extern void pipeline_require_key_index(const PipelineDef *def);

/* merge_sql.c */
extern char *pipeline_merge_plain_sql(const PipelineDef *def, const PipelineMapping *map,
									  BatchSource from, const char *accepted);
extern void pipeline_merge_upsert_cte(StringInfo sql, const PipelineDef *def,
									  const PipelineMapping *map, const char *latest);
extern const char *pipeline_merge_delete_ctes(StringInfo sql, const PipelineDef *def,
											  const char *latest);

/* merge_joins.c */
extern void pipeline_merge_check_joins(const PipelineDef *def, const PipelineMapping *map);
extern void pipeline_merge_create_row_state(PipelineDef *def, const PipelineMapping *map);
extern char *pipeline_merge_joins_sql(const PipelineDef *def, const PipelineMapping *map,
									  const char *accepted);

/* merge_partial.c */
extern char *pipeline_merge_value_column(const PipelineDef *def, const ColumnMap *cm, int i);
extern char *pipeline_merge_fill_nulls(const PipelineDef *def, const PipelineMapping *map,
									   const char *accepted, const char *older);

/* scd2_sql.c */
extern char *pipeline_scd2_sql(const PipelineDef *def, const PipelineMapping *map,
							   BatchSource from, const char *accepted);
extern void pipeline_scd2_shard_ctes(StringInfo sql, const PipelineDef *def,
									 const PipelineMapping *map, const char *accepted,
									 const char *target);
extern List *pipeline_scd2_tracked(const PipelineDef *def, const PipelineMapping *map);

/* aggregate_calls.c: the aggregates an aggregate pipeline maintains */
typedef enum AggregateKind
{
	AGG_COUNT,					/* count(*) when it has no argument */
	AGG_SUM,
	AGG_AVG,
	AGG_MIN,
	AGG_MAX,
	AGG_COUNT_DISTINCT,
	AGG_BOOL_AND,
	AGG_BOOL_OR
} AggregateKind;

/*
 * One aggregate column, as the batch statement computes it: number i's
 * running state is the group state's columns named after i
 * (aggregate_sql.c); its argument and FILTER are the batch row's (and row
 * state's) columns arg_column and filter_column, which calls with the
 * same argument or FILTER share: one of them (owns_arg, owns_filter)
 * computes and stores it.
 */
typedef struct AggregateCall
{
	int			index;			/* i, from 0 in target column order */
	const char *column;			/* the target column */
	AggregateKind kind;
	char	   *arg;			/* SQL over the source row; NULL: count(*) */
	Oid			argtype;
	int32		argtypmod;
	char	   *filter;			/* SQL boolean over the source row, or NULL */
	Oid			restype;		/* the aggregate's result type */
	char	   *arg_column;		/* __pl_a<n>, or NULL for count(*) */
	char	   *filter_column;	/* __pl_f<n>, or NULL without FILTER */
	bool		owns_arg;
	bool		owns_filter;
} AggregateCall;

extern List *pipeline_aggregate_calls(const PipelineDef *def, const PipelineMapping *map);
extern bool pipeline_aggregate_needs_rows(const AggregateCall *call, bool retracts);

/* aggregate_sql.c */
extern char *pipeline_aggregate_sql(const PipelineDef *def, const PipelineMapping *map,
									BatchSource from, const char *accepted);
extern void pipeline_aggregate_row_columns(const PipelineDef *def, const PipelineMapping *map,
										   StringInfo list);
extern List *pipeline_aggregate_state_columns(const AggregateCall *call);
extern bool pipeline_aggregate_keeps_rows(const PipelineDef *def, List *calls);
extern bool pipeline_aggregate_reads_groups(const PipelineDef *def, List *calls);
extern bool pipeline_aggregate_remembers_deletes(const PipelineDef *def);
extern bool pipeline_aggregate_tracks_liveness(const PipelineDef *def);

#endif							/* PIPELINE_STRATEGIES_H */
