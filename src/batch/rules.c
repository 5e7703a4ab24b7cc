/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  Row rules: the conditions a mapped row must meet to be merged, derived
 *	  from the pipeline (key, sequence_by) and from the target's own
 *	  constraints (NOT NULL, CHECK, foreign keys).
 *
 * The batch statement evaluates every rule on every row, set-based, and
 * routes rows that fail one to the quarantine in the same statement: bad
 * rows of the common kinds cost no retry at all.  A constraint that cannot
 * be evaluated ahead (a trigger, an exclusion constraint, a column left to
 * its default) is still enforced by the target itself; a row that trips it
 * is isolated by row_watch.c and batch_exec.c.
 *
 * Rule conditions are SQL over the batch row, with target column names
 * unqualified (CHECK constraints are written that way already).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "strategy.h"

/*
 * add_rule
 *		Appends a rule.  'passes' must never be NULL for a row.  Rules about
 *		the row's contents do not apply to delete events.
 */
static List *
add_rule(const PipelineDef *def, List *rules, char *passes, char *reason, const char *sqlstate,
		 bool for_deletes)
{
	RowRule    *rule = palloc(sizeof(RowRule));

	rule->passes = (for_deletes || !pipeline_has_delete_events(def)) ? passes
		: psprintf("(__pl_del IS TRUE OR %s)", passes);
	rule->reason = reason;
	rule->sqlstate = sqlstate;
	return lappend(rules, rule);
}

/*
 * sequence_not_null
 *		"x IS NOT NULL AND ...": the batch row has a whole sequence_by value
 *		(an aggregate's is its __pl_sq).
 */
static char *
sequence_not_null(const PipelineDef *def)
{
	StringInfoData buf;
	List	   *columns = def->strategy->groups ? list_make1(PIPELINE_ROW_SEQUENCE) :
	pipeline_sequence_columns(def);
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, columns)
		appendStringInfo(&buf, "%s%s IS NOT NULL", buf.len ? " AND " : "",
						 quote_identifier(lfirst(lc)));
	return buf.data;
}

/*
 * all_mapped
 *		Whether every column of an int2[] of attribute numbers of the target
 *		has a value in the batch row (mapped, not aggregated); fills 'names'
 *		with their names.
 */
static bool
all_mapped(const PipelineDef *def, const PipelineMapping *map, Datum attnums, List **names)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	*names = NIL;
	deconstruct_array(DatumGetArrayTypeP(attnums), INT2OID, 2, true, TYPALIGN_SHORT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *att = get_attname(def->target, DatumGetInt16(elems[i]), true);
		ColumnMap  *cm = att ? pipeline_mapping_column(map, att) : NULL;

		/* an aggregate has no value in the batch row, only in its group */
		if (cm == NULL || cm->aggregates)
			return false;
		*names = lappend(*names, att);
	}
	return true;
}

/*
 * foreign_key_condition
 *		"fk1 IS NULL OR ... OR EXISTS (referenced row)" (MATCH SIMPLE).
 */
static char *
foreign_key_condition(List *fk_columns, Oid referenced, Datum ref_attnums)
{
	StringInfoData cond,
				match;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	ListCell   *lc;
	int			i = 0;

	deconstruct_array(DatumGetArrayTypeP(ref_attnums), INT2OID, 2, true, TYPALIGN_SHORT,
					  &elems, &nulls, &n);
	initStringInfo(&cond);
	initStringInfo(&match);
	foreach(lc, fk_columns)
	{
		const char *fk = quote_identifier(lfirst(lc));

		appendStringInfo(&cond, "%s IS NULL OR ", fk);
		appendStringInfo(&match, "%s__pl_r.%s = %s", i ? " AND " : "",
						 quote_identifier(get_attname(referenced, DatumGetInt16(elems[i]), false)),
						 fk);
		i++;
	}
	appendStringInfo(&cond, "EXISTS (SELECT 1 FROM %s __pl_r WHERE %s)",
					 pipeline_qualified_name(referenced), match.data);
	return cond.data;
}

/*
 * constraint_rules
 *		Rules for the target's CHECK constraints and foreign keys whose
 *		columns the mapping writes.  A foreign key to a table the owner may
 *		not read is left to the target (the owner's query could not check
 *		it).
 */
static List *
constraint_rules(const PipelineDef *def, const PipelineMapping *map, List *rules)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(def->target);
	PipelineUserContext ctx;
	int			n;

	pipeline_become_internal(&ctx);
	n = pipeline_exec("SELECT conname, contype, pg_get_expr(conbin, conrelid), conkey, "
					  "confrelid, confkey, confmatchtype FROM pg_constraint "
					  "WHERE conrelid = $1 AND contype IN ('c', 'f') ORDER BY conname",
					  1, &type, &value, NULL, true, 0);
	pipeline_restore_user(&ctx);

	for (int i = 0; i < n; i++)
	{
		char	   *name = pipeline_result_text(i, 0);
		char	   *kind = pipeline_result_text(i, 1);
		bool		isnull;
		Datum		conkey = pipeline_result_datum(i, 3, &isnull);
		List	   *columns;

		if (isnull || !all_mapped(def, map, conkey, &columns))
			continue;
		if (kind[0] == 'c')
			rules = add_rule(def, rules, psprintf("(%s) IS NOT FALSE", pipeline_result_text(i, 2)),
							 psprintf("new row violates check constraint \"%s\"", name),
							 "23514", false);
		else
		{
			Oid			referenced = DatumGetObjectId(pipeline_result_datum(i, 4, &isnull));
			char	   *match = pipeline_result_text(i, 6);

			if (match[0] != 's' ||
				pg_class_aclcheck(referenced, def->owner, ACL_SELECT) != ACLCHECK_OK)
				continue;
			rules = add_rule(def, rules,
							 psprintf("(%s)", foreign_key_condition(columns, referenced,
																	pipeline_result_datum(i, 5, &isnull))),
							 psprintf("new row violates foreign key constraint \"%s\"", name),
							 "23503", false);
		}
	}
	return rules;
}

/*
 * column_not_null
 *		Whether a target column is declared NOT NULL.
 */
static bool
column_not_null(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull;
		ReleaseSysCache(tup);
	}
	return result;
}

/*
 * pipeline_row_rules
 *		Every rule a mapped row must pass, in the order reasons are given.
 */
List *
pipeline_row_rules(const PipelineDef *def, const PipelineMapping *map)
{
	List	   *rules = NIL;
	ListCell   *lc;
	bool		keyed = def->strategy->keyed;

	if (keyed)
	{
		/* a delete event leaves its group whatever its group key */
		foreach(lc, def->key)
			rules = add_rule(def, rules, psprintf("%s IS NOT NULL", quote_identifier(lfirst(lc))),
							 psprintf("null key: %s must not be null",
									  quote_identifier(lfirst(lc))),
							 "23502", !def->strategy->groups);
		foreach(lc, def->source_key)
			rules = add_rule(def, rules,
							 psprintf(PIPELINE_ROW_SOURCE_KEY " IS NOT NULL", foreach_current_index(lc)),
							 psprintf("null source_key: %s must not be null",
									  quote_identifier(lfirst(lc))),
							 "23502", true);
		if (def->sequence_by)
			rules = add_rule(def, rules, sequence_not_null(def),
							 psprintf("null sequence_by value: %s must not be null",
									  def->sequence_kept ? def->sequence_by : quote_identifier(def->sequence_by)),
							 "23502", true);
	}
	foreach(lc, map->columns)
	{
		ColumnMap  *cm = lfirst(lc);
		AttrNumber	att = get_attnum(def->target, cm->column);

		if (cm->is_key || cm->aggregates || att == InvalidAttrNumber ||
			!column_not_null(def->target, att))
			continue;
		rules = add_rule(def, rules, psprintf("%s IS NOT NULL", quote_identifier(cm->column)),
						 psprintf("null value in column \"%s\" violates not-null constraint",
								  cm->column),
						 "23502", false);
	}
	return constraint_rules(def, map, rules);
}
