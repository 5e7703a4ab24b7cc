/*-------------------------------------------------------------------------
 *
 * http_post.c
 *	  POSTs a JSON body to an HTTP(S) endpoint through libcurl.
 *
 * One easy handle lives as long as the process that posts (a shipper), so
 * that consecutive POSTs to one receiver reuse its connection.  libcurl
 * runs no code of ours but the callbacks below, which neither allocate
 * with palloc nor raise errors: nothing longjmps out of libcurl.  The
 * progress callback stops a transfer when the process is asked to stop
 * (SIGTERM), so that a receiver that never answers delays a shutdown by a
 * second at most, not by the whole timeout.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"

#include "shipping/shipping.h"

static CURL * curl = NULL;

/* The start of the answer's body, for the error of a refusal. */
static char answer[200];
static size_t answer_length = 0;

/*
 * keep_answer_start
 *		Keeps the first bytes of the answer's body; the rest is dropped.
 */
static size_t
keep_answer_start(char *data, size_t size, size_t count, void *arg)
{
	size_t		n = Min(size * count, sizeof(answer) - 1 - answer_length);

	/* printable ASCII only: the error is stored as text of any encoding */
	for (size_t i = 0; i < n; i++)
		answer[answer_length++] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : ' ';
	answer[answer_length] = '\0';
	return size * count;
}

/*
 * stop_when_asked
 *		Aborts a transfer when the process has a termination pending.
 */
static int
stop_when_asked(void *arg, curl_off_t dltotal, curl_off_t dlnow,
				curl_off_t ultotal, curl_off_t ulnow)
{
	return ProcDiePending ? 1 : 0;
}

/*
 * open_handle
 *		The process's handle, set up once.
 */
static CURL *
open_handle(void)
{
	if (curl != NULL)
		return curl;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(ERROR, "could not initialize libcurl");
	curl = curl_easy_init();
	if (curl == NULL)
		elog(ERROR, "could not create a libcurl handle");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_answer_start);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, stop_when_asked);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	/* http and https only: never file://, nor a redirect elsewhere */
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "pipeline/" PIPELINE_VERSION);
	return curl;
}

/*
 * classify
 *		What an answer's status means for the event: delivered (2xx),
 *		refused for good (the receiver says this body is wrong: 400, 413,
 *		422), or to retry (anything else, authentication and missing
 *		endpoints included: those are mended at the receiver, and the event
 *		must still be there then).
 */
static HttpOutcome
classify(long status)
{
	if (status >= 200 && status < 300)
		return HTTP_DELIVERED;
	if (status == 400 || status == 413 || status == 422)
		return HTTP_REFUSED;
	return HTTP_RETRY;
}

/*
 * pipeline_http_post
 *		POSTs body (JSON) to url, with "Authorization: Bearer <bearer>"
 *		unless bearer is NULL, waiting timeout_ms at most; fills result.
 */
void
pipeline_http_post(const char *url, const char *bearer, const char *body, int timeout_ms,
				   HttpResult *result)
{
	CURL	   *handle = open_handle();
	struct curl_slist *headers = NULL;
	char	   *authorization = NULL;
	CURLcode	code;

	headers = curl_slist_append(headers, "Content-Type: application/json");
	if (bearer != NULL)
	{
		authorization = psprintf("Authorization: Bearer %s", bearer);
		headers = curl_slist_append(headers, authorization);
	}
	curl_easy_setopt(handle, CURLOPT_URL, url);
	curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
	curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
	curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, (long) timeout_ms);
	answer_length = 0;
	answer[0] = '\0';
	code = curl_easy_perform(handle);
	curl_easy_setopt(handle, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	if (authorization != NULL)
		pfree(authorization);

	result->status = 0;
	if (code != CURLE_OK)
	{
		result->outcome = HTTP_RETRY;
		snprintf(result->error, sizeof(result->error), "%s", curl_easy_strerror(code));
		return;
	}
	curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &result->status);
	result->outcome = classify(result->status);
	if (result->outcome == HTTP_DELIVERED)
		result->error[0] = '\0';
	else
		snprintf(result->error, sizeof(result->error), "the receiver answered HTTP %ld%s%s",
				 result->status, answer_length > 0 ? ": " : "", answer);
}

/*
 * pipeline_http_close
 *		Closes the process's handle and its connections.
 */
void
pipeline_http_close(void)
{
	if (curl == NULL)
		return;
	curl_easy_cleanup(curl);
	curl = NULL;
}
