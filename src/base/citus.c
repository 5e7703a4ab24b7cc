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
 * coordinator's snapshot could count a transaction as consumed while its
 * rows on a worker are not visible yet.  So a distributed staging table is
 * never followed by a cursor: a hash-distributed one is merged shard by
 * shard, each shard's rows claimed and merged in one transaction of the
 * worker holding them (sharded pipelines); a reference table, or one
 * distributed by range or append, is refused.  A target is written through
 * Citus's routing (batch_sql.c and the strategies keep their statements to
 * forms it can route), or shard by shard by a sharded pipeline.
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
 * citus_fact
 *		The text of the first column of 'sql' (one oid parameter) read from
 *		Citus's catalog as the extension, or NULL when Citus is not created
 *		in this database or the query finds no row.
 */
static char *
citus_fact(const char *sql, Oid relid)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);
	PipelineUserContext ctx;
	char	   *fact = NULL;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return NULL;
	pipeline_become_internal(&ctx);
	if (pipeline_exec(sql, 1, &type, &value, NULL, true, 1) == 1)
		fact = pipeline_result_text(0, 0);
	pipeline_restore_user(&ctx);
	return fact;
}

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
	char	   *kind = citus_fact("SELECT CASE WHEN partmethod <> 'n' THEN 'd' WHEN repmodel = 't' THEN 'r' "
								  "ELSE 'l' END FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
								  relid);

	if (kind == NULL)
		return CITUS_NONE;
	switch (kind[0])
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
 * pipeline_citus_distribution_column
 *		The distribution column of a hash-distributed table, NULL for any
 *		other relation.
 */
char *
pipeline_citus_distribution_column(Oid relid)
{
	return citus_fact("SELECT pg_catalog.column_to_column_name(logicalrelid, partkey) "
					  "FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1 AND partmethod = 'h'",
					  relid);
}

/*
 * pipeline_citus_colocated
 *		Whether two hash-distributed tables are co-located: their shards
 *		cover the same hash ranges and each pair lives on the same node.
 */
bool
pipeline_citus_colocated(Oid a, Oid b)
{
	char	   *group_a = citus_fact("SELECT colocationid FROM pg_catalog.pg_dist_partition "
									 "WHERE logicalrelid = $1 AND partmethod = 'h'", a);
	char	   *group_b = citus_fact("SELECT colocationid FROM pg_catalog.pg_dist_partition "
									 "WHERE logicalrelid = $1 AND partmethod = 'h'", b);

	return group_a && group_b && strcmp(group_a, group_b) == 0;
}

/*
 * pipeline_refuse_citus_source
 *		Errors for a reference table, or a table Citus distributes by range
 *		or append, as a staging table.  A hash-distributed one is merged
 *		shard by shard (definition/sharded_pipelines.c).
 */
void
pipeline_refuse_citus_source(Oid source)
{
	CitusKind	kind = pipeline_citus_kind(source);

	if (kind == CITUS_NONE || (kind == CITUS_DISTRIBUTED && pipeline_citus_distribution_column(source)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("source %s is a Citus %s table", pipeline_qualified_name(source),
					kind == CITUS_DISTRIBUTED ? "range- or append-distributed" : "reference"),
			 errdetail("A pipeline reads a plain staging table, or a hash-distributed one shard by shard where its shards live."),
			 errhint("Stage into a plain table, or a table distributed by hash (create_distributed_table).")));
}

/*
 * pipeline_citus_replicated
 *		Whether a distributed table keeps more than one placement of a
 *		shard (a replication factor above 1).
 */
bool
pipeline_citus_replicated(Oid relid)
{
	char	   *copies = citus_fact("SELECT max(n) FROM (SELECT count(*) AS n FROM pg_catalog.pg_dist_placement p "
									"JOIN pg_catalog.pg_dist_shard s USING (shardid) "
									"WHERE s.logicalrelid = $1 GROUP BY shardid) c", relid);

	return copies != NULL && strcmp(copies, "1") != 0;
}

/*
 * pipeline_citus_reference_shard
 *		The shard of a Citus reference table, a plain table of the same
 *		name and shard on every node that holds a copy: its relation here,
 *		or InvalidOid when this node holds none (or relid is no reference
 *		table).
 */
Oid
pipeline_citus_reference_shard(Oid relid)
{
	char	   *shard = citus_fact("SELECT pg_catalog.to_regclass(pg_catalog.shard_name(d.logicalrelid, d.shardid, false))::oid "
								   "FROM pg_catalog.pg_dist_shard d JOIN pg_catalog.pg_dist_partition p USING (logicalrelid) "
								   "WHERE d.logicalrelid = $1 AND p.partmethod = 'n' AND p.repmodel = 't'", relid);

	return shard ? (Oid) strtoul(shard, NULL, 10) : InvalidOid;
}
