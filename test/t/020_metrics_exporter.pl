# The metrics scraped the usual way: the Prometheus community's
# postgres_exporter, started against a real cluster with the query file
# the project ships (doc/monitoring/postgres_exporter.yaml), exposes the
# pipelines' metrics -- runs, rows by outcome, backlog, lag, quarantine,
# failures, freshness -- in a /metrics that Prometheus' promtool accepts;
# a role sees only the pipelines it may manage; and the Grafana dashboard
# shipped beside it (doc/monitoring/grafana-dashboard.json) parses and
# names only metrics the exporter exposes.
#
# Needs prometheus-postgres-exporter and promtool (Debian packages
# prometheus-postgres-exporter and prometheus); skipped, saying so,
# without them.
use strict;
use warnings;

use File::Basename;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
plan skip_all => "$exporter is not installed (Debian package prometheus-postgres-exporter)"
  unless -x $exporter;
my $monitoring = dirname(__FILE__) . '/../../doc/monitoring';

my $node = PostgreSQL::Test::Cluster->new('metrics');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pipeline'\n");
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE ROLE sales LOGIN;
	CREATE ROLE stranger LOGIN;
	GRANT CREATE ON SCHEMA public TO sales;
	SET ROLE sales;
	CREATE TABLE "Order Items" (id int, amount int);
	CREATE TABLE items (id int PRIMARY KEY, amount int NOT NULL, at timestamptz DEFAULT now());
	SELECT pipeline.create_pipeline('items', '"Order Items"', 'items', key => ARRAY['id'],
	    columns => '{"id": "id", "amount": "amount"}');
	INSERT INTO "Order Items" VALUES (1, 10), (2, NULL), (3, 30);
	CALL pipeline.run('items');
	INSERT INTO "Order Items" VALUES (4, 40);
	SELECT pipeline.add_freshness_check('items', 'at', warn_after => '1 hour');
	SELECT * FROM pipeline.check_freshness('items'::regclass);
	SELECT pipeline.create_step('prune items', 'DELETE FROM items WHERE amount < 0', after => ARRAY['items']);
	CALL pipeline.run_step('prune items');
});

# scrape(ROLE): /metrics of an exporter connected as ROLE, with the
# project's queries only, once a scrape of it succeeded.
sub scrape
{
	my ($role) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $dsn =
		"postgresql:///postgres?host=" . $node->host . "&port=" . $node->port . "&user=$role&sslmode=disable";
	my $h = IPC::Run::start(
		[
			$exporter, "--extend.query-path=$monitoring/postgres_exporter.yaml",
			'--disable-default-metrics', '--disable-settings-metrics',
			"--web.listen-address=127.0.0.1:$port"
		],
		'<', \undef, '>', \my $out, '2>', \my $err,
		init => sub { $ENV{DATA_SOURCE_NAME} = $dsn });
	my $body;
	foreach (1 .. 100)
	{
		my $r = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$port/metrics");
		# a scrape that connected and ran the queries without an error
		if ($r->{success} && $r->{content} =~ /^pg_exporter_last_scrape_error 0$/m)
		{
			$body = $r->{content};
			last;
		}
		select(undef, undef, undef, 0.1);
	}
	$h->kill_kill;
	return $body // '';
}

my $metrics = scrape('sales');
my ($stdout, $stderr) = ('', '');
IPC::Run::run([ 'promtool', 'check', 'metrics' ], '<', \$metrics, '>', \$stdout, '2>', \$stderr);
is($? >> 8, 0, 'promtool check metrics accepts the /metrics page');
is($stdout . $stderr, '', 'with nothing to say about it');
like($metrics, qr/^pg_exporter_user_queries_load_error\{[^}]*postgres_exporter\.yaml[^}]*\} 0$/m,
	'the exporter loaded the query file');
like($metrics, qr/^pg_pipeline_info\{pipeline="items",[^}]*source="\\"Order Items\\"",[^}]*\} 1$/m,
	'the pipeline, its staging table named as it must be quoted');
like($metrics, qr/^pg_pipeline_runs_total\{pipeline="items",[^}]*status="succeeded"[^}]*\} 1$/m, 'runs by status');
like($metrics, qr/^pg_pipeline_rows_total\{outcome="inserted",pipeline="items"[^}]*\} 2$/m, 'rows by outcome');
like($metrics, qr/^pg_pipeline_rows_total\{outcome="quarantined",pipeline="items"[^}]*\} 1$/m,
	'the NULL amount quarantined');
like($metrics, qr/^pg_pipeline_quarantined_rows\{pipeline="items",[^}]*\} 1$/m, 'rows waiting in quarantine');
like($metrics, qr/^pg_pipeline_pending_rows\{pipeline="items",[^}]*\} 1$/m, 'the backlog');
like($metrics, qr/^pg_pipeline_lag_seconds\{pipeline="items",[^}]*\} \d/m, 'the lag');
like($metrics, qr/^pg_pipeline_state_active\{pipeline="items",[^}]*state="idle"\} 1$/m, 'the state, one-hot');
like($metrics, qr/^pg_pipeline_freshness_state_active\{check_id="\d+",relation="items",[^}]*state="PASS"\} 1$/m,
	'a freshness check\'s state');
like($metrics, qr/^pg_pipeline_step_runs_total\{[^}]*status="succeeded",step="prune items"\} 1$/m, 'a step\'s runs');
like($metrics, qr/^pg_pipeline_step_state_active\{[^}]*state="idle",step="prune items"\} 1$/m, 'a step\'s state');
like($metrics, qr/^pg_pipeline_step_consecutive_failures\{[^}]*step="prune items"\} 0$/m, 'a step\'s failures');

my $stranger = scrape('stranger');
like($stranger, qr/^pg_exporter_last_scrape_error 0$/m, 'an exporter connected as another role scrapes');
unlike($stranger, qr/pipeline="items"/, 'and sees none of a pipeline it may not manage');

my $dashboard = decode_json(slurp_file("$monitoring/grafana-dashboard.json"));
my %exposed = map { $_ => 1 } ($metrics =~ /^(pg_pipeline_[a-z_]+)\{/mg);
my @named;
foreach my $panel (@{ $dashboard->{panels} })
{
	push @named, $_->{expr} =~ /\b(pg_pipeline_[a-z_]+)/g foreach @{ $panel->{targets} };
}
push @named, $dashboard->{templating}{list}[1]{query}{query} =~ /\b(pg_pipeline_[a-z_]+)/g;
ok(@named >= 12, 'the dashboard queries the metrics (' . scalar(@named) . ' references)');
is(join(' ', sort grep { !$exposed{$_} } @named), '', 'every metric the dashboard names is exposed');

$node->stop;
done_testing();
