# Exactly once across crashes and killed runs.
#
# A backlog of 300,000 staged rows (three transactions: one large, one of
# stale versions, one of newer versions of the same keys) feeds a merge
# pipeline with sequence_by and an append pipeline, 20,000 rows a batch.
# Runs are interrupted in the middle, each time after some batches have
# committed:
#   1. kill -9 of the backend running 'merged' (the postmaster restarts
#      everything);
#   2. a power loss while 'merged' (resuming inside the large transaction)
#      and 'appended' run at once: postmaster and all its children killed
#      with SIGKILL together;
#   3. pg_terminate_backend of a run of 'appended' (no restart);
#   4. pg_cancel_backend of a run of 'appended' (the run records its own
#      failure).
# After each interruption each target must be exactly what the pipeline's
# cursor says was consumed (the cursor commits with the merge), and the
# rows read recorded by the runs must add up to it.  Finally, after runs to
# completion, 'merged' must hold the latest version of every key (what one
# run without interruption produces), 'appended' every staged row exactly
# once, and each interrupted run must be recorded as failed (57P02 when its
# session died: the next run of the pipeline marks it).
use strict;
use warnings;

use IPC::Run;
use PipelineConsumed;
use PipelinePowerLoss;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

plan skip_all => 'needs /proc to find the server processes'
  unless -d '/proc/self';

my $total = 300000;
my $batch = 20000;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nrestart_after_crash = on\n");
$node->start;

$node->safe_psql(
	'postgres', qq{
	CREATE EXTENSION pipeline;
	CREATE TABLE src (id int, v int, pad text);
	SELECT pipeline.create_pipeline('merged', 'src', 'tgt_merged', key => ARRAY['id'],
	                                sequence_by => 'v', batch_size => $batch);
	SELECT pipeline.create_pipeline('appended', 'src', 'tgt_appended', strategy => 'append',
	                                batch_size => $batch);
	-- Each batch takes at least 0.2 s, so that a run stays mid-way long
	-- enough for the test to see it there and interrupt it.
	CREATE FUNCTION slow_batch() RETURNS trigger LANGUAGE plpgsql
	    AS \$\$ BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END \$\$;
	CREATE TRIGGER slow_batch AFTER INSERT ON tgt_merged
	    FOR EACH STATEMENT EXECUTE FUNCTION slow_batch();
	CREATE TRIGGER slow_batch AFTER INSERT ON tgt_appended
	    FOR EACH STATEMENT EXECUTE FUNCTION slow_batch();
	-- 260,000 rows in one transaction: 50,000 keys, five or six versions each
	INSERT INTO src SELECT g % 50000, g, 'r' || g FROM generate_series(1, 260000) g;
	-- older versions of 20,000 keys, committed later: stale
	INSERT INTO src SELECT g % 50000, -g, 'stale' FROM generate_series(1, 20000) g;
	-- newer versions of 20,000 keys
	INSERT INTO src SELECT g % 50000, 400000 + g, 'u' || g FROM generate_series(1, 20000) g;
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM src'), $total, 'backlog staged');

# check_consistent: each target is exactly what its cursor says was
# consumed, and the rows read by its runs add up to the rows consumed.
sub check_consistent
{
	my ($when) = @_;
	my $merged = "SELECT DISTINCT ON (id) id, v, pad FROM (" . consumed_sql('merged', 'src', 's.id, s.v, s.pad') . ") c ORDER BY id, v DESC";
	is(differences($node, $merged, 'SELECT id, v, pad FROM tgt_merged'),
		'0', "$when: merged target is the merge of the rows its cursor consumed");
	is(differences($node, consumed_sql('appended', 'src', 's.id, s.v, s.pad'), 'SELECT id, v, pad FROM tgt_appended'),
		'0', "$when: appended target holds exactly the rows its cursor consumed");
	foreach my $name ('merged', 'appended')
	{
		is( $node->safe_psql(
				'postgres', qq{
			SELECT (SELECT count(*) FROM (} . consumed_sql($name, 'src', 's.id, s.v, s.pad') . qq{) c)
			     = (SELECT coalesce(sum(rows_read), 0) FROM pipeline.runs WHERE pipeline = '$name')}),
			't', "$when: rows read by the runs of $name add up to what its cursor consumed");
	}
}

# start_run: CALL pipeline.run(name) in a background psql; returns the
# harness and the id of the last run before it.
sub start_run
{
	my ($name) = @_;
	my $before = $node->safe_psql('postgres', 'SELECT coalesce(max(run_id), 0) FROM pipeline.run_log');
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', "CALL pipeline.run('$name')" ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return { h => $h, out => \$out, err => \$err, after => $before, name => $name };
}

# wait_mid_run: waits until the run has committed some batches and has at
# least two more to go; returns its backend's pid.
sub wait_mid_run
{
	my ($run) = @_;
	my $cond = "SELECT rows_read > 0 AND rows_read <= rows_pending - 2 * $batch FROM pipeline.runs "
	  . "WHERE pipeline = '$run->{name}' AND run_id > $run->{after} AND status = 'running'";
	$node->poll_query_until('postgres', $cond)
	  or die "run of $run->{name} never got under way";
	return $node->safe_psql('postgres',
		"SELECT backend_pid FROM pipeline.runs WHERE pipeline = '$run->{name}' AND run_id > $run->{after}");
}

# finish_run: waits for the background psql to exit; returns its stderr.
sub finish_run
{
	my ($run) = @_;
	$run->{h}->finish;
	return ${ $run->{err} };
}

# ---- 1. kill -9 of the backend running 'merged'
my $run = start_run('merged');
my $pid = wait_mid_run($run);
my $log_offset = -s $node->logfile;
kill 'KILL', $pid;
like(finish_run($run), qr/server closed the connection unexpectedly|terminating connection/,
	'the session running merged was killed');
$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
check_consistent('after kill -9 of the backend');
my $left = $node->safe_psql('postgres',
	"SELECT partial_xid IS NOT NULL FROM pipeline.cursors c JOIN pipeline.pipeline_defs d "
	  . "ON d.id = c.pipeline_id WHERE d.name = 'merged'");
is($left, 't', 'merged stopped inside the large transaction (the next run resumes there)');

# ---- 2. power loss while 'merged' and 'appended' both run
my $run_m = start_run('merged');
my $run_a = start_run('appended');
wait_mid_run($run_m);
wait_mid_run($run_a);
ok(power_loss($node), 'every server process is gone');
finish_run($run_m);
finish_run($run_a);
$node->start;
check_consistent('after a power loss');

# ---- 3. pg_terminate_backend of a run of 'appended'
$run = start_run('appended');
$pid = wait_mid_run($run);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
like(finish_run($run), qr/terminating connection due to administrator command/,
	'the session running appended was terminated');
check_consistent('after pg_terminate_backend');

# ---- 4. pg_cancel_backend of a run of 'appended'
$run = start_run('appended');
$pid = wait_mid_run($run);
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
like(finish_run($run), qr/canceling statement due to user request/, 'the run of appended was cancelled');
check_consistent('after pg_cancel_backend');

# ---- runs to completion
$node->safe_psql('postgres', "CALL pipeline.run('merged')");
$node->safe_psql('postgres', "CALL pipeline.run('appended')");

is( differences($node,
		'SELECT id, v, pad FROM tgt_merged',
		'SELECT DISTINCT ON (id) id, v, pad FROM src ORDER BY id, v DESC'),
	'0',
	'merged holds the latest version of every key');
is(differences($node, 'SELECT id, v, pad FROM tgt_appended', 'SELECT id, v, pad FROM src'),
	'0', 'appended holds every staged row exactly once');
check_consistent('after the runs to completion');

is( $node->safe_psql(
		'postgres', q{
	SELECT string_agg(pipeline || ':' || status || ':' || error_sqlstate, ',' ORDER BY pipeline, run_id)
	  FROM pipeline.runs WHERE status <> 'succeeded'}),
	'appended:failed:57P02,appended:failed:57P02,appended:failed:57014,'
	  . 'merged:failed:57P02,merged:failed:57P02',
	'each interrupted run is recorded as failed');
is( $node->safe_psql(
		'postgres', q{
	SELECT string_agg(pipeline || ':' || sum, ',' ORDER BY pipeline)
	  FROM (SELECT pipeline, sum(rows_read) FROM pipeline.runs GROUP BY pipeline) s}),
	"appended:$total,merged:$total",
	'every staged row was read once per pipeline, across the interrupted runs');
like($node->safe_psql('postgres', "CALL pipeline.run('merged')"),
	qr/^\d+\|succeeded\|0\|/, 'nothing is left pending');

$node->stop;
done_testing();
