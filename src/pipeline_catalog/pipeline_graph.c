/*-------------------------------------------------------------------------
 *
 * pipeline_graph.c
 *	  Which pipelines read and write which relations, as the definitions
 *	  in pipeline.pipeline_defs say: the targets, their change logs and
 *	  those who publish to them or read them, a staging table's readers,
 *	  and the paths between relations (cycles, lineage).
 *
 * Statements that must see what this transaction just wrote (a log made a
 * moment ago) are never read-only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/*
 * by_oid
 *		Runs a statement of one oid parameter as the extension, not
 *		read-only; the number of rows it returned or changed.
 */
static int
by_oid(const char *sql, Oid arg, bool kept)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(arg);

	return pipeline_catalog_exec(sql, 1, &type, &value, NULL, false, 0, kept);
}

/*
 * result_oid
 *		Column col of row row of the last SPI result, as an oid.
 */
static Oid
result_oid(int row, int col)
{
	bool		isnull;

	return DatumGetObjectId(pipeline_result_datum(row, col, &isnull));
}

/*
 * result_oids
 *		Column 0 of the n rows of the last SPI result, as a List of oids.
 */
static List *
result_oids(int n)
{
	List	   *oids = NIL;

	for (int i = 0; i < n; i++)
		oids = lappend_oid(oids, result_oid(i, 0));
	return oids;
}

/*
 * pipeline_is_target
 *		Whether a pipeline writes the relation.
 */
bool
pipeline_is_target(Oid relid)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);

	return pipeline_catalog_exec("SELECT 1 FROM pipeline.pipeline_defs WHERE target = $1",
								 1, &type, &value, NULL, true, 1, false) > 0;
}

/*
 * pipeline_is_target_or_log
 *		Whether the relation is a pipeline's target, or a change log (of a
 *		target or a captured table).
 */
bool
pipeline_is_target_or_log(Oid relid)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);

	return pipeline_catalog_exec("SELECT 1 FROM pipeline.pipeline_defs "
								 "WHERE target = $1 OR change_log = $1 "
								 "UNION ALL SELECT 1 FROM pipeline.captures WHERE change_log = $1",
								 1, &type, &value, NULL, false, 1, false) > 0;
}

/*
 * pipeline_is_change_log
 *		Whether the relation is a change log (of a target or a captured
 *		table).
 */
bool
pipeline_is_change_log(Oid relid)
{
	return by_oid("SELECT 1 FROM pipeline.pipeline_defs WHERE change_log = $1 "
				  "UNION ALL SELECT 1 FROM pipeline.captures WHERE change_log = $1",
				  relid, false) > 0;
}

/*
 * pipeline_target_published_log
 *		The change log the pipelines writing 'target' publish to, or
 *		InvalidOid.
 */
Oid
pipeline_target_published_log(Oid target)
{
	if (by_oid("SELECT change_log::oid FROM pipeline.pipeline_defs "
			   "WHERE target = $1 AND change_log IS NOT NULL LIMIT 1", target, false) != 1)
		return InvalidOid;
	return result_oid(0, 0);
}

/*
 * pipeline_target_log
 *		For a relation that is a pipeline's target (or its change log): its
 *		target in *target and its log, InvalidOid without one; false when
 *		no pipeline writes it.
 */
bool
pipeline_target_log(Oid relation, Oid *target, Oid *log)
{
	if (by_oid("SELECT target::oid, coalesce(change_log::oid, 0) "
			   "FROM pipeline.pipeline_defs WHERE target = $1 OR change_log = $1 "
			   "ORDER BY change_log IS NULL LIMIT 1", relation, false) == 0)
		return false;
	*target = result_oid(0, 0);
	*log = result_oid(0, 1);
	return true;
}

/*
 * pipeline_lock_writers
 *		Locks the definitions of the pipelines writing 'target' FOR UPDATE,
 *		in id order: waits for their running batches and holds their next
 *		ones until commit.
 */
void
pipeline_lock_writers(Oid target)
{
	by_oid("SELECT id FROM pipeline.pipeline_defs WHERE target = $1 ORDER BY id FOR UPDATE",
		   target, false);
}

/*
 * pipeline_publish_target
 *		Makes every pipeline writing 'target' publish to 'log' (moving their
 *		versions on); returns the distinct owners of those pipelines, as a
 *		List of oids.
 */
List *
pipeline_publish_target(Oid target, Oid log)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2] = {ObjectIdGetDatum(target), ObjectIdGetDatum(log)};

	pipeline_catalog_exec("UPDATE pipeline.pipeline_defs SET change_log = $2, "
						  "version = version + 1 WHERE target = $1",
						  2, types, values, NULL, false, 0, false);
	return result_oids(by_oid("SELECT DISTINCT owner::oid FROM pipeline.pipeline_defs "
							  "WHERE target = $1", target, false));
}

/*
 * pipeline_mirrored_table
 *		The table whose change log 'log' is (a target or a captured table),
 *		or InvalidOid when 'log' is no change log.  Every run of a pipeline
 *		reading a log asks.
 */
Oid
pipeline_mirrored_table(Oid log)
{
	if (by_oid("SELECT target::oid FROM pipeline.pipeline_defs WHERE change_log = $1 "
			   "UNION ALL SELECT relation::oid FROM pipeline.captures WHERE change_log = $1 "
			   "LIMIT 1", log, true) != 1)
		return InvalidOid;
	return result_oid(0, 0);
}

/*
 * pipeline_logged_relation
 *		The relation a change log records (another pipeline's target or a
 *		captured table), or the relation itself.
 */
Oid
pipeline_logged_relation(Oid relid)
{
	by_oid("SELECT coalesce((SELECT u.target::oid FROM pipeline.pipeline_defs u "
		   "WHERE u.change_log = $1 LIMIT 1), "
		   "(SELECT c.relation::oid FROM pipeline.captures c WHERE c.change_log = $1), $1)",
		   relid, false);
	return result_oid(0, 0);
}

/*
 * pipeline_unread_change_logs
 *		The change logs pipelines publish to that no pipeline reads, as a
 *		List of oids.
 */
List *
pipeline_unread_change_logs(void)
{
	return result_oids(pipeline_catalog_exec("SELECT DISTINCT w.change_log::oid "
											 "FROM pipeline.pipeline_defs w "
											 "WHERE w.change_log IS NOT NULL AND NOT EXISTS "
											 "(SELECT 1 FROM pipeline.pipeline_defs r "
											 "WHERE r.source = w.change_log) AND NOT EXISTS "
											 "(SELECT 1 FROM pipeline.pipeline_joins j "
											 "WHERE j.change_log = w.change_log)",
											 0, NULL, NULL, NULL, false, 0, false));
}

/*
 * pipeline_change_log_targets
 *		The targets of the pipelines publishing to 'log', as a List of oids.
 */
List *
pipeline_change_log_targets(Oid log)
{
	return result_oids(by_oid("SELECT DISTINCT target::oid FROM pipeline.pipeline_defs "
							  "WHERE change_log = $1", log, false));
}

/*
 * pipeline_has_readers
 *		Whether a pipeline reads 'source'.
 */
bool
pipeline_has_readers(Oid source)
{
	return by_oid("SELECT 1 FROM pipeline.pipeline_defs WHERE source = $1 UNION ALL "
				  "SELECT 1 FROM pipeline.pipeline_joins WHERE change_log = $1", source, false) > 0;
}

/*
 * pipeline_other_reader
 *		The name of a pipeline other than 'id' whose staging table is
 *		'source', or NULL when there is none.
 */
char *
pipeline_other_reader(Oid source, int64 id)
{
	Oid			types[2] = {OIDOID, INT8OID};
	Datum		values[2] = {ObjectIdGetDatum(source), Int64GetDatum(id)};

	if (pipeline_catalog_exec("SELECT name FROM pipeline.pipeline_defs WHERE source = $1::regclass AND id <> $2",
							  2, types, values, NULL, true, 1, false) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_has_writers
 *		Whether a pipeline publishes to change log 'log'.
 */
bool
pipeline_has_writers(Oid log)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(log);

	return pipeline_catalog_exec("SELECT 1 FROM pipeline.pipeline_defs WHERE change_log = $1",
								 1, &type, &value, NULL, false, 1, false) > 0;
}

/*
 * pipeline_unpublish_change_log
 *		Makes the pipelines publishing to 'log' stop (moving their versions
 *		on), after locking their definitions FOR UPDATE.
 */
void
pipeline_unpublish_change_log(Oid log)
{
	by_oid("SELECT 1 FROM pipeline.pipeline_defs WHERE change_log = $1 FOR UPDATE", log, false);
	by_oid("UPDATE pipeline.pipeline_defs SET change_log = NULL, version = version + 1 "
		   "WHERE change_log = $1", log, false);
}

/*
 * pipeline_readers_left_without_writer
 *		The pipelines reading the change log of def's target that no other
 *		pipeline than 'def' writes, as a list for role 'role' (its own
 *		pipelines named first, another role's counted, not named); NULL
 *		when there are none.
 */
char *
pipeline_readers_left_without_writer(const PipelineDef *def, Oid role)
{
	Oid			types[3] = {OIDOID, OIDOID, INT8OID};
	Datum		values[3] = {ObjectIdGetDatum(def->change_log), ObjectIdGetDatum(role),
	Int64GetDatum(def->id)};

	if (!OidIsValid(def->change_log) ||
		pipeline_catalog_exec("SELECT string_agg(CASE WHEN pg_has_role($2, r.owner, 'USAGE') "
							  "THEN quote_ident(r.name) ELSE 'a pipeline of another role' END, "
							  "', ' ORDER BY pg_has_role($2, r.owner, 'USAGE') DESC, r.name) "
							  "FROM pipeline.pipeline_defs r WHERE (r.source = $1 OR r.id IN "
							  "(SELECT j.pipeline_id FROM pipeline.pipeline_joins j WHERE j.change_log = $1)) "
							  "AND NOT EXISTS (SELECT 1 FROM pipeline.pipeline_defs w "
							  "WHERE w.change_log = $1 AND w.id <> $3) HAVING count(*) > 0",
							  3, types, values, NULL, false, 0, false) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_reader_names
 *		The names of the pipelines reading 'log', quoted, in order,
 *		separated by commas; NULL when none does.
 */
char *
pipeline_reader_names(Oid log)
{
	by_oid("SELECT string_agg(quote_ident(r.name), ', ' ORDER BY r.name) "
		   "FROM pipeline.pipeline_defs r WHERE r.source = $1 OR r.id IN "
		   "(SELECT j.pipeline_id FROM pipeline.pipeline_joins j WHERE j.change_log = $1)",
		   log, false);
	return pipeline_result_text(0, 0);
}

/*
 * pipeline_readers_of
 *		The pipelines reading 'relid' or a table it is a partition of (the
 *		nearest such ancestor, in *source), named for role 'role' in
 *		*names (its own first, another role's not named); false when none
 *		does.  Read-only.
 */
bool
pipeline_readers_of(Oid relid, Oid role, Oid *source, char **names)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), ObjectIdGetDatum(role)};

	if (pipeline_catalog_exec("SELECT source, string_agg(name, ', ' ORDER BY own DESC, name) FROM ("
							  "  SELECT DISTINCT d.source::oid AS source, a.depth, "
							  "         pg_has_role($2, d.owner, 'USAGE') AS own, "
							  "         CASE WHEN pg_has_role($2, d.owner, 'USAGE') THEN format('\"%s\"', d.name) "
							  "              ELSE 'a pipeline of another role' END AS name "
							  "    FROM pipeline.pipeline_defs d "
							  "    JOIN (SELECT $1::regclass, 0::bigint UNION ALL "
							  "          SELECT * FROM pg_partition_ancestors($1) WITH ORDINALITY) a(relid, depth) "
							  "      ON a.relid = d.source::oid) r "
							  "GROUP BY source, depth ORDER BY depth LIMIT 1",
							  2, types, values, NULL, true, 1, false) != 1)
		return false;
	*source = result_oid(0, 0);
	*names = pipeline_result_text(0, 1);
	return true;
}

/*
 * pipeline_cycle_path
 *		When the relation 'target' already feeds 'source' (a relation, or a
 *		change log: its target or captured table counts) through
 *		pipelines, the path from one to the other as text, the pipelines
 *		named for role 'role' (another role's not named); else NULL.
 */
char *
pipeline_cycle_path(Oid source, Oid target, Oid role)
{
	Oid			types[3] = {OIDOID, OIDOID, OIDOID};
	Datum		values[3] = {ObjectIdGetDatum(source), ObjectIdGetDatum(target),
	ObjectIdGetDatum(role)};

	if (pipeline_catalog_exec("WITH RECURSIVE edge AS ("
							  "  SELECT coalesce((SELECT u.target FROM pipeline.pipeline_defs u "
							  "                    WHERE u.change_log = d.source LIMIT 1), "
							  "                   (SELECT c.relation FROM pipeline.captures c "
							  "                    WHERE c.change_log = d.source), d.source)::oid AS src, "
							  "         d.target::oid AS dst, "
							  "         CASE WHEN pg_has_role($3, d.owner, 'USAGE') THEN 'pipeline ' || quote_ident(d.name) "
							  "              ELSE 'a pipeline of another role' END AS name "
							  "    FROM pipeline.pipeline_defs d "
							  "  UNION ALL SELECT coalesce((SELECT u.target FROM pipeline.pipeline_defs u "
							  "                    WHERE u.change_log = j.change_log LIMIT 1), j.dimension)::oid, "
							  "         d.target::oid, "
							  "         CASE WHEN pg_has_role($3, d.owner, 'USAGE') THEN 'pipeline ' || quote_ident(d.name) "
							  "              ELSE 'a pipeline of another role' END "
							  "    FROM pipeline.pipeline_joins j JOIN pipeline.pipeline_defs d ON d.id = j.pipeline_id), "
							  "start AS (SELECT coalesce((SELECT u.target FROM pipeline.pipeline_defs u "
							  "                           WHERE u.change_log = $1 LIMIT 1), "
							  "                          (SELECT c.relation FROM pipeline.captures c "
							  "                           WHERE c.change_log = $1), $1)::oid AS rel), "
							  "reach (rel, path, seen) AS ("
							  "  SELECT $2::oid, '', ARRAY[$2::oid] "
							  "  UNION ALL SELECT e.dst, r.path || ' -> ' || e.dst::regclass::text "
							  "                      || ' (' || e.name || ')', r.seen || e.dst "
							  "    FROM reach r JOIN edge e ON e.src = r.rel WHERE e.dst <> ALL (r.seen)) "
							  "SELECT r.path FROM reach r, start s WHERE r.rel = s.rel LIMIT 1",
							  3, types, values, NULL, true, 1, false) == 0)
		return NULL;
	return pipeline_result_text(0, 0);
}
