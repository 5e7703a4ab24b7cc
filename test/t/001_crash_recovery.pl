# Exactly once across crashes: kill -9 the backend running a large run, and
# the postmaster during another, restart, run again, and check that each
# target equals what one clean run produces and that the interrupted runs are
# recorded as failed.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nrestart_after_crash = on");
$node->start;

# 400k staged rows in one transaction: 50k keys, versions v increasing.
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE src (id int, v int, pad text);
	SELECT pipeline.create_pipeline('merged', 'src', 'tgt_merged', key => ARRAY['id'],
	                                 sequence_by => 'v', batch_size => 20000);
	SELECT pipeline.create_pipeline('appended', 'src', 'tgt_appended', strategy => 'append',
	                                 batch_size => 20000);
	INSERT INTO src SELECT g % 50000, g, repeat('x', 40) FROM generate_series(1, 400000) g;
	-- a second transaction, so that the cursor moves across transactions too
	INSERT INTO src SELECT g % 50000, 400000 + g, 'y' FROM generate_series(1, 20000) g;
});

# start_run: starts CALL pipeline.run(name) in the background and waits until
# it has committed some batches but not all.
sub start_run
{
	my ($name) = @_;
	my $session = $node->background_psql('postgres', on_error_stop => 0);
	$session->query_until(qr/started/, "\\echo started\nCALL pipeline.run('$name');\n");
	$node->poll_query_until('postgres',
		"SELECT rows_read > 0 AND rows_read < rows_pending FROM pipeline.runs "
		  . "WHERE pipeline = '$name' AND status = 'running'")
	  or die "run of $name never got under way";
	return $session;
}

# Crash 1: kill -9 the backend running 'merged'; the postmaster restarts all.
my $session = start_run('merged');
my $pid = $node->safe_psql('postgres',
	"SELECT backend_pid FROM pipeline.runs WHERE pipeline = 'merged' AND status = 'running'");
kill 'KILL', $pid;
eval { $session->quit };
$node->poll_query_until('postgres', 'SELECT true') or die "server did not come back";

# Crash 2: kill -9 the whole server (postmaster and every backend at once,
# as a power loss would) during the run of 'appended'.
$session = start_run('appended');
my $postmaster = $node->{_pid};
my @children = split /\s+/, `pgrep -P $postmaster`;
my @killed = ($postmaster, grep { /^\d+$/ } @children);
kill 'KILL', @killed;
$node->{_pid} = undef;
eval { $session->quit };
foreach my $try (1 .. 100)
{
	last unless grep { kill 0, $_ } @killed;
	Time::HiRes::usleep(100_000);
}
$node->start;

# Run both to completion.
$node->safe_psql('postgres', "CALL pipeline.run('merged')");
$node->safe_psql('postgres', "CALL pipeline.run('appended')");

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM (SELECT DISTINCT ON (id) id, v FROM src ORDER BY id, v DESC) e
	FULL JOIN tgt_merged t USING (id) WHERE e.v IS DISTINCT FROM t.v}),
	'0',
	'merged target equals the latest version of every key');

is( $node->safe_psql(
		'postgres', q{
	SELECT (SELECT count(*) FROM src) = count(*) AND count(*) = count(DISTINCT v) FROM tgt_appended}),
	't',
	'appended target holds every staged row exactly once');

is( $node->safe_psql(
		'postgres', q{
	SELECT pipeline, status, error_sqlstate FROM pipeline.runs
	 WHERE status <> 'succeeded' ORDER BY run_id}),
	"merged|failed|57P02\nappended|failed|57P02",
	'interrupted runs are recorded as failed');

is( $node->safe_psql(
		'postgres', q{
	SELECT pipeline, sum(rows_read) FROM pipeline.runs GROUP BY pipeline ORDER BY pipeline}),
	"appended|420000\nmerged|420000",
	'every staged row was read once per pipeline, across the interrupted runs');

like($node->safe_psql('postgres', "CALL pipeline.run('merged')"),
	qr/^\d+\|succeeded\|0\|/, 'nothing is left pending');

$node->stop;
done_testing();
