/*-------------------------------------------------------------------------
 *
 * snapshot_sql.c
 *	  Full extracts (format => 'snapshot'): the keys a complete extract
 *	  lacks, which a merge deletes and an scd2 closes, and the guard that
 *	  keeps an empty or truncated extract from emptying the target.
 *
 * An extract is the rows one source transaction staged: a run's batch is
 * one transaction's rows whole (run.c), so a batch from the staging table
 * is one extract.  It is complete when every one of its rows is in the
 * batch's accepted rows, but those the filter skips: a row quarantined (a
 * NULL key, a failed check, a value the target cannot hold) leaves its key
 * unknown, so a partial extract applies its rows and deletes nothing.
 * Rows put back from the quarantine, or replayed, are never a complete
 * extract.  The strategies add the keys a complete extract lacks to its
 * rows as delete events, at the batch's last row's position (hi): a real
 * row of the batch, as the row marks need.
 *
 * Before any is applied, the guard compares their number with the
 * target's rows: more than max_delete_share of them calls
 * pipeline.refuse_extract, which fails the run, unless the owner allowed
 * that extract (extract_decisions.c).  A skipped extract's rows are not
 * applied at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"

#define P(name) pipeline_batch_param(BATCH_PARAM_##name)

/*
 * pipeline_reads_extracts
 *		Whether a pipeline's source transactions stage full extracts.
 */
bool
pipeline_reads_extracts(const PipelineDef *def)
{
	return def->format != NULL && strcmp(def->format, "snapshot") == 0;
}

/*
 * decided
 *		"EXISTS (...)": whether the owner decided 'decision' about the
 *		batch's extract.
 */
static char *
decided(const char *decision)
{
	return psprintf("EXISTS (SELECT 1 FROM pipeline.extract_decisions x WHERE x.pipeline_id = %s "
					"AND x.extract_xid = %s AND x.decision = '%s')",
					P(PIPELINE_ID), P(HI_XID), decision);
}

/*
 * pipeline_extract_kept
 *		The condition the rows of a batch's extract meet to be applied (else
 *		they are counted as filtered): its owner did not skip it.
 */
char *
pipeline_extract_kept(const PipelineDef *def)
{
	return psprintf("NOT %s", decided("skip"));
}

/*
 * pipeline_extract_position
 *		"<hi xid> AS __pl_xid, <hi seq> AS __pl_seq": where the delete events
 *		of the keys an extract lacks stand in the batch.
 */
char *
pipeline_extract_position(void)
{
	return psprintf("%s::xid8 AS __pl_xid, %s::bigint AS __pl_seq", P(HI_XID), P(HI_SEQ));
}

/*
 * pipeline_extract_absent
 *		The condition on a target row (alias t) of being a key the batch's
 *		complete extract lacks, 'extract' the CTE of its accepted rows (with
 *		the key's mapped columns); "false" when the batch is not a complete
 *		extract, or deletes are ignored.
 */
char *
pipeline_extract_absent(const PipelineDef *def, BatchSource from, const char *extract)
{
	char	   *staged;

	if (!pipeline_reads_extracts(def) || from != BATCH_FROM_STAGING ||
		strcmp(def->hard_deletes, "ignore") == 0)
		return "false";
	staged = psprintf("(SELECT count(*) FROM %s s WHERE s._xid = %s%s)",
					  pipeline_qualified_name(def->source), P(HI_XID),
					  def->filter ? psprintf(" AND (%s)::boolean IS TRUE", def->filter) : "");
	/* (a batch past the last extract has no row: no extract at all) */
	return psprintf("(NOT %s AND %s > 0 AND %s = (SELECT count(*) FROM %s) AND NOT EXISTS "
					"(SELECT 1 FROM %s e WHERE %s))",
					decided("skip"), staged, staged, extract, extract, pipeline_key_match(def, "e", "t"));
}

/*
 * pipeline_extract_guard
 *		The condition the delete events of an extract's missing keys ('absent',
 *		a CTE) pass before any is applied: few enough of the target's rows
 *		('live', what counts them), or allowed; else the run fails.
 */
char *
pipeline_extract_guard(const PipelineDef *def, const char *absent, const char *live)
{
	char	   *deleting = psprintf("(SELECT count(*) FROM %s)", absent);

	return psprintf("(%s <= %g * %s OR %s OR pipeline.refuse_extract(%s, %s, %s, %s, %g::real))",
					deleting, (double) def->max_delete_share, live, decided("allow"),
					quote_literal_cstr(def->name), P(HI_XID), deleting, live,
					(double) def->max_delete_share);
}
