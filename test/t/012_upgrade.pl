# ALTER EXTENSION pipeline UPDATE takes a database with live pipelines from
# 0.1 to the current version.  The 0.1 library is built from the git history
# (the commit that froze sql/pipeline--0.1.sql) into a private copy of the
# PostgreSQL installation; a cluster runs pipelines under it (cursors mid-
# stream, a partial cursor, quarantine, archive batches, a freshness job in
# pg_cron, a captured table, a continuous pipeline); then the current
# package replaces it and the server restarts.  Until the update the new
# library refuses to run pipelines against the 0.1 catalog (a clear error)
# and its scheduler waits, logging why once, while staging and capture go
# on.  After the update: rows staged before, between and after are merged
# exactly once, quarantine, archive and freshness work, and the extension's
# objects equal a fresh install's (binary-upgrade schema dumps compared).
use strict;
use warnings;

use Cwd;
use File::Basename;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# The commit whose sql/pipeline--0.1.sql is version 0.1, frozen since.
my $V01 = 'ca4775d694be9b3c0fa93c19174b0cc7c6d8dca0';
my $src = $ENV{PIPELINE_SRC} // getcwd();

# The git history: PIPELINE_GIT_DIR (test/check.sh sets it: its copy of the
# tree has none), else the source tree's own.
my $git_dir = $ENV{PIPELINE_GIT_DIR} || `git -C '$src' rev-parse --absolute-git-dir 2>/dev/null` =~ s/\s+$//r;
BAIL_OUT("the upgrade test builds the 0.1 library from the git history (commit $V01), which it cannot find: "
	  . "run it from a git clone of the repository, or set PIPELINE_GIT_DIR to its .git directory")
  unless $git_dir ne '' && system("git --git-dir='$git_dir' cat-file -e $V01^{commit} 2>/dev/null") == 0;
is( `git --git-dir='$git_dir' show $V01:sql/pipeline--0.1.sql`,
	slurp_file("$src/sql/pipeline--0.1.sql"),
	'sql/pipeline--0.1.sql is as released in 0.1');

# A private copy of the installation the suite runs (its bin, lib and share;
# the headers linked), laid out as the original so that it relocates.
my $tmp = PostgreSQL::Test::Utils::tempdir;
my %cfg;
$cfg{$_} = `pg_config --$_` =~ s/\s+$//r foreach qw(bindir sharedir pkglibdir pkgincludedir);
my $root = dirname($cfg{bindir});
$root = dirname($root) until grep({ index($_, "$root/") != 0 } values %cfg) == 0;
my $copy = "$tmp/install";
foreach my $dir (dirname($cfg{bindir}), $cfg{sharedir}, $cfg{pkglibdir})
{
	my $to = $copy . substr($dir, length $root);
	next if -d $to;
	make_path(dirname($to));
	system_or_bail('cp', '-a', $dir, $to);
}
my $inc = $copy . substr($cfg{pkgincludedir}, length $root);
unless (-e $inc)
{
	make_path(dirname($inc));
	symlink($cfg{pkgincludedir}, $inc) or die "symlink: $!";
}
my $install_path = $copy . substr(dirname($cfg{bindir}), length $root);
my $pg_config = "$install_path/bin/pg_config";
my $extdir = `$pg_config --sharedir` =~ s/\s+$//r . '/extension';
my $libdir = `$pg_config --pkglibdir` =~ s/\s+$//r;

# The current package's files (scripts and control, library, JIT bitcode)
# kept aside; then the 0.1 package built and installed in their place.
my %package = (extension => $extdir, lib => $libdir, bitcode => "$libdir/bitcode");
my %pattern = (extension => 'pipeline[-.]*', lib => 'pipeline.so', bitcode => 'pipeline{,.index.bc}');
foreach my $part (keys %package)
{
	make_path("$tmp/current/$part");
	my @files = grep { -e } glob("$package{$part}/$pattern{$part}");
	system_or_bail('cp', '-a', @files, "$tmp/current/$part/") if @files;
}
remove_package();
system_or_bail("git --git-dir='$git_dir' archive --prefix=v0.1/ $V01 | tar -xf - -C '$tmp'");
my $started = time;
# unoptimized and without JIT bitcode: it builds in a third of the time
my $build = "make -C '$tmp/v0.1' -s PG_CONFIG='$pg_config' PG_CFLAGS= COPT=-O0 with_llvm=no";
system_or_bail("$build -j2 > '$tmp/v0.1.log' 2>&1");
system_or_bail("$build install >> '$tmp/v0.1.log' 2>&1");
note('the 0.1 library built in ' . (time - $started) . ' s');

my $node = PostgreSQL::Test::Cluster->new('upgrade', install_path => $install_path);
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pipeline,pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
pipeline.archive_interval = -1
});
$node->start;

# Live pipelines under 0.1.
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE DATABASE app;');
$node->safe_psql(
	'app', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE src (id int, v int, note text);
	SELECT pipeline.create_pipeline('latest', 'src', 'latest_tgt', key => ARRAY['id'], sequence_by => 'v');
	SELECT pipeline.create_pipeline('log', 'src', 'log_tgt', strategy => 'append');
	SELECT pipeline.add_check('latest', 'v_small', 'v < 100000', action => 'quarantine');
	SELECT pipeline.set_retention('src', keep => '0', batch_rows => 100);
	CREATE TABLE accounts (id int PRIMARY KEY, balance int);
	SELECT pipeline.capture('accounts');
	SELECT pipeline.create_pipeline('accounts_copy', 'accounts', 'accounts_copy', key => ARRAY['id']);
	CREATE TABLE events (id int, at timestamptz DEFAULT now());
	SELECT pipeline.create_pipeline('events', 'events', 'events_tgt', key => ARRAY['id'], schedule => 'continuous');
	CREATE TABLE orders (id int, placed_at timestamptz);
	INSERT INTO orders VALUES (1, now() - interval '2 hours');

	INSERT INTO src SELECT g % 100, g, 'consumed' FROM generate_series(1, 1000) g;
	INSERT INTO src VALUES (1, 500000, 'quarantined');
	INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 50) g;
	CALL pipeline.run('latest');
	CALL pipeline.run('log');
	CALL pipeline.run('accounts_copy');
	SELECT pipeline.archive('src');
	-- pending at the upgrade, 'latest' stopping inside their transaction
	INSERT INTO src SELECT g % 100, g, 'pending' FROM generate_series(1001, 1300) g;
	CALL pipeline.run('latest', max_rows => 100);
	INSERT INTO src SELECT g % 100, g, 'pending' FROM generate_series(1301, 1400) g;
	UPDATE accounts SET balance = balance + 1 WHERE id <= 10;
	DELETE FROM accounts WHERE id > 45;
	INSERT INTO events (id) SELECT g FROM generate_series(1, 10) g;
});
my $check = $node->safe_psql(
	'app', q{
	SELECT pipeline.add_freshness_check('orders', 'placed_at', warn_after => '10 minutes',
	                                    error_after => '1 hour', schedule => '* * * * *')});
is($node->safe_psql('app', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
	'0.1', 'the database runs 0.1');
ok($node->poll_query_until('app', 'SELECT count(*) = 10 FROM events_tgt'),
	'the continuous pipeline runs under 0.1');
my $archived = q{SELECT count(*), md5(string_agg(a::text, ',' ORDER BY a._xid, a._seq))
                   FROM pipeline.archive_batches b, pipeline.archived_rows(b.id, NULL::src) a
                  WHERE b.id <= %s};
my $last_batch = $node->safe_psql('app', 'SELECT max(id) FROM pipeline.archive_batches');
my $archived_before = $node->safe_psql('app', sprintf($archived, $last_batch));
like($archived_before, qr/^1001\|/, 'the rows both readers consumed are archived');
is($node->safe_psql('app', 'SELECT count(*) FROM pipeline.quarantine'), '1', 'a row is quarantined');
$node->safe_psql('app',
	q{SELECT pipeline.openlineage_acknowledge(ARRAY(SELECT id FROM pipeline.openlineage_outbox ORDER BY id LIMIT 2))});
my $outbox = q{SELECT count(*), count(acknowledged_at), max(id), string_agg(run_id || event_type, ',' ORDER BY id)
                 FROM pipeline.openlineage_outbox WHERE id <= %s};
my $last_event = $node->safe_psql('app', 'SELECT max(id) FROM pipeline.openlineage_outbox');
my $outbox_before = $node->safe_psql('app', sprintf($outbox, $last_event));
like($outbox_before, qr/^\d+\|2\|/, 'the runs\' OpenLineage events are in the outbox, two acknowledged');
my $job = $node->safe_psql('postgres', 'SELECT jobname, schedule, command, database FROM cron.job');
is($job, "pipeline_freshness_app_$check|* * * * *|SELECT pipeline.check_freshness($check)|app",
	'the freshness check has its pg_cron job');

# The current package replaces 0.1's; the server restarts with its library.
$node->stop;
remove_package();
system_or_bail('cp', '-a', "$tmp/current/$_/.", $package{$_}) foreach grep { -d $package{$_} } keys %package;
my $log_offset = -s $node->logfile;
$node->start;
my $version = $node->safe_psql('app', q{SELECT default_version FROM pg_available_extensions WHERE name = 'pipeline'});
isnt($version, '0.1', "the package of version $version is installed");

# Until the update: a clear refusal, and the scheduler waits.
my ($ret, $out, $err) =
  $node->psql('app', "\\set VERBOSITY verbose\nCALL pipeline.run('latest');");
like($err, qr/ERROR:  55000: pipeline library version \Q$version\E differs from the installed extension version 0\.1/,
	'before the update, a run is refused with its SQLSTATE');
like($err, qr/HINT:  Run ALTER EXTENSION pipeline UPDATE in this database\./, 'the error says what to do');
($ret, $out, $err) = $node->psql('app', "SELECT pipeline.create_pipeline('new', 'src', 'new_tgt')");
like($err, qr/differs from the installed extension version/, 'so is a definition');
$node->safe_psql(
	'app', q{
	INSERT INTO src SELECT g % 100, g, 'between' FROM generate_series(1401, 1500) g;
	UPDATE accounts SET balance = 0 WHERE id = 1;
	INSERT INTO accounts VALUES (99, 1);
	INSERT INTO events (id) SELECT g FROM generate_series(11, 20) g;
});
pass('staging tables and captured tables take writes before the update');
my $waiting = qr/LOG:  pipeline library version \Q$version\E differs from the installed extension version 0\.1/;
ok(wait_for_log($node, $waiting, $log_offset), 'the scheduler logs why it waits');
# the scheduler's next pass (it reports each in pg_stat_activity) stays quiet
my $pass = q{SELECT pid || ' ' || state_change FROM pg_stat_activity
              WHERE application_name = 'pipeline scheduler' AND datname = 'app'};
my $first = $node->safe_psql('app', $pass);
my ($first_pid, $first_at) = split / /, $first, 2;
ok( $node->poll_query_until(
		'app', "SELECT state_change > '$first_at'::timestamptz + interval '5 s' FROM pg_stat_activity
		         WHERE application_name = 'pipeline scheduler' AND datname = 'app'"),
	'the scheduler makes another pass');
is((split / /, $node->safe_psql('app', $pass))[0], $first_pid, 'in the same process');
is(count_matches(slurp_file($node->logfile, $log_offset), $waiting), 1, 'and logs once');
is($node->safe_psql('app', 'SELECT count(*) FROM events_tgt'), '10',
	'the continuous pipeline did not run against the 0.1 catalog');

$node->safe_psql('app', 'ALTER EXTENSION pipeline UPDATE');
is($node->safe_psql('app', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
	$version, 'ALTER EXTENSION pipeline UPDATE');
my $updated_at = $node->safe_psql('app', 'SELECT now()');

# Exactly once: rows staged before the upgrade (consumed, pending, inside a
# partial cursor), between the restart and the update, and after it.
ok($node->poll_query_until('app', 'SELECT count(*) = 20 FROM events_tgt'),
	'the scheduler runs the continuous pipeline after the update');
$node->safe_psql(
	'app', q{
	INSERT INTO src SELECT g % 100, g, 'after' FROM generate_series(1501, 1600) g;
	UPDATE accounts SET balance = 7 WHERE id = 2;
	CALL pipeline.run('latest');
	CALL pipeline.run('log');
	CALL pipeline.run('accounts_copy');
});
# every row ever staged: in the staging table, or archived from it
$node->safe_psql(
	'app', q{
	CREATE VIEW staged AS
	SELECT id, v, note FROM src
	UNION ALL
	SELECT a.id, a.v, a.note FROM pipeline.archive_batches b, pipeline.archived_rows(b.id, NULL::src) a});
is( $node->safe_psql(
		'app', q{
	SELECT (SELECT count(*) FROM staged), count(*), count(DISTINCT v),
	       (SELECT count(*) FROM (TABLE staged EXCEPT ALL SELECT id, v, note FROM log_tgt) m)
	  FROM log_tgt}),
	'1601|1601|1601|0', 'the append target holds every staged row exactly once');
is( $node->safe_psql(
		'app', q{
	SELECT count(*) FROM (SELECT DISTINCT ON (id) id, v, note FROM staged WHERE v < 100000
	                      ORDER BY id, v DESC) e
	FULL JOIN latest_tgt t USING (id) WHERE (e.v, e.note) IS DISTINCT FROM (t.v, t.note)}),
	'0', 'the merge target holds the latest version of every key');
is( $node->safe_psql(
		'app', q{SELECT sum(rows_read) FROM pipeline.runs WHERE pipeline = 'latest' AND status = 'succeeded'}),
	'1601', 'the merge pipeline read each staged row once');
is( $node->safe_psql(
		'app', q{
	SELECT (SELECT count(*) FROM (TABLE accounts EXCEPT TABLE accounts_copy) a)
	     + (SELECT count(*) FROM (TABLE accounts_copy EXCEPT TABLE accounts) b),
	       (SELECT count(*) FROM accounts_copy)}),
	'0|46', 'the copy of the captured table equals it');

# Quarantine, archive and freshness work on the upgraded catalog.
$node->safe_psql(
	'app', q{
	UPDATE pipeline.quarantine SET raw_row = jsonb_set(raw_row, '{v}', '99999');
	CALL pipeline.requeue_quarantine('latest');
});
is($node->safe_psql('app', 'SELECT v, note FROM latest_tgt WHERE id = 1'),
	'99999|quarantined', 'a row quarantined under 0.1 is fixed and requeued');
is($node->safe_psql('app', 'SELECT count(*) FROM pipeline.quarantine'), '0', 'the quarantine is empty');
is($node->safe_psql('app', q{SELECT rows_archived FROM pipeline.archive('src')}),
	'600', 'an archive pass archives what both readers consumed since');
like($node->safe_psql('app', sprintf($archived, 'b.id')), qr/^1601\|/, 'every staged row is archived once');
is($node->safe_psql('app', sprintf($archived, $last_batch)),
	$archived_before, 'the batches archived under 0.1 read back identically');
is($node->safe_psql('app', "SELECT status FROM pipeline.check_freshness($check)"),
	'FAIL', 'a freshness check runs');
is($node->safe_psql('postgres', 'SELECT jobname, schedule, command, database FROM cron.job'),
	$job, 'its pg_cron job is unchanged');
ok( $node->poll_query_until(
		'postgres', qq{SELECT count(*) > 0 FROM cron.job_run_details
		                WHERE status = 'succeeded' AND start_time > '$updated_at'}),
	'pg_cron runs it after the update');

is($node->safe_psql('app', sprintf($outbox, $last_event)), $outbox_before,
	'the OpenLineage events recorded under 0.1 stay in the outbox, acknowledged or not');
is( $node->safe_psql(
		'app', qq{SELECT bool_and(event->>'eventType' = event_type AND event->'run'->>'runId' IS NOT NULL),
		                 count(*) FILTER (WHERE id > $last_event) > 0
		            FROM pipeline.openlineage_outbox}),
	't|t', 'their events are built as those of the runs after the update, which follow them');

# The upgraded extension's objects equal a fresh install's.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pipeline');
my $config = q{SELECT string_agg(c::regclass || ':' || f, ',' ORDER BY c::regclass::text)
                 FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, f)
                WHERE e.extname = 'pipeline'};
is($node->safe_psql('app', $config), $node->safe_psql('fresh', $config),
	'the same tables are dumped with their data');
my $upgraded = extension_dump($node, 'app');
my $fresh = extension_dump($node, 'fresh');
like($fresh, qr/ALTER EXTENSION pipeline ADD TABLE pipeline\.run_log;/, 'the dump holds the extension\'s objects');
is($upgraded, $fresh, 'the upgraded extension\'s objects equal a fresh install\'s');
if ($upgraded ne $fresh)
{
	PostgreSQL::Test::Utils::append_to_file("$tmp/upgraded.sql", $upgraded);
	PostgreSQL::Test::Utils::append_to_file("$tmp/fresh.sql", $fresh);
	diag(`diff -u '$tmp/fresh.sql' '$tmp/upgraded.sql' | head -n 100`);
}

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no server process crashed');
$node->stop;
done_testing();

# remove_package: the extension's files from the private installation.
sub remove_package
{
	system_or_bail('rm', '-rf', grep { -e } glob("$package{$_}/$pattern{$_}")) foreach keys %package;
}

# wait_for_log(NODE, REGEX, OFFSET): whether the server log matches within
# the usual timeout.
sub wait_for_log
{
	my ($node, $regex, $offset) = @_;
	for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		return 1 if slurp_file($node->logfile, $offset) =~ $regex;
		usleep(100_000);
	}
	return 0;
}

# count_matches(TEXT, REGEX): how many times REGEX matches in TEXT.
sub count_matches
{
	my ($text, $regex) = @_;
	my $n = () = $text =~ /$regex/g;
	return $n;
}

# extension_dump(NODE, DB): the extension's objects in a binary-upgrade
# schema dump (the one mode that dumps an extension's members), without what
# differs between any two databases: object ids, relfrozenxid/relminmxid,
# the log positions at which columns were made (the attribute versions this
# pg_dump keeps), the sequences' positions, the dump's \restrict key, and the
# ids of the configuration tables (compared by name above).  The objects outside schema
# pipeline (the user's tables) are left out, the extension's event triggers
# kept.
sub extension_dump
{
	my ($node, $db) = @_;
	my $file = "$tmp/$db.dump.sql";
	$node->command_ok([ 'pg_dump', '--schema-only', '--binary-upgrade', '-f', $file, '-d', $node->connstr($db) ],
		"binary-upgrade schema dump of $db");
	my @kept;
	foreach my $entry (split /(?=^--\n-- (?:Name|Data for Name): )/m, slurp_file($file))
	{
		my ($name, $type, $schema) = $entry =~ /^--\n-- (?:Name|Data for Name): (.*?); Type: (.*?); Schema: (.*?);/
		  or next;
		next if $type eq 'SEQUENCE SET';
		next unless $schema eq 'pipeline'
		  || ($type eq 'EXTENSION' && $name eq 'pipeline')
		  || ($type eq 'COMMENT' && $name eq 'EXTENSION pipeline')
		  || ($type eq 'SCHEMA' && $name eq 'pipeline')
		  || ($type eq 'EVENT TRIGGER' && $name =~ /^pipeline_/);
		$entry =~ s/^SELECT pg_catalog\.binary_upgrade_set_next_\w+\('\d+'::pg_catalog\.oid\);\n//mg;
		$entry =~ s/relfrozenxid = '\d+', relminmxid = '\d+'/relfrozenxid = 'X', relminmxid = 'X'/g;
		$entry =~ s/WHERE oid = '\d+'/WHERE oid = 'X'/g;
		$entry =~ s/'\{[\d,]+\}'/'{OIDS}'/g if $type eq 'EXTENSION';
		$entry =~ s/^\\(un)?restrict \S+\n//mg;
		$entry =~ s/'[\d\/A-F,{}]+'(?=::pg_catalog\.pg_lsn\[\])/'{LSNS}'/g;
		push @kept, $entry;
	}
	return join('', @kept);
}
