# Nothing leaves a staging table unless it is archived in the same
# transaction.  200,000 consumed rows are archived in batches of 2,000 by
# one pass, interrupted in the middle, after some batches were written and
# their rows deleted:
#   1. kill -9 of the backend running the pass (the postmaster restarts
#      everything);
#   2. a power loss: postmaster and all its children killed at once.
# After each, every row must be in the staging table or in the archive,
# exactly once, with its content intact (and, the pass being one
# transaction, it must still be staged).  Then a pass runs to completion,
# and what it committed must survive a power loss too.  Finally a replay
# reads the archived rows back through the pipeline: its target receives
# each of them once more.
use strict;
use warnings;

use IPC::Run;
use PipelinePowerLoss;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc to find the server processes'
  unless -d '/proc/self';

my $total = 200000;

my $node = PostgreSQL::Test::Cluster->new('archive');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nrestart_after_crash = on\npipeline.archive_interval = -1\n");
$node->start;

$node->safe_psql(
	'postgres', qq{
	CREATE EXTENSION pipeline;
	CREATE TABLE events (id bigint, at timestamptz, payload jsonb);
	SELECT pipeline.create_pipeline('events', 'events', 'events_copy', strategy => 'append');
	INSERT INTO events
	SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
	       jsonb_build_object('user', g % 1000, 'event', (ARRAY['view', 'click', 'buy'])[g % 3 + 1],
	                          'note', md5(g::text))
	  FROM generate_series(1, $total) g;
	CALL pipeline.run('events');
	SELECT pipeline.set_retention('events', keep => '0', batch_rows => 2000);
	-- each batch's delete takes at least 0.1 s, so that a pass stays in the
	-- middle long enough for the test to interrupt it there
	CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql
	    AS \$\$ BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END \$\$;
	CREATE TRIGGER slow_delete AFTER DELETE ON events
	    FOR EACH STATEMENT EXECUTE FUNCTION slow_delete();
});

my $content = q{SELECT md5(string_agg(format('%s|%s|%s', id, at, payload), ',' ORDER BY id))};
my $original = $node->safe_psql('postgres', "$content FROM events");

# every_row_once: every row is staged or archived, exactly once, and the
# rows are the original ones.
sub every_row_once
{
	my ($when) = @_;
	my $rows = q{(SELECT id, at, payload FROM events
	              UNION ALL
	              SELECT a.id, a.at, a.payload FROM pipeline.archive_batches b,
	                     LATERAL pipeline.archived_rows(b.id, NULL::events) a) r};
	is($node->safe_psql('postgres', "SELECT count(*), count(DISTINCT id) FROM $rows"),
		"$total|$total", "$when: every row is staged or archived, exactly once");
	is($node->safe_psql('postgres', "$content FROM $rows"),
		$original, "$when: the rows are intact");
}

# start_pass: SELECT pipeline.archive('events') in a background psql.
sub start_pass
{
	my ($out, $err) = ('', '');
	return IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c',
		  "SELECT * FROM pipeline.archive('events')" ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

# wait_mid_pass: waits until the pass has been writing batches for a second
# (it takes ten); returns its backend's pid.
sub wait_mid_pass
{
	my $pass = q{query LIKE 'SELECT * FROM pipeline.archive(%' AND state = 'active'};
	my $cond = qq{SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $pass
	                               AND clock_timestamp() - query_start > interval '1 second')};
	$node->poll_query_until('postgres', $cond) or die 'the archive pass never got under way';
	return $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $pass");
}

# 1. kill -9 of the backend: the postmaster restarts everything.
my $pass = start_pass();
my $pid = wait_mid_pass();
kill 'KILL', $pid;
$pass->finish;
$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
every_row_once('after kill -9 of the pass');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pipeline.archive_batches'),
	'0', 'after kill -9 of the pass: none of its batches was committed');

# 2. a power loss in the middle of a pass.
$pass = start_pass();
wait_mid_pass();
ok(power_loss($node), 'power loss: every server process is gone');
$pass->finish;
$node->start;
every_row_once('after a power loss during the pass');
is($node->safe_psql('postgres', 'SELECT count(*) FROM events'),
	$total, 'after a power loss during the pass: the rows are still staged');

# 3. a pass that completes, then a power loss: what it committed stays.
$node->safe_psql('postgres', 'DROP TRIGGER slow_delete ON events');
is( $node->safe_psql(
		'postgres', q{SELECT batches_written, rows_archived FROM pipeline.archive('events')}),
	"100|$total", 'a pass archives every consumed row');
ok(power_loss($node), 'power loss after the pass');
$node->start;
every_row_once('after a power loss following a completed pass');
is($node->safe_psql('postgres', 'SELECT count(*) FROM events'),
	'0', 'after a power loss following a completed pass: nothing is staged');

# 4. a replay of the run reads every row back from the archive.
$node->safe_psql('postgres', "CALL pipeline.replay('events')");
is( $node->safe_psql(
		'postgres', q{SELECT count(*), count(DISTINCT id), min(n), max(n)
		                FROM (SELECT id, count(*) AS n FROM events_copy GROUP BY id) c}),
	"$total|$total|2|2", 'a replay appends each archived row once more');

$node->stop;
done_testing();
