/*-------------------------------------------------------------------------
 *
 * citus_targets.c
 *	  What a pipeline may do to a Citus distributed or reference target.
 *
 * Citus routes the batch statement's writes to the target's shards when
 * they are forms it can route: an INSERT ... SELECT ... ON CONFLICT whose
 * condition is immutable (merge_sql.c), an UPDATE without a volatile
 * function (scd2_sql.c), deletes and inserts joined with the statement's
 * own rows.  Two kinds of merge compare the target with a table of their
 * own on the coordinator inside a correlated subquery or a join Citus
 * cannot plan -- one that remembers its deletes in a tombstone table
 * (sequence_by and delete_when; an scd2's tombstones are read apart from
 * the target, and route), and one that keeps a row state
 * (joins, a sequence_by kept beside the target, Debezium events) -- so
 * every run of them would fail.  They are refused when the pipeline is
 * defined and when a run builds its statements (the target may have been
 * distributed since), with the reason.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "definition/definition.h"
#include "strategy.h"

/*
 * pipeline_check_citus_target
 *		Errors for a pipeline whose target Citus distributes and whose
 *		statements it cannot route.
 */
void
pipeline_check_citus_target(const PipelineDef *def)
{
	CitusKind	kind = pipeline_citus_kind(def->target);
	const char *what = NULL;

	if (kind == CITUS_NONE)
		return;
	if (OidIsValid(def->tombstones) && !def->strategy->versioned)
		what = "remembers its deletes in a tombstone table (sequence_by with delete_when)";
	else if (pipeline_keeps_source_rows(def))
		what = def->joins != NIL ? "joins dimension tables through its row state" :
			"keeps its sequence_by in a row state (sequence_by over the source row, or Debezium events)";
	if (what == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("pipeline \"%s\" cannot write Citus %s table %s", def->name,
					kind == CITUS_DISTRIBUTED ? "distributed" : "reference",
					pipeline_qualified_name(def->target)),
			 errdetail("The pipeline %s, which it compares with the target in a way Citus cannot route to the shards.",
					   what),
			 OidIsValid(def->tombstones) && !def->strategy->versioned ?
			 errhint("Merge into a plain table on the coordinator and distribute a second pipeline's target from it, or drop delete_when.") :
			 errhint("Merge into a plain table on the coordinator, and distribute a second pipeline's target from it.")));
}
