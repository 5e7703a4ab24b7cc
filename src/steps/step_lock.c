/*-------------------------------------------------------------------------
 *
 * step_lock.c
 *	  The advisory lock that keeps runs of one step from overlapping: a run
 *	  holds it until its last commit (for the session outside a transaction
 *	  block, for the transaction inside one); alter_step and drop_step wait
 *	  for it; the scheduler asks whether a run holds it, and takes it to
 *	  fail the runs a crash ended.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "steps/steps.h"

/* Distinguishes the step run lock from other advisory locks on the same ids. */
#define STEP_LOCK_CLASS 0x5354

/*
 * pipeline_step_try_lock
 *		Takes the step's lock, for the session or the transaction, without
 *		waiting; false when a run holds it.
 */
bool
pipeline_step_try_lock(int64 step_id, bool session)
{
	LOCKTAG		tag;

	pipeline_id_lock_tag(&tag, step_id, STEP_LOCK_CLASS);
	return LockAcquire(&tag, ExclusiveLock, session, true) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * pipeline_step_unlock
 *		Releases the step's lock taken for the session.
 */
void
pipeline_step_unlock(int64 step_id)
{
	LOCKTAG		tag;

	pipeline_id_lock_tag(&tag, step_id, STEP_LOCK_CLASS);
	LockRelease(&tag, ExclusiveLock, true);
}

/*
 * pipeline_step_wait_for_runs
 *		Waits for a run of the step under way, and keeps new ones from
 *		starting, until the transaction ends (alter_step, drop_step).
 */
void
pipeline_step_wait_for_runs(int64 step_id)
{
	LOCKTAG		tag;

	pipeline_id_lock_tag(&tag, step_id, STEP_LOCK_CLASS);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * pipeline_step_lock_held
 *		Whether a session runs the step now (holds its run lock).
 */
bool
pipeline_step_lock_held(int64 step_id)
{
	return pipeline_id_lock_held(step_id, STEP_LOCK_CLASS);
}

/*
 * pipeline_step_fail_dead_runs
 *		Marks failed the runs of steps recorded as running whose session is
 *		gone (a crash or a restart ended them), holding each step's run
 *		lock meanwhile (until the transaction ends), so that a run starting
 *		now is not taken for one of them: the retry of a scheduled step
 *		then follows.  The scheduler calls it when it starts.
 */
void
pipeline_step_fail_dead_runs(void)
{
	ListCell   *lc;

	foreach(lc, pipeline_running_steps())
	{
		int64		step_id = *(int64 *) lfirst(lc);

		if (pipeline_step_try_lock(step_id, false))
			pipeline_step_fail_interrupted(step_id);
	}
}
