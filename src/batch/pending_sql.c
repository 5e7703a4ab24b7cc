/*-------------------------------------------------------------------------
 *
 * pending_sql.c
 *	  Which staged rows a statement of a pipeline reads: the SQL of its
 *	  pending rows, by kind of source and shape, and of the raw rows it
 *	  quarantines.
 *
 * Pending rows are read through the (_xid, _seq) index, never by scanning
 * consumed rows: the rows of transactions the cursor saw in progress
 * (COMMITTED), and the rows of transactions it had not seen (CURSOR_XMAX
 * and up) that the run's SNAPSHOT sees, between the batch's bounds -- the
 * batch statement's form of the cursor rule (cursor_rule.c).
 *
 * A replay reads instead the rows that lie between two cursors, from the
 * staging table and from the archive batches overlapping the bounds, in
 * one statement, so that one snapshot sees each row in exactly one of them
 * (an archive pass moves rows from one to the other in one transaction).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "model.h"
#include "base/base.h"
#include "batch/batch.h"
#include "cursor/cursor.h"

/* The placeholder of batch parameter BATCH_PARAM_<name>. */
#define P(name) pipeline_batch_param(BATCH_PARAM_##name)

/*
 * not_excluded
 *		Rows this batch has not quarantined already, matched on (_xid, _seq)
 *		exactly.
 */
static char *
not_excluded(void)
{
	return psprintf("(s._xid, s._seq) NOT IN (SELECT e.x, e.q FROM unnest(%s::xid8[], %s::bigint[]) AS e(x, q))",
					P(EXCLUDED_XIDS), P(EXCLUDED_SEQS));
}

/*
 * in_bounds
 *		Rows after the batch's lower bound and up to its upper bound.
 */
static char *
in_bounds(void)
{
	return psprintf("(s._xid, s._seq) > (%s, %s) AND (s._xid, s._seq) <= (%s, %s)",
					P(LO_XID), P(LO_SEQ), P(HI_XID), P(HI_SEQ));
}

/*
 * replay_relation
 *		"(...)": the source's rows still staged and those of its archive
 *		batches that may hold rows between _xid 'lo' and 'hi' (SQL
 *		expressions), as rows of the source.
 */
static char *
replay_relation(const PipelineDef *def, const char *lo, const char *hi)
{
	char	   *src = pipeline_qualified_name(def->source);

	return psprintf("(SELECT * FROM %s UNION ALL SELECT a.* FROM pipeline.archive_batches b "
					"LEFT JOIN pipeline.archive_dictionaries d ON d.id = b.dictionary_id "
					"CROSS JOIN LATERAL pipeline.archive_unpack(b, d.dictionary, NULL::%s) a "
					"WHERE b.source = '%u'::oid::regclass AND b.last_xid >= %s AND b.first_xid <= %s)",
					src, src, def->source, lo, hi);
}

/*
 * fixture_relation
 *		The rows of the test under way (fixture_rows.c) as rows of the
 *		source: _xid 0, _seq the row's place in the fixture (from 1), the
 *		columns a row leaves out at their defaults.
 */
static char *
fixture_relation(const PipelineDef *def)
{
	return psprintf("SELECT '0'::xid8 AS _xid, f.n AS _seq, %s FROM " PIPELINE_FIXTURE_ROWS
					" CROSS JOIN LATERAL %s r",
					pipeline_quote_list(pipeline_relation_columns(def->source), "r"),
					pipeline_fixture_row_sql(def->source));
}

/*
 * pipeline_pending_sql
 *		A query returning the pending rows: "SELECT <select_list> FROM (...) s",
 *		where s has the source's columns plus _xid and _seq.  By 'shape':
 *		PENDING_RANGE keeps the rows between the bounds less those already
 *		quarantined; PENDING_ORDERED does the same reading
 *		the two index ranges separately (UNION ALL), so that rows come out in
 *		(_xid, _seq) order without a sort; PENDING_FIRST reads the first row
 *		of each of the two ranges, in index order, and returns at most one
 *		row (a plan that holds for any bounds, so it can be generic: whether
 *		anything is pending); PENDING_WHOLE takes every pending
 *		row (a batch that is the whole of its phase, on its first attempt),
 *		sparing each row the bound and exclusion tests.  A replay's rows
 *		come in one shape.  A requeue reads the quarantined rows but those
 *		its own run quarantined anew: they are not requeued again.
 */
char *
pipeline_pending_sql(const PipelineDef *def, BatchSource from,
					 const char *select_list, PendingShape shape)
{
	char	   *src = pipeline_qualified_name(def->source);
	RunPendingSql run = {P(COMMITTED), P(CURSOR_XMAX), P(SNAPSHOT)};
	char	   *bounds = in_bounds();
	char	   *pending = pipeline_rule_run_pending("s", &run);

	/* a change log's reader skips the rows other readers were seeded with */
	if (def->reads_change_log && from == BATCH_FROM_STAGING)
	{
		char	   *own = psprintf("(s._for IS NULL OR s._for = %s)", P(PIPELINE_ID));

		bounds = psprintf("%s AND %s", bounds, own);
		pending = psprintf("%s AND %s", pending, own);
	}

	if (from == BATCH_FROM_REPLAY)
	{
		CursorSql	before = {P(BEFORE), P(BEFORE_XID), P(BEFORE_SEQ)};
		CursorSql	after = {P(SNAPSHOT), P(AFTER_XID), P(AFTER_SEQ)};

		return psprintf("SELECT %s FROM %s s WHERE %s AND %s AND %s",
						select_list, replay_relation(def, P(LO_XID), P(HI_XID)), bounds,
						pipeline_rule_between("s", &before, &after), not_excluded());
	}
	if (from == BATCH_FROM_DIMENSION)
	{
		/*
		 * Only the batch statement reads the rows themselves (SELECT s.*);
		 * bounds and exclusions apply before a row is decoded.
		 */
		bool		filtered = shape != PENDING_WHOLE && shape != PENDING_FIRST;

		return psprintf("SELECT %s FROM %s s", select_list,
						pipeline_dimension_rows_sql(def, pipeline_qualified_name(def->row_state),
													pipeline_row_keys(def),
													strcmp(select_list, "s.*") == 0,
													shape == PENDING_FIRST,
													filtered ? psprintf("%s AND %s", bounds, not_excluded()) : NULL));
	}
	if (from == BATCH_FROM_QUARANTINE)
		return psprintf("SELECT %s FROM ("
						"SELECT coalesce(q.source_xid, '0'::xid8) AS _xid, q.id AS _seq, %s "
						"FROM pipeline.quarantine_log q "
						"CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, q.raw_row) r "
						"WHERE q.pipeline_id = %s AND q.requeued_at IS NULL AND q.run_id <> %s "
						"AND (%s IS NULL OR q.id = ANY (%s))) s%s",
						select_list, pipeline_quote_list(pipeline_relation_columns(def->source), "r"), src,
						P(PIPELINE_ID), P(RUN_ID), P(REQUEUE_IDS), P(REQUEUE_IDS),
						shape == PENDING_WHOLE ? "" :
						psprintf(" WHERE %s AND %s", bounds, not_excluded()));
	if (from == BATCH_FROM_FIXTURE)
		return psprintf("SELECT %s FROM (%s) s%s", select_list, fixture_relation(def),
						shape == PENDING_WHOLE ? "" :
						psprintf(" WHERE %s AND %s", bounds, not_excluded()));
	if (shape == PENDING_ORDERED)
		return psprintf("SELECT %s FROM ("
						"SELECT s._xid, s._seq FROM %s s WHERE %s AND %s "
						"UNION ALL "
						"SELECT s._xid, s._seq FROM %s s WHERE %s AND %s) s "
						"WHERE %s",
						select_list, src, pipeline_rule_run_committed("s", &run), bounds,
						src, pipeline_rule_run_new("s", &run), bounds, not_excluded());
	if (shape == PENDING_FIRST)
		return psprintf("(SELECT %s FROM %s s WHERE %s AND %s AND %s ORDER BY s._xid, s._seq LIMIT 1) "
						"UNION ALL "
						"(SELECT %s FROM %s s WHERE %s AND %s AND %s ORDER BY s._xid, s._seq LIMIT 1) "
						"LIMIT 1",
						select_list, src, pipeline_rule_run_committed("s", &run), bounds, not_excluded(),
						select_list, src, pipeline_rule_run_new("s", &run), bounds, not_excluded());
	if (shape == PENDING_WHOLE)
		return psprintf("SELECT %s FROM %s s WHERE %s", select_list, src, pending);
	return psprintf("SELECT %s FROM %s s WHERE %s AND %s AND %s",
					select_list, src, bounds, pending, not_excluded());
}

/*
 * pipeline_quarantine_sql
 *		INSERT of rejected rows into the quarantine with their raw row:
 *		$1 pipeline id, $2 run id, $3 xid8[] and $4 bigint[] the rows'
 *		(_xid, _seq), $5 text[] reasons, $6 text[] SQLSTATEs.
 */
char *
pipeline_quarantine_sql(const PipelineDef *def, BatchSource from)
{
	const char *insert = "INSERT INTO pipeline.quarantine_log "
	"(pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq) ";
	const char *rejected = "unnest($3::xid8[], $4::bigint[], $5::text[], $6::text[]) "
	"AS r(xid, seq, reason, sqlstate)";

	if (from == BATCH_FROM_REPLAY)
		return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, to_jsonb(x) - '_xid' - '_seq', "
						"x._xid, x._seq FROM %s CROSS JOIN LATERAL (SELECT * FROM %s s "
						"WHERE s._xid = r.xid AND s._seq = r.seq) x",
						insert, rejected, replay_relation(def, "r.xid", "r.xid"));
	if (from == BATCH_FROM_DIMENSION)
		return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, x." PIPELINE_ROW_FACT " - '_xid' - '_seq', "
						"r.xid, r.seq FROM %s JOIN %s x ON x." PIPELINE_ROW_FACT " IS NOT NULL "
						"AND (x." PIPELINE_ROW_FACT " ->> '_xid')::xid8 = r.xid "
						"AND (x." PIPELINE_ROW_FACT " ->> '_seq')::bigint = r.seq",
						insert, rejected, pipeline_qualified_name(def->row_state));
	if (from == BATCH_FROM_FIXTURE)
		return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, f.value, NULL, r.seq "
						"FROM %s JOIN " PIPELINE_FIXTURE_ROWS " ON f.n = r.seq",
						insert, rejected);
	if (from == BATCH_FROM_QUARANTINE)
		return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, q.raw_row, q.source_xid, "
						"q.source_seq FROM %s JOIN pipeline.quarantine_log q ON q.id = r.seq",
						insert, rejected);
	return psprintf("%s SELECT $1, $2, r.reason, r.sqlstate, to_jsonb(s) - '_xid' - '_seq', "
					"s._xid, s._seq FROM %s JOIN %s s ON s._xid = r.xid AND s._seq = r.seq",
					insert, rejected, pipeline_qualified_name(def->source));
}
