/*-------------------------------------------------------------------------
 *
 * merge_partial.c
 *	  Partial updates of a merge (ignore_null_updates): an event that
 *	  updates a stored row keeps the stored value of a listed column where
 *	  it has NULL, as APPLY CHANGES does; an event that inserts writes it.
 *
 * The result must not depend on how events fall into batches.  Applied
 * one by one as they arrive, a key's events leave in such a column the
 * last non-NULL value since the key's last delete, or the stored value
 * when there is none and no delete; a stale event (older by sequence_by
 * than the stored version, or than an event of its key that arrived
 * before it) is discarded whole, and fills nothing.  A batch applies only
 * each key's latest event, so that value is computed over the batch's
 * events first (pipeline_merge_fill_nulls), as the batch row's
 * __pl_fill_<i> (i: the column's place in the mapping), which the upsert
 * writes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategies/strategies.h"

/*
 * fills_nulls
 *		Whether an update's NULL in this column keeps the stored value.
 */
static bool
fills_nulls(const PipelineDef *def, const ColumnMap *cm)
{
	return !cm->is_key && (pipeline_list_has_string(def->ignore_null_updates, "*") ||
						   pipeline_list_has_string(def->ignore_null_updates, cm->column));
}

/*
 * pipeline_merge_value_column
 *		The batch row's column an upsert writes to mapped column 'cm' (the
 *		i-th of the mapping): the column itself, or its filled value.
 */
char *
pipeline_merge_value_column(const PipelineDef *def, const ColumnMap *cm, int i)
{
	return fills_nulls(def, cm) ? psprintf("__pl_fill_%d", i) : pstrdup(cm->column);
}

/*
 * by_arrival
 *		"PARTITION BY k1, k2<more> ORDER BY __pl_xid, __pl_seq ROWS <frame>":
 *		a key's events in the order they arrived.
 */
static char *
by_arrival(const PipelineDef *def, const char *more_partitions, const char *frame)
{
	return psprintf("PARTITION BY %s%s ORDER BY __pl_xid, __pl_seq ROWS %s",
					pipeline_quote_list(def->key, NULL), more_partitions, frame);
}

/*
 * late_events
 *		"dense_rank() OVER (...)" and the condition on it: an event is late
 *		when one of its key that arrived before it in the batch is newer by
 *		sequence_by (the rank orders a key's sequences, however many
 *		columns they have).  NULLs without sequence_by: nothing is late.
 */
static void
late_events(const PipelineDef *def, char **rank, char **late)
{
	List	   *seq = pipeline_sequence_columns(def);

	if (seq == NIL)
	{
		*rank = "0";
		*late = "false";
		return;
	}
	*rank = psprintf("dense_rank() OVER (PARTITION BY %s ORDER BY %s)",
					 pipeline_quote_list(def->key, NULL), pipeline_quote_list(seq, NULL));
	*late = psprintf("coalesce(max(__pl_rk) OVER (%s) > __pl_rk, false)",
					 by_arrival(def, "", "BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"));
}

/*
 * pipeline_merge_fill_nulls
 *		The accepted rows ('accepted', what follows FROM) with each filled
 *		column's value (__pl_fill_<i>); 'older' is a condition on a batch
 *		row (alias a) true when the target holds a newer version of its
 *		key: what follows FROM too.  Without ignore_null_updates,
 *		'accepted' itself.
 *
 * Applied in the order they arrived, a key's events that are not stale
 * (older than the stored version or than an event that arrived before
 * them) leave the last non-NULL value since their last delete; the
 * levels below compute it: staleness, then the deletes so far (__pl_dg)
 * and each event's value, then the non-NULL values so far (a group per
 * value), then each group's first value, then the fill.
 */
char *
pipeline_merge_fill_nulls(const PipelineDef *def, const PipelineMapping *map, const char *accepted,
						  const char *older)
{
	const char *del = pipeline_has_delete_events(def) ? "__pl_del IS TRUE" : "false";
	char	   *rank;
	char	   *late;
	StringInfoData values,
				counts,
				firsts,
				fills;
	ListCell   *lc;

	if (def->ignore_null_updates == NIL)
		return pstrdup(accepted);
	late_events(def, &rank, &late);
	initStringInfo(&values);
	initStringInfo(&counts);
	initStringInfo(&firsts);
	initStringInfo(&fills);
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		int			i = foreach_current_index(lc);

		if (!fills_nulls(def, cm))
			continue;
		appendStringInfo(&values, ", CASE WHEN %s OR __pl_stale THEN NULL ELSE %s END AS __pl_v%d",
						 del, quote_identifier(cm->column), i);
		appendStringInfo(&counts, ", count(__pl_v%d) OVER (%s) AS __pl_n%d",
						 i, by_arrival(def, ", __pl_dg", "UNBOUNDED PRECEDING"), i);
		appendStringInfo(&firsts, ", first_value(__pl_v%d) OVER (%s) AS __pl_f%d",
						 i, by_arrival(def, psprintf(", __pl_dg, __pl_n%d", i), "UNBOUNDED PRECEDING"), i);
		/* no value since a delete: NULL; none at all: the stored value */
		appendStringInfo(&fills, ", CASE WHEN __pl_dg > 0 THEN __pl_f%d ELSE coalesce(__pl_f%d, "
						 "(SELECT t.%s FROM %s t WHERE %s)) END AS __pl_fill_%d",
						 i, i, quote_identifier(cm->column), pipeline_qualified_name(def->target),
						 pipeline_key_match(def, "t", "f"), i);
	}
	return psprintf("(SELECT f.*%s FROM (SELECT e.*%s FROM (SELECT d.*%s FROM ("
					"SELECT c.*, count(*) FILTER (WHERE %s AND NOT __pl_stale) OVER (%s) AS __pl_dg%s FROM ("
					"SELECT b.*, __pl_old OR %s AS __pl_stale FROM ("
					"SELECT a.*, (%s) AS __pl_old, %s AS __pl_rk FROM (SELECT * FROM %s) a) b) c) d) e) f) g",
					fills.data, firsts.data, counts.data,
					del, by_arrival(def, "", "UNBOUNDED PRECEDING"), values.data,
					late, older, rank, accepted);
}
