# Makefile for the pipeline extension (PGXS)

EXTENSION = pipeline
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = pipeline
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c src/*/*.c))

# SQL: the released versions' install scripts and every upgrade script are
# committed, frozen, in sql/ (pipeline--0.1.sql, pipeline--0.1--0.2.sql);
# the current version's install script is built from its pieces,
# sql/install/NN_<area>.sql in order (doc/design.md, "Versions").
INSTALL_PIECES = $(sort $(wildcard sql/install/*.sql))
DATA = $(wildcard sql/$(EXTENSION)--*.sql)
DATA_built = $(EXTENSION)--$(EXTVERSION).sql

# zstd: pipeline.zstd_compress/zstd_decompress (src/archive/zstd.c)
ZSTD_CFLAGS := $(shell pkg-config --cflags libzstd 2>/dev/null)
ZSTD_LIBS := $(shell pkg-config --libs libzstd 2>/dev/null || echo -lzstd)
# libcurl: the shipper's HTTP POSTs (src/shipping/http_post.c)
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
PG_CPPFLAGS = -I$(srcdir)/src $(ZSTD_CFLAGS) $(CURL_CFLAGS) -DPIPELINE_VERSION='"$(EXTVERSION)"'
SHLIB_LINK = $(ZSTD_LIBS) $(CURL_LIBS)

# Tests: pg_regress (sql/<name>.sql against expected/<name>.out), isolation
# specs (test/specs, test/expected) and TAP tests (test/t).  test/check.sh
# runs these same lists (make regress-list, make isolation-list) on
# throwaway clusters; make installcheck runs them against a running server
# set up as test/pipeline.conf says (README, "Testing").
REGRESS = $(patsubst sql/%.sql,%,$(sort $(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-config=$(srcdir)/test/pipeline.conf --load-extension=pg_cron
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --temp-config=$(srcdir)/test/pipeline.conf
TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The TAP tests' own modules (test/perl), for make installcheck too.
PG_PROVE_FLAGS += -I $(srcdir)/test/perl

# PGXS tracks no header dependencies: every object depends on every header,
# so that a changed struct never leaves an object built with its old layout.
$(OBJS): $(wildcard src/*.h src/*/*.h)

# The library knows the version it was built for (src/base/version.c).
src/base/version.o: $(EXTENSION).control

# The current version's install script: a header, then the pieces in order,
# each after a blank line.
$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_PIECES) $(EXTENSION).control
	{ printf '%s\n' '/* $@: catalog and SQL API of the pipeline extension, built by make from sql/install/ (edit those, not this file) */' '' \
		'\echo Use "CREATE EXTENSION pipeline" to load this file. \quit'; \
	  for f in $(INSTALL_PIECES); do echo; cat $$f; done; } > $@

# The test lists, one name a line, for test/check.sh.
.PHONY: regress-list isolation-list
regress-list:
	@printf '%s\n' $(REGRESS)
isolation-list:
	@printf '%s\n' $(ISOLATION)

# make installcheck: pg_cron keeps a session open in its database
# (cron.database_name, contrib_regression for the tests), on which the DROP
# DATABASE of pg_regress would fail: an earlier run's database is dropped
# WITH (FORCE) first.
installcheck: drop-regression-database
.PHONY: drop-regression-database
drop-regression-database:
	'$(bindir)/psql' -X -q -d postgres -c 'DROP DATABASE IF EXISTS contrib_regression WITH (FORCE)'
