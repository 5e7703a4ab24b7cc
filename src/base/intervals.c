/*-------------------------------------------------------------------------
 *
 * intervals.c
 *	  Intervals given as arguments, in milliseconds, and the backoff that
 *	  doubles a delay after each failure in a row: shared by the scheduler's
 *	  retries, the failure policies, the OpenLineage transport and the
 *	  alert routes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"

/*
 * pipeline_interval_ms
 *		An interval in milliseconds (a month counts 30 days).  Errors
 *		(22023) unless it is between 1 ms and max_ms; the message names
 *		the argument 'name' of 'what', the bound max_text, and 'hint'.
 */
int
pipeline_interval_ms(const Interval *span, const char *name, const char *what, double max_ms,
					 const char *max_text, const char *hint)
{
	double		ms = span->time / 1000.0 + (span->day + span->month * 30.0) * 86400000.0;

	if (ms < 1 || ms > max_ms)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of %s must be between 1 millisecond and %s", name, what, max_text),
				 errdetail("It is %s.", DatumGetCString(DirectFunctionCall1(interval_out,
																			IntervalPGetDatum(span)))),
				 errhint("%s", hint)));
	return (int) ms;
}

/*
 * pipeline_backoff_ms
 *		The delay after 'failures' failures in a row: base_ms doubling per
 *		further failure, at most max_ms.
 */
int64
pipeline_backoff_ms(int64 base_ms, int64 max_ms, int failures)
{
	double		wait = base_ms;

	for (int i = 1; i < failures && wait < max_ms; i++)
		wait *= 2;
	return (int64) Min(wait, (double) max_ms);
}
