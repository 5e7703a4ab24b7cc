/*-------------------------------------------------------------------------
 *
 * relations.c
 *	  Facts about the user's relations the rest of the extension asks for
 *	  (is it a table, which unique indexes it has), and the tables the
 *	  extension drops for a pipeline.
 *
 * Definitions (define.c), strategies (scd2.c) and sources (source_columns.c)
 * all ask the same questions of a table; they are answered here, below
 * all of them, so that none calls back into another's file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"

/* Set while the extension drops a table of its own (see dependencies.c). */
static bool dropping_own_table = false;

/*
 * pipeline_require_table
 *		Errors unless relid is a table (plain or partitioned); 'role' says
 *		what the pipeline uses it as ("source", "target").
 */
void
pipeline_require_table(Oid relid, const char *role)
{
	char		kind = get_rel_relkind(relid);

	if (kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("%s %s is not a table", role, pipeline_qualified_name(relid)),
			 errdetail("Pipelines read from and write to tables (plain or partitioned), not views or other relations."),
			 errhint("Use a table as the %s.", role)));
}

/*
 * pipeline_has_index
 *		Whether any index of a table satisfies 'match'.
 */
bool
pipeline_has_index(Oid relid, IndexMatch match, void *arg)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tup))
			continue;
		found = match(relid, tup, arg);
		ReleaseSysCache(tup);
		if (found)
			break;
	}
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * pipeline_index_on_exactly
 *		Whether an index (its pg_index tuple) is unique, valid and on plain
 *		columns that are exactly 'columns' (a List of names), in any order.
 *		Its predicate, if any, is the caller's to check.
 */
bool
pipeline_index_on_exactly(Oid relid, HeapTuple tup, List *columns)
{
	Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);
	bool		matches;

	matches = index->indisunique && index->indisvalid &&
		heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
		index->indnkeyatts == list_length(columns);
	for (int i = 0; matches && i < index->indnkeyatts; i++)
	{
		char	   *att = get_attname(relid, index->indkey.values[i], true);
		ListCell   *kc;

		matches = false;
		foreach(kc, columns)
		{
			if (att && strcmp(att, lfirst(kc)) == 0)
				matches = true;
		}
	}
	return matches;
}

/*
 * pipeline_drop_own_table
 *		Drops a table the extension created for a pipeline (a tombstone
 *		table, an aggregate's state, a change log; the caller has checked it
 *		may), without the event trigger objecting; none (InvalidOid), or
 *		one already gone, is left alone.  As the table's owner, in a
 *		security-restricted operation: it is the owner's table.
 */
void
pipeline_drop_own_table(Oid relid)
{
	PipelineUserContext ctx;
	char	   *sql;

	if (!OidIsValid(relid) || !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return;
	sql = psprintf("DROP TABLE %s", pipeline_qualified_name(relid));
	pipeline_become_relation_owner(relid, &ctx);
	dropping_own_table = true;
	PG_TRY();
	{
		pipeline_exec(sql, 0, NULL, NULL, NULL, false, 0);
	}
	PG_FINALLY();
	{
		dropping_own_table = false;
	}
	PG_END_TRY();
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_exec_as_owner
 *		Runs one utility statement as the pipeline's owner.
 */
void
pipeline_exec_as_owner(const PipelineDef *def, const char *sql)
{
	PipelineUserContext ctx;

	pipeline_become_owner(def, &ctx);
	pipeline_exec(sql, 0, NULL, NULL, NULL, false, 0);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_create_own_table
 *		Creates a table a pipeline keeps next to its target (tombstones,
 *		an aggregate's state): in the target's schema, named after it with
 *		'suffix' (made unique), owned by the pipeline's owner, with the
 *		table elements given and a comment ('comment' formats the
 *		pipeline's name); returns its oid.
 */
Oid
pipeline_create_own_table(const PipelineDef *def, const char *suffix, const char *elements,
						  const char *comment)
{
	Oid			nsp = get_rel_namespace(def->target);
	char	   *relname = ChooseRelationName(get_rel_name(def->target), NULL, suffix, nsp, false);
	char	   *name = quote_qualified_identifier(get_namespace_name(nsp), relname);

	pipeline_exec_as_owner(def, psprintf("CREATE TABLE %s (%s)", name, elements));
	pipeline_exec_as_owner(def, psprintf("COMMENT ON TABLE %s IS %s", name,
										 quote_literal_cstr(psprintf(comment, def->name))));
	CommandCounterIncrement();
	return get_relname_relid(relname, nsp);
}

/*
 * pipeline_dropping_own_table
 *		Whether the DROP under way is pipeline_drop_own_table's, which the
 *		sql_drop event trigger lets through.
 */
bool
pipeline_dropping_own_table(void)
{
	return dropping_own_table;
}

/*
 * pipeline_primary_key_columns
 *		The names of a table's primary key columns; NIL without one.
 */
List *
pipeline_primary_key_columns(Oid relid)
{
	Oid			index = InvalidOid;
	List	   *names = NIL;
	Relation	rel = table_open(relid, AccessShareLock);
	HeapTuple	tup;

	index = RelationGetPrimaryKeyIndex(rel);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(index))
		return NIL;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(index));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", index);
	for (int i = 0; i < ((Form_pg_index) GETSTRUCT(tup))->indnkeyatts; i++)
		names = lappend(names, get_attname(relid, ((Form_pg_index) GETSTRUCT(tup))->indkey.values[i],
										   false));
	ReleaseSysCache(tup);
	return names;
}

/*
 * pipeline_require_privilege
 *		Errors unless the owner holds 'mode' on a relation.
 */
void
pipeline_require_privilege(Oid owner, Oid relid, AclMode mode, const char *privilege, const char *role_of)
{
	if (pg_class_aclcheck(relid, owner, mode) == ACLCHECK_OK)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for %s %s", role_of, pipeline_qualified_name(relid)),
			 errdetail("Role \"%s\" owns the pipeline and lacks the %s privilege on it.",
					   GetUserNameFromId(owner, false), privilege),
			 errhint("GRANT %s ON %s TO %s;", privilege, pipeline_qualified_name(relid),
					 quote_identifier(GetUserNameFromId(owner, false)))));
}

/*
 * pipeline_partition_root
 *		The partitioned table at the top of the partitions 'relation' is in;
 *		'relation' itself when it is no partition.
 */
Oid
pipeline_partition_root(Oid relation)
{
	List	   *ancestors;

	if (!get_rel_relispartition(relation))
		return relation;
	ancestors = get_partition_ancestors(relation);
	return ancestors == NIL ? relation : llast_oid(ancestors);
}

/*
 * pipeline_source_columns_json
 *		The source's columns (but _xid and _seq) as a jsonb array of
 *		{"name", "type"} objects, in column order: what a definition's
 *		source_columns records, and what a run compares with it.  Read from
 *		the catalog caches, without a lock on the source and without a
 *		statement: every run asks.
 */
Jsonb *
pipeline_source_columns_json(Oid source)
{
	HeapTuple	reltup = SearchSysCache1(RELOID, ObjectIdGetDatum(source));
	int			natts;
	StringInfoData json;

	if (!HeapTupleIsValid(reltup))
		elog(ERROR, "cache lookup failed for relation %u", source);
	natts = ((Form_pg_class) GETSTRUCT(reltup))->relnatts;
	ReleaseSysCache(reltup);

	initStringInfo(&json);
	appendStringInfoChar(&json, '[');
	for (AttrNumber attnum = 1; attnum <= natts; attnum++)
	{
		HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(source), Int16GetDatum(attnum));
		Form_pg_attribute att;

		if (!HeapTupleIsValid(tup))
			continue;
		att = (Form_pg_attribute) GETSTRUCT(tup);
		if (!att->attisdropped && strcmp(NameStr(att->attname), PIPELINE_XID_COLUMN) != 0 &&
			strcmp(NameStr(att->attname), PIPELINE_SEQ_COLUMN) != 0)
		{
			appendStringInfoString(&json, json.len > 1 ? ", {\"name\": " : "{\"name\": ");
			escape_json(&json, NameStr(att->attname));
			appendStringInfoString(&json, ", \"type\": ");
			escape_json(&json, format_type_with_typemod(att->atttypid, att->atttypmod));
			appendStringInfoChar(&json, '}');
		}
		ReleaseSysCache(tup);
	}
	appendStringInfoChar(&json, ']');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}

/*
 * pipeline_relation_columns
 *		Names of a relation's ordinary columns, in order, skipping dropped and
 *		generated columns and the extension's _xid/_seq.
 */
List *
pipeline_relation_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *result = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char	   *name = NameStr(att->attname);

		if (att->attisdropped || att->attgenerated)
			continue;
		if (strcmp(name, PIPELINE_XID_COLUMN) == 0 || strcmp(name, PIPELINE_SEQ_COLUMN) == 0)
			continue;
		result = lappend(result, pstrdup(name));
	}
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * pipeline_column_type_sql
 *		The type of a relation's column, as SQL ("numeric(12,2)").
 */
char *
pipeline_column_type_sql(Oid relid, AttrNumber att)
{
	Oid			type;
	int32		typmod;
	Oid			collation;

	get_atttypetypmodcoll(relid, att, &type, &typmod, &collation);
	return format_type_with_typemod(type, typmod);
}

/*
 * pipeline_target_column_type
 *		The type and typmod of a column of the target.
 */
void
pipeline_target_column_type(const PipelineDef *def, const char *column, Oid *type, int32 *typmod)
{
	Oid			collation;

	get_atttypetypmodcoll(def->target, get_attnum(def->target, column), type, typmod, &collation);
}
