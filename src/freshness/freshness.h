/*-------------------------------------------------------------------------
 *
 * freshness.h
 *	  Freshness checks (freshness.c) and their pg_cron jobs
 *	  (freshness_jobs.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_FRESHNESS_H
#define PIPELINE_FRESHNESS_H

#include "model.h"

/* freshness_jobs.c */
extern char *pipeline_cron_normalize_schedule(char *schedule);
extern void pipeline_cron_refuse_schedule(Oid role, const char *schedule);
extern void pipeline_cron_validate_schedule(const char *schedule);
extern void pipeline_cron_drop_all_jobs(void);

#endif							/* PIPELINE_FRESHNESS_H */
