/*-------------------------------------------------------------------------
 *
 * security.c
 *	  Whose privileges each piece of work runs with.
 *
 * Two contexts exist.  The extension's own bookkeeping (catalog rows, run
 * history) runs as the bootstrap superuser with search_path pinned to
 * pg_catalog, after the API function has checked that the caller may manage
 * the pipeline: callers never get write access to the catalog tables.  That
 * identity touches the pipeline schema's catalogs only, never a relation a
 * user owns: a trigger, a rule or a domain's CHECK the owner put there would
 * run as superuser.  A pipeline's own SQL (mapping expressions, filters, the
 * batch statement) runs as the pipeline's owner, and whatever the extension
 * does to a relation a user owns (a change log, a staging table, a captured
 * table) runs as that relation's owner (pipeline_become_relation_owner);
 * both in a security-restricted operation, with a pinned search_path --
 * whoever started the work (a superuser, pg_cron, a worker).
 *
 * Settings the user's code changes in there (set_config(..., false) in a
 * mapping, say) are rolled back when the extension switches back, as
 * PostgreSQL does after its own security-restricted operations (index
 * builds, REFRESH MATERIALIZED VIEW): nothing of the owner's survives into
 * the caller's session, whose next statements may run as a superuser.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "model.h"
#include "base/base.h"

/*
 * switch_user
 *		Becomes 'userid' with extra security-context flags and a search_path,
 *		saving the previous state for pipeline_restore_user.
 */
static void
switch_user(Oid userid, int extra_flags, const char *search_path,
			PipelineUserContext *saved)
{
	GetUserIdAndSecContext(&saved->saved_userid, &saved->saved_sec_context);
	SetUserIdAndSecContext(userid, saved->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   extra_flags);
	saved->guc_nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * pipeline_become_internal
 *		Runs the extension's bookkeeping as the bootstrap superuser with a
 *		search_path no user can plant objects in.
 */
void
pipeline_become_internal(PipelineUserContext *saved)
{
	switch_user(BOOTSTRAP_SUPERUSERID, 0, "pg_catalog, pg_temp", saved);
}

/*
 * pipeline_become_owner
 *		Runs a pipeline's SQL with its owner's privileges.
 */
void
pipeline_become_owner(const PipelineDef *def, PipelineUserContext *saved)
{
	pipeline_become_role(def->owner, def->search_path, saved);
}

/*
 * pipeline_become_role
 *		Runs SQL a role defined (a pipeline's, a freshness check's) with that
 *		role's privileges, in a security-restricted operation, with the
 *		search_path captured at definition.
 */
void
pipeline_become_role(Oid role, const char *search_path, PipelineUserContext *saved)
{
	switch_user(role, SECURITY_RESTRICTED_OPERATION, search_path, saved);
}

/*
 * pipeline_become_role_for_refresh
 *		As pipeline_become_role, but outside a security-restricted operation:
 *		only for REFRESH MATERIALIZED VIEW of a view the role owns, which
 *		runs the view's query in a security-restricted operation of its own
 *		and, with CONCURRENTLY, must create its temporary table in between
 *		(which a security-restricted operation forbids).
 */
void
pipeline_become_role_for_refresh(Oid role, const char *search_path, PipelineUserContext *saved)
{
	switch_user(role, 0, search_path, saved);
}

/*
 * pipeline_check_role
 *		Errors unless the current user may manage an object 'role' owns: a
 *		superuser, or a member of that role.  'what' names the object.
 */
void
pipeline_check_role(Oid role, const char *what)
{
	Oid			userid = GetUserId();

	if (superuser_arg(userid) || has_privs_of_role(userid, role))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of %s", what),
			 errdetail("It is owned by role \"%s\".", GetUserNameFromId(role, false)),
			 errhint("Run this as the owning role, a member of it, or a superuser.")));
}

/*
 * pipeline_become_relation_owner
 *		Runs a statement the extension makes on a relation a user owns (a
 *		change log, a staging table, a captured table) as that relation's
 *		owner, in a security-restricted operation, with search_path pinned
 *		to pg_catalog: the owner's triggers, rules and domain checks on it
 *		then run with no more than the owner's privileges.
 */
void
pipeline_become_relation_owner(Oid relid, PipelineUserContext *saved)
{
	pipeline_become_role(pipeline_relation_owner(relid), "pg_catalog, pg_temp", saved);
}

/*
 * pipeline_restore_user
 *		Undoes pipeline_become_internal, pipeline_become_owner,
 *		pipeline_become_role or pipeline_become_relation_owner, rolling back
 *		every setting changed since, SET (not only SET LOCAL) included:
 *		the code that ran may be another role's.  On error, (sub)transaction
 *		abort restores both user and settings by itself.
 */
void
pipeline_restore_user(PipelineUserContext *saved)
{
	AtEOXact_GUC(false, saved->guc_nest_level);
	SetUserIdAndSecContext(saved->saved_userid, saved->saved_sec_context);
}

/*
 * pipeline_check_manage
 *		Errors unless the current user may manage the pipeline: a superuser,
 *		or a member of the owning role.
 */
void
pipeline_check_manage(const PipelineDef *def)
{
	pipeline_check_role(def->owner, psprintf("pipeline \"%s\"", def->name));
}

/*
 * pipeline_relation_owner
 *		The role owning a relation.
 */
Oid
pipeline_relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}
