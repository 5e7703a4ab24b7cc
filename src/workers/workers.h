/*-------------------------------------------------------------------------
 *
 * workers.h
 *	  Background workers: the launcher (launcher.c), one scheduler per
 *	  database (scheduler.c), and run workers (run_worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_WORKERS_H
#define PIPELINE_WORKERS_H

#include "model.h"

/* launcher.c */
extern void pipeline_launcher_register(void);

/* scheduler.c */
extern int64 pipeline_retry_delay_ms(int64 pipeline_id, int32 failures);

/* run_worker.c */

#endif							/* PIPELINE_WORKERS_H */
