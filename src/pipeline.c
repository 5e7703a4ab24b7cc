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

#include "model.h"
#include "cursor/cursor.h"
#include "run/run.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "strategy.h"
#include "utility_hook.h"
#include "workers/workers.h"

PG_MODULE_MAGIC;

extern void _PG_init(void);

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
	pipeline_register_strategy(&pipeline_aggregate_strategy);
	pipeline_settings_init();
	pipeline_clock_init();
	pipeline_mark_init();
	pipeline_utility_init();
	/* the background workers need shared memory: only when preloaded */
	if (process_shared_preload_libraries_in_progress)
	{
		pipeline_shared_state_init();
		pipeline_staged_sources_init();
		pipeline_launcher_register();
	}
}
