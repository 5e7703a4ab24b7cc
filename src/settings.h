/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  Every setting of the extension (pipeline.*), defined in settings.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_SETTINGS_H
#define PIPELINE_SETTINGS_H

/* Runs and their history */
extern int	pipeline_history_retention;
extern int	pipeline_suspend_after_failures;

/* Background workers (the first two only with the library preloaded) */
extern int	pipeline_max_workers;
extern int	pipeline_max_databases;
extern int	pipeline_launcher_naptime;
extern int	pipeline_retry_base;
extern int	pipeline_retry_max;
extern int	pipeline_continuous_naptime;
extern int	pipeline_continuous_min_interval;

/* Archive and retention */
extern int	pipeline_archive_interval;
extern int	pipeline_retention_hold_limit;

/* Freshness checks */
extern int	pipeline_min_schedule_interval;

/* OpenLineage */
extern char *pipeline_openlineage_namespace;
extern bool pipeline_openlineage_outbox;
extern int	pipeline_openlineage_retention;
extern int	pipeline_openlineage_unshipped_retention;

extern void pipeline_settings_init(void);

#endif							/* PIPELINE_SETTINGS_H */
