/*-------------------------------------------------------------------------
 *
 * strategy.h
 *	  The strategy interface: how a pipeline writes its accepted rows into
 *	  its target (merge, append, scd2, aggregate).
 *
 * Everything a pipeline does before its rows reach the target is the same
 * whatever its strategy: the cursor rule picks the pending rows, the
 * mapping, row rules and checks accept or quarantine them (batch_sql.c).
 * A strategy says only what its target must be and how accepted rows are
 * written into it.  Each strategy is one file of src/strategies/ that
 * fills a PipelineStrategy, registered at load time (pipeline.c); nothing
 * else names a strategy, so a new one plugs in without touching the others.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_STRATEGY_H
#define PIPELINE_STRATEGY_H

#include "model.h"

struct PipelineStrategy
{
	/* The name pipeline.create_pipeline(strategy => ...) takes. */
	const char *name;

	/*
	 * Rows are matched to target rows by the pipeline's key (a key is
	 * required, NULL keys are quarantined, deletes and sequence_by apply, the
	 * owner needs UPDATE and SELECT on the target), rather than only added.
	 */
	bool		keyed;

	/*
	 * A key has several target rows, one version per sequence_by value: its
	 * tombstones are per (key, sequence_by).
	 */
	bool		versioned;

	/*
	 * Its batch statement counts its own stale events (a fourth column): its
	 * other counts are not of events (versions, groups).
	 */
	bool		counts_stale;

	/*
	 * Target rows are groups of source rows: the key is the group's, the
	 * mapping's other columns aggregate (ColumnMap.aggregates), rules about a
	 * row's contents skip delete events, and with a source_key a row failing
	 * the filter leaves its group (a delete event).
	 */
	bool		groups;

	/* Target columns the strategy writes itself, never mapped; NULL-ended. */
	const char *const *own_columns;

	/* Definition: errors for options it lacks or does not take. */
	void		(*check_options) (const PipelineDef *def);

	/*
	 * Definition: an existing target's privileges and indexes (besides
	 * INSERT).
	 */
	void		(*check_target) (const PipelineDef *def);

	/* Definition: the mapping, once typed, against the target. */
	void		(*check_mapping) (const PipelineDef *def, const PipelineMapping *map);

	/*
	 * Definition: a new target's table elements after its columns (", PRIMARY
	 * KEY (...)"), and what is created after it (NIL or a List of SQL
	 * statements over the target's quoted name).
	 */
	char	   *(*target_elements) (const PipelineDef *def, const PipelineMapping *map);
	List	   *(*target_extras) (const PipelineDef *def, const char *target);

	/*
	 * Definition: creates the tables the strategy keeps next to the target
	 * and sets their oids in 'def' (NULL: none).
	 */
	void		(*create_state) (PipelineDef *def, const PipelineMapping *map);

	/*
	 * Run: appends the batch row's columns after its mark, _xid and _seq (",
	 * <expression> AS <name>" each); NULL: each mapped column's expression
	 * under its name.
	 */
	void		(*row_columns) (const PipelineDef *def, const PipelineMapping *map,
								StringInfo list);

	/*
	 * Run: the batch statement, writing 'accepted' (the subquery of the
	 * batch's accepted rows, batch_sql.c, which come from 'from') into the
	 * target.  It returns one row: target rows inserted, target rows updated,
	 * delete events applied (then, with counts_stale, stale events; then,
	 * with a change log, rows published).
	 */
	char	   *(*batch_sql) (const PipelineDef *def, const PipelineMapping *map,
							  BatchSource from, const char *accepted);

	/*
	 * Run, sharded: appends to a shard statement (batch/shard_sql.c) the CTEs
	 * writing 'accepted' (its claimed rows to write) into the target shard
	 * 'target' (its SQL name), the last named applied, of one row: inserted,
	 * updated, deletes, stale.  NULL: the statement's own upsert (keyed) or
	 * insert.
	 */
	void		(*shard_ctes) (StringInfo sql, const PipelineDef *def, const PipelineMapping *map,
							   const char *accepted, const char *target);

	/* Run: before each batch statement (NULL: nothing). */
	void		(*begin_batch) (const PipelineDef *def);

	/* Run: an error of the batch statement it raises as another (NULL: none). */
	void		(*check_error) (const PipelineDef *def, const ErrorData *edata);
};

/* strategy.c: the registry */
extern void pipeline_register_strategy(const PipelineStrategy *strategy);
extern const PipelineStrategy *pipeline_find_strategy(const char *name);
extern bool pipeline_is_own_column(const PipelineDef *def, const char *column);

/* The strategies (each in its own file), registered by _PG_init. */
extern const PipelineStrategy pipeline_merge_strategy;
extern const PipelineStrategy pipeline_append_strategy;
extern const PipelineStrategy pipeline_scd2_strategy;
extern const PipelineStrategy pipeline_aggregate_strategy;

#endif							/* PIPELINE_STRATEGY_H */
