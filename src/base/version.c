/*-------------------------------------------------------------------------
 *
 * version.c
 *	  The library and the installed extension must be of one version.
 *
 * A new package replaces the library (loaded at the next server start) and
 * brings the upgrade scripts, but a database's SQL objects change only when
 * someone runs ALTER EXTENSION pipeline UPDATE there.  In between, and when
 * a database was updated while the server still runs the old library, the
 * library would run pipelines against a catalog of another version: rows
 * could be merged twice or never.  So the entry points that manage or run
 * pipelines refuse, and the scheduler and its workers wait, until the two
 * agree again.  The clock, the staging guards, capture triggers and event
 * triggers go on: stopping them would lose changes or block every write and
 * DDL of the applications, ALTER EXTENSION UPDATE itself included.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "model.h"
#include "base/base.h"

#ifndef PIPELINE_VERSION
#error "PIPELINE_VERSION must be defined (the Makefile reads it from pipeline.control)"
#endif

/*
 * installed_version
 *		The version of the extension installed in this database (palloc'd),
 *		or NULL when it is not installed.  The caller is in a transaction.
 */
static char *
installed_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("pipeline"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * version_older
 *		Whether dotted version a (such as "0.1") comes before b, comparing
 *		number by number ("0.2" before "0.2.1" and "0.10").
 */
static bool
version_older(const char *a, const char *b)
{
	for (;;)
	{
		char	   *end_a;
		char	   *end_b;
		long		x = strtol(a, &end_a, 10);
		long		y = strtol(b, &end_b, 10);

		if (x != y)
			return x < y;
		if (*end_a != '.' || *end_b != '.')
			return *end_a == '\0' && *end_b == '.';
		a = end_a + 1;
		b = end_b + 1;
	}
}

/*
 * pipeline_check_version
 *		True when this database's extension is of the library's version (or
 *		not installed, or being created or updated to it).  Otherwise
 *		reports the difference at elevel (ERROR does not return) and
 *		returns false.  The caller is in a transaction.
 */
bool
pipeline_check_version(int elevel)
{
	char	   *installed = installed_version();
	bool		library_older;

	if (installed == NULL || strcmp(installed, PIPELINE_VERSION) == 0)
		return true;
	library_older = version_older(PIPELINE_VERSION, installed);
	ereport(elevel,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("pipeline library version %s differs from the installed extension version %s",
					PIPELINE_VERSION, installed),
			 errdetail("The server loaded version %s of the pipeline library, but this database has "
					   "version %s of the extension's SQL objects; pipelines do not run until both "
					   "are of one version.", PIPELINE_VERSION, installed),
			 library_older
			 ? errhint("Restart the server so that it loads the library of version %s.", installed)
			 : errhint("Run ALTER EXTENSION pipeline UPDATE in this database.")));
	return false;
}

/*
 * pipeline_lock_extension
 *		Whether the extension exists (committed) in this database, locked
 *		(shared) until the transaction ends.  DROP EXTENSION locks the
 *		extension before the tables it drops: a background worker that
 *		holds this lock first never holds a catalog table the DROP waits
 *		for while waiting for one the DROP holds (a scheduler's pass reads
 *		several, statement after statement), so the two never deadlock; the
 *		DROP waits for the worker's transaction, or the worker for the DROP
 *		and then finds no extension.  The caller is in a transaction.
 */
bool
pipeline_lock_extension(void)
{
	Oid			extension = get_extension_oid("pipeline", true);

	if (!OidIsValid(extension))
		return false;
	LockDatabaseObject(ExtensionRelationId, extension, 0, AccessShareLock);
	return OidIsValid(get_extension_oid("pipeline", true));
}
