# Survives the operator's tools: a pg_dump of a database with pipelines,
# restored into another cluster, keeps definitions, cursors, history and
# quarantine, and its cursors stay exact: consumed rows are not applied
# again, pending ones and rows written after the restore are applied once.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf('postgresql.conf', "shared_preload_libraries = 'pipeline'");
$old->start;

$old->safe_psql(
	'postgres', q{
	CREATE DATABASE app;
});
$old->safe_psql(
	'app', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE src (id int, v int, note text);
	SELECT pipeline.create_pipeline('log', 'src', 'log_tgt', strategy => 'append');
	SELECT pipeline.create_pipeline('latest', 'src', 'latest_tgt', key => ARRAY['id'],
	                                 sequence_by => 'v', columns => '{"v": "v::int"}');
	INSERT INTO src SELECT g % 100, g, 'consumed' FROM generate_series(1, 1000) g;
	INSERT INTO src VALUES (NULL, 5000, 'bad');      -- quarantined by 'latest'
	CALL pipeline.run('log');
	CALL pipeline.run('latest');
	-- pending at dump time: never applied on the old cluster
	INSERT INTO src SELECT g % 100, g, 'pending' FROM generate_series(1001, 1300) g;
	-- 'latest' stops inside that transaction: a partial cursor is dumped
	CALL pipeline.run('latest', max_rows => 100);
});
my $dump = $old->basedir . '/app.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $old->connstr('app') ], 'pg_dump');

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', "shared_preload_libraries = 'pipeline'");
$new->start;
$new->safe_psql('postgres', 'CREATE DATABASE app');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('app'), $dump ], 'pg_restore');

is( $new->safe_psql(
		'app', q{
	SELECT string_agg(name || ':' || strategy, ',' ORDER BY name) FROM pipeline.pipelines}),
	'latest:merge,log:append',
	'definitions restored');
is($new->safe_psql('app', 'SELECT count(*) FROM pipeline.quarantine'),
	'1', 'quarantine restored');

# written after the restore, on the new cluster's transaction ids
$new->safe_psql('app',
	"INSERT INTO src SELECT g % 100, g, 'after restore' FROM generate_series(1301, 1500) g");
$new->safe_psql('app', "CALL pipeline.run('log')");
$new->safe_psql('app', "CALL pipeline.run('latest')");

is( $new->safe_psql(
		'app', q{
	SELECT count(*) = (SELECT count(*) FROM src) AND count(DISTINCT v) = count(*) FROM log_tgt}),
	't',
	'append target holds every staged row exactly once across dump and restore');
is( $new->safe_psql(
		'app', q{
	SELECT count(*) FROM (SELECT DISTINCT ON (id) id, v FROM src WHERE id IS NOT NULL
	                      ORDER BY id, v DESC) e
	FULL JOIN latest_tgt t USING (id) WHERE e.v IS DISTINCT FROM t.v}),
	'0',
	'merge target holds the latest version of every key');
is( $new->safe_psql(
		'app', q{
	SELECT string_agg(pipeline || ':' || rows_read, ',' ORDER BY run_id)
	  FROM pipeline.runs WHERE status = 'succeeded'}),
	'log:1001,latest:1001,latest:100,log:500,latest:400',
	'each run after the restore read only what was pending');

# DROP EXTENSION refuses while sources depend on it, and CASCADE leaves the data.
my ($ret, $stdout, $stderr) = $new->psql('app', 'DROP EXTENSION pipeline');
like($stderr, qr/depends on function pipeline\.current_xid/, 'DROP EXTENSION refuses while sources use it');
$new->safe_psql('app', 'DROP EXTENSION pipeline CASCADE');
is($new->safe_psql('app', 'SELECT count(*) FROM src'), '1501', 'sources keep their rows after DROP EXTENSION CASCADE');
is($new->safe_psql('app', 'SELECT count(*) FROM log_tgt'), '1501', 'targets stay');
$new->safe_psql('app', 'CREATE EXTENSION pipeline');
is($new->safe_psql('app', 'SELECT count(*) FROM pipeline.pipelines'), '0', 'a fresh install starts empty');

$old->stop;
$new->stop;
done_testing();
