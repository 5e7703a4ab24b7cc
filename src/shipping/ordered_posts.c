/*-------------------------------------------------------------------------
 *
 * ordered_posts.c
 *	  Posting a list of events or deliveries to one receiver in order, and
 *	  what recording the outcome needs of the list (their ids and errors
 *	  as arrays, the WARNING of each given up).  The OpenLineage transport
 *	  and the alert routes share it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "shipping/shipping.h"

/*
 * pipeline_post_in_order
 *		Posts the items (OutboxEvent *) to url in order, up to the first
 *		failure (returned, or NULL) or the deadline (0: none); those the
 *		receiver took go to *taken, those it refused or that could not be
 *		built to *rejected, with their error (allocated in the current
 *		memory context); those after are left for a later pass.
 */
HttpResult *
pipeline_post_in_order(const char *url, const char *bearer, int timeout_ms, List *items,
					   TimestampTz deadline, List **taken, List **rejected)
{
	static HttpResult result;
	ListCell   *lc;

	foreach(lc, items)
	{
		OutboxEvent *item = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		/* at least one item a call: a pass always moves on */
		if (deadline != 0 && foreach_current_index(lc) > 0 && GetCurrentTimestamp() >= deadline)
			break;
		if (item->body == NULL)
		{
			*rejected = lappend(*rejected, item);
			continue;
		}
		pipeline_http_post(url, bearer, item->body, timeout_ms, &result);
		/* a transfer a shutdown stopped is no failure of the receiver */
		CHECK_FOR_INTERRUPTS();
		if (result.outcome == HTTP_RETRY)
			return &result;
		if (result.outcome == HTTP_REFUSED)
		{
			item->error = pstrdup(result.error);
			*rejected = lappend(*rejected, item);
		}
		else
			*taken = lappend(*taken, item);
	}
	return NULL;
}

/*
 * pipeline_posted_ids
 *		The ids of the items as a bigint[] datum.
 */
Datum
pipeline_posted_ids(List *items)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(list_length(items), 1));
	ListCell   *lc;

	foreach(lc, items)
		ids[foreach_current_index(lc)] = Int64GetDatum(((OutboxEvent *) lfirst(lc))->id);
	return PointerGetDatum(construct_array(ids, list_length(items), INT8OID, 8, true, TYPALIGN_DOUBLE));
}

/*
 * pipeline_posted_errors
 *		The errors of the items as a text[] datum, in the order of their
 *		ids.
 */
Datum
pipeline_posted_errors(List *items)
{
	Datum	   *errors = palloc(sizeof(Datum) * Max(list_length(items), 1));
	ListCell   *lc;

	foreach(lc, items)
		errors[foreach_current_index(lc)] = CStringGetTextDatum(((OutboxEvent *) lfirst(lc))->error);
	return PointerGetDatum(construct_array(errors, list_length(items), TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * pipeline_log_given_up
 *		A WARNING in the server log for each item given up: "pipeline gave
 *		up <what> <id>", its error, and where it is kept.
 */
void
pipeline_log_given_up(List *items, const char *what, const char *kept_in)
{
	ListCell   *lc;

	foreach(lc, items)
	{
		OutboxEvent *item = lfirst(lc);

		ereport(WARNING,
				(errmsg("pipeline gave up %s " INT64_FORMAT, what, item->id),
				 errdetail("%s", item->error),
				 errhint("%s", kept_in)));
	}
}
