/*-------------------------------------------------------------------------
 *
 * steps.h
 *	  Orchestration steps: a statement -- REFRESH MATERIALIZED VIEW, a
 *	  procedure call, a cleanup -- run as its owner after the pipelines and
 *	  steps it follows succeeded, or by hand.  What a command is and may do
 *	  (step_command.c); create_step, alter_step, drop_step and pausing
 *	  (step_define.c); running one (step_run.c), under a lock that keeps
 *	  runs of one step from overlapping (step_lock.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_STEPS_H
#define PIPELINE_STEPS_H

#include "model.h"

/* A step's command, as parsing and checking it found it. */
typedef struct StepCommand
{
	const char *kind;			/* "refresh", "call" or "statement" */
	List	   *reads;			/* of Oid: relations it reads */
	List	   *writes;			/* of Oid: relations it writes */
} StepCommand;

/* step_define.c */
extern void pipeline_step_name_required(void) pg_attribute_noreturn();

/* step_run.c */
extern void pipeline_run_step_in_worker(const char *name, const char *trigger);

/* step_lock.c */
extern bool pipeline_step_try_lock(int64 step_id, bool session);
extern void pipeline_step_unlock(int64 step_id);
extern void pipeline_step_wait_for_runs(int64 step_id);
extern bool pipeline_step_lock_held(int64 step_id);
extern void pipeline_step_fail_dead_runs(void);

/* step_command.c */
extern void pipeline_step_check_command(const StepDef *step, StepCommand *command);

#endif							/* PIPELINE_STEPS_H */
