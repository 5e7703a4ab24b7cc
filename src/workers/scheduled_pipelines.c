/*-------------------------------------------------------------------------
 *
 * scheduled_pipelines.c
 *	  What a scheduler pass knows of each scheduled pipeline, and when it
 *	  is due: its schedule, its failures and their backoff, its last run or
 *	  empty tick, as pipeline.schedule_state keeps them.
 *
 * A continuous pipeline is always due.  An interval schedule is due that
 * long after its last run started; cron text at its next time.  A due
 * interval or cron pipeline with no staged row waiting is not run: its
 * tick is counted in pipeline.schedule_state instead (empty_ticks), and
 * its next time counts from the tick.  A pipeline whose last runs failed is
 * due again after an exponential backoff with jitter (pipeline.retry_base
 * doubling up to pipeline.retry_max).
 *
 * A scheduled step (steps/) is due at its interval or cron times, or, with
 * schedule 'on_upstream', as soon as an upstream did new work while every
 * upstream's last run succeeded.  A failed step is retried with the same
 * backoff, once its upstreams are done: a retry that would only be skipped
 * waits for them (their success wakes the scheduler).  A step has no
 * staged rows: its ticks are never empty.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"
#include "pipeline_catalog/pipeline_catalog.h"
#include "run/run.h"
#include "settings.h"
#include "shared_memory/shared_memory.h"
#include "workers/workers.h"

/*
 * pipeline_retry_delay_ms
 *		The delay before the retry that follows 'failures' failed runs in a
 *		row: retry_base doubled per further failure, capped at retry_max
 *		(the pipeline's own, pipeline.set_failure_policy, or the settings),
 *		times a jitter factor in [0.5, 1.5) that is a fixed function of the
 *		pipeline and the count (so every pass, and a restart, agree).
 */
int64
pipeline_retry_delay_ms(const ScheduledPipeline *p, int32 failures)
{
	double		delay = pipeline_backoff_ms(p->retry_base_ms >= 0 ? p->retry_base_ms : pipeline_retry_base,
											p->retry_max_ms >= 0 ? p->retry_max_ms : pipeline_retry_max,
											failures);
	uint32		h = hash_combine(hash_bytes_uint32((uint32) p->id),
								 hash_bytes_uint32((uint32) failures));

	return (int64) (delay * (0.5 + (double) h / ((double) PG_UINT32_MAX + 1)));
}

/*
 * scheduled_from_row
 *		A scheduled pipeline or step as a pass sees it, from its row.
 */
static ScheduledPipeline *
scheduled_from_row(const ScheduleRow *r)
{
	ScheduledPipeline *p = palloc0(sizeof(ScheduledPipeline));

	p->id = r->id;
	p->step = r->step;
	p->ready = r->ready;
	p->triggered = r->triggered;
	p->name = r->name;
	p->owner = r->owner;
	if (r->step)
		pipeline_stored_step_schedule(r->schedule, &p->schedule);
	else
		pipeline_schedule_parse(r->schedule, &p->schedule);
	p->stopped = r->stopped;
	p->failures = r->failures;
	p->last_failure_at = r->last_failure_at;
	p->last_start = r->last_start;
	p->next_run_at = r->next_run_at;
	p->waiting_since = r->waiting_since;
	p->source = r->source;
	p->last_empty_tick_at = r->last_empty_tick_at;
	p->retry_base_ms = r->retry_base_ms;
	p->retry_max_ms = r->retry_max_ms;
	return p;
}

/*
 * pipeline_read_scheduled
 *		The pipelines, then the steps, with a schedule other than 'manual',
 *		as this pass sees them (schedule_state.c reads them).  The caller
 *		is in a transaction, connected to SPI.
 */
List *
pipeline_read_scheduled(void)
{
	List	   *pipelines = NIL;
	ListCell   *lc;

	foreach(lc, list_concat(pipeline_scheduled_definitions(), pipeline_scheduled_steps()))
		pipelines = lappend(pipelines, scheduled_from_row(lfirst(lc)));
	return pipelines;
}

/*
 * pipeline_due_step
 *		The name of step 'step_id' when it is due now, as a pass would find
 *		it (read again: a run that ended since the pass started it may have
 *		done its work), with what starts the run in *trigger: a retry after
 *		failures, an upstream's new work, or its schedule; NULL when it is
 *		not due (or gone, paused, suspended, no longer scheduled).  The
 *		caller is in a transaction, connected to SPI.
 */
char *
pipeline_due_step(int64 step_id, const char **trigger)
{
	ScheduleRow *r = pipeline_scheduled_step(step_id);
	ScheduledPipeline *p;
	TimestampTz now = GetCurrentTimestamp();

	if (r == NULL)
		return NULL;
	p = scheduled_from_row(r);
	if (pipeline_due_at(p, now) > now)
		return NULL;
	*trigger = p->failures > 0 ? "retry" : p->schedule.kind == SCHEDULE_ON_UPSTREAM ? "upstream" : "schedule";
	return p->name;
}

/*
 * pipeline_recheck_failures
 *		The due pipelines of a pass (ScheduledPipeline *) found not running:
 *		their failures read again, with a new snapshot, and those no longer
 *		due dropped.  A run that failed and ended after the pass's snapshot
 *		was taken (but before the pass found it not running) would otherwise
 *		be started again at once, without its backoff.
 */
List *
pipeline_recheck_failures(List *due, TimestampTz now)
{
	int64	   *ids[2];
	int			nids[2] = {0, 0};
	List	   *still_due = NIL;
	ListCell   *lc;
	ListCell   *lr;
	List	   *rows = NIL;

	if (due == NIL)
		return NIL;
	/* [0]: the pipelines' ids, [1]: the steps' */
	ids[0] = palloc(sizeof(int64) * list_length(due));
	ids[1] = palloc(sizeof(int64) * list_length(due));
	foreach(lc, due)
	{
		ScheduledPipeline *p = lfirst(lc);

		ids[p->step][nids[p->step]++] = p->id;
	}
	for (int k = 0; k < 2; k++)
		if (nids[k] > 0)
			rows = list_concat(rows, pipeline_current_failures(ids[k], nids[k], k == 1));
	foreach(lc, due)
	{
		ScheduledPipeline *p = lfirst(lc);

		foreach(lr, rows)
		{
			ScheduleRow *r = lfirst(lr);

			if (r->id != p->id || r->step != p->step)
				continue;
			p->failures = r->failures;
			p->last_failure_at = r->last_failure_at;
			break;
		}
		p->due = pipeline_due_at(p, now);
		if (p->due <= now)
			still_due = lappend(still_due, p);
	}
	return still_due;
}

/*
 * pipeline_due_at
 *		When the pipeline should run next: a retry after failures, its
 *		schedule's next time after its last start (or empty tick), or now
 *		for a continuous one (or a step an upstream's new work triggered).
 *		DT_NOEND when never (paused, suspended), or not by a time (a step
 *		waiting for its upstreams).
 */
TimestampTz
pipeline_due_at(const ScheduledPipeline *p, TimestampTz now)
{
	if (p->stopped)
		return DT_NOEND;
	/* it would only be skipped: an upstream's success wakes the scheduler */
	if (p->step && !p->ready && (p->failures > 0 || p->schedule.kind == SCHEDULE_ON_UPSTREAM))
		return DT_NOEND;
	if (p->failures > 0 && p->last_failure_at != 0)
		return p->last_failure_at + pipeline_retry_delay_ms(p, p->failures) * 1000;
	switch (p->schedule.kind)
	{
		case SCHEDULE_CONTINUOUS:
			return now;
		case SCHEDULE_INTERVAL:
			return p->last_start ? pipeline_schedule_next(&p->schedule, p->last_start) : now;
		case SCHEDULE_CRON:

			/*
			 * never run (or its runs purged): the time stored by an earlier
			 * pass
			 */
			if (p->last_start == 0 && p->next_run_at != 0)
				return p->next_run_at;
			return pipeline_schedule_next(&p->schedule, p->last_start ? p->last_start : now);
		case SCHEDULE_ON_UPSTREAM:
			return p->triggered ? now : DT_NOEND;
		default:
			return DT_NOEND;
	}
}

/*
 * pipeline_store_schedule_state
 *		Records when the pipeline runs next (NULL: not by a schedule) and
 *		since when it waits for a worker (NULL: it does not), for
 *		pipeline.status, when either changed.
 */
void
pipeline_store_schedule_state(ScheduledPipeline *p, TimestampTz next, TimestampTz waiting_since)
{
	if (next == DT_NOEND)
		next = 0;
	if (next == p->next_run_at && waiting_since == p->waiting_since)
		return;
	pipeline_save_schedule_state(p->id, p->step, next, waiting_since);
	p->next_run_at = next;
	p->waiting_since = waiting_since;
}

/*
 * still_caught_up
 *		Whether the pipeline is known to have nothing to read without a
 *		probe: its last tick found nothing, and no commit to its source came
 *		to this scheduler's knowledge since.
 */
static bool
still_caught_up(const ScheduledPipeline *p)
{
	return p->last_empty_tick_at != 0 && p->last_start == p->last_empty_tick_at &&
		pipeline_source_staged_at(p->source) < p->last_empty_tick_at;
}

/*
 * pipeline_quiet_tick
 *		Whether the due pipeline has nothing to do: an interval or cron
 *		schedule, not retrying a failure, and no staged row waiting (known
 *		without a probe when nothing was committed to its source since its
 *		last empty tick).
 */
bool
pipeline_quiet_tick(const ScheduledPipeline *p)
{
	return !p->step && (p->schedule.kind == SCHEDULE_INTERVAL || p->schedule.kind == SCHEDULE_CRON) &&
		p->failures == 0 && (still_caught_up(p) || pipeline_is_caught_up(p->id));
}

/*
 * pipeline_record_empty_tick
 *		Counts a tick of the pipeline's schedule that found nothing to read,
 *		at 'now', and stores its next time.
 */
void
pipeline_record_empty_tick(ScheduledPipeline *p, TimestampTz now, TimestampTz next)
{
	pipeline_save_empty_tick(p->id, now, next);
	p->next_run_at = next;
	p->last_start = now;		/* its next time counts from the tick */
	p->due = next;
}

/*
 * pipeline_next_due
 *		When to look at the pipeline again after this pass: a continuous one
 *		runs on commit, not at a time (unless a retry is due), as does a step
 *		run on its upstreams' new work; another one that was just started,
 *		at its schedule's next time.
 */
TimestampTz
pipeline_next_due(const ScheduledPipeline *p, TimestampTz due, TimestampTz now)
{
	if ((p->schedule.kind == SCHEDULE_CONTINUOUS || p->schedule.kind == SCHEDULE_ON_UPSTREAM) &&
		(p->failures == 0 || p->started))
		return DT_NOEND;
	if (p->started)
		return pipeline_schedule_next(&p->schedule, now);
	return due;
}

/*
 * pipeline_coarse_wake
 *		When to wake for a pipeline due at 'due': an interval of a minute or
 *		more is woken for at the next whole second, so that the ticks of
 *		many such schedules due within one second make one pass, not one
 *		each (a second late at most, on a minute: nothing a user sees);
 *		shorter intervals and retries on time.
 */
TimestampTz
pipeline_coarse_wake(const ScheduledPipeline *p, TimestampTz due)
{
	if (p->schedule.kind != SCHEDULE_INTERVAL || p->failures > 0 ||
		p->schedule.interval < USECS_PER_MINUTE || TIMESTAMP_NOT_FINITE(due))
		return due;
	return due + (USECS_PER_SEC - due % USECS_PER_SEC) % USECS_PER_SEC;
}
