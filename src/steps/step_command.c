/*-------------------------------------------------------------------------
 *
 * step_command.c
 *	  What a step's command is, whether its owner may run it, and which
 *	  relations it reads and writes.
 *
 * A command is one statement of a kind that runs inside a transaction and
 * changes data, not definitions: REFRESH MATERIALIZED VIEW, CALL, INSERT,
 * UPDATE, DELETE, MERGE, SELECT, TRUNCATE.  It is checked when the step is
 * defined, as its owner, in a security-restricted operation with the
 * step's search_path -- as it will run: the objects it names exist, and the
 * owner holds the privileges it needs (a plannable statement is planned
 * through the executor's start, which checks them, and never executed).
 * Its lineage comes from parse analysis: the relations a statement reads
 * and the one it writes; a materialized view and the relations its query
 * reads; the tables a TRUNCATE empties.  A procedure is opaque: its
 * lineage is what create_step declares.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"

#include "compat.h"
#include "model.h"
#include "base/base.h"
#include "steps/steps.h"

/* A command being parsed, and its statements. */
typedef struct CommandParse
{
	const char *command;
	List	   *statements;
} CommandParse;

/*
 * parse_raw
 *		The raw parse of the command (pipeline_try).
 */
static void
parse_raw(void *arg)
{
	CommandParse *parse = (CommandParse *) arg;

	parse->statements = raw_parser(parse->command, RAW_PARSE_DEFAULT);
}

/*
 * parse_one
 *		The command's one statement, raw; a syntax error is the command's,
 *		other counts are refused.
 */
static Node *
parse_one(const char *command)
{
	CommandParse parse = {command, NIL};
	ErrorData  *error = pipeline_try(parse_raw, &parse);

	if (error != NULL)
		ereport(ERROR,
				(errcode(error->sqlerrcode),
				 errmsg("a step's command does not parse: %s", error->message),
				 errdetail("The command is: %s", command),
				 errhint("Write the command as it would be typed in psql, one statement without a terminating semicolon needed.")));
	if (list_length(parse.statements) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a step's command must be one statement"),
				 errdetail("The command holds %d statements.", list_length(parse.statements)),
				 errhint("Make each statement a step of its own (after => the one before), or put them in a procedure and CALL it.")));
	return linitial_node(RawStmt, parse.statements)->stmt;
}

/*
 * command_kind
 *		"refresh", "call" or "statement"; other statements are refused.
 */
static const char *
command_kind(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_RefreshMatViewStmt:
			return "refresh";
		case T_CallStmt:
			return "call";
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
		case T_TruncateStmt:
			return "statement";
		case T_SelectStmt:
			if (castNode(SelectStmt, stmt)->intoClause == NULL)
				return "statement";
			break;
		default:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("a step cannot run %s", IsA(stmt, SelectStmt) ? "SELECT INTO" :
					GetCommandTagName(CreateCommandTag(stmt))),
			 errdetail("A step runs REFRESH MATERIALIZED VIEW, CALL, INSERT, UPDATE, DELETE, MERGE, SELECT or TRUNCATE: statements that run inside a transaction and change data, not definitions."),
			 errhint("Put other work in a procedure and CALL it.")));
	return NULL;				/* keep the compiler quiet */
}

/*
 * relation_of
 *		The relation a name given in the command resolves to (the step's
 *		search_path is in force), or an error.
 */
static Oid
relation_of(RangeVar *name)
{
	return RangeVarGetRelid(name, NoLock, false);
}

/*
 * require_owner_of
 *		The step's owner must own the relation (REFRESH needs it).
 */
static void
require_owner_of(Oid relid, Oid owner, const char *what)
{
	if (pipeline_relation_ownercheck(relid, owner))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of %s %s", what, pipeline_qualified_name(relid)),
			 errdetail("Role \"%s\" owns the step; only the owner of a materialized view may refresh it.",
					   GetUserNameFromId(owner, false)),
			 errhint("Create the step as the owner of %s, or a member of that role.",
					 pipeline_qualified_name(relid))));
}

/*
 * check_refresh
 *		REFRESH MATERIALIZED VIEW: the view exists, the owner owns it; it
 *		reads what its query reads (its rule's dependencies) and writes
 *		itself.
 */
static void
check_refresh(const StepDef *step, RefreshMatViewStmt *refresh, StepCommand *command)
{
	Oid			view = relation_of(refresh->relation);
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(view);

	if (get_rel_relkind(view) != RELKIND_MATVIEW)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a materialized view", pipeline_qualified_name(view)),
				 errdetail("REFRESH MATERIALIZED VIEW refreshes materialized views only."),
				 errhint("Name a materialized view.")));
	require_owner_of(view, step->owner, "materialized view");
	command->writes = list_make1_oid(view);
	pipeline_exec_internal("SELECT DISTINCT d.refobjid FROM pg_catalog.pg_depend d "
						   "JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid "
						   "WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
						   "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
						   "AND r.ev_class = $1 AND d.refobjid <> $1 ORDER BY 1",
						   1, &type, &value, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		command->reads = lappend_oid(command->reads,
									 DatumGetObjectId(pipeline_result_datum(i, 0, &isnull)));
	}
}

/*
 * check_truncate
 *		TRUNCATE: each table exists and the owner may truncate it; it writes
 *		them.
 */
static void
check_truncate(const StepDef *step, TruncateStmt *truncate, StepCommand *command)
{
	ListCell   *lc;

	foreach(lc, truncate->relations)
	{
		Oid			table = relation_of(lfirst_node(RangeVar, lc));

		pipeline_require_privilege(step->owner, table, ACL_TRUNCATE, "TRUNCATE", "table");
		command->writes = lappend_oid(command->writes, table);
	}
}

/* The relations a query reads, and those it writes. */
typedef struct QueryRelations
{
	List	   *reads;
	List	   *writes;
} QueryRelations;

/*
 * relations_walker
 *		Collects the relations of a query, its subqueries, CTEs (a
 *		data-modifying one writes its result relation) and sublinks; a
 *		relation written is not also counted as read.
 */
static bool
relations_walker(Node *node, QueryRelations *found)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;

		if (query->resultRelation > 0)
			found->writes = list_append_unique_oid(found->writes,
												   rt_fetch(query->resultRelation, query->rtable)->relid);
		return query_tree_walker(query, relations_walker, found, QTW_EXAMINE_RTES_BEFORE);
	}
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			found->reads = list_append_unique_oid(found->reads, rte->relid);
		return false;
	}
	return expression_tree_walker(node, relations_walker, found);
}

/*
 * check_call
 *		A CALL: the owner holds EXECUTE on the procedure.
 */
static void
check_call(const StepDef *step, CallStmt *call_stmt)
{
	Oid			procedure = call_stmt->funcexpr->funcid;

	if (pipeline_proc_aclcheck(procedure, step->owner, ACL_EXECUTE) == ACLCHECK_OK)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for procedure %s", get_func_name(procedure)),
			 errdetail("Role \"%s\" owns the step and lacks the EXECUTE privilege on it.",
					   GetUserNameFromId(step->owner, false)),
			 errhint("GRANT EXECUTE ON PROCEDURE %s TO %s;", get_func_name(procedure),
					 quote_identifier(GetUserNameFromId(step->owner, false)))));
}

/*
 * check_planned
 *		A statement PostgreSQL plans (INSERT, UPDATE, DELETE, MERGE, SELECT)
 *		or a CALL: prepared as the owner, which resolves every name (and
 *		applies the rules of the tables it names); a statement then
 *		explained, whose executor start checks every privilege it needs
 *		without running it; a procedure's EXECUTE privilege checked.  The
 *		lineage of a statement is the relations of every query it is
 *		rewritten into.  One rewritten into nothing (a DO INSTEAD NOTHING
 *		rule) is refused: a run would do nothing.
 */
static void
check_planned(const StepDef *step, StepCommand *command)
{
	SPIPlanPtr	plan = SPI_prepare(step->command, 0, NULL);
	CachedPlanSource *source;
	QueryRelations found = {NIL, NIL};
	bool		call = false;
	ListCell   *lc;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	source = linitial(SPI_plan_get_plan_sources(plan));
	if (source->query_list == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the command is rewritten into nothing"),
				 errdetail("A rule of a table it names (DO INSTEAD NOTHING) replaces it: a run would do nothing."),
				 errhint("Name the table the rule does not rewrite, or drop the rule.")));
	foreach(lc, source->query_list)
	{
		Query	   *query = lfirst_node(Query, lc);

		call = query->commandType == CMD_UTILITY && IsA(query->utilityStmt, CallStmt);
		if (call)
			check_call(step, (CallStmt *) query->utilityStmt);
		else
			(void) relations_walker((Node *) query, &found);
	}
	command->writes = found.writes;
	command->reads = list_difference_oid(found.reads, found.writes);
	if (!call)
		pipeline_exec(psprintf("EXPLAIN (COSTS OFF) %s", step->command), 0, NULL, NULL, NULL, false, 0);
	SPI_freeplan(plan);
}

/* What check_as_owner checks, and what it finds. */
typedef struct CommandCheck
{
	const StepDef *step;
	Node	   *stmt;
	StepCommand *command;
} CommandCheck;

/*
 * check_as_owner
 *		The checks of the command's kind, as the step's owner with the
 *		step's search_path (pipeline_try).
 */
static void
check_as_owner(void *arg)
{
	CommandCheck *check = (CommandCheck *) arg;
	PipelineUserContext ctx;

	pipeline_become_role(check->step->owner, check->step->search_path, &ctx);
	if (IsA(check->stmt, RefreshMatViewStmt))
		check_refresh(check->step, (RefreshMatViewStmt *) check->stmt, check->command);
	else if (IsA(check->stmt, TruncateStmt))
		check_truncate(check->step, (TruncateStmt *) check->stmt, check->command);
	else
		check_planned(check->step, check->command);
	pipeline_restore_user(&ctx);
}

/*
 * pipeline_step_check_command
 *		Classifies a step's command and checks it as the step's owner would
 *		run it; fills 'command' with its kind and lineage.  An error of the
 *		check is the command's, said as such (not as a statement of the
 *		extension's).
 */
void
pipeline_step_check_command(const StepDef *step, StepCommand *command)
{
	CommandCheck check = {step, parse_one(step->command), command};
	ErrorData  *error;

	memset(command, 0, sizeof(StepCommand));
	command->kind = command_kind(check.stmt);
	error = pipeline_try(check_as_owner, &check);
	if (error == NULL)
		return;
	if (error->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(error);
	ereport(ERROR,
			(errcode(error->sqlerrcode),
			 errmsg("step \"%s\" cannot run its command: %s", step->name, error->message),
			 error->detail ? errdetail("%s", error->detail) :
			 errdetail("The command was checked as role \"%s\", which owns the step, would run it, with search_path %s.",
					   GetUserNameFromId(step->owner, false), step->search_path),
			 errhint("%s", error->hint ? error->hint :
					 "Grant the step's owner what its command needs, or name objects it can reach.")));
}
