/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  Every setting of the extension, in one place: its name, meaning,
 *	  default, bounds and who may change it.
 *
 * doc/reference.md ("Settings") documents each.  The settings that size
 * shared memory (max_workers, max_databases) exist only when the library
 * is preloaded, which the background workers need anyway.  The rest are
 * defined whenever the library is loaded, so that a session sees them
 * (SHOW, pg_settings) as soon as it has used the extension.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "settings.h"

int			pipeline_history_retention = 30 * 24 * 3600;
int			pipeline_suspend_after_failures = 5;
int			pipeline_max_workers = 4;
int			pipeline_max_databases = 64;
int			pipeline_launcher_naptime = 10000;
int			pipeline_retry_base = 5000;
int			pipeline_retry_max = 300000;
int			pipeline_continuous_naptime = 5000;
int			pipeline_continuous_min_interval = 50;
int			pipeline_archive_interval = 60;
int			pipeline_retention_hold_limit = 7 * 24 * 3600;
int			pipeline_min_schedule_interval = 60;
char	   *pipeline_openlineage_namespace = NULL;
bool		pipeline_openlineage_outbox = true;
int			pipeline_openlineage_retention = 7 * 24 * 3600;
int			pipeline_openlineage_unshipped_retention = 30 * 24 * 3600;

/*
 * define_run_settings
 *		Runs, failures and how long their history is kept.
 */
static void
define_run_settings(void)
{
	DefineCustomIntVariable("pipeline.history_retention",
							"How long run history, freshness results and alerts are kept.",
							"Older rows are deleted as new ones are added; -1 keeps everything.",
							&pipeline_history_retention,
							30 * 24 * 3600, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.suspend_after_failures",
							"Failed runs in a row after which a pipeline is suspended.",
							"A suspended pipeline does not run until pipeline.resume(); 0 never suspends.",
							&pipeline_suspend_after_failures,
							5, 0, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}

/*
 * define_worker_settings
 *		The background workers: how many, how often they look, how they
 *		retry.  The shared memory sizes only while preloading.
 */
static void
define_worker_settings(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("pipeline.max_workers",
								"Background workers that run pipelines at the same time, in the whole cluster.",
								"Each takes one of max_worker_processes; the launcher and one scheduler per database take more.",
								&pipeline_max_workers, 4, 1, 1024,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("pipeline.max_databases",
								"Databases the launcher can start a scheduler for.",
								NULL,
								&pipeline_max_databases, 64, 1, 10000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("pipeline.launcher_naptime",
								"How often the launcher looks for databases that need a scheduler.",
								"CREATE EXTENSION pipeline wakes it at once.",
								&pipeline_launcher_naptime, 10000, 100, INT_MAX,
								PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	}
	DefineCustomIntVariable("pipeline.retry_base",
							"Delay before the first retry of a failed scheduled run; each further failure doubles it.",
							"The delay is spread by up to half of it either way (jitter).",
							&pipeline_retry_base, 5000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.retry_max",
							"Longest delay before a retry of a failed scheduled run.",
							NULL,
							&pipeline_retry_max, 300000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.continuous_naptime",
							"How long a continuous pipeline waits for a commit before it looks for rows anyway.",
							"Commits of staged rows wake it at once; this only bounds the wait.",
							&pipeline_continuous_naptime, 5000, 10, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.continuous_min_interval",
							"Shortest time between the starts of two runs of a continuous pipeline.",
							"Commits arriving meanwhile are merged together by the next run: fewer, larger runs under a heavy load.",
							&pipeline_continuous_min_interval, 50, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/*
 * define_retention_settings
 *		The archive passes and what holds rows back from them; the
 *		freshness checks' pg_cron jobs.
 */
static void
define_retention_settings(void)
{
	DefineCustomIntVariable("pipeline.archive_interval",
							"Least time between the archive passes runs make on a staging table.",
							"A run of a pipeline whose source has a retention setting archives "
							"at its end when the last pass is older; -1: only pipeline.archive does.",
							&pipeline_archive_interval,
							60, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.retention_hold_limit",
							"How long a pipeline of another role than a staging table's owner may hold its rows back from retention without consuming any.",
							"A reader owned by a role without the privileges of the table's owner whose cursor has not moved for this long no longer holds rows back; -1: it holds them forever.",
							&pipeline_retention_hold_limit,
							7 * 24 * 3600, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.min_schedule_interval",
							"Shortest time between two runs of a freshness check's pg_cron job.",
							"Each run of a pg_cron job takes a connection; pg_cron 1.5 and later can run a job every second.",
							&pipeline_min_schedule_interval, 60, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

/*
 * define_openlineage_settings
 *		The OpenLineage outbox.
 */
static void
define_openlineage_settings(void)
{
	DefineCustomStringVariable("pipeline.openlineage_namespace",
							   "OpenLineage namespace of this server's datasets and jobs.",
							   "As the specification names PostgreSQL datasets, postgres://host:port; "
							   "empty: postgres://localhost:<port>.",
							   &pipeline_openlineage_namespace, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pipeline.openlineage_outbox",
							 "Whether runs record their OpenLineage events in pipeline.openlineage_outbox.",
							 NULL, &pipeline_openlineage_outbox, true, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.openlineage_retention",
							"How long OpenLineage events stay in the outbox once acknowledged.",
							"-1 keeps everything.",
							&pipeline_openlineage_retention, 7 * 24 * 3600, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.openlineage_unshipped_retention",
							"How long OpenLineage events nobody acknowledged stay in the outbox.",
							"-1 keeps them until they are acknowledged; the server log counts those deleted.",
							&pipeline_openlineage_unshipped_retention, 30 * 24 * 3600, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

/*
 * pipeline_settings_init
 *		Defines every setting; called once from _PG_init, first.
 */
void
pipeline_settings_init(void)
{
	define_run_settings();
	define_worker_settings();
	define_retention_settings();
	define_openlineage_settings();
}
