# What a pipeline's cursor says it consumed, and the rows two queries do not
# share, for the TAP tests that check exactly once after a crash: a target
# must hold exactly the rows its cursor consumed.
package PipelineConsumed;

use strict;
use warnings;

use Exporter 'import';

our @EXPORT = qw(consumed_sql differences);

# consumed_sql(PIPELINE, SOURCE, COLUMNS): a query of COLUMNS (of alias s)
# of the rows of SOURCE that PIPELINE's cursor consumed: those whose _xid
# its snapshot sees, except the partial transaction, of which only the rows
# up to partial_seq.
sub consumed_sql
{
	my ($name, $source, $columns) = @_;
	return qq{
	SELECT $columns
	  FROM $source s, pipeline.cursors c JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id
	 WHERE d.name = '$name'
	   AND ((pg_visible_in_snapshot(s._xid, c.consumed) AND s._xid IS DISTINCT FROM c.partial_xid)
	        OR (s._xid = c.partial_xid AND s._seq <= c.partial_seq))};
}

# differences(NODE, A, B): how many rows are in one query's result and not
# in the other's, as multisets.
sub differences
{
	my ($node, $a, $b) = @_;
	return $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FROM (
	  (SELECT * FROM ($a) x EXCEPT ALL SELECT * FROM ($b) y)
	  UNION ALL
	  (SELECT * FROM ($b) y EXCEPT ALL SELECT * FROM ($a) x)) d});
}

1;
