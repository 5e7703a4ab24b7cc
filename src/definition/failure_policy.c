/*-------------------------------------------------------------------------
 *
 * failure_policy.c
 *	  A pipeline's or a step's own failure policy: how long its scheduler
 *	  waits before retrying it after failures, and after how many failed
 *	  runs in a row it is suspended, when not the settings'
 *	  (pipeline.retry_base, pipeline.retry_max,
 *	  pipeline.suspend_after_failures).  Pipelines and steps share one
 *	  namespace: the name says which.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "shared_memory/shared_memory.h"

PG_FUNCTION_INFO_V1(pipeline_set_failure_policy);

/* The longest retry delay a pipeline may ask for (one day). */
#define POLICY_MAX_MS (86400 * 1000)

/*
 * delay_ms
 *		An interval argument in milliseconds (1 ms to a day), or -1 when it
 *		is NULL: the setting's.
 */
static int32
delay_ms(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		return -1;
	return pipeline_interval_ms(PG_GETARG_INTERVAL_P(n), name, "a failure policy", POLICY_MAX_MS, "1 day",
								psprintf("Pass an interval such as '30 seconds', or NULL for pipeline.%s.",
										 name));
}

/*
 * pipeline_set_failure_policy
 *		SQL: pipeline.set_failure_policy(name, retry_base, retry_max,
 *		suspend_after_failures): the pipeline's or step's own policy; a
 *		NULL argument is the setting's.  Only those who may manage the
 *		pipeline or step set it.
 */
Datum
pipeline_set_failure_policy(PG_FUNCTION_ARGS)
{
	PipelineDef *def;
	StepDef    *step;
	char	   *name;
	int32		base = delay_ms(fcinfo, 1, "retry_base");
	int32		max = delay_ms(fcinfo, 2, "retry_max");
	int32		suspend = PG_ARGISNULL(3) ? -1 : PG_GETARG_INT32(3);

	pipeline_check_version(ERROR);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null"),
				 errdetail("A failure policy is a pipeline's or a step's."),
				 errhint("Pass the name of the pipeline or step.")));
	if (base >= 0 && max >= 0 && max < base)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("retry_max of a failure policy is shorter than retry_base"),
				 errdetail("The wait after a failure doubles from retry_base up to retry_max."),
				 errhint("Pass a retry_max at least retry_base.")));
	if (!PG_ARGISNULL(3) && suspend < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("suspend_after_failures of a failure policy must be 0 or more"),
				 errdetail("It is %d.", suspend),
				 errhint("Pass how many failed runs in a row suspend it, 0 for never, or NULL for pipeline.suspend_after_failures.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	name = pipeline_text_arg(fcinfo, 0);
	def = pipeline_load(name, true, DEF_LOCK_NONE);
	step = def == NULL ? pipeline_step_load(name, true, false) : NULL;
	if (def != NULL)
	{
		pipeline_check_manage(def);
		pipeline_save_failure_policy("pipeline_defs", def->id, base, max, suspend);
	}
	else if (step != NULL)
	{
		pipeline_check_role(step->owner, psprintf("step \"%s\"", step->name));
		pipeline_save_failure_policy("steps", step->id, base, max, suspend);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline or step \"%s\" does not exist", name),
				 errdetail("No pipeline or step of that name is defined in this database."),
				 errhint("See pipeline.pipelines and pipeline.steps for those you can manage.")));
	pipeline_schedules_changed();
	SPI_finish();
	PG_RETURN_VOID();
}
