/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Differences between PostgreSQL versions, and server structures that
 *	  are not exported in headers, kept in one place.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_COMPAT_H
#define PIPELINE_COMPAT_H

#include "postgres.h"
#include "access/transam.h"
#include "utils/xid8.h"

#if PG_VERSION_NUM < 150000
#error "pipeline requires PostgreSQL 15 or later"
#endif

/*
 * The on-disk layout of pg_snapshot (src/backend/utils/adt/xid8funcs.c keeps
 * it private).  It has been stable since the type appeared in PostgreSQL 13.
 */
typedef struct PipelineSnapshot
{
	int32		vl_len_;		/* varlena header */
	uint32		nxip;			/* number of in-progress ids */
	FullTransactionId xmin;
	FullTransactionId xmax;
	FullTransactionId xip[FLEXIBLE_ARRAY_MEMBER];
} PipelineSnapshot;

#define PIPELINE_SNAPSHOT_SIZE(nxip) \
	(offsetof(PipelineSnapshot, xip) + sizeof(FullTransactionId) * (nxip))

/* USAGE and the like on a schema: one function per object class before 16. */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_namespace.h"
#define pipeline_namespace_aclcheck(nsp, role, mode) \
	object_aclcheck(NamespaceRelationId, (nsp), (role), (mode))
#else
#define pipeline_namespace_aclcheck(nsp, role, mode) \
	pg_namespace_aclcheck((nsp), (role), (mode))
#endif

#endif							/* PIPELINE_COMPAT_H */
