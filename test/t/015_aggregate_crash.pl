# Exactly once for aggregate pipelines across crashes: the groups, their
# running state and each row's contribution commit with the cursor.
#
# Three writers stage events of 200 rows in short transactions that commit
# out of order (so that some events commit after newer ones: late events),
# some of them deletes, while two sessions run two aggregate pipelines back
# to back in batches of 5: 'totals' adds every staged row to its group (a
# row counted twice or lost shows in a count or a sum), 'current' keeps the
# groups of each row's latest version (source_key, sequence_by,
# delete_when), with an extreme that must be recomputed when the row
# holding it leaves.  Then:
#   1. kill -9 of a backend running them;
#   2. a power loss: every server process killed with SIGKILL at once.
# After each, each target must be exactly its query computed from scratch
# over the rows its cursor consumed; after runs to completion, over every
# staged row.
use strict;
use warnings;

use PipelineConsumed;
use PipelineLoad;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc to find the server processes'
  unless -d '/proc/self';

my $node = PostgreSQL::Test::Cluster->new('aggregate_crash');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nrestart_after_crash = on\n");
$node->start;

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE SEQUENCE clock;
	CREATE TABLE src (id int, grp int, v int, seq bigint);
	SELECT pipeline.create_pipeline('totals', 'src', 'totals', strategy => 'aggregate',
	    key => ARRAY['grp'], batch_size => 5,
	    columns => '{"n": "count(*)", "total": "sum(v)", "top": "max(v)", "ids": "count(DISTINCT id)"}');
	SELECT pipeline.create_pipeline('current', 'src', 'current', strategy => 'aggregate',
	    key => ARRAY['grp'], source_key => ARRAY['id'], sequence_by => 'seq',
	    delete_when => 'v < 0', batch_size => 5,
	    columns => '{"n": "count(*)", "total": "sum(v)", "low": "min(v)", "high": "max(v)"}');
});
# One to four events a transaction, one in ten a delete, committing out of
# the order of their events.
$node->safe_psql('postgres',
	out_of_order_writer(
		    "INSERT INTO src SELECT 1 + (random() * 199)::int, 1 + (random() * 19)::int, "
		  . "CASE WHEN random() < 0.1 THEN -1 ELSE (random() * 1000)::int END, nextval('clock') "
		  . "FROM generate_series(1, 1 + (random() * 3)::int)"));

# The queries from scratch over rows 'rows' (a query of id, grp, v, seq).
sub totals_sql
{
	my ($rows) = @_;
	return "SELECT grp, count(*), sum(v), max(v), count(DISTINCT id) FROM ($rows) r GROUP BY grp";
}

sub current_sql
{
	my ($rows) = @_;
	return "SELECT grp, count(*), sum(v), min(v), max(v) FROM "
	  . "(SELECT DISTINCT ON (id) * FROM ($rows) r ORDER BY id, seq DESC) l "
	  . "WHERE v >= 0 GROUP BY grp";
}

my $scripts = PostgreSQL::Test::Utils::tempdir;
append_to_file("$scripts/write.sql", "CALL write_rows(1000000);\n");
append_to_file("$scripts/run_$_.sql", "CALL pipeline.run('$_');\n" x 200000)
  foreach ('totals', 'current');

# start_load: three writers and a session running each pipeline back to back.
sub start_load
{
	my @h;
	push @h, start_psql($node, "$scripts/write.sql") for 1 .. 3;
	push @h, start_psql($node, "$scripts/run_$_.sql") foreach ('totals', 'current');
	return @h;
}

# wait_for_runs AFTER N: until, since run AFTER, runs of both pipelines
# merged rows in N batches or more.
sub wait_for_runs
{
	my ($after, $batches) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(DISTINCT pipeline_id) = 2 AND sum(batches) >= $batches "
		  . "FROM pipeline.run_log WHERE run_id > $after AND rows_read > 0")
	  or die 'the runs did not get under way';
}

# check_consistent WHEN: each target is its query over what its cursor consumed.
sub check_consistent
{
	my ($when) = @_;
	is( differences(
			$node, totals_sql(consumed_sql('totals', 'src', 's.id, s.grp, s.v, s.seq')),
			'SELECT grp, n, total, top, ids FROM totals'),
		'0',
		"$when: totals holds the groups of exactly the rows its cursor consumed");
	is( differences(
			$node, current_sql(consumed_sql('current', 'src', 's.id, s.grp, s.v, s.seq')),
			'SELECT grp, n, total, low, high FROM current'),
		'0',
		"$when: current holds the groups of the latest versions its cursor consumed");
}

# ---- kill -9 of a backend running the pipelines, then a power loss
crash_under_load($node, \&start_load, sub { wait_for_runs($_[0], 200) }, \&check_consistent);

# ---- runs to completion: every staged row
$node->safe_psql('postgres', "CALL pipeline.run('$_')") foreach ('totals', 'current');
is($node->safe_psql('postgres', "SELECT count(*) FROM pipeline.run_log WHERE status = 'running'"),
	'0', 'no run stays recorded as running');
is(differences($node, totals_sql('SELECT * FROM src'), 'SELECT grp, n, total, top, ids FROM totals'),
	'0', 'totals holds the groups of every staged row');
is(differences($node, current_sql('SELECT * FROM src'), 'SELECT grp, n, total, low, high FROM current'),
	'0', 'current holds the groups of every row\'s latest version');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM src'), '>', 300, 'the writers staged rows');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM (SELECT id FROM src GROUP BY id HAVING count(*) > 1) m'),
	'>', 100, 'rows changed: most have several events');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM src WHERE v < 0'), '>', 10, 'some events are deletes');

done_testing();
