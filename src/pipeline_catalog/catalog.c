/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  What the files of the catalog layer share: finding the extension's
 *	  own tables, running a catalog statement as the extension, and the
 *	  parameters and columns a cursor is stored in.
 *
 * Only src/pipeline_catalog/ writes SQL against pipeline.pipeline_defs,
 * pipeline.cursors and pipeline.run_log: one file per table
 * (definitions.c, cursors.c, run_log.c), plus the questions about which
 * pipelines read and write which relations (pipeline_graph.c) and what a
 * DROP takes with it (dropped_objects.c); the schedulers' own table is
 * schedule_state.c's.  The other areas call their
 * functions, named for what they ask.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "pipeline_catalog/pipeline_catalog.h"

/*
 * pipeline_catalog_relid
 *		The oid of one of the extension's own tables, by name (as the
 *		trigger functions check that they fire on theirs).
 */
Oid
pipeline_catalog_relid(const char *name)
{
	return get_relname_relid(name, get_namespace_oid(PIPELINE_SCHEMA, false));
}

/*
 * pipeline_catalog_exec
 *		Runs a statement on the extension's catalog tables as the extension
 *		and returns SPI_processed; its rows stay in the SPI result.  'kept'
 *		when every run or batch executes it (pipeline_exec_kept), read_only
 *		when it must not see a newer snapshot than the caller's.
 */
int
pipeline_catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
					  const char *nulls, bool read_only, long limit, bool kept)
{
	PipelineUserContext ctx;
	int			n;

	pipeline_become_internal(&ctx);
	n = kept ? pipeline_exec_kept(sql, nargs, types, values, nulls, read_only, limit)
		: pipeline_exec(sql, nargs, types, values, nulls, read_only, limit);
	pipeline_restore_user(&ctx);
	return n;
}

/*
 * pipeline_catalog_position
 *		A partial position from columns col (xid) and col + 1 (seq) of row
 *		'row' of the last SPI result; invalid when the xid is NULL.
 */
RowPosition
pipeline_catalog_position(int row, int col)
{
	RowPosition p = {0};
	bool		isnull;
	Datum		xid = pipeline_result_datum(row, col, &isnull);

	if (!isnull)
	{
		p.valid = true;
		p.xid = DatumGetFullTransactionId(xid);
		p.seq = pipeline_result_int64(row, col + 1);
	}
	return p;
}

/*
 * pipeline_catalog_cursor_args
 *		Fills three parameters of a cursor statement: the consumed snapshot
 *		and the partial position (NULLs when none).
 */
void
pipeline_catalog_cursor_args(Datum consumed, const RowPosition *partial, Oid *types,
							 Datum *values, char *nulls)
{
	types[0] = PG_SNAPSHOTOID;
	types[1] = XID8OID;
	types[2] = INT8OID;
	values[0] = consumed;
	nulls[0] = nulls[1] = nulls[2] = ' ';
	if (partial->valid)
	{
		values[1] = FullTransactionIdGetDatum(partial->xid);
		values[2] = Int64GetDatum(partial->seq);
	}
	else
		nulls[1] = nulls[2] = 'n';
}
