/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  The extension's own catalog tables: definitions, cursors and run
 *	  history (catalog.c), what a finished run leaves behind (outcome.c),
 *	  alerts (alerts.c), and how long history is kept (history_retention.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_CATALOG_H
#define PIPELINE_CATALOG_H

#include "model.h"

/* Row locks taken on a definition while reading it. */
typedef enum DefLock
{
	DEF_LOCK_NONE,
	DEF_LOCK_SHARE,				/* a batch: blocks alter and drop until commit */
	DEF_LOCK_UPDATE				/* alter and drop: wait for the running batch */
} DefLock;

/* catalog.c */
extern PipelineDef *pipeline_load(const char *name, bool missing_ok, DefLock lock);
extern void pipeline_report_missing(const char *name) pg_attribute_noreturn();
extern PipelineDef *pipeline_load_by_id(int64 id, DefLock lock);
extern Oid	pipeline_catalog_relid(const char *name);
extern int64 pipeline_run_start(const PipelineDef *def, const char *kind, Oid run_as);
extern void pipeline_run_progress(int64 run_id, const RunCounts *counts, int64 pending);
extern void pipeline_run_finish(int64 run_id, const char *status, const RunCounts *counts,
								const char *sqlstate, const char *message);
extern void pipeline_fail_interrupted_runs(int64 pipeline_id);
extern void pipeline_cursor_read(int64 pipeline_id, Datum *consumed, RowPosition *partial);
extern void pipeline_run_cursor_start(int64 run_id, Datum consumed, const RowPosition *partial);
extern void pipeline_cursor_write(int64 pipeline_id, int64 run_id, Datum consumed,
								  const RowPosition *partial, TimestampTz caught_up_at);
extern Jsonb *pipeline_source_columns_json(Oid source);
extern void pipeline_store_source_columns(int64 pipeline_id, Jsonb *columns);
extern void pipeline_definition_changed(const PipelineDef *def);

/* history_retention.c */
extern void pipeline_purge_history(const char *table, const char *time_column,
								   const char *key_column, int64 key);

/* alerts.c */
extern void pipeline_raise_alert(const PipelineAlert *alert);

/* outcome.c */
extern void pipeline_record_outcome(int64 run_id);

#endif							/* PIPELINE_CATALOG_H */
