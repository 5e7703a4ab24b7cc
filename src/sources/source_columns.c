/*-------------------------------------------------------------------------
 *
 * source_columns.c
 *	  What makes a table a source: the columns _xid and _seq, their
 *	  defaults and their index; and the columns a change log adds.
 *
 * Staged rows are ordered by (_xid, _seq): the writer's transaction on the
 * logical clock (xid_clock.c) and a sequence within it.  A staging table gets
 * them when its first pipeline is defined (or by prepare_source), a change
 * log when it is created (change_log.c); a change log adds _op and _for.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"
#include "sources/sources.h"

/*
 * column_has_default
 *		Whether a column has a default expression.
 */
static bool
column_has_default(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = ((Form_pg_attribute) GETSTRUCT(tup))->atthasdef;
		ReleaseSysCache(tup);
	}
	return result;
}

/*
 * is_change_log_index
 *		IndexMatch: a non-partial index leading with (_xid, _seq), whose
 *		attribute numbers 'arg' holds.
 */
static bool
is_change_log_index(Oid relid, HeapTuple tup, void *arg)
{
	AttrNumber *atts = (AttrNumber *) arg;
	Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);

	return index->indnkeyatts >= 2 && index->indkey.values[0] == atts[0] &&
		index->indkey.values[1] == atts[1] &&
		heap_attisnull(tup, Anum_pg_index_indpred, NULL);
}

/*
 * change_log_index_exists
 *		Whether the source has an index on (_xid, _seq).
 */
static bool
change_log_index_exists(Oid source, AttrNumber xid_att, AttrNumber seq_att)
{
	AttrNumber	atts[2] = {xid_att, seq_att};

	return pipeline_has_index(source, is_change_log_index, atts);
}

/*
 * add_sharded_change_columns
 *		A hash-distributed source's _xid and _seq, added the way Citus
 *		allows: to an empty table (Citus refuses a nextval default on a
 *		table with rows), each column by its own command; the unique index
 *		has the distribution column too, as Citus wants.  As the table's
 *		owner.
 */
static void
add_sharded_change_columns(Oid source, bool add_xid, bool add_seq, bool xid_default,
						   bool seq_default)
{
	char	   *src = pipeline_qualified_name(source);
	Oid			nsp = get_rel_namespace(source);
	PipelineUserContext ctx;

	if (!xid_default && !seq_default)
		return;
	pipeline_become_relation_owner(source, &ctx);
	if (pipeline_exec(psprintf("SELECT 1 FROM %s LIMIT 1", src), 0, NULL, NULL, NULL, true, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("distributed source %s must be empty to get its _xid and _seq columns", src),
				 errdetail("Citus adds a column whose default is nextval() only to an empty distributed table."),
				 errhint("Create the pipeline (or call pipeline.prepare_source) before loading the table, or load a new table after it.")));
	if (seq_default)
	{
		char	   *seqname = quote_qualified_identifier(get_namespace_name(nsp),
														 ChooseRelationName(get_rel_name(source), "_seq", "seq",
																			nsp, false));

		pipeline_exec(psprintf("CREATE SEQUENCE %s CACHE 1000", seqname), 0, NULL, NULL, NULL, false, 0);
		pipeline_exec(psprintf(add_seq ? "ALTER TABLE %s ADD COLUMN _seq bigint DEFAULT nextval(%s)" :
							   "ALTER TABLE %s ALTER COLUMN _seq SET DEFAULT nextval(%s)",
							   src, quote_literal_cstr(seqname)), 0, NULL, NULL, NULL, false, 0);
		/* (not OWNED BY the column: Citus alters no distributed sequence) */
		pipeline_exec(psprintf("ALTER TABLE %s ALTER COLUMN _seq SET NOT NULL", src), 0, NULL, NULL,
					  NULL, false, 0);
	}
	if (xid_default)
		pipeline_exec(psprintf(add_xid ? "ALTER TABLE %s ADD COLUMN _xid xid8 NOT NULL DEFAULT pipeline.current_xid()" :
							   "ALTER TABLE %s ALTER COLUMN _xid SET DEFAULT pipeline.current_xid()", src),
					  0, NULL, NULL, NULL, false, 0);

	/*
	 * (_xid, _seq) identifies a staged row (the run deletes a rejected row by
	 * it), and orders a shard's batch; Citus wants the distribution column in
	 * a unique index
	 */
	pipeline_exec(psprintf("CREATE UNIQUE INDEX ON %s (_xid, _seq, %s)", src,
						   quote_identifier(pipeline_citus_distribution_column(source))),
				  0, NULL, NULL, NULL, false, 0);
	pipeline_restore_user(&ctx);
	CommandCounterIncrement();
}

/*
 * pipeline_add_change_columns
 *		Makes a table a change log: _xid (the writer's transaction on the
 *		logical clock) and _seq (order within a transaction) with their
 *		defaults, and a unique index on both.  Completes whatever is missing
 *		(a table created LIKE a source has the columns but not their
 *		defaults).  Existing rows get the current transaction, so a new
 *		pipeline consumes them too.  The caller must own the table (or be a
 *		member of its owner, or a superuser); the statements run as its
 *		owner.
 */
void
pipeline_add_change_columns(Oid source)
{
	AttrNumber	xid_att = get_attnum(source, PIPELINE_XID_COLUMN);
	AttrNumber	seq_att = get_attnum(source, PIPELINE_SEQ_COLUMN);
	bool		add_xid = xid_att == InvalidAttrNumber;
	bool		add_seq = seq_att == InvalidAttrNumber;
	bool		xid_default = add_xid || !column_has_default(source, xid_att);
	bool		seq_default = add_seq || !column_has_default(source, seq_att);
	bool		need_index;
	char	   *src = pipeline_qualified_name(source);
	Oid			nsp = get_rel_namespace(source);
	char	   *seqname = NULL;
	StringInfoData actions;
	PipelineUserContext ctx;

	pipeline_require_table(source, "source");
	pipeline_refuse_citus_source(source);
	if ((!add_xid && get_atttype(source, xid_att) != XID8OID) ||
		(!add_seq && get_atttype(source, seq_att) != INT8OID))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("source %s has columns _xid or _seq of the wrong type", src),
				 errdetail("A pipeline source carries _xid xid8 and _seq bigint, filled by their defaults."),
				 errhint("Rename the table's own _xid and _seq columns, then create the pipeline again.")));
	need_index = add_xid || add_seq || !change_log_index_exists(source, xid_att, seq_att);
	if (pipeline_citus_distribution_column(source) != NULL)
		need_index = false;
	if (!xid_default && !seq_default && !need_index)
		return;
	if (!pipeline_relation_ownercheck(source, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s to make it a pipeline source", src),
				 errdetail("The first pipeline that reads a table gives it the columns _xid and _seq, their defaults and an index."),
				 errhint("Ask the owner of %s to run SELECT pipeline.prepare_source('%s'), then create the pipeline.",
						 src, src)));

	if (pipeline_citus_distribution_column(source) != NULL)
	{
		add_sharded_change_columns(source, add_xid, add_seq, xid_default, seq_default);
		return;
	}

	/*
	 * As the table's owner, whoever creates the pipeline: the rewrite and the
	 * index build run the owner's code (its triggers do not fire, but its
	 * domains' checks and index expressions do), and the sequence is the
	 * owner's.
	 */
	pipeline_become_relation_owner(source, &ctx);
	initStringInfo(&actions);
	if (seq_default)
	{
		seqname = quote_qualified_identifier(get_namespace_name(nsp),
											 ChooseRelationName(get_rel_name(source), "_seq", "seq",
																nsp, false));
		pipeline_exec(psprintf("CREATE SEQUENCE %s CACHE 1000", seqname), 0, NULL, NULL, NULL,
					  false, 0);
		appendStringInfo(&actions, add_seq ? "ADD COLUMN _seq bigint NOT NULL DEFAULT nextval(%s)"
						 : "ALTER COLUMN _seq SET DEFAULT nextval(%s)", quote_literal_cstr(seqname));
	}
	if (xid_default)
		appendStringInfo(&actions, "%s%s", actions.len ? ", " : "",
						 add_xid ? "ADD COLUMN _xid xid8 NOT NULL DEFAULT pipeline.current_xid()"
						 : "ALTER COLUMN _xid SET DEFAULT pipeline.current_xid()");
	if (actions.len > 0)
		pipeline_exec(psprintf("ALTER TABLE %s %s", src, actions.data), 0, NULL, NULL, NULL,
					  false, 0);
	if (seqname)
		pipeline_exec(psprintf("ALTER SEQUENCE %s OWNED BY %s._seq", seqname, src), 0, NULL, NULL,
					  NULL, false, 0);

	/*
	 * (_xid, _seq) identifies a staged row: unique, so that a writer forcing
	 * a duplicate _seq fails at once.  A partitioned table can only have a
	 * unique index that contains its partition key; there _seq's sequence
	 * alone keeps it unique.
	 */
	if (need_index)
		pipeline_exec(psprintf("CREATE %sINDEX ON %s (_xid, _seq)",
							   get_rel_relkind(source) == RELKIND_RELATION ? "UNIQUE " : "", src),
					  0, NULL, NULL, NULL, false, 0);
	pipeline_restore_user(&ctx);
	CommandCounterIncrement();
}

/*
 * pipeline_is_change_log_column
 *		Whether a source column is one a change log adds to its target's
 *		(not mapped to a downstream target unless asked for).
 */
bool
pipeline_is_change_log_column(const char *name)
{
	return strcmp(name, "_op") == 0 || strcmp(name, "_for") == 0;
}
