/*-------------------------------------------------------------------------
 *
 * utility_hook.c
 *	  The utility hook: cleans up outside the extension when it is dropped,
 *	  and moves the background workers out of a database's way.
 *
 * DROP EXTENSION removes the extension's tables, but the pg_cron jobs of
 * its freshness checks live in pg_cron's own catalog (perhaps in another
 * database) and would keep calling a function that no longer exists.  No
 * event trigger of the extension survives its own drop, so a hook watches
 * every DROP that could take the extension with it (DROP EXTENSION, DROP
 * SCHEMA ... CASCADE, DROP OWNED) and, when the extension was there before
 * and is gone after, deletes the jobs in the same transaction.  CREATE
 * EXTENSION pipeline has the launcher start the database's scheduler as
 * soon as it commits.  The hook exists once the library is loaded: always
 * with shared_preload_libraries.
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME or SET TABLESPACE, and CREATE
 * DATABASE from a template refuse to run while other sessions are
 * connected to the database: the scheduler and run workers connected there
 * are asked to stop (after the batch in progress) and kept away for a few
 * seconds, until the statement is done.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"

#include "model.h"
#include "base/base.h"
#include "freshness/freshness.h"
#include "shared_memory/shared_memory.h"
#include "utility_hook.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * may_drop_extension
 *		Whether the statement can drop this extension.
 */
static bool
may_drop_extension(Node *stmt)
{
	return IsA(stmt, DropStmt) || IsA(stmt, DropOwnedStmt);
}

/*
 * database_needing_exclusive_access
 *		The database a statement needs to be alone in (DROP, RENAME, SET
 *		TABLESPACE, or used as a template), or InvalidOid.
 */
static Oid
database_needing_exclusive_access(Node *stmt)
{
	const char *name = NULL;
	Oid			dboid;

	if (IsA(stmt, DropdbStmt))
		name = ((DropdbStmt *) stmt)->dbname;
	else if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		name = ((RenameStmt *) stmt)->subname;
	else if (IsA(stmt, AlterDatabaseStmt))
	{
		ListCell   *lc;

		foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
		{
			if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
				name = ((AlterDatabaseStmt *) stmt)->dbname;
		}
	}
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *option = lfirst(lc);

			if (strcmp(option->defname, "template") == 0 && option->arg != NULL)
				name = defGetString(option);
		}
	}
	dboid = name ? get_database_oid(name, true) : InvalidOid;
	/* only for a role that may do it: nobody else gets to stop the workers */
	if (!OidIsValid(dboid) || !pipeline_database_ownercheck(dboid, GetUserId()))
		return InvalidOid;
	return dboid;
}

/*
 * pipeline_process_utility
 *		Runs the statement, then deletes the pg_cron jobs of the freshness
 *		checks if it dropped the extension.
 */
static void
pipeline_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						 ProcessUtilityContext context, ParamListInfo params,
						 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	bool		watch = may_drop_extension(pstmt->utilityStmt) &&
	OidIsValid(get_extension_oid("pipeline", true));
	Oid			busy_database = database_needing_exclusive_access(pstmt->utilityStmt);

	if (OidIsValid(busy_database))
		pipeline_stop_database_workers(busy_database);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);

	if (IsA(pstmt->utilityStmt, CreateExtensionStmt) &&
		strcmp(((CreateExtensionStmt *) pstmt->utilityStmt)->extname, "pipeline") == 0)
		pipeline_want_scheduler();

	if (watch && !OidIsValid(get_extension_oid("pipeline", true)))
	{
		PipelineUserContext ctx;

		/* pg_cron's catalog belongs to a superuser; the extension is gone */
		pipeline_become_internal(&ctx);
		pipeline_cron_drop_all_jobs();
		pipeline_restore_user(&ctx);
	}
}

/*
 * pipeline_utility_init
 *		Installs the utility hook; called once from _PG_init.
 */
void
pipeline_utility_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = pipeline_process_utility;
}
