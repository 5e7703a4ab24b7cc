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

/* scd2_sql.c */
extern char *pipeline_scd2_sql(const PipelineDef *def, const PipelineMapping *map,
							   const char *accepted);
extern List *pipeline_scd2_tracked(const PipelineDef *def, const PipelineMapping *map);

#endif							/* PIPELINE_STRATEGIES_H */
