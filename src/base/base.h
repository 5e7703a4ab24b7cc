/*-------------------------------------------------------------------------
 *
 * base.h
 *	  The ground every area stands on: whose privileges work runs with
 *	  (security.c), SPI, quoting and users' expressions (sqlexec.c), facts
 *	  about the user's relations (relations.c), who may read a relation
 *	  whole (read_access.c), the library's version check (version.c), and
 *	  advisory locks on a pipeline's or step's id (id_locks.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_BASE_H
#define PIPELINE_BASE_H

#include "fmgr.h"

#include "model.h"

/* Whether an index of relid (its pg_index tuple) is the one looked for. */
typedef bool (*IndexMatch) (Oid relid, HeapTuple index_tuple, void *arg);

/* citus.c: what Citus makes of a relation */
typedef enum CitusKind
{
	CITUS_NONE,
	CITUS_DISTRIBUTED,
	CITUS_REFERENCE
} CitusKind;

extern CitusKind pipeline_citus_kind(Oid relid);
extern bool pipeline_citus_routes(Oid relid);
extern void pipeline_refuse_citus_source(Oid source);
extern char *pipeline_citus_distribution_column(Oid relid);
extern bool pipeline_citus_colocated(Oid a, Oid b);
extern bool pipeline_citus_replicated(Oid relid);
extern Oid	pipeline_citus_reference_shard(Oid relid);

/* intervals.c */
extern int	pipeline_interval_ms(const Interval *span, const char *name, const char *what,
								 double max_ms, const char *max_text, const char *hint);
extern int64 pipeline_backoff_ms(int64 base_ms, int64 max_ms, int failures);

/* read_access.c */
extern void pipeline_require_whole_source(Oid source, Oid owner);
extern void pipeline_require_read_every_row(Oid relid, Oid role, const char *copy);

/* security.c */
extern Oid	pipeline_relation_owner(Oid relid);
extern void pipeline_become_internal(PipelineUserContext *saved);
extern void pipeline_become_owner(const PipelineDef *def, PipelineUserContext *saved);
extern void pipeline_become_role(Oid role, const char *search_path,
								 PipelineUserContext *saved);
extern void pipeline_become_role_for_refresh(Oid role, const char *search_path,
											 PipelineUserContext *saved);
extern void pipeline_become_relation_owner(Oid relid, PipelineUserContext *saved);
extern void pipeline_restore_user(PipelineUserContext *saved);
extern void pipeline_check_role(Oid role, const char *what);
extern void pipeline_check_manage(const PipelineDef *def);

/* sqlexec.c */
extern int	pipeline_exec(const char *sql, int nargs, Oid *types, Datum *values,
						  const char *nulls, bool read_only, long limit);
extern int	pipeline_exec_kept(const char *sql, int nargs, Oid *types, Datum *values,
							   const char *nulls, bool read_only, long limit);
extern SPIPlanPtr pipeline_prepare_kept(const char *sql, int nargs, Oid *types, bool generic);
extern Datum pipeline_result_datum(int row, int col, bool *isnull);
extern int64 pipeline_result_int64(int row, int col);
extern char *pipeline_result_text(int row, int col);
extern char *pipeline_qualified_name(Oid relid);
extern char *pipeline_quote_list(List *names, const char *prefix);
extern char *pipeline_columns_match(List *columns, const char *a, const char *b);
extern char *pipeline_key_match(const PipelineDef *def, const char *a, const char *b);
extern ErrorData *pipeline_try(void (*fn) (void *arg), void *arg);
extern ErrorData *pipeline_try_undone(void (*fn) (void *arg), void *arg);
extern ErrorData *pipeline_try_prepare(const PipelineDef *def, const char *sql, int nargs,
									   Oid *types);
extern TimestampTz pipeline_arm_timeout(int64 ms);
extern void pipeline_disarm_timeout(int64 ms, TimestampTz outer);
extern int	pipeline_exec_as_relation_owner(Oid relid, const char *sql, int nargs,
											Oid *types, Datum *values, const char *nulls);
extern void pipeline_ensure_trigger(Oid relid, const char *name, const char *definition,
									const char *function, char enabled);
extern void pipeline_require_expression(const char *expr, const char *what);
extern int	pipeline_exec_internal(const char *sql, int nargs, Oid *types, Datum *values,
								   const char *nulls);
extern int	pipeline_exec_internal_kept(const char *sql, int nargs, Oid *types, Datum *values,
										const char *nulls);
extern List *pipeline_text_array_to_list(Datum array, const char *what);
extern Datum pipeline_list_to_text_array(List *names);
extern Datum pipeline_oid_list_to_array(List *oids);
extern List *pipeline_oid_array_to_list(Datum array);
extern char *pipeline_text_arg(FunctionCallInfo fcinfo, int n);
extern void pipeline_check_name(const char *name, const char *what);
extern void pipeline_check_choice(const char *option, const char *value,
								  const char *const *choices);
extern bool pipeline_list_has_string(List *list, const char *s);
extern int	pipeline_list_position(List *list, const char *s);

/* relations.c */
extern List *pipeline_relation_columns(Oid relid);
extern char *pipeline_column_type_sql(Oid relid, AttrNumber att);
extern void pipeline_target_column_type(const PipelineDef *def, const char *column, Oid *type,
										int32 *typmod);
extern void pipeline_drop_own_table(Oid relid);
extern void pipeline_exec_as_owner(const PipelineDef *def, const char *sql);
extern Oid	pipeline_create_own_table(const PipelineDef *def, const char *suffix,
									  const char *elements, const char *comment);
extern Oid	pipeline_partition_root(Oid relation);
extern bool pipeline_has_index(Oid relid, IndexMatch match, void *arg);
extern void pipeline_require_table(Oid relid, const char *role);
extern void pipeline_require_privilege(Oid owner, Oid relid, AclMode mode, const char *privilege,
									   const char *role_of);
extern bool pipeline_dropping_own_table(void);
extern List *pipeline_primary_key_columns(Oid relid);
extern Jsonb *pipeline_source_columns_json(Oid source);
extern bool pipeline_index_on_exactly(Oid relid, HeapTuple index_tuple, List *columns);

extern bool pipeline_check_version(int elevel);
extern bool pipeline_lock_extension(void);

/* id_locks.c */
struct LOCKTAG;
extern void pipeline_id_lock_tag(struct LOCKTAG *tag, int64 id, uint16 lock_class);
extern bool pipeline_id_lock_held(int64 id, uint16 lock_class);

#endif							/* PIPELINE_BASE_H */
