/*-------------------------------------------------------------------------
 *
 * openlineage.c
 *	  Settings of the OpenLineage events.
 *
 * The events themselves are SQL over the catalog (pipeline.openlineage_event
 * in pipeline--0.1.sql), recorded in pipeline.openlineage_outbox by triggers
 * on the run log; these settings are what that SQL reads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "pipeline.h"

static char *openlineage_namespace = NULL;
static bool openlineage_outbox = true;
static int	openlineage_retention = 7 * 24 * 3600;

/*
 * pipeline_openlineage_init
 *		Defines the OpenLineage settings.
 */
void
pipeline_openlineage_init(void)
{
	DefineCustomStringVariable("pipeline.openlineage_namespace",
							   "OpenLineage namespace of this server's datasets and jobs.",
							   "As the specification names PostgreSQL datasets, postgres://host:port; "
							   "empty: postgres://localhost:<port>.",
							   &openlineage_namespace, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pipeline.openlineage_outbox",
							 "Whether runs record their OpenLineage events in pipeline.openlineage_outbox.",
							 NULL, &openlineage_outbox, true, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.openlineage_retention",
							"How long OpenLineage events stay in the outbox, shipped or not.",
							"-1 keeps everything.",
							&openlineage_retention, 7 * 24 * 3600, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}
