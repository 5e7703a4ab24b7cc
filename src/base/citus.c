/*-------------------------------------------------------------------------
 *
 * citus.c
 *	  Whether a relation is a Citus table, and of which kind, read from
 *	  Citus's own catalog when Citus is installed; and the refusal of a
 *	  Citus table as a pipeline's staging table.
 *
 * The library does not link Citus: it asks pg_dist_partition, present
 * once the citus extension is created, through SPI.  A distributed or
 * reference table is written by distributed transactions, committed on
 * the coordinator before their prepared transactions commit on the
 * workers; Citus has no distributed snapshot.  A cursor made of the
 * coordinator's snapshot could then count a transaction as consumed while
 * its rows on a worker are not visible yet: they would be passed over for
 * ever.  So such a table is refused as a source rather than half followed.
 * As a target it is written through Citus's routing (batch_sql.c and the
 * strategies keep their statements to forms it can route).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"

/*
 * pipeline_citus_kind
 *		What Citus makes of a relation: CITUS_NONE (a plain table, a
 *		coordinator table in Citus's metadata, or Citus not created in this
 *		database), CITUS_DISTRIBUTED (sharded) or CITUS_REFERENCE (a copy on
 *		every node).  The caller is connected to SPI.
 */
CitusKind
pipeline_citus_kind(Oid relid)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);
	PipelineUserContext ctx;
	char		kind = 'x';

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return CITUS_NONE;
	pipeline_become_internal(&ctx);
	if (pipeline_exec("SELECT CASE WHEN partmethod <> 'n' THEN 'd' WHEN repmodel = 't' THEN 'r' ELSE 'l' END "
					  "FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
					  1, &type, &value, NULL, true, 1) == 1)
		kind = pipeline_result_text(0, 0)[0];
	pipeline_restore_user(&ctx);
	switch (kind)
	{
		case 'd':
			return CITUS_DISTRIBUTED;
		case 'r':
			return CITUS_REFERENCE;
		default:
			return CITUS_NONE;
	}
}

/*
 * pipeline_citus_routes
 *		Whether Citus routes writes to a relation to its shards or copies
 *		(a distributed or reference table), so that a statement writing it
 *		must be one Citus can route.
 */
bool
pipeline_citus_routes(Oid relid)
{
	return pipeline_citus_kind(relid) != CITUS_NONE;
}

/*
 * pipeline_refuse_citus_source
 *		Errors for a distributed or reference table as a staging table.
 */
void
pipeline_refuse_citus_source(Oid source)
{
	CitusKind	kind = pipeline_citus_kind(source);

	if (kind == CITUS_NONE)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("source %s is a Citus %s table", pipeline_qualified_name(source),
					kind == CITUS_DISTRIBUTED ? "distributed" : "reference"),
			 errdetail("Citus has no distributed snapshot: a distributed transaction commits on the coordinator before its rows are visible on the workers, so a pipeline's cursor could pass over rows for ever."),
			 errhint("Stage into a plain table on the coordinator; the target may be distributed.")));
}
