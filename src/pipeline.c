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

#include "pipeline.h"

PG_MODULE_MAGIC;

/*
 * _PG_init
 *		Called when the library is loaded, by shared_preload_libraries or by
 *		the first call of one of its functions.
 */
void
_PG_init(void)
{
	pipeline_clock_init();
	pipeline_mark_init();
	pipeline_history_init();
}
