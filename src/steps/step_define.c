/*-------------------------------------------------------------------------
 *
 * step_define.c
 *	  create_step, alter_step, drop_step, pause_step and resume_step.
 *
 * The caller of create_step owns the step, as create_pipeline makes the
 * caller the pipeline's owner; the command is checked as that role with
 * the caller's search_path, which the step keeps (step_command.c).  A step
 * runs after pipelines and steps its owner manages: being able to hold a
 * step back on another team's failures, or to learn them, is the other
 * team's to give (by membership).  A pipeline or step others run after is
 * not dropped under them: drop_pipeline and drop_step refuse, naming them
 * (drop_step's cascade drops them too).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "shared_memory/shared_memory.h"
#include "steps/steps.h"

PG_FUNCTION_INFO_V1(pipeline_create_step);
PG_FUNCTION_INFO_V1(pipeline_alter_step);
PG_FUNCTION_INFO_V1(pipeline_drop_step);
PG_FUNCTION_INFO_V1(pipeline_pause_step);
PG_FUNCTION_INFO_V1(pipeline_resume_step);

/* The arguments create_step and alter_step share, by position. */
enum StepArg
{
	ARG_NAME,
	ARG_COMMAND,
	ARG_AFTER,
	ARG_STATEMENT_TIMEOUT,
	ARG_READS,
	ARG_WRITES,
	ARG_SCHEDULE
};

/*
 * upstreams_arg
 *		The pipelines and steps 'after' names (a text[]), resolved: each
 *		one the step's owner manages, none twice, not the step itself.
 */
static List *
upstreams_arg(FunctionCallInfo fcinfo, const StepDef *step)
{
	List	   *names = pipeline_text_array_to_list(PG_GETARG_DATUM(ARG_AFTER), "after");
	List	   *upstreams = NIL;
	ListCell   *lc;

	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		StepUpstream *u = palloc0(sizeof(StepUpstream));
		Oid			owner;

		if (strcmp(name, step->name) == 0 || pipeline_list_position(names, name) < foreach_current_index(lc))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg(strcmp(name, step->name) == 0 ? "step \"%s\" cannot run after itself" :
							"after names \"%s\" twice", name),
					 errdetail("after lists the pipelines and steps step \"%s\" runs after, each once.",
							   step->name),
					 errhint("Remove it from after.")));
		u->id = pipeline_step_find_upstream(name, &u->is_step, &owner);
		pipeline_check_role(owner, psprintf("%s \"%s\"", u->is_step ? "step" : "pipeline", name));
		upstreams = lappend(upstreams, u);
	}
	return upstreams;
}

/*
 * oids_arg
 *		A regclass[] argument as a List of Oid (NIL for NULL).
 */
static List *
oids_arg(FunctionCallInfo fcinfo, int arg)
{
	return PG_ARGISNULL(arg) ? NIL : pipeline_oid_array_to_list(PG_GETARG_DATUM(arg));
}

/*
 * schedule_arg
 *		The schedule argument as it is stored, checked; 'otherwise' when it
 *		is NULL.
 */
static char *
schedule_arg(FunctionCallInfo fcinfo, char *otherwise)
{
	PipelineSchedule schedule;

	if (PG_ARGISNULL(ARG_SCHEDULE))
		return otherwise;
	pipeline_step_schedule_parse(pipeline_text_arg(fcinfo, ARG_SCHEDULE), &schedule);
	return pstrdup(schedule.text);
}

/*
 * check_declared
 *		The owner may read what a step declares it reads, and write what it
 *		declares it writes: a declaration is a claim on the relation (its
 *		DROP then takes the step into account, lineage shows it).
 */
static void
check_declared(const StepDef *step)
{
	ListCell   *lc;

	foreach(lc, list_concat_copy(step->reads, step->writes))
	{
		bool		reads = foreach_current_index(lc) < list_length(step->reads);
		AclMode		needed = reads ? ACL_SELECT : ACL_INSERT | ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE;

		if (pg_class_aclmask(lfirst_oid(lc), step->owner, needed, ACLMASK_ANY) != 0)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for relation %s", pipeline_qualified_name(lfirst_oid(lc))),
				 errdetail("Role \"%s\" owns the step and may not %s the relation it declares it %s.",
						   GetUserNameFromId(step->owner, false), reads ? "read" : "write",
						   reads ? "reads" : "writes"),
				 errhint("Declare only relations the step's owner may %s.",
						 reads ? "SELECT" : "INSERT, UPDATE, DELETE or TRUNCATE")));
	}
}

/*
 * check_on_upstream
 *		A step run on its upstreams' new work must have some.
 */
static void
check_on_upstream(const StepDef *step)
{
	if (strcmp(step->schedule, "on_upstream") != 0 || pipeline_step_has_upstreams(step->id))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("step \"%s\" runs on its upstreams' work but runs after nothing", step->name),
			 errdetail("Schedule on_upstream starts the step when a pipeline or step it runs after did new work."),
			 errhint("Name its upstreams in after, or give it another schedule.")));
}

/*
 * save_upstreams
 *		The step's upstreams, refused when they would make it run after
 *		itself.
 */
static void
save_upstreams(const StepDef *step, List *upstreams)
{
	char	   *cycle;

	pipeline_step_set_upstreams(step->id, upstreams);
	check_on_upstream(step);
	cycle = pipeline_step_cycle(step->id);
	if (cycle != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_RECURSION),
				 errmsg("step \"%s\" would run after itself", step->name),
				 errdetail("The steps would run in a circle: %s.", cycle),
				 errhint("Remove one of them from after.")));
}

/*
 * pipeline_create_step
 *		SQL: pipeline.create_step(step_name, command, after,
 *		statement_timeout, reads, writes) -> bigint.
 */
Datum
pipeline_create_step(PG_FUNCTION_ARGS)
{
	StepDef    *step = palloc0(sizeof(StepDef));
	StepCommand command;
	List	   *upstreams = NIL;

	pipeline_check_version(ERROR);
	step->name = pipeline_text_arg(fcinfo, ARG_NAME);
	pipeline_check_name(step->name, "step");
	step->command = pipeline_text_arg(fcinfo, ARG_COMMAND);
	if (step->command == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("command must not be null"),
				 errdetail("A step runs one SQL statement."),
				 errhint("Pass command => 'REFRESH MATERIALIZED VIEW ...', 'CALL ...' or a statement.")));
	step->owner = GetUserId();
	step->schedule = schedule_arg(fcinfo, "manual");
	step->search_path = pstrdup(namespace_search_path);
	step->statement_timeout = pipeline_statement_timeout_arg(fcinfo, ARG_STATEMENT_TIMEOUT);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (pipeline_step_load(step->name, true, false) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("step \"%s\" already exists", step->name),
				 errdetail("Step names are unique in a database."),
				 errhint("Choose another name, or change the step with pipeline.alter_step.")));
	if (pipeline_load(step->name, true, DEF_LOCK_NONE) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("a pipeline is named \"%s\"", step->name),
				 errdetail("A step runs after pipelines and steps named alike: one name cannot be both."),
				 errhint("Choose another name for the step.")));
	if (!PG_ARGISNULL(ARG_AFTER))
		upstreams = upstreams_arg(fcinfo, step);
	pipeline_step_check_command(step, &command);
	step->kind = pstrdup(command.kind);
	step->reads = oids_arg(fcinfo, ARG_READS);
	step->writes = oids_arg(fcinfo, ARG_WRITES);
	check_declared(step);
	step->id = pipeline_step_save(step);
	save_upstreams(step, upstreams);
	pipeline_step_set_relations(step, command.reads, command.writes);
	pipeline_schedules_changed();
	SPI_finish();
	PG_RETURN_INT64(step->id);
}

/*
 * pipeline_step_name_required
 *		The error of a NULL step name.
 */
void
pipeline_step_name_required(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("step name must not be null"),
			 errdetail("Steps are named."),
			 errhint("See SELECT name FROM pipeline.steps for the steps you can manage.")));
}

/*
 * load_managed
 *		The step named by the first argument, which the caller must manage.
 */
static StepDef *
load_managed(FunctionCallInfo fcinfo)
{
	StepDef    *step;

	if (PG_ARGISNULL(ARG_NAME))
		pipeline_step_name_required();
	step = pipeline_step_load(pipeline_text_arg(fcinfo, ARG_NAME), false, false);

	pipeline_check_role(step->owner, psprintf("step \"%s\"", step->name));
	return step;
}

/*
 * pipeline_alter_step
 *		SQL: pipeline.alter_step(step_name, command, after,
 *		statement_timeout, reads, writes): each argument given replaces the
 *		step's (after => '{}' runs it after nothing, reads => '{}' declares
 *		none; statement_timeout 0, no limit); the command is checked again
 *		as the step's owner, with the search_path the step was created
 *		with.
 */
Datum
pipeline_alter_step(PG_FUNCTION_ARGS)
{
	StepDef    *step;
	StepCommand command;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	step = load_managed(fcinfo);
	pipeline_step_wait_for_runs(step->id);
	if (!PG_ARGISNULL(ARG_COMMAND))
		step->command = pipeline_text_arg(fcinfo, ARG_COMMAND);
	if (!PG_ARGISNULL(ARG_STATEMENT_TIMEOUT))
		step->statement_timeout = pipeline_statement_timeout_arg(fcinfo, ARG_STATEMENT_TIMEOUT);
	if (!PG_ARGISNULL(ARG_READS))
		step->reads = oids_arg(fcinfo, ARG_READS);
	if (!PG_ARGISNULL(ARG_WRITES))
		step->writes = oids_arg(fcinfo, ARG_WRITES);
	step->schedule = schedule_arg(fcinfo, step->schedule);
	check_declared(step);
	pipeline_step_check_command(step, &command);
	step->kind = pstrdup(command.kind);
	(void) pipeline_step_save(step);
	if (!PG_ARGISNULL(ARG_AFTER))
		save_upstreams(step, upstreams_arg(fcinfo, step));
	else
		check_on_upstream(step);
	pipeline_step_set_relations(step, command.reads, command.writes);
	pipeline_schedules_changed();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_drop_step
 *		SQL: pipeline.drop_step(step_name, cascade => false): refused while
 *		steps run after it, unless 'cascade', which drops them too (and
 *		those after them), each with a NOTICE.
 */
Datum
pipeline_drop_step(PG_FUNCTION_ARGS)
{
	StepDef    *step;
	bool		cascade = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	char	   *followers;
	ListCell   *lc;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	step = load_managed(fcinfo);

	/*
	 * a run under way finishes first; a step made meanwhile to run after it
	 * waits
	 */
	pipeline_step_wait_for_runs(step->id);
	pipeline_step_lock_row(step->id);
	followers = pipeline_step_followers(step->id, true);
	if (followers != NULL && !cascade)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop step \"%s\" because other steps run after it", step->name),
				 errdetail("Steps running after it: %s.", followers),
				 errhint("Drop or alter those steps first, or pass cascade => true to drop them too.")));
	foreach(lc, pipeline_steps_delete("SELECT $1::bigint", step->id, cascade))
		if (strcmp(lfirst(lc), step->name) != 0)
		ereport(NOTICE, (errmsg("drop cascades to step \"%s\"", (char *) lfirst(lc))));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * set_paused
 *		pause_step and resume_step.
 */
static Datum
set_paused(FunctionCallInfo fcinfo, bool paused)
{
	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pipeline_step_set_paused(load_managed(fcinfo)->id, paused);
	pipeline_schedules_changed();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_pause_step
 *		SQL: pipeline.pause_step(step_name): runs of it are refused until
 *		resume_step.
 */
Datum
pipeline_pause_step(PG_FUNCTION_ARGS)
{
	return set_paused(fcinfo, true);
}

/*
 * pipeline_resume_step
 *		SQL: pipeline.resume_step(step_name).
 */
Datum
pipeline_resume_step(PG_FUNCTION_ARGS)
{
	return set_paused(fcinfo, false);
}
