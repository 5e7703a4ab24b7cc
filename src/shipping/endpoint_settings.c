/*-------------------------------------------------------------------------
 *
 * endpoint_settings.c
 *	  The checks of what an endpoint is given, shared by the OpenLineage
 *	  transport and the alert routes: a URL to post to, timeouts and
 *	  backoffs, arguments that may not be NULL.  (The backoff itself is
 *	  pipeline_backoff_ms, base/intervals.c.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "shipping/shipping.h"

/* The longest timeout and backoff the settings take (one hour). */
#define ENDPOINT_MAX_MS (3600 * 1000)

/*
 * pipeline_endpoint_argument
 *		The argument 'n' of the call, which may not be NULL; 'what' names
 *		the endpoint ("the OpenLineage transport").
 */
Datum
pipeline_endpoint_argument(FunctionCallInfo fcinfo, int n, const char *name, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of %s may not be null", name, what),
				 errdetail("Leaving an argument out gives it its default; NULL is no value."),
				 strcmp(name, "url") == 0
				 ? errhint("Pass the receiver's URL, such as 'http://marquez:5000'.")
				 : errhint("Leave %s out for its default.", name)));
	return PG_GETARG_DATUM(n);
}

/*
 * pipeline_endpoint_interval_ms
 *		An interval argument in milliseconds, between 1 ms and an hour.
 */
int
pipeline_endpoint_interval_ms(FunctionCallInfo fcinfo, int n, const char *name, const char *what)
{
	return pipeline_interval_ms(DatumGetIntervalP(pipeline_endpoint_argument(fcinfo, n, name, what)),
								name, what, ENDPOINT_MAX_MS, "1 hour",
								"Pass an interval such as '5 seconds'.");
}

/*
 * pipeline_endpoint_check_backoff
 *		retry_max may not be shorter than retry_base.
 */
void
pipeline_endpoint_check_backoff(int retry_base_ms, int retry_max_ms, const char *what)
{
	if (retry_max_ms < retry_base_ms)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("retry_max of %s is shorter than retry_base", what),
				 errdetail("The wait after a failure doubles from retry_base up to retry_max."),
				 errhint("Pass a retry_max at least retry_base.")));
}

/*
 * pipeline_endpoint_url
 *		The URL argument 'n': http:// or https://, a host after it, no
 *		blank.
 */
char *
pipeline_endpoint_url(FunctionCallInfo fcinfo, int n, const char *what)
{
	char	   *url = text_to_cstring(DatumGetTextPP(pipeline_endpoint_argument(fcinfo, n, "url", what)));
	const char *rest = NULL;

	if (pg_strncasecmp(url, "http://", 7) == 0)
		rest = url + 7;
	else if (pg_strncasecmp(url, "https://", 8) == 0)
		rest = url + 8;
	if (rest == NULL || rest[0] == '\0' || rest[0] == '/' || strpbrk(url, " \t\r\n") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a URL %s can post to", url, what),
				 errdetail("It posts over http:// or https:// to a host."),
				 errhint("Pass the receiver's URL, such as 'http://marquez:5000'.")));
	return url;
}
