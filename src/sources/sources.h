/*-------------------------------------------------------------------------
 *
 * sources.h
 *	  Where rows come from: what makes a table a source
 *	  (source_columns.c), staging tables kept append-only (staging.c,
 *	  partition_ddl.c), change logs (change_log.c), and captured tables
 *	  (capture.c, capture_changes.c, capture_partitions.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_SOURCES_H
#define PIPELINE_SOURCES_H

#include "model.h"

/* staging.c */
extern void pipeline_guard_staging_table(Oid source);
extern void pipeline_refuse_staging_target(Oid target, const struct PipelineStrategy *strategy);
extern void pipeline_own_staging_writes(Oid relid, void (*fn) (void *arg), void *arg);

/* source_columns.c */
extern bool pipeline_is_change_log_column(const char *name);
extern void pipeline_add_change_columns(Oid source);

/* change_log.c */
extern List *pipeline_shared_columns(Oid relation, Oid log);
extern List *pipeline_change_log_columns(const PipelineDef *def);
extern void pipeline_add_missing_columns(Oid relation, Oid log);
extern void pipeline_sync_change_log(const PipelineDef *def);
extern Oid	pipeline_create_change_log(Oid target);
extern Oid	pipeline_published_change_log(Oid target, Oid owner);
extern Oid	pipeline_join_change_log(Oid relation, Oid reader);
extern Datum pipeline_seed_change_log(const PipelineDef *def);
extern void pipeline_check_change_log_reader(const PipelineDef *def);
extern void pipeline_trim_change_log(const PipelineDef *def);
extern void pipeline_release_change_logs(void);
extern void pipeline_refuse_last_writer_drop(const PipelineDef *def);
extern void pipeline_refuse_cycle(Oid source, Oid target);

/* capture.c */
extern void pipeline_forget_capture(Oid relation, Oid log, bool cascade);

/* capture_changes.c */
extern void pipeline_capture_create_triggers(Oid relation);
extern void pipeline_capture_drop_triggers(Oid relation);

/* partition_ddl.c */
extern List *pipeline_created_partitions(void);
extern PartitionCmd *pipeline_partition_command(AlterTableStmt *stmt, AlterTableType *type,
												Oid *parent, Oid *partition);

/* capture_partitions.c */
extern List *pipeline_capture_members(Oid relation, LOCKMODE lockmode);
extern void pipeline_refuse_capture_partitions(Oid relation, Oid log_owner);
extern void pipeline_capture_check_dropped_partitions(void);

#endif							/* PIPELINE_SOURCES_H */
