/*-------------------------------------------------------------------------
 *
 * pipeline.c
 *	  Entry point of the pipeline extension: _PG_init hands each part its
 *	  own initialisation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "pipeline.h"
#include "strategy.h"

PG_MODULE_MAGIC;

/*
 * _PG_init
 *		Called when the library is loaded, by shared_preload_libraries or by
 *		the first call of one of its functions.
 */
void
_PG_init(void)
{
	pipeline_register_strategy(&pipeline_append_strategy);
	pipeline_register_strategy(&pipeline_merge_strategy);
	pipeline_register_strategy(&pipeline_scd2_strategy);
	pipeline_clock_init();
	pipeline_mark_init();
	pipeline_history_init();
	pipeline_openlineage_init();
	pipeline_archive_init();
	pipeline_outcome_init();
	pipeline_utility_init();
	pipeline_scheduler_init();
	pipeline_run_worker_init();
	pipeline_cron_init();
	/* the background workers need shared memory: only when preloaded */
	if (process_shared_preload_libraries_in_progress)
	{
		pipeline_shared_state_init();
		pipeline_staged_sources_init();
		pipeline_launcher_register();
	}
}
