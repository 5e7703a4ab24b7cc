# A Citus cluster for the TAP tests: a coordinator and two workers on this
# machine, each with Citus and the pipeline library, reachable over TCP on
# 127.0.0.1 as the nodes reach each other; the extension created on the
# coordinator (Citus creates it on the workers).
package PipelineCitus;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use Test::More;

our @EXPORT = qw(citus_cluster refused);

# citus_node(NAME): a started node with Citus created.
sub citus_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		    "shared_preload_libraries = 'citus,pipeline'\n"
		  . "max_prepared_transactions = 50\n"
		  . "listen_addresses = '127.0.0.1'\n"
		  . "citus.recover_2pc_interval = '1s'\n"
		  . "restart_after_crash = on\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	return $node;
}

# citus_cluster(): (coordinator, worker1, worker2); the test skipped,
# saying why, when Citus is not installed for this server.
sub citus_cluster
{
	my $pkglibdir = `pg_config --pkglibdir`;
	chomp $pkglibdir;
	plan skip_all =>
	  "Citus is not installed in $pkglibdir (test/install_citus.sh builds it when its source is at hand)"
	  unless -f "$pkglibdir/citus.so";
	my $coordinator = citus_node('coordinator');
	my @workers = (citus_node('worker1'), citus_node('worker2'));
	$coordinator->safe_psql('postgres',
		"SELECT citus_set_coordinator_host('127.0.0.1', " . $coordinator->port . ')');
	$coordinator->safe_psql('postgres', "SELECT citus_add_node('127.0.0.1', " . $_->port . ')')
	  foreach @workers;
	$coordinator->safe_psql('postgres', 'CREATE EXTENSION pipeline');
	return ($coordinator, @workers);
}

# refused(NODE, SQL, PATTERN, NAME): SQL fails on NODE with an error
# matching PATTERN.
sub refused
{
	my ($node, $sql, $pattern, $name) = @_;
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql);
	like($stderr, $pattern, $name);
}

1;
