/*-------------------------------------------------------------------------
 *
 * shipping.h
 *	  Taking events out of the database: HTTP POSTs through libcurl
 *	  (http_post.c); posting a list in order (ordered_posts.c); what an
 *	  endpoint is given (endpoint_settings.c); the
 *	  OpenLineage transport, its settings and what it shipped
 *	  (openlineage_transport.c); the alert routes, their settings and
 *	  deliveries (alert_routes.c).  The shipper worker (workers/shipper.c)
 *	  drives them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_SHIPPING_H
#define PIPELINE_SHIPPING_H

#include "datatype/timestamp.h"
#include "fmgr.h"

#include "model.h"

/* What one POST came to. */
typedef enum HttpOutcome
{
	HTTP_DELIVERED,				/* 2xx */
	HTTP_REFUSED,				/* the receiver will never take this body:
								 * 400, 413, 422 */
	HTTP_RETRY					/* no answer, a timeout, or any other status */
} HttpOutcome;

typedef struct HttpResult
{
	HttpOutcome outcome;
	long		status;			/* 0 when there was no answer */
	char		error[512];		/* what went wrong, for the delivery state */
} HttpResult;

/* http_post.c */
extern void pipeline_http_post(const char *url, const char *bearer, const char *body,
							   int timeout_ms, HttpResult *result);
extern void pipeline_http_close(void);

/* endpoint_settings.c */
extern Datum pipeline_endpoint_argument(FunctionCallInfo fcinfo, int n, const char *name,
										const char *what);
extern int	pipeline_endpoint_interval_ms(FunctionCallInfo fcinfo, int n, const char *name,
										  const char *what);
extern void pipeline_endpoint_check_backoff(int retry_base_ms, int retry_max_ms, const char *what);
extern char *pipeline_endpoint_url(FunctionCallInfo fcinfo, int n, const char *what);

/* ordered_posts.c */
extern HttpResult *pipeline_post_in_order(const char *url, const char *bearer, int timeout_ms,
										  List *items, TimestampTz deadline, List **taken,
										  List **rejected);
extern Datum pipeline_posted_ids(List *items);
extern Datum pipeline_posted_errors(List *items);
extern void pipeline_log_given_up(List *items, const char *what, const char *kept_in);

/* The OpenLineage transport of this database, as stored. */
typedef struct OpenLineageTransport
{
	char	   *url;			/* url/endpoint, joined */
	char	   *api_key;		/* NULL: no Authorization header */
	int			timeout_ms;
	int			batch_size;
	int			retry_base_ms;
	int			retry_max_ms;
	bool		enabled;
	int			failures;		/* in a row */
	TimestampTz next_attempt_at;	/* 0: now */
} OpenLineageTransport;

/* An event taken from the outbox to ship, or an alert to deliver. */
typedef struct OutboxEvent
{
	int64		id;				/* of the event, or of the delivery */
	char	   *body;			/* its JSON; NULL when it could not be built */
	char	   *error;			/* why it could not be built, or was refused */
} OutboxEvent;

/* openlineage_transport.c */
extern bool pipeline_read_openlineage_transport(OpenLineageTransport *transport);
extern List *pipeline_take_outbox_events(int max_events, MemoryContext keep, char **transient);
extern void pipeline_record_shipping(List *shipped, List *rejected, const HttpResult *failure,
									 const OpenLineageTransport *transport);
extern bool pipeline_shipping_wanted(void);

/* An alert route with deliveries due, as one pass takes it. */
typedef struct AlertRoute
{
	int64		id;
	char	   *url;
	int			timeout_ms;
	int			retry_base_ms;
	int			retry_max_ms;
	int			failures;		/* in a row */
	List	   *deliveries;		/* OutboxEvent *, in order */
} AlertRoute;

/* alert_routes.c */
extern List *pipeline_take_due_deliveries(int max_per_route, MemoryContext keep);
extern void pipeline_record_deliveries(const AlertRoute *route, List *delivered, List *rejected,
									   const HttpResult *failure);
extern bool pipeline_alert_routes_wanted(void);

#endif							/* PIPELINE_SHIPPING_H */
