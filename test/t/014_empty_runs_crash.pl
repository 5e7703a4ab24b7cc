# Exactly once when most runs find nothing: runs back to back, racing
# writers that commit out of order, are cut by a crash.
#
# A run that finds nothing pending is recorded whole, and moves its cursor,
# in one transaction whose commit does not wait for its WAL to reach the
# disk; a run that finds rows plans its phases in that same transaction,
# before it records itself as running.  Three writers stage rows in short
# transactions that commit out of order while two sessions run a merge and
# an append pipeline back to back, so that most runs find nothing and some
# find a few rows.  Then:
#   1. kill -9 of a backend running them (the postmaster restarts all);
#   2. a power loss: every server process killed with SIGKILL at once.
# After each, each target must be exactly what its cursor says was consumed
# (a cursor that moved past a row it did not merge loses it; one that fell
# back behind merged rows merges them twice), the rows its runs read must
# add up to that, and no run may stay recorded as running once the next
# run has looked.  Finally, after runs to completion, the append target
# must hold every staged row exactly once and the merge target every key.
use strict;
use warnings;

use PipelineConsumed;
use PipelineLoad;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc to find the server processes'
  unless -d '/proc/self';

my $node = PostgreSQL::Test::Cluster->new('empty_runs');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nrestart_after_crash = on\n");
$node->start;

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE SEQUENCE ids;
	CREATE TABLE src (id bigint, v int);
	SELECT pipeline.create_pipeline('merged', 'src', 'tgt_merged', key => ARRAY['id']);
	SELECT pipeline.create_pipeline('appended', 'src', 'tgt_appended', strategy => 'append');
});
# One to four rows a transaction, a random pause before and after each
# commit: the writers' transactions end out of the order they began in.
$node->safe_psql('postgres',
	out_of_order_writer(
		"INSERT INTO src SELECT nextval('ids'), i FROM generate_series(1, 1 + (random() * 3)::int)"));

# The scripts: a writer, and runs of each pipeline back to back.
my $scripts = PostgreSQL::Test::Utils::tempdir;
append_to_file("$scripts/write.sql", "CALL write_rows(1000000);\n");
append_to_file("$scripts/run_$_.sql", "CALL pipeline.run('$_');\n" x 200000)
  foreach ('merged', 'appended');

# start_load: three writers and two sessions running the pipelines back to
# back, until the server goes away.
sub start_load
{
	my @h;
	push @h, start_psql($node, "$scripts/write.sql") for 1 .. 3;
	push @h, start_psql($node, "$scripts/run_$_.sql") foreach ('merged', 'appended');
	return @h;
}

# wait_for_runs N_EMPTY N_FULL: until, since run 'after', the pipelines
# have recorded N_EMPTY runs that found nothing and N_FULL that merged rows.
sub wait_for_runs
{
	my ($after, $empty, $full) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) FILTER (WHERE rows_pending = 0 AND status = 'succeeded') >= $empty "
		  . "AND count(*) FILTER (WHERE rows_read > 0) >= $full "
		  . "FROM pipeline.run_log WHERE run_id > $after")
	  or die 'the runs did not get under way';
}

# check_consistent: each target is exactly what its cursor consumed, and the
# rows its runs read add up to it.
sub check_consistent
{
	my ($when) = @_;
	foreach my $name ('merged', 'appended')
	{
		is(differences($node, consumed_sql($name, 'src', 's.id, s.v'), "SELECT id, v FROM tgt_$name"),
			'0', "$when: $name holds exactly the rows its cursor consumed");
		is( $node->safe_psql(
				'postgres', qq{
			SELECT (SELECT count(*) FROM (} . consumed_sql($name, 'src', 's.id, s.v') . qq{) c)
			     = (SELECT coalesce(sum(rows_read), 0) FROM pipeline.runs WHERE pipeline = '$name')}),
			't', "$when: rows read by the runs of $name add up to what its cursor consumed");
	}
}

# ---- kill -9 of a backend running the pipelines, then a power loss
crash_under_load($node, \&start_load, sub { wait_for_runs($_[0], 500, 10) }, \&check_consistent);

# ---- the next runs mark what the crashes interrupted, then catch up
$node->safe_psql('postgres', "CALL pipeline.run('merged')");
$node->safe_psql('postgres', "CALL pipeline.run('appended')");
is($node->safe_psql('postgres', "SELECT count(*) FROM pipeline.run_log WHERE status = 'running'"),
	'0', 'no run stays recorded as running');
check_consistent('after runs to completion');
is(differences($node, 'SELECT id, v FROM src', 'SELECT id, v FROM tgt_appended'),
	'0', 'appended holds every staged row exactly once');
is(differences($node, 'SELECT id, v FROM src', 'SELECT id, v FROM tgt_merged'),
	'0', 'merged holds every key');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM src'), '>', 100, 'the writers staged rows');
cmp_ok(
	$node->safe_psql(
		'postgres', "SELECT count(*) FROM pipeline.run_log WHERE rows_pending = 0 AND status = 'succeeded'"),
	'>=', 300,
	'most runs found nothing pending');

done_testing();
