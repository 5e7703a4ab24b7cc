/*-------------------------------------------------------------------------
 *
 * read_access.c
 *	  Whether a role may read every row and column of a relation.
 *
 * The extension keeps copies of rows outside the tables they come from:
 * a staging table's archive batches (and the dictionaries trained on its
 * rows), a captured table's or a target's change log.  Those copies carry
 * every row and every column, whatever the table's row-level security and
 * column privileges let a role read.  So a role reads such a copy only if
 * it could read the whole table itself: USAGE on its schema, SELECT on
 * every column, and no row-level security applying to it (the table has
 * none, or the role owns it without FORCE ROW LEVEL SECURITY, has
 * BYPASSRLS, or is a superuser).  Anything less is refused: applying the
 * table's policies to a copy is not possible exactly (a policy may read
 * the table, the session, the time), and a copy filtered silently would
 * be the worst outcome.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"

PG_FUNCTION_INFO_V1(pipeline_may_read_every_row);

/* Why a role may not read every row and column of a relation. */
typedef enum ReadRefusal
{
	READ_ALLOWED,
	READ_NO_RELATION,
	READ_NO_SCHEMA,
	READ_NO_COLUMNS,
	READ_ROW_SECURITY
} ReadRefusal;

/*
 * read_refusal
 *		Why 'role' may not read every row and column of 'relid', or
 *		READ_ALLOWED.
 */
static ReadRefusal
read_refusal(Oid relid, Oid role)
{
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return READ_NO_RELATION;
	if (pipeline_namespace_aclcheck(get_rel_namespace(relid), role, ACL_USAGE) != ACLCHECK_OK)
		return READ_NO_SCHEMA;
	if (pg_class_aclcheck(relid, role, ACL_SELECT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, role, ACL_SELECT, ACLMASK_ALL) != ACLCHECK_OK)
		return READ_NO_COLUMNS;
	if (check_enable_rls(relid, role, true) == RLS_ENABLED)
		return READ_ROW_SECURITY;
	return READ_ALLOWED;
}

/*
 * pipeline_require_read_every_row
 *		Errors unless 'role' may read every row and column of 'relid';
 *		'copy' names what would show them (a sentence subject, such as
 *		"Its archive").
 */
void
pipeline_require_read_every_row(Oid relid, Oid role, const char *copy)
{
	ReadRefusal why = read_refusal(relid, role);
	const char *name;
	const char *rolename;

	if (why == READ_ALLOWED)
		return;
	if (why == READ_NO_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errdetail("%s is read only by the roles that may read the whole relation.", copy),
				 errhint("Check that the relation was not dropped.")));
	name = pipeline_qualified_name(relid);
	rolename = GetUserNameFromId(role, false);
	if (why == READ_NO_SCHEMA)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not read every row of %s", rolename, name),
				 errdetail("The role lacks USAGE on schema %s. %s holds every row and column of the table.",
						   quote_identifier(get_namespace_name(get_rel_namespace(relid))), copy),
				 errhint("GRANT USAGE ON SCHEMA %s TO %s.",
						 quote_identifier(get_namespace_name(get_rel_namespace(relid))),
						 quote_identifier(rolename))));
	if (why == READ_NO_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not read every row of %s", rolename, name),
				 errdetail("The role lacks SELECT on some columns of the table. %s holds every row and column of it.",
						   copy),
				 errhint("GRANT SELECT ON %s TO %s.", name, quote_identifier(rolename))));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not read every row of %s", rolename, name),
			 errdetail("The table has row-level security, which applies to the role. %s holds every row and column of the table, which its policies cannot filter.",
					   copy),
			 errhint("Read the table itself, or read its copies as a role row-level security does not apply to (its owner without FORCE ROW LEVEL SECURITY, or a role with BYPASSRLS).")));
}

/*
 * pipeline_may_read_every_row
 *		SQL: pipeline.may_read_every_row(relation regclass, quiet boolean)
 *		-> boolean.  Whether the current role may read every row and column
 *		of the relation (the policy of the archive's catalogs); with quiet
 *		false, an error saying why not instead of false.
 */
Datum
pipeline_may_read_every_row(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);

	if (!PG_GETARG_BOOL(1))
		pipeline_require_read_every_row(relid, GetUserId(), "Its archive");
	PG_RETURN_BOOL(read_refusal(relid, GetUserId()) == READ_ALLOWED);
}

/*
 * pipeline_require_whole_source
 *		Errors when row-level security of a pipeline's source applies to the
 *		pipeline's owner.  The cursor passes over every row of a consumed
 *		transaction, seen or not: rows the policies hide from the owner
 *		would be skipped for good, silently.  (Missing privileges need no
 *		check here: the pipeline's statements fail on them, loudly.)
 */
void
pipeline_require_whole_source(Oid source, Oid owner)
{
	const char *rolename;

	if (read_refusal(source, owner) != READ_ROW_SECURITY)
		return;
	rolename = GetUserNameFromId(owner, false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not read every row of %s", rolename,
					pipeline_qualified_name(source)),
			 errdetail("The table has row-level security, which applies to the role. A pipeline consumes every row of its source: rows the policies hide from its owner would be passed over and never merged."),
			 errhint("Let a role that row-level security does not apply to own the pipeline (the table's owner without FORCE ROW LEVEL SECURITY, or a role with BYPASSRLS), or disable row-level security on the table.")));
}
