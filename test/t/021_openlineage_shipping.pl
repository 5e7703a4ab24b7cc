# The OpenLineage HTTP transport, against a real HTTP receiver
# (test/perl/HttpReceiver.pm): the shipper posts every event of the outbox
# to url/api/v1/lineage with the API key, valid against the OpenLineage
# JSON Schemas, in order; a receiver that is down, answers 500 or hangs is
# retried with backoff, none of it holding up a run, and every event
# arrives once it is back; an event the receiver refuses (400) or that
# cannot be built is given up with its reason, not the events after it;
# after a kill -9 of the shipper and after a power loss in the middle of
# shipping, every event arrives, each run's START before its end; the
# outbox keeps what is not shipped whatever pipeline.openlineage_retention
# says; each database ships to its own transport, and its shipper stops for
# DROP DATABASE and DROP EXTENSION.
use strict;
use warnings;

use File::Basename;
use HttpReceiver;
use JSON::PP;
use PipelinePowerLoss;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('shipping');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nmax_worker_processes = 16\nrestart_after_crash = on\n");
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE "Order Items" (id int, amount int);
	CREATE TABLE items (id int PRIMARY KEY, amount int);
	SELECT pipeline.create_pipeline('items', '"Order Items"', 'items', key => ARRAY['id']);
	CREATE TABLE poison_src (id int, amount int);
	CREATE TABLE poison (id int PRIMARY KEY, amount int);
	SELECT pipeline.create_pipeline('poison', 'poison_src', 'poison', key => ARRAY['id']);
});
my $rx = HttpReceiver->new;
my $url = $rx->url;

# runs(N): N runs of items, each with a row to merge; returns the seconds
# the slowest took.
my $next_id = 0;
sub runs
{
	my ($n) = @_;
	my $slowest = 0;
	foreach (1 .. $n)
	{
		$next_id++;
		my $t = time;
		$node->safe_psql('postgres',
			"INSERT INTO \"Order Items\" VALUES ($next_id, $next_id); CALL pipeline.run('items')");
		$slowest = time - $t if time - $t > $slowest;
	}
	return $slowest;
}

sub query { return $node->safe_psql('postgres', $_[0]); }

# drained(): waits until the outbox holds nothing unacknowledged.
sub drained
{
	return $node->poll_query_until('postgres',
		'SELECT pending_events = 0 FROM pipeline.openlineage_shipping');
}

# outbox_events(): "runId eventType" of every event in the outbox, in order.
sub outbox_events
{
	return split /\n/,
	  query("SELECT l.run_uuid || ' ' || o.event_type FROM pipeline.openlineage_run_events o "
		  . "JOIN pipeline.run_log l USING (run_id) WHERE o.delivery_error IS NULL ORDER BY o.id");
}

# missing(): the events of the outbox the receiver did not take (200).
sub missing
{
	my %got = map { ("$_->{run}{runId} $_->{eventType}" => 1) } $rx->delivered;
	return grep { !$got{$_} } outbox_events();
}

# transport(SETTING => VALUE, ...): the transport to the receiver, with
# the API key, a timeout long enough that a slow answer of the Perl
# receiver is no failure, a short backoff, and the settings given.
sub transport
{
	my %settings = (
		api_key => "'s3cret'",
		timeout => "'10 s'",
		batch_size => 7,
		retry_base => "'100 ms'",
		retry_max => "'1 s'",
		@_);
	query("SELECT pipeline.set_openlineage_transport('$url', "
		  . join(', ', map { "$_ => $settings{$_}" } sort keys %settings) . ")");
}

# ---- shipped, in order, with the API key, valid
transport();
runs(10);
ok(drained(), 'the shipper acknowledges every event');
my @requests = $rx->requests;
is(scalar(@requests), 20, 'one POST an event: a START and an end for each of the 10 runs');
is(scalar(grep { $_->{path} eq '/api/v1/lineage' } @requests), 20, 'each to url/api/v1/lineage');
is(scalar(grep { $_->{authorization} eq 'Bearer s3cret' } @requests), 20, 'each with the API key');
is(scalar(grep { $_->{content_type} eq 'application/json' } @requests), 20, 'each as JSON');
is_deeply([ map { "$_->{run}{runId} $_->{eventType}" } $rx->delivered ],
	[ outbox_events() ], 'in the order of the outbox: each run START, then its end');
my $jsonl = PostgreSQL::Test::Utils::tempdir . '/events.jsonl';
append_to_file($jsonl, join('', map { "$_->{body}\n" } @requests));
my $validator = dirname(__FILE__) . '/../openlineage/validate.js';
my ($out, $err) = run_command([ 'sh', '-c', "NODE_PATH=\$(npm root -g 2>/dev/null) node $validator $jsonl" ]);
is($out . $err, "20 valid events", 'valid against the OpenLineage JSON Schemas');
is(query('SELECT shipped_events, failures FROM pipeline.openlineage_shipping'),
	'20|0', 'the delivery state counts them');

# ---- a receiver that is down, answers 500, or hangs: retried, no run waits
# (401 is retried too, not given up: a key mended at the receiver ships
# what waited; a hanging receiver gets a 5 s timeout, longer than any run.)
foreach my $case (
	[ 'down', sub { $rx->stop }, qr/connect/i ],
	[ 'answering 500', sub { $rx->set_mode('fail') }, qr/HTTP 500/ ],
	[ 'answering 401', sub { $rx->set_mode('status:401') }, qr/HTTP 401/ ],
	[ 'hanging', sub { transport(timeout => "'5 s'"); $rx->set_mode('hang') }, qr/timed out|timeout/i ])
{
	my ($what, $break, $error) = @$case;
	my $rejected = query('SELECT rejected_events FROM pipeline.openlineage_shipping');
	$break->();
	my $slowest = runs(5);
	ok($node->poll_query_until('postgres', 'SELECT failures >= 1 AND pending_events > 0 FROM pipeline.openlineage_shipping'),
		"receiver $what: the shipper fails, the events wait");
	like(query('SELECT last_error FROM pipeline.openlineage_shipping'), $error,
		"receiver $what: the delivery state says why");
	is(query('SELECT rejected_events FROM pipeline.openlineage_shipping'), $rejected,
		"receiver $what: no event is given up");
	cmp_ok($slowest, '<', 4, "receiver $what: no run waited for it (slowest ${slowest}s)");
	is(query("SELECT count(*) FROM pipeline.runs WHERE pipeline = 'items' AND status <> 'succeeded'"),
		'0', "receiver $what: the runs succeeded");
	$rx->start if $what eq 'down';
	$rx->set_mode('ok');
	ok(drained(), "receiver $what, then back: the outbox is drained");
	is(join(',', missing()), '', "receiver $what, then back: no event is missing");
	is(query('SELECT failures, last_error IS NULL FROM pipeline.openlineage_shipping'),
		'0|t', "receiver $what, then back: the delivery state is well again");
}
transport();

# ---- an event refused for good (400) is given up, not those after it
$rx->set_mode('refuse:"name": "postgres.poison"');
query(q{INSERT INTO poison_src VALUES (1, 1); CALL pipeline.run('poison')});
runs(2);
ok(drained(), 'an event refused: the outbox is drained');
is(query("SELECT count(*) FROM pipeline.openlineage_run_events e JOIN pipeline.pipeline_defs d "
	  . "ON d.id = e.pipeline_id WHERE d.name = 'poison' AND e.delivery_error LIKE 'the receiver answered HTTP 400%'"),
	'2', 'the events the receiver refused are given up with its answer');
is(query('SELECT rejected_events FROM pipeline.openlineage_shipping'), '2', 'and counted');
is(join(',', missing()), '', 'the events after them arrived');
$rx->set_mode('ok');

# ---- an event that cannot be built (a run log edited by hand)
transport(enabled => 'false');
runs(2);
query("UPDATE pipeline.run_log SET status = 'cancelled' WHERE run_id = "
	  . "(SELECT max(run_id) FROM pipeline.run_log)");
transport();
ok(drained(), 'an event that cannot be built: the outbox is drained');
like(query("SELECT delivery_error FROM pipeline.openlineage_run_events WHERE delivery_error LIKE 'the event could not%'"),
	qr/^the event could not be built: run \d+ has no COMPLETE event/,
	'the event that cannot be built is given up with the reason');
is(join(',', missing()), '', 'every other event arrived');

# ---- kill -9 of the shipper, then a power loss, in the middle of shipping
transport(batch_size => 20, enabled => 'false');
query(join('', map { "INSERT INTO \"Order Items\" VALUES ($_, $_); CALL pipeline.run('items');\n" } 1001 .. 1150));
my $before = query('SELECT shipped_events FROM pipeline.openlineage_shipping');
$rx->set_mode('slow:10');
transport(batch_size => 20);
foreach my $crash ('kill -9 of the shipper', 'power loss')
{
	ok( $node->poll_query_until('postgres',
			"SELECT shipped_events > $before + 10 FROM pipeline.openlineage_shipping"),
		"$crash: the shipper ships");
	if ($crash eq 'power loss')
	{
		ok(power_loss($node), 'every server process is gone');
		$node->start;
	}
	else
	{
		my $pid = query(
			"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pipeline shipper'");
		die "no shipper to kill" unless $pid =~ /^\d+$/;
		cmp_ok(query('SELECT pending_events FROM pipeline.openlineage_shipping'), '>', 0,
			'the kill comes in the middle of shipping');
		my $offset = -s $node->logfile;
		kill 'KILL', $pid;
		$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
	}
	$before = query('SELECT shipped_events FROM pipeline.openlineage_shipping');
}
ok(drained(), 'after both crashes: the outbox is drained');
is(join(',', missing()), '', 'after both crashes: no event is missing');
my (%first, @late);
my $i = 0;
foreach ($rx->delivered)
{
	$first{"$_->{run}{runId} $_->{eventType}"} //= $i++;
}
foreach (outbox_events())
{
	my ($run, $type) = split / /;
	push @late, $run if $type ne 'START' && $first{"$run START"} > $first{$_};
}
is(join(',', @late), '', "after both crashes: each run's START arrived before its end");
is_deeply([ sort { $first{$a} <=> $first{$b} } keys %first ],
	[ grep { exists $first{$_} } outbox_events() ], 'after both crashes: events first arrived in outbox order');

# ---- retention keeps what is not shipped (the receiver down)
$rx->stop;
runs(2);
query("UPDATE pipeline.openlineage_run_events SET created_at = created_at - interval '8 days'");
my $unshipped = query('SELECT count(*) FROM pipeline.openlineage_run_events WHERE acknowledged_at IS NULL');
runs(1);
is(query('SELECT count(*) FROM pipeline.openlineage_run_events WHERE acknowledged_at IS NOT NULL'),
	'0', 'retention: the acknowledged events older than openlineage_retention are gone');
is(query("SELECT count(*) FROM pipeline.openlineage_run_events WHERE acknowledged_at IS NULL "
	  . "AND created_at < now() - interval '7 days'"),
	$unshipped, 'retention: those not shipped yet stay');
# a history retention shorter than the runs' age keeps the runs whose
# events are not shipped (their events would go with them), not the others
query("UPDATE pipeline.run_log SET finished_at = finished_at - interval '8 days'");
my $old_runs = query("SELECT count(*) FROM pipeline.run_log WHERE finished_at < now() - interval '1 day'");
my $old_unshipped_runs = "SELECT count(*) FROM pipeline.run_log l WHERE finished_at < now() - interval '1 day' "
  . "AND EXISTS (SELECT FROM pipeline.openlineage_run_events e WHERE e.run_id = l.run_id AND e.acknowledged_at IS NULL)";
my $kept_before = query($old_unshipped_runs);
$node->safe_psql('postgres',
	"SET pipeline.history_retention = '1d'; INSERT INTO \"Order Items\" VALUES (4000, 1); CALL pipeline.run('items')");
cmp_ok($kept_before, ">", 0, "history retention: some old runs have events not shipped");
is(query($old_unshipped_runs), $kept_before, 'history retention: the runs whose events are not shipped stay');
cmp_ok(query("SELECT count(*) FROM pipeline.run_log WHERE finished_at < now() - interval '1 day'"),
	'<', $old_runs - 100, 'history retention: the other old runs are gone');
my $offset = -s $node->logfile;
$node->safe_psql('postgres',
	"SET pipeline.openlineage_unshipped_retention = '1d'; INSERT INTO \"Order Items\" VALUES (5000, 1); "
	  . "CALL pipeline.run('items')");
ok($node->log_contains(qr/pipeline deleted $unshipped OpenLineage events nobody acknowledged/, $offset),
	'retention: past openlineage_unshipped_retention they go, counted in the server log');
is(query('SELECT count(*) FROM pipeline.openlineage_run_events WHERE created_at < now() - interval \'1 day\''),
	'0', 'retention: none of them is left');

# ---- settings per database; a shipper stops for DROP DATABASE and DROP EXTENSION
$rx->start;
$rx->set_mode('ok');
foreach my $db ('lineage_a', 'lineage_b')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql(
		$db, qq{
		CREATE EXTENSION pipeline;
		CREATE TABLE src (id int, v int);
		SELECT pipeline.create_pipeline('in_$db', 'src', 'tgt', key => ARRAY['id']);
		SELECT pipeline.set_openlineage_transport('$url', endpoint => 'to/$db', retry_base => '100 ms', retry_max => '1 s');
		INSERT INTO src VALUES (1, 1);
		CALL pipeline.run('in_$db');
	});
}
foreach my $db ('lineage_a', 'lineage_b')
{
	ok( $node->poll_query_until($db, 'SELECT pending_events = 0 FROM pipeline.openlineage_shipping'),
		"$db: its own shipper ships its events");
	my @got = grep { $_->{path} eq "/to/$db" && $_->{status} == 200 } $rx->requests;
	is(join(',', sort map { decode_json($_->{body})->{job}{name} . ' ' . decode_json($_->{body})->{eventType} } @got),
		"$db.in_$db COMPLETE,$db.in_$db START", "$db: to its own endpoint, only its own pipeline's events");
}
my $shipper_of_b = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pipeline shipper' AND datname = 'lineage_b'";
is(query($shipper_of_b), '1', 'a database with a transport has a shipper');
is(query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pipeline shipper' AND datname = 'lineage_a'"),
	'1', 'and so has the other');
$node->safe_psql('postgres', 'DROP DATABASE lineage_b');
is(query("SELECT count(*) FROM pg_database WHERE datname = 'lineage_b'"), '0',
	'DROP DATABASE stops its shipper and goes through');
$node->safe_psql('lineage_a', 'DROP EXTENSION pipeline CASCADE');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pipeline shipper' AND datname = 'lineage_a'"),
	'DROP EXTENSION: the shipper stops');

$rx->stop;
$node->stop;
done_testing();
