/*-------------------------------------------------------------------------
 *
 * lineage.h
 *	  Column lineage of pipelines (lineage.c) and the OpenLineage
 *	  events of their runs (openlineage_events.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_LINEAGE_H
#define PIPELINE_LINEAGE_H

#include "model.h"

/* lineage.c */
extern void pipeline_save_lineage(const PipelineDef *def);

/* openlineage_events.c */
extern void pipeline_openlineage_record_run(int64 pipeline_id, int64 run_id,
											const char *status);

#endif							/* PIPELINE_LINEAGE_H */
