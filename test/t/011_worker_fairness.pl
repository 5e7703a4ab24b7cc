# Run workers are shared fairly: with more pipelines than
# pipeline.max_workers (4 here), every due pipeline runs in turn.  Twelve
# continuous pipelines with rows staged in each are all merged, without a
# single empty run; twenty under concurrent writers (pgbench) are all
# caught up soon after the writers stop; an interval pipeline is not starved
# by continuous ones holding the workers; and a due pipeline that finds
# every worker busy shows 'waiting for a worker' in pipeline.status until
# one is free.  Before the fix, each continuous pipeline kept its worker
# for ever, so the ones beyond the fourth never ran.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('fairness');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline'
max_worker_processes = 16
max_connections = 40
pipeline.max_workers = 4
pipeline.launcher_naptime = '1s'
pipeline.continuous_naptime = '300ms'
});
$node->start;

# Polls a condition for at most $seconds (a bound of the test, shorter than
# poll_query_until's default); true when it held in time.
sub holds_within
{
	my ($seconds, $sql) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		return 1 if $node->safe_psql('postgres', $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}

$node->safe_psql('postgres', 'CREATE EXTENSION pipeline');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pipeline scheduler'"),
	'a scheduler runs');

# Pipelines p1..pN read s1..sN into t1..tN, continuously.
sub create_continuous
{
	my ($from, $to) = @_;
	for my $i ($from .. $to)
	{
		my $n = $i;
		$node->safe_psql(
			'postgres', qq{
			CREATE TABLE s$n (id bigint, v int);
			SELECT pipeline.create_pipeline('p$n', 's$n', 't$n', key => ARRAY['id'],
			                                 schedule => 'continuous');});
	}
}

# --- twelve continuous pipelines, four workers: every one is served
create_continuous(1, 12);
$node->safe_psql('postgres',
	join('', map { sprintf("INSERT INTO s%d SELECT g, 1 FROM generate_series(1, 100) g;\n", $_) } 1 .. 12));
my $all_twelve = join(' + ', map { sprintf('(SELECT count(*) FROM t%d)', $_) } 1 .. 12);
ok(holds_within(30, "SELECT $all_twelve = 1200"),
	'12 continuous pipelines on 4 workers merge all 1,200 rows within 30 s');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(DISTINCT pipeline) || ' pipelines ran, ' || count(*) FILTER (WHERE rows_read = 0) || ' empty runs'
		  FROM pipeline.runs}),
	'12 pipelines ran, 0 empty runs',
	'each ran, and giving workers in turn added no empty run');
cmp_ok(
	$node->safe_psql(
		'postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pipeline worker'"),
	'<=', 4, 'never more workers than pipeline.max_workers');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT backend_pid) FROM pipeline.runs'),
	'4', 'four worker processes served the twelve: a worker takes the next pipeline over in place');

# --- an interval pipeline is not starved by idle continuous ones
$node->safe_psql(
	'postgres', q{
	CREATE TABLE second_src (id bigint, v int);
	SELECT pipeline.create_pipeline('every_second', 'second_src', 'second_tgt', key => ARRAY['id'],
	                                 schedule => '1 second');
	INSERT INTO second_src SELECT g, 1 FROM generate_series(1, 50) g;});
ok(holds_within(20, 'SELECT count(*) = 50 FROM second_tgt'),
	'an interval pipeline gets a worker from idle continuous ones');

# --- a paused pipeline with a long interval does not stop the ticks of
# another (the scheduler wakes for intervals of a minute or more at whole
# seconds; a paused one is never due)
$node->safe_psql(
	'postgres', q{
	CREATE TABLE hourly_src (id bigint);
	SELECT pipeline.create_pipeline('hourly', 'hourly_src', 'hourly_tgt', key => ARRAY['id'],
	                                 schedule => '1 hour');
	SELECT pipeline.pause('hourly');
	CREATE TABLE ticking_src (id bigint);
	SELECT pipeline.create_pipeline('ticking', 'ticking_src', 'ticking_tgt', key => ARRAY['id'],
	                                 schedule => '1 second');});
ok( holds_within(
		20, q{SELECT empty_ticks >= 3 FROM pipeline.status WHERE pipeline = 'ticking'}),
	'a one-second schedule keeps ticking next to a paused hourly one');

# --- twenty continuous pipelines under concurrent writers
create_continuous(13, 20);
$node->safe_psql('postgres', 'CREATE SEQUENCE ids START 1000000');
my $script = $node->basedir . '/writer.sql';
PostgreSQL::Test::Utils::append_to_file(
	$script, q{\set n random(1, 20)
INSERT INTO s:n (id, v) SELECT nextval('ids'), 2 FROM generate_series(1, 5);
});
$node->command_ok(
	[ 'pgbench', '-n', '-c', '4', '-T', '10', '-f', $script, '-p', $node->port, '-h', $node->host, 'postgres' ],
	'four writers commit to twenty sources for 10 s');
my $staged = join(' + ', map { sprintf('(SELECT count(*) FROM s%d)', $_) } 1 .. 20);
my $merged = join(' + ', map { sprintf('(SELECT count(*) FROM t%d)', $_) } 1 .. 20);
my $total = $node->safe_psql('postgres', "SELECT $staged");
cmp_ok($total, '>', 2000, 'the writers staged thousands of rows');
ok(holds_within(30, "SELECT $merged = $staged"),
	'all 20 pipelines are caught up within 30 s of the writers stopping');
is($node->safe_psql('postgres', "SELECT count(*) FROM pipeline.status WHERE pending_rows > 0"),
	'0', 'nothing pending');

# --- a commit to the source of a pipeline without a worker reaches it at
# once: the commit names its sources to the scheduler, which probes their
# pipelines (every one only each 10 s).  Three in a row, each within 2 s,
# by INSERT, by INSERT in a function, and by COPY (which names no source:
# then the scheduler probes them all).
$node->safe_psql('postgres',
	q{CREATE FUNCTION stage_one(t regclass, i bigint) RETURNS void LANGUAGE plpgsql
	  AS $$ BEGIN EXECUTE format('INSERT INTO %s (id, v) VALUES ($1, 4)', t) USING i; END $$});
my @ways = (
	sub { "INSERT INTO s$_[0] (id, v) VALUES (7000000, 4)" },
	sub { "SELECT stage_one('s$_[0]', 7000000)" },
	sub { "COPY s$_[0] (id, v) FROM PROGRAM 'echo 7000000,4' WITH (FORMAT csv)" });
for my $way (0 .. 2)
{
	my $idle = $node->safe_psql(
		'postgres', q{
		SELECT min(substr(p.name, 2)::int) FROM pipeline.pipelines p
		 WHERE p.name ~ '^p[0-9]+$' AND NOT EXISTS (
		       SELECT 1 FROM pg_stat_activity a
		        WHERE a.application_name = 'pipeline worker: ' || p.name)
		   AND substr(p.name, 2)::int > } . (5 + $way * 5));
	$node->safe_psql('postgres', $ways[$way]->($idle));
	ok(holds_within(2, "SELECT count(*) = 1 FROM t$idle WHERE id = 7000000"),
		"a row staged by " . (qw(INSERT function COPY))[$way] . " into a source whose pipeline has no worker is merged within 2 s");
}

# --- a due pipeline that finds every worker busy says it waits
# Four runs held by locks on their targets keep all four workers busy.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE t1, t2, t3, t4 IN ACCESS EXCLUSIVE MODE');
$node->safe_psql('postgres',
	join('', map { sprintf("INSERT INTO s%d VALUES (%d, 3);\n", $_, 5_000_000 + $_) } 1 .. 4));
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 4 FROM pipeline.status
		 WHERE pipeline IN ('p1', 'p2', 'p3', 'p4') AND state = 'running'}),
	'four runs wait for their targets, holding the four workers');
$node->safe_psql('postgres', 'INSERT INTO s5 VALUES (6000000, 3)');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT state = 'waiting for a worker' AND pending_rows = 1
		  FROM pipeline.status WHERE pipeline = 'p5'}),
	'a fifth pipeline with rows shows waiting for a worker');
is( $node->safe_psql(
		'postgres', q{
		SELECT s.waiting_since IS NOT NULL FROM pipeline.schedule_state s
		  JOIN pipeline.pipelines p ON p.id = s.pipeline_id WHERE p.name = 'p5'}),
	't', 'schedule_state says since when');
$locker->query_safe('COMMIT');
$locker->quit;
ok(holds_within(20, 'SELECT count(*) = 1 FROM t5 WHERE id = 6000000'),
	'once the workers are free, the waiting pipeline runs');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 0 FROM pipeline.status
		 WHERE state = 'waiting for a worker' OR pending_rows > 0}),
	'and nothing waits any more');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pipeline.schedule_state WHERE waiting_since IS NOT NULL'),
	'0', 'no pipeline is marked waiting');

$node->stop;
done_testing();
