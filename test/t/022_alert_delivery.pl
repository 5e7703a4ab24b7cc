# Alerts delivered to webhooks, against a real HTTP receiver
# (test/perl/HttpReceiver.pm): a check past its threshold, a pipeline
# failing and then suspended by its own failure policy, each delivered to
# the routes that match it -- by owner (a route of one team never carries
# another team's alerts), pipeline and severity -- as the alert's JSON or
# as a Slack message, in order; a route whose receiver fails or hangs is
# retried with its own backoff while the others deliver and no run waits;
# a kill -9 of the shipper in the middle of delivering loses nothing.
use strict;
use warnings;

use HttpReceiver;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('alert_delivery');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nmax_worker_processes = 16\nrestart_after_crash = on\n");
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE ROLE sales LOGIN;
	CREATE ROLE ops LOGIN;
	GRANT CREATE ON SCHEMA public TO sales, ops;
	SET ROLE sales;
	CREATE TABLE "Order Items" (id int, v int);
	SELECT pipeline.create_pipeline('orders', '"Order Items"', 'orders', key => ARRAY['id']);
	SELECT pipeline.add_check('orders', 'positive', 'v > 0', action => 'warn');
	SET ROLE ops;
	CREATE TABLE invoices (id int, v int);
	SELECT pipeline.create_pipeline('billing', 'invoices', 'billing', key => ARRAY['id'],
	    on_schema_change => 'fail');
	RESET ROLE;
	SELECT pipeline.set_failure_policy('billing', suspend_after_failures => 2);
});
my $rx = HttpReceiver->new;
my $url = $rx->url;

sub query { return $node->safe_psql('postgres', $_[0]); }

# route(NAME, PATH, ARGS): a route to the receiver's PATH.
sub route
{
	my ($name, $path, $args) = @_;
	query("SELECT pipeline.add_alert_route('$name', '$url$path', retry_base => '100 ms', "
		  . "retry_max => '1 s', timeout => '1 s'" . ($args ? ", $args" : '') . ")");
}
route('all', '/all', "min_severity => 'info'");
route('sales-chat', '/sales', "format => 'slack', owner => 'sales'");
route('billing-pager', '/pager', "pipelines => ARRAY['billing'], min_severity => 'error'");
route('checks', '/checks', "kinds => ARRAY['check'], min_severity => 'info'");

# delivered(): waits until no route has an alert waiting.
sub delivered
{
	return $node->poll_query_until('postgres',
		'SELECT coalesce(sum(pending_alerts), 0) = 0 FROM pipeline.alert_delivery');
}

# states(PATH): "kind previous->state severity" of each alert PATH got, in
# the order they first arrived (a delivery whose answer came after the
# shipper's timeout is posted again: at least once).
sub states
{
	my %seen;
	return join(', ',
		map { "$_->{kind} " . ($_->{previous_state} // 'none') . "->$_->{state} $_->{severity}" }
		  grep { !$seen{ $_->{id} }++ } $rx->delivered($_[0]));
}

# check_run(VALUE): sales stages a row and runs orders; its check warns for
# a value not above 0.
my $id = 0;
sub check_run
{
	$id++;
	$node->safe_psql('postgres',
		"SET ROLE sales; INSERT INTO \"Order Items\" VALUES ($id, $_[0]); CALL pipeline.run('orders')");
}

# ---- routed by owner, pipeline and severity, as JSON or Slack
check_run(-1);
$node->safe_psql('postgres', q{
	SET ROLE ops;
	ALTER TABLE invoices ADD COLUMN note text;
	INSERT INTO invoices (id, v, note) VALUES (1, 1, 'x');
});
foreach (1 .. 2)
{
	$node->psql('postgres', "SET ROLE ops; CALL pipeline.run('billing')");
}
ok(delivered(), 'every alert is delivered');
is(states('/all'),
	'check none->WARN warning, pipeline idle->failing error, pipeline failing->suspended critical',
	'the route of the superuser, from info up: every alert, in order');
is(states('/pager'), 'pipeline idle->failing error, pipeline failing->suspended critical',
	"the route of billing, from error up: billing's alerts, not orders'");
is(states('/checks'), 'check none->WARN warning', 'the route of kind check: the check alerts only');
my %seen_slack;
my @slack = grep { !$seen_slack{ $_->{text} }++ } $rx->delivered('/sales');
is(scalar(@slack), 1, "the route of sales: its own check's alert, none of ops' pipeline");
like($slack[0]{text} // '', qr/^\[WARNING\] check orders\.positive in database postgres: none \x{2192} WARN/,
	'as a Slack message');
is(join(',', sort keys %{ ($rx->delivered('/all'))[0] }),
	'check,database,failing,id,kind,message,observed,pipeline,pipeline_id,previous_state,raised_at,run_id,severity,state,total',
	'the JSON payload: the alert');
is(query("SELECT suspended_at IS NOT NULL FROM pipeline.pipeline_defs WHERE name = 'billing'"),
	't', "billing's own failure policy suspended it after 2 failures (the setting says 5)");
is(query("SELECT string_agg(route || ':' || delivered_alerts, ' ' ORDER BY route) FROM pipeline.alert_delivery"),
	'all:3 billing-pager:2 checks:1 sales-chat:1', 'the delivery state counts them');

# ---- one route failing holds back no other, and no run
$rx->set_mode('fail:/all');
my $t = time;
check_run(5);     # PASS again: info, to /all only
check_run(-2);    # WARN: to /all and to sales
my $slowest = time - $t;
ok( $node->poll_query_until('postgres',
		"SELECT failures >= 2 FROM pipeline.alert_delivery WHERE route = 'all'"),
	'the failing route is retried');
like(query("SELECT last_error FROM pipeline.alert_delivery WHERE route = 'all'"),
	qr/HTTP 500/, 'its state says why');
ok( $node->poll_query_until('postgres',
		"SELECT pending_alerts = 0 FROM pipeline.alert_delivery WHERE route = 'sales-chat'"),
	'the other route delivered meanwhile');
cmp_ok($slowest, '<', 2, 'no run waited for the webhooks');
$rx->set_mode('hang');
check_run(6);
ok( $node->poll_query_until('postgres',
		"SELECT last_error ~* 'timeout|timed out' FROM pipeline.alert_delivery WHERE route = 'all'"),
	'a hanging receiver times out and is retried');
$rx->set_mode('ok');
ok(delivered(), 'once the receiver answers, every alert is delivered');
is(states('/all'),
	'check none->WARN warning, pipeline idle->failing error, pipeline failing->suspended critical, '
	  . 'check WARN->PASS info, check PASS->WARN warning, check WARN->PASS info',
	'in order, none missing');

# ---- kill -9 of the shipper in the middle of delivering
$rx->stop;
check_run($_ % 2 ? -1 : 1) foreach (1 .. 20);
my $mark = scalar($rx->requests);
$rx->set_mode('slow:100');
$rx->start;
my $posted = 0;
foreach (1 .. 300)
{
	last if ($posted = scalar($rx->requests) - $mark) >= 3;
	select(undef, undef, undef, 0.05);
}
cmp_ok($posted, '>=', 3, 'the receiver back, the shipper delivers the backlog');
my $offset = -s $node->logfile;
my $shipper = query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pipeline shipper'");
die "no shipper to kill" unless $shipper =~ /^\d+$/;
cmp_ok(query("SELECT sum(pending_alerts) FROM pipeline.alert_delivery"), '>', 0,
	'the kill comes in the middle of delivering');
kill 'KILL', $shipper;
$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
$rx->set_mode('ok');
ok(delivered(), 'after kill -9: every alert is delivered');
my @got = map { $_->{id} } $rx->delivered('/all');
my %first;
$first{$_} //= scalar(keys %first) foreach @got;
my @ids = split /\n/, query("SELECT x.alert_id FROM pipeline.alert_deliveries x JOIN pipeline.alert_routes r "
	  . "ON r.id = x.route_id WHERE r.name = 'all' ORDER BY x.id");
is(join(',', grep { !exists $first{$_} } @ids), '', 'after kill -9: none is missing');
is(join(',', sort { $first{$a} <=> $first{$b} } grep { exists $first{$_} } @ids), join(',', @ids),
	'after kill -9: they first arrived in order');

# ---- a pipeline's own retry delays: its scheduler retries it an hour later
$node->safe_psql(
	'postgres', q{
	SET ROLE ops;
	CREATE TABLE nightly_src (id int, v int);
	SELECT pipeline.create_pipeline('nightly', 'nightly_src', 'nightly', key => ARRAY['id'],
	    on_schema_change => 'fail', schedule => '1 second');
	SELECT pipeline.set_failure_policy('nightly', retry_base => '1 hour', retry_max => '2 hours');
	ALTER TABLE nightly_src ADD COLUMN note text;
	INSERT INTO nightly_src (id, v, note) VALUES (1, 1, 'x');
});
# (the pass that started the failing run stored the schedule's next time,
# a second after the start; the pass after the failure stores the retry)
ok( $node->poll_query_until('postgres',
		"SELECT state = 'retrying' AND next_run_at > last_error_at + interval '1 minute' "
		  . "FROM pipeline.status WHERE pipeline = 'nightly'"),
	'a failing scheduled pipeline is retrying');
cmp_ok(
	query("SELECT extract(epoch FROM next_run_at - last_error_at)::int FROM pipeline.status "
		  . "WHERE pipeline = 'nightly'"),
	'>=', 1800, "its retry waits its own retry_base (an hour, give or take half; the setting's is 5 s)");

# ---- who may route alerts
my ($ret, $out, $err) = $node->psql('postgres',
	"SET ROLE sales; SELECT pipeline.add_alert_route('mine', 'http://127.0.0.1:1/')");
like($err, qr/permission denied for function add_alert_route/, 'a plain role may not add a route');
($ret, $out, $err) = $node->psql('postgres', "SET ROLE sales; SELECT url FROM pipeline.alert_routes");
like($err, qr/permission denied for table alert_routes/, 'nor read the routes (their URLs)');

$rx->stop;
$node->stop;
done_testing();
